"""Reading customers: the filtered, keyset-paged list (console, REST, export) and one customer's detail.

Every query starts from `customer_scope(actor)`. The list walks one index in sort order
((corp_id, added_at, id), (corp_id, name, id) or the id) and tests each candidate with
correlated EXISTS probes (follow, follow_tag by their indexes), so a page costs about
`limit / selectivity` probes and never a sort of the whole corp; pages continue from an
opaque (sort key, id) cursor, never OFFSET. The page's follows and tags are then read in
two queries for its 50 ids.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    false,
    func,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

from siyu.accounts.access import Actor, access_customer_by_id, can, customer_scope, employee_scope
from siyu.acquisition.service import channel_of_follows
from siyu.contacts.cursor import decode_cursor, encode_cursor
from siyu.contacts.departments import department_subtree, employees_in
from siyu.contacts.models import (
    Customer,
    CustomerExport,
    Department,
    Employee,
    ExportStatus,
    Follow,
    FollowStatus,
    mask_mobile,
)
from siyu.contacts.schemas import (
    CustomerFilters,
    CustomerPage,
    CustomerRead,
    CustomerRow,
    ExportRead,
    FollowBrief,
    FollowRead,
    Sort,
    TagBrief,
    TagMode,
    TagSync,
)
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp.models import Corp
from siyu.outbox.models import WeComOutbox
from siyu.tags.models import FollowTag, Tag, TagGroup
from siyu.timeline.models import CustomerEvent

MAX_PAGE = 200
# Up to this many candidate follows, sort their customers instead of walking the corp (see _candidates).
SMALL_SET = 20000
# Up to this many, the candidate ids are materialized (a hash of few ids probing customers by key).
FEW = 5000
# Above this many follow_tag rows a tag is left to the walk rather than probed follow by follow.
TAG_PROBES = 40000
# WeCom's add_way codes (externalcontact/get follow_user.add_way); labels are msgids for the console.
ADD_WAYS = {
    0: "Unknown source",
    1: "Scanned a QR code",
    2: "Searched a mobile number",
    3: "Shared business card",
    4: "Group chat",
    5: "Phone contacts",
    6: "WeChat contacts",
    8: "Auto-added customer service",
    9: "Searched an email",
    10: "WeChat Channels",
    11: "Schedule participant",
    12: "Meeting participant",
    13: "WeChat friend's WeCom",
    14: "Smart hardware customer service",
    15: "On-site service",
    16: "Acquisition link",
    17: "Custom development",
    18: "Demand reply",
    201: "Shared by a colleague",
    202: "Assigned by an admin",
}
_SORT_COLUMNS: dict[Sort, tuple[InstrumentedAttribute[Any] | None, bool]] = {
    Sort.ADDED_DESC: (Customer.added_at, True),
    Sort.ADDED: (Customer.added_at, False),
    Sort.NAME: (Customer.name, False),
    Sort.NAME_DESC: (Customer.name, True),
    Sort.ID: (None, False),
    Sort.ID_DESC: (None, True),
}
_PHONE = re.compile(r"^\+?[\d\s-]{3,}$")


# --- the list ----------------------------------------------------------------------------------


def list_(
    session: Session, *, actor: Actor, filters: CustomerFilters, after: str | None = None, limit: int = 50
) -> CustomerPage:
    customers, next_cursor = _page(session, actor, filters, after, max(1, min(limit, MAX_PAGE)))
    return CustomerPage(items=_rows(session, actor, customers), next_cursor=next_cursor)


def page_rows(
    session: Session, *, actor: Actor, filters: CustomerFilters, after: str | None, limit: int
) -> tuple[list[CustomerRow], str | None]:
    """One keyset batch of any size (exports walk the whole list with it, in bounded memory)."""
    customers, next_cursor = _page(session, actor, filters, after, max(1, limit))
    return _rows(session, actor, customers), next_cursor


def count_(session: Session, *, actor: Actor, filters: CustomerFilters) -> int:
    where = _where(session, actor, filters)
    return int(session.scalar(select(func.count()).select_from(Customer).where(*where)) or 0)


def list_statement(
    session: Session, *, actor: Actor, filters: CustomerFilters, after: str | None, limit: int
) -> Select[tuple[Customer]]:
    """The page query itself (the benchmark EXPLAINs it)."""
    column, descending = _SORT_COLUMNS[filters.sort]
    candidates = _candidates(session, actor, filters)
    if candidates is None:
        stmt = select(Customer).where(*_where(session, actor, filters))
    else:
        ids, covered = candidates
        if len(ids) <= FEW:
            # Materialized, so the planner sorts these few customers instead of walking the corp's sort
            # index and filtering by the array (2,000 ids: 75 → 13 ms).
            listed = select(func.unnest(_id_array("candidate_ids", ids)).label("id")).cte("candidates")
            in_set = Customer.id.in_(select(listed.prefix_with("MATERIALIZED").c.id))
        else:
            # More: an index scan of the sorted ids (a materialized set would be hash-joined with a scan
            # of every customer: 18,600 ids, 30 → 150 ms).
            in_set = Customer.id == any_(_id_array("candidate_ids", ids))
        stmt = select(Customer).where(in_set, *_where(session, actor, filters, covered=covered))
    if after:
        stmt = stmt.where(_after(filters.sort, column, descending, after))
    keys = [Customer.id] if column is None else [column, Customer.id]
    return stmt.order_by(*(k.desc() if descending else k.asc() for k in keys)).limit(limit)


def _page(
    session: Session, actor: Actor, filters: CustomerFilters, after: str | None, limit: int
) -> tuple[list[Customer], str | None]:
    stmt = list_statement(session, actor=actor, filters=filters, after=after, limit=limit + 1)
    customers = list(session.scalars(stmt))
    if len(customers) <= limit:
        return customers, None
    column, _ = _SORT_COLUMNS[filters.sort]
    return customers[:limit], _cursor(filters.sort, column, customers[limit - 1])


def _cursor(sort: Sort, column: InstrumentedAttribute[Any] | None, last: Customer) -> str:
    if column is None:
        return encode_cursor(sort, last.id)
    value = getattr(last, column.key)
    return encode_cursor(sort, value.isoformat() if isinstance(value, datetime) else value, last.id)


def _after(sort: Sort, column: InstrumentedAttribute[Any] | None, descending: bool, cursor: str) -> ColumnElement[bool]:
    values = decode_cursor(cursor, sort)
    try:
        if column is None:
            (last_id,) = values
            return Customer.id < int(last_id) if descending else Customer.id > int(last_id)
        key, last_id = values
        value: Any = datetime.fromisoformat(str(key)) if column is Customer.added_at else str(key)
        keyset = tuple_(column, Customer.id)
        return keyset < (value, int(last_id)) if descending else keyset > (value, int(last_id))
    except (ValueError, TypeError) as exc:
        raise DomainError(ErrorCode.INVALID, "after: malformed cursor") from exc


# --- filters -----------------------------------------------------------------------------------


def _where(
    session: Session, actor: Actor, f: CustomerFilters, *, covered: frozenset[str] = frozenset()
) -> list[ColumnElement[bool]]:
    """The page's conditions; `covered` names those an exact candidate id set already guarantees."""
    if "scope" in covered:
        clauses: list[ColumnElement[bool]] = [Customer.corp_id == actor.corp_id]
    else:
        clauses = [customer_scope(actor)]
    follow_conditions = _follow_conditions(session, actor, f)
    if follow_conditions is None:
        return [false()]
    if follow_conditions and "follow" not in covered:
        clauses.append(exists().where(_visible_follow(actor), *follow_conditions))
    if "tags" not in covered:
        clauses.extend(_tag_clauses(actor, f))
    if f.q:
        clauses.append(_search(actor, f.q, probe="small" in covered))
    if f.added_to:
        # Implied, not extra: a customer with a follow added before the end was itself added before it
        # (added_at is its earliest follow). It lets the newest-first walk start at the range's end
        # instead of stepping over every later customer (3.4 s → ms at 1M).
        clauses.append(Customer.added_at < _end_of(f.added_to, _corp_zone(session, actor.corp_id)))
    return clauses


