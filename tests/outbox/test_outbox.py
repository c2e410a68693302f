"""The WeCom outbox: a change is a stored row, sent after commit, once, with its failures recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.core.config import get_settings
from siyu.core.tasks import configure_queue, huey
from siyu.outbox import actions
from siyu.outbox.models import WeComOutbox
from siyu.outbox.tasks import send_one
from siyu.sync.flows import run_sync
from siyu.wecom.client import WeComClient
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from siyu.wecom.errors import RateLimitError
from tests.sync.test_sync_support import corp_for

calls: list[dict[str, Any]] = []


def _send(client: WeComClient, payload: dict[str, Any]) -> dict[str, Any]:
    calls.append(payload)
    client.mark_tag(payload["userid"], payload["external_userid"], add=payload["add"])
    return {"ok": True}


actions.register_sender("test_mark_tag", _send)


@pytest.fixture
def emu(db: sessionmaker[Session]) -> Iterator[tuple[RunningEmulator, int]]:
    calls.clear()
    configure_queue()  # a real (SQLite) queue, no consumer: tests send rows explicitly
    with start_emulator(employees=3, customers=10, seed=3) as emulator:
        corp_id = corp_for(db, emulator)
        run_sync(corp_id, only="tags")
        yield emulator, corp_id


def _payload(emulator: RunningEmulator) -> dict[str, Any]:
    follow = next(iter(emulator.state.follows()))
    tag = next(t for t in emulator.state.tags if t not in follow.tag_ids)
    return {"userid": follow.userid, "external_userid": follow.external_userid, "add": [tag]}


def _rows(db: sessionmaker[Session]) -> list[WeComOutbox]:
    with db() as s:
        return list(s.scalars(sa.select(WeComOutbox).order_by(WeComOutbox.id)))


def test_row_is_queued_after_commit_and_sent_once(emu: tuple[RunningEmulator, int], db: sessionmaker[Session]) -> None:
    emulator, corp_id = emu
    payload = _payload(emulator)
    # given a change enqueued in a transaction that commits
    with db.begin() as s:
        row = actions.do_enqueue(s, corp_id=corp_id, kind="test_mark_tag", payload=payload, created_by="test")
        assert huey.pending_count() == 0  # nothing leaves before the commit
    assert huey.pending_count() == 1
    # when it is sent, and sent again (a duplicate queue message)
    assert send_one(row.id) == "sent"
    assert send_one(row.id) == "gone"
    # then WeCom saw one call and has the tag
    assert len(calls) == 1
    assert payload["add"][0] in emulator.state.follow(payload["userid"], payload["external_userid"]).tag_ids
    assert [(r.status, r.attempts) for r in _rows(db)] == [("sent", 1)]


def test_rolled_back_change_never_leaves(emu: tuple[RunningEmulator, int], db: sessionmaker[Session]) -> None:
    emulator, corp_id = emu
    with pytest.raises(RuntimeError), db.begin() as s:
        actions.do_enqueue(s, corp_id=corp_id, kind="test_mark_tag", payload=_payload(emulator), created_by="t")
        raise RuntimeError("the local change failed")
    assert _rows(db) == []
    assert huey.pending_count() == 0


def test_transient_failure_keeps_the_row_pending(
    emu: tuple[RunningEmulator, int], db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, corp_id = emu
    monkeypatch.setenv("SIYU_WECOM_RETRY_BUDGET_SECONDS", "0.2")
    get_settings.cache_clear()
    with db.begin() as s:
        row = actions.do_enqueue(s, corp_id=corp_id, kind="test_mark_tag", payload=_payload(emulator), created_by="t")
    # given WeCom is busy for longer than the client's retry budget
    emulator.inject_error("externalcontact/mark_tag", 45033, times=100)
    with pytest.raises(RateLimitError):  # the queue retries the task
        send_one(row.id)
    assert [(r.status, r.attempts) for r in _rows(db)] == [("pending", 1)]
    assert calls and not emulator.state.follow(calls[0]["userid"], calls[0]["external_userid"]).tag_ids.count(
        calls[0]["add"][0]
    )
    # when WeCom recovers, the retry sends it
    emulator.emulator.errors.clear()
    assert send_one(row.id) == "sent"
    assert [(r.status, r.attempts) for r in _rows(db)] == [("sent", 2)]
    get_settings.cache_clear()


def test_permanent_error_parks_the_row_with_its_reason(
    emu: tuple[RunningEmulator, int], db: sessionmaker[Session]
) -> None:
    emulator, corp_id = emu
    payload = {**_payload(emulator), "external_userid": "wmNotACustomerOfThisEmployee000000"}
    with db.begin() as s:
        row = actions.do_enqueue(s, corp_id=corp_id, kind="test_mark_tag", payload=payload, created_by="t")
    assert send_one(row.id) == "failed"
    (stored,) = _rows(db)
    assert stored.status == "failed"
    assert "84061" in stored.error
