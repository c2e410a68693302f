"""Customer Moments (朋友圈): the list of Moment broadcasts and the composer for a new one.

A Moment is a broadcast of kind `moment` (add_moment_task): its plan, job status and per-employee publish
status are on the broadcast pages (`broadcasts.py`), which serve every kind.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from siyu.accounts.access import require
from siyu.broadcasts.models import BroadcastKind
from siyu.console.deps import ConsoleDep
from siyu.console.routes import _broadcasts as bc
from siyu.console.routes.broadcasts import composer, list_page
from siyu.core.deps import SessionDep

router = APIRouter(include_in_schema=False)


@router.get("/moments", response_class=HTMLResponse)
def moments_page(
    request: Request, session: SessionDep, console: ConsoleDep, status: str = "", after: str = ""
) -> HTMLResponse:
    return list_page(request, session, console, kind=BroadcastKind.MOMENT, status=status, after=after, moments=True)


@router.get("/moments/new", response_class=HTMLResponse)
def new_moment_page(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    require(console.actor, "broadcast", "write")
    return composer(request, session, console, form=bc.empty_form(BroadcastKind.MOMENT.value))
