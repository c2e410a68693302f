"""A corp's reach policy as one immutable value, and who is paused.

Every planner and the complaint monitor read the policy through `load_policy`; a corp without a
`reach_policy` row gets `DEFAULT_POLICY`. Thresholds are per 10,000 messages sent, modelled on
carrier SMS rules (warn early, pause well before a platform would restrict the account).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.compliance.models import PlatformCap, ReachPause, ReachPolicy


@dataclass(frozen=True, slots=True)
class CorpCap:
    """At most `count` broadcasts reach one customer within `days` calendar days (corp time zone)."""

    count: int
    days: int


@dataclass(frozen=True, slots=True)
class ComplaintThresholds:
    warn_per_10k: float = 5.0  # signals per 10,000 messages sent in the window → warning in the audit log
    pause_per_10k: float = 20.0  # → the employee (or broadcast) is paused
    min_messages: int = 50  # no verdict on fewer messages than this
    window_days: int = 7
    delete_within_hours: int = 48  # a deletion this soon after a message counts as a signal


@dataclass(frozen=True, slots=True)
class Policy:
    platform_cap: PlatformCap = PlatformCap.DAYS_IN_MONTH
    corp_caps: tuple[CorpCap, ...] = (CorpCap(count=2, days=7),)
    quiet_start: str = "21:00"  # corp-local; "" disables quiet hours
    quiet_end: str = "08:00"
    sensitive_words: tuple[str, ...] = ()  # the corp's words, checked with the built-in defaults
    link_allowlist: tuple[str, ...] = ()  # host suffixes allowed in links (besides the corp's own materials)
    thresholds: ComplaintThresholds = field(default_factory=ComplaintThresholds)
    moments_eligible: bool = True
    personal_max_recipients: int = 200


DEFAULT_POLICY = Policy()


def policy_from_row(row: ReachPolicy | None) -> Policy:
    if row is None:
        return DEFAULT_POLICY
    thresholds = ComplaintThresholds(**{k: v for k, v in (row.complaint_thresholds or {}).items() if k in _T_FIELDS})
    return replace(
        DEFAULT_POLICY,
        platform_cap=PlatformCap(row.platform_cap),
        corp_caps=tuple(CorpCap(count=int(c["count"]), days=int(c["days"])) for c in row.corp_caps or ()),
        quiet_start=row.quiet_start or "",
        quiet_end=row.quiet_end or "",
        sensitive_words=tuple(row.sensitive_words or ()),
        link_allowlist=tuple(row.link_allowlist or ()),
        thresholds=thresholds,
        moments_eligible=row.moments_eligible,
    )


_T_FIELDS = frozenset(ComplaintThresholds.__dataclass_fields__)


def load_policy(session: Session, corp_id: int) -> Policy:
    return policy_from_row(session.get(ReachPolicy, corp_id))


def paused_employee_ids(session: Session, corp_id: int) -> set[int]:
    """Employees currently paused (a pause without `lifted_at`)."""
    return set(
        session.scalars(
            select(ReachPause.target_id).where(
                ReachPause.corp_id == corp_id, ReachPause.scope == "employee", ReachPause.lifted_at.is_(None)
            )
        )
    )


def is_broadcast_paused(session: Session, corp_id: int, broadcast_id: int) -> bool:
    return (
        session.scalar(
            select(ReachPause.id).where(
                ReachPause.corp_id == corp_id,
                ReachPause.scope == "broadcast",
                ReachPause.target_id == broadcast_id,
                ReachPause.lifted_at.is_(None),
            )
        )
        is not None
    )