def _candidates(session: Session, actor: Actor, f: CustomerFilters) -> tuple[set[int], frozenset[str]] | None:
    """On PostgreSQL, the exact ids of the customers meeting the follow-side conditions, when few; or None.

    Walking the sort index and probing each customer is fast while matches are dense, and slow when
    they are rare: a staff member's 1,500 follows among 1M customers meant stepping over ~30,000
    customers (0.5 s), a department leader (~155,000 follows) with a rare tag over 100,000 (1.7 s).
    So each follow-side set — the scope with the follow filters, each tag's follows in the scope — is
    read (customer ids only, capped at SMALL_SET + 1 follows). The small ones are intersected in Python;
    the result is exactly the customers meeting those conditions, so the page query only sorts those
    ids and leaves out the EXISTS probes they cover (`covered`). The planner cannot see this from its
    estimates.
    """
    if session.get_bind().dialect.name != "postgresql":
        return None
    if _follow_conditions(session, actor, f) is None:
        return None
    found: set[int] | None = None
    covered: set[str] = set()
    scoped = _scope_set(session, actor, f)
    if scoped is not None:
        found = scoped
        covered |= {"scope", "follow"}
    if f.tag_ids and f.tag_mode != TagMode.NONE:
        tag_sets = [[t] for t in sorted(set(f.tag_ids))] if f.tag_mode == TagMode.ALL else [sorted(set(f.tag_ids))]
        all_small = True
        for tags in tag_sets:
            tagged = _tagged_set(session, actor, tags, within=found)
            if tagged is None:
                all_small = False
                continue
            found = tagged if found is None else found & tagged
            covered.add("scope")
        if all_small:
            covered.add("tags")
    if found is None:
        return None
    if actor.scope_employee_ids is not None and "scope" not in covered:
        return None  # cannot happen: every set above is read within the scope
    return found, frozenset(covered | {"small"})


