"""Corp tag groups and tags (企业标签), mirrored from WeCom both ways, and the tags on each follow."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.core.db import Base, BigId, UtcDateTime


class TagGroup(Base):
    __tablename__ = "tag_group"
    __table_args__ = (UniqueConstraint("corp_id", "wecom_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    wecom_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    order: Mapped[int] = mapped_column(BigId, default=0)
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Tag(Base):
    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("corp_id", "wecom_id"), Index("ix_tag_group", "group_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("tag_group.id", ondelete="CASCADE"))
    wecom_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    order: Mapped[int] = mapped_column(BigId, default=0)
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class FollowTag(Base):
    __tablename__ = "follow_tag"
    # (tag_id, follow_id): the customers page's tag filters read it index-only.
    __table_args__ = (Index("ix_follow_tag_tag", "tag_id", "follow_id"),)

    follow_id: Mapped[int] = mapped_column(ForeignKey("follow.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), index=True)
