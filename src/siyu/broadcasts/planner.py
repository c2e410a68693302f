"""Planning a broadcast: who gets it, from whom, in which chunks — and who does not, and why.

`do_plan` freezes the audience into one `broadcast_recipient` row per candidate: `pending` with its
sender and corp-local `send_day` (a reserved cap slot), or `excluded` with one reason. Then the chunks
exist and the sender (`broadcasts.sender`) sends them by id. The steps, all set-based SQL:

1. **resolve** the audience to ids — a rule or saved segment through the segment engine, a snapshot's
   bitmap, an explicit list, a Moment's tags, a group broadcast's chats — and load them into a temporary
   table (COPY on PostgreSQL, batched inserts on SQLite; memory stays at one batch);
2. **classify and write** every candidate in one INSERT … SELECT: the sender is the employee of the
   customer's most recently added active follow among the allowed, unpaused senders (WeCom delivers an
   enterprise mass message only through the member who last interacted with the customer, so one sender
   per customer avoids duplicates and misses); caps are GROUP BYs over the candidates' slots
   (`compliance.caps`); the holdout is a deterministic hash of (broadcast, customer). Rows are keyed
   (broadcast, position), numbered eligible first, per sender, by id, then the excluded by reason;
3. **chunk**: one GROUP BY over the new rows gives the counts and each sender's run of positions, cut
   into chunks of ≤ 10,000 customers (≤ 2,000 chats; a Moment is one job), each a range of positions.

Exclusion reasons, first match wins: no_active_follow (every follow ended, or the employee left),
opted_out, sender_not_allowed, employee_paused, platform_cap, corp_cap, holdout; group broadcasts
have group_unavailable (dismissed, or the owner is not an active employee) instead of the first two.
Moments are shown by WeCom to every customer of the publishing employees (optionally by tag), so neither
an opt-out, the corp's caps nor a holdout can hide one from a single customer: those do not apply, and
a customer past WeCom's 4 Moments a month is listed as platform_cap (WeCom does not show it to them).

Plans of one corp are serialised (`caps.lock_reach`) and count reservations inside the lock, so two
broadcasts planned at the same time never both take a customer's last slot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pyroaring import BitMap
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Date,
    Integer,
    MetaData,
    Select,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor
from siyu.analytics.service import corp_zone
from siyu.broadcasts.models import (
    Broadcast,
    BroadcastChunk,
    BroadcastKind,
    BroadcastRecipient,
    BroadcastStatus,
    ChunkStatus,
    RecipientStatus,
)
from siyu.compliance import caps
from siyu.compliance.content import check_content
from siyu.compliance.models import OptOut
from siyu.compliance.policy import Policy, load_policy, paused_employee_ids
from siyu.contacts.models import Customer, Employee, EmployeeStatus, Follow, FollowStatus
from siyu.core import audit
from siyu.core.clock import now_utc
from siyu.core.db import UtcDateTime
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp.models import Corp
from siyu.groups.models import GroupChat, GroupStatus
from siyu.segments import service as segments
from siyu.segments.models import Segment, SegmentSnapshot
from siyu.segments.rules import RULE_VERSION, RuleError
from siyu.tags.models import FollowTag

CHUNK_SIZE = 10_000  # customers per add_msg_template call
GROUP_CHUNK_SIZE = 2_000  # chats per add_msg_template call (chat_type group)
LOAD_BATCH = 50_000  # candidate ids per COPY write / executemany
FEW_CANDIDATES = 20_000  # up to this many, caps read the candidates' sent slots through the customer index
# PostgreSQL memory per sort / hash for this transaction: a million-row plan sorts and hashes in memory
# (the 4 MB default spills every one of them to disk). Bounded, and only for the plan's transaction.
PLAN_WORK_MEM = "256MB"
# Holdout bucket: a linear congruential step over (customer id + broadcast salt), its high bits mod 100.
# Plain integer arithmetic, so PostgreSQL, SQLite and Python (`holdout_bucket`) agree; fits in 63 bits.
_LCG_A, _LCG_C, _LCG_M, _SALT_M = 1_103_515_245, 12_345, 2**31, 1_000_003
REPLANNABLE = (BroadcastStatus.DRAFT, BroadcastStatus.PLANNED, BroadcastStatus.SCHEDULED, BroadcastStatus.BLOCKED)


class Reason(StrEnum):
    """Why a candidate is excluded (broadcast_recipient.reason), in the order they are tested."""

    NO_ACTIVE_FOLLOW = "no_active_follow"
    GROUP_UNAVAILABLE = "group_unavailable"
    OPTED_OUT = "opted_out"
    SENDER_NOT_ALLOWED = "sender_not_allowed"
    EMPLOYEE_PAUSED = "employee_paused"
    PLATFORM_CAP = "platform_cap"
    CORP_CAP = "corp_cap"
    HOLDOUT = "holdout"


@dataclass(frozen=True, slots=True)
class Timing:
    send_at: datetime  # UTC
    day: date  # corp-local day the slots are taken on
    moved: dict[str, str] | None  # the quiet-hours move, for the summary


# The plan's scratch tables: temporary, so private to this connection (dropped at the end, and on
# PostgreSQL at commit too).
_scratch = MetaData()
CANDIDATES = Table("plan_candidate", _scratch, Column("id", BigInteger, nullable=False))
SENDERS = Table(  # SQLite: each candidate customer's best follow (see _choose_senders)
    "plan_sender",
    _scratch,
    Column("customer_id", BigInteger, primary_key=True),
    Column("employee_id", BigInteger, nullable=False),
    Column("allowed", Integer, nullable=False),
    Column("usable", Integer, nullable=False),
)
CAPPED = Table(  # candidates with a full cap family (see compliance.caps.capped_select)
    "plan_capped",
    _scratch,
    Column("key_id", BigInteger, primary_key=True),
    Column(Reason.PLATFORM_CAP.value, Integer, nullable=False, default=0),
    Column(Reason.CORP_CAP.value, Integer, nullable=False, default=0),
)


def holdout_bucket(customer_or_chat_id: int, broadcast_id: int) -> int:
    """0–99, the same in Python as in SQL (`_bucket`): below holdout_percent means held out."""
    mixed = ((customer_or_chat_id + _salt(broadcast_id)) * _LCG_A + _LCG_C) % _LCG_M
    return mixed // 65_536 % 100


def _salt(broadcast_id: int) -> int:
    return broadcast_id * 7_919 % _SALT_M


def _bucket(key: ColumnElement[int], broadcast_id: int) -> ColumnElement[int]:
    return ((key + _salt(broadcast_id)) * _LCG_A + _LCG_C) % _LCG_M // 65_536 % 100


# --- the action -----------------------------------------------------------------------------------


def do_plan(session: Session, broadcast_id: int, actor: Actor | str, *, now: datetime | None = None) -> Broadcast:
    """Plan (or re-plan) a broadcast that has not started sending; its counts describe the plan.

    Raises 404 for a missing broadcast, 409 once sending began, 422 for an audience that cannot be
    resolved, Moments in a corp that is not eligible, or a personal broadcast above its limit."""
    now = now or now_utc()
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no broadcast {broadcast_id}")
    session.flush()
    caps.lock_reach(session, broadcast.corp_id)
    session.refresh(broadcast)  # as it is now that no other plan of the corp runs
    _check_replannable(session, broadcast)
    policy = load_policy(session, broadcast.corp_id)
    _check_kind(policy, broadcast)
    timing = plan_timing(session, broadcast, policy, now)
    _clear(session, broadcast.id)
    content = broadcast.content or {}
    findings = check_content(policy, str(content.get("text") or ""), list(content.get("attachments") or []))
    if findings:
        return _block(session, broadcast, actor, findings, timing)
    counts = _plan_rows(session, broadcast, policy, timing, now)
    return _finish(session, broadcast, actor, counts, timing, now)


def _label(actor: Actor | str) -> str:
    return actor if isinstance(actor, str) else actor.label


def _check_replannable(session: Session, broadcast: Broadcast) -> None:
    if broadcast.status not in REPLANNABLE:
        raise DomainError(
            ErrorCode.CONFLICT, f"broadcast {broadcast.id} is {broadcast.status}; only unsent broadcasts can be planned"
        )
    started = session.scalar(
        select(func.count())
        .select_from(BroadcastChunk)
        .where(
            BroadcastChunk.broadcast_id == broadcast.id,
            or_(BroadcastChunk.status != ChunkStatus.PENDING, BroadcastChunk.attempts > 0),
        )
    )
    if started:
        raise DomainError(ErrorCode.CONFLICT, f"broadcast {broadcast.id} has started sending; it cannot be re-planned")


def _check_kind(policy: Policy, broadcast: Broadcast) -> None:
    if broadcast.kind == BroadcastKind.MOMENT and not policy.moments_eligible:
        raise DomainError(ErrorCode.INVALID, "this corp is not eligible for customer Moments (reach policy)")
    if broadcast.kind == BroadcastKind.PERSONAL and len(broadcast.sender_ids or []) != 1:
        raise DomainError(ErrorCode.INVALID, "a personal broadcast has exactly one sender")


def _clear(session: Session, broadcast_id: int) -> None:
    """A re-plan replaces the previous recipients and chunks (and so frees their slots)."""
    session.execute(delete(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == broadcast_id))
    session.execute(delete(BroadcastChunk).where(BroadcastChunk.broadcast_id == broadcast_id))


# --- timing: quiet hours and the corp-local day ----------------------------------------------------


def plan_timing(session: Session, broadcast: Broadcast, policy: Policy, now: datetime) -> Timing:
    """When it goes out (now, or its schedule), moved out of the corp's quiet hours; the corp-local day."""
    corp = session.get(Corp, broadcast.corp_id)
    assert corp is not None
    zone = corp_zone(corp)
    requested = broadcast.scheduled_at if broadcast.scheduled_at and broadcast.scheduled_at > now else now
    moved_to = caps.quiet_hours_end(requested, zone, policy.quiet_start, policy.quiet_end)
    send_at = moved_to or requested
    moved = None
    if moved_to is not None:
        moved = {
            "requested": requested.isoformat(),
            "moved_to": moved_to.isoformat(),
            "quiet_hours": f"{policy.quiet_start}–{policy.quiet_end}",
        }
    return Timing(send_at, send_at.astimezone(zone).date(), moved)


