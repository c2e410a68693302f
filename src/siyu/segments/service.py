"""Reads over segments: live counts with a sample, the matching ids, saved segments, snapshots, CSV rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pyroaring import BitMap
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, customer_scope, require
from siyu.acquisition.models import Channel, ChannelGroup
from siyu.contacts.models import Customer, Department, Employee, Follow, mask_mobile
from siyu.groups.models import GroupChat
from siyu.segments import sql as rule_sql
from siyu.segments.engine import engine_for
from siyu.segments.models import Segment, SegmentSnapshot
from siyu.segments.rules import CondChannel, CondInGroup, CondOwner, CondTags, Rule, iter_conditions, parse_rule
from siyu.segments.schemas import SampleCustomer, SegmentRead, SnapshotRead
from siyu.tags.models import FollowTag, Tag

RuleInput = Rule | Mapping[str, Any] | str
OWNERS_SHOWN = 3
CSV_COLUMNS = ("id", "external_userid", "name", "gender", "type", "corp_name", "added_at", "owners", "mobiles", "tags")
CSV_BATCH = 1000


@dataclass(frozen=True)
class SegmentCount:
    count: int
    sample_customer_ids: list[int]
    # ids the rule names that the corp does not have, by kind ("tags", "channels", …); empty when none
    unknown_ids: dict[str, list[int | str]] = field(default_factory=dict)


def parse(rule: RuleInput) -> Rule:
    return rule if isinstance(rule, Rule) else parse_rule(dict(rule) if isinstance(rule, Mapping) else rule)


def count(session: Session, *, corp_id: int, rule: RuleInput, sample: int = 20) -> SegmentCount:
    """How many of the corp's customers match, the first `sample` ids, and the ids the rule names in vain."""
    parsed = parse(rule)
    ids = engine_for(session, corp_id).evaluate(session, parsed)
    return SegmentCount(len(ids), list(islice(ids, max(sample, 0))), unknown_ids(session, corp_id=corp_id, rule=parsed))


def customer_ids(session: Session, *, corp_id: int, rule: RuleInput) -> BitMap:
    """The matching customer ids (for snapshots, exports and broadcast plans)."""
    return engine_for(session, corp_id).evaluate(session, parse(rule))


def sql_count(session: Session, *, corp_id: int, rule: RuleInput) -> int:
    """The same count by one plain SQL query (the reference and the benchmark baseline)."""
    return rule_sql.count(session, corp_id=corp_id, rule=parse(rule))


def sql_customer_ids(session: Session, *, corp_id: int, rule: RuleInput) -> BitMap:
    return BitMap(session.scalars(rule_sql.customer_ids_select(session, corp_id=corp_id, rule=parse(rule))))


def unknown_ids(session: Session, *, corp_id: int, rule: Rule) -> dict[str, list[int | str]]:
    """Tags, channels, channel groups, employees, departments and chats the rule names but the corp lacks."""
    wanted: dict[str, set[Any]] = {k: set() for k in ("tags", "channels", "channel_groups", "employees")}
    wanted |= {"departments": set(), "chat_ids": set()}
    for cond in iter_conditions(rule.root):
        if isinstance(cond, CondTags):
            wanted["tags"].update(cond.tag_ids)
            if cond.employee is not None:
                wanted["employees"].add(cond.employee)
        elif isinstance(cond, CondChannel):
            wanted["channels"].update(cond.channels)
            wanted["channel_groups"].update(cond.groups)
        elif isinstance(cond, CondOwner):
            wanted["employees"].update(cond.employees)
            wanted["departments"].update(cond.departments)
        elif isinstance(cond, CondInGroup):
            wanted["chat_ids"].update(cond.chat_ids)
    columns = {
        "tags": (Tag.id, Tag.corp_id),
        "channels": (Channel.id, Channel.corp_id),
        "channel_groups": (ChannelGroup.id, ChannelGroup.corp_id),
        "employees": (Employee.userid, Employee.corp_id),
        "departments": (Department.wecom_id, Department.corp_id),
        "chat_ids": (GroupChat.chat_id, GroupChat.corp_id),
    }
    out: dict[str, list[int | str]] = {}
    for kind, values in wanted.items():
        if not values:
            continue
        column, corp_column = columns[kind]
        found = set(session.scalars(select(column).where(corp_column == corp_id, column.in_(sorted(values)))))
        if missing := sorted(values - found):
            out[kind] = missing
    return out


# ---- customers for people: samples and member pages ----------------------------------------------


def sample_customers(
    session: Session, *, corp_id: int, customer_ids: Sequence[int], actor: Actor | None = None
) -> list[SampleCustomer]:
    """The customers (in the order given) with their names and the employees following them; scoped to the actor."""
    if not customer_ids:
        return []
    where = [Customer.id.in_(list(customer_ids)), Customer.corp_id == corp_id]
    if actor is not None:
        where.append(customer_scope(actor))
    names = dict(session.execute(select(Customer.id, Customer.name).where(*where)).all())
    owners: dict[int, list[str]] = {}
    rows = session.execute(
        select(Follow.customer_id, Employee.name, Employee.userid)
        .join(Employee, Employee.id == Follow.employee_id)
        .where(Follow.customer_id.in_(list(names)), Follow.status == rule_sql.ACTIVE)
        .order_by(Follow.customer_id, Follow.id)
    )
    for customer_id, name, userid in rows:
        owners.setdefault(customer_id, []).append(name or userid)
    return [
        SampleCustomer(id=i, name=names[i], owners=owners.get(i, [])[:OWNERS_SHOWN]) for i in customer_ids if i in names
    ]


