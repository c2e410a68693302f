"""The dashboard: customers total / new / lost today, a 30-day trend, employees, groups, sync and inbox health."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from siyu.accounts.access import require
from siyu.analytics import service
from siyu.console import filters
from siyu.console.deps import ConsoleDep
from siyu.console.templating import env, render
from siyu.core.deps import SessionDep

router = APIRouter(include_in_schema=False)
filters.install(env)


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    require(console.actor, "dashboard", "read")
    data = service.get_dashboard(session, actor=console.actor)
    chart = {
        "days": [d.day[5:] for d in data.trend],
        "new": [d.new for d in data.trend],
        "lost": [d.lost for d in data.trend],
        "total": [d.total for d in data.trend],
    }
    return render(
        request,
        "dashboard.html",
        {"data": data, "chart": chart},
        actor=console.actor,
        csrf_token=console.csrf_token,
    )