# --- blocked content -------------------------------------------------------------------------------


def _block(
    session: Session, broadcast: Broadcast, actor: Actor | str, findings: list[Any], timing: Timing
) -> Broadcast:
    found = [{"kind": f.kind, "matched": f.matched, "start": f.start, "end": f.end} for f in findings]
    broadcast.status = BroadcastStatus.BLOCKED
    broadcast.block_reason = "; ".join(f"{f['kind']}: {f['matched']}" for f in found)
    broadcast.counts = {"findings": found, "moved": timing.moved}
    broadcast.send_day = None
    audit.record(
        session,
        corp_id=broadcast.corp_id,
        actor=_label(actor),
        action="broadcast.blocked",
        object_type="broadcast",
        object_id=broadcast.id,
        detail={"findings": found},
    )
    session.flush()
    return broadcast


# --- the rows --------------------------------------------------------------------------------------


def _plan_rows(session: Session, broadcast: Broadcast, policy: Policy, timing: Timing, now: datetime) -> dict[str, Any]:
    """Classify every candidate straight into its recipient row, then count, check limits and cut the chunks."""
    _create_scratch(session)
    # a personal broadcast over its limit is refused once counted: its rows go back with the savepoint
    savepoint = session.begin_nested() if broadcast.kind == BroadcastKind.PERSONAL else None
    try:
        _load_candidates(session, broadcast)
        classified = (
            _classify_groups(session, broadcast, policy, timing.day)
            if broadcast.kind == BroadcastKind.GROUP
            else _classify_customers(session, broadcast, policy, timing.day)
        )
        _write_recipients(session, broadcast, classified, timing.day, now)
    finally:
        _drop_scratch(session)
    counts, runs = _counts(session, broadcast.id)
    if savepoint is not None:
        try:
            _check_personal_limit(policy, broadcast, counts)
        except DomainError:
            savepoint.rollback()
            raise
        savepoint.commit()
    counts["chunks"] = _write_chunks(session, broadcast, runs)
    return counts


