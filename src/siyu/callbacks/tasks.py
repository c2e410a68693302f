"""Processing stored callbacks on the task queue, exactly once in effect."""

from __future__ import annotations

import logging

from siyu.callbacks import actions, service
from siyu.callbacks.handlers import Skip, apply_event
from siyu.callbacks.models import InboxStatus
from siyu.core import audit
from siyu.core.db import session_scope
from siyu.core.tasks import enqueue_pending, huey
from siyu.corp.models import Corp
from siyu.wecom.callbacks import parse_event
from siyu.wecom.client import client_for_corp
from siyu.wecom.errors import WeComError

log = logging.getLogger(__name__)


def process_one(inbox_id: int) -> str:
    """Apply one stored event in one transaction with its 'done' mark; returns the final status."""
    try:
        with session_scope() as session:
            row = actions.do_claim(session, inbox_id=inbox_id)
            if row is None:
                return "gone"
            corp = session.get(Corp, row.corp_id)
            assert corp is not None  # inbox rows cascade with their corp
            event = parse_event(row.payload.encode())
            try:
                with client_for_corp(corp) as client:
                    counts = apply_event(session, row.corp_id, client, event)
            except Skip as skip:
                actions.do_finish(session, row, status=InboxStatus.SKIPPED, error=str(skip))
                return InboxStatus.SKIPPED
            audit.record(
                session,
                corp_id=row.corp_id,
                actor="wecom",
                action=f"callback.{event.event}.{event.change_type}".rstrip("."),
                object_type="callback",
                object_id=row.id,
                detail=counts.as_dict(),
            )
            actions.do_finish(session, row, status=InboxStatus.DONE)
            return InboxStatus.DONE
    except WeComError as exc:
        with session_scope() as session:
            parked = actions.do_record_failure(session, inbox_id=inbox_id, error=f"{type(exc).__name__}: {exc}")
        if parked:
            log.error("callback %s parked as failed after repeated errors: %s", inbox_id, exc)
            return InboxStatus.FAILED
        raise


@huey.task(retries=actions.MAX_ATTEMPTS, retry_delay=5)
def process_callback(inbox_id: int) -> str:
    return process_one(inbox_id)


@huey.task()
def process_callbacks(inbox_ids: list[int]) -> list[str]:
    """One queue message per group commit; an event that fails goes on alone, with retries."""
    statuses = []
    for inbox_id in inbox_ids:
        try:
            statuses.append(process_one(inbox_id))
        except WeComError:
            process_callback.schedule((inbox_id,), delay=5)
            statuses.append("retrying")
    return statuses


def drain_inbox(limit: int = 10_000) -> int:
    """Enqueue every pending event: nothing stored is ever left behind."""
    return enqueue_pending(
        lambda s, after, n: service.pending_ids(s, after_id=after, limit=n), process_callback, limit=limit
    )
