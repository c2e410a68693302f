"""Group commit for the callback inbox.

Every callback must be durable before WeCom hears `success`, and one commit per event
caps ingest at the disk's fsync rate (and, on SQLite, serialises every request on the
write lock). One writer thread instead takes whatever events are waiting, inserts them in
one transaction, commits once, answers each waiting request, and enqueues one queue
message for the batch. Under light load a batch is a single event, so latency stays that
of one insert; under heavy load the cost of a commit is shared by up to `max_batch` events.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future

from siyu.callbacks import actions
from siyu.callbacks.actions import StoredEvent
from siyu.core.db import session_scope

log = logging.getLogger(__name__)


PendingEvent = StoredEvent


class InboxWriter:
    def __init__(self, max_batch: int = 256) -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[PendingEvent, Future[int | None]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def store(self, event: PendingEvent) -> int | None:
        """Durably store one event; the inbox id to process, or None when it is already waiting."""
        return await asyncio.wrap_future(self.submit(event))

    def submit(self, event: PendingEvent) -> Future[int | None]:
        self._ensure_thread()
        future: Future[int | None] = Future()
        self._queue.put((event, future))
        return future

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="siyu-inbox-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[tuple[PendingEvent, Future[int | None]]]) -> None:
        try:
            with session_scope() as session:
                ids = actions.do_store_events(session, [event for event, _ in batch])
        except Exception as exc:  # the whole batch failed: every request answers 500, WeCom retries
            log.exception("could not store %d callbacks", len(batch))
            for _, future in batch:
                future.set_exception(exc)
            return
        _enqueue_welcomes([i for (event, _), i in zip(batch, ids, strict=True) if i is not None and _welcomes(event)])
        _enqueue([i for i in ids if i is not None])  # before answering: an acknowledged event is also queued
        for (_, future), inbox_id in zip(batch, ids, strict=True):
            future.set_result(inbox_id)


def _enqueue(inbox_ids: list[int]) -> None:
    if not inbox_ids:
        return
    from siyu.callbacks.tasks import process_callbacks

    try:
        process_callbacks(inbox_ids)
    except Exception:  # the events are stored; the periodic drain will enqueue them
        log.exception("could not enqueue callbacks %s; the inbox drain will pick them up", inbox_ids)


def _welcomes(event: PendingEvent) -> bool:
    """An add that carries a WelcomeCode (its 20 s are running), in a corp that has welcomes to send."""
    if event.change_type not in WELCOME_CHANGES or "<WelcomeCode>" not in event.payload:
        return False
    from siyu.acquisition.welcome import corps_with_welcomes

    return event.corp_id in corps_with_welcomes()


WELCOME_CHANGES = ("add_external_contact", "add_half_external_contact")


# Welcomes per queue message: few enough that every worker gets a share of a burst, enough that a burst of
# adds does not cost one queue write each.
WELCOMES_PER_MESSAGE = 8


def _enqueue_welcomes(inbox_ids: list[int]) -> None:
    """The welcome-first lane (acquisition.welcome.send_first), ahead of the batch's processing."""
    from siyu.acquisition.tasks import welcome_first

    for start in range(0, len(inbox_ids), WELCOMES_PER_MESSAGE):
        chunk = inbox_ids[start : start + WELCOMES_PER_MESSAGE]
        try:
            welcome_first(chunk)
        except Exception:  # the full apply still prepares and sends the welcomes
            log.exception("could not enqueue the welcomes of callbacks %s", chunk)


_writer = InboxWriter()


def inbox_writer() -> InboxWriter:
    return _writer
