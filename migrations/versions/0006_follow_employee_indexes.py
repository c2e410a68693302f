"""indexes: follow by employee with created_at / status, follow by id with employee and customer (customers page)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("follow", schema=None) as batch_op:
        batch_op.create_index("ix_follow_employee_created", ["employee_id", "created_at", "customer_id"], unique=False)
        batch_op.create_index("ix_follow_employee_status", ["employee_id", "status", "customer_id"], unique=False)
        batch_op.create_index("ix_follow_id_employee_customer", ["id", "employee_id", "customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("follow", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_id_employee_customer")
        batch_op.drop_index("ix_follow_employee_status")
        batch_op.drop_index("ix_follow_employee_created")