def page_of(ids: BitMap, *, after: int | None, limit: int) -> tuple[list[int], int | None]:
    """Keyset paging over a bitmap: the ids greater than `after`, and the cursor for the next page."""
    start = ids.rank(after) if after is not None else 0
    chunk = list(ids[start : start + limit])
    more = start + limit < len(ids)
    return chunk, (chunk[-1] if more and chunk else None)


# ---- saved segments and snapshots ------------------------------------------------------------------


def segment_read(session: Session, segment: Segment) -> SegmentRead:
    snapshots = session.scalar(select(func.count()).where(SegmentSnapshot.segment_id == segment.id)) or 0
    return SegmentRead.model_validate(
        {c: getattr(segment, c) for c in SegmentRead.model_fields if c != "snapshots"} | {"snapshots": snapshots}
    )


def list_segments(session: Session, *, actor: Actor) -> list[SegmentRead]:
    require(actor, "segment", "read")
    segments = session.scalars(select(Segment).where(Segment.corp_id == actor.corp_id).order_by(Segment.name)).all()
    counts = dict(
        session.execute(
            select(SegmentSnapshot.segment_id, func.count())
            .where(SegmentSnapshot.corp_id == actor.corp_id, SegmentSnapshot.segment_id.is_not(None))
            .group_by(SegmentSnapshot.segment_id)
        ).all()
    )
    return [
        SegmentRead.model_validate(
            {c: getattr(s, c) for c in SegmentRead.model_fields if c != "snapshots"}
            | {"snapshots": counts.get(s.id, 0)}
        )
        for s in segments
    ]


def snapshot_read(snapshot: SegmentSnapshot) -> SnapshotRead:
    return SnapshotRead.model_validate({c: getattr(snapshot, c) for c in SnapshotRead.model_fields})


def list_snapshots(session: Session, *, actor: Actor, segment_id: int | None = None) -> list[SnapshotRead]:
    """Newest first; of one segment when segment_id is given (without the members: they can be millions)."""
    require(actor, "segment", "read")
    columns = [getattr(SegmentSnapshot, c) for c in SnapshotRead.model_fields]
    stmt = select(*columns).where(SegmentSnapshot.corp_id == actor.corp_id)
    if segment_id is not None:
        stmt = stmt.where(SegmentSnapshot.segment_id == segment_id)
    rows = session.execute(stmt.order_by(SegmentSnapshot.id.desc()).limit(500)).mappings()
    return [SnapshotRead.model_validate(dict(row)) for row in rows]


def snapshot_members(snapshot: SegmentSnapshot) -> BitMap:
    return BitMap.deserialize(snapshot.members)


# ---- CSV export rows ---------------------------------------------------------------------------------


def csv_rows(session: Session, *, corp_id: int, customer_ids: Sequence[int]) -> Iterator[list[str | int]]:
    """One line per customer (in id order) of one batch. Mobiles stay masked, as on screen and in customer exports:
    a CSV leaves siyu's access control, so it must not become a bulk copy of customers' phone numbers."""
    customers = session.execute(
        select(
            Customer.id,
            Customer.external_userid,
            Customer.name,
            Customer.gender,
            Customer.type,
            Customer.corp_name,
            Customer.added_at,
        )
        .where(Customer.corp_id == corp_id, Customer.id.in_(list(customer_ids)))
        .order_by(Customer.id)
    ).all()
    follows = _active_follows(session, [c.id for c in customers])
    tags = _tag_names(session, [f[0] for fs in follows.values() for f in fs])
    for c in customers:
        mine = follows.get(c.id, [])
        yield [
            c.id,
            c.external_userid,
            c.name,
            c.gender,
            c.type,
            c.corp_name,
            c.added_at.isoformat() if c.added_at else "",
            "; ".join(name for _, name, _ in mine),
            "; ".join(mask_mobile(m) for _, _, mobiles in mine for m in mobiles or []),
            "; ".join(sorted({t for f, _, _ in mine for t in tags.get(f, [])})),
        ]


def _active_follows(session: Session, customer_ids: list[int]) -> dict[int, list[tuple[int, str, list[str]]]]:
    if not customer_ids:
        return {}
    rows = session.execute(
        select(Follow.customer_id, Follow.id, Employee.name, Employee.userid, Follow.remark_mobiles)
        .join(Employee, Employee.id == Follow.employee_id)
        .where(Follow.customer_id.in_(customer_ids), Follow.status == rule_sql.ACTIVE)
        .order_by(Follow.customer_id, Follow.id)
    )
    out: dict[int, list[tuple[int, str, list[str]]]] = {}
    for customer_id, follow_id, name, userid, mobiles in rows:
        out.setdefault(customer_id, []).append((follow_id, name or userid, list(mobiles or [])))
    return out


def _tag_names(session: Session, follow_ids: list[int]) -> dict[int, list[str]]:
    if not follow_ids:
        return {}
    out: dict[int, list[str]] = {}
    rows = session.execute(
        select(FollowTag.follow_id, Tag.name)
        .join(Tag, Tag.id == FollowTag.tag_id)
        .where(FollowTag.follow_id.in_(follow_ids))
    )
    for follow_id, name in rows:
        out.setdefault(follow_id, []).append(name)
    return out
