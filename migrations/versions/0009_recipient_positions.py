"""broadcast recipients keyed by (broadcast, position); chunks are position ranges

A million-recipient plan spent most of its time maintaining five indexes on broadcast_recipient (benchmark
(f)). The rows are now keyed by (broadcast_id, position) — eligible first, per sender, in customer order —
so each chunk is a range of positions (broadcast_chunk.first_position … last_position) and the plan writes
its rows in key order. The surrogate id, chunk_id and the indexes on chunk, (broadcast, customer) and
(corp, customer, day) go; a partial index on (corp, customer, day) of sent rows serves the customer's
messages. Existing rows are renumbered in the order of their chunks.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import siyu.core.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PK = "pk_broadcast_recipient"
COPIED = "corp_id, broadcast_id, customer_id, chat_id, employee_id, send_day, status, reason, updated_at"


def _chat_indexes(batch_op: Any) -> None:
    batch_op.create_index(
        "uq_broadcast_recipient_chat",
        ["broadcast_id", "chat_id"],
        unique=True,
        postgresql_where=sa.text("chat_id IS NOT NULL"),
        sqlite_where=sa.text("chat_id IS NOT NULL"),
    )
    batch_op.create_index(
        "ix_broadcast_recipient_chat",
        ["chat_id", "send_day"],
        unique=False,
        postgresql_where=sa.text("chat_id IS NOT NULL"),
        sqlite_where=sa.text("chat_id IS NOT NULL"),
    )


def upgrade() -> None:
    with op.batch_alter_table("broadcast_chunk", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_position", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_position", sa.Integer(), nullable=False, server_default="-1"))
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "broadcast_recipient_new",
        sa.Column("broadcast_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("corp_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=True),
        sa.Column("chat_id", BIG_ID, nullable=True),
        sa.Column("employee_id", BIG_ID, nullable=True),
        sa.Column("send_day", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=48), nullable=False),
        sa.Column("updated_at", siyu.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("chunk_id", BIG_ID, nullable=True),  # for the chunks' ranges below, then dropped
        # PostgreSQL names the key's index, and the old table still holds that name until it goes
        sa.PrimaryKeyConstraint(
            "broadcast_id", "position", name="pk_broadcast_recipient" if sqlite else "pk_broadcast_recipient_new"
        ),
    )
    # chunked rows first, in chunk order, then the rest; within each, by customer (or chat)
    op.execute(
        f"INSERT INTO broadcast_recipient_new (position, chunk_id, {COPIED})"
        " SELECT ROW_NUMBER() OVER (PARTITION BY broadcast_id"
        " ORDER BY CASE WHEN chunk_id IS NULL THEN 1 ELSE 0 END, chunk_id, COALESCE(customer_id, chat_id), id),"
        f" chunk_id, {COPIED} FROM broadcast_recipient"
    )
    op.create_index("tmp_broadcast_recipient_new_chunk", "broadcast_recipient_new", ["chunk_id"])
    op.execute(
        "UPDATE broadcast_chunk SET"
        " first_position = COALESCE((SELECT MIN(n.position) FROM broadcast_recipient_new n"
        " WHERE n.chunk_id = broadcast_chunk.id), 0),"
        " last_position = COALESCE((SELECT MAX(n.position) FROM broadcast_recipient_new n"
        " WHERE n.chunk_id = broadcast_chunk.id), -1)"
    )
    op.drop_index("tmp_broadcast_recipient_new_chunk", table_name="broadcast_recipient_new")
    op.drop_table("broadcast_recipient")
    with op.batch_alter_table("broadcast_recipient_new", schema=None) as batch_op:
        batch_op.drop_column("chunk_id")
    op.rename_table("broadcast_recipient_new", "broadcast_recipient")
    if not sqlite:
        op.execute(
            "ALTER TABLE broadcast_recipient RENAME CONSTRAINT pk_broadcast_recipient_new TO pk_broadcast_recipient"
        )
    with op.batch_alter_table("broadcast_recipient", schema=None) as batch_op:
        batch_op.create_index(
            "ix_broadcast_recipient_sent",
            ["corp_id", "customer_id", "send_day"],
            unique=False,
            postgresql_where=sa.text("status = 'sent'"),
            sqlite_where=sa.text("status = 'sent'"),
        )
        _chat_indexes(batch_op)
    with op.batch_alter_table("broadcast_chunk", schema=None) as batch_op:
        batch_op.alter_column("first_position", server_default=None)
        batch_op.alter_column("last_position", server_default=None)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "broadcast_recipient_old",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("corp_id", sa.Integer(), nullable=False),
        sa.Column("broadcast_id", BIG_ID, nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=True),
        sa.Column("chat_id", BIG_ID, nullable=True),
        sa.Column("employee_id", BIG_ID, nullable=True),
        sa.Column("chunk_id", BIG_ID, nullable=True),
        sa.Column("send_day", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=48), nullable=False),
        sa.Column("updated_at", siyu.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_broadcast_recipient" if sqlite else "pk_broadcast_recipient_old"),
    )
    op.execute(
        f"INSERT INTO broadcast_recipient_old (chunk_id, {COPIED})"
        " SELECT (SELECT c.id FROM broadcast_chunk c WHERE c.broadcast_id = r.broadcast_id"
        " AND r.position BETWEEN c.first_position AND c.last_position),"
        f" {', '.join('r.' + c.strip() for c in COPIED.split(','))}"
        " FROM broadcast_recipient r ORDER BY r.broadcast_id, r.position"
    )
    op.drop_table("broadcast_recipient")
    op.rename_table("broadcast_recipient_old", "broadcast_recipient")
    if not sqlite:
        op.execute(
            "ALTER TABLE broadcast_recipient RENAME CONSTRAINT pk_broadcast_recipient_old TO pk_broadcast_recipient"
        )
    with op.batch_alter_table("broadcast_recipient", schema=None) as batch_op:
        batch_op.create_index(
            "uq_broadcast_recipient_customer",
            ["broadcast_id", "customer_id"],
            unique=True,
            postgresql_where=sa.text("customer_id IS NOT NULL"),
            sqlite_where=sa.text("customer_id IS NOT NULL"),
        )
        batch_op.create_index("ix_broadcast_recipient_caps", ["corp_id", "customer_id", "send_day"], unique=False)
        batch_op.create_index("ix_broadcast_recipient_chunk", ["chunk_id"], unique=False)
        _chat_indexes(batch_op)
    with op.batch_alter_table("broadcast_chunk", schema=None) as batch_op:
        batch_op.drop_column("last_position")
        batch_op.drop_column("first_position")
