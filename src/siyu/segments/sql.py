"""A rule as one SQL boolean over `Customer`: the reference truth, and the engine's fallback.

Every condition is a column test or an EXISTS subquery correlated on the customer, so AND / OR / NOT
compose as plain boolean logic (no joins that multiply or drop rows), and every id is a bound parameter.
Only the department subtree is resolved in Python first (the tree lives in JSON columns).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, not_, or_, select, true
from sqlalchemy.orm import Session, aliased

from siyu.acquisition.models import Channel
from siyu.broadcasts.models import IS_SENT, BroadcastRecipient
from siyu.compliance.models import OptOut
from siyu.contacts.departments import department_subtree, employees_in
from siyu.contacts.models import Customer, Employee, Follow, FollowStatus
from siyu.core import clock
from siyu.corp.models import Corp
from siyu.groups.models import GroupChat, GroupMember
from siyu.segments.models import CustomerField
from siyu.segments.rules import (
    And,
    CondAdded,
    CondChannel,
    CondCorpName,
    CondCustomerType,
    CondField,
    CondFollowStatus,
    CondGender,
    CondInGroup,
    Condition,
    CondLastBroadcast,
    CondOptedOut,
    CondOwner,
    CondTags,
    Node,
    Not,
    Or,
    Rule,
)
from siyu.tags.models import FollowTag

ACTIVE = FollowStatus.ACTIVE.value
DEFAULT_ZONE = "Asia/Shanghai"


def rule_clause(session: Session, *, corp_id: int, rule: Rule | Node) -> ColumnElement[bool]:
    """The corp's customers matching the rule, as a WHERE clause over Customer."""
    root = rule.root if isinstance(rule, Rule) else rule
    return and_(Customer.corp_id == corp_id, node_clause(session, corp_id, root))


def customer_ids_select(session: Session, *, corp_id: int, rule: Rule | Node) -> Select[tuple[int]]:
    """SELECT customer.id … ORDER BY id for the rule."""
    return select(Customer.id).where(rule_clause(session, corp_id=corp_id, rule=rule)).order_by(Customer.id)


def count(session: Session, *, corp_id: int, rule: Rule | Node) -> int:
    stmt = select(func.count()).select_from(Customer).where(rule_clause(session, corp_id=corp_id, rule=rule))
    return int(session.scalar(stmt) or 0)


def node_clause(session: Session, corp_id: int, node: Node) -> ColumnElement[bool]:
    if isinstance(node, And):
        return and_(*(node_clause(session, corp_id, item) for item in node.items))
    if isinstance(node, Or):
        return or_(*(node_clause(session, corp_id, item) for item in node.items))
    if isinstance(node, Not):
        # every clause is two-valued (EXISTS, NOT NULL columns), so NOT is exact
        return not_(node_clause(session, corp_id, node.item))
    return condition_clause(session, corp_id, node)


def condition_clause(session: Session, corp_id: int, cond: Condition) -> ColumnElement[bool]:
    if isinstance(cond, CondTags):
        return _tags(corp_id, cond)
    if isinstance(cond, CondGender):
        return Customer.gender.in_(cond.values)
    if isinstance(cond, CondCustomerType):
        return Customer.type.in_(cond.values)
    if isinstance(cond, CondCorpName):
        return func.lower(Customer.corp_name).contains(cond.contains.lower(), autoescape=True)
    if isinstance(cond, CondOwner):
        return _follow_exists(corp_id, owner_clause(session, corp_id, cond, Follow.employee_id), active=True)
    if isinstance(cond, CondChannel):
        return _follow_exists(corp_id, channel_clause(corp_id, cond, Follow.channel_id), active=False)
    if isinstance(cond, CondAdded):
        return _follow_exists(corp_id, added_clause(cond, corp_zone(session, corp_id)), active=False)
    if isinstance(cond, CondFollowStatus):
        active = _follow_exists(corp_id, true(), active=True)
        if cond.status == "active":
            return active
        return and_(_follow_exists(corp_id, true(), active=False), not_(active))
    if isinstance(cond, CondInGroup):
        return _in_group(corp_id, cond)
    if isinstance(cond, CondField):
        return _field(corp_id, cond)
    if isinstance(cond, CondOptedOut):
        opted = exists(select(OptOut.customer_id).where(OptOut.customer_id == Customer.id, OptOut.corp_id == corp_id))
        return opted if cond.value else not_(opted)
    if isinstance(cond, CondLastBroadcast):
        return _last_broadcast(session, corp_id, cond)
    raise TypeError(f"not a condition: {cond!r}")


def _follow_exists(corp_id: int, where: ColumnElement[bool], *, active: bool) -> ColumnElement[bool]:
    conds = [Follow.customer_id == Customer.id, Follow.corp_id == corp_id, where]
    if active:
        conds.append(Follow.status == ACTIVE)
    return exists(select(Follow.id).where(*conds))


def employee_ids_select(corp_id: int, userids: tuple[str, ...]) -> Select[tuple[int]]:
    return select(Employee.id).where(Employee.corp_id == corp_id, Employee.userid.in_(userids))


def owner_clause(session: Session, corp_id: int, cond: CondOwner, column: ColumnElement[int]) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = []
    if cond.employees:
        parts.append(column.in_(employee_ids_select(corp_id, cond.employees)))
    if cond.departments:
        ids = department_employee_ids(session, corp_id, cond.departments)
        parts.append(column.in_(sorted(ids)) if ids else false())
    return or_(*parts)


