"""REST API: corps, their syncs and their callback inbox."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select

from siyu.callbacks import service as inbox_service
from siyu.core.config import get_settings
from siyu.core.deps import SessionDep, require_api_token
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp import actions, service
from siyu.corp.models import Corp
from siyu.corp.schemas import CorpCreate, CorpRead, InboxRead, SyncRequest, SyncRunRead
from siyu.sync.models import SyncRun

router = APIRouter(prefix="/api", tags=["corps"], dependencies=[Depends(require_api_token)])


def _read(corp: Corp) -> CorpRead:
    url = f"{get_settings().public_base_url.rstrip('/')}/wecom/callback/{corp.corp_id}"
    return CorpRead.model_validate(corp).model_copy(update={"callback_url": url})


def _corp(session: SessionDep, corp_id: int) -> Corp:
    corp = service.get(session, corp_id=corp_id)
    if corp is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no corp {corp_id}")
    return corp


@router.get("/corps", response_model=list[CorpRead])
def list_corps(session: SessionDep) -> list[CorpRead]:
    return [_read(c) for c in service.list_(session)]


@router.post("/corps", response_model=CorpRead, status_code=201)
def create_corp(body: CorpCreate, session: SessionDep) -> CorpRead:
    data = body.model_dump()
    data["api_base_url"] = data["api_base_url"] or get_settings().wecom_api_base
    return _read(actions.do_create_corp(session, actor="api", **data))


@router.get("/corps/{corp_id}", response_model=CorpRead)
def get_corp(corp_id: int, session: SessionDep) -> CorpRead:
    return _read(_corp(session, corp_id))


@router.post("/corps/{corp_id}/sync", status_code=202)
def start_sync(corp_id: int, body: SyncRequest, session: SessionDep) -> dict[str, str]:
    from siyu.sync.tasks import sync_corp

    _corp(session, corp_id)
    sync_corp(corp_id, body.only)
    return {"status": "queued"}


@router.get("/corps/{corp_id}/sync-runs", response_model=list[SyncRunRead])
def list_sync_runs(corp_id: int, session: SessionDep, limit: int = 20) -> list[SyncRun]:
    _corp(session, corp_id)
    stmt = select(SyncRun).where(SyncRun.corp_id == corp_id).order_by(SyncRun.id.desc()).limit(min(limit, 200))
    return list(session.scalars(stmt))


@router.get("/corps/{corp_id}/callbacks", response_model=list[InboxRead])
def list_callbacks(
    corp_id: int, session: SessionDep, status: str | None = None, before_id: int | None = None, limit: int = 50
) -> list[object]:
    _corp(session, corp_id)
    return list(
        inbox_service.list_(session, corp_id=corp_id, status=status, before_id=before_id, limit=min(limit, 500))
    )