def _finish(
    session: Session, broadcast: Broadcast, actor: Actor | str, counts: dict[str, Any], timing: Timing, now: datetime
) -> Broadcast:
    if timing.moved is not None:
        broadcast.scheduled_at = timing.send_at
    if broadcast.status != BroadcastStatus.SCHEDULED:
        broadcast.status = BroadcastStatus.PLANNED
    broadcast.send_day = timing.day
    broadcast.planned_at = now
    broadcast.block_reason = ""
    broadcast.counts = {**counts, "moved": timing.moved, "findings": []}
    audit.record(
        session,
        corp_id=broadcast.corp_id,
        actor=_label(actor),
        action="broadcast.planned",
        object_type="broadcast",
        object_id=broadcast.id,
        detail={k: counts[k] for k in ("candidates", "eligible", "excluded", "chunks")} | {"moved": timing.moved},
    )
    session.flush()
    return broadcast


def _check_personal_limit(policy: Policy, broadcast: Broadcast, counts: dict[str, Any]) -> None:
    limit = policy.personal_max_recipients
    if broadcast.kind == BroadcastKind.PERSONAL and counts["eligible"] > limit:
        raise DomainError(
            ErrorCode.INVALID,
            f"a personal broadcast reaches at most {limit} customers; this one would reach {counts['eligible']}"
            " — narrow the audience",
        )


