"""A worker killed mid-send resumes without sending any chunk twice.

The kill is simulated where it hurts: after WeCom accepted add_msg_template and before siyu recorded
the msgid (the answer is lost with the process). The resumed send must find the task in WeCom
(get_groupmsg_list_v2) and adopt it, so the emulator ends with exactly one task per chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from siyu.broadcasts import sender, tasks
from siyu.broadcasts.models import BroadcastStatus, ChunkStatus, RecipientStatus
from siyu.core.clock import now_utc
from siyu.core.tasks import configure_queue
from siyu.wecom.client import WeComClient
from siyu.wecom.errors import TransportError
from tests.broadcasts.test_sender_support import Live


class Killed(BaseException):
    """The worker process dying: nothing after this line runs, no handler sees it."""


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Move siyu's clock past the stale-claim limit (a dead worker's claim may then be taken over)."""

    def move(by: timedelta = sender.STALE_AFTER + timedelta(seconds=1)) -> datetime:
        moved = now_utc() + by
        for module in (sender, tasks):
            monkeypatch.setattr(module, "now_utc", lambda: moved)
        return moved

    yield move


def _kill_after_wecom(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every send dies right after WeCom answered; returns the msgids WeCom handed out."""
    handed_out: list[str] = []

    def die(*_args: Any, msgid: str, **_kwargs: Any) -> str:
        handed_out.append(msgid)
        raise Killed

    monkeypatch.setattr(sender, "do_record_sent", die)
    return handed_out


def _one_task_per_chunk(live: Live, broadcast_id: int) -> None:
    chunks = live.chunks(broadcast_id)
    by_msgid = {t.msgid: t for t in live.tasks()}
    assert len(by_msgid) == len(chunks)
    assert sorted(c.msgid for c in chunks) == sorted(by_msgid)
    for chunk in chunks:
        (member,) = by_msgid[chunk.msgid].senders.values()
        expected = {live.external_userid(cid) for cid, (_, _) in _recipients_of(live, broadcast_id, chunk.id)}
        assert set(member.recipients) == expected, f"chunk {chunk.id} adopted another chunk's task"


def _recipients_of(live: Live, broadcast_id: int, chunk_id: int) -> list[tuple[int, tuple[str, str]]]:
    import sqlalchemy as sa

    from siyu.broadcasts.models import BroadcastChunk, BroadcastRecipient, in_chunk

    with live.db() as s:
        chunk = s.get(BroadcastChunk, chunk_id)
        assert chunk is not None
        ids = set(s.scalars(sa.select(BroadcastRecipient.customer_id).where(in_chunk(chunk))))
    return [(cid, st) for cid, st in live.statuses(broadcast_id).items() if cid in ids]


def test_killed_after_wecom_accepted_every_chunk_resumes_by_adopting_the_tasks(
    live: Live, monkeypatch: pytest.MonkeyPatch, later: Any
) -> None:
    # given a broadcast whose first sender has two chunks with the same text (only recipients differ)
    (a, a_ids), (b, b_ids) = live.senders(2, customers=4)
    broadcast_id = live.planned([(a, a_ids[:2]), (a, a_ids[2:4]), (b, b_ids[:3])])
    live.start(broadcast_id)
    # when the worker dies after each WeCom call, before recording it
    handed_out = _kill_after_wecom(monkeypatch)
    for chunk_id in live.chunk_ids(broadcast_id):
        with pytest.raises(Killed):
            sender.send_chunk(chunk_id)
    assert len(handed_out) == 3 and {c.status for c in live.chunks(broadcast_id)} == {ChunkStatus.SENDING}
    monkeypatch.undo()
    # a fresh claim is left alone: its worker may still be inside the call
    assert sender.send_chunk(live.chunk_ids(broadcast_id)[0]) == "in_flight"
    # when a's second chunk resumes first (both of a's tasks in WeCom carry the same text and sender)
    later()
    assert sender.send_chunk(live.chunk_ids(broadcast_id)[1]) == "sent"
    # and the drain finds the other stale claims (the queue runs them inline here)
    configure_queue(immediate=True)
    try:
        assert tasks.drain_broadcasts() == {"broadcast_chunks": 0, "stale_chunks": 2}
    finally:
        configure_queue()
    # then every chunk adopted its own task: WeCom still holds exactly one per chunk
    _one_task_per_chunk(live, broadcast_id)
    chunks = live.chunks(broadcast_id)
    assert sorted(c.msgid for c in chunks) == sorted(handed_out)
    assert [(c.status, c.attempts) for c in chunks] == [(ChunkStatus.SENT, 2)] * 3
    assert live.broadcast(broadcast_id).status == BroadcastStatus.SENT


def test_killed_before_the_wecom_call_resumes_by_sending(
    live: Live, monkeypatch: pytest.MonkeyPatch, later: Any
) -> None:
    ((a, ids),) = live.senders(1, customers=2)
    broadcast_id = live.planned([(a, ids[:2])])
    live.start(broadcast_id)

    def die(*_args: Any, **_kwargs: Any) -> None:
        raise Killed

    monkeypatch.setattr(sender, "_add_msg_template", die)
    (chunk_id,) = live.chunk_ids(broadcast_id)
    with pytest.raises(Killed):
        sender.send_chunk(chunk_id)
    monkeypatch.undo()
    assert live.tasks() == []
    later()
    # WeCom has no task for the chunk, so the resume sends it — once
    assert sender.send_chunk(chunk_id) == "sent"
    _one_task_per_chunk(live, broadcast_id)


def test_a_lost_answer_is_retried_by_looking_first(live: Live, monkeypatch: pytest.MonkeyPatch, later: Any) -> None:
    # given WeCom creates the task but the answer never arrives (a timeout)
    ((a, ids),) = live.senders(1, customers=2)
    broadcast_id = live.planned([(a, ids[:2])])
    live.start(broadcast_id)
    real = WeComClient.add_msg_template

    def lost(self: WeComClient, **kwargs: Any) -> tuple[str, list[str]]:
        real(self, **kwargs)
        raise TransportError("POST add_msg_template: ReadTimeout")

    monkeypatch.setattr(WeComClient, "add_msg_template", lost)
    (chunk_id,) = live.chunk_ids(broadcast_id)
    assert sender.send_chunk(chunk_id) == "retry"
    (chunk,) = live.chunks(broadcast_id)
    assert chunk.status == ChunkStatus.SENDING and "ReadTimeout" in chunk.error
    monkeypatch.undo()
    # when the scheduled retry runs (after the stale limit)
    later()
    assert sender.send_chunk(chunk_id) == "sent"
    # then the task WeCom created is adopted, not duplicated
    (task,) = live.tasks()
    assert live.chunks(broadcast_id)[0].msgid == task.msgid


def test_interrupted_between_chunks_the_drain_sends_the_rest_once(live: Live) -> None:
    (a, a_ids), (b, b_ids) = live.senders(2, customers=2)
    broadcast_id = live.planned([(a, a_ids[:2]), (b, b_ids[:2])])
    live.start(broadcast_id)
    first, second = live.chunk_ids(broadcast_id)
    # the worker sends the first chunk, then dies before taking the second (its queue message is lost)
    assert sender.send_chunk(first) == "sent"
    assert live.broadcast(broadcast_id).status == BroadcastStatus.SENDING
    # when the drain runs (worker start-up, or every 5 minutes)
    configure_queue(immediate=True)
    try:
        assert tasks.drain_broadcasts() == {"broadcast_chunks": 1, "stale_chunks": 0}
    finally:
        configure_queue()
    # then the second chunk is sent; a duplicate message for the first changes nothing
    assert sender.send_chunk(first) == "sent"
    assert sender.send_chunk(second) == "sent"
    _one_task_per_chunk(live, broadcast_id)
    assert live.broadcast(broadcast_id).status == BroadcastStatus.SENT


def test_cancelled_while_a_send_was_lost_the_adopted_task_is_withdrawn(
    live: Live, monkeypatch: pytest.MonkeyPatch, later: Any
) -> None:
    ((a, ids),) = live.senders(1, customers=2)
    broadcast_id = live.planned([(a, ids[:2])])
    live.start(broadcast_id)
    _kill_after_wecom(monkeypatch)
    (chunk_id,) = live.chunk_ids(broadcast_id)
    with pytest.raises(Killed):
        sender.send_chunk(chunk_id)
    monkeypatch.undo()
    # the operator cancels while the chunk's fate is unknown
    with live.db.begin() as s:
        sender.do_cancel(s, broadcast_id, live.admin)
    later()
    assert sender.send_chunk(chunk_id) == "sent"
    live.send_outbox()
    # the task found in WeCom is cancelled there, and its recipients here
    (task,) = live.tasks()
    assert task.cancelled
    assert {st for st in live.statuses(broadcast_id).values()} == {(RecipientStatus.CANCELLED, "broadcast_cancelled")}
    assert live.broadcast(broadcast_id).status == BroadcastStatus.CANCELLED


def test_another_chunks_lost_task_is_never_adopted(live: Live, monkeypatch: pytest.MonkeyPatch, later: Any) -> None:
    # given one sender's two chunks: the first died after WeCom created its task, the second before calling
    ((a, ids),) = live.senders(1, customers=4)
    broadcast_id = live.planned([(a, ids[:2]), (a, ids[2:4])])
    live.start(broadcast_id)
    first, second = live.chunk_ids(broadcast_id)
    _kill_after_wecom(monkeypatch)
    with pytest.raises(Killed):
        sender.send_chunk(first)
    monkeypatch.undo()

    def die(*_args: Any, **_kwargs: Any) -> None:
        raise Killed

    monkeypatch.setattr(sender, "_add_msg_template", die)
    with pytest.raises(Killed):
        sender.send_chunk(second)
    monkeypatch.undo()
    # when the second resumes first, WeCom's only unrecorded task with its text and sender is the first's
    later()
    assert sender.send_chunk(second) == "sent"
    assert sender.send_chunk(first) == "sent"
    # then each chunk has its own task: the second sent one, the first adopted its own
    _one_task_per_chunk(live, broadcast_id)
