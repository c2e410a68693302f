"""REST API: broadcast drafts, their plan (eligible / excluded by reason) and their frozen recipients.

Sending, reminding, cancelling and results are in `send_router` (discovered on its own).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from siyu.accounts.access import access_broadcast_by_id
from siyu.accounts.auth import ActorDep
from siyu.broadcasts import actions, planner, service
from siyu.broadcasts.models import BroadcastKind, BroadcastStatus, RecipientStatus
from siyu.broadcasts.schemas import (
    BroadcastCreate,
    BroadcastPage,
    BroadcastRead,
    BroadcastUpdate,
    PlanSummary,
    RecipientPage,
)
from siyu.core.deps import SessionDep

router = APIRouter(prefix="/api", tags=["broadcasts"])


@router.post("/broadcasts", response_model=BroadcastRead, status_code=201)
def create_broadcast(body: BroadcastCreate, session: SessionDep, actor: ActorDep) -> BroadcastRead:
    """A draft. Admins and operators create any kind; staff only personal broadcasts from themselves to
    customers they can see (≤ 200). 422 names what is wrong with the audience or content."""
    return service.get(actions.do_create_broadcast(session, actor, body))


@router.get("/broadcasts", response_model=BroadcastPage)
def list_broadcasts(
    session: SessionDep,
    actor: ActorDep,
    status: BroadcastStatus | None = None,
    kind: BroadcastKind | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> BroadcastPage:
    return service.list_(session, actor=actor, status=status, kind=kind, after=after, limit=limit)


@router.get("/broadcasts/{broadcast_id}", response_model=BroadcastRead)
def get_broadcast(broadcast_id: int, session: SessionDep, actor: ActorDep) -> BroadcastRead:
    return service.get(access_broadcast_by_id(session, actor, broadcast_id))


@router.patch("/broadcasts/{broadcast_id}", response_model=BroadcastRead)
def update_broadcast(broadcast_id: int, body: BroadcastUpdate, session: SessionDep, actor: ActorDep) -> BroadcastRead:
    """Edit a draft; an unsent plan goes back to draft (its slots are freed). 409 once scheduled or sending."""
    broadcast = access_broadcast_by_id(session, actor, broadcast_id, write=True)
    return service.get(actions.do_update_broadcast(session, actor, broadcast, body))


@router.post("/broadcasts/{broadcast_id}/plan", response_model=PlanSummary)
def plan_broadcast(broadcast_id: int, session: SessionDep, actor: ActorDep) -> PlanSummary:
    """Freeze the recipients: eligible ones per sender and chunk, each excluded one with its reason, the
    send time moved out of quiet hours, or the content findings that block it. 409 once sending began."""
    access_broadcast_by_id(session, actor, broadcast_id, write=True)
    broadcast = planner.do_plan(session, broadcast_id, actor)
    return service.plan_summary(session, broadcast=broadcast)


@router.get("/broadcasts/{broadcast_id}/plan", response_model=PlanSummary)
def get_plan(broadcast_id: int, session: SessionDep, actor: ActorDep) -> PlanSummary:
    """The last plan's summary."""
    return service.plan_summary(session, broadcast=access_broadcast_by_id(session, actor, broadcast_id))


@router.get("/broadcasts/{broadcast_id}/recipients", response_model=RecipientPage)
def list_recipients(
    broadcast_id: int,
    session: SessionDep,
    actor: ActorDep,
    status: RecipientStatus | None = None,
    reason: planner.Reason | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> RecipientPage:
    """Recipients in id order (status / reason filters; `after` = the previous page's next_cursor)."""
    broadcast = access_broadcast_by_id(session, actor, broadcast_id)
    return service.list_recipients(session, broadcast=broadcast, status=status, reason=reason, after=after, limit=limit)