@dataclass(frozen=True, slots=True)
class Run:
    """One sender's eligible rows: `size` positions from `first` on (a Moment's run has no sender)."""

    employee_id: int | None
    first: int
    size: int


def _counts(session: Session, broadcast_id: int) -> tuple[dict[str, Any], list[Run]]:
    """The plan's counts, and each sender's run of eligible positions — one pass over the new rows."""
    r = BroadcastRecipient
    sender = case((r.reason == "", r.employee_id), else_=null())
    rows = session.execute(
        select(r.reason, sender, func.count(), func.min(r.position))
        .where(r.broadcast_id == broadcast_id)
        .group_by(r.reason, sender)
    ).all()
    excluded: dict[str, int] = {}
    senders: dict[str, int] = {}
    runs: list[Run] = []
    for reason, employee_id, n, first in rows:
        if reason:
            excluded[reason] = excluded.get(reason, 0) + int(n)
        else:
            senders[str(employee_id)] = int(n)
            runs.append(Run(None if employee_id is None else int(employee_id), int(first), int(n)))
    eligible = sum(senders.values())
    counts = {
        "candidates": eligible + sum(excluded.values()),
        "eligible": eligible,
        "excluded": dict(sorted(excluded.items())),
        "senders": senders,
    }
    return counts, sorted(runs, key=lambda run: run.first)


# --- scratch tables ---------------------------------------------------------------------------------


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _create_scratch(session: Session) -> None:
    _drop_scratch(session)
    pg = _is_pg(session)
    if pg:
        session.execute(text(f"SET LOCAL work_mem = '{PLAN_WORK_MEM}'"))
        # each big statement runs once: compiling it (0.7 s for the classification here) never pays back
        session.execute(text("SET LOCAL jit = off"))
    ids = "BIGINT" if pg else "INTEGER"
    tail = " ON COMMIT DROP" if pg else ""
    # PostgreSQL only ever hash-joins the candidates (unique by construction: a bitmap, or a DISTINCT / keyed
    # query); SQLite looks them up, so there they are keyed
    key = "NOT NULL" if pg else "PRIMARY KEY"
    session.execute(text(f"CREATE TEMPORARY TABLE {CANDIDATES.name} (id {ids} {key}){tail}"))
    session.execute(
        text(
            f"CREATE TEMPORARY TABLE {SENDERS.name} (customer_id {ids} PRIMARY KEY, employee_id BIGINT NOT NULL, "
            f"allowed INTEGER NOT NULL, usable INTEGER NOT NULL){tail}"
        )
    )
    session.execute(
        text(
            f"CREATE TEMPORARY TABLE {CAPPED.name} (key_id {ids} PRIMARY KEY, platform_cap INTEGER NOT NULL "
            f"DEFAULT 0, corp_cap INTEGER NOT NULL DEFAULT 0){tail}"
        )
    )


