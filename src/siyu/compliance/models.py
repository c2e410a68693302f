"""What the policy engine reads and writes: per-corp policy, opt-outs, complaint signals, pauses."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.core.clock import now_utc
from siyu.core.db import Base, BigId, UtcDateTime


class PlatformCap(StrEnum):
    """How WeCom limits enterprise mass messages per customer; WeCom has changed this, so it is a setting."""

    DAYS_IN_MONTH = "days_in_month"  # 1 per day, as many per month as the month has days (current rule)
    WEEKLY_7 = "weekly_7"  # 1 per day, 7 per rolling week
    DAILY_1 = "daily_1"  # 1 per day
    MONTHLY_4 = "monthly_4"  # the old rule: 4 per calendar month


class ReachPolicy(Base):
    """One row per corp; missing means the defaults in `compliance.policy.DEFAULT_POLICY`."""

    __tablename__ = "reach_policy"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), primary_key=True)
    platform_cap: Mapped[str] = mapped_column(String(24), default=PlatformCap.DAYS_IN_MONTH)
    # The corp's own caps across all campaigns: [{"count": 2, "days": 7}, …]; most restrictive wins.
    corp_caps: Mapped[list[dict[str, int]]] = mapped_column(JSON, default=list)
    quiet_start: Mapped[str] = mapped_column(String(5), default="21:00")  # corp-local HH:MM; "" = none
    quiet_end: Mapped[str] = mapped_column(String(5), default="08:00")
    sensitive_words: Mapped[list[str]] = mapped_column(JSON, default=list)  # added to the defaults
    link_allowlist: Mapped[list[str]] = mapped_column(JSON, default=list)  # host suffixes
    # {"warn_per_10k": 3, "pause_per_10k": 10, "min_messages": 200, "window_days": 7, …}
    complaint_thresholds: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    moments_eligible: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str] = mapped_column(String(128), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc, onupdate=now_utc)


class OptOut(Base):
    """A customer who does not want broadcasts; excluded from every plan, with where it came from."""

    __tablename__ = "opt_out"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # employee / reply / console / api / import
    recorded_by: Mapped[str] = mapped_column(String(128), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    broadcast_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # the message it followed, if any
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)


class SignalKind(StrEnum):
    COMPLAINT = "complaint"  # an explicit complaint (recorded by an employee, the console or the API)
    DELETED_AFTER_MESSAGE = "deleted_after_message"  # the customer deleted the employee within 48 h
    OPTED_OUT_AFTER_MESSAGE = "opted_out_after_message"


class ComplaintSignal(Base):
    """One sign that a message was unwelcome, attributed to a broadcast, an employee and the corp."""

    __tablename__ = "complaint_signal"
    __table_args__ = (
        Index("ix_complaint_signal_corp_at", "corp_id", "occurred_at"),
        Index("ix_complaint_signal_broadcast", "broadcast_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="SET NULL"), nullable=True)
    employee_id: Mapped[int | None] = mapped_column(ForeignKey("employee.id", ondelete="SET NULL"), nullable=True)
    broadcast_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)


class ReachPause(Base):
    """An employee or a broadcast stopped from sending (by the complaint monitor or a person) until lifted."""

    __tablename__ = "reach_pause"
    __table_args__ = (Index("ix_reach_pause_target", "corp_id", "scope", "target_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(16))  # employee / broadcast
    target_id: Mapped[int] = mapped_column(BigId)
    reason: Mapped[str] = mapped_column(Text, default="")
    rate_per_10k: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)
    lifted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    lifted_by: Mapped[str] = mapped_column(String(128), default="")
