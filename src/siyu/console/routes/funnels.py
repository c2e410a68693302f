"""Channel funnels (渠道漏斗): channels or channel groups compared over a date range, and one channel's detail."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, access_channel_by_id, require
from siyu.acquisition.models import ChannelGroup
from siyu.analytics import funnel
from siyu.analytics.schemas import ChannelFunnelComparison, ChannelFunnelRead
from siyu.console.deps import ConsoleDep
from siyu.console.i18n import language_of, translator
from siyu.console.templating import render
from siyu.core.deps import SessionDep

router = APIRouter(include_in_schema=False)


def _range(request: Request, session: Session, actor: Actor, start: str, end: str) -> tuple[funnel.DayRange, str]:
    """The chosen range, or the default one and a message saying why the input was not used."""
    zone = funnel.zone_of(session, actor)
    try:
        return funnel.parse_range(start.strip(), end.strip(), zone), ""
    except funnel.RangeInvalid as exc:
        t = translator(language_of(request))
        messages = {
            "date": t("Enter dates as YYYY-MM-DD."),
            "order": t("The end date is before the start date."),
            "length": t("Choose at most 366 days."),
        }
        return funnel.parse_range(None, None, zone), f"{messages[exc.reason]} {t('Showing the last 30 days.')}"


def _comparison_chart(data: ChannelFunnelComparison) -> dict[str, list[Any]]:
    rows = data.rows[:30]  # the busiest: a chart with hundreds of bars says nothing
    return {
        "names": [r.channel_name if data.by == "channel" else r.group_name for r in rows],
        "new": [r.new for r in rows],
        "lost": [r.lost for r in rows],
        "net": [r.net for r in rows],
    }


@router.get("/funnels", response_class=HTMLResponse)
def funnels_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    start: str = Query("", max_length=32),
    end: str = Query("", max_length=32),
    group_id: str = Query("", max_length=20),
    by: str = "channel",
) -> HTMLResponse:
    require(console.actor, "channel", "read")
    rng, error = _range(request, session, console.actor, start, end)
    group = int(group_id) if group_id.isdigit() else None
    by = "group" if by == "group" else "channel"
    data = funnel.compare_channels(session, actor=console.actor, rng=rng, group_id=group, by=by)
    query = {"start": data.start, "end": data.end, "by": by} | ({"group_id": group} if group is not None else {})
    groups = session.execute(
        select(ChannelGroup.id, ChannelGroup.name)
        .where(ChannelGroup.corp_id == console.actor.corp_id)
        .order_by(ChannelGroup.name)
    ).all()
    ctx = {
        "data": data,
        "error": error,
        "groups": groups,
        "filters": {"group_id": group, "by": by},
        "csv_url": "/api/funnels/channels.csv?" + urlencode(query),
        "range_query": urlencode({"start": data.start, "end": data.end}),
        "chart": _comparison_chart(data),
    }
    return render(request, "funnels/list.html", ctx, actor=console.actor, csrf_token=console.csrf_token)


def _daily_chart(data: ChannelFunnelRead) -> dict[str, list[Any]]:
    return {
        "days": [d.day[5:] for d in data.days],
        "new": [d.new for d in data.days],
        "lost": [d.lost for d in data.days],
        "net": [d.net for d in data.days],
    }


@router.get("/funnels/{channel_id}", response_class=HTMLResponse)
def channel_funnel_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    channel_id: int,
    start: str = Query("", max_length=32),
    end: str = Query("", max_length=32),
) -> HTMLResponse:
    channel = access_channel_by_id(session, console.actor, channel_id)
    rng, error = _range(request, session, console.actor, start, end)
    data = funnel.channel_funnel(session, actor=console.actor, channel_id=channel.id, rng=rng)
    ctx = {
        "data": data,
        "error": error,
        "range_query": urlencode({"start": data.start, "end": data.end}),
        "chart": _daily_chart(data),
    }
    return render(request, "funnels/detail.html", ctx, actor=console.actor, csrf_token=console.csrf_token)
