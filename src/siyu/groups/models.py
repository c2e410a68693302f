"""Customer groups (客户群) and their members."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.core.clock import now_utc
from siyu.core.db import Base, BigId, UtcDateTime


class GroupStatus(StrEnum):
    ACTIVE = "active"
    DISMISSED = "dismissed"


class GroupChat(Base):
    __tablename__ = "group_chat"
    __table_args__ = (UniqueConstraint("corp_id", "chat_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    owner_userid: Mapped[str] = mapped_column(String(64), default="")
    notice: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # WeCom's owner-left / inheritance state (groupchat/list status 0..3) or dismissed.
    wecom_status: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=GroupStatus.ACTIVE)
    member_version: Mapped[str] = mapped_column(String(64), default="")
    dismissed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The last sync run that listed this group; a complete run dismisses the groups it did not list.
    last_seen_run_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # Bumped by every real change, so a sync never dismisses a group a callback created while it ran.
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc, onupdate=now_utc)


class GroupMember(Base):
    """A member of a group: an employee (type 1) or a customer (type 2)."""

    __tablename__ = "group_member"
    __table_args__ = (
        UniqueConstraint("group_chat_id", "userid"),
        Index("ix_group_member_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), index=True)
    group_chat_id: Mapped[int] = mapped_column(ForeignKey("group_chat.id", ondelete="CASCADE"))
    userid: Mapped[str] = mapped_column(String(64))
    member_type: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="SET NULL"), nullable=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    group_nickname: Mapped[str] = mapped_column(String(128), default="")
    unionid: Mapped[str] = mapped_column(String(64), default="")
    join_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    join_scene: Mapped[int] = mapped_column(Integer, default=0)
    invitor_userid: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(64), default="")