def _capped(
    session: Session, stmt: Select[tuple[int]], cap: int = SMALL_SET, *, count_first: bool = False
) -> set[int] | None:
    """The ids stmt yields, or None when more than cap rows.

    count_first: count (index-only) before reading, when the set is often too large (a leader's scope:
    reading 20,001 ids for nothing cost 20 ms a page).
    """
    if count_first:
        counted = select(func.count()).select_from(stmt.limit(cap + 1).subquery())
        if int(session.scalar(counted) or 0) > cap:
            return None
        return set(session.scalars(stmt))
    rows = session.scalars(stmt.limit(cap + 1)).all()
    return None if len(rows) > cap else set(rows)


def _scope_set(session: Session, actor: Actor, f: CustomerFilters) -> set[int] | None:
    """Customers with a follow in the scope meeting the follow filters (None: none of those, or too many)."""
    conditions = _follow_conditions(session, actor, f) or []
    if actor.scope_employee_ids is None:
        if not conditions:
            return None
        where = [Follow.corp_id == actor.corp_id, *conditions]
        cap = FEW  # the whole corp's walk is dense unless the filters are rare: don't read 20,000 ids for nothing
    else:
        # The scope's employees are the corp's: no corp_id test, so the (employee_id, …) indexes answer alone.
        where = [Follow.employee_id.in_(sorted(actor.scope_employee_ids)), *conditions]
        cap = SMALL_SET
    stmt = select(Follow.customer_id).where(*where)
    return _capped(session, stmt, cap, count_first=actor.scope_employee_ids is not None)


