"""API shapes for the dashboard numbers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class TrendDay(BaseModel):
    day: str  # YYYY-MM-DD in the corp's time zone
    new: int
    lost: int
    net: int
    total: int  # customers at the end of the day (follows-based estimate, see service.trend)


class SyncStatusRead(BaseModel):
    id: int
    scope: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    error: str


class InboxHealth(BaseModel):
    pending: int
    failed: int


class DashboardRead(BaseModel):
    timezone: str
    today: str
    customers_total: int
    new_today: int
    lost_today: int
    employees: int
    groups: int
    trend: list[TrendDay]
    last_sync: SyncStatusRead | None
    inbox: InboxHealth
