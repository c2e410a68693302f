"""Reach caps: how many broadcasts one customer (or one group) may receive, counted from slots already taken.

A *slot* is a `broadcast_recipient` row in `SLOT_STATUSES`: `pending` (reserved by a plan) or `sent`.
Excluded, not-sent, not-a-friend, quota-hit and cancelled rows never count, so a send that fails or
that the employee never confirms frees its slot. Windows are calendar days in the corp's time zone
(each row carries its corp-local `send_day`): a 23:30 and a 00:30 send are on different days.

Two families of rules, each a set of windows that must all have room:
  platform  WeCom's receive limits, per broadcast kind (a setting, because WeCom has changed them):
            customer and group broadcasts by `Policy.platform_cap`; personal broadcasts 1 per day;
            Moments 4 per calendar month. Each kind counts only its own kind's slots (per group for
            group broadcasts).
  corp      the corp's own caps (`Policy.corp_caps`: N per D calendar days), across every customer and
            personal broadcast; every cap must have room, so the most restrictive one decides.

A rolling window of D days must have room in *every* D-day window containing the send day, including
windows reaching forward to broadcasts already planned for later days. Only those days can add slots
after the send day, so the windows checked are the one ending on the send day and one ending on each
later planned day within D − 1 days — exact, and usually just one window.

Counting is one GROUP BY over the candidates' slot rows for both families (conditional sums, one per
window); nothing is read per customer. `lock_reach` serialises plans per corp so two plans never both take a last slot.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select, text, union_all
from sqlalchemy.orm import Session

from siyu.broadcasts.models import (
    IS_SENT,
    SLOT_STATUSES,
    Broadcast,
    BroadcastKind,
    BroadcastRecipient,
    BroadcastStatus,
    RecipientStatus,
)
from siyu.compliance.models import PlatformCap
from siyu.compliance.policy import Policy

PERSONAL_PER_DAY = 1
MOMENTS_PER_MONTH = 4
# Kinds whose slots count toward the corp's own caps: messages that land in a customer's chat.
CORP_CAP_KINDS = (BroadcastKind.CUSTOMER, BroadcastKind.PERSONAL)
# Broadcasts whose rows can hold slots (a plan of any of these may have reserved some).
_HOLDING = tuple(s.value for s in BroadcastStatus if s not in (BroadcastStatus.DRAFT, BroadcastStatus.BLOCKED))


@dataclass(frozen=True, slots=True)
class CapRule:
    """`limit` slots per `days` rolling calendar days, or per calendar month (`days` None).

    A month rule with `limit` None allows as many slots as the month has days."""

    limit: int | None
    days: int | None
    label: str


@dataclass(frozen=True, slots=True)
class Window:
    """At most `limit` slots (the new one included) on the corp-local days first … last."""

    first: date
    last: date
    limit: int
    label: str


def platform_rules(policy: Policy, kind: str) -> tuple[CapRule, ...]:
    """WeCom's receive limits for one broadcast kind."""
    if kind == BroadcastKind.PERSONAL:
        return (CapRule(PERSONAL_PER_DAY, 1, "personal: 1 per day"),)
    if kind == BroadcastKind.MOMENT:
        return (CapRule(MOMENTS_PER_MONTH, None, "moments: 4 per month"),)
    day = CapRule(1, 1, "1 per day")
    return {
        PlatformCap.DAYS_IN_MONTH: (day, CapRule(None, None, "days-in-month per month")),
        PlatformCap.WEEKLY_7: (day, CapRule(7, 7, "7 per 7 days")),
        PlatformCap.DAILY_1: (day,),
        PlatformCap.MONTHLY_4: (CapRule(4, None, "4 per month"),),
    }[policy.platform_cap]


def corp_rules(policy: Policy, kind: str) -> tuple[CapRule, ...]:
    """The corp's own caps; they apply to messages in a customer's chat (customer and personal broadcasts)."""
    if kind not in CORP_CAP_KINDS:
        return ()
    return tuple(CapRule(c.count, c.days, f"{c.count} per {c.days} days") for c in policy.corp_caps)


def platform_kinds(kind: str) -> tuple[str, ...]:
    """Whose slots count toward a kind's platform cap: its own kind's."""
    return (str(kind),)


def windows(rules: Iterable[CapRule], day: date, later_days: Iterable[date] = ()) -> list[Window]:
    """The concrete windows to check for a send on `day`, given the later days that already hold slots."""
    later = sorted({d for d in later_days if d > day})
    out: list[Window] = []
    for rule in rules:
        if rule.days is None:
            first = day.replace(day=1)
            month_days = calendar.monthrange(day.year, day.month)[1]
            last = first + timedelta(days=month_days - 1)
            out.append(Window(first, last, rule.limit if rule.limit is not None else month_days, rule.label))
            continue
        span = timedelta(days=rule.days - 1)
        ends = [day, *(d for d in later if d <= day + span)]
        out.extend(Window(end - span, end, int(rule.limit or 0), rule.label) for end in ends)
    return out


def horizon(rules: Iterable[CapRule]) -> int:
    """How many days after the send day a rolling rule can reach (0 when there is none)."""
    return max((r.days - 1 for r in rules if r.days is not None), default=0)


