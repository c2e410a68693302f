"""REST API: corps, their syncs and their callback inbox."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from siyu.accounts.access import Actor, require
from siyu.accounts.auth import ActorDep
from siyu.callbacks import service as inbox_service
from siyu.core.config import get_settings
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp import service
from siyu.corp.models import Corp
from siyu.corp.schemas import CorpRead, InboxRead, SyncRequest, SyncRunRead
from siyu.sync.models import SyncRun

router = APIRouter(prefix="/api", tags=["corps"])


def _read(corp: Corp) -> CorpRead:
    url = f"{get_settings().public_base_url.rstrip('/')}/wecom/callback/{corp.corp_id}"
    return CorpRead.model_validate(corp).model_copy(update={"callback_url": url})


def _corp(session: SessionDep, actor: Actor, corp_id: int, action: str = "read") -> Corp:
    """Only the actor's own corp exists for them."""
    require(actor, "corp", action)
    corp = service.get(session, corp_id=corp_id)
    if corp is None or corp.corp_id != actor.corp_id:
        raise DomainError(ErrorCode.NOT_FOUND, f"no corp {corp_id}")
    return corp


@router.get("/corps", response_model=list[CorpRead])
def list_corps(session: SessionDep, actor: ActorDep) -> list[CorpRead]:
    return [_read(_corp(session, actor, actor.corp_id))]


@router.get("/corps/{corp_id}", response_model=CorpRead)
def get_corp(corp_id: int, session: SessionDep, actor: ActorDep) -> CorpRead:
    return _read(_corp(session, actor, corp_id))


@router.post("/corps/{corp_id}/sync", status_code=202)
def start_sync(corp_id: int, body: SyncRequest, session: SessionDep, actor: ActorDep) -> dict[str, str]:
    from siyu.sync.tasks import sync_corp

    require(actor, "sync", "write")
    _corp(session, actor, corp_id)
    sync_corp(corp_id, body.only)
    return {"status": "queued"}


@router.get("/corps/{corp_id}/sync-runs", response_model=list[SyncRunRead])
def list_sync_runs(corp_id: int, session: SessionDep, actor: ActorDep, limit: int = 20) -> list[SyncRun]:
    _corp(session, actor, corp_id)
    stmt = select(SyncRun).where(SyncRun.corp_id == corp_id).order_by(SyncRun.id.desc()).limit(min(limit, 200))
    return list(session.scalars(stmt))


@router.get("/corps/{corp_id}/callbacks", response_model=list[InboxRead])
def list_callbacks(
    corp_id: int,
    session: SessionDep,
    actor: ActorDep,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[object]:
    _corp(session, actor, corp_id)
    return list(
        inbox_service.list_(session, corp_id=corp_id, status=status, before_id=before_id, limit=min(limit, 500))
    )
