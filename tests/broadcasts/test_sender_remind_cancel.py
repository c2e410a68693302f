"""Reminding senders who have not confirmed, and cancelling a broadcast at any stage."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from siyu.broadcasts import results, sender
from siyu.broadcasts.models import BroadcastStatus, ChunkStatus
from siyu.broadcasts.models import RecipientStatus as R
from siyu.broadcasts.outbox import CANCEL_KIND, REMIND_KIND
from siyu.core.errors import DomainError
from siyu.outbox.models import WeComOutbox
from tests.broadcasts.test_sender_support import Live


def _remind(live: Live, broadcast_id: int) -> dict[str, int]:
    with live.db.begin() as s:
        done = results.do_remind(s, broadcast_id, live.admin)
    live.send_outbox()
    return done


def test_only_unconfirmed_senders_are_reminded_three_times_a_day_at_most(live: Live) -> None:
    (a, a_ids), (b, b_ids) = live.senders(2, customers=1)
    broadcast_id = live.planned([(a, a_ids[:1]), (b, b_ids[:1])])
    live.start(broadcast_id)
    live.send_all(broadcast_id)
    first, second = live.chunks(broadcast_id)
    # given a confirmed and the results poll saw it; b did not
    live.emu.confirm_mass(first.msgid, a)
    live.poll(broadcast_id)
    # when the operator reminds three times
    assert [_remind(live, broadcast_id) for _ in range(3)] == [{"reminded": 1, "at_limit": 0}] * 3
    # then only b's task was reminded in WeCom, and the time is recorded
    assert (len(live.task(first.msgid).reminds), len(live.task(second.msgid).reminds)) == (0, 3)
    assert live.chunks(broadcast_id)[1].reminded_at is not None
    # a fourth reminder inside 24 h is not sent (WeCom would refuse it)
    assert _remind(live, broadcast_id) == {"reminded": 0, "at_limit": 1}
    with live.db() as s:
        kinds = list(s.scalars(sa.select(WeComOutbox.status).where(WeComOutbox.kind == REMIND_KIND)))
    assert kinds == ["sent"] * 3


@pytest.mark.parametrize("status", [BroadcastStatus.PLANNED, BroadcastStatus.FINISHED])
def test_remind_needs_a_sending_or_sent_broadcast(live: Live, status: str) -> None:
    ((a, ids),) = live.senders(1, customers=1)
    broadcast_id = live.planned([(a, ids[:1])])
    with live.db.begin() as s:
        s.execute(sa.text("UPDATE broadcast SET status = :s WHERE id = :i"), {"s": status, "i": broadcast_id})
    with pytest.raises(DomainError, match="nothing to remind"), live.db.begin() as s:
        results.do_remind(s, broadcast_id, live.admin)


def test_cancel_withdraws_wecom_tasks_stops_unsent_chunks_and_keeps_what_was_sent(live: Live) -> None:
    (a, a_ids), (b, b_ids) = live.senders(2, customers=2)
    broadcast_id = live.planned([(a, a_ids[:2]), (b, b_ids[:1]), (b, b_ids[1:2])])
    live.start(broadcast_id)
    first, second, third = live.chunk_ids(broadcast_id)
    assert [sender.send_chunk(first), sender.send_chunk(second)] == ["sent", "sent"]
    chunks = live.chunks(broadcast_id)
    # given a confirmed just before the cancel (siyu has not polled yet); b has not
    live.emu.confirm_mass(chunks[0].msgid, a)
    # when the operator cancels
    with live.db.begin() as s:
        assert sender.do_cancel(s, broadcast_id, live.admin).status == BroadcastStatus.CANCELLED
    live.send_outbox()
    # then both WeCom tasks are withdrawn; the chunk not yet sent never reaches WeCom
    assert live.task(chunks[0].msgid).cancelled and live.task(chunks[1].msgid).cancelled
    assert sender.send_chunk(third) == "cancelled"
    assert len(live.tasks()) == 2
    with pytest.raises(Exception, match="cancelled"):
        live.emu.confirm_mass(chunks[1].msgid, b)
    # and the results poll keeps what a sent before the cancel; everyone else is cancelled
    counts = live.poll(broadcast_id)
    statuses = live.statuses(broadcast_id)
    assert {statuses[i][0] for i in a_ids[:2]} == {R.SENT}
    assert {statuses[i] for i in b_ids[:2]} == {(R.CANCELLED, "broadcast_cancelled")}
    assert counts["final"] is True and (counts["sent"], counts["cancelled"]) == (2, 2)
    done = live.broadcast(broadcast_id)
    assert done.status == BroadcastStatus.CANCELLED and done.finished_at is not None
    assert [c.status for c in live.chunks(broadcast_id)] == [ChunkStatus.SENT, ChunkStatus.SENT, ChunkStatus.CANCELLED]


def test_cancelling_a_planned_broadcast_frees_every_slot_without_calling_wecom(live: Live) -> None:
    ((a, ids),) = live.senders(1, customers=2)
    broadcast_id = live.planned([(a, ids[:2])])
    with live.db.begin() as s:
        sender.do_cancel(s, broadcast_id, live.admin)
    assert {v for v in live.statuses(broadcast_id).values()} == {(R.CANCELLED, "broadcast_cancelled")}
    assert live.broadcast(broadcast_id).finished_at is not None
    with live.db() as s:
        assert s.scalar(sa.select(sa.func.count()).where(WeComOutbox.kind == CANCEL_KIND)) == 0
    with pytest.raises(DomainError, match="cannot be cancelled"), live.db.begin() as s:
        sender.do_cancel(s, broadcast_id, live.admin)
