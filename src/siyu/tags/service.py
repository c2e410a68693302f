"""Reads of corp tag groups and tags, with how many follows carry each tag in the reader's scope."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, require
from siyu.contacts.models import Follow
from siyu.tags.models import FollowTag, Tag, TagGroup
from siyu.tags.schemas import TagGroupRead, TagRead

# Local rows created in siyu carry this placeholder until WeCom returns their real id.
PENDING_PREFIX = "pending:"


def is_pending(wecom_id: str) -> bool:
    return wecom_id.startswith(PENDING_PREFIX)


def count_tagged(session: Session, *, actor: Actor, tag_ids: list[int]) -> dict[int, int]:
    """Tagged follows per tag: one GROUP BY over follow_tag's tag index (joined to follow only for staff)."""
    if not tag_ids:
        return {}
    stmt = select(FollowTag.tag_id, func.count()).where(FollowTag.tag_id.in_(tag_ids)).group_by(FollowTag.tag_id)
    if actor.scope_employee_ids is not None:
        stmt = stmt.join(Follow, Follow.id == FollowTag.follow_id).where(
            Follow.employee_id.in_(sorted(actor.scope_employee_ids))
        )
    return {tag_id: int(n) for tag_id, n in session.execute(stmt)}


def tag_read(tag: Tag, counts: dict[int, int]) -> TagRead:
    pending = is_pending(tag.wecom_id)
    return TagRead(
        id=tag.id,
        group_id=tag.group_id,
        wecom_id=None if pending else tag.wecom_id,
        name=tag.name,
        order=tag.order,
        customers=counts.get(tag.id, 0),
        syncing=pending,
    )


def group_read(group: TagGroup, tags: list[Tag], counts: dict[int, int]) -> TagGroupRead:
    pending = is_pending(group.wecom_id)
    return TagGroupRead(
        id=group.id,
        wecom_id=None if pending else group.wecom_id,
        name=group.name,
        order=group.order,
        syncing=pending,
        tags=[tag_read(t, counts) for t in tags],
    )


def list_groups(session: Session, *, actor: Actor) -> list[TagGroupRead]:
    """Every tag group of the corp with its tags, WeCom's order (larger first), then oldest first."""
    require(actor, "tag", "read")
    groups = list(
        session.scalars(
            select(TagGroup).where(TagGroup.corp_id == actor.corp_id).order_by(TagGroup.order.desc(), TagGroup.id)
        )
    )
    tags = list(session.scalars(select(Tag).where(Tag.corp_id == actor.corp_id).order_by(Tag.order.desc(), Tag.id)))
    counts = count_tagged(session, actor=actor, tag_ids=[t.id for t in tags])
    by_group: dict[int, list[Tag]] = {}
    for tag in tags:
        by_group.setdefault(tag.group_id, []).append(tag)
    return [group_read(g, by_group.get(g.id, []), counts) for g in groups]


def get_group(session: Session, *, actor: Actor, group: TagGroup) -> TagGroupRead:
    tags = list(session.scalars(select(Tag).where(Tag.group_id == group.id).order_by(Tag.order.desc(), Tag.id)))
    return group_read(group, tags, count_tagged(session, actor=actor, tag_ids=[t.id for t in tags]))


def get_tag(session: Session, *, actor: Actor, tag: Tag) -> TagRead:
    return tag_read(tag, count_tagged(session, actor=actor, tag_ids=[tag.id]))


def name_taken_in_group(session: Session, *, group_id: int, name: str, except_id: int | None = None) -> bool:
    stmt = select(Tag.id).where(Tag.group_id == group_id, Tag.name == name)
    if except_id is not None:
        stmt = stmt.where(Tag.id != except_id)
    return session.scalar(stmt.limit(1)) is not None


def group_name_taken(session: Session, *, corp_id: int, name: str, except_id: int | None = None) -> bool:
    stmt = select(TagGroup.id).where(TagGroup.corp_id == corp_id, TagGroup.name == name)
    if except_id is not None:
        stmt = stmt.where(TagGroup.id != except_id)
    return session.scalar(stmt.limit(1)) is not None
