"""Sending outbox rows to WeCom on the task queue."""

from __future__ import annotations

import logging

from siyu.core.db import session_scope
from siyu.core.tasks import enqueue_pending, huey
from siyu.corp.models import Corp
from siyu.outbox import actions
from siyu.outbox.models import OutboxStatus
from siyu.wecom.client import client_for_corp
from siyu.wecom.errors import ApiError, InvalidRequestError, NotFoundError, PermissionError_, WeComError

log = logging.getLogger(__name__)
PERMANENT = (InvalidRequestError, NotFoundError, PermissionError_)


def send_one(outbox_id: int) -> str:
    """Send one row; returns its final status ('gone' when someone else already sent it)."""
    try:
        with session_scope() as session:
            row = actions.do_claim(session, outbox_id=outbox_id)
            if row is None:
                return "gone"
            corp = session.get(Corp, row.corp_id)
            assert corp is not None
            if row.kind not in actions.SENDERS:
                actions.load_senders()
            sender = actions.SENDERS[row.kind]
            with client_for_corp(corp) as client:
                result = sender.send(client, dict(row.payload))
            actions.do_mark_sent(session, row, result)
            if sender.after is not None:
                sender.after(session, row.corp_id, dict(row.payload), result)
            return OutboxStatus.SENT
    except WeComError as exc:
        permanent = isinstance(exc, PERMANENT)
        detail = f"{exc.errcode}: {exc.errmsg}" if isinstance(exc, ApiError) else str(exc)
        with session_scope() as session:
            parked = actions.do_record_failure(session, outbox_id=outbox_id, error=detail, permanent=permanent)
        if parked:
            log.warning("outbox %s failed: %s", outbox_id, detail)
            return OutboxStatus.FAILED
        raise


@huey.task(retries=actions.MAX_ATTEMPTS, retry_delay=5)
def send_outbox(outbox_id: int) -> str:
    return send_one(outbox_id)


def drain_outbox(limit: int = 10_000) -> int:
    """Enqueue every pending row: a change stored is a change sent."""
    return enqueue_pending(
        lambda s, after, n: actions.pending_ids(s, after_id=after, limit=n), send_outbox, limit=limit
    )
