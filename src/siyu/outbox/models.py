"""The WeCom outbox: every change siyu makes in WeCom is a stored row, sent by id.

A crash or a retry re-sends the same row, never a second one; the row records attempts,
the last error and when it was sent, which the console shows.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.core.clock import now_utc
from siyu.core.db import Base, BigId, UtcDateTime


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class WeComOutbox(Base):
    __tablename__ = "wecom_outbox"
    __table_args__ = (Index("ix_wecom_outbox_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # mark_tag, add_corp_tag, edit_corp_tag, del_corp_tag, remark …
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
