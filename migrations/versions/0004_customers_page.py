"""customers page at 1M: customer.added_at, keyset indexes, customer_export

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.core.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "added_at",
                siyu.core.db.UtcDateTime(timezone=True),
                server_default=sa.func.current_timestamp(),
                nullable=True,
            )
        )
    # The earliest follow createtime, else when siyu first saw the customer.
    op.execute(
        "UPDATE customer SET added_at = COALESCE("
        "(SELECT min(follow.created_at) FROM follow WHERE follow.customer_id = customer.id), created_at)"
    )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.alter_column("added_at", existing_type=siyu.core.db.UtcDateTime(timezone=True), nullable=False)
        batch_op.create_index("ix_customer_corp_added", ["corp_id", "added_at", "id"], unique=False)
        batch_op.create_index("ix_customer_corp_name", ["corp_id", "name", "id"], unique=False)
        batch_op.create_index("ix_customer_corp_id", ["corp_id", "id"], unique=False)

    with op.batch_alter_table("follow", schema=None) as batch_op:
        batch_op.create_index("ix_follow_employee_customer", ["employee_id", "customer_id"], unique=False)
        batch_op.create_index("ix_follow_corp_created", ["corp_id", "created_at"], unique=False)

    with op.batch_alter_table("follow_tag", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_tag_tag")
        batch_op.create_index("ix_follow_tag_tag", ["tag_id", "follow_id"], unique=False)

    op.create_table(
        "customer_export",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("corp_id", sa.Integer(), nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", siyu.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", siyu.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["corp_id"], ["corp.corp_id"], name=op.f("fk_customer_export_corp_id_corp"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["console_user.id"], name=op.f("fk_customer_export_user_id_console_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_export")),
    )
    with op.batch_alter_table("customer_export", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_export_corp_id"), ["corp_id"], unique=False)
        batch_op.create_index("ix_customer_export_user", ["user_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("customer_export", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_export_user")
        batch_op.drop_index(batch_op.f("ix_customer_export_corp_id"))
    op.drop_table("customer_export")

    with op.batch_alter_table("follow_tag", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_tag_tag")
        batch_op.create_index("ix_follow_tag_tag", ["tag_id"], unique=False)

    with op.batch_alter_table("follow", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_corp_created")
        batch_op.drop_index("ix_follow_employee_customer")

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_corp_id")
        batch_op.drop_index("ix_customer_corp_name")
        batch_op.drop_index("ix_customer_corp_added")
        batch_op.drop_column("added_at")
