"""The complaint monitor: signals that a message was unwelcome, their rate per 10,000 messages, and verdicts.

Modelled on how carriers police SMS channels. Three signals count against a sender:
* an explicit complaint (recorded by a person or the API);
* the customer deleting the employee within `delete_within_hours` of a broadcast from that employee;
* the customer opting out within the same time of a broadcast.
Each is attributed to the corp, the employee and the broadcast whose message came last before it.

A message is a `broadcast_recipient` row with status `sent`; its time is its chunk's `sent_at` (when WeCom
accepted the mass message — the recipient row records no time of its own). Rates are signals per 10,000
messages sent in the window, per employee, broadcast and corp. `do_evaluate` warns (an audit row) at
`warn_per_10k` and pauses the employee, or a broadcast whose own rate crosses, at `pause_per_10k` — only with
at least `min_messages` messages, never twice. A person lifting a pause restarts that target's clock: the
monitor then judges only messages and signals after the lift.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from siyu.broadcasts.models import CHUNK_OF_RECIPIENT, IS_SENT, BroadcastChunk, BroadcastRecipient, RecipientStatus
from siyu.compliance.models import ComplaintSignal, ReachPause, SignalKind
from siyu.compliance.policy import ComplaintThresholds, Policy, load_policy
from siyu.contacts.models import Customer, Employee, Follow, FollowStatus
from siyu.core import audit
from siyu.core.clock import now_utc
from siyu.corp.models import AuditLog
from siyu.sync.bulk import chunks

MONITOR = "complaint-monitor"
Scope = Literal["employee", "broadcast", "corp"]
Status = Literal["ok", "warning", "paused", "insufficient"]
CORP_TARGET = 0  # the corp row's target_id


@dataclass(frozen=True, slots=True)
class SentMessage:
    customer_id: int
    employee_id: int | None
    broadcast_id: int
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class Attribution:
    employee_id: int | None
    broadcast_id: int | None


# --- messages and attribution ---------------------------------------------------------------------


def sent_messages(
    session: Session, corp_id: int, customer_ids: Iterable[int], *, since: datetime, until: datetime
) -> list[SentMessage]:
    """Messages sent to these customers between since and until (inclusive), oldest first."""
    found: list[SentMessage] = []
    for part in chunks(sorted(set(customer_ids))):
        stmt = (
            select(
                BroadcastRecipient.customer_id,
                BroadcastRecipient.employee_id,
                BroadcastRecipient.broadcast_id,
                BroadcastChunk.sent_at,
            )
            .join(BroadcastChunk, CHUNK_OF_RECIPIENT)
            .where(
                BroadcastRecipient.corp_id == corp_id,
                BroadcastRecipient.customer_id.in_(part),
                IS_SENT,
                BroadcastChunk.sent_at >= since,
                BroadcastChunk.sent_at <= until,
            )
        )
        found.extend(SentMessage(c, e, b, at) for c, e, b, at in session.execute(stmt) if c is not None)
    return sorted(found, key=lambda m: (m.sent_at, m.broadcast_id))


def latest_message(
    messages: Sequence[SentMessage], *, customer_id: int, employee_id: int | None, at: datetime, hours: float
) -> SentMessage | None:
    """The last message to the customer (from that employee, if given) in the `hours` before `at`."""
    earliest = at - timedelta(hours=hours)
    matching = [
        m
        for m in messages
        if m.customer_id == customer_id
        and (employee_id is None or m.employee_id == employee_id)
        and earliest <= m.sent_at <= at
    ]
    return matching[-1] if matching else None


def attribute(
    session: Session,
    corp_id: int,
    *,
    customer_id: int,
    employee_id: int | None,
    broadcast_id: int | None,
    at: datetime,
    hours: float,
) -> tuple[Attribution, SentMessage | None]:
    """Who a signal about this customer counts against: the given employee / broadcast, else the last message."""
    messages = sent_messages(session, corp_id, [customer_id], since=at - timedelta(hours=hours), until=at)
    if broadcast_id is not None:
        messages = [m for m in messages if m.broadcast_id == broadcast_id]
    last = latest_message(messages, customer_id=customer_id, employee_id=employee_id, at=at, hours=hours)
    if last is None:
        return Attribution(employee_id, broadcast_id), None
    return Attribution(employee_id if employee_id is not None else last.employee_id, last.broadcast_id), last


# --- recording signals ----------------------------------------------------------------------------


def do_record_signal(
    session: Session,
    corp_id: int,
    *,
    kind: SignalKind,
    customer_id: int | None,
    attribution: Attribution,
    detail: str,
    occurred_at: datetime | None = None,
    evaluate: bool = True,
) -> ComplaintSignal:
    """Store one signal and, unless told not to, judge the employee and broadcast it counts against at once."""
    signal = ComplaintSignal(
        corp_id=corp_id,
        kind=kind,
        customer_id=customer_id,
        employee_id=attribution.employee_id,
        broadcast_id=attribution.broadcast_id,
        detail=detail,
        occurred_at=occurred_at or now_utc(),
    )
    session.add(signal)
    session.flush()
    if evaluate:
        do_evaluate(
            session,
            corp_id,
            employee_ids=_ids([attribution.employee_id]),
            broadcast_ids=_ids([attribution.broadcast_id]),
        )
    return signal


def _ids(values: Iterable[int | None]) -> set[int]:
    return {v for v in values if v is not None}


DeletedFollow = tuple[int, int, datetime]  # (employee_id, customer_id, when the customer deleted the employee)


def do_signals_for_deleted_follows(session: Session, corp_id: int, follows: Iterable[DeletedFollow]) -> int:
    """A `deleted_after_message` signal for each deletion within the policy's hours of a message from that
    employee; set-based and idempotent (one signal per customer, employee and broadcast). Returns how many."""
    follows = list(follows)
    if not follows:
        return 0
    policy = load_policy(session, corp_id)
    hours = policy.thresholds.delete_within_hours
    since = min(at for _, _, at in follows) - timedelta(hours=hours)
    messages = sent_messages(
        session, corp_id, (c for _, c, _ in follows), since=since, until=max(a for *_, a in follows)
    )
    seen = _existing(session, corp_id, SignalKind.DELETED_AFTER_MESSAGE, (c for _, c, _ in follows))
    new: list[ComplaintSignal] = []
    for employee_id, customer_id, at in follows:
        last = latest_message(messages, customer_id=customer_id, employee_id=employee_id, at=at, hours=hours)
        if last is None or (customer_id, employee_id, last.broadcast_id) in seen:
            continue
        seen.add((customer_id, employee_id, last.broadcast_id))
        after = (at - last.sent_at).total_seconds() / 3600
        new.append(
            ComplaintSignal(
                corp_id=corp_id,
                kind=SignalKind.DELETED_AFTER_MESSAGE,
                customer_id=customer_id,
                employee_id=employee_id,
                broadcast_id=last.broadcast_id,
                detail=f"deleted the employee {after:.1f} h after broadcast {last.broadcast_id}",
                occurred_at=at,
            )
        )
    if not new:
        return 0
    session.add_all(new)
    session.flush()
    do_evaluate(
        session, corp_id, employee_ids=_ids(s.employee_id for s in new), broadcast_ids=_ids(s.broadcast_id for s in new)
    )
    return len(new)


def _existing(
    session: Session, corp_id: int, kind: SignalKind, customer_ids: Iterable[int]
) -> set[tuple[int | None, int | None, int | None]]:
    found: set[tuple[int | None, int | None, int | None]] = set()
    for part in chunks(sorted(set(customer_ids))):
        stmt = select(ComplaintSignal.customer_id, ComplaintSignal.employee_id, ComplaintSignal.broadcast_id).where(
            ComplaintSignal.corp_id == corp_id, ComplaintSignal.kind == kind, ComplaintSignal.customer_id.in_(part)
        )
        found.update((c, e, b) for c, e, b in session.execute(stmt))
    return found


def do_signal_for_deletion_event(
    session: Session, corp_id: int, *, userid: str, external_userid: str, occurred_at: datetime | None
) -> int:
    """The del_follow_user callback's hook: the follow it ended, by WeCom ids, as a deleted follow."""
    row = session.execute(
        select(Follow.employee_id, Follow.customer_id, Follow.ended_at)
        .join(Employee, Employee.id == Follow.employee_id)
        .join(Customer, Customer.id == Follow.customer_id)
        .where(
            Follow.corp_id == corp_id,
            Employee.userid == userid,
            Customer.external_userid == external_userid,
            Follow.status == FollowStatus.CUSTOMER_DELETED_EMPLOYEE,
        )
    ).first()
    if row is None:
        return 0
    return do_signals_for_deleted_follows(session, corp_id, [(row[0], row[1], occurred_at or row[2] or now_utc())])


