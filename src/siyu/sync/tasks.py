"""Queue entry points for syncs: one corp on demand, and every corp nightly.

The nightly reconciliation catches whatever callbacks missed (WeCom does not retry forever,
and changes made while siyu was down send none). It is declared here, next to the work,
and listed in siyu.worker.SCHEDULE. Huey runs in UTC (core.tasks), so 03:17 is UTC.
"""

from __future__ import annotations

import logging
from typing import Any

from huey import crontab

from siyu.core.db import session_scope
from siyu.core.tasks import huey
from siyu.corp.models import Corp
from siyu.sync.flows import SyncBusy, run_sync
from siyu.sync.service import get_live_run, list_corp_ids

log = logging.getLogger(__name__)


@huey.task(retries=2, retry_delay=300)
def sync_corp(corp_id: int, only: str | None = None) -> dict[str, Any] | None:
    """Sync one corp; a retry resumes from the failed run's checkpoint, so it costs only what is left.

    Returns None (and does nothing) when the corp is gone or another live run holds it.
    """
    with session_scope() as session:
        if session.get(Corp, corp_id) is None:
            return None
        if get_live_run(session, corp_id=corp_id) is not None:
            log.info("corp %s: a sync is already running, skipping", corp_id)
            return None
    try:
        summary = run_sync(corp_id, only=only)
    except SyncBusy:
        return None
    return {"run_id": summary.run_id, "pages": summary.pages, "changes": summary.total.as_dict()}


@huey.periodic_task(crontab(hour="3", minute="17"))
def nightly_reconciliation() -> int:
    """Enqueue a full sync of every corp; returns how many were enqueued."""
    with session_scope() as session:
        corp_ids = list_corp_ids(session)
    for corp_id in corp_ids:
        sync_corp(corp_id)
    return len(corp_ids)
