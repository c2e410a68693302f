"""Dashboard numbers: set-based counts in the actor's scope, days in the corp's time zone.

Every figure is one aggregate statement (GROUP BY day for the trend), so the dashboard costs
the same handful of queries at 1,000 or 1,000,000 customers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Select, func, literal_column, select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, employee_scope, group_scope
from siyu.analytics.schemas import DashboardRead, InboxHealth, SyncStatusRead, TrendDay
from siyu.callbacks.models import CallbackInbox, InboxStatus
from siyu.contacts.models import Employee, EmployeeStatus, Follow, FollowStatus
from siyu.core import clock
from siyu.corp.models import Corp
from siyu.groups.models import GroupChat, GroupStatus
from siyu.sync.models import SyncRun

TREND_DAYS = 30
# A transfer hands the customer to a colleague (a new follow appears), so it is not a loss.
LOST_STATUSES = (
    FollowStatus.CUSTOMER_DELETED_EMPLOYEE.value,
    FollowStatus.EMPLOYEE_DELETED_CUSTOMER.value,
    FollowStatus.REMOVED.value,
)


def corp_zone(corp: Corp) -> ZoneInfo:
    try:
        return ZoneInfo(corp.timezone or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def local_today(zone: ZoneInfo) -> date:
    return clock.now_utc().astimezone(zone).date()


def day_start_utc(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def local_day(session: Session, column: Any, zone: ZoneInfo) -> ColumnElement[Any]:
    """The calendar day of a UTC timestamp column in `zone`, as SQL.

    SQLite has no time zones, so it shifts by the zone's current UTC offset (exact for zones
    without daylight saving, such as China's).
    """
    if session.get_bind().dialect.name == "postgresql":
        # Literal, not a bound parameter: PostgreSQL must see the SELECT and GROUP BY expressions as equal.
        return func.date(func.timezone(literal_column(_quoted(zone.key)), column))
    offset = clock.now_utc().astimezone(zone).utcoffset() or timedelta(0)
    return func.date(column, literal_column(_quoted(f"{int(offset.total_seconds() // 60):+d} minutes")))


def _quoted(text: str) -> str:
    """A SQL string literal for a zone name or offset (ZoneInfo keys hold no quotes; escaped anyway)."""
    return "'" + text.replace("'", "''") + "'"


def _follow_scope(actor: Actor) -> ColumnElement[bool]:
    scope = Follow.corp_id == actor.corp_id
    if actor.scope_employee_ids is not None:
        scope = scope & Follow.employee_id.in_(sorted(actor.scope_employee_ids))
    return scope


def count_customers(session: Session, *, actor: Actor) -> int:
    """Distinct customers with at least one active follow in the actor's scope."""
    stmt = select(func.count(func.distinct(Follow.customer_id))).where(
        _follow_scope(actor), Follow.status == FollowStatus.ACTIVE.value
    )
    return session.scalar(stmt) or 0


def _per_day(session: Session, stmt: Select[Any]) -> dict[str, int]:
    return {str(day): int(n) for day, n in session.execute(stmt) if day is not None}


def trend(session: Session, *, actor: Actor, zone: ZoneInfo, total_now: int, days: int = TREND_DAYS) -> list[TrendDay]:
    """New and lost follows per local day for the last `days` days, and the running total.

    The total at the end of each day is today's customer count minus the net change of the days
    after it — an estimate (a customer with two follows counts once in the total but twice in new).
    """
    today = local_today(zone)
    first = today - timedelta(days=days - 1)
    since = day_start_utc(first, zone)
    added_day = local_day(session, Follow.created_at, zone)
    ended_day = local_day(session, Follow.ended_at, zone)
    new = _per_day(
        session,
        select(added_day, func.count()).where(_follow_scope(actor), Follow.created_at >= since).group_by(added_day),
    )
    lost = _per_day(
        session,
        select(ended_day, func.count())
        .where(_follow_scope(actor), Follow.ended_at >= since, Follow.status.in_(LOST_STATUSES))
        .group_by(ended_day),
    )
    return _running_totals([first + timedelta(days=i) for i in range(days)], new, lost, total_now)


def _running_totals(days: list[date], new: dict[str, int], lost: dict[str, int], total_now: int) -> list[TrendDay]:
    out: list[TrendDay] = []
    total = total_now
    for day in reversed(days):
        key = day.isoformat()
        n, lo = new.get(key, 0), lost.get(key, 0)
        out.append(TrendDay(day=key, new=n, lost=lo, net=n - lo, total=max(total, 0)))
        total -= n - lo
    return list(reversed(out))


def count_employees(session: Session, *, actor: Actor) -> int:
    stmt = (
        select(func.count())
        .select_from(Employee)
        .where(employee_scope(actor), Employee.status == EmployeeStatus.ACTIVE.value)
    )
    return session.scalar(stmt) or 0


def count_groups(session: Session, *, actor: Actor) -> int:
    stmt = (
        select(func.count())
        .select_from(GroupChat)
        .where(group_scope(actor), GroupChat.status == GroupStatus.ACTIVE.value)
    )
    return session.scalar(stmt) or 0


def get_last_sync(session: Session, *, corp_id: int) -> SyncStatusRead | None:
    run = session.scalars(
        select(SyncRun).where(SyncRun.corp_id == corp_id).order_by(SyncRun.id.desc()).limit(1)
    ).first()
    if run is None:
        return None
    return SyncStatusRead(
        id=run.id,
        scope=run.scope,
        status=run.status,
        started_at=run.started_at,
        finished_at=run.finished_at,
        error=run.error[:500],
    )


def get_inbox_health(session: Session, *, corp_id: int) -> InboxHealth:
    stmt = (
        select(CallbackInbox.status, func.count())
        .where(
            CallbackInbox.corp_id == corp_id,
            CallbackInbox.status.in_([InboxStatus.PENDING.value, InboxStatus.FAILED.value]),
        )
        .group_by(CallbackInbox.status)
    )
    counts = {status: int(n) for status, n in session.execute(stmt)}
    return InboxHealth(pending=counts.get(InboxStatus.PENDING, 0), failed=counts.get(InboxStatus.FAILED, 0))


def get_dashboard(session: Session, *, actor: Actor) -> DashboardRead:
    corp = session.get(Corp, actor.corp_id)
    assert corp is not None, "an actor always belongs to a corp"
    zone = corp_zone(corp)
    total_now = count_customers(session, actor=actor)
    days = trend(session, actor=actor, zone=zone, total_now=total_now)
    return DashboardRead(
        timezone=zone.key,
        today=local_today(zone).isoformat(),
        customers_total=total_now,
        new_today=days[-1].new,
        lost_today=days[-1].lost,
        employees=count_employees(session, actor=actor),
        groups=count_groups(session, actor=actor),
        trend=days,
        last_sync=get_last_sync(session, corp_id=corp.corp_id),
        inbox=get_inbox_health(session, corp_id=corp.corp_id),
    )
