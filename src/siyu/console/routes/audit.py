"""The audit log: who changed what, newest first; filter by action prefix, actor and dates (admin, compliance)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from siyu.console import filters
from siyu.console.deps import ConsoleDep
from siyu.console.templating import env, render
from siyu.core.deps import SessionDep
from siyu.corp.models import Corp
from siyu.corp.router import list_audit_for

router = APIRouter(include_in_schema=False)
filters.install(env)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    action: str = Query("", max_length=64),
    actor: str = Query("", max_length=128),
    since: str = "",
    until: str = "",
    after: int | None = None,
) -> HTMLResponse:
    page = list_audit_for(
        session,
        console.actor,
        action=action.strip(),
        who=actor.strip(),
        since=_day(since),
        until=_day(until),
        after=after,
        limit=50,
    )
    corp = session.get(Corp, console.actor.corp_id)
    ctx = {
        "page": page,
        "filters": {"action": action, "actor": actor, "since": since, "until": until},
        "tz": corp.timezone if corp else filters.DEFAULT_ZONE,
    }
    return render(request, "audit/list.html", ctx, actor=console.actor, csrf_token=console.csrf_token)