def later_send_days(
    session: Session, *, corp_id: int, day: date, days_after: int, exclude_broadcast_id: int | None = None
) -> set[date]:
    """Days after `day` (within `days_after`) on which other broadcasts of the corp were planned."""
    if days_after <= 0:
        return set()
    stmt = select(Broadcast.send_day).where(
        Broadcast.corp_id == corp_id,
        Broadcast.send_day > day,
        Broadcast.send_day <= day + timedelta(days=days_after),
        Broadcast.status.in_(_HOLDING),
    )
    if exclude_broadcast_id is not None:
        stmt = stmt.where(Broadcast.id != exclude_broadcast_id)
    return {d for d in session.scalars(stmt.distinct()) if d is not None}


@dataclass(frozen=True, slots=True)
class Family:
    """Caps counted together: slots of these broadcast kinds, in these windows; full = one window is full."""

    name: str  # the column (and exclusion reason) it yields: platform_cap / corp_cap
    kinds: tuple[str, ...]
    checks: tuple[Window, ...]


def capped_select(
    *,
    corp_id: int,
    key: str,
    candidates: Select[tuple[int]],
    families: Sequence[Family],
    exclude_broadcast_id: int | None = None,
    few: bool = False,
) -> Select[Any] | None:
    """SELECT key_id and a 0/1 column per family for the candidate keys (`customer_id` or `chat_id`) with
    no room left in some family's window — one pass over their slot rows for every family together.
    None when no family has a window. `candidates` selects the keys to look at (the audience's table).

    Slot rows are read through the broadcasts of the window (their keys' ranges), so the cost follows the
    window, never the history. With `few` customers, their sent slots come through the customer index
    (partial on sent rows) and only the window's unfinished broadcasts are read for slots still pending."""
    families = [f for f in families if f.checks]
    if not families:
        return None
    r = BroadcastRecipient
    column: ColumnElement[int | None] = getattr(r, key)
    windows_ = [w for f in families for w in f.checks]
    first, last = min(w.first for w in windows_), max(w.last for w in windows_)
    in_window = select(Broadcast.id).where(
        Broadcast.corp_id == corp_id,
        Broadcast.kind.in_(sorted({k for f in families for k in f.kinds})),
        Broadcast.send_day.between(first, last),
    )
    if exclude_broadcast_id is not None:
        in_window = in_window.where(Broadcast.id != exclude_broadcast_id)
    of_candidates = select(column.label("key_id"), r.broadcast_id, r.send_day).where(
        r.corp_id == corp_id, column.in_(candidates), r.send_day.between(first, last)
    )
    if few and key == "customer_id":
        unfinished = in_window.where(Broadcast.status != BroadcastStatus.FINISHED)
        sent = of_candidates.where(IS_SENT, r.broadcast_id.in_(in_window))
        pending = of_candidates.where(r.status == RecipientStatus.PENDING, r.broadcast_id.in_(unfinished))
        slots = union_all(sent, pending).subquery("slot")
    else:
        statuses = [s.value for s in SLOT_STATUSES]
        slots = of_candidates.where(r.status.in_(statuses), r.broadcast_id.in_(in_window)).subquery("slot")

    def full(family: Family) -> ColumnElement[bool]:
        counted = Broadcast.kind.in_(list(family.kinds))
        return or_(
            *(
                func.sum(case((and_(counted, slots.c.send_day.between(w.first, w.last)), 1), else_=0)) >= w.limit
                for w in family.checks
            )
        )

    return (
        select(slots.c.key_id, *(case((full(f), 1), else_=0).label(f.name) for f in families))
        .join(Broadcast, Broadcast.id == slots.c.broadcast_id)
        .group_by(slots.c.key_id)
        .having(or_(*(full(f) for f in families)))
    )


def lock_reach(session: Session, corp_id: int) -> None:
    """Serialise slot-taking per corp until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock on the corp (READ COMMITTED: every statement after it
    sees the slots of plans committed before it). SQLite: a write statement, which takes the database's
    single write lock now rather than at the plan's first insert — so a concurrent plan waits here, before
    counting, instead of counting the same free slot. Call it before reading any slot counts."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"reach:{corp_id}"})
    else:
        session.execute(text("DELETE FROM broadcast_recipient WHERE 1 = 0"))


def quiet_hours_end(at: datetime, zone: ZoneInfo, start: str, end: str) -> datetime | None:
    """The end of the corp's quiet hours (UTC) when `at` falls inside them, else None.

    Quiet hours are corp-local HH:MM, start included and end excluded, and may span midnight
    (21:00–08:00); an empty or zero-length setting means none. A send at 22:00 moves to 08:00 the next
    morning, one at 07:00 to 08:00 the same morning."""
    if not start or not end or start == end:
        return None
    first, last = _hhmm(start), _hhmm(end)
    local = at.astimezone(zone)
    now = local.time()
    if first < last:
        inside, end_day = first <= now < last, local.date()
    else:
        inside = now >= first or now < last
        end_day = local.date() + timedelta(days=1) if now >= first else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, last, tzinfo=zone).astimezone(UTC)


def _hhmm(value: str) -> time:
    hours, minutes = (int(part) for part in value.split(":"))
    return time(hours % 24, minutes)
