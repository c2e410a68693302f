"""sync bookkeeping: follow/group_chat last_seen_run_id, group_chat.updated_at

A complete sync marks what it saw with its run id and, at the end, ends the follows and
dismisses the groups it did not see. group_chat.updated_at lets it spare groups a callback
created while the run was going.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.core.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("follow", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_run_id", BIG_ID, nullable=True))
    with op.batch_alter_table("group_chat", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_run_id", BIG_ID, nullable=True))
        # Existing rows need a value; the model sets it from then on, so the server default goes again.
        batch_op.add_column(
            sa.Column(
                "updated_at",
                siyu.core.db.UtcDateTime(timezone=True),
                nullable=False,
                server_default=sa.func.current_timestamp(),
            )
        )
    with op.batch_alter_table("group_chat", schema=None) as batch_op:
        batch_op.alter_column("updated_at", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("group_chat", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("last_seen_run_id")
    with op.batch_alter_table("follow", schema=None) as batch_op:
        batch_op.drop_column("last_seen_run_id")
