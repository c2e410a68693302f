"""Writes to the callback inbox: store an event once, claim it once, finish it once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.callbacks.models import CallbackInbox, InboxStatus
from siyu.core.clock import now_utc

MAX_ATTEMPTS = 6


class StoredEvent(NamedTuple):
    corp_id: int
    dedupe_key: str
    event: str
    change_type: str
    payload: str


def _upsert(dialect: str) -> Any:
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_(CallbackInbox)
    return stmt.on_conflict_do_update(
        index_elements=[CallbackInbox.corp_id, CallbackInbox.dedupe_key],
        set_={
            "status": InboxStatus.PENDING,
            "received_at": stmt.excluded.received_at,
            "attempts": 0,
            "error": "",
        },
        where=CallbackInbox.status != InboxStatus.PENDING,
    ).returning(CallbackInbox.corp_id, CallbackInbox.dedupe_key, CallbackInbox.id)


def do_store_events(session: Session, events: Sequence[StoredEvent]) -> list[int | None]:
    """Store events in one statement; per event, the inbox id to process, or None when it is already waiting.

    Two identical notifications can be a WeCom retry *or* two real changes in one second
    (edit_external_contact carries only the ids and the second). Both are safe to collapse
    while the first is still pending, because processing re-fetches the current state. Once
    it has been processed, an identical arrival re-opens the row, so a change made after the
    re-fetch is never lost. Re-processing is idempotent, so a true replay changes nothing.
    """
    now = now_utc()
    first: dict[tuple[int, str], StoredEvent] = {}
    for event in events:
        first.setdefault((event.corp_id, event.dedupe_key), event)  # one statement may not touch a row twice
    rows = [
        {**event._asdict(), "received_at": now, "status": InboxStatus.PENDING, "attempts": 0, "error": ""}
        for event in first.values()
    ]
    stmt = _upsert(session.get_bind().dialect.name)
    stored = {(r.corp_id, r.dedupe_key): r.id for r in session.execute(stmt, rows)} if rows else {}
    answered: set[tuple[int, str]] = set()
    ids: list[int | None] = []
    for event in events:
        key = (event.corp_id, event.dedupe_key)
        ids.append(stored.get(key) if key not in answered else None)
        answered.add(key)
    return ids


def do_store_event(
    session: Session, *, corp_id: int, dedupe_key: str, event: str, change_type: str, payload: str
) -> int | None:
    return do_store_events(session, [StoredEvent(corp_id, dedupe_key, event, change_type, payload)])[0]


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
