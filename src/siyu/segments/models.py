"""Saved segments, frozen snapshots of their membership, and customer custom fields."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.core.clock import now_utc
from siyu.core.db import Base, BigId, UtcDateTime


class Segment(Base):
    """A named rule; the rule is evaluated when used, a snapshot freezes who matched."""

    __tablename__ = "segment"
    __table_args__ = (UniqueConstraint("corp_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[dict[str, object]] = mapped_column(JSON)
    rule_version: Mapped[int] = mapped_column(Integer, default=1)
    last_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc, onupdate=now_utc)


class SegmentSnapshot(Base):
    """Frozen membership: the rule as it was and the matching customer ids (a serialized roaring bitmap)."""

    __tablename__ = "segment_snapshot"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segment.id", ondelete="SET NULL"), nullable=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    rule: Mapped[dict[str, object]] = mapped_column(JSON)
    rule_version: Mapped[int] = mapped_column(Integer, default=1)
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    members: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)


class CustomerField(Base):
    """A corp-defined attribute of a customer (key → text value), set by import, API or console."""

    __tablename__ = "customer_field"
    __table_args__ = (
        UniqueConstraint("customer_id", "key"),
        Index("ix_customer_field_corp_key_value", "corp_id", "key", "value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc, onupdate=now_utc)


class SegmentIndexVersion(Base):
    """Per corp, how many committed changes the segment indexes have been told about.

    A transaction that changed what rules read bumps this row right before it commits (and writes
    the changed customer ids to `segment_change` with the new number). The row lock makes the
    numbers commit in order, so a process that has applied changes up to N and sees N + 3 here
    knows exactly which rows to read to catch up.
    """

    __tablename__ = "segment_index_version"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(BigId, default=0)


class SegmentChange(Base):
    """One customer whose rows changed in the commit numbered `version`; customer_id NULL = the whole corp.

    Pruned after a while (`segments.tasks`); a process that falls further behind rebuilds its index.
    """

    __tablename__ = "segment_change"
    __table_args__ = (Index("ix_segment_change_corp_version", "corp_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(BigId)
    customer_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)