def _drop_scratch(session: Session) -> None:
    schema = "pg_temp" if _is_pg(session) else "temp"
    for table in (CANDIDATES, SENDERS, CAPPED):
        session.execute(text(f"DROP TABLE IF EXISTS {schema}.{table.name}"))


def _analyze(session: Session, table: str) -> None:
    """Temporary tables get no automatic statistics on PostgreSQL; without them it guesses its joins."""
    if _is_pg(session):
        session.execute(text(f"ANALYZE {table}"))


def _load_candidates(session: Session, broadcast: Broadcast) -> None:
    found = resolve_audience(session, broadcast)
    if isinstance(found, Select):
        session.execute(insert(CANDIDATES).from_select(["id"], found))
    else:
        load_ids(session, CANDIDATES.name, found)
    if "customer_ids" in (broadcast.audience or {}):
        # only a pasted list can name another corp's (or no) customer; rules and snapshots come from the corp's index
        # NOT EXISTS: an anti-join by key, where NOT IN would hash every customer of the corp first
        theirs = select(Customer.id).where(Customer.id == CANDIDATES.c.id, Customer.corp_id == broadcast.corp_id)
        session.execute(delete(CANDIDATES).where(~theirs.exists()))
    _analyze(session, CANDIDATES.name)


def load_ids(session: Session, table: str, ids: BitMap) -> None:
    """Bulk-load ids into a one-column table: COPY on PostgreSQL, batched executemany on SQLite."""
    values = ids.to_array()
    conn = session.connection()
    if _is_pg(session):
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} (id) FROM STDIN") as copy:
            for start in range(0, len(values), LOAD_BATCH):
                copy.write("\n".join(map(str, values[start : start + LOAD_BATCH])) + "\n")
        return
    for start in range(0, len(values), LOAD_BATCH):
        batch = [(int(i),) for i in values[start : start + LOAD_BATCH]]
        conn.exec_driver_sql(f"INSERT INTO {table} (id) VALUES (?)", batch)  # type: ignore[arg-type]


# --- the audience ------------------------------------------------------------------------------------


def resolve_audience(session: Session, broadcast: Broadcast) -> BitMap | Select[tuple[int]]:
    """The candidate ids: customer ids (a bitmap, or a query for a Moment's tags) or group_chat ids."""
    audience: dict[str, Any] = dict(broadcast.audience or {})
    corp_id = broadcast.corp_id
    if "rule" in audience:
        broadcast.rule_version = int(audience["rule"].get("version", RULE_VERSION))
        return _rule_ids(session, corp_id, audience["rule"])
    if "segment_id" in audience:
        segment = session.get(Segment, audience["segment_id"])
        if segment is None or segment.corp_id != corp_id:
            raise DomainError(ErrorCode.INVALID, f"audience: no segment {audience['segment_id']} in this corp")
        broadcast.segment_id, broadcast.rule_version = segment.id, segment.rule_version
        return _rule_ids(session, corp_id, segment.rule)
    if "snapshot_id" in audience:
        snapshot = session.get(SegmentSnapshot, audience["snapshot_id"])
        if snapshot is None or snapshot.corp_id != corp_id:
            raise DomainError(ErrorCode.INVALID, f"audience: no snapshot {audience['snapshot_id']} in this corp")
        broadcast.snapshot_id, broadcast.rule_version = snapshot.id, snapshot.rule_version
        return BitMap.deserialize(snapshot.members)
    if "customer_ids" in audience:
        return BitMap(int(i) for i in audience["customer_ids"])
    if "tag_ids" in audience:
        return moment_candidates(corp_id, [int(t) for t in audience["tag_ids"]])
    if "chat_ids" in audience:
        chats = [str(c) for c in audience["chat_ids"]]
        return select(GroupChat.id).where(GroupChat.corp_id == corp_id, GroupChat.chat_id.in_(chats))
    if "owner_ids" in audience:
        return _owned_groups(corp_id, [int(e) for e in audience["owner_ids"]])
    raise DomainError(ErrorCode.INVALID, "audience: give a rule, segment_id, snapshot_id, customer_ids, …")


