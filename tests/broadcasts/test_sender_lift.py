"""Lifting a reach pause resumes the paused broadcasts it held, as sending them again would.

The lift goes through the API (a compliance officer); the queue is the real one (SQLite storage), read
to see which chunks the lift's commit enqueued.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from siyu.broadcasts.models import BroadcastStatus, ChunkStatus
from siyu.compliance.models import ReachPause
from siyu.core.clock import now_utc
from siyu.core.tasks import huey
from siyu.corp.models import AuditLog
from tests.broadcasts.test_sender_support import Live
from tests.console_api_support import api_client


def _pause(live: Live, scope: str, target_id: int) -> int:
    with live.db.begin() as s:
        pause = ReachPause(corp_id=live.corp_id, scope=scope, target_id=target_id, reason="complaints")
        s.add(pause)
        s.flush()
        return pause.id


def _paused_while_sending(live: Live, chunks: list[tuple[str, list[int]]]) -> tuple[int, int]:
    """A started broadcast the monitor paused before any chunk went out: (broadcast id, its pause id)."""
    broadcast_id = live.planned(chunks)
    live.start(broadcast_id)
    pause_id = _pause(live, "broadcast", broadcast_id)
    assert set(live.send_all(broadcast_id)) == {"paused"}
    assert live.broadcast(broadcast_id).status == BroadcastStatus.PAUSED
    huey.flush()  # the start's queue messages are spent
    return broadcast_id, pause_id


def _lift(officer: TestClient, pause_id: int) -> None:
    r = officer.post(f"/api/compliance/pauses/{pause_id}/lift")
    assert r.status_code == 200, r.text
    assert r.json()["lifted_at"] is not None


def _queued_chunks() -> list[int]:
    return sorted(task.args[0] for task in huey.pending() if task.name.endswith("send_broadcast_chunk"))


def _audit(live: Live, broadcast_id: int, action: str) -> list[dict[str, Any]]:
    with live.db() as s:
        rows = s.scalars(
            sa.select(AuditLog.detail)
            .where(
                AuditLog.object_type == "broadcast",
                AuditLog.object_id == str(broadcast_id),
                AuditLog.action == action,
            )
            .order_by(AuditLog.id)
        )
        return [json.loads(detail) for detail in rows]


def test_lifting_a_broadcast_pause_resumes_it_and_sends_each_chunk_once(live: Live) -> None:
    # given a broadcast of two senders, paused with both chunks pending
    (a, a_ids), (b, b_ids) = live.senders(2, customers=2)
    broadcast_id, pause_id = _paused_while_sending(live, [(a, a_ids[:2]), (b, b_ids[:2])])
    officer = api_client(live.db, live.corp_id, "compliance")

    # when a compliance officer lifts the pause, twice
    _lift(officer, pause_id)
    _lift(officer, pause_id)

    # then each pending chunk was enqueued once, and the broadcast is sending again
    assert _queued_chunks() == live.chunk_ids(broadcast_id)
    assert live.broadcast(broadcast_id).status == BroadcastStatus.SENDING
    (resumed,) = _audit(live, broadcast_id, "broadcast.resumed")
    assert (resumed["cause"], resumed["pause_id"], resumed["chunks"]) == ("compliance.pause_lifted", pause_id, 2)
    # and a queue message delivered twice still sends each chunk once
    assert live.send_all(broadcast_id) == ["sent", "sent"]
    assert live.send_all(broadcast_id) == ["sent", "sent"]
    assert len(live.tasks()) == 2
    assert [c.status for c in live.chunks(broadcast_id)] == [ChunkStatus.SENT] * 2


@pytest.mark.parametrize("other", ["broadcast", "employee"])
def test_a_broadcast_another_pause_still_holds_stays_paused(live: Live, other: str) -> None:
    # given a paused broadcast also held by a second pause: of the broadcast, or of a sender with a pending chunk
    (a, a_ids), (b, b_ids) = live.senders(2, customers=1)
    broadcast_id, pause_id = _paused_while_sending(live, [(a, a_ids[:1]), (b, b_ids[:1])])
    holding = _pause(live, other, broadcast_id if other == "broadcast" else live.employee(b))

    # when the first pause is lifted
    _lift(api_client(live.db, live.corp_id, "compliance"), pause_id)

    # then nothing is enqueued, the broadcast stays paused, and the audit says what still holds it
    assert _queued_chunks() == []
    assert live.broadcast(broadcast_id).status == BroadcastStatus.PAUSED
    assert _audit(live, broadcast_id, "broadcast.resumed") == []
    (kept,) = _audit(live, broadcast_id, "broadcast.not_resumed")
    assert (kept["reason"], kept["held_by"], kept["pause_id"]) == ("still paused", [holding], pause_id)


def test_lifting_an_employee_pause_resumes_the_broadcast_it_held(live: Live) -> None:
    # given a paused broadcast whose sender b was paused too, and another paused broadcast without b
    (a, a_ids), (b, b_ids) = live.senders(2, customers=2)
    held, held_pause = _paused_while_sending(live, [(a, a_ids[:1]), (b, b_ids[:1])])
    other, _ = _paused_while_sending(live, [(a, a_ids[1:2])])
    b_pause = _pause(live, "employee", live.employee(b))
    officer = api_client(live.db, live.corp_id, "compliance")
    _lift(officer, held_pause)
    assert live.broadcast(held).status == BroadcastStatus.PAUSED

    # when b's pause is lifted
    _lift(officer, b_pause)

    # then the broadcast b held resumes with both its chunks; the other stays paused by its own pause
    assert _queued_chunks() == live.chunk_ids(held)
    assert live.broadcast(held).status == BroadcastStatus.SENDING
    (resumed,) = _audit(live, held, "broadcast.resumed")
    assert resumed["pause_id"] == b_pause
    assert live.broadcast(other).status == BroadcastStatus.PAUSED
    assert _audit(live, other, "broadcast.resumed") == _audit(live, other, "broadcast.not_resumed") == []
    assert live.send_all(held) == ["sent", "sent"]


def test_a_broadcast_planned_for_an_earlier_day_stays_paused_and_says_why(live: Live) -> None:
    # given a paused broadcast whose send day has passed
    ((a, ids),) = live.senders(1, customers=1)
    broadcast_id, pause_id = _paused_while_sending(live, [(a, ids[:1])])
    day = now_utc().date() - timedelta(days=2)
    with live.db.begin() as s:
        s.execute(sa.text("UPDATE broadcast SET send_day = :d WHERE id = :i"), {"d": day, "i": broadcast_id})

    # when its pause is lifted
    _lift(api_client(live.db, live.corp_id, "compliance"), pause_id)

    # then it does not resume on a later day: still paused, nothing enqueued, the reason in the audit log
    assert _queued_chunks() == []
    assert live.broadcast(broadcast_id).status == BroadcastStatus.PAUSED
    assert [c.status for c in live.chunks(broadcast_id)] == [ChunkStatus.PENDING]
    (kept,) = _audit(live, broadcast_id, "broadcast.not_resumed")
    assert kept["reason"] == f"broadcast {broadcast_id} was planned for {day}; plan it again"
    assert kept["pause_id"] == pause_id


def test_a_worker_does_not_pause_a_broadcast_once_its_pause_is_lifted(live: Live) -> None:
    # given a sending broadcast whose pause a worker saw, lifted before the worker stops the broadcast
    from siyu.broadcasts import sender
    from siyu.broadcasts.models import Broadcast

    (a, a_ids), _ = live.senders(2, customers=1)
    broadcast_id = live.planned([(a, a_ids[:1])])
    live.start(broadcast_id)
    pause_id = _pause(live, "broadcast", broadcast_id)
    with live.db.begin() as s:
        s.get_one(ReachPause, pause_id).lifted_at = now_utc()
    # when the worker goes to pause it (it locks the broadcast and looks again)
    with live.db.begin() as s:
        stopped = sender._pause_broadcast(s, s.get_one(Broadcast, broadcast_id))
    # then it does not, and the broadcast keeps sending
    assert stopped is False
    assert live.broadcast(broadcast_id).status == BroadcastStatus.SENDING
    assert _audit(live, broadcast_id, "broadcast.paused") == []
