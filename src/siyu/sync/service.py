"""Reads for sync runs and for choosing which corp to sync."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.core.clock import now_utc
from siyu.corp.models import Corp
from siyu.sync.models import SyncRun, SyncStatus

# A running sync commits (and beats) after every page; this long without a beat means its process died.
STALE_AFTER = timedelta(minutes=10)
# Resuming is only worth it while the half-done pass is recent; older ones start afresh.
RESUME_WITHIN = timedelta(hours=24)


def is_live(run: SyncRun, *, now: datetime | None = None) -> bool:
    """Running, and its process beat recently enough to be alive."""
    return run.status == SyncStatus.RUNNING and run.heartbeat_at > (now or now_utc()) - STALE_AFTER


def get_live_run(session: Session, *, corp_id: int) -> SyncRun | None:
    """The corp's sync run that is still going, whatever its scope (two at once would fight)."""
    running = session.scalars(
        select(SyncRun).where(SyncRun.corp_id == corp_id, SyncRun.status == SyncStatus.RUNNING)
    ).all()
    return next((run for run in running if is_live(run)), None)


def get_resumable_run(session: Session, *, corp_id: int, scope: str) -> SyncRun | None:
    """The latest unfinished run for this corp and scope (failed, or running but dead), if recent."""
    run = session.scalars(
        select(SyncRun).where(SyncRun.corp_id == corp_id, SyncRun.scope == scope).order_by(SyncRun.id.desc()).limit(1)
    ).first()
    if run is None or run.status == SyncStatus.DONE or is_live(run):
        return None
    return run if run.started_at > now_utc() - RESUME_WITHIN else None


def list_corps(session: Session) -> list[Corp]:
    return list(session.scalars(select(Corp).order_by(Corp.corp_id)))


def list_corp_ids(session: Session) -> list[int]:
    return list(session.scalars(select(Corp.corp_id).order_by(Corp.corp_id)))


def match_corps(session: Session, *, ref: str | None) -> list[Corp]:
    """Corps a user's reference names: a WeCom corpid or a numeric corp id; None means every corp."""
    if ref is None:
        return list_corps(session)
    criteria = Corp.wecom_corpid == ref.strip()
    if ref.strip().isdigit():
        criteria = criteria | (Corp.corp_id == int(ref))
    return list(session.scalars(select(Corp).where(criteria).order_by(Corp.corp_id)))
