"""Compliance reads: the policy, opt-outs (keyset pages), signals, pauses, and the harassment budget."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, require
from siyu.analytics.service import corp_zone
from siyu.broadcasts.models import SLOT_STATUSES, Broadcast, BroadcastKind, BroadcastRecipient, RecipientStatus
from siyu.compliance import caps, monitor
from siyu.compliance.content import DEFAULT_SENSITIVE_WORDS
from siyu.compliance.models import ComplaintSignal, OptOut, ReachPause, ReachPolicy
from siyu.compliance.policy import Policy, load_policy
from siyu.compliance.schemas import (
    BudgetRead,
    BudgetRow,
    CapUsage,
    OptOutPage,
    OptOutRead,
    PauseRead,
    PolicyRead,
    SignalRead,
)
from siyu.contacts.cursor import decode_cursor, encode_cursor
from siyu.contacts.models import Customer, Employee
from siyu.core.clock import now_utc
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp.models import Corp


def get_policy(session: Session, *, actor: Actor) -> PolicyRead:
    require(actor, "compliance", "read")
    row = session.get(ReachPolicy, actor.corp_id)
    return PolicyRead.of(
        load_policy(session, actor.corp_id),
        defaults=DEFAULT_SENSITIVE_WORDS,
        updated_by=row.updated_by if row is not None else "",
        updated_at=row.updated_at if row is not None else None,
    )


# --- opt-outs -------------------------------------------------------------------------------------


def _opt_out_read(row: OptOut, name: str) -> OptOutRead:
    return OptOutRead(
        customer_id=row.customer_id,
        customer_name=name,
        source=row.source,
        recorded_by=row.recorded_by,
        note=row.note,
        broadcast_id=row.broadcast_id,
        created_at=row.created_at,
    )


def get_opt_out(session: Session, *, corp_id: int, customer_id: int) -> OptOutRead | None:
    row = session.get(OptOut, (corp_id, customer_id))
    if row is None:
        return None
    customer = session.get(Customer, customer_id)
    return _opt_out_read(row, customer.name if customer is not None else "")


def list_opt_outs(session: Session, *, actor: Actor, after: str | None = None, limit: int = 50) -> OptOutPage:
    """Newest first, keyset-paged on (created_at, customer_id)."""
    require(actor, "compliance", "read")
    stmt = (
        select(OptOut, Customer.name)
        .join(Customer, Customer.id == OptOut.customer_id)
        .where(OptOut.corp_id == actor.corp_id)
        .order_by(OptOut.created_at.desc(), OptOut.customer_id.desc())
    )
    if after:
        at, customer_id = decode_cursor(after, "opt_outs")
        when = datetime.fromisoformat(str(at))
        stmt = stmt.where(
            or_(OptOut.created_at < when, and_(OptOut.created_at == when, OptOut.customer_id < int(customer_id)))
        )
    rows = session.execute(stmt.limit(limit + 1)).all()
    items = [_opt_out_read(row, name) for row, name in rows[:limit]]
    last = rows[limit - 1][0] if len(rows) > limit else None
    cursor = encode_cursor("opt_outs", last.created_at.isoformat(), last.customer_id) if last is not None else None
    return OptOutPage(items=items, next_cursor=cursor)


# --- signals and pauses ---------------------------------------------------------------------------


def _names(
    session: Session, model: type[Customer] | type[Employee] | type[Broadcast], ids: Iterable[int | None]
) -> dict[int, str]:
    """Display names by id: the name, else the WeCom id (customers, employees)."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    if model is Employee:
        cols = (Employee.id, Employee.name, Employee.userid)
    elif model is Customer:
        cols = (Customer.id, Customer.name, Customer.external_userid)
    else:
        cols = (Broadcast.id, Broadcast.name, Broadcast.name)
    stmt = select(*cols).where(cols[0].in_(wanted))
    return {pk: name or fallback for pk, name, fallback in session.execute(stmt)}


