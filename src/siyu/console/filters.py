"""Template filters shared by the console pages: local times, JSON shown readably.

Installed into the console's Jinja environment by the route modules that use them
(`install(env)` is idempotent).
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment

DEFAULT_ZONE = "Asia/Shanghai"


def local_time(value: datetime | None, zone: str = DEFAULT_ZONE, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    try:
        tz = ZoneInfo(zone or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo(DEFAULT_ZONE)
    return value.astimezone(tz).strftime(fmt)


def pretty_json(value: object) -> str:
    """Audit details are stored as JSON text; indent them for people (Chinese kept as is)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def install(env: Environment) -> None:
    env.filters.setdefault("localtime", local_time)
    env.filters.setdefault("pretty_json", pretty_json)
