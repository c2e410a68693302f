"""The real task queue carries callbacks from the endpoint to the worker, on SQLite and on Redis.

Also: an event stored but never processed (the worker was down, or crashed mid-way) is
picked up when the worker starts again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from huey.consumer import Consumer
from sqlalchemy.orm import Session, sessionmaker

from siyu.app import create_app
from siyu.core import tasks as core_tasks
from siyu.core.tasks import configure_queue, huey, storage_for
from siyu.corp.service import forget_crypt
from siyu.sync.flows import run_sync
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from siyu.worker import build_consumer
from tests.server_fixtures import serve_in_thread
from tests.sync.test_sync_support import corp_for


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: object, engine: sa.Engine) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/queue.db"  # type: ignore[operator]
        return
    base = request.getfixturevalue("redis_url")
    yield base
    storage_for(base).flush_all()


@pytest.fixture
def queue(queue_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The shared huey instance on this storage, under a name unique to the test."""
    name = f"siyu-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SIYU_QUEUE_URL", queue_url)
    monkeypatch.setattr(core_tasks, "storage_for", lambda url, name=name: storage_for(url, name))
    configure_queue(queue_url)
    huey.storage = storage_for(queue_url, name)
    yield queue_url
    huey.storage.flush_all()


def wait_until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the worker")
        time.sleep(0.05)


@pytest.fixture
def emu(db: sessionmaker[Session]) -> Iterator[tuple[RunningEmulator, int]]:
    forget_crypt()
    with start_emulator(employees=4, customers=20, seed=5) as emulator:
        corp_id = corp_for(db, emulator)
        run_sync(corp_id)
        yield emulator, corp_id


def inbox_statuses(db: sessionmaker[Session]) -> list[str]:
    with db() as s:
        return list(s.scalars(sa.text("SELECT status FROM callback_inbox ORDER BY id")))


def start_worker() -> Consumer:
    consumer = huey.create_consumer(workers=2, worker_type="thread", periodic=False)
    consumer.start()
    return consumer


def test_worker_processes_callbacks_from_the_queue(
    queue: str, emu: tuple[RunningEmulator, int], db: sessionmaker[Session]
) -> None:
    emulator, corp_id = emu
    consumer = start_worker()
    try:
        with serve_in_thread(create_app(configure=False)) as url:
            emulator.set_callback_url(f"{url}/wecom/callback/{corp_id}")
            # when customers add employees
            added = [emulator.actors.add_customer().data["external_userid"] for _ in range(3)]
            # then the worker applies every event through the queue
            wait_until(lambda: inbox_statuses(db) == ["done"] * 3)
    finally:
        consumer.stop(graceful=True)
    with db() as s:
        found = s.scalars(
            sa.text("SELECT external_userid FROM customer WHERE external_userid IN :x").bindparams(
                sa.bindparam("x", expanding=True)
            ),
            {"x": added},
        ).all()
    assert sorted(found) == sorted(added)


def test_events_stored_while_the_worker_was_down_are_processed_on_start(
    queue: str, emu: tuple[RunningEmulator, int], db: sessionmaker[Session]
) -> None:
    emulator, corp_id = emu
    # given events stored and acknowledged, whose queue messages were lost (a crash, a flushed Redis)
    with serve_in_thread(create_app(configure=False)) as url:
        emulator.set_callback_url(f"{url}/wecom/callback/{corp_id}")
        for _ in range(2):
            emulator.actors.add_customer()
    huey.storage.flush_queue()
    assert inbox_statuses(db) == ["pending", "pending"]
    # when the worker starts
    consumer = build_consumer(workers=1)
    consumer.periodic = False
    consumer.start()
    try:
        # then it drains the inbox
        wait_until(lambda: inbox_statuses(db) == ["done", "done"])
    finally:
        consumer.stop(graceful=True)
