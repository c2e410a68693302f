"""The one source of the current time, so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def from_timestamp(ts: int | float | str | None) -> datetime | None:
    if ts in (None, "", 0, "0"):
        return None
    return datetime.fromtimestamp(int(ts), UTC)
