"""The task queue: one Huey instance whose storage is chosen by settings.

Huey was picked because it is maintained, small, and has both an embedded storage
(SQLite: no server, the default) and Redis (several machines), with retries,
scheduling and periodic tasks built in (see docs/architecture.md).

Task functions bind to `huey` at import; the storage is (re)configured at start-up by
`configure_queue()`, which is also the seam tests use to run the same tasks on SQLite
or Redis storage.
"""

from __future__ import annotations

from collections.abc import Callable

from huey import Huey
from huey.storage import BaseStorage, MemoryStorage, PriorityRedisStorage, SqliteStorage
from sqlalchemy.orm import Session

from siyu.core.config import get_settings
from siyu.core.db import session_scope

QUEUE_NAME = "siyu"

huey = Huey(QUEUE_NAME, storage_class=MemoryStorage, utc=True)


def storage_for(url: str, name: str = QUEUE_NAME) -> BaseStorage:
    """sqlite:///path → embedded storage; redis://… → Redis; memory:// → in-process (tests only).

    Every storage honours task priorities (welcomes go before event processing).
    """
    if url.startswith("sqlite:///"):
        return SqliteStorage(name=name, filename=url.removeprefix("sqlite:///"))
    if url.startswith(("redis://", "rediss://", "unix://")):
        return PriorityRedisStorage(name=name, url=url)
    if url == "memory://":
        return MemoryStorage(name=name)
    raise ValueError(f"unsupported queue URL {url!r}: use sqlite:///path or redis://host:port/db")


def configure_queue(url: str | None = None, *, immediate: bool = False) -> None:
    """Point the queue at its storage. immediate=True runs tasks inline (one-process tools)."""
    huey.immediate = immediate  # switching immediate mode replaces the storage, so it goes first
    if not immediate:
        huey.storage = storage_for(url or get_settings().resolved_queue_url())


def enqueue_pending(
    pending_ids: Callable[[Session, int, int], list[int]], enqueue: Callable[[int], object], *, limit: int = 10_000
) -> int:
    """Re-enqueue stored work still pending (inbox rows, outbox rows), in keyset batches of 1,000.

    Used at worker start-up and periodically, so a queue message lost to a crash or a
    flushed Redis never loses the work: the database row is the truth, the message a nudge.
    """
    enqueued, after = 0, 0
    while enqueued < limit:
        with session_scope() as session:
            ids = pending_ids(session, after, min(1000, limit - enqueued))
        if not ids:
            break
        for row_id in ids:
            enqueue(row_id)
        enqueued += len(ids)
        after = ids[-1]
    return enqueued
