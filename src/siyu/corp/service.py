"""Reads of corps, and the callback crypto built from a corp's stored secrets."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.core.errors import DomainError, ErrorCode
from siyu.core.secrets import decrypt_secret
from siyu.corp.models import AuditLog, Corp
from siyu.corp.schemas import AuditPage, AuditRead, SyncProgressRead, TestConnectionRead
from siyu.sync.models import SyncRun, SyncStatus
from siyu.wecom.auth import CachedToken
from siyu.wecom.client import client_for_corp
from siyu.wecom.crypto import MsgCrypt
from siyu.wecom.errors import ApiError, WeComError

# The stages of a full sync, in order (siyu.sync.flows.SCOPES; repeated here so reading progress
# does not import the sync machinery).
SYNC_SCOPES = ("employees", "tags", "customers", "groups")
SYNC_ALL = "all"


def get(session: Session, *, corp_id: int) -> Corp | None:
    return session.get(Corp, corp_id)


def list_(session: Session) -> list[Corp]:
    return list(session.scalars(select(Corp).order_by(Corp.corp_id)))


def resolve(session: Session, *, ref: str | None) -> Corp:
    """A corp by numeric id or WeCom corpid; with no ref, the only corp there is."""
    corps = list_(session)
    if ref is None:
        if len(corps) != 1:
            raise DomainError(ErrorCode.INVALID, f"{len(corps)} corps are connected; name one with --corp")
        return corps[0]
    for corp in corps:
        if ref in (str(corp.corp_id), corp.wecom_corpid):
            return corp
    raise DomainError(ErrorCode.NOT_FOUND, f"no corp {ref!r}")


_CRYPT_TTL = 60.0
_crypt_cache: dict[int, tuple[float, MsgCrypt]] = {}
_crypt_lock = threading.Lock()


def cached_crypt(corp_id: int) -> MsgCrypt | None:
    """The corp's MsgCrypt if it was built in the last minute (no database round trip)."""
    hit = _crypt_cache.get(corp_id)
    if hit and time.monotonic() - hit[0] < _CRYPT_TTL:
        return hit[1]
    return None


def callback_crypt(session: Session, *, corp_id: int) -> MsgCrypt | None:
    """The corp's MsgCrypt, cached briefly: decrypting three secrets per callback would dominate ingest."""
    cached = cached_crypt(corp_id)
    if cached is not None:
        return cached
    now = time.monotonic()
    corp = session.get(Corp, corp_id)
    if corp is None:
        return None
    crypt = MsgCrypt(
        decrypt_secret(corp.callback_token_enc), decrypt_secret(corp.callback_aes_key_enc), corp.wecom_corpid
    )
    with _crypt_lock:
        _crypt_cache[corp_id] = (now, crypt)
    return crypt


def forget_crypt(corp_id: int | None = None) -> None:
    with _crypt_lock:
        if corp_id is None:
            _crypt_cache.clear()
        else:
            _crypt_cache.pop(corp_id, None)


# --- settings: connection test, sync progress ---------------------------------------------------


class _OneShotTokenStore:
    """A token store that remembers only for one test: gettoken is really called with the stored secret."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[int, str], CachedToken] = {}

    def get(self, corp_id: int, app: str) -> CachedToken | None:
        return self._tokens.get((corp_id, app))

    def put(self, corp_id: int, app: str, token: str, expires_at: datetime) -> None:
        self._tokens[(corp_id, app)] = CachedToken(token, expires_at)

    def invalidate(self, corp_id: int, app: str, token: str) -> None:
        self._tokens.pop((corp_id, app), None)

    def try_lock(self, corp_id: int, app: str) -> str | None:
        return "test"

    def unlock(self, corp_id: int, app: str, lease: str) -> None:
        return None


def test_connection(corp: Corp) -> TestConnectionRead:
    """gettoken with the stored secret, then get_follow_user_list: the two things a sync needs first."""
    started = time.monotonic()
    step = "gettoken"
    try:
        with client_for_corp(corp, token_store=_OneShotTokenStore()) as client:
            client.get_token()
            step = "get_follow_user_list"
            users = client.get_follow_user_list()
    except ApiError as exc:
        return TestConnectionRead(
            ok=False, step=step, errcode=exc.errcode, errmsg=exc.errmsg, seconds=time.monotonic() - started
        )
    except WeComError as exc:
        return TestConnectionRead(ok=False, step=step, errmsg=str(exc), seconds=time.monotonic() - started)
    return TestConnectionRead(ok=True, step="done", follow_users=len(users), seconds=time.monotonic() - started)


def get_sync_progress(session: Session, *, corp_id: int, since_run_id: int = 0) -> SyncProgressRead:
    """The latest sync run after `since_run_id`: its stage and pages from the checkpoint and stats.

    No such run yet means the sync just asked for is still waiting in the queue.
    """
    run = session.scalars(
        select(SyncRun)
        .where(SyncRun.corp_id == corp_id, SyncRun.id > since_run_id)
        .order_by(SyncRun.id.desc())
        .limit(1)
    ).first()
    if run is None:
        return SyncProgressRead(run_id=None, status="queued")
    stages = list(SYNC_SCOPES) if run.scope == SYNC_ALL else [run.scope]
    done = [s for s in (run.checkpoint or {}).get("done", []) if s in stages]
    stage = next((s for s in stages if s not in done), "") if run.status == SyncStatus.RUNNING else ""
    stats = run.stats or {}
    return SyncProgressRead(
        run_id=run.id,
        status=run.status,
        scope=run.scope,
        stage=stage,
        stages_done=done,
        stages_total=len(stages),
        pages=int(stats.get("pages", 0) or 0),
        changes={k: {n: int(v) for n, v in dict(c).items()} for k, c in dict(stats.get("changes", {})).items()},
        error=run.error[:500],
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


def last_sync_run_id(session: Session, *, corp_id: int) -> int:
    return session.scalar(select(func.max(SyncRun.id)).where(SyncRun.corp_id == corp_id)) or 0


# --- the audit log ------------------------------------------------------------------------------


def list_audit(
    session: Session,
    *,
    corp_id: int,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int | None = None,
    limit: int = 50,
) -> AuditPage:
    """Newest first, keyset on id; `action` is a prefix (e.g. "tag" or "corp.update")."""
    stmt = select(AuditLog).where(AuditLog.corp_id == corp_id).order_by(AuditLog.id.desc()).limit(limit + 1)
    if action:
        stmt = stmt.where(AuditLog.action.startswith(action, autoescape=True))
    if actor:
        stmt = stmt.where(AuditLog.actor.startswith(actor, autoescape=True))
    if since is not None:
        stmt = stmt.where(AuditLog.created_at >= since)
    if until is not None:
        stmt = stmt.where(AuditLog.created_at < until)
    if after is not None:
        stmt = stmt.where(AuditLog.id < after)
    rows = list(session.scalars(stmt))
    page, more = rows[:limit], len(rows) > limit
    return AuditPage(items=[_audit_read(r) for r in page], next_after=page[-1].id if more else None)


def _audit_read(row: AuditLog) -> AuditRead:
    try:
        detail = json.loads(row.detail or "{}")
    except ValueError:
        detail = {"text": row.detail}
    return AuditRead(
        id=row.id,
        actor=row.actor,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        detail=detail if isinstance(detail, dict) else {"value": detail},
        created_at=row.created_at,
    )