def _tagged_set(session: Session, actor: Actor, tags: list[int], within: set[int] | None) -> set[int] | None:
    """Customers with a follow in the scope carrying one of these tags (None: too many to be worth it).

    When the scope is large, the tag's follow_tag rows drive (each probes its follow by key, OFFSET 0
    keeps the probe a nested loop): a hash join would read all ~155,000 follows of a leader's scope.
    A small scope (`within` already found) drives from its own follows instead.
    """
    scope = [] if actor.scope_employee_ids is None else [Follow.employee_id.in_(sorted(actor.scope_employee_ids))]
    if within is not None:
        stmt = select(Follow.customer_id).join(FollowTag, FollowTag.follow_id == Follow.id)
        stmt = stmt.where(
            Follow.customer_id == any_(_id_array("within_ids", within)), FollowTag.tag_id.in_(tags), *scope
        )
        return _capped(session, stmt)
    # No corp_id tests, so both the count and the probe are index-only: tag and scope ids are the corp's,
    # and the page query keeps customer.corp_id.
    tag_rows = select(FollowTag.follow_id).where(FollowTag.tag_id.in_(tags))
    # Too many tagged follows to probe one by one: leave the tag to the walk (it is dense enough there).
    count = select(func.count()).select_from(tag_rows.limit(TAG_PROBES + 1).subquery())
    if int(session.scalar(count) or 0) > TAG_PROBES:
        return None
    ft = tag_rows.subquery("ft")
    probe = select(Follow.customer_id).where(Follow.id == ft.c.follow_id, *scope).offset(0).lateral("f")
    return _capped(session, select(probe.c.customer_id).select_from(ft).join(probe, true()))


def _id_array(name: str, ids: set[int]) -> BindParameter[list[int]]:
    return bindparam(name, sorted(ids), type_=ARRAY(BigInteger))


def _visible_follow(actor: Actor) -> ColumnElement[bool]:
    """This customer's follows the actor may see (staff: the employees in their scope)."""
    mine = Follow.customer_id == Customer.id
    if actor.scope_employee_ids is None:
        return mine
    return and_(mine, Follow.employee_id.in_(sorted(actor.scope_employee_ids)))


def _follow_conditions(session: Session, actor: Actor, f: CustomerFilters) -> list[ColumnElement[bool]] | None:
    """Conditions one follow must meet together; None when no follow can (an empty employee set)."""
    conditions: list[ColumnElement[bool]] = []
    employees = _employee_filter(session, actor, f)
    if employees is not None:
        if not employees:
            return None
        conditions.append(Follow.employee_id.in_(sorted(employees)))
    if f.added_from or f.added_to:
        zone = _corp_zone(session, actor.corp_id)
        if f.added_from:
            conditions.append(Follow.created_at >= datetime.combine(f.added_from, time(), zone))
        if f.added_to:
            conditions.append(Follow.created_at < _end_of(f.added_to, zone))
    if f.status == "ended":
        conditions.append(Follow.status != FollowStatus.ACTIVE)
    elif f.status:
        conditions.append(Follow.status == f.status)
    return conditions


def _end_of(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), zone)


def _employee_filter(session: Session, actor: Actor, f: CustomerFilters) -> set[int] | None:
    """The employees the follow must belong to (explicit ids ∩ department subtree ∩ scope), or None: any."""
    chosen: set[int] | None = set(f.employee_ids) if f.employee_ids else None
    if f.department_id is not None:
        in_department = department_employee_ids(session, corp_id=actor.corp_id, department_id=f.department_id)
        chosen = in_department if chosen is None else chosen & in_department
    if chosen is not None and actor.scope_employee_ids is not None:
        chosen &= actor.scope_employee_ids
    return chosen


def department_employee_ids(session: Session, *, corp_id: int, department_id: int) -> set[int]:
    """Employees in a department or any of its sub-departments (department ids are WeCom's)."""
    tree = department_subtree(session, corp_id=corp_id, roots=[department_id])
    return employees_in(session, corp_id=corp_id, department_ids=tree)


def _tag_clauses(actor: Actor, f: CustomerFilters) -> list[ColumnElement[bool]]:
    if not f.tag_ids:
        return []
    tag_ids = sorted(set(f.tag_ids))
    if f.tag_mode == TagMode.ALL:
        return [_has_tag(actor, [t], probe=True) for t in tag_ids]
    if f.tag_mode == TagMode.NONE:
        return [~_has_tag(actor, tag_ids)]
    return [_has_tag(actor, tag_ids)]


