"""Writes to the callback inbox: store an event once, claim it once, finish it once."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.callbacks.models import CallbackInbox, InboxStatus
from siyu.core.clock import now_utc

MAX_ATTEMPTS = 6


def do_store_event(
    session: Session, *, corp_id: int, dedupe_key: str, event: str, change_type: str, payload: str
) -> int | None:
    """Store the event; returns the inbox id to process, or None when it is already waiting.

    Two identical notifications can be a WeCom retry *or* two real changes in one second
    (edit_external_contact carries only the ids and the second). Both are safe to collapse
    while the first is still pending, because processing re-fetches the current state. Once
    it has been processed, an identical arrival re-opens the row, so a change made after the
    re-fetch is never lost. Re-processing is idempotent, so a true replay changes nothing.
    """
    values = {
        "corp_id": corp_id,
        "dedupe_key": dedupe_key,
        "event": event,
        "change_type": change_type,
        "payload": payload,
        "received_at": now_utc(),
        "status": InboxStatus.PENDING,
        "attempts": 0,
        "error": "",
    }
    dialect = session.get_bind().dialect.name
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_(CallbackInbox).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[CallbackInbox.corp_id, CallbackInbox.dedupe_key],
        set_={"status": InboxStatus.PENDING, "received_at": values["received_at"], "attempts": 0, "error": ""},
        where=CallbackInbox.status != InboxStatus.PENDING,
    ).returning(CallbackInbox.id)
    return session.execute(stmt).scalar_one_or_none()


def do_claim(session: Session, *, inbox_id: int) -> CallbackInbox | None:
    """Take the row for this transaction; None if someone else finished it.

    The UPDATE is the lock: on PostgreSQL a second worker blocks on the row until we
    commit and then sees it done; on SQLite the write lock serialises us. If we crash,
    the transaction rolls back and the row is pending again for the drain job.
    """
    claimed = session.execute(
        update(CallbackInbox)
        .where(CallbackInbox.id == inbox_id, CallbackInbox.status == InboxStatus.PENDING)
        .values(attempts=CallbackInbox.attempts + 1)
    ).rowcount
    if claimed != 1:
        return None
    return session.get(CallbackInbox, inbox_id)


def do_finish(session: Session, row: CallbackInbox, *, status: InboxStatus, error: str = "") -> None:
    row.status = status
    row.error = error[:2000]
    row.processed_at = now_utc()
    session.flush()


def do_record_failure(session: Session, *, inbox_id: int, error: str) -> bool:
    """Note a failed attempt; after MAX_ATTEMPTS the event is parked as failed. True if parked."""
    row = session.get(CallbackInbox, inbox_id)
    if row is None or row.status != InboxStatus.PENDING:
        return False
    row.attempts += 1
    row.error = error[:2000]
    if row.attempts >= MAX_ATTEMPTS:
        row.status = InboxStatus.FAILED
        row.processed_at = now_utc()
    session.flush()
    return row.status == InboxStatus.FAILED
