"""Customer groups (客户群): the list (owner, members internal / external, status) and one group's members."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from siyu.accounts.access import access_group_by_id
from siyu.console import filters
from siyu.console.deps import ConsoleDep
from siyu.console.templating import env, render
from siyu.core.deps import SessionDep
from siyu.corp.models import Corp
from siyu.groups import service
from siyu.groups.models import GroupStatus

router = APIRouter(include_in_schema=False)
filters.install(env)
# msgids for WeCom's join scenes and group statuses, shown in the member list.
JOIN_SCENE_LABELS = {1: "Invited by a member", 2: "Joined by invitation link", 3: "Scanned the group QR code"}
STATUS_LABELS = {GroupStatus.ACTIVE.value: "Normal", GroupStatus.DISMISSED.value: "Dismissed"}


def _timezone(session: SessionDep, corp_id: int) -> str:
    corp = session.get(Corp, corp_id)
    return corp.timezone if corp is not None else filters.DEFAULT_ZONE


@router.get("/groups", response_class=HTMLResponse)
def groups_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    status: str = "",
    q: str = Query("", max_length=64),
    after: int | None = None,
) -> HTMLResponse:
    status = status if status in STATUS_LABELS else ""
    page = service.list_(session, actor=console.actor, status=status or None, q=q or None, after=after)
    ctx = {
        "page": page,
        "filters": {"status": status, "q": q},
        "status_labels": STATUS_LABELS,
        "tz": _timezone(session, console.actor.corp_id),
    }
    return render(request, "groups/list.html", ctx, actor=console.actor, csrf_token=console.csrf_token)


@router.get("/groups/{group_id}", response_class=HTMLResponse)
def group_page(request: Request, session: SessionDep, console: ConsoleDep, group_id: int) -> HTMLResponse:
    chat = access_group_by_id(session, console.actor, group_id)
    ctx = {
        "group": service.get_detail(session, actor=console.actor, chat=chat),
        "scene_labels": JOIN_SCENE_LABELS,
        "status_labels": STATUS_LABELS,
        "tz": _timezone(session, console.actor.corp_id),
    }
    return render(request, "groups/detail.html", ctx, actor=console.actor, csrf_token=console.csrf_token)