def do_sweep_deletions(session: Session, corp_id: int, *, broadcast_id: int | None = None) -> int:
    """Deletions whose message was confirmed only later (results are polled after the customer may have
    deleted the employee): every recent customer deletion is matched again; existing signals are kept."""
    policy = load_policy(session, corp_id)
    t = policy.thresholds
    since = now_utc() - timedelta(days=t.window_days, hours=t.delete_within_hours)
    stmt = select(Follow.employee_id, Follow.customer_id, Follow.ended_at).where(
        Follow.corp_id == corp_id,
        Follow.status == FollowStatus.CUSTOMER_DELETED_EMPLOYEE,
        Follow.ended_at >= since,
    )
    if broadcast_id is not None:
        in_broadcast = select(BroadcastRecipient.customer_id).where(BroadcastRecipient.broadcast_id == broadcast_id)
        stmt = stmt.where(Follow.customer_id.in_(in_broadcast))
    deleted = [(e, c, at) for e, c, at in session.execute(stmt) if at is not None]
    return do_signals_for_deleted_follows(session, corp_id, deleted)


# --- rates ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Measure:
    scope: Scope
    target_id: int
    since: datetime
    messages: int = 0
    signals: dict[str, int] = field(default_factory=dict)

    @property
    def signals_total(self) -> int:
        return sum(self.signals.values())

    @property
    def rate_per_10k(self) -> float | None:
        return self.signals_total * 10_000 / self.messages if self.messages else None


