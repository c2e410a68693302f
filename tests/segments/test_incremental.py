"""The index stays exact change by change: every writer marks what it changed, the mark is published at
commit, and an engine in another process (here: a registry engine built before the write, or a second
engine) catches up from the change log without rebuilding; gaps, whole-corp marks and unmarked writes
are caught (rebuild, nightly check)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from siyu.accounts.access import Actor
from siyu.accounts.models import Role
from siyu.acquisition.intake import do_attribute_corp
from siyu.acquisition.models import Channel
from siyu.broadcasts.models import Broadcast, BroadcastRecipient, RecipientStatus
from siyu.broadcasts.results import set_recipients
from siyu.compliance.actions import do_opt_in, do_opt_out
from siyu.contacts.actions import do_end_follow, do_end_unseen_follows, do_set_follow_tags, do_upsert_contacts
from siyu.contacts.models import Customer, Follow, FollowStatus
from siyu.core import db as core_db
from siyu.core.clock import now_utc
from siyu.groups.actions import do_upsert_group_chat
from siyu.segments import engine, service, tasks
from siyu.segments.changes import current_version, mark_corp_dirty, mark_dirty
from siyu.segments.models import SegmentChange
from siyu.tags.actions import do_delete_tag, do_sync_corp_tags
from siyu.tags.models import FollowTag, Tag
from siyu.wecom import payloads
from tests.factories import make_corp


@pytest.fixture
def corp_id(db: sessionmaker[Session]) -> int:
    engine.drop_engine()
    corp = make_corp(db).corp_id
    with db.begin() as s:
        do_sync_corp_tags(s, corp, [_tag_group("g1", "t1", "t2", "t3")])
    return corp


def _tag_group(group_id: str, *tags: str) -> payloads.CorpTagGroup:
    data = {"group_id": group_id, "group_name": f"组{group_id}", "order": 1, "create_time": 1700000000}
    data["tag"] = [{"id": t, "name": f"标签{t}", "order": 1, "create_time": 1700000000} for t in tags]
    return payloads.CorpTagGroup.model_validate(data)


def _page(*rows: tuple[str, str, list[str]], state: str = "") -> list[payloads.ContactWithFollow]:
    """(external_userid, employee userid, WeCom tag ids) → one batch/get_by_user page."""
    return [
        payloads.ContactWithFollow.model_validate(
            {
                "external_contact": {"external_userid": ext, "name": ext},
                "follow_info": {"userid": userid, "tag_id": tags, "createtime": 1700000000, "state": state},
            }
        )
        for ext, userid, tags in rows
    ]


def _tag(session: Session, corp_id: int, wecom_id: str) -> int:
    return int(session.scalar(select(Tag.id).where(Tag.corp_id == corp_id, Tag.wecom_id == wecom_id)) or 0)


def _rule(node: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "rule": node}


def _warm(db: sessionmaker[Session], corp_id: int) -> engine.BitmapEngine:
    """The registry engine, built now (as a server would have it before the write)."""
    with db() as s:
        return engine.engine_for(s, corp_id)


def _exact(db: sessionmaker[Session], corp_id: int, rule: dict[str, Any], held: engine.BitmapEngine) -> int:
    """The count, asserting it came from the held engine caught up (not rebuilt) and equals SQL and a rebuild."""
    with db() as s:
        got = service.count(s, corp_id=corp_id, rule=rule).count
        assert engine.loaded_engine(corp_id) is held, "rebuilt instead of caught up"
        assert got == service.sql_count(s, corp_id=corp_id, rule=rule)
        assert held.check(s) == []
    return got


def test_a_sync_page_is_applied_by_catch_up_and_a_repeated_page_marks_nothing(
    db: sessionmaker[Session], corp_id: int
) -> None:
    held = _warm(db, corp_id)
    # when a sync page brings two customers, one tagged t1
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", ["t1"]), ("wm2", "u1", [])))
        t1 = _tag(s, corp_id, "t1")
    # then the held engine sees them at once
    assert _exact(db, corp_id, _rule({"tags": {"any": [t1]}}), held) == 1
    assert _exact(db, corp_id, _rule({"follow_status": "active"}), held) == 2
    # when the same page comes again (the nightly sync), nothing is marked
    with db() as s:
        before = current_version(s, corp_id)
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", ["t1"]), ("wm2", "u1", [])))
    with db() as s:
        assert current_version(s, corp_id) == before


def test_ending_follows_and_editing_tags_are_applied(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", ["t1"]), ("wm2", "u1", ["t2"]), ("wm3", "u2", [])))
        t1, t2 = _tag(s, corp_id, "t1"), _tag(s, corp_id, "t2")
    held = _warm(db, corp_id)
    # when wm1 deletes the employee (callback), and an operator tags wm3 with t2
    with db.begin() as s:
        do_end_follow(s, corp_id, userid="u1", external_userid="wm1", status=FollowStatus.CUSTOMER_DELETED_EMPLOYEE)
        row = s.execute(select(Follow.id, Follow.customer_id).join(Customer).where(Customer.external_userid == "wm3"))
        follow_id, customer_id = row.one()
        admin = Actor(0, corp_id, "test", Role.ADMIN, None, None)
        do_set_follow_tags(s, actor=admin, customer_id=customer_id, follow_id=follow_id, tag_ids=[t2])
    # then
    assert _exact(db, corp_id, _rule({"follow_status": "lost"}), held) == 1
    assert _exact(db, corp_id, _rule({"tags": {"any": [t1]}}), held) == 0
    assert _exact(db, corp_id, _rule({"tags": {"all": [t2]}}), held) == 2


def test_a_sync_ending_unseen_follows_is_applied(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", []), ("wm2", "u1", [])))
    held = _warm(db, corp_id)
    # when a complete sync run saw neither follow
    with db.begin() as s:
        do_end_unseen_follows(s, corp_id, run_id=999, started_at=now_utc() + timedelta(seconds=5))
    assert _exact(db, corp_id, _rule({"follow_status": "lost"}), held) == 2


def test_deleting_a_tag_is_applied(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", ["t1", "t2"]), ("wm2", "u1", ["t1"])))
        t1 = _tag(s, corp_id, "t1")
    held = _warm(db, corp_id)
    # when t1 is deleted in WeCom
    with db.begin() as s:
        do_delete_tag(s, corp_id, "t1")
    # then nobody has it, and "none of t1" is everybody
    assert _exact(db, corp_id, _rule({"tags": {"any": [t1]}}), held) == 0
    assert _exact(db, corp_id, _rule({"tags": {"none": [t1]}}), held) == 2


def test_group_members_joining_and_leaving_are_applied(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", []), ("wm2", "u1", [])))
    held = _warm(db, corp_id)
    in_group = _rule({"in_group": {"chat_ids": ["wr1"]}})
    with db.begin() as s:
        do_upsert_group_chat(s, corp_id, _chat(("u1", 1), ("wm1", 2), ("wm2", 2)))
    assert _exact(db, corp_id, in_group, held) == 2
    with db.begin() as s:
        do_upsert_group_chat(s, corp_id, _chat(("u1", 1), ("wm2", 2)))
    assert _exact(db, corp_id, in_group, held) == 1
    assert _exact(db, corp_id, _rule({"in_group": {}}), held) == 1


def _chat(*members: tuple[str, int]) -> payloads.GroupChatDetail:
    return payloads.GroupChatDetail.model_validate(
        {
            "chat_id": "wr1",
            "name": "群",
            "owner": "u1",
            "create_time": 1700000000,
            "member_list": [{"userid": u, "type": t, "join_time": 1700000100, "join_scene": 1} for u, t in members],
        }
    )


def test_attribution_after_a_sync_is_applied(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        channel = Channel(corp_id=corp_id, name="海报", state="ch_poster")
        s.add(channel)
        s.flush()
        channel_id = channel.id
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", []), state="ch_poster"))
        do_upsert_contacts(s, corp_id, _page(("wm2", "u1", [])))
    held = _warm(db, corp_id)
    with db.begin() as s:
        assert do_attribute_corp(s, corp_id) == 1
    assert _exact(db, corp_id, _rule({"channel": {"channels": [channel_id]}}), held) == 1


def test_an_opt_out_marked_by_its_writer_is_applied(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", []), ("wm2", "u1", [])))
        first = s.scalars(select(Customer.id).order_by(Customer.id)).first()
    held = _warm(db, corp_id)
    # the compliance writers mark the customer themselves: opt out, then opt in again
    with db.begin() as s:
        do_opt_out(s, corp_id, first, "reply", "customer")
    assert _exact(db, corp_id, _rule({"opted_out": True}), held) == 1
    assert _exact(db, corp_id, _rule({"opted_out": False}), held) == 1
    with db.begin() as s:
        assert do_opt_in(s, corp_id, first, "operator")
    assert _exact(db, corp_id, _rule({"opted_out": True}), held) == 0


def test_broadcast_results_are_applied(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", []), ("wm2", "u1", [])))
        customers = s.scalars(select(Customer.id).order_by(Customer.id)).all()
        broadcast = Broadcast(corp_id=corp_id, name="春节")
        s.add(broadcast)
        s.flush()
        today = now_utc().date()
        rows = [
            BroadcastRecipient(corp_id=corp_id, broadcast_id=broadcast.id, position=n, customer_id=c, send_day=today)
            for n, c in enumerate(customers, start=1)
        ]
        s.add_all(rows)
        s.flush()
        broadcast_id, positions = broadcast.id, [r.position for r in rows]
    held = _warm(db, corp_id)
    recent = _rule({"last_broadcast": {"within_days": 30}})
    assert _exact(db, corp_id, recent, held) == 0
    # when WeCom reports the first recipient reached
    with db.begin() as s:
        set_recipients(s, broadcast_id, positions[:1], RecipientStatus.SENT)
    assert _exact(db, corp_id, recent, held) == 1
    assert _exact(db, corp_id, _rule({"last_broadcast": {"never": True}}), held) == 1


def test_a_rolled_back_write_publishes_nothing(db: sessionmaker[Session], corp_id: int) -> None:
    with db() as s:
        before = current_version(s, corp_id)
    with db() as s:
        mark_dirty(s, corp_id, [1, 2, 3])
        s.rollback()
        s.commit()  # a later commit of the same session must not publish the rolled-back marks
    with db() as s:
        assert current_version(s, corp_id) == before
        assert s.scalar(select(func.count()).select_from(SegmentChange)) == 0


def test_two_processes_catch_up_from_the_same_log(db: sessionmaker[Session], corp_id: int) -> None:
    # given two independent engines (the server's and the worker's)
    with db() as s:
        server, worker = engine.BitmapEngine.build(s, corp_id), engine.BitmapEngine.build(s, corp_id)
    # when three commits change customers, the worker catching up after the first only
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", ["t1"])))
    with db() as s:
        assert worker.catch_up(s)
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm2", "u1", ["t1"])))
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", [])))
    # then both end at the same version with exact bitmaps
    with db() as s:
        assert server.catch_up(s) and worker.catch_up(s)
        assert server.version == worker.version == current_version(s, corp_id)
        assert server.check(s) == [] and worker.check(s) == []


def test_a_whole_corp_mark_or_a_pruned_gap_rebuilds(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", [])))
    held = _warm(db, corp_id)
    # when a set-based writer marks the whole corp
    with db.begin() as s:
        mark_corp_dirty(s, corp_id)
    with db() as s:
        assert not held.catch_up(s)
        rebuilt = engine.engine_for(s, corp_id)
    assert rebuilt is not held and rebuilt.version == held.version + 1
    # when the change rows a process would need are pruned
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm2", "u1", [])))
    with db.begin() as s:
        s.execute(SegmentChange.__table__.delete())
    with db() as s:
        assert not rebuilt.catch_up(s)
        assert service.count(s, corp_id=corp_id, rule=_rule({"follow_status": "active"})).count == 2


def test_pruning_keeps_recent_changes(db: sessionmaker[Session], corp_id: int) -> None:
    old = datetime.now(UTC) - tasks.KEEP_CHANGES - timedelta(minutes=1)
    with db.begin() as s:
        s.execute(insert(SegmentChange), [{"corp_id": corp_id, "version": 1, "customer_id": 1, "created_at": old}])
        mark_dirty(s, corp_id, [2])
    assert tasks.refresh_and_prune()["pruned"] == 1
    with db() as s:
        assert s.scalars(select(SegmentChange.customer_id)).all() == [2]


def test_the_nightly_check_repairs_an_unmarked_write(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(("wm1", "u1", []), ("wm2", "u1", [])))
        t3 = _tag(s, corp_id, "t3")
    # given the worker holds the index since yesterday's check
    first = tasks.check_all_corps()
    assert first["built"] >= 1
    held = engine.loaded_engine(corp_id)
    # when a writer that forgot mark_dirty tags a follow
    with db.begin() as s:
        follow_id = s.scalars(select(Follow.id).order_by(Follow.id)).first()
        s.add(FollowTag(corp_id=corp_id, follow_id=follow_id, tag_id=t3))
    with db() as s:
        assert service.count(s, corp_id=corp_id, rule=_rule({"tags": {"any": [t3]}})).count == 0  # stale
    # then the nightly check finds it, repairs this process, and marks the corp whole for the others
    with db() as s:
        version = current_version(s, corp_id)
    result = tasks.check_all_corps()
    assert result["mismatched"] == 1
    with db() as s:
        assert engine.loaded_engine(corp_id) is not held
        assert current_version(s, corp_id) == version + 1
        assert service.count(s, corp_id=corp_id, rule=_rule({"tags": {"any": [t3]}})).count == 1


def test_a_build_in_several_id_ranges_equals_one_in_a_single_range(
    db: sessionmaker[Session], corp_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, _page(*((f"wm{i}", f"u{i % 3}", ["t1", "t2"][: i % 3]) for i in range(10))))
    with db() as s:
        whole = engine.BitmapEngine.build(s, corp_id)
        monkeypatch.setattr(engine, "BUILD_RANGE", 3)
        assert engine.BitmapEngine.build(s, corp_id).compare(whole) == []
        assert len(whole.universe) == 10


def test_the_refresher_thread_catches_up_between_counts(db: sessionmaker[Session], corp_id: int) -> None:
    held = _warm(db, corp_id)
    engine.enable_background_refresh(db, interval=0.05)
    try:
        # when a writer commits while nobody counts
        with db.begin() as s:
            do_upsert_contacts(s, corp_id, _page(("wm1", "u1", ["t1"])))
        with db() as s:
            target = current_version(s, corp_id)
        # then the thread applies it on its own
        deadline = time.monotonic() + 10
        while held.version < target and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held.version == target and len(held.universe) == 1
        assert engine.loaded_engine(corp_id) is held
    finally:
        engine.disable_background_refresh()


def test_pointing_the_process_at_another_database_forgets_the_indexes(db: sessionmaker[Session], corp_id: int) -> None:
    # given an engine built for this corp id (tests and the demo reuse corp ids across databases)
    _warm(db, corp_id)
    assert engine.loaded_engine(corp_id) is not None
    # when siyu is pointed at a database again
    core_db.use_engine(db.kw["bind"])
    # then no other database's bitmaps can answer for the same corp id
    assert engine.loaded_engine(corp_id) is None
    _warm(db, corp_id)
    core_db.reset_caches()
    assert engine.loaded_engine(corp_id) is None
    core_db.use_engine(db.kw["bind"])
