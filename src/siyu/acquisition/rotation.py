"""Keeping each code's users right: schedules, daily caps with backups, the next-day restore, expiry.

`do_rotate_corp` runs every minute (worker schedule) and after each attributed add of a capped
channel; it recomputes who should serve every active code (`codes.serving`) and pushes only the
codes whose users changed. Days are calendar days in the corp's time zone, so yesterday's caps
lift at local midnight.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.acquisition import codes, outbox
from siyu.acquisition.models import Channel, CodeStatus
from siyu.analytics.service import corp_zone, day_start_utc
from siyu.contacts.models import Employee, EmployeeStatus, Follow
from siyu.core import audit
from siyu.core.clock import now_utc
from siyu.corp.models import Corp

ACTOR = "siyu:rotation"


@dataclass(slots=True)
class Rotation:
    changed: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)


def adds_today(session: Session, corp: Corp, channel_ids: Sequence[int], at: datetime) -> dict[int, dict[str, int]]:
    """New follows per channel and employee since local midnight: one GROUP BY over the channel index."""
    if not channel_ids:
        return {}
    zone = corp_zone(corp)
    since = day_start_utc(at.astimezone(zone).date(), zone)
    rows = session.execute(
        select(Follow.channel_id, Employee.userid, func.count())
        .join(Employee, Employee.id == Follow.employee_id)
        .where(Follow.channel_id.in_(sorted(channel_ids)), Follow.created_at >= since)
        .group_by(Follow.channel_id, Employee.userid)
    ).all()
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for channel_id, userid, count in rows:
        found[channel_id][userid] = count
    return found


def active_userids(session: Session, corp_id: int, userids: Iterable[str]) -> set[str]:
    wanted = sorted(set(userids))
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(Employee.userid).where(
                Employee.corp_id == corp_id, Employee.userid.in_(wanted), Employee.status == EmployeeStatus.ACTIVE
            )
        )
    )


def _named(channel: Channel) -> set[str]:
    scheduled = {str(u) for slot in channel.schedule for u in slot.get("userids", [])}  # type: ignore[attr-defined]
    return {*channel.userids, *channel.backup_userids, *scheduled}


def apply_serving(
    session: Session,
    channel: Channel,
    *,
    at: datetime | None = None,
    counts: dict[str, int] | None = None,
    available: set[str] | None = None,
) -> bool:
    """Set the users WeCom should serve for the channel now; True if they changed.

    Employees who left or were disabled are skipped (WeCom refuses them on a code).
    """
    at = at or now_utc()
    corp = session.get(Corp, channel.corp_id)
    assert corp is not None
    if counts is None:
        counts = adds_today(session, corp, [channel.id], at).get(channel.id, {}) if channel.daily_cap else {}
    if available is None:
        available = active_userids(session, channel.corp_id, _named(channel))
    plan = codes.serving(
        userids=channel.userids,
        party_ids=channel.party_ids,
        backup_userids=channel.backup_userids,
        schedule=channel.schedule,
        daily_cap=channel.daily_cap,
        adds_today=counts,
        at=at.astimezone(corp_zone(corp)),
        available=available,
    )
    if not plan.userids and not plan.party_ids:
        return False  # nobody can serve: keep what WeCom has rather than send an empty code
    if plan.userids == channel.live_userids and plan.party_ids == channel.live_party_ids:
        return False
    channel.live_userids, channel.live_party_ids = plan.userids, plan.party_ids
    session.flush()
    return True


def do_rotate_channels(
    session: Session, corp: Corp, channels: Sequence[Channel], *, at: datetime | None = None
) -> Rotation:
    at = at or now_utc()
    result = Rotation()
    capped = [c.id for c in channels if c.daily_cap]
    counts = adds_today(session, corp, capped, at)
    available = active_userids(session, corp.corp_id, {u for c in channels for u in _named(c)})
    for channel in channels:
        if channel.valid_until is not None and channel.valid_until <= at:
            channel.status = CodeStatus.EXPIRED
            session.flush()
            outbox_id = outbox.enqueue_channel_delete(session, channel, created_by=ACTOR)
            audit_channel(session, channel, "channel.expire", outbox_id=outbox_id)
            result.expired.append(channel.id)
            continue
        before = list(channel.live_userids)
        if apply_serving(session, channel, at=at, counts=counts.get(channel.id, {}), available=available):
            outbox_id = outbox.enqueue_channel_push(session, channel, created_by=ACTOR)
            audit_channel(
                session, channel, "channel.rotate", before=before, after=channel.live_userids, outbox_id=outbox_id
            )
            result.changed.append(channel.id)
    return result


def do_rotate_corp(session: Session, corp_id: int, *, at: datetime | None = None) -> Rotation:
    corp = session.get(Corp, corp_id)
    if corp is None:
        return Rotation()
    channels = list(
        session.scalars(
            select(Channel).where(Channel.corp_id == corp_id, Channel.status == CodeStatus.ACTIVE).order_by(Channel.id)
        )
    )
    return do_rotate_channels(session, corp, channels, at=at)


def audit_channel(session: Session, channel: Channel, action: str, *, actor: str = ACTOR, **detail: object) -> None:
    """An audit row for something siyu itself did to a channel (rotation, expiry, reconcile)."""
    audit.record(
        session,
        corp_id=channel.corp_id,
        actor=actor,
        action=action,
        object_type="channel",
        object_id=channel.id,
        detail=detail,
    )