def _has_tag(actor: Actor, tag_ids: Sequence[int], *, probe: bool = False) -> ColumnElement[bool]:
    """One of the customer's visible follows carries one of these tags.

    Nested EXISTS (follow by customer, then follow_tag by its (follow_id, tag_id) key) so that
    SQLite, too, probes from the customer instead of scanning every follow_tag row of the tag.
    """
    condition = FollowTag.tag_id == tag_ids[0] if len(tag_ids) == 1 else FollowTag.tag_id.in_(tag_ids)
    tagged = exists().where(FollowTag.follow_id == Follow.id, condition)
    if not probe:
        return exists().where(_visible_follow(actor), tagged)
    # OFFSET 0 keeps it a correlated probe: PostgreSQL would otherwise semi-join each tag with a hash of
    # every follow of a leader's scope (~155,000) and scan the customers (tag all, leader: 1.0 → 0.4 s).
    return exists(select(Follow.id).where(_visible_follow(actor), tagged).offset(0))


def _search(actor: Actor, q: str, *, probe: bool = False) -> ColumnElement[bool]:
    """Name or follow remark contains q; a phone-like q matches the remark mobiles' digits instead.

    Text: walk the sort index and probe each candidate's follows. OFFSET 0 keeps PostgreSQL from
    turning the correlated probe into a hashed subplan, which scans every follow of the corp
    (1.5M rows: ~4x slower at 1M customers, bench/customers_page.py). Digits: a match is rare,
    so the walk would visit the whole corp; one scan of the follows (semi-join) is bounded instead.
    """
    like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if _PHONE.match(q) and probe:
        # Few candidates (an exact small id set): probe each one's follows instead of scanning them all.
        digits = re.sub(r"\D", "", q)
        in_follow = or_(Follow.remark.ilike(like, escape="\\"), cast(Follow.remark_mobiles, Text).like(f"%{digits}%"))
        return or_(Customer.name.ilike(like, escape="\\"), exists().where(_visible_follow(actor), in_follow))
    if _PHONE.match(q):
        digits = re.sub(r"\D", "", q)
        # remark_mobiles is a JSON list of digit strings; its text form keeps each number's digits together.
        in_follow = or_(Follow.remark.ilike(like, escape="\\"), cast(Follow.remark_mobiles, Text).like(f"%{digits}%"))
        followed = select(Follow.customer_id).where(Follow.corp_id == actor.corp_id, in_follow)
        if actor.scope_employee_ids is not None:
            followed = followed.where(Follow.employee_id.in_(sorted(actor.scope_employee_ids)))
        named = select(Customer.id).where(Customer.corp_id == actor.corp_id, Customer.name.ilike(like, escape="\\"))
        return Customer.id.in_(union_all(named, followed))
    remark = select(Follow.id).where(_visible_follow(actor), Follow.remark.ilike(like, escape="\\")).offset(0)
    return or_(Customer.name.ilike(like, escape="\\"), exists(remark))


def _corp_zone(session: Session, corp_id: int) -> ZoneInfo:
    name = session.scalar(select(Corp.timezone).where(Corp.corp_id == corp_id)) or "Asia/Shanghai"
    return ZoneInfo(name)


# --- rows: follows and tags of one page ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FollowRow:
    id: int
    customer_id: int
    employee_id: int
    employee_name: str
    remark: str
    remark_mobiles: list[str]
    status: str
    created_at: datetime | None
    ended_at: datetime | None


def _rows(session: Session, actor: Actor, customers: Sequence[Customer]) -> list[CustomerRow]:
    follows = _follows_of(session, actor, [c.id for c in customers])
    tags = _tags_of(session, [f.id for fs in follows.values() for f in fs])
    rows = []
    for c in customers:
        mine = follows.get(c.id, [])
        seen: dict[int, TagBrief] = {}
        for f in mine:
            seen.update((t.id, t) for t in tags.get(f.id, []))
        rows.append(
            CustomerRow(
                id=c.id,
                external_userid=c.external_userid,
                name=c.name,
                avatar=c.avatar,
                type=c.type,
                added_at=c.added_at,
                status=customer_status([(f.status, f.ended_at) for f in mine]),
                follows=[
                    FollowBrief(
                        id=f.id,
                        employee_id=f.employee_id,
                        employee_name=f.employee_name,
                        remark=f.remark,
                        remark_mobiles=[mask_mobile(m) for m in f.remark_mobiles or []],
                        status=f.status,
                        created_at=f.created_at,
                    )
                    for f in mine
                ],
                tags=list(seen.values()),
            )
        )
    return rows