def _rule_ids(session: Session, corp_id: int, rule: dict[str, Any]) -> BitMap:
    try:
        return segments.customer_ids(session, corp_id=corp_id, rule=rule)
    except RuleError as exc:
        raise DomainError(ErrorCode.INVALID, f"audience.{exc}") from exc


def moment_candidates(corp_id: int, tag_ids: list[int]) -> Select[tuple[int]]:
    """Who can see a Moment: customers with an active follow (carrying one of the tags, when given)."""
    stmt = select(Follow.customer_id).where(Follow.corp_id == corp_id, Follow.status == FollowStatus.ACTIVE)
    if tag_ids:
        tagged = select(FollowTag.follow_id).where(FollowTag.follow_id == Follow.id, FollowTag.tag_id.in_(tag_ids))
        stmt = stmt.where(tagged.exists())
    return stmt.distinct()


def _owned_groups(corp_id: int, owner_ids: list[int]) -> Select[tuple[int]]:
    owners = select(Employee.userid).where(Employee.corp_id == corp_id, Employee.id.in_(owner_ids))
    return select(GroupChat.id).where(
        GroupChat.corp_id == corp_id, GroupChat.status == GroupStatus.ACTIVE, GroupChat.owner_userid.in_(owners)
    )


# --- classification ----------------------------------------------------------------------------------


def _allowed(broadcast: Broadcast) -> list[int] | None:
    ids = sorted({int(i) for i in broadcast.sender_ids or []})
    return ids or None


# Excluded rows carry their reason's number while classified: the rows are numbered (and sorted) by it, and
# an integer sorts where a million collated strings would not.
REASON_CODES = {reason: n for n, reason in enumerate(Reason, start=1)}


def _reason_code(tests: list[tuple[ColumnElement[bool], str]]) -> ColumnElement[int]:
    """0 for an eligible candidate, else the number of the first reason that applies."""
    return case(*((test, REASON_CODES[Reason(reason)]) for test, reason in tests), else_=0)


def _flag(condition: ColumnElement[bool] | None) -> ColumnElement[int]:
    return case((condition, 1), else_=0) if condition is not None else literal(1)


def _classify_customers(session: Session, broadcast: Broadcast, policy: Policy, day: date) -> Any:
    """Fills plan_sender and plan_capped; returns the subquery of (customer, sender, reason code)."""
    corp_id, kind = broadcast.corp_id, broadcast.kind
    cand = CANDIDATES.c.id
    senders = _choose_senders(session, broadcast, paused_employee_ids(session, corp_id))
    sender = senders.c
    tests: list[tuple[ColumnElement[bool], str]] = [(sender.customer_id.is_(None), Reason.NO_ACTIVE_FOLLOW)]
    is_moment = kind == BroadcastKind.MOMENT
    if not is_moment:
        opted = select(OptOut.customer_id).where(OptOut.corp_id == corp_id)
        tests.append((cand.in_(opted), Reason.OPTED_OUT))
    tests += [(sender.allowed == 0, Reason.SENDER_NOT_ALLOWED), (sender.usable == 0, Reason.EMPLOYEE_PAUSED)]
    tests += _cap_tests(session, broadcast, policy, day, "customer_id")
    if broadcast.holdout_percent and not is_moment:
        tests.append((_bucket(cand, broadcast.id) < broadcast.holdout_percent, Reason.HOLDOUT))
    return (
        select(cand.label("key_id"), sender.employee_id.label("employee_id"), _reason_code(tests).label("code"))
        .select_from(CANDIDATES)
        .outerjoin(senders, sender.customer_id == cand)
        .outerjoin(CAPPED, CAPPED.c.key_id == cand)
        .offset(0)  # a fence: PostgreSQL would inline it and work out the reason twice
        .subquery("classified")
    )


