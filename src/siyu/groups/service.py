"""Reads of customer groups: a keyset page with member counts (one GROUP BY), and one group's members."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, group_scope, require
from siyu.contacts.models import Employee
from siyu.groups.models import GroupChat, GroupMember
from siyu.groups.schemas import JOIN_SCENES, GroupChatDetail, GroupChatPage, GroupChatRead, GroupMemberRead

MAX_LIMIT = 200
EMPLOYEE_MEMBER, CUSTOMER_MEMBER = 1, 2
# A WeCom group holds at most 2,000 members; the detail lists them all.
MAX_MEMBERS = 2000


def _employee_names(session: Session, corp_id: int, userids: set[str]) -> dict[str, str]:
    if not userids:
        return {}
    stmt = select(Employee.userid, Employee.name).where(
        Employee.corp_id == corp_id, Employee.userid.in_(sorted(userids))
    )
    return {userid: name for userid, name in session.execute(stmt)}


def _member_counts(session: Session, chat_ids: list[int]) -> dict[tuple[int, int], int]:
    if not chat_ids:
        return {}
    stmt = (
        select(GroupMember.group_chat_id, GroupMember.member_type, func.count())
        .where(GroupMember.group_chat_id.in_(chat_ids))
        .group_by(GroupMember.group_chat_id, GroupMember.member_type)
    )
    return {(chat, kind): int(n) for chat, kind, n in session.execute(stmt)}


def _read(chat: GroupChat, counts: dict[tuple[int, int], int], names: dict[str, str]) -> GroupChatRead:
    return GroupChatRead(
        id=chat.id,
        chat_id=chat.chat_id,
        name=chat.name,
        owner_userid=chat.owner_userid,
        owner_name=names.get(chat.owner_userid, chat.owner_userid),
        internal_members=counts.get((chat.id, EMPLOYEE_MEMBER), 0),
        external_members=counts.get((chat.id, CUSTOMER_MEMBER), 0),
        status=chat.status,
        created_at=chat.created_at,
    )


def list_(
    session: Session,
    *,
    actor: Actor,
    status: str | None = None,
    owner: str | None = None,
    q: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> GroupChatPage:
    """Groups in the actor's scope, newest first (keyset on id)."""
    require(actor, "group_chat", "read")
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = select(GroupChat).where(group_scope(actor)).order_by(GroupChat.id.desc()).limit(limit + 1)
    if status:
        stmt = stmt.where(GroupChat.status == status)
    if owner:
        stmt = stmt.where(GroupChat.owner_userid == owner)
    if q:
        stmt = stmt.where(GroupChat.name.ilike(f"%{q.strip()}%"))
    if after is not None:
        stmt = stmt.where(GroupChat.id < after)
    rows = list(session.scalars(stmt))
    page, more = rows[:limit], len(rows) > limit
    counts = _member_counts(session, [c.id for c in page])
    names = _employee_names(session, actor.corp_id, {c.owner_userid for c in page})
    return GroupChatPage(items=[_read(c, counts, names) for c in page], next_after=page[-1].id if more else None)


def get_detail(session: Session, *, actor: Actor, chat: GroupChat) -> GroupChatDetail:
    members = list(
        session.scalars(
            select(GroupMember)
            .where(GroupMember.group_chat_id == chat.id)
            .order_by(GroupMember.member_type, GroupMember.join_time, GroupMember.id)
            .limit(MAX_MEMBERS)
        )
    )
    userids = {chat.owner_userid} | {m.invitor_userid for m in members if m.invitor_userid}
    userids |= {m.userid for m in members if m.member_type == EMPLOYEE_MEMBER}
    names = _employee_names(session, actor.corp_id, userids)
    base = _read(chat, _member_counts(session, [chat.id]), names)
    return GroupChatDetail(
        **base.model_dump(),
        notice=chat.notice,
        members=[_member(m, names) for m in members],
    )


def _member(m: GroupMember, names: dict[str, str]) -> GroupMemberRead:
    return GroupMemberRead(
        userid=m.userid,
        name=m.name or names.get(m.userid, m.userid),
        group_nickname=m.group_nickname,
        type="employee" if m.member_type == EMPLOYEE_MEMBER else "customer",
        customer_id=m.customer_id,
        join_time=m.join_time,
        join_scene=m.join_scene,
        join_scene_label=JOIN_SCENES.get(m.join_scene, "unknown"),
        invitor_userid=m.invitor_userid,
        invitor_name=names.get(m.invitor_userid, m.invitor_userid),
    )