def _follows_of(session: Session, actor: Actor, customer_ids: list[int]) -> dict[int, list[_FollowRow]]:
    if not customer_ids:
        return {}
    stmt = (
        select(
            Follow.id,
            Follow.customer_id,
            Follow.employee_id,
            Employee.name,
            Follow.remark,
            Follow.remark_mobiles,
            Follow.status,
            Follow.created_at,
            Follow.ended_at,
        )
        .join(Employee, Employee.id == Follow.employee_id)
        .where(Follow.customer_id.in_(customer_ids), Follow.corp_id == actor.corp_id)
        .order_by(Follow.customer_id, Follow.created_at, Follow.id)
    )
    if actor.scope_employee_ids is not None:
        stmt = stmt.where(Follow.employee_id.in_(sorted(actor.scope_employee_ids)))
    found: dict[int, list[_FollowRow]] = {}
    for row in session.execute(stmt):
        found.setdefault(row.customer_id, []).append(_FollowRow(*row))
    return found


def _tags_of(session: Session, follow_ids: list[int]) -> dict[int, list[TagBrief]]:
    if not follow_ids:
        return {}
    stmt = (
        select(FollowTag.follow_id, Tag.id, Tag.name, TagGroup.name)
        .join(Tag, Tag.id == FollowTag.tag_id)
        .join(TagGroup, TagGroup.id == Tag.group_id)
        .where(FollowTag.follow_id.in_(follow_ids))
        .order_by(TagGroup.order.desc(), TagGroup.id, Tag.order.desc(), Tag.id)
    )
    found: dict[int, list[TagBrief]] = {}
    for follow_id, tag_id, name, group_name in session.execute(stmt):
        found.setdefault(follow_id, []).append(TagBrief(id=tag_id, name=name, group_name=group_name))
    return found


def customer_status(follows: Sequence[tuple[str, datetime | None]]) -> str:
    """active while any follow is; otherwise how the last one ended ('none': no follow visible)."""
    if not follows:
        return "none"
    if any(status == FollowStatus.ACTIVE for status, _ in follows):
        return FollowStatus.ACTIVE.value
    epoch = datetime.min.replace(tzinfo=UTC)
    return max(follows, key=lambda f: f[1] or epoch)[0]


# --- one customer ------------------------------------------------------------------------------


def get(session: Session, *, actor: Actor, customer_id: int) -> CustomerRead:
    customer = access_customer_by_id(session, actor, customer_id)
    stmt = (
        select(Follow, Employee.userid, Employee.name)
        .join(Employee, Employee.id == Follow.employee_id)
        .where(Follow.customer_id == customer.id, Follow.corp_id == actor.corp_id)
        .order_by(Follow.created_at, Follow.id)
    )
    if actor.scope_employee_ids is not None:
        stmt = stmt.where(Follow.employee_id.in_(sorted(actor.scope_employee_ids)))
    rows = session.execute(stmt).all()
    tags = _tags_of(session, [f.id for f, _, _ in rows])
    channels = channel_of_follows(session, [f.id for f, _, _ in rows if f.channel_id])
    syncs = _tag_syncs(session, customer.id)
    writable = can(actor, "customer", "write")
    follows = [
        FollowRead(
            id=f.id,
            employee_id=f.employee_id,
            employee_userid=userid,
            employee_name=name,
            remark=f.remark,
            description=f.description,
            remark_corp_name=f.remark_corp_name,
            remark_mobiles=[mask_mobile(m) for m in f.remark_mobiles or []],
            add_way=f.add_way,
            add_way_label=ADD_WAYS.get(f.add_way, "Other"),
            state=f.state,
            channel_id=f.channel_id,
            channel_name=channels.get(f.id),
            created_at=f.created_at,
            status=f.status,
            ended_at=f.ended_at,
            tags=tags.get(f.id, []),
            editable=writable and f.status == FollowStatus.ACTIVE,
            tag_sync=syncs.get(f.employee_id),
        )
        for f, userid, name in rows
    ]
    return CustomerRead(
        id=customer.id,
        external_userid=customer.external_userid,
        name=customer.name,
        avatar=customer.avatar,
        type=customer.type,
        gender=customer.gender,
        position=customer.position,
        corp_name=customer.corp_name,
        corp_full_name=customer.corp_full_name,
        added_at=customer.added_at,
        status=customer_status([(f.status, f.ended_at) for f in follows]),
        follows=follows,
    )


