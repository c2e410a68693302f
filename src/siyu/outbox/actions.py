"""Queue a change for WeCom as a stored row, and send a stored row — once.

`do_enqueue` writes the row in the caller's transaction and sends it after commit (so
a rolled-back change never reaches WeCom). `send` applies one row: it claims the row,
calls WeCom, and records the result in the same transaction, so a crash either leaves
the row pending (and it is retried) or records it sent. Every kind is idempotent in
WeCom or guarded here, so the rare retry after a lost answer does no harm.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from siyu.core.clock import now_utc
from siyu.outbox.models import OutboxStatus, WeComOutbox
from siyu.wecom.client import WeComClient

MAX_ATTEMPTS = 6
SendFn = Callable[[WeComClient, dict[str, Any]], dict[str, Any] | None]
AfterFn = Callable[[Session, int, dict[str, Any], dict[str, Any] | None], None]


@dataclass(frozen=True, slots=True)
class Sender:
    """How one kind of change reaches WeCom, and what to record locally once it did."""

    send: SendFn
    after: AfterFn | None = None


SENDERS: dict[str, Sender] = {}
# The modules that register senders; loaded before sending, so every process knows every kind.
SENDER_MODULES = ("siyu.tags.outbox", "siyu.tags.wecom_sync", "siyu.acquisition.outbox", "siyu.broadcasts.outbox")


def load_senders() -> None:
    for name in SENDER_MODULES:
        importlib.import_module(name)


def register_sender(kind: str, send: SendFn, after: AfterFn | None = None) -> None:
    """Domains register their kinds at import (e.g. tags: add_corp_tag → store the new WeCom id)."""
    SENDERS[kind] = Sender(send, after)


def do_enqueue(session: Session, *, corp_id: int, kind: str, payload: dict[str, Any], created_by: str) -> WeComOutbox:
    if kind not in SENDERS:
        raise ValueError(f"no sender registered for outbox kind {kind!r}")
    row = WeComOutbox(corp_id=corp_id, kind=kind, payload=payload, created_by=created_by)
    session.add(row)
    session.flush()
    _send_after_commit(session, row.id)
    return row


def _send_after_commit(session: Session, outbox_id: int) -> None:
    def enqueue(_session: Session) -> None:
        from siyu.outbox.tasks import send_outbox

        send_outbox(outbox_id)

    event.listen(session, "after_commit", enqueue, once=True)


def do_claim(session: Session, *, outbox_id: int) -> WeComOutbox | None:
    claimed = session.execute(
        update(WeComOutbox)
        .where(WeComOutbox.id == outbox_id, WeComOutbox.status == OutboxStatus.PENDING)
        .values(attempts=WeComOutbox.attempts + 1)
    ).rowcount
    return session.get(WeComOutbox, outbox_id) if claimed == 1 else None


def do_mark_sent(session: Session, row: WeComOutbox, result: dict[str, Any] | None) -> None:
    row.status = OutboxStatus.SENT
    row.result = result
    row.error = ""
    row.sent_at = now_utc()
    session.flush()


def do_record_failure(session: Session, *, outbox_id: int, error: str, permanent: bool) -> bool:
    """Note a failed attempt; permanent errors or too many attempts park the row as failed. True if parked."""
    row = session.get(WeComOutbox, outbox_id)
    if row is None or row.status != OutboxStatus.PENDING:
        return False
    row.attempts += 1
    row.error = error[:2000]
    if permanent or row.attempts >= MAX_ATTEMPTS:
        row.status = OutboxStatus.FAILED
    session.flush()
    return row.status == OutboxStatus.FAILED


def pending_ids(session: Session, *, after_id: int = 0, limit: int = 1000) -> list[int]:
    stmt = (
        select(WeComOutbox.id)
        .where(WeComOutbox.status == OutboxStatus.PENDING, WeComOutbox.id > after_id)
        .order_by(WeComOutbox.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))