def _choose_senders(session: Session, broadcast: Broadcast, paused: set[int]) -> Any:
    """Per candidate with an active follow, its best follow: usable (allowed and not paused) first, then
    allowed, then the most recently added; that row's `allowed` / `usable` say whether any follow is.

    A subquery on PostgreSQL (hash-joined); on SQLite written to plan_sender, keyed — SQLite would scan a
    derived table once per candidate."""
    allowed_ids = _allowed(broadcast)
    allowed = Follow.employee_id.in_(allowed_ids) if allowed_ids is not None else None
    usable_parts = [
        c for c in (allowed, Follow.employee_id.not_in(sorted(paused)) if paused else None) if c is not None
    ]
    usable = and_(*usable_parts) if usable_parts else None
    ranked = (
        select(
            Follow.customer_id.label("customer_id"),
            Follow.employee_id.label("employee_id"),
            _flag(allowed).label("allowed"),
            _flag(usable).label("usable"),
            func.row_number()
            .over(
                partition_by=Follow.customer_id,
                order_by=(
                    _flag(usable).desc(),
                    _flag(allowed).desc(),
                    Follow.created_at.desc().nulls_last(),
                    Follow.id.desc(),
                ),
            )
            .label("rank"),
        )
        .join(CANDIDATES, CANDIDATES.c.id == Follow.customer_id)
        .join(Employee, Employee.id == Follow.employee_id)
        .where(
            Follow.corp_id == broadcast.corp_id,
            Follow.status == FollowStatus.ACTIVE,
            Employee.status == EmployeeStatus.ACTIVE,
        )
        .subquery("ranked")
    )
    top = select(ranked.c.customer_id, ranked.c.employee_id, ranked.c.allowed, ranked.c.usable).where(
        ranked.c.rank == 1
    )
    if _is_pg(session):
        return top.subquery("sender")
    session.execute(insert(SENDERS).from_select(["customer_id", "employee_id", "allowed", "usable"], top))
    return SENDERS


def _classify_groups(session: Session, broadcast: Broadcast, policy: Policy, day: date) -> Any:
    """Fills plan_capped; returns the subquery of (group chat, its owner as sender, reason code)."""
    corp_id = broadcast.corp_id
    cand = CANDIDATES.c.id
    unavailable = or_(
        GroupChat.status != GroupStatus.ACTIVE, Employee.id.is_(None), Employee.status != EmployeeStatus.ACTIVE
    )
    tests: list[tuple[ColumnElement[bool], str]] = [(unavailable, Reason.GROUP_UNAVAILABLE)]
    allowed = _allowed(broadcast)
    if allowed is not None:
        tests.append((Employee.id.not_in(allowed), Reason.SENDER_NOT_ALLOWED))
    if paused := paused_employee_ids(session, corp_id):
        tests.append((Employee.id.in_(sorted(paused)), Reason.EMPLOYEE_PAUSED))
    tests += _cap_tests(session, broadcast, policy, day, "chat_id")
    if broadcast.holdout_percent:
        tests.append((_bucket(cand, broadcast.id) < broadcast.holdout_percent, Reason.HOLDOUT))
    return (
        select(cand.label("key_id"), Employee.id.label("employee_id"), _reason_code(tests).label("code"))
        .select_from(CANDIDATES)
        .join(GroupChat, and_(GroupChat.id == cand, GroupChat.corp_id == corp_id))
        .outerjoin(Employee, and_(Employee.corp_id == corp_id, Employee.userid == GroupChat.owner_userid))
        .outerjoin(CAPPED, CAPPED.c.key_id == cand)
        .offset(0)  # a fence: PostgreSQL would inline it and work out the reason twice
        .subquery("classified")
    )


def _cap_tests(
    session: Session, broadcast: Broadcast, policy: Policy, day: date, key: str
) -> list[tuple[ColumnElement[bool], str]]:
    """The candidates whose platform or corp caps are full, into plan_capped; the tests that read it."""
    kind = broadcast.kind
    platform, corp = caps.platform_rules(policy, kind), caps.corp_rules(policy, kind)
    if kind == BroadcastKind.MOMENT:
        corp = ()
    later = caps.later_send_days(
        session,
        corp_id=broadcast.corp_id,
        day=day,
        days_after=caps.horizon((*platform, *corp)),
        exclude_broadcast_id=broadcast.id,
    )
    families = [
        caps.Family(Reason.PLATFORM_CAP, caps.platform_kinds(kind), tuple(caps.windows(platform, day, later))),
        caps.Family(Reason.CORP_CAP, tuple(caps.CORP_CAP_KINDS), tuple(caps.windows(corp, day, later))),
    ]
    capped = caps.capped_select(
        corp_id=broadcast.corp_id,
        key=key,
        candidates=select(CANDIDATES.c.id),
        families=families,
        exclude_broadcast_id=broadcast.id,
        few=_few(session),
    )
    if capped is None:
        return []
    names = [c.name for c in capped.selected_columns][1:]
    session.execute(insert(CAPPED).from_select(["key_id", *names], capped))
    _analyze(session, CAPPED.name)
    full = CAPPED.c
    return [(full[name] == 1, name) for name in names]


