"""REST API: corps, their syncs and their callback inbox; settings (the WeCom connection); the audit log."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter, Query
from sqlalchemy import select

from siyu.accounts.access import Actor, require
from siyu.accounts.auth import ActorDep
from siyu.analytics.service import corp_zone, day_start_utc
from siyu.callbacks import service as inbox_service
from siyu.core.config import get_settings
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp import actions, service
from siyu.corp.models import Corp
from siyu.corp.schemas import (
    AuditPage,
    CallbackSecretsRead,
    ConnectionRead,
    ConnectionUpdate,
    CorpRead,
    InboxRead,
    SyncProgressRead,
    SyncRequest,
    SyncRunRead,
    TestConnectionRead,
)
from siyu.sync.models import SyncRun

router = APIRouter(prefix="/api", tags=["corps"])


def callback_url(corp: Corp) -> str:
    return f"{get_settings().public_base_url.rstrip('/')}/wecom/callback/{corp.corp_id}"


def _read(corp: Corp) -> CorpRead:
    return CorpRead.model_validate(corp).model_copy(update={"callback_url": callback_url(corp)})


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


# --- settings: the WeCom connection (admin writes, operator reads) -------------------------------


def connection_read(corp: Corp) -> ConnectionRead:
    return ConnectionRead(
        corp_id=corp.corp_id,
        name=corp.name,
        wecom_corpid=corp.wecom_corpid,
        agent_id=corp.agent_id,
        api_base_url=corp.api_base_url,
        timezone=corp.timezone,
        callback_url=callback_url(corp),
        contact_secret_set=bool(corp.contact_secret_enc),
        callback_token_set=bool(corp.callback_token_enc),
        callback_aes_key_set=bool(corp.callback_aes_key_enc),
    )


def update_connection(session: SessionDep, actor: Actor, corp: Corp, body: ConnectionUpdate) -> Corp:
    """Shared with the settings page: change the connection, then forget what was cached from the old one."""
    fields = body.model_dump(exclude_unset=True, exclude_none=True)
    if not fields:
        raise DomainError(ErrorCode.INVALID, "nothing to change: send at least one field")
    actions.do_update_corp_connection(session, corp, actor=actor.label, **fields)
    if {"contact_secret", "api_base_url"} & fields.keys():
        actions.do_forget_tokens(session, corp)
    service.forget_crypt(corp.corp_id)
    return corp


@router.get("/settings/connection", response_model=ConnectionRead)
def get_connection(session: SessionDep, actor: ActorDep) -> ConnectionRead:
    return connection_read(_corp(session, actor, actor.corp_id))


@router.patch("/settings/connection", response_model=ConnectionRead)
def patch_connection(body: ConnectionUpdate, session: SessionDep, actor: ActorDep) -> ConnectionRead:
    corp = _corp(session, actor, actor.corp_id, "write")
    return connection_read(update_connection(session, actor, corp, body))


@router.post("/settings/callback-secrets", response_model=CallbackSecretsRead)
def reveal_callback_secrets(session: SessionDep, actor: ActorDep) -> CallbackSecretsRead:
    """The callback Token and EncodingAESKey to paste into WeCom (admins only; each reveal is audited)."""
    corp = _corp(session, actor, actor.corp_id, "write")
    token, key = actions.do_reveal_callback_secrets(session, corp, actor=actor.label)
    return CallbackSecretsRead(callback_url=callback_url(corp), token=token, encoding_aes_key=key)


@router.post("/settings/test-connection", response_model=TestConnectionRead)
def test_connection(session: SessionDep, actor: ActorDep) -> TestConnectionRead:
    return service.test_connection(_corp(session, actor, actor.corp_id))


@router.get("/settings/sync-progress", response_model=SyncProgressRead)
def sync_progress(session: SessionDep, actor: ActorDep, since_run_id: int = Query(0, ge=0)) -> SyncProgressRead:
    """The latest sync run (after since_run_id): poll it after POST /api/corps/{id}/sync."""
    _corp(session, actor, actor.corp_id)
    return service.get_sync_progress(session, corp_id=actor.corp_id, since_run_id=since_run_id)


# --- the audit log (admin and compliance) ---------------------------------------------------------


def list_audit_for(
    session: SessionDep,
    actor: Actor,
    *,
    action: str | None,
    who: str | None,
    since: date | None,
    until: date | None,
    after: int | None,
    limit: int,
) -> AuditPage:
    """Dates are whole days in the corp's time zone, both ends included."""
    require(actor, "audit_log", "read")
    corp = session.get(Corp, actor.corp_id)
    assert corp is not None
    zone = corp_zone(corp)
    return service.list_audit(
        session,
        corp_id=actor.corp_id,
        action=action or None,
        actor=who or None,
        since=day_start_utc(since, zone) if since else None,
        until=day_start_utc(until + timedelta(days=1), zone) if until else None,
        after=after,
        limit=limit,
    )


@router.get("/audit", response_model=AuditPage, tags=["audit"])
def list_audit(
    session: SessionDep,
    actor: ActorDep,
    action: str | None = Query(None, max_length=64, description="action prefix, e.g. 'tag' or 'corp.update'"),
    actor_filter: str | None = Query(None, alias="actor", max_length=128, description="actor prefix, e.g. 'user:3'"),
    since: date | None = Query(None, description="first day (corp time zone)"),
    until: date | None = Query(None, description="last day, included"),
    after: int | None = Query(None, description="the next_after of the previous page"),
    limit: int = Query(50, ge=1, le=500),
) -> AuditPage:
    return list_audit_for(
        session, actor, action=action, who=actor_filter, since=since, until=until, after=after, limit=limit
    )
