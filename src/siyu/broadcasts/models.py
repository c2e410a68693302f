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

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
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
    """One customer (or group chat) of a planned broadcast; the frozen audience, with the outcome."""

    __tablename__ = "broadcast_recipient"
    __table_args__ = (
        # one row per customer (or chat) of a broadcast; partial, because NULLs never collide in a unique key
        Index(
            "uq_broadcast_recipient_customer",
            "broadcast_id",
            "customer_id",
            unique=True,
            postgresql_where=text("customer_id IS NOT NULL"),
            sqlite_where=text("customer_id IS NOT NULL"),
        ),
        Index(
            "uq_broadcast_recipient_chat",
            "broadcast_id",
            "chat_id",
            unique=True,
            postgresql_where=text("chat_id IS NOT NULL"),
            sqlite_where=text("chat_id IS NOT NULL"),
        ),
        Index("ix_broadcast_recipient_caps", "corp_id", "customer_id", "send_day"),
        # a group's slots (group broadcasts); partial, so customer rows cost it nothing
        Index(
            "ix_broadcast_recipient_chat",
            "chat_id",
            "send_day",
            postgresql_where=text("chat_id IS NOT NULL"),
            sqlite_where=text("chat_id IS NOT NULL"),
        ),
        Index("ix_broadcast_recipient_chunk", "chunk_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign keys: PostgreSQL checks one per inserted row, and the broadcast's alone more than doubled
    # the time to write a million-recipient plan (docs/benchmarks.md (f)). Rows are written only by the
    # planner, in the transaction that holds their broadcast (same corp); whoever deletes a broadcast
    # deletes its recipients (nothing does today).
    corp_id: Mapped[int] = mapped_column(Integer)
    broadcast_id: Mapped[int] = mapped_column(BigId)
    customer_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # customer broadcasts
    chat_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # group broadcasts (group_chat.id)
    employee_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # the sender chosen at plan time
    chunk_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
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
