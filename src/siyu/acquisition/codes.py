"""Pure rules of a channel code: its `state`, and who should serve it right now.

`serving` decides the users WeCom's Contact Me config should list at a moment: the schedule
slot in force (else the configured employees), minus those who reached the daily cap, falling
back to the backup employees when everyone scheduled is capped. The rotation job and the
callback handler both call it, so schedules, caps and the next-day restore are one rule.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime

_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o/1/l: states get read aloud and typed


def new_state(prefix: str) -> str:
    """A unique-enough `state` (≤ 30 chars): prefix + 12 random characters (60 bits)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def slot_applies(slot: Mapping[str, object], at: datetime) -> bool:
    """`at` is corp-local. An overnight slot (end < start) runs into the next morning of its weekday."""
    weekdays = [int(d) for d in slot.get("weekdays", [])]  # type: ignore[attr-defined]
    start, end = _minutes(str(slot["start"])), _minutes(str(slot["end"]))
    now = at.hour * 60 + at.minute
    if start < end:
        return at.isoweekday() in weekdays and start <= now < end
    yesterday = (at.isoweekday() - 2) % 7 + 1
    return (at.isoweekday() in weekdays and now >= start) or (yesterday in weekdays and now < end)


@dataclass(frozen=True, slots=True)
class Serving:
    userids: list[str]
    party_ids: list[int]
    # Every employee who could serve is capped: the backups (or, without backups, everyone) serve over the cap.
    over_cap: bool = False


def serving(
    *,
    userids: Sequence[str],
    party_ids: Sequence[int],
    backup_userids: Sequence[str],
    schedule: Sequence[Mapping[str, object]],
    daily_cap: int | None,
    adds_today: Mapping[str, int],
    at: datetime,
    available: Set[str] | None = None,
) -> Serving:
    """Who should serve the code at corp-local time `at`, given today's adds per employee through it.

    `available`: the employees who can serve at all (active in WeCom); others are skipped as if capped.
    """
    scheduled = next((s for s in schedule if slot_applies(s, at)), None)
    base = [str(u) for u in scheduled["userids"]] if scheduled else list(userids)  # type: ignore[attr-defined]
    if available is not None:
        base = [u for u in base if u in available]
        backup_userids = [u for u in backup_userids if u in available]
        if not base and not backup_userids and not parties_of(scheduled, party_ids):
            return Serving([], [], over_cap=True)
    parties = parties_of(scheduled, party_ids)
    if not daily_cap:
        return Serving(_unique(base), parties)
    under = [u for u in base if adds_today.get(u, 0) < daily_cap]
    if under or (parties and not base):
        return Serving(_unique(under), parties)
    backups = [u for u in backup_userids if adds_today.get(u, 0) < daily_cap]
    if backups:
        return Serving(_unique(backups), [])
    # Nobody under the cap: WeCom needs someone on the code, so the backups (else the scheduled) carry on.
    return Serving(_unique(list(backup_userids) or base), [] if backup_userids else parties, over_cap=True)


def parties_of(scheduled: Mapping[str, object] | None, party_ids: Sequence[int]) -> list[int]:
    """A schedule slot names employees only; the configured departments serve outside the slots."""
    return [] if scheduled else list(party_ids)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def render_text(template: str, *, nickname: str, employee: str) -> str:
    """Fill the welcome variables; unknown braces are left as written."""
    for names, value in ((("{nickname}", "{客户昵称}"), nickname), (("{employee}", "{员工姓名}"), employee)):
        for name in names:
            template = template.replace(name, value)
    return template
