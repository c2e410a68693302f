"""A customer's timeline: everything that happened to them, newest first in the console."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from siyu.core.db import Base, BigId, UtcDateTime


class CustomerEvent(Base):
    """kind: follow_added, follow_ended, remark_changed, tags_changed, joined_group, left_group, …"""

    __tablename__ = "customer_event"
    __table_args__ = (
        Index("ix_customer_event_customer", "customer_id", "occurred_at"),
        # "has this follow's add been recorded?" — probed once per new follow by the sync and callbacks
        Index("ix_customer_event_follow_kind", "customer_id", "employee_id", "kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    employee_id: Mapped[int | None] = mapped_column(ForeignKey("employee.id", ondelete="SET NULL"), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
