"""REST API: the dashboard numbers."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.accounts.access import require
from siyu.accounts.auth import ActorDep
from siyu.analytics import service
from siyu.analytics.schemas import DashboardRead
from siyu.core.deps import SessionDep

router = APIRouter(prefix="/api", tags=["dashboard"])


@router.get("/dashboard", response_model=DashboardRead)
def get_dashboard(session: SessionDep, actor: ActorDep) -> DashboardRead:
    require(actor, "dashboard", "read")
    return service.get_dashboard(session, actor=actor)
