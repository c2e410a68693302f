"""Departments, employees (成员), customers (外部联系人) and follows (跟进关系 = employee × customer)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from siyu.core.clock import now_utc
from siyu.core.db import Base, BigId, UtcDateTime


class EmployeeStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    INACTIVE = "inactive"
    RESIGNED = "resigned"


class FollowStatus(StrEnum):
    ACTIVE = "active"
    CUSTOMER_DELETED_EMPLOYEE = "customer_deleted_employee"
    EMPLOYEE_DELETED_CUSTOMER = "employee_deleted_customer"
    TRANSFERRED = "transferred"
    # Gone from WeCom without a callback telling why: a full sync no longer lists it.
    REMOVED = "removed"


class Department(Base):
    __tablename__ = "department"
    __table_args__ = (UniqueConstraint("corp_id", "wecom_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    wecom_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    parent_wecom_id: Mapped[int] = mapped_column(Integer, default=0)
    order: Mapped[int] = mapped_column(BigId, default=0)
    leaders: Mapped[list[str]] = mapped_column(JSON, default=list)


class Employee(Base):
    __tablename__ = "employee"
    __table_args__ = (UniqueConstraint("corp_id", "userid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    userid: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    department_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    main_department: Mapped[int] = mapped_column(Integer, default=0)
    position: Mapped[str] = mapped_column(String(128), default="")
    gender: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=EmployeeStatus.ACTIVE)
    # Whether WeCom lists this employee as having the customer-contact permission.
    is_follow_user: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc, onupdate=now_utc)


class Customer(Base):
    """A customer; `id` is dense and global so segments can index it with bitmaps."""

    __tablename__ = "customer"
    __table_args__ = (
        UniqueConstraint("corp_id", "external_userid"),
        Index("ix_customer_corp_unionid", "corp_id", "unionid"),
        # The customers page walks these in order (keyset pagination) for each sort.
        Index("ix_customer_corp_added", "corp_id", "added_at", "id"),
        Index("ix_customer_corp_name", "corp_id", "name", "id"),
        Index("ix_customer_corp_id", "corp_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    external_userid: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    type: Mapped[int] = mapped_column(Integer, default=1)
    avatar: Mapped[str] = mapped_column(String(512), default="")
    gender: Mapped[int] = mapped_column(Integer, default=0)
    unionid: Mapped[str] = mapped_column(String(64), default="")
    position: Mapped[str] = mapped_column(String(128), default="")
    corp_name: Mapped[str] = mapped_column(String(128), default="")
    corp_full_name: Mapped[str] = mapped_column(String(255), default="")
    external_profile: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    # The channel of the customer's first attributed follow (first touch); never overwritten.
    first_channel_id: Mapped[int | None] = mapped_column(ForeignKey("channel.id", ondelete="SET NULL"), nullable=True)
    # When the first employee added this customer (the earliest follow createtime; siyu's insert time
    # until a follow says otherwise): the customers page sorts by it, so it is a column, not a min().
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc, server_default=func.current_timestamp())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc, onupdate=now_utc)


class Follow(Base):
    """One employee following one customer. remark_mobiles are personal data: mask them in UI and logs."""

    __tablename__ = "follow"
    __table_args__ = (
        UniqueConstraint("corp_id", "employee_id", "customer_id"),
        Index("ix_follow_customer", "customer_id"),
        Index("ix_follow_corp_status", "corp_id", "status"),
        # Customers page: staff scope / employee filter, and the added-date range filter.
        Index("ix_follow_employee_customer", "employee_id", "customer_id"),
        Index("ix_follow_corp_created", "corp_id", "created_at"),
        # A scoped actor (a leader's ~100 employees) with a date range or status: index-only candidate sets.
        Index("ix_follow_employee_created", "employee_id", "created_at", "customer_id"),
        Index("ix_follow_employee_status", "employee_id", "status", "customer_id"),
        # A tag's follows probed by key for their employee and customer without reading the table.
        Index("ix_follow_id_employee_customer", "id", "employee_id", "customer_id"),
        # the dashboard's "lost today" and 30-day trend
        Index("ix_follow_corp_ended", "corp_id", "ended_at"),
        # channel funnels: a channel's follows by day, covering what the funnel counts (index-only on SQLite)
        Index("ix_follow_channel_created", "channel_id", "created_at", "employee_id", "status", "ended_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    remark: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    remark_corp_name: Mapped[str] = mapped_column(String(128), default="")
    remark_mobiles: Mapped[list[str]] = mapped_column(JSON, default=list)
    add_way: Mapped[int] = mapped_column(Integer, default=0)
    oper_userid: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(64), default="")
    # The channel code whose `state` WeCom reported for this follow (acquisition.attribution).
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channel.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(32), default=FollowStatus.ACTIVE)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The last sync run that saw this follow in WeCom; a complete run ends the follows it did not see.
    last_seen_run_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc, onupdate=now_utc)


def mask_mobile(mobile: str) -> str:
    """138****0001: enough to recognise, not enough to dial."""
    if len(mobile) < 7:
        return "*" * len(mobile)
    return f"{mobile[:3]}{'*' * (len(mobile) - 7)}{mobile[-4:]}"


class ExportStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class CustomerExport(Base):
    """A CSV export of a filtered customer list, written by a task; only its creator may download it."""

    __tablename__ = "customer_export"
    __table_args__ = (Index("ix_customer_export_user", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_user.id", ondelete="CASCADE"))
    # The list filters as the API takes them (CustomerFilters.model_dump), re-applied with the user's scope.
    filters: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=ExportStatus.PENDING)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    done: Mapped[int] = mapped_column(Integer, default=0)
    file_name: Mapped[str] = mapped_column(String(255), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
