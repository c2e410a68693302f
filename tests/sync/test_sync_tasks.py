"""The sync tasks, run inline by Huey's immediate mode (the queue boundary is the only thing swapped)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from siyu.core.tasks import huey
from siyu.sync.models import SyncRun, SyncStatus
from siyu.sync.tasks import sync_corp
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from siyu.worker import nightly_reconciliation
from tests.sync.test_sync_support import corp_for


@pytest.fixture
def inline_queue() -> Iterator[None]:
    was = huey.immediate
    huey.immediate = True
    yield
    huey.immediate = was


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with start_emulator(employees=5, customers=60, seed=11) as running:
        yield running


def test_sync_corp_runs_a_sync(db: sessionmaker[Session], emu: RunningEmulator, inline_queue: None) -> None:
    corp_id = corp_for(db, emu)
    result = sync_corp(corp_id).get()
    assert result is not None and result["changes"]["added"] > 0


def test_sync_corp_skips_while_a_live_run_holds_the_corp(
    db: sessionmaker[Session], emu: RunningEmulator, inline_queue: None
) -> None:
    # given a live run
    corp_id = corp_for(db, emu)
    with db.begin() as s:
        s.add(SyncRun(corp_id=corp_id, scope="all", checkpoint={}, stats={}))
    # when the task runs, then it does nothing
    assert sync_corp(corp_id).get() is None
    with db() as s:
        assert s.scalars(select(SyncRun.status)).all() == [SyncStatus.RUNNING]


def test_sync_corp_of_a_deleted_corp_is_a_no_op(db: sessionmaker[Session], inline_queue: None) -> None:
    assert sync_corp(424242).get() is None


def test_nightly_reconciliation_syncs_every_corp(
    db: sessionmaker[Session], emu: RunningEmulator, inline_queue: None
) -> None:
    corp_for(db, emu)
    assert nightly_reconciliation.call_local() == 1
    with db() as s:
        assert s.scalars(select(SyncRun.status)).all() == [SyncStatus.DONE]
