"""Storing callbacks in batches (the group commit): duplicates collapse, processed events re-open."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.callbacks.actions import StoredEvent, do_store_events
from siyu.callbacks.writer import InboxWriter
from siyu.core.tasks import configure_queue, huey
from tests.factories import make_corp


def _event(corp_id: int, key: str) -> StoredEvent:
    return StoredEvent(corp_id, key, "change_external_contact", "edit_external_contact", f"<xml>{key}</xml>")


def test_batch_collapses_duplicates_and_reopens_processed(db: sessionmaker[Session]) -> None:
    corp_id = make_corp(db).corp_id
    # given one event already processed and one still pending
    with db.begin() as s:
        done_id, _pending_id = do_store_events(s, [_event(corp_id, "done"), _event(corp_id, "pending")])
        s.execute(sa.text("UPDATE callback_inbox SET status = 'done' WHERE id = :i"), {"i": done_id})
    # when a batch repeats both, adds a new one twice
    with db.begin() as s:
        ids = do_store_events(
            s, [_event(corp_id, "done"), _event(corp_id, "pending"), _event(corp_id, "new"), _event(corp_id, "new")]
        )
    # then the processed one is re-opened, the pending one collapses, the new one is stored once
    assert ids[0] == done_id
    assert ids[1] is None
    assert ids[2] is not None and ids[3] is None
    with db() as s:
        rows = dict(s.execute(sa.text("SELECT dedupe_key, status FROM callback_inbox")).all())
    assert rows == {"done": "pending", "pending": "pending", "new": "pending"}


def test_writer_answers_every_waiter_and_queues_each_batch_once(db: sessionmaker[Session]) -> None:
    corp_id = make_corp(db).corp_id
    configure_queue()
    writer = InboxWriter(max_batch=8)

    async def store_all() -> list[int | None]:
        return await asyncio.gather(*(writer.store(_event(corp_id, f"k{i % 20}")) for i in range(40)))

    ids = asyncio.run(store_all())
    stored = [i for i in ids if i is not None]
    assert len(stored) == len(set(stored)) == 20
    queued = sum(len(huey.serializer.deserialize(m).args[0]) for m in huey.storage.enqueued_items())
    assert queued == 20
