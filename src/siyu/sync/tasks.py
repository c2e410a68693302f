"""Queue entry points for syncs: one corp on demand, and every corp nightly.

The nightly reconciliation (scheduled in siyu.worker) catches whatever callbacks missed:
WeCom does not retry forever, and changes made while siyu was down send none.
"""

from __future__ import annotations

import logging
from typing import Any

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


def enqueue_all_corps() -> int:
    """Enqueue a full sync of every corp (the nightly reconciliation); returns how many were enqueued."""
    with session_scope() as session:
        corp_ids = list_corp_ids(session)
    for corp_id in corp_ids:
        sync_corp(corp_id)
    return len(corp_ids)
