"""Two workers on events about one customer: a stale re-fetch must never undo a newer deletion."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.callbacks import tasks
from siyu.callbacks.actions import StoredEvent, do_store_events
from siyu.sync.flows import run_sync
from siyu.wecom.callbacks import dedupe_key, parse_event
from siyu.wecom.client import client_for_corp
from siyu.wecom.emulator.actors import event_xml
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from tests.sync.test_sync_support import corp_for


@pytest.fixture
def synced(db: sessionmaker[Session]) -> Iterator[tuple[RunningEmulator, int]]:
    with start_emulator(employees=3, customers=10, seed=9) as emu:
        corp_id = corp_for(db, emu)
        run_sync(corp_id)
        yield emu, corp_id


def _store(db: sessionmaker[Session], corpid: str, corp_id: int, change: str, userid: str, ext: str) -> int:
    xml = event_xml(
        corpid,
        int(time.time()),
        "change_external_contact",
        [("ChangeType", change), ("UserID", userid), ("ExternalUserID", ext)],
    )
    event = parse_event(xml.encode())
    with db.begin() as s:
        (inbox_id,) = do_store_events(s, [StoredEvent(corp_id, dedupe_key(event), event.event, change, xml)])
    assert inbox_id is not None
    return inbox_id


class SlowClient:
    """Fetches at once, then holds the (soon stale) answer until released: a slow worker."""

    def __init__(self, real: Any, fetched: threading.Event, release: threading.Event) -> None:
        self.real, self.fetched, self.release = real, fetched, release

    def __enter__(self) -> SlowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.real.close()

    def get_external_contact(self, external_userid: str) -> Any:
        detail = self.real.get_external_contact(external_userid)
        self.fetched.set()
        self.release.wait(5)
        return detail

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_deletion_processed_during_a_slow_refetch_wins(
    synced: tuple[RunningEmulator, int], db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, corp_id = synced
    follow = next(iter(emu.state.follows()))
    userid, ext = follow.userid, follow.external_userid
    edit_id = _store(db, emu.corp.corpid, corp_id, "edit_external_contact", userid, ext)
    delete_id = _store(db, emu.corp.corpid, corp_id, "del_follow_user", userid, ext)
    fetched, release = threading.Event(), threading.Event()
    monkeypatch.setattr(tasks, "client_for_corp", lambda corp: SlowClient(client_for_corp(corp), fetched, release))
    # given a worker that fetched the customer (follow still there) and is slow to apply it
    slow = threading.Thread(target=tasks.process_one, args=(edit_id,))
    slow.start()
    assert fetched.wait(10)
    # when another worker processes the customer's deletion meanwhile
    fast = threading.Thread(target=tasks.process_one, args=(delete_id,))
    fast.start()
    time.sleep(0.5)
    release.set()
    slow.join(10)
    fast.join(10)
    # then the deletion is the last word
    with db() as s:
        status = s.execute(
            sa.text(
                "SELECT f.status FROM follow f JOIN employee e ON e.id = f.employee_id"
                " JOIN customer c ON c.id = f.customer_id WHERE e.userid = :u AND c.external_userid = :x"
            ),
            {"u": userid, "x": ext},
        ).scalar_one()
    assert status == "customer_deleted_employee"