def recent_signals(session: Session, *, actor: Actor, limit: int = 50) -> list[SignalRead]:
    require(actor, "compliance", "read")
    stmt = (
        select(ComplaintSignal)
        .where(ComplaintSignal.corp_id == actor.corp_id)
        .order_by(ComplaintSignal.occurred_at.desc(), ComplaintSignal.id.desc())
        .limit(limit)
    )
    return signal_reads(session, list(session.scalars(stmt)))


def signal_reads(session: Session, signals: list[ComplaintSignal]) -> list[SignalRead]:
    customers = _names(session, Customer, (s.customer_id for s in signals))
    employees = _names(session, Employee, (s.employee_id for s in signals))
    broadcasts = _names(session, Broadcast, (s.broadcast_id for s in signals))
    return [
        SignalRead(
            id=s.id,
            kind=s.kind,
            customer_id=s.customer_id,
            customer_name=customers.get(s.customer_id or 0, ""),
            employee_id=s.employee_id,
            employee_name=employees.get(s.employee_id or 0, ""),
            broadcast_id=s.broadcast_id,
            broadcast_name=broadcasts.get(s.broadcast_id or 0, ""),
            detail=s.detail,
            occurred_at=s.occurred_at,
        )
        for s in signals
    ]


def list_pauses(session: Session, *, actor: Actor, active: bool | None = None, limit: int = 100) -> list[PauseRead]:
    require(actor, "compliance", "read")
    stmt = select(ReachPause).where(ReachPause.corp_id == actor.corp_id)
    if active is not None:
        stmt = stmt.where(ReachPause.lifted_at.is_(None) if active else ReachPause.lifted_at.is_not(None))
    pauses = list(session.scalars(stmt.order_by(ReachPause.created_at.desc(), ReachPause.id.desc()).limit(limit)))
    return pause_reads(session, pauses)


def pause_reads(session: Session, pauses: list[ReachPause]) -> list[PauseRead]:
    employees = _names(session, Employee, (p.target_id for p in pauses if p.scope == "employee"))
    broadcasts = _names(session, Broadcast, (p.target_id for p in pauses if p.scope == "broadcast"))
    return [
        PauseRead(
            id=p.id,
            scope=p.scope,
            target_id=p.target_id,
            target_name=(employees if p.scope == "employee" else broadcasts).get(p.target_id, ""),
            reason=p.reason,
            rate_per_10k=p.rate_per_10k,
            created_by=p.created_by,
            created_at=p.created_at,
            lifted_at=p.lifted_at,
            lifted_by=p.lifted_by,
        )
        for p in pauses
    ]


# --- the harassment budget ------------------------------------------------------------------------


def budget(session: Session, *, actor: Actor) -> BudgetRead:
    """How much of its complaint budget each employee, broadcast and the corp has used in the window."""
    require(actor, "compliance", "read")
    corp_id = actor.corp_id
    policy = load_policy(session, corp_id)
    t = policy.thresholds
    since = now_utc() - timedelta(days=t.window_days)
    paused = monitor.active_pauses(session, corp_id)
    rows = {
        scope: _budget_rows(session, corp_id, policy, scope, since, paused)
        for scope in ("employee", "broadcast", "corp")
    }
    corp_rows = rows["corp"] or [_budget_row(monitor.Measure("corp", 0, since), "", policy, None)]
    corp = session.get(Corp, corp_id)
    zone = corp_zone(corp) if corp is not None else ZoneInfo("Asia/Shanghai")
    today = now_utc().astimezone(zone).date()
    return BudgetRead(
        window_days=t.window_days,
        since=since,
        warn_per_10k=t.warn_per_10k,
        pause_per_10k=t.pause_per_10k,
        min_messages=t.min_messages,
        corp=corp_rows[0].model_copy(update={"name": corp.name if corp is not None else ""}),
        employees=rows["employee"],
        broadcasts=rows["broadcast"],
        caps=cap_usage(session, corp_id, policy, today),
        customers_reached_this_month=_reached(session, corp_id, today.replace(day=1)),
        pauses=list_pauses(session, actor=actor, active=True),
        recent_signals=recent_signals(session, actor=actor, limit=20),
    )


