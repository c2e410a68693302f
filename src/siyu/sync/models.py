"""Sync runs with their checkpoints, so a crashed sync resumes where it stopped."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.core.clock import now_utc
from siyu.core.db import Base, BigId, UtcDateTime


class SyncStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class SyncRun(Base):
    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_corp_status", "corp_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=SyncStatus.RUNNING)
    checkpoint: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    stats: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