def _tag_syncs(session: Session, customer_id: int) -> dict[int, TagSync]:
    """The latest console tag edit per follow (by employee) and the state of its outbox row.

    The tags_changed event of a console edit carries its outbox id, so this reads the
    customer's own recent events (indexed) instead of searching the outbox's JSON payloads.
    """
    events = session.execute(
        select(CustomerEvent.employee_id, CustomerEvent.detail)
        .where(CustomerEvent.customer_id == customer_id, CustomerEvent.kind == "tags_changed")
        .order_by(CustomerEvent.occurred_at.desc(), CustomerEvent.id.desc())
        .limit(50)
    ).all()
    latest: dict[int, int] = {}
    for employee_id, detail in events:
        outbox_id = (detail or {}).get("outbox_id")
        if employee_id is not None and outbox_id and employee_id not in latest:
            latest[employee_id] = int(outbox_id)
    if not latest:
        return {}
    rows = {r.id: r for r in session.scalars(select(WeComOutbox).where(WeComOutbox.id.in_(list(latest.values()))))}
    return {
        emp: TagSync(outbox_id=r.id, status=r.status, error=r.error, sent_at=r.sent_at)
        for emp, oid in latest.items()
        if (r := rows.get(oid)) is not None
    }


# --- choices for the filters and the tag editor ---------------------------------------------------


def tag_groups(session: Session, *, corp_id: int) -> list[tuple[TagGroup, list[Tag]]]:
    groups = list(
        session.scalars(
            select(TagGroup).where(TagGroup.corp_id == corp_id).order_by(TagGroup.order.desc(), TagGroup.id)
        )
    )
    tags = session.scalars(select(Tag).where(Tag.corp_id == corp_id).order_by(Tag.order.desc(), Tag.id))
    by_group: dict[int, list[Tag]] = {}
    for tag in tags:
        by_group.setdefault(tag.group_id, []).append(tag)
    return [(g, by_group.get(g.id, [])) for g in groups]


def employee_choices(session: Session, *, actor: Actor, limit: int = 2000) -> list[tuple[int, str]]:
    stmt = select(Employee.id, Employee.name, Employee.userid).where(employee_scope(actor)).order_by(Employee.name)
    return [(pk, name or userid) for pk, name, userid in session.execute(stmt.limit(limit))]


def department_choices(session: Session, *, corp_id: int) -> list[tuple[int, str]]:
    stmt = select(Department.wecom_id, Department.name).where(Department.corp_id == corp_id)
    ordered = stmt.order_by(Department.parent_wecom_id, Department.order, Department.wecom_id)
    return [(wecom_id, name) for wecom_id, name in session.execute(ordered)]


# --- exports -----------------------------------------------------------------------------------


def get_export(session: Session, *, actor: Actor, export_id: int) -> CustomerExport:
    """Only the user who started an export may see or download it (it holds their scope's data)."""
    export = session.get(CustomerExport, export_id)
    if export is None or export.corp_id != actor.corp_id or export.user_id != actor.user_id:
        raise DomainError(ErrorCode.NOT_FOUND, f"no export {export_id}")
    return export


def export_read(export: CustomerExport, *, download_url: str) -> ExportRead:
    total = export.total or 0
    percent = 100 if export.status == ExportStatus.DONE else (min(99, export.done * 100 // total) if total else 0)
    return ExportRead(
        id=export.id,
        status=export.status,
        total=export.total,
        done=export.done,
        percent=percent,
        error=export.error,
        created_at=export.created_at,
        finished_at=export.finished_at,
        download_url=download_url if export.status == ExportStatus.DONE else None,
    )
