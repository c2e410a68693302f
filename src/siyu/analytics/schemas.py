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


# --- channel funnels (analytics/funnel.py) ------------------------------------------------------


class RetentionWindow(BaseModel):
    """Of the follows added in the range, those old enough to judge: how many were deleted within `days`."""

    days: int
    measurable: int  # the denominator: follows added in the range at least `days` days ago
    deleted: int  # of those, ended with a lost status within `days` days of being added
    deleted_rate: float | None  # deleted / measurable; None: not yet measurable (no follow old enough)
    retained_rate: float | None  # 1 - deleted_rate


class FunnelCounts(BaseModel):
    new: int  # follows added in the range
    lost: int  # follows ended (lost statuses) in the range, whenever they were added
    net: int  # new - lost
    retention: list[RetentionWindow]
    # Later funnel stages (customer replied, ordered …) counted over the same added-in-range follows.
    stages: dict[str, int] = {}


class ChannelFunnelRow(FunnelCounts):
    """One channel (by=channel), or one channel group with its channels summed (by=group, channel_id None)."""

    channel_id: int | None
    channel_name: str
    channel_status: str
    group_id: int | None  # None: the channel belongs to no group
    group_name: str
    channels: int  # channels summed in this row (1 for a channel row)


class ChannelFunnelComparison(BaseModel):
    start: str  # YYYY-MM-DD, first day included (corp time zone)
    end: str  # YYYY-MM-DD, last day included
    timezone: str
    by: str  # "channel" or "group"
    rows: list[ChannelFunnelRow]
    totals: FunnelCounts


class FunnelDay(BaseModel):
    day: str
    new: int
    lost: int
    net: int


class EmployeeFunnelRow(BaseModel):
    employee_id: int
    userid: str
    name: str
    new: int
    lost: int
    net: int
    measurable_7d: int
    deleted_7d: int
    retained_7d_rate: float | None  # None: no follow added in the range is 7 days old yet


class ChannelRef(BaseModel):
    id: int
    name: str
    status: str
    group_id: int | None
    group_name: str


class ChannelFunnelRead(BaseModel):
    start: str
    end: str
    timezone: str
    channel: ChannelRef
    totals: FunnelCounts
    days: list[FunnelDay]
    employees: list[EmployeeFunnelRow]