def _budget_rows(
    session: Session,
    corp_id: int,
    policy: Policy,
    scope: monitor.Scope,
    since: datetime,
    paused: dict[tuple[str, int], ReachPause],
) -> list[BudgetRow]:
    measures = monitor.measure_with_lifts(session, corp_id, scope, since=since)
    for (pause_scope, target), _pause in paused.items():  # a paused target is shown even when quiet
        if pause_scope == scope and target not in measures:
            measures[target] = monitor.Measure(scope, target, since)
    model = Employee if scope == "employee" else Broadcast
    names = _names(session, model, measures) if scope != "corp" else {}
    rows = [
        _budget_row(m, names.get(m.target_id, ""), policy, paused.get((scope, m.target_id))) for m in measures.values()
    ]
    return sorted(rows, key=lambda r: (-(r.rate_per_10k or 0), -r.messages, r.target_id))


def _budget_row(m: monitor.Measure, name: str, policy: Policy, pause: ReachPause | None) -> BudgetRow:
    t = policy.thresholds
    status = "paused" if pause is not None else monitor.judge(m, t)
    if status == "paused" and pause is None:
        status = "warning" if m.scope == "corp" else "paused"  # the next evaluation pauses it
    rate = m.rate_per_10k
    return BudgetRow(
        scope=m.scope,
        target_id=m.target_id,
        name=name,
        messages=m.messages,
        signals=dict(sorted(m.signals.items())),
        signals_total=m.signals_total,
        rate_per_10k=round(rate, 2) if rate is not None else None,
        status=status,
        budget_used=round(rate / t.pause_per_10k, 4) if rate is not None else None,
        pause_id=pause.id if pause is not None else None,
        since=m.since,
    )


# --- per-customer cap usage -----------------------------------------------------------------------


def cap_usage(session: Session, corp_id: int, policy: Policy, today: date) -> list[CapUsage]:
    """Per cap window the planner would check for an enterprise broadcast today (`compliance.caps`), how many
    customers have no slot left in it — slots held by messages sent or planned, by corp-local send day."""
    kind = BroadcastKind.CUSTOMER
    families = (
        ("platform", caps.platform_rules(policy, kind), caps.platform_kinds(kind)),
        ("corp", caps.corp_rules(policy, kind), caps.CORP_CAP_KINDS),
    )
    usages = []
    for family, rules, kinds in families:
        for rule, window in zip(rules, caps.windows(rules, today), strict=True):
            usages.append(
                CapUsage(
                    label=window.label,
                    kind=family,  # type: ignore[arg-type]
                    limit=window.limit,
                    days=rule.days or 0,
                    customers_at_cap=_at_cap(session, corp_id, window, kinds),
                )
            )
    return usages


def _at_cap(session: Session, corp_id: int, window: caps.Window, kinds: Sequence[str]) -> int:
    r = BroadcastRecipient
    # through the window's broadcasts (their keys' ranges): the cost follows the window, not the history
    in_window = select(Broadcast.id).where(
        Broadcast.corp_id == corp_id,
        Broadcast.kind.in_([str(k) for k in kinds]),
        Broadcast.send_day.between(window.first, window.last),
    )
    per_customer = (
        select(r.customer_id)
        .where(
            r.corp_id == corp_id,
            r.broadcast_id.in_(in_window),
            r.customer_id.is_not(None),
            r.status.in_([s.value for s in SLOT_STATUSES]),
            r.send_day.between(window.first, window.last),
        )
        .group_by(r.customer_id)
        .having(func.count() >= window.limit)
        .subquery()
    )
    return int(session.scalar(select(func.count()).select_from(per_customer)) or 0)


def _reached(session: Session, corp_id: int, first: date) -> int:
    """Customers a message was sent to since `first` (corp-local send day)."""
    r = BroadcastRecipient
    stmt = (
        select(r.customer_id)
        .where(
            r.corp_id == corp_id,
            r.customer_id.is_not(None),
            r.status == RecipientStatus.SENT,
            r.send_day >= first,
        )
        .distinct()
        .subquery()
    )
    return int(session.scalar(select(func.count()).select_from(stmt)) or 0)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= 500:
        raise DomainError(ErrorCode.INVALID, "limit: 1 … 500")
    return limit
