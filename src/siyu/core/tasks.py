"""The task queue: one Huey instance whose storage is chosen by settings.

Huey was picked because it is maintained, small, and has both an embedded storage
(SQLite: no server, the default) and Redis (several machines), with retries,
scheduling and periodic tasks built in (see docs/architecture.md).

Task functions bind to `huey` at import; the storage is (re)configured at start-up by
`configure_queue()`, which is also the seam tests use to run the same tasks on SQLite
or Redis storage.
"""

from __future__ import annotations

from huey import Huey
from huey.storage import BaseStorage, MemoryStorage, RedisStorage, SqliteStorage

from siyu.core.config import get_settings

QUEUE_NAME = "siyu"

huey = Huey(QUEUE_NAME, storage_class=MemoryStorage, utc=True)


def storage_for(url: str, name: str = QUEUE_NAME) -> BaseStorage:
    """sqlite:///path → embedded storage; redis://… → Redis; memory:// → in-process (tests only)."""
    if url.startswith("sqlite:///"):
        return SqliteStorage(name=name, filename=url.removeprefix("sqlite:///"))
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStorage(name=name, url=url)
    if url == "memory://":
        return MemoryStorage(name=name)
    raise ValueError(f"unsupported queue URL {url!r}: use sqlite:///path or redis://host:port/db")


def configure_queue(url: str | None = None, *, immediate: bool = False) -> None:
    """Point the queue at its storage. immediate=True runs tasks inline (one-process tools)."""
    huey.immediate = immediate  # switching immediate mode replaces the storage, so it goes first
    if not immediate:
        huey.storage = storage_for(url or get_settings().resolved_queue_url())
