"""Writing a customer's timeline: one row per thing that happened, in the caller's transaction.

Callbacks, syncs and console edits all record here. The sync's and the mirror's recorders
are set-based (a fixed number of statements per page, whatever its size); callbacks diff
a small before/after snapshot of one customer's follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ColumnElement, and_, insert, literal, select
from sqlalchemy.orm import Session

from siyu.contacts.models import Customer, Employee, Follow
from siyu.core.clock import now_utc
from siyu.groups.models import GroupChat
from siyu.sync.bulk import chunks
from siyu.tags.models import FollowTag, Tag
from siyu.timeline.models import CustomerEvent

EVENT = CustomerEvent.__table__


class EventKind(StrEnum):
    FOLLOW_ADDED = "follow_added"
    FOLLOW_ENDED = "follow_ended"
    REMARK_CHANGED = "remark_changed"
    TAGS_CHANGED = "tags_changed"
    JOINED_GROUP = "joined_group"
    LEFT_GROUP = "left_group"


def do_record_event(
    session: Session,
    *,
    corp_id: int,
    customer_id: int,
    kind: str,
    occurred_at: datetime,
    employee_id: int | None = None,
    actor: str = "",
    detail: dict[str, Any] | None = None,
) -> CustomerEvent:
    event = CustomerEvent(
        corp_id=corp_id,
        customer_id=customer_id,
        employee_id=employee_id,
        kind=kind,
        actor=actor,
        detail=detail or {},
        occurred_at=occurred_at,
    )
    session.add(event)
    session.flush()
    return event


# --- follows appearing and ending (mirror actions: sync and callbacks) -------------------------


def do_record_follows_added(session: Session, *, corp_id: int, follow_ids: Iterable[int], actor: str) -> int:
    """follow_added at WeCom's createtime for each follow that has none yet: two SELECTs + one INSERT a chunk.

    Keyed on (customer, employee) rather than on "this write inserted the row", so a sync
    after a callback (or a re-run) never records the same add twice. The recorded ones are
    read by an IN list on customer_id (an index probe), not an anti-join: PostgreSQL would
    hash-join against a sequential scan of the whole timeline on every page of a sync.
    """
    recorded = 0
    for part in chunks(sorted(set(follow_ids))):
        follows = session.execute(
            select(Follow.customer_id, Follow.employee_id, Follow.created_at, Follow.state, Follow.add_way).where(
                Follow.id.in_(part)
            )
        ).all()
        seen = _recorded_adds(session, {f.customer_id for f in follows})
        rows = [
            {
                "corp_id": corp_id,
                "customer_id": f.customer_id,
                "employee_id": f.employee_id,
                "kind": EventKind.FOLLOW_ADDED.value,
                "actor": actor,
                "detail": {"state": f.state, "add_way": f.add_way},
                "occurred_at": f.created_at or now_utc(),
            }
            for f in follows
            if (f.customer_id, f.employee_id) not in seen
        ]
        if rows:
            session.execute(insert(EVENT), rows)
            recorded += len(rows)
    return recorded


def _recorded_adds(session: Session, customer_ids: set[int]) -> set[tuple[int, int | None]]:
    if not customer_ids:
        return set()
    stmt = select(CustomerEvent.customer_id, CustomerEvent.employee_id).where(
        CustomerEvent.customer_id.in_(sorted(customer_ids)), CustomerEvent.kind == EventKind.FOLLOW_ADDED
    )
    return {(r.customer_id, r.employee_id) for r in session.execute(stmt)}


def do_record_follows_ended(
    session: Session, *, corp_id: int, where: ColumnElement[bool], cause: str, actor: str
) -> None:
    """follow_ended for every follow matching `where` (call it before the UPDATE that ends them)."""
    now = now_utc()
    source = select(
        Follow.corp_id,
        Follow.customer_id,
        Follow.employee_id,
        literal(EventKind.FOLLOW_ENDED.value),
        literal(actor),
        literal({"cause": cause}, type_=JSON),
        literal(now, type_=CustomerEvent.occurred_at.type),
    ).where(Follow.corp_id == corp_id, where)
    columns = ["corp_id", "customer_id", "employee_id", "kind", "actor", "detail", "occurred_at"]
    session.execute(insert(EVENT).from_select(columns, source))


# --- edits seen through callbacks ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowState:
    customer_id: int
    employee_id: int
    remark: str
    description: str
    tag_ids: frozenset[int]


def follow_states(session: Session, *, corp_id: int, external_userid: str) -> dict[int, FollowState]:
    """One customer's follows (remark, description, tags), to diff around a callback's re-fetch."""
    follows = session.execute(
        select(Follow.id, Follow.customer_id, Follow.employee_id, Follow.remark, Follow.description)
        .join(Customer, Customer.id == Follow.customer_id)
        .where(Customer.corp_id == corp_id, Customer.external_userid == external_userid)
    ).all()
    tags: dict[int, set[int]] = {f.id: set() for f in follows}
    if follows:
        for follow_id, tag_id in session.execute(
            select(FollowTag.follow_id, FollowTag.tag_id).where(FollowTag.follow_id.in_(list(tags)))
        ):
            tags[follow_id].add(tag_id)
    return {
        f.id: FollowState(f.customer_id, f.employee_id, f.remark, f.description, frozenset(tags[f.id])) for f in follows
    }


def do_record_follow_changes(
    session: Session,
    *,
    corp_id: int,
    before: dict[int, FollowState],
    after: dict[int, FollowState],
    occurred_at: datetime | None,
    actor: str = "wecom",
) -> int:
    """remark_changed / tags_changed for follows present before and after (new ones get follow_added)."""
    when = occurred_at or now_utc()
    names = _tag_names(session, {t for s in (*before.values(), *after.values()) for t in s.tag_ids})
    recorded = 0
    for follow_id, new in after.items():
        old = before.get(follow_id)
        if old is None:
            continue
        for kind, detail in _follow_diff(old, new, names):
            do_record_event(
                session,
                corp_id=corp_id,
                customer_id=new.customer_id,
                employee_id=new.employee_id,
                kind=kind,
                occurred_at=when,
                actor=actor,
                detail=detail,
            )
            recorded += 1
    return recorded


def _follow_diff(old: FollowState, new: FollowState, names: dict[int, str]) -> list[tuple[str, dict[str, Any]]]:
    changes: list[tuple[str, dict[str, Any]]] = []
    if (old.remark, old.description) != (new.remark, new.description):
        detail = {"remark": new.remark, "old_remark": old.remark}
        if old.description != new.description:
            detail["description"] = new.description
        changes.append((EventKind.REMARK_CHANGED, detail))
    if old.tag_ids != new.tag_ids:
        changes.append(
            (EventKind.TAGS_CHANGED, tag_change_detail(new.tag_ids - old.tag_ids, old.tag_ids - new.tag_ids, names))
        )
    return changes


def tag_change_detail(added: Iterable[int], removed: Iterable[int], names: dict[int, str]) -> dict[str, Any]:
    """Names as well as ids: the timeline must still read well after a tag is deleted."""
    return {
        "added": [names.get(t, str(t)) for t in sorted(added)],
        "removed": [names.get(t, str(t)) for t in sorted(removed)],
        "added_ids": sorted(added),
        "removed_ids": sorted(removed),
    }


def _tag_names(session: Session, tag_ids: set[int]) -> dict[int, str]:
    if not tag_ids:
        return {}
    return dict(session.execute(select(Tag.id, Tag.name).where(Tag.id.in_(sorted(tag_ids)))).all())


# --- groups ---------------------------------------------------------------------------------------


def do_record_group_membership(
    session: Session,
    *,
    corp_id: int,
    chat_id: str,
    member_userids: Sequence[str],
    joined: bool,
    occurred_at: datetime | None,
) -> int:
    """joined_group / left_group for the customers among a group's changed members (employees are skipped)."""
    if not member_userids:
        return 0
    group = session.execute(
        select(GroupChat.name, Employee.id)
        .outerjoin(Employee, and_(Employee.corp_id == GroupChat.corp_id, Employee.userid == GroupChat.owner_userid))
        .where(GroupChat.corp_id == corp_id, GroupChat.chat_id == chat_id)
    ).first()
    customers = session.scalars(
        select(Customer.id).where(Customer.corp_id == corp_id, Customer.external_userid.in_(list(member_userids)))
    ).all()
    kind = EventKind.JOINED_GROUP if joined else EventKind.LEFT_GROUP
    detail = {"chat_id": chat_id, "group_name": group.name if group else ""}
    rows = [
        {
            "corp_id": corp_id,
            "customer_id": customer_id,
            "employee_id": group[1] if group else None,
            "kind": kind.value,
            "actor": "wecom",
            "detail": detail,
            "occurred_at": occurred_at or now_utc(),
        }
        for customer_id in customers
    ]
    if rows:
        session.execute(insert(EVENT), rows)
    return len(rows)
