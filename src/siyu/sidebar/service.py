"""Reads for the sidebar: who the employee is (as an actor), and the customer in front of them.

The sidebar's actor is always a *staff* actor for the employee WeCom vouched for (OAuth or a
signed link), with exactly the data scope a staff console user linked to that employee has: the
customers they follow, widened to the departments they lead. If a console user is linked to the
employee, the actor carries that user's id and name, so audit rows say who acted; but never that
user's role — an admin who opens the sidebar in WeCom proved who they are to WeCom, not to siyu,
so the sidebar must not become a way into the whole corp. Without a linked user the actor is
ephemeral (user id 0): nothing is stored for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, access_follow, actor_for, customer_scope, require
from siyu.accounts.models import ConsoleUser, Role
from siyu.acquisition.service import channel_of_follows
from siyu.contacts.models import Customer, Employee, EmployeeStatus, Follow, FollowStatus, mask_mobile
from siyu.core.errors import DomainError, ErrorCode
from siyu.tags.models import FollowTag, Tag, TagGroup
from siyu.timeline import service as timeline_service

TIMELINE_LIMIT = 20


@dataclass(frozen=True, slots=True)
class SidebarActor(Actor):
    """A staff actor acting through the sidebar; audit rows name the employee and the channel."""

    @property
    def label(self) -> str:
        who = f"user:{self.user_id}:{self.username}" if self.user_id else f"employee:{self.username}"
        return f"sidebar:{who}"


def actor_for_employee(session: Session, *, corp_id: int, employee_id: int) -> SidebarActor:
    """The staff actor for an active employee of the corp; anyone else is refused."""
    employee = session.get(Employee, employee_id)
    if employee is None or employee.corp_id != corp_id or employee.status != EmployeeStatus.ACTIVE:
        raise DomainError(ErrorCode.UNAUTHORIZED, "this employee may not use the sidebar")
    linked = session.scalar(
        select(ConsoleUser)
        .where(ConsoleUser.corp_id == corp_id, ConsoleUser.employee_id == employee_id, ConsoleUser.is_active)
        .order_by(ConsoleUser.id)
        .limit(1)
    )
    as_staff = ConsoleUser(
        id=linked.id if linked is not None else 0,
        corp_id=corp_id,
        username=linked.username if linked is not None else employee.userid,
        role=Role.STAFF,
        employee_id=employee_id,
    )
    base = actor_for(session, as_staff)
    return SidebarActor(base.user_id, base.corp_id, base.username, base.role, base.employee_id, base.scope_employee_ids)


def employee_by_userid(session: Session, *, corp_id: int, userid: str) -> Employee | None:
    return session.scalar(select(Employee).where(Employee.corp_id == corp_id, Employee.userid == userid))


def employee_name(session: Session, *, employee_id: int) -> str:
    employee = session.get(Employee, employee_id)
    return (employee.name or employee.userid) if employee is not None else ""


# --- the customer in front of the employee --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagChip:
    id: int
    name: str
    group: str


@dataclass(slots=True)
class FollowView:
    id: int
    employee_name: str
    mine: bool
    remark: str
    description: str
    mobiles: list[str]
    status: str
    created_at: datetime | None
    channel_name: str | None = None
    tags: list[TagChip] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status == FollowStatus.ACTIVE

    @property
    def tag_ids(self) -> set[int]:
        return {t.id for t in self.tags}


@dataclass(frozen=True, slots=True)
class TimelineItem:
    kind: str
    occurred_at: datetime
    employee_name: str
    detail: dict[str, object]


@dataclass(slots=True)
class CustomerCard:
    customer: Customer
    follows: list[FollowView]
    timeline: list[TimelineItem]


def access_customer_by_external_userid(session: Session, actor: Actor, external_userid: str) -> Customer:
    """The sidebar learns the customer as WeCom names it; the same scope and not-found as by id."""
    require(actor, "customer", "read")
    customer = session.scalar(
        select(Customer).where(Customer.external_userid == external_userid, customer_scope(actor))
    )
    if customer is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no customer {external_userid}")
    return customer


def get_card(session: Session, actor: Actor, *, external_userid: str) -> CustomerCard:
    customer = access_customer_by_external_userid(session, actor, external_userid)
    return CustomerCard(customer, _follows(session, actor, customer.id), _timeline(session, actor, customer.id))


def _follows(session: Session, actor: Actor, customer_id: int) -> list[FollowView]:
    """The customer's follows the actor may see: their own first, then active before ended."""
    stmt = (
        select(Follow, Employee.name, Employee.userid)
        .join(Employee, Employee.id == Follow.employee_id)
        .where(Follow.customer_id == customer_id, Follow.corp_id == actor.corp_id)
    )
    if actor.scope_employee_ids is not None:
        stmt = stmt.where(Follow.employee_id.in_(sorted(actor.scope_employee_ids)))
    views = [
        FollowView(
            id=f.id,
            employee_name=name or userid,
            mine=f.employee_id == actor.employee_id,
            remark=f.remark,
            description=f.description,
            mobiles=[mask_mobile(m) for m in f.remark_mobiles or []],
            status=f.status,
            created_at=f.created_at,
        )
        for f, name, userid in session.execute(stmt)
    ]
    views.sort(key=lambda v: (not v.mine, not v.active, v.id))
    _attach_tags(session, views)
    channels = channel_of_follows(session, [v.id for v in views])
    for view in views:
        view.channel_name = channels.get(view.id)
    return views


def _attach_tags(session: Session, views: list[FollowView]) -> None:
    by_id = {v.id: v for v in views}
    if not by_id:
        return
    rows = session.execute(
        select(FollowTag.follow_id, Tag.id, Tag.name, TagGroup.name)
        .join(Tag, Tag.id == FollowTag.tag_id)
        .join(TagGroup, TagGroup.id == Tag.group_id)
        .where(FollowTag.follow_id.in_(list(by_id)))
        .order_by(TagGroup.order, TagGroup.id, Tag.order, Tag.id)
    )
    for follow_id, tag_id, tag_name, group_name in rows:
        by_id[follow_id].tags.append(TagChip(tag_id, tag_name, group_name))


def _timeline(session: Session, actor: Actor, customer_id: int) -> list[TimelineItem]:
    entries, _next = timeline_service.list_(session, actor=actor, customer_id=customer_id, limit=TIMELINE_LIMIT)
    return [
        TimelineItem(e.event.kind, e.event.occurred_at, e.employee_name, dict(e.event.detail or {})) for e in entries
    ]


def follow_view(session: Session, actor: Actor, *, follow_id: int) -> FollowView:
    """One follow as the sidebar shows it (after an edit)."""
    follow = access_follow(session, actor, follow_id)
    return next(v for v in _follows(session, actor, follow.customer_id) if v.id == follow.id)


def tag_catalogue(session: Session, *, corp_id: int) -> list[tuple[str, list[TagChip]]]:
    """Every corp tag by group, in WeCom's order: what the tag editor offers (a corp has hundreds, not millions)."""
    groups: dict[int, tuple[str, list[TagChip]]] = {}
    rows = session.execute(
        select(TagGroup.id, TagGroup.name, Tag.id, Tag.name)
        .join(Tag, Tag.group_id == TagGroup.id)
        .where(TagGroup.corp_id == corp_id)
        .order_by(TagGroup.order, TagGroup.id, Tag.order, Tag.id)
    )
    for group_id, group_name, tag_id, tag_name in rows:
        groups.setdefault(group_id, (group_name, []))[1].append(TagChip(tag_id, tag_name, group_name))
    return list(groups.values())
