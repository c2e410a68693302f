"""REST API: the dashboard numbers and the channel funnels."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from siyu.accounts.access import require
from siyu.accounts.auth import ActorDep
from siyu.analytics import funnel, service
from siyu.analytics.schemas import ChannelFunnelComparison, ChannelFunnelRead, DashboardRead
from siyu.core.deps import SessionDep

router = APIRouter(prefix="/api", tags=["dashboard"])

DayQuery = Annotated[str | None, Query(description="YYYY-MM-DD in the corp's time zone")]


@router.get("/dashboard", response_model=DashboardRead)
def get_dashboard(session: SessionDep, actor: ActorDep) -> DashboardRead:
    require(actor, "dashboard", "read")
    return service.get_dashboard(session, actor=actor)


def _comparison(
    session: SessionDep,
    actor: ActorDep,
    start: DayQuery = None,
    end: DayQuery = None,
    group_id: int | None = None,
    channel_id: Annotated[list[int] | None, Query()] = None,
    by: Literal["channel", "group"] = "channel",
) -> ChannelFunnelComparison:
    require(actor, "channel", "read")
    rng = funnel.parse_range(start, end, funnel.zone_of(session, actor))
    return funnel.compare_channels(
        session, actor=actor, rng=rng, group_id=group_id, channel_ids=channel_id or [], by=by
    )


@router.get("/funnels/channels", response_model=ChannelFunnelComparison, tags=["funnels"])
def compare_channels(
    session: SessionDep,
    actor: ActorDep,
    start: DayQuery = None,
    end: DayQuery = None,
    group_id: int | None = None,
    channel_id: Annotated[list[int] | None, Query()] = None,
    by: Literal["channel", "group"] = "channel",
) -> ChannelFunnelComparison:
    """Channels (or, with by=group, channel groups) side by side: new, lost, net and 1/7/30-day deletions.

    Default range: the last 30 days. At most 366 days; filter by a group or by repeated channel_id.
    """
    return _comparison(session, actor, start, end, group_id, channel_id, by)


@router.get("/funnels/channels.csv", tags=["funnels"], response_class=Response)
def compare_channels_csv(
    session: SessionDep,
    actor: ActorDep,
    start: DayQuery = None,
    end: DayQuery = None,
    group_id: int | None = None,
    channel_id: Annotated[list[int] | None, Query()] = None,
    by: Literal["channel", "group"] = "channel",
) -> Response:
    """The comparison as CSV (UTF-8 with BOM, Chinese headers), same filters."""
    data = _comparison(session, actor, start, end, group_id, channel_id, by)
    name = f"channel-funnels-{data.by}-{data.start}-{data.end}.csv"
    return Response(
        funnel.comparison_csv(data),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/funnels/channels/{channel_id}", response_model=ChannelFunnelRead, tags=["funnels"])
def get_channel_funnel(
    session: SessionDep, actor: ActorDep, channel_id: int, start: DayQuery = None, end: DayQuery = None
) -> ChannelFunnelRead:
    """One channel: daily new / lost / net, retention windows and the per-employee breakdown."""
    require(actor, "channel", "read")
    rng = funnel.parse_range(start, end, funnel.zone_of(session, actor))
    return funnel.channel_funnel(session, actor=actor, channel_id=channel_id, rng=rng)
