"""Sending broadcasts end to end against the emulator: chunks become WeCom tasks, results come back.

Real HTTP to the emulator; the tests play the senders (emu.confirm_mass) and the worker (send_chunk,
poll_broadcast), so every step is deterministic.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from siyu.acquisition.models import Material
from siyu.broadcasts import results, sender, tasks
from siyu.broadcasts.models import BroadcastKind, BroadcastStatus, ChunkStatus, RecipientStatus
from siyu.compliance.models import ReachPause
from siyu.core.clock import now_utc
from siyu.core.errors import DomainError
from siyu.core.tasks import configure_queue
from siyu.corp.models import AuditLog
from tests.broadcasts.test_sender_support import Live


def test_each_chunk_becomes_one_task_and_results_reach_every_recipient(live: Live) -> None:
    # given two senders; the first has two chunks; customers who will be a quota hit and not friends
    (a, a_ids), (b, b_ids) = live.senders(2, customers=5)
    stranger = live.not_followed_by(a, besides=b_ids)
    quota, leaver = a_ids[0], b_ids[0]
    earlier = live.planned([(a, [quota])], text="今天已经发过一条")
    live.start(earlier)
    live.send_all(earlier)
    live.confirm_all(earlier)  # the quota customer already got today's message
    broadcast_id = live.planned([(a, [quota, a_ids[1], stranger]), (a, a_ids[2:4]), (b, b_ids[:3])])
    # when it is sent
    assert live.start(broadcast_id).status == BroadcastStatus.SENDING
    assert live.send_all(broadcast_id) == ["sent", "sent", "sent"]
    # then WeCom holds one task per chunk, each for its sender and exactly its recipients
    tasks = {t.msgid: t for t in live.tasks()}
    chunks = live.chunks(broadcast_id)
    assert len(tasks) == 3 and {c.msgid for c in chunks} == set(tasks)
    ext = live.external_userid
    assert tasks[chunks[0].msgid].senders[a].recipients == [ext(quota), ext(a_ids[1])]
    assert tasks[chunks[1].msgid].senders[a].recipients == [ext(i) for i in a_ids[2:4]]
    assert tasks[chunks[2].msgid].senders[b].recipients == [ext(i) for i in b_ids[:3]]
    # the customer who is not the sender's friend came back in fail_list at once
    assert chunks[0].fail_list == [ext(stranger)]
    assert live.statuses(broadcast_id)[stranger] == (RecipientStatus.NOT_FRIEND, "fail_list")
    assert live.broadcast(broadcast_id).status == BroadcastStatus.SENT
    # before anyone confirms, results are not final and nothing is counted as sent
    assert live.poll(broadcast_id)["final"] is False
    assert live.statuses(broadcast_id)[a_ids[1]][0] == RecipientStatus.PENDING
    # when a customer deletes the sender, and then everyone confirms
    live.emu.actors.customer_delete_employee(b, ext(leaver))
    live.confirm_all(broadcast_id)
    counts = live.poll(broadcast_id)
    # then each recipient has WeCom's outcome, and the broadcast is finished
    statuses = {rid: status for rid, (status, _) in live.statuses(broadcast_id).items()}
    assert statuses[quota] == RecipientStatus.QUOTA
    assert statuses[leaver] == RecipientStatus.NOT_FRIEND
    assert {statuses[i] for i in [a_ids[1], *a_ids[2:4], *b_ids[1:3]]} == {RecipientStatus.SENT}
    assert (counts["sent"], counts["quota"], counts["not_friend"], counts["pending"]) == (5, 1, 2, 0)
    assert counts["final"] is True and counts["confirmation_rate"] == 1.0
    done = live.broadcast(broadcast_id)
    assert done.status == BroadcastStatus.FINISHED and done.finished_at is not None
    assert done.counts["results"]["sent"] == 5


def test_a_paused_senders_chunk_is_cancelled_and_never_reaches_wecom(live: Live) -> None:
    (a, a_ids), (b, b_ids) = live.senders(2, customers=2)
    broadcast_id = live.planned([(a, a_ids[:2]), (b, b_ids[:2])])
    # given the complaint monitor paused b after the plan
    with live.db.begin() as s:
        s.add(ReachPause(corp_id=live.corp_id, scope="employee", target_id=live.employee(b), reason="complaints"))
    live.start(broadcast_id)
    assert live.send_all(broadcast_id) == ["sent", "cancelled"]
    # then only a's task exists, and b's recipients are cancelled (their cap slots freed)
    assert [set(t.senders) for t in live.tasks()] == [{a}]
    statuses = live.statuses(broadcast_id)
    assert {statuses[i] for i in b_ids[:2]} == {(RecipientStatus.CANCELLED, "employee_paused")}
    assert {statuses[i][0] for i in a_ids[:2]} == {RecipientStatus.PENDING}
    assert [c.status for c in live.chunks(broadcast_id)] == [ChunkStatus.SENT, ChunkStatus.CANCELLED]
    assert live.broadcast(broadcast_id).status == BroadcastStatus.SENT


def test_a_group_broadcast_sends_chat_ids_and_reads_results_per_chat(live: Live) -> None:
    owner = next(u for u in live.emu.state.employees if live.groups_of(u))
    chats = live.groups_of(owner)
    broadcast_id = live.planned([(owner, chats)], kind=BroadcastKind.GROUP, audience={"owner_ids": []})
    live.start(broadcast_id)
    assert live.send_all(broadcast_id) == ["sent"]
    (task,) = live.tasks()
    assert task.chat_type == "group" and len(task.senders[owner].recipients) == len(chats)
    live.confirm_all(broadcast_id)
    assert live.poll(broadcast_id)["sent"] == len(chats)
    assert {s for s, _ in live.statuses(broadcast_id).values()} == {RecipientStatus.SENT}


def test_unconfirmed_tasks_end_after_three_days_as_not_sent(live: Live) -> None:
    ((a, ids),) = live.senders(1, customers=2)
    broadcast_id = live.planned([(a, ids[:2])])
    live.start(broadcast_id)
    live.send_all(broadcast_id)
    # when nobody confirms for three days
    counts = live.poll(broadcast_id, now=now_utc() + timedelta(days=3, minutes=1))
    # then the recipients are not sent (their slots free again) and polling ends
    assert counts["final"] is True and counts["not_sent"] == 2 and counts["confirmation_rate"] == 0.0
    assert {v for v in live.statuses(broadcast_id).values()} == {(RecipientStatus.NOT_SENT, "not_confirmed")}
    assert [c.confirm_status for c in live.chunks(broadcast_id)] == ["expired"]
    assert live.broadcast(broadcast_id).status == BroadcastStatus.FINISHED


def test_a_scheduled_broadcast_waits_and_the_minute_job_starts_it(live: Live) -> None:
    ((a, ids),) = live.senders(1, customers=1)
    later = now_utc() + timedelta(hours=1)
    broadcast_id = live.planned([(a, ids[:1])], scheduled_at=later)
    assert live.start(broadcast_id).status == BroadcastStatus.SCHEDULED
    assert live.send_all(broadcast_id) == ["not_started"]
    with live.db.begin() as s:
        assert sender.do_start_due(s, now=now_utc()) == []
    with live.db.begin() as s:
        assert sender.do_start_due(s, now=later + timedelta(seconds=1)) == [broadcast_id]
    assert live.send_all(broadcast_id) == ["sent"]
    assert len(live.tasks()) == 1


@pytest.mark.parametrize("status", [BroadcastStatus.DRAFT, BroadcastStatus.SENDING, BroadcastStatus.BLOCKED])
def test_only_planned_broadcasts_start(live: Live, status: str) -> None:
    ((a, ids),) = live.senders(1, customers=1)
    broadcast_id = live.planned([(a, ids[:1])])
    with live.db.begin() as s:
        s.execute(sa.text("UPDATE broadcast SET status = :s WHERE id = :i"), {"s": status, "i": broadcast_id})
    with pytest.raises(DomainError, match="only planned ones send"), live.db.begin() as s:
        sender.do_start(s, broadcast_id, live.admin)


def test_every_step_is_in_the_audit_log(live: Live) -> None:
    ((a, ids),) = live.senders(1, customers=1)
    broadcast_id = live.planned([(a, ids[:1])])
    live.start(broadcast_id)
    live.send_all(broadcast_id)
    live.confirm_all(broadcast_id)
    live.poll(broadcast_id)
    with live.db() as s:
        actions = list(
            s.scalars(
                sa.select(AuditLog.action)
                .where(AuditLog.object_type == "broadcast", AuditLog.object_id == str(broadcast_id))
                .order_by(AuditLog.id)
            )
        )
    assert actions == ["broadcast.started", "broadcast.chunk_sent", "broadcast.sent", "broadcast.results_final"]


def test_the_worker_polls_results_when_due_and_less_often_as_a_broadcast_ages(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    ((a, ids),) = live.senders(1, customers=1)
    broadcast_id = live.planned([(a, ids[:1])])
    live.start(broadcast_id)
    live.send_all(broadcast_id)
    configure_queue(immediate=True)  # the minute job's poll messages run inline
    try:
        # a young broadcast is polled at once, then not again within 30 s
        assert tasks.every_minute() == {"started": 0, "polled": 1}
        assert tasks.every_minute() == {"started": 0, "polled": 0}
        # 31 s on, after the sender confirmed, it is due again and its results become final
        live.confirm_all(broadcast_id)
        moved = now_utc() + timedelta(seconds=31)
        monkeypatch.setattr(results, "now_utc", lambda: moved)
        assert tasks.every_minute() == {"started": 0, "polled": 1}
    finally:
        configure_queue()
    assert live.broadcast(broadcast_id).status == BroadcastStatus.FINISHED
    assert live.statuses(broadcast_id)[ids[0]][0] == RecipientStatus.SENT


@pytest.mark.parametrize(
    ("age", "seconds"),
    [(timedelta(minutes=5), 30), (timedelta(hours=2), 120), (timedelta(hours=12), 600), (timedelta(days=2), 1800)],
)
def test_polls_back_off_with_age(age: timedelta, seconds: int) -> None:
    assert results.poll_interval(age) == seconds


@pytest.mark.parametrize(
    ("errcode", "status"),
    [(41048, RecipientStatus.NOT_FRIEND), (40058, RecipientStatus.NOT_SENT)],
)
def test_a_chunk_wecom_refuses_fails_and_frees_its_slots(live: Live, errcode: int, status: str) -> None:
    ((a, ids),) = live.senders(1, customers=2)
    broadcast_id = live.planned([(a, ids[:2])])
    live.start(broadcast_id)
    live.emu.inject_error("externalcontact/add_msg_template", errcode)
    assert live.send_all(broadcast_id) == ["failed"]
    assert {v for v in live.statuses(broadcast_id).values()} == {(status, f"wecom_{errcode}")}
    (chunk,) = live.chunks(broadcast_id)
    assert chunk.error.startswith(str(errcode))
    assert live.broadcast(broadcast_id).status == BroadcastStatus.FAILED


def test_a_paused_broadcast_holds_its_chunks_until_the_pause_is_lifted(live: Live) -> None:
    ((a, ids),) = live.senders(1, customers=1)
    broadcast_id = live.planned([(a, ids[:1])])
    live.start(broadcast_id)
    with live.db.begin() as s:
        pause = ReachPause(corp_id=live.corp_id, scope="broadcast", target_id=broadcast_id, reason="complaints")
        s.add(pause)
    # the chunk is not sent and stays pending; the broadcast is paused, and cannot be restarted while paused
    assert live.send_all(broadcast_id) == ["paused"]
    assert live.broadcast(broadcast_id).status == BroadcastStatus.PAUSED
    assert live.tasks() == []
    with pytest.raises(DomainError, match="paused by the complaint monitor"), live.db.begin() as s:
        sender.do_start(s, broadcast_id, live.admin)
    # once lifted, starting it again sends the chunk
    with live.db.begin() as s:
        s.execute(sa.update(ReachPause).values(lifted_at=now_utc()))
    assert live.start(broadcast_id).status == BroadcastStatus.SENDING
    assert live.send_all(broadcast_id) == ["sent"]
    assert len(live.tasks()) == 1


def test_a_plan_for_an_earlier_day_must_be_planned_again(live: Live) -> None:
    ((a, ids),) = live.senders(1, customers=1)
    broadcast_id = live.planned([(a, ids[:1])])
    with live.db.begin() as s:
        s.execute(
            sa.text("UPDATE broadcast SET send_day = :d WHERE id = :i"),
            {"d": now_utc().date() - timedelta(days=2), "i": broadcast_id},
        )
    with pytest.raises(DomainError, match="plan it again"), live.db.begin() as s:
        sender.do_start(s, broadcast_id, live.admin)


def test_attachments_go_along_and_a_material_image_is_uploaded_once(live: Live) -> None:
    (a, a_ids), (b, b_ids) = live.senders(2, customers=1)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    with live.db.begin() as s:
        image = Material(corp_id=live.corp_id, kind="image", title="海报", image_data=png, image_type="image/png")
        s.add(image)
        s.flush()
        material_id = image.id
    link = {"msgtype": "link", "link": {"title": "会员日", "url": "https://shop.example.com/vip"}}
    attachments = [link, {"msgtype": "image", "image": {}, "material_id": material_id}]
    broadcast_id = live.planned([(a, a_ids[:1]), (b, b_ids[:1])], attachments=attachments, allow_select=True)
    live.start(broadcast_id)
    assert live.send_all(broadcast_id) == ["sent", "sent"]
    first, second = live.tasks()
    media_id = first.attachments[1]["image"]["media_id"]
    assert first.attachments == second.attachments == [link, {"msgtype": "image", "image": {"media_id": media_id}}]
    assert first.allow_select and second.allow_select
    assert [m.media_id for m in live.emu.state.media.values() if m.data == png] == [media_id]