def judge(measure: Measure, t: ComplaintThresholds) -> Status:
    """The verdict on numbers alone: no verdict below min_messages; a threshold counts once reached."""
    rate = measure.rate_per_10k
    if measure.messages < t.min_messages or rate is None:
        return "insufficient"
    if measure.signals_total and rate >= t.pause_per_10k:
        return "paused"
    if measure.signals_total and rate >= t.warn_per_10k:
        return "warning"
    return "ok"


def _group_column(scope: Scope, model: type[BroadcastChunk] | type[ComplaintSignal]) -> ColumnElement[int | None]:
    """What a scope groups by; the corp groups by corp_id (one row, reported as target 0). Messages group by
    their chunk's sender and broadcast, so a query for a few targets starts from their chunks (small, filtered
    by time) and reaches recipients through the chunk index."""
    if scope == "corp":
        return model.corp_id  # type: ignore[return-value]
    return model.employee_id if scope == "employee" else model.broadcast_id  # type: ignore[return-value]


def measure(
    session: Session,
    corp_id: int,
    scope: Scope,
    *,
    since: datetime,
    target_ids: Iterable[int] | None = None,
) -> dict[int, Measure]:
    """Messages sent and signals by kind since `since`, per employee, broadcast, or for the corp (key 0)."""
    ids = sorted(set(target_ids)) if target_ids is not None else None
    out: dict[int, Measure] = {}

    def row(target: int | None) -> Measure | None:
        if target is None:
            return None
        key = CORP_TARGET if scope == "corp" else target
        return out.setdefault(key, Measure(scope, key, since))

    sent_col = _group_column(scope, BroadcastChunk)
    sent = (
        select(sent_col, func.count())
        .select_from(BroadcastChunk)
        .join(BroadcastRecipient, CHUNK_OF_RECIPIENT)
        .where(
            BroadcastChunk.corp_id == corp_id,
            BroadcastRecipient.status == RecipientStatus.SENT,
            BroadcastRecipient.customer_id.is_not(None),
            BroadcastChunk.sent_at >= since,
        )
        .group_by(sent_col)
    )
    signal_col = _group_column(scope, ComplaintSignal)
    signals = (
        select(signal_col, ComplaintSignal.kind, func.count())
        .where(ComplaintSignal.corp_id == corp_id, ComplaintSignal.occurred_at >= since)
        .group_by(signal_col, ComplaintSignal.kind)
    )
    if ids is not None and scope != "corp":
        sent, signals = sent.where(sent_col.in_(ids)), signals.where(signal_col.in_(ids))
    for target, count in session.execute(sent):
        if (m := row(target)) is not None:
            m.messages += count
    for target, kind, count in session.execute(signals):
        if (m := row(target)) is not None:
            m.signals[kind] = m.signals.get(kind, 0) + count
    return out


def active_pauses(session: Session, corp_id: int) -> dict[tuple[str, int], ReachPause]:
    stmt = select(ReachPause).where(ReachPause.corp_id == corp_id, ReachPause.lifted_at.is_(None))
    return {(p.scope, p.target_id): p for p in session.scalars(stmt)}


def last_lifts(session: Session, corp_id: int, since: datetime) -> dict[tuple[str, int], datetime]:
    """When each target's latest pause was lifted, for lifts inside the window."""
    stmt = (
        select(ReachPause.scope, ReachPause.target_id, func.max(ReachPause.lifted_at))
        .where(ReachPause.corp_id == corp_id, ReachPause.lifted_at >= since)
        .group_by(ReachPause.scope, ReachPause.target_id)
    )
    return {(s, t): at for s, t, at in session.execute(stmt) if at is not None}


