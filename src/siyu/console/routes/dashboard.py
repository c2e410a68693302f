"""The dashboard (placeholder until the dashboard page lands)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from siyu.console.deps import ConsoleDep
from siyu.console.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, console: ConsoleDep) -> HTMLResponse:
    return render(request, "dashboard.html", {}, actor=console.actor, csrf_token=console.csrf_token)