def _few(session: Session) -> bool:
    """Few enough candidates to look up their sent slots one customer at a time (a personal broadcast, a
    small list) rather than read the window's broadcasts whole."""
    probe = select(CANDIDATES.c.id).limit(FEW_CANDIDATES + 1).subquery()
    return int(session.scalar(select(func.count()).select_from(probe)) or 0) <= FEW_CANDIDATES


# --- writing recipients and chunks -------------------------------------------------------------------


def _write_recipients(session: Session, broadcast: Broadcast, classified: Any, day: date, now: datetime) -> None:
    """One INSERT … SELECT: every candidate's row, numbered eligible first, per sender, by customer (or chat),
    then the excluded by reason — so each sender's eligible rows are one run of positions, and the rows
    arrive in the order of the table's key (appended, never inserted between)."""
    c = classified.c
    position = func.row_number(type_=Integer).over(order_by=(c.code, c.employee_id.nulls_last(), c.key_id))
    reason = case({code: reason.value for reason, code in REASON_CODES.items()}, value=c.code, else_="")
    status = case((c.code == 0, RecipientStatus.PENDING.value), else_=RecipientStatus.EXCLUDED.value)
    rows = select(
        literal(broadcast.id, BigInteger),
        position,
        literal(broadcast.corp_id, Integer),
        c.key_id,
        c.employee_id,
        literal(day, Date),
        status,
        reason,
        literal(now, UtcDateTime()),
    )
    key = "chat_id" if broadcast.kind == BroadcastKind.GROUP else "customer_id"
    columns = ["broadcast_id", "position", "corp_id", key, "employee_id", "send_day", "status", "reason"]
    session.execute(insert(BroadcastRecipient).from_select([*columns, "updated_at"], rows))


def _write_chunks(session: Session, broadcast: Broadcast, runs: list[Run]) -> int:
    """Cut each sender's run into chunks of ≤ 10,000 customers (≤ 2,000 chats); a Moment is one job."""
    size = {BroadcastKind.MOMENT: None, BroadcastKind.GROUP: GROUP_CHUNK_SIZE}.get(broadcast.kind, CHUNK_SIZE)
    if size is None and runs:  # every eligible row, whoever follows them: WeCom publishes by sender list
        runs = [Run(None, runs[0].first, sum(run.size for run in runs))]
    rows: list[dict[str, Any]] = []
    for run in runs:
        step = size or run.size
        for chunk_no, start in enumerate(range(0, run.size, step)):
            n = min(step, run.size - start)
            first = run.first + start
            rows.append(
                {
                    "corp_id": broadcast.corp_id,
                    "broadcast_id": broadcast.id,
                    "employee_id": run.employee_id,
                    "chunk_no": chunk_no,
                    "size": n,
                    "first_position": first,
                    "last_position": first + n - 1,
                    "status": ChunkStatus.PENDING.value,
                    "attempts": 0,
                    "msgid": "",
                    "fail_list": [],
                    "confirm_status": "",
                    "error": "",
                }
            )
    if rows:
        session.execute(insert(BroadcastChunk), rows)
    return len(rows)


def eligible_ids(session: Session, broadcast_id: int) -> Iterable[int]:
    """The customer (or group_chat) ids a plan made pending — for tests and exports."""
    r = BroadcastRecipient
    key = func.coalesce(r.customer_id, r.chat_id)
    return session.scalars(
        select(key).where(r.broadcast_id == broadcast_id, r.status == RecipientStatus.PENDING).order_by(key)
    )
