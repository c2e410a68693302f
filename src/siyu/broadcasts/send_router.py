"""REST API: send a planned broadcast, remind its senders, cancel it, read its results."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.accounts.access import access_broadcast_by_id
from siyu.accounts.auth import ActorDep
from siyu.broadcasts import results, sender
from siyu.broadcasts.models import Broadcast, BroadcastChunk
from siyu.core.deps import SessionDep

router = APIRouter(prefix="/api", tags=["broadcasts"])


class SendState(BaseModel):
    broadcast_id: int
    status: str
    scheduled_at: datetime | None
    chunks: dict[str, int]  # chunk status → chunks


class RemindRead(BaseModel):
    broadcast_id: int
    reminded: int  # tasks whose senders get another notification
    at_limit: int  # tasks already reminded 3 times in the last 24 h


def _state(session: Session, broadcast: Broadcast) -> SendState:
    chunks = session.execute(
        select(BroadcastChunk.status, func.count())
        .where(BroadcastChunk.broadcast_id == broadcast.id)
        .group_by(BroadcastChunk.status)
    )
    return SendState(
        broadcast_id=broadcast.id,
        status=broadcast.status,
        scheduled_at=broadcast.scheduled_at,
        chunks={str(status): int(n) for status, n in chunks},
    )


@router.post("/broadcasts/{broadcast_id}/send", response_model=SendState, status_code=202)
def send_broadcast(broadcast_id: int, session: SessionDep, actor: ActorDep) -> SendState:
    """Start a planned broadcast (or schedule it, when its time is later); 409 unless it is planned.

    Each chunk goes to WeCom as one task for its sender to confirm; watch `GET …/results`."""
    access_broadcast_by_id(session, actor, broadcast_id, write=True)
    return _state(session, sender.do_start(session, broadcast_id, actor))


@router.post("/broadcasts/{broadcast_id}/remind", response_model=RemindRead, status_code=202)
def remind_senders(broadcast_id: int, session: SessionDep, actor: ActorDep) -> RemindRead:
    """Notify every sender who has not confirmed yet (WeCom allows 3 reminders per task in 24 h)."""
    access_broadcast_by_id(session, actor, broadcast_id, write=True)
    done = results.do_remind(session, broadcast_id, actor)
    return RemindRead(broadcast_id=broadcast_id, **done)


@router.post("/broadcasts/{broadcast_id}/cancel", response_model=SendState)
def cancel_broadcast(broadcast_id: int, session: SessionDep, actor: ActorDep) -> SendState:
    """Stop the broadcast: unsent chunks never go out, WeCom tasks not yet confirmed are withdrawn."""
    access_broadcast_by_id(session, actor, broadcast_id, write=True)
    return _state(session, sender.do_cancel(session, broadcast_id, actor))


@router.get("/broadcasts/{broadcast_id}/results", response_model=results.ResultsRead)
def broadcast_results(broadcast_id: int, session: SessionDep, actor: ActorDep) -> results.ResultsRead:
    """Recipients per outcome, excluded ones per reason, each sender's confirmation rate, each chunk."""
    broadcast = access_broadcast_by_id(session, actor, broadcast_id)
    return results.results_of(session, broadcast)