def department_employee_ids(session: Session, corp_id: int, departments: tuple[int, ...]) -> set[int]:
    """Our employee ids in the departments or any department below them."""
    subtree = department_subtree(session, corp_id=corp_id, roots=departments)
    return employees_in(session, corp_id=corp_id, department_ids=subtree)


def channel_ids_select(corp_id: int, cond: CondChannel) -> Select[tuple[int]]:
    """The corp's channel ids named by the condition (directly or through their group)."""
    return select(Channel.id).where(
        Channel.corp_id == corp_id, or_(Channel.id.in_(cond.channels), Channel.group_id.in_(cond.groups))
    )


def channel_clause(corp_id: int, cond: CondChannel, column: ColumnElement[int | None]) -> ColumnElement[bool]:
    return column.in_(channel_ids_select(corp_id, cond))


def corp_zone(session: Session, corp_id: int) -> ZoneInfo:
    """The corp's time zone (days in rules are its calendar days); Asia/Shanghai when unset or unknown."""
    corp = session.get(Corp, corp_id)
    try:
        return ZoneInfo((corp.timezone if corp is not None else "") or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def local_today(session: Session, corp_id: int) -> date:
    return clock.now_utc().astimezone(corp_zone(session, corp_id)).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a corp-local day begins (DST-safe: midnight in the zone, then converted)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def added_clause(cond: CondAdded, zone: ZoneInfo) -> ColumnElement[bool]:
    """Follow.created_at within the corp-local days [from, to]."""
    parts: list[ColumnElement[bool]] = [Follow.created_at.is_not(None)]
    if cond.from_ is not None:
        parts.append(Follow.created_at >= day_start(cond.from_, zone))
    if cond.to is not None:
        parts.append(Follow.created_at < day_start(cond.to + timedelta(days=1), zone))
    return and_(*parts)


def last_broadcast_range(session: Session, corp_id: int, cond: CondLastBroadcast) -> tuple[date | None, date | None]:
    """The [lowest, highest] last-received day the condition accepts (None = open); not for `never`."""
    if cond.before is not None:
        return None, cond.before - timedelta(days=1)
    if cond.after is not None:
        return cond.after + timedelta(days=1), None
    assert cond.within_days is not None
    return local_today(session, corp_id) - timedelta(days=cond.within_days - 1), None


def _last_broadcast(session: Session, corp_id: int, cond: CondLastBroadcast) -> ColumnElement[bool]:
    """On the customer's latest send_day among sent recipient rows: max <= hi is "none later than hi"."""

    def sent(*where: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists(
            select(BroadcastRecipient.position).where(
                BroadcastRecipient.customer_id == Customer.id,
                BroadcastRecipient.corp_id == corp_id,
                IS_SENT,
                BroadcastRecipient.send_day.is_not(None),
                *where,
            )
        )

    if cond.never:
        return not_(sent())
    lo, hi = last_broadcast_range(session, corp_id, cond)
    if hi is not None:
        return and_(sent(), not_(sent(BroadcastRecipient.send_day > hi)))
    assert lo is not None
    return sent(BroadcastRecipient.send_day >= lo)


def _field(corp_id: int, cond: CondField) -> ColumnElement[bool]:
    where = [CustomerField.customer_id == Customer.id, CustomerField.corp_id == corp_id, CustomerField.key == cond.key]
    if cond.equals is not None:
        where.append(CustomerField.value == cond.equals)
    elif cond.in_ is not None:
        where.append(CustomerField.value.in_(cond.in_))
    elif cond.contains is not None:
        where.append(func.lower(CustomerField.value).contains(cond.contains.lower(), autoescape=True))
    has = exists(select(CustomerField.id).where(*where))
    return not_(has) if cond.exists is False else has


def _tags(corp_id: int, cond: CondTags) -> ColumnElement[bool]:
    f = aliased(Follow)
    on_follow = [f.customer_id == Customer.id, f.corp_id == corp_id, f.status == ACTIVE]
    if cond.employee is not None:
        on_follow.append(f.employee_id.in_(employee_ids_select(corp_id, (cond.employee,))))

    def tagged(tag_ids: tuple[int, ...]) -> ColumnElement[bool]:
        return exists(select(FollowTag.follow_id).where(FollowTag.follow_id == f.id, FollowTag.tag_id.in_(tag_ids)))

    if cond.mode == "all":
        if cond.employee is not None:
            # all on that one follow
            return exists(select(f.id).where(*on_follow, *(tagged((t,)) for t in cond.tag_ids)))
        # each tag on some active follow, possibly different ones
        return and_(*(exists(select(f.id).where(*on_follow, tagged((t,)))) for t in cond.tag_ids))
    has_any = exists(select(f.id).where(*on_follow, tagged(cond.tag_ids)))
    return has_any if cond.mode == "any" else not_(has_any)


def _in_group(corp_id: int, cond: CondInGroup) -> ColumnElement[bool]:
    where = [GroupMember.customer_id == Customer.id, GroupMember.corp_id == corp_id]
    if cond.chat_ids:
        chats = select(GroupChat.id).where(GroupChat.corp_id == corp_id, GroupChat.chat_id.in_(cond.chat_ids))
        where.append(GroupMember.group_chat_id.in_(chats))
    return exists(select(GroupMember.id).where(*where))