def measure_with_lifts(
    session: Session, corp_id: int, scope: Scope, *, since: datetime, target_ids: Iterable[int] | None = None
) -> dict[int, Measure]:
    """`measure`, but a target whose pause was lifted inside the window counts only from the lift."""
    found = measure(session, corp_id, scope, since=since, target_ids=target_ids)
    if scope == "corp":
        return found
    wanted = set(target_ids) if target_ids is not None else None
    for (lift_scope, target), lifted_at in last_lifts(session, corp_id, since).items():
        if lift_scope != scope or (wanted is not None and target not in wanted):
            continue
        again = measure(session, corp_id, scope, since=lifted_at, target_ids=[target])
        found[target] = again.get(target, Measure(scope, target, lifted_at))
    return found


# --- verdicts -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    scope: Scope
    target_id: int
    messages: int
    signals: int
    rate_per_10k: float | None
    status: Status
    action: Literal["none", "warned", "paused"]


def do_evaluate(
    session: Session,
    corp_id: int,
    *,
    employee_ids: Iterable[int] | None = None,
    broadcast_ids: Iterable[int] | None = None,
) -> list[Verdict]:
    """Judge employees and broadcasts (all with activity in the window, or just the given ones — right after a
    signal) and, on a full pass, the corp: warn once per window, pause once (never a target already paused).
    Returns every verdict reached."""
    policy = load_policy(session, corp_id)
    since = now_utc() - timedelta(days=policy.thresholds.window_days)
    paused = active_pauses(session, corp_id)
    verdicts: list[Verdict] = []
    targets: list[tuple[Scope, Iterable[int] | None]] = [("employee", employee_ids), ("broadcast", broadcast_ids)]
    if employee_ids is None and broadcast_ids is None:
        targets.append(("corp", None))
    for scope, ids in targets:
        if ids is not None and not (ids := set(ids)):
            continue
        for m in measure_with_lifts(session, corp_id, scope, since=since, target_ids=ids).values():
            verdicts.append(_act(session, corp_id, policy, m, paused.get((scope, m.target_id))))
    return verdicts


def _act(session: Session, corp_id: int, policy: Policy, m: Measure, pause: ReachPause | None) -> Verdict:
    t = policy.thresholds
    status = judge(m, t)
    action: Literal["none", "warned", "paused"] = "none"
    if pause is not None:
        status = "paused"
    elif status == "paused" and m.scope != "corp":
        _pause(session, corp_id, m, t)
        action = "paused"
    elif status in ("paused", "warning"):
        status = "warning"
        if not _warned_since(session, corp_id, m):
            _warn(session, corp_id, m, t)
            action = "warned"
    return Verdict(m.scope, m.target_id, m.messages, m.signals_total, m.rate_per_10k, status, action)


def _numbers(m: Measure) -> dict[str, object]:
    rate = m.rate_per_10k
    return {
        "messages": m.messages,
        "signals": m.signals,
        "rate_per_10k": round(rate, 2) if rate is not None else None,
        "since": m.since.isoformat(),
    }


def _pause(session: Session, corp_id: int, m: Measure, t: ComplaintThresholds) -> None:
    rate = m.rate_per_10k or 0.0
    reason = (
        f"{m.signals_total} complaint signals in {m.messages} messages = {rate:.1f} per 10,000 "
        f"(pause threshold {t.pause_per_10k:g})"
    )
    pause = ReachPause(
        corp_id=corp_id,
        scope=m.scope,
        target_id=m.target_id,
        reason=reason,
        rate_per_10k=round(rate),
        created_by=MONITOR,
    )
    session.add(pause)
    session.flush()
    _audit(session, corp_id, m, "compliance.pause", pause_id=pause.id, threshold=t.pause_per_10k)


def _warn(session: Session, corp_id: int, m: Measure, t: ComplaintThresholds) -> None:
    _audit(session, corp_id, m, "compliance.warn", threshold=t.warn_per_10k)


def _audit(session: Session, corp_id: int, m: Measure, action: str, **detail: object) -> None:
    """The monitor's row about the employee or broadcast it judged, with the numbers it judged on."""
    audit.record(
        session,
        corp_id=corp_id,
        actor=MONITOR,
        action=action,
        object_type=m.scope,
        object_id=m.target_id,
        detail={**_numbers(m), **detail},
    )


def _warned_since(session: Session, corp_id: int, m: Measure) -> bool:
    stmt = select(AuditLog.id).where(
        and_(
            AuditLog.corp_id == corp_id,
            AuditLog.action == "compliance.warn",
            AuditLog.object_type == m.scope,
            AuditLog.object_id == str(m.target_id),
            AuditLog.created_at >= m.since,
        )
    )
    return session.scalar(stmt.limit(1)) is not None
