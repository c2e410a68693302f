"""Processing stored callbacks on the task queue, exactly once in effect."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from siyu.acquisition import welcome
from siyu.callbacks import actions, service
from siyu.callbacks.handlers import RECEIVED_AT_KEY, Skip, apply_event
from siyu.callbacks.models import InboxStatus
from siyu.core import audit
from siyu.core.db import session_scope
from siyu.core.tasks import enqueue_pending, huey
from siyu.corp.models import Corp
from siyu.wecom.callbacks import (
    CallbackEvent,
    ContactEvent,
    ExternalChatEvent,
    ExternalContactEvent,
    ExternalTagEvent,
    parse_event,
)
from siyu.wecom.client import client_for_corp
from siyu.wecom.errors import WeComError

log = logging.getLogger(__name__)


def subject_of(event: CallbackEvent) -> str:
    """What the event is about: events about one subject must not interleave their fetch and apply."""
    if isinstance(event, ExternalContactEvent):
        return f"customer:{event.external_user_id}"
    if isinstance(event, ExternalChatEvent):
        return f"group:{event.chat_id}"
    if isinstance(event, ExternalTagEvent):
        return "tags"
    if isinstance(event, ContactEvent):
        return "contacts"
    return f"other:{event.event}"


def lock_subject(session: Session, corp_id: int, subject: str) -> None:
    """Hold a transaction lock on the subject while we re-fetch and apply.

    Without it, on PostgreSQL two workers could fetch one customer at different moments and
    commit in the other order, so a stale fetch (the follow still there) would undo a newer
    deletion. SQLite needs nothing: the claim already holds its single write lock until commit.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{corp_id}:{subject}"})


def process_one(inbox_id: int) -> str:
    """Apply one stored event in one transaction with its 'done' mark; returns the final status."""
    try:
        with session_scope() as session:
            status = _apply_stored(session, inbox_id)
            welcomes = welcome.prepared_ids(session)
    except WeComError as exc:
        with session_scope() as session:
            parked = actions.do_record_failure(session, inbox_id=inbox_id, error=f"{type(exc).__name__}: {exc}")
        if parked:
            log.error("callback %s parked as failed after repeated errors: %s", inbox_id, exc)
            return InboxStatus.FAILED
        raise
    if welcomes:
        # Committed: the welcome row exists. Send it now, in this thread — the 20 s window is running.
        welcome.send_now(welcomes)
    return status


def _apply_stored(session: Session, inbox_id: int) -> str:
    row = actions.do_claim(session, inbox_id=inbox_id)
    if row is None:
        return "gone"
    corp = session.get(Corp, row.corp_id)
    assert corp is not None  # inbox rows cascade with their corp
    event = parse_event(row.payload.encode())
    lock_subject(session, row.corp_id, subject_of(event))
    session.info[RECEIVED_AT_KEY] = row.received_at
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
