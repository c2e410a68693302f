"""Broadcasts with their frozen recipients and the chunks that reach WeCom.

A broadcast is planned once: every candidate becomes a `broadcast_recipient` row, eligible
(status `pending`) or excluded with its reason. Eligible rows are grouped per sender into
`broadcast_chunk` rows of ≤ 10,000 (≤ 2,000 chats for group broadcasts); each chunk is sent by id,
once, and its results are polled into the recipient rows.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from siyu.core.clock import now_utc
from siyu.core.db import Base, BigId, UtcDateTime


class BroadcastKind(StrEnum):
    CUSTOMER = "customer"  # enterprise mass message to customers (add_msg_template, chat_type single)
    GROUP = "group"  # to customer groups (chat_type group)
    PERSONAL = "personal"  # started by one employee, ≤ 200 recipients
    MOMENT = "moment"  # customer Moments (add_moment_task)


class BroadcastStatus(StrEnum):
    DRAFT = "draft"
    PLANNED = "planned"  # recipients frozen, slots reserved, not yet sending
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"  # every chunk accepted by WeCom; results still polled
    FINISHED = "finished"  # results final
    CANCELLED = "cancelled"
    PAUSED = "paused"  # by the complaint monitor or a person
    BLOCKED = "blocked"  # content check failed
    FAILED = "failed"


class RecipientStatus(StrEnum):
    EXCLUDED = "excluded"  # by the plan; `reason` says why
    PENDING = "pending"  # eligible, holds a cap slot
    SENT = "sent"
    NOT_SENT = "not_sent"  # the employee did not confirm / cancelled
    NOT_FRIEND = "not_friend"
    QUOTA = "quota"  # WeCom's receive cap was hit
    CANCELLED = "cancelled"


# Statuses that hold a cap slot: reserved (pending) or delivered (sent).
SLOT_STATUSES = (RecipientStatus.PENDING, RecipientStatus.SENT)


class Broadcast(Base):
    __tablename__ = "broadcast"
    __table_args__ = (Index("ix_broadcast_corp_status", "corp_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default=BroadcastKind.CUSTOMER)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=BroadcastStatus.DRAFT)
    # Audience: a rule (evaluated at plan time), a saved segment, a snapshot or an explicit list.
    audience: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    rule_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segment.id", ondelete="SET NULL"), nullable=True)
    snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("segment_snapshot.id", ondelete="SET NULL"), nullable=True
    )
    # {"text": "...", "attachments": [{"msgtype": "image"|"link"|"miniprogram"|"video"|"file", ...}]}
    content: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    sender_ids: Mapped[list[int]] = mapped_column(JSON, default=list)  # restrict to these employees; [] = all
    allow_select: Mapped[bool] = mapped_column(Boolean, default=False)
    scheduled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    send_day: Mapped[date | None] = mapped_column(Date, nullable=True)  # corp-local day the slots are taken on
    # The plan (planner: candidates, eligible, excluded by reason, senders, chunks, moved, findings) and
    # the sender's "results" beside it.
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    block_reason: Mapped[str] = mapped_column(Text, default="")
    holdout_percent: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)
    planned_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class BroadcastRecipient(Base):
    """One customer (or group chat) of a planned broadcast; the frozen audience, with the outcome.

    Keyed by (broadcast, position): the planner numbers a broadcast's rows eligible first, per sender, in
    customer (or chat) order, then the excluded ones by reason — so every chunk is one contiguous range
    of positions (`broadcast_chunk.first_position … last_position`) and a million-row plan writes its rows
    in key order into the only index a customer broadcast's rows get at plan time (docs/benchmarks.md (f)).
    Rows enter the customer index (`ix_broadcast_recipient_sent`) only once WeCom reports them sent; the
    slots they hold before that are found through their broadcasts (`compliance.caps`).
    """

    __tablename__ = "broadcast_recipient"
    __table_args__ = (
        # the customer's messages: attribution of complaints, "last broadcast received", reach figures
        Index(
            "ix_broadcast_recipient_sent",
            "corp_id",
            "customer_id",
            "send_day",
            postgresql_where=text("status = 'sent'"),
            sqlite_where=text("status = 'sent'"),
        ),
        # one row per chat of a group broadcast; partial, so customer rows cost it nothing
        Index(
            "uq_broadcast_recipient_chat",
            "broadcast_id",
            "chat_id",
            unique=True,
            postgresql_where=text("chat_id IS NOT NULL"),
            sqlite_where=text("chat_id IS NOT NULL"),
        ),
        # a group's slots (group broadcasts); partial, so customer rows cost it nothing
        Index(
            "ix_broadcast_recipient_chat",
            "chat_id",
            "send_day",
            postgresql_where=text("chat_id IS NOT NULL"),
            sqlite_where=text("chat_id IS NOT NULL"),
        ),
    )

    # No foreign keys: PostgreSQL checks one per inserted row, and the broadcast's alone more than doubled
    # the time to write a million-recipient plan (docs/benchmarks.md (f)). Rows are written only by the
    # planner, in the transaction that holds their broadcast (same corp); whoever deletes a broadcast
    # deletes its recipients (nothing does today). One row per customer (or chat) of a broadcast: the
    # planner writes each candidate once (its candidates are a keyed table).
    broadcast_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # 1, 2, … per broadcast
    corp_id: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # customer broadcasts
    chat_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # group broadcasts (group_chat.id)
    employee_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # the sender chosen at plan time
    send_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=RecipientStatus.PENDING)
    reason: Mapped[str] = mapped_column(String(48), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc, onupdate=now_utc)


class ChunkStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed; a retry first looks the task up in WeCom before sending again
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BroadcastChunk(Base):
    """≤ 10,000 recipients of one sender: one add_msg_template call, sent once."""

    __tablename__ = "broadcast_chunk"
    __table_args__ = (UniqueConstraint("broadcast_id", "employee_id", "chunk_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), index=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcast.id", ondelete="CASCADE"))
    employee_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    chunk_no: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer, default=0)
    # its recipients: broadcast_recipient rows of the broadcast at these positions (inclusive)
    first_position: Mapped[int] = mapped_column(Integer, default=0)
    last_position: Mapped[int] = mapped_column(Integer, default=-1)
    status: Mapped[str] = mapped_column(String(16), default=ChunkStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    msgid: Mapped[str] = mapped_column(String(128), default="")  # WeCom's msgid / moment jobid
    fail_list: Mapped[list[str]] = mapped_column(JSON, default=list)
    confirm_status: Mapped[str] = mapped_column(String(16), default="")  # unconfirmed / confirmed / cancelled
    error: Mapped[str] = mapped_column(Text, default="")
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    results_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


def in_chunk(chunk: BroadcastChunk) -> ColumnElement[bool]:
    """The chunk's recipient rows: its broadcast's positions first … last (a range of the primary key)."""
    r = BroadcastRecipient
    return and_(r.broadcast_id == chunk.broadcast_id, r.position.between(chunk.first_position, chunk.last_position))


# Recipient rows joined to their chunk (for a join from either side).
CHUNK_OF_RECIPIENT = and_(
    BroadcastRecipient.broadcast_id == BroadcastChunk.broadcast_id,
    BroadcastRecipient.position.between(BroadcastChunk.first_position, BroadcastChunk.last_position),
)

# "The row was sent", written as a literal: the customer index (ix_broadcast_recipient_sent) is partial on
# it, and neither SQLite nor a generic PostgreSQL plan can use a partial index for a bound parameter.
IS_SENT: ColumnElement[bool] = BroadcastRecipient.status == literal_column("'sent'")
