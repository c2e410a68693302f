"""Customer Moments: planned by the planner, one add_moment_task job, publish status per employee."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from siyu.broadcasts import sender
from siyu.broadcasts.models import BroadcastChunk, BroadcastKind, BroadcastRecipient, BroadcastStatus, ChunkStatus
from siyu.broadcasts.models import RecipientStatus as R
from siyu.contacts.models import Employee
from siyu.core.clock import now_utc
from siyu.tags.models import FollowTag, Tag
from tests.broadcasts.test_sender_support import TEXT, Live


def _busiest_tag(live: Live) -> Tag:
    with live.db() as s:
        tag_id = s.scalar(
            sa.select(FollowTag.tag_id).group_by(FollowTag.tag_id).order_by(sa.func.count().desc(), FollowTag.tag_id)
        )
        tag = s.get(Tag, tag_id)
        assert tag is not None
        s.expunge(tag)
        return tag


def _publishers(live: Live, broadcast_id: int) -> dict[str, int]:
    """userid → pending recipients the plan gave that employee."""
    with live.db() as s:
        rows = s.execute(
            sa.select(Employee.userid, sa.func.count())
            .join(BroadcastRecipient, BroadcastRecipient.employee_id == Employee.id)
            .where(BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.status == R.PENDING)
            .group_by(Employee.userid)
        ).all()
    return {userid: int(n) for userid, n in rows}


def test_a_moment_is_one_job_visible_by_tag_and_results_follow_each_publisher(live: Live) -> None:
    # given a Moment planned for the customers with one tag
    tag = _busiest_tag(live)
    broadcast_id = live.plan(kind=BroadcastKind.MOMENT, audience={"tag_ids": [tag.id]})
    publishers = _publishers(live, broadcast_id)
    assert len(publishers) >= 2
    live.start(broadcast_id)
    # when it is sent
    assert live.send_all(broadcast_id) == ["sent"]
    # then WeCom got one job: visible to the tag, published by exactly the employees the plan chose
    ((task),) = live.emu.state.moment_tasks.values()
    assert task.text == TEXT and task.tag_list == [tag.wecom_id]
    assert set(task.senders) == set(publishers)
    (chunk,) = live.chunks(broadcast_id)
    assert (chunk.status, chunk.msgid, chunk.fail_list) == (ChunkStatus.SENT, task.moment_id, [])
    # when one employee publishes and another declines
    first, second, *_ = sorted(publishers)
    live.emu.confirm_moment(task.moment_id, first)
    live.emu.confirm_moment(task.moment_id, second, decline=True)
    counts = live.poll(broadcast_id)
    # then the first one's customers saw it, the rest wait; not final while anyone may still publish
    statuses = Counter(status for status, _ in live.statuses(broadcast_id).values())
    assert statuses[R.SENT] == publishers[first] and counts["final"] is False
    assert counts["published"][first] == 1 and counts["published"][second] == 0
    # three days on, the unpublished are not sent and the broadcast is finished
    final = live.poll(broadcast_id, now=now_utc() + timedelta(days=3, minutes=1))
    assert final["final"] is True and final["sent"] == publishers[first]
    assert final["not_sent"] == sum(publishers.values()) - publishers[first]
    assert live.broadcast(broadcast_id).status == BroadcastStatus.FINISHED


def test_a_moment_job_still_running_is_awaited_not_created_again(live: Live) -> None:
    tag = _busiest_tag(live)
    live.emu.configure_mass(moment_job_seconds=60.0)
    broadcast_id = live.plan(kind=BroadcastKind.MOMENT, audience={"tag_ids": [tag.id]})
    live.start(broadcast_id)
    (chunk_id,) = live.chunk_ids(broadcast_id)
    # WeCom takes a minute: the send records the job and leaves the chunk waiting
    assert sender.send_chunk(chunk_id) == "waiting"
    (job,) = live.emu.state.moment_tasks.values()
    assert live.chunks(broadcast_id)[0].msgid == job.jobid
    # a second delivery of the queue message only asks about the job
    assert sender.send_chunk(chunk_id) == "waiting"
    assert len(live.emu.state.moment_tasks) == 1
    # once the job is done, the results poll records the moment
    live.emu.configure_mass(moment_job_seconds=0.0)
    job.ready_at = job.created_at
    live.poll(broadcast_id)
    with live.db() as s:
        done = s.get(BroadcastChunk, chunk_id)
        assert done is not None and (done.status, done.msgid) == (ChunkStatus.SENT, job.moment_id)
    assert live.broadcast(broadcast_id).status == BroadcastStatus.SENT


def test_employees_wecom_refuses_as_publishers_get_nothing_sent(live: Live) -> None:
    tag = _busiest_tag(live)
    broadcast_id = live.plan(kind=BroadcastKind.MOMENT, audience={"tag_ids": [tag.id]})
    publishers = _publishers(live, broadcast_id)
    gone = sorted(publishers)[0]
    live.emu.state.employees[gone].status = 5  # resigned in WeCom after the plan
    live.start(broadcast_id)
    assert live.send_all(broadcast_id) == ["sent"]
    (chunk,) = live.chunks(broadcast_id)
    assert chunk.fail_list == [f"user:{gone}"]
    statuses = Counter((s, r) for s, r in live.statuses(broadcast_id).values())
    assert statuses[(R.NOT_SENT, "invalid_sender")] == publishers[gone]
