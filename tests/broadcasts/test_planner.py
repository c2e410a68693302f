"""The planner on both databases: who is eligible from whom, who is excluded and why, caps, chunks, re-plans."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.broadcasts import planner
from siyu.broadcasts.models import BroadcastChunk, BroadcastRecipient, BroadcastStatus
from siyu.broadcasts.planner import holdout_bucket
from siyu.core.errors import DomainError
from tests.broadcasts.planner_support import NOW, TODAY, World, local, make_world
from tests.factories import make_corp


@pytest.fixture
def world(db: sessionmaker[Session]) -> World:
    return make_world(db)


@pytest.fixture(params=["few", "many"])
def caps_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways caps read the slots: a few candidates' sent slots through the customer index, or (as for
    a large audience) every slot row of the window's broadcasts."""
    if request.param == "many":
        monkeypatch.setattr(planner, "FEW_CANDIDATES", 0)
    return str(request.param)


def test_each_exclusion_reason_is_stored_per_recipient(world: World) -> None:
    # given one customer per reason, and one who is fine
    ok, gone, opted, other, paused, platform, corp = world.customers(7)
    world.follows("zhang", [ok, opted, platform, corp])
    world.follows("zhang", [gone], status="customer_deleted_employee")
    world.follows("wang", [other])
    world.follows("li", [paused])
    world.pause("li")
    world.opt_out(opted)
    world.slot(platform, TODAY)  # today's enterprise message already delivered
    world.slot(corp, TODAY - timedelta(days=2), kind="personal")  # 2 in 7 days: the corp's own cap
    world.slot(corp, TODAY - timedelta(days=5))
    b = world.broadcast(customers=[ok, gone, opted, other, paused, platform, corp], senders=["zhang", "li"])
    # when it is planned
    planned = world.plan(b)
    # then each candidate is one row: pending from its sender, or excluded with its reason
    assert world.outcome(b) == {
        ok: "pending",
        gone: "no_active_follow",
        opted: "opted_out",
        other: "sender_not_allowed",
        paused: "employee_paused",
        platform: "platform_cap",
        corp: "corp_cap",
    }
    assert world.senders_of(b)[ok] == world.employees["zhang"]
    assert planned.status == BroadcastStatus.PLANNED and planned.send_day == TODAY
    assert planned.counts["eligible"] == 1 and planned.counts["candidates"] == 7
    assert planned.counts["excluded"] == {
        "corp_cap": 1,
        "employee_paused": 1,
        "no_active_follow": 1,
        "opted_out": 1,
        "platform_cap": 1,
        "sender_not_allowed": 1,
    }
    assert world.chunk_sizes(b) == {world.employees["zhang"]: [1]}


def test_an_employee_who_left_is_no_active_follow(world: World) -> None:
    # given a customer whose only follow is with an employee who resigned
    world.employee("gone", status="resigned")
    [c] = world.customers(1, follower="gone")
    # when planned
    b = world.broadcast(customers=[c])
    world.plan(b)
    # then nobody can send it
    assert world.outcome(b) == {c: "no_active_follow"}


@pytest.mark.parametrize(
    ("senders", "paused", "expected"),
    [
        ((), None, "li"),  # the most recently added follow
        (("zhang",), None, "zhang"),  # among the allowed senders
        ((), "li", "zhang"),  # a paused employee is passed over when another follows the customer
    ],
)
def test_one_sender_per_customer(world: World, senders: tuple[str, ...], paused: str | None, expected: str) -> None:
    # given a customer zhang added in January and li in June
    [c] = world.customers(1)
    world.follows("zhang", [c], created_at=local(2026, 1, 5, 9))
    world.follows("li", [c], created_at=local(2026, 6, 5, 9))
    if paused:
        world.pause(paused)
    # when planned
    b = world.broadcast(customers=[c], senders=senders)
    world.plan(b)
    # then exactly one sender is chosen
    assert world.outcome(b) == {c: "pending"}
    assert world.senders_of(b) == {c: world.employees[expected]}


@pytest.mark.usefixtures("caps_path")
def test_cap_days_are_corp_local_days(world: World) -> None:
    # given no quiet hours and no corp caps: only WeCom's 1 per day
    world.policy(quiet_start="", quiet_end="", corp_caps=[])
    [c] = world.customers(1, follower="zhang")
    first = world.broadcast(customers=[c])
    world.plan(first, now=local(2026, 12, 3, 23, 30))
    # when two more are planned: 00:30 the next morning (the same UTC day as 23:30) and 23:45 the same evening
    next_morning, same_evening = world.broadcast(customers=[c]), world.broadcast(customers=[c])
    assert local(2026, 12, 3, 23, 30).date() == local(2026, 12, 4, 0, 30).date()  # in UTC
    world.plan(next_morning, now=local(2026, 12, 4, 0, 30))
    world.plan(same_evening, now=local(2026, 12, 3, 23, 45))
    # then the next morning is another day, the same evening is not
    assert world.get(first).send_day == date(2026, 12, 3)
    assert world.outcome(next_morning) == {c: "pending"} and world.get(next_morning).send_day == date(2026, 12, 4)
    assert world.outcome(same_evening) == {c: "platform_cap"}


@pytest.mark.usefixtures("caps_path")
def test_the_most_restrictive_corp_cap_wins(world: World) -> None:
    # given 1 per 2 days and 3 per 30 days
    world.policy(corp_caps=[{"count": 3, "days": 30}, {"count": 1, "days": 2}])
    yesterday, three_in_month, two_in_month, long_ago = world.customers(4, follower="zhang")
    world.slot(yesterday, TODAY - timedelta(days=1))
    for days in (3, 10, 20):
        world.slot(three_in_month, TODAY - timedelta(days=days))
    for days in (3, 10):
        world.slot(two_in_month, TODAY - timedelta(days=days))
    world.slot(long_ago, TODAY - timedelta(days=30))  # just outside 30 days
    # when planned
    b = world.broadcast(customers=[yesterday, three_in_month, two_in_month, long_ago])
    world.plan(b)
    # then each cap excludes on its own
    assert world.outcome(b) == {
        yesterday: "corp_cap",
        three_in_month: "corp_cap",
        two_in_month: "pending",
        long_ago: "pending",
    }


@pytest.mark.usefixtures("caps_path")
def test_a_broadcast_planned_for_a_later_day_counts_in_every_window_it_shares(world: World) -> None:
    # given 2 per 7 days; a got one today, and a and b are planned for Dec 9
    world.policy(corp_caps=[{"count": 2, "days": 7}])
    a, b = world.customers(2, follower="zhang")
    later = world.broadcast(customers=[a, b])
    world.plan(later, now=local(2026, 12, 9, 10))
    world.slot(a, TODAY)
    # when a broadcast for tomorrow (Dec 4) is planned
    tomorrow = world.broadcast(customers=[a, b])
    world.plan(tomorrow, now=local(2026, 12, 4, 10))
    # then a would have three in Dec 3 … Dec 9 (though only two in the week ending Dec 4); b has room
    assert world.outcome(tomorrow) == {a: "corp_cap", b: "pending"}


@pytest.mark.usefixtures("caps_path")
def test_pending_holds_a_slot_and_a_failed_send_frees_it(world: World) -> None:
    # given a customer already planned for today by another broadcast
    [c] = world.customers(1, follower="zhang")
    first = world.broadcast(customers=[c])
    world.plan(first)
    # when a second one is planned: the reservation counts
    second = world.broadcast(customers=[c])
    world.plan(second)
    assert world.outcome(second) == {c: "platform_cap"}
    # when the first turns out not sent (the employee never confirmed), the slot is free again
    with world.db.begin() as s:
        s.execute(
            sa.update(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == first).values(status="not_sent")
        )
    world.plan(second)
    assert world.outcome(second) == {c: "pending"}


@pytest.mark.usefixtures("caps_path")
@pytest.mark.parametrize("status", ["not_sent", "not_friend", "quota", "cancelled", "excluded"])
def test_only_sent_and_pending_rows_hold_slots(world: World, status: str) -> None:
    [c] = world.customers(1, follower="zhang")
    world.slot(c, TODAY, status=status)
    b = world.broadcast(customers=[c])
    world.plan(b)
    assert world.outcome(b) == {c: "pending"}


@pytest.mark.usefixtures("caps_path")
def test_platform_cap_settings(world: World) -> None:
    # given the old rule: 4 per calendar month, no daily limit
    world.policy(platform_cap="monthly_4", corp_caps=[])
    four, three, last_month = world.customers(3, follower="zhang")
    for day in (1, 2, 3):
        world.slot(four, date(2026, 12, day))
        world.slot(three, date(2026, 12, day))
    world.slot(four, date(2026, 12, 2))
    for day in (27, 28, 29, 30):
        world.slot(last_month, date(2026, 11, day))
    b = world.broadcast(customers=[four, three, last_month])
    # when planned on Dec 3
    world.plan(b)
    # then the calendar month decides (a second one today is fine under this rule)
    assert world.outcome(b) == {four: "platform_cap", three: "pending", last_month: "pending"}


@pytest.mark.usefixtures("caps_path")
def test_weekly_7_is_one_a_day(world: World) -> None:
    world.policy(platform_cap="weekly_7", corp_caps=[])
    today, yesterday = world.customers(2, follower="zhang")
    world.slot(today, TODAY)
    world.slot(yesterday, TODAY - timedelta(days=1))
    b = world.broadcast(customers=[today, yesterday])
    world.plan(b)
    assert world.outcome(b) == {today: "platform_cap", yesterday: "pending"}


@pytest.mark.usefixtures("caps_path")
def test_personal_broadcasts_are_one_a_day_and_at_most_200(world: World) -> None:
    # given zhang's 201 customers; one already got a personal broadcast today, another an enterprise one
    ids = world.customers(201, follower="zhang")
    world.slot(ids[0], TODAY, kind="personal")
    world.slot(ids[1], TODAY, kind="customer")
    # when zhang plans a personal broadcast to 200 of them
    ok = world.broadcast(kind="personal", customers=ids[:200], senders=["zhang"])
    world.plan(ok)
    # then only the personal one counts against the personal limit
    outcome = world.outcome(ok)
    assert outcome[ids[0]] == "platform_cap" and outcome[ids[1]] == "pending"
    assert sum(v == "pending" for v in outcome.values()) == 199
    # when li would reach 201 customers, the plan is refused and nothing is written
    more = world.customers(201, follower="li")
    too_many = world.broadcast(kind="personal", customers=more, senders=["li"])
    with pytest.raises(DomainError) as caught:
        world.plan(too_many)
    assert caught.value.status_code == 422 and "at most 200" in caught.value.msg
    assert world.outcome(too_many) == {} and world.get(too_many).status == BroadcastStatus.DRAFT


def test_customers_are_chunked_per_sender(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given 7 customers of zhang and 2 of li, and chunks of 3
    monkeypatch.setattr(planner, "CHUNK_SIZE", 3)
    ids = world.customers(7, follower="zhang") + world.customers(2, follower="li")
    b = world.broadcast(customers=ids)
    # when planned
    world.plan(b)
    # then each sender's customers fill chunks of at most 3, in id order
    assert world.chunk_sizes(b) == {world.employees["zhang"]: [3, 3, 1], world.employees["li"]: [2]}


def test_a_real_size_chunk_holds_10000_customers(world: World) -> None:
    ids = world.customers(10_001, follower="zhang")
    b = world.broadcast(audience={"rule": {"version": 1, "rule": {"follow_status": "active"}}})
    world.plan(b)
    assert world.get(b).counts["eligible"] == len(ids)
    assert world.chunk_sizes(b) == {world.employees["zhang"]: [10_000, 1]}


def test_groups_are_chunked_at_2000_per_owner(world: World) -> None:
    # given 2,001 groups of zhang, 3 of li (li is paused), 1 dismissed
    zhang = world.groups(2_001, owner="zhang")
    li = world.groups(3, owner="li")
    [dismissed] = world.groups(1, owner="zhang", status="dismissed")
    world.pause("li")
    b = world.broadcast(kind="group", audience={"owner_ids": [world.employees["zhang"], world.employees["li"]]})
    # when planned
    planned = world.plan(b)
    # then zhang's groups go in two chunks from zhang; li's are excluded; dismissed groups are not listed
    assert world.chunk_sizes(b) == {world.employees["zhang"]: [2_000, 1]}
    assert planned.counts["excluded"] == {"employee_paused": 3}
    assert dismissed not in world.outcome(b)
    # when the chats are named explicitly, the dismissed one is excluded, and a second message today is capped
    named = world.broadcast(kind="group", audience={"chat_ids": world.chat_ids([zhang[0], dismissed, li[0]])})
    world.plan(named)
    assert world.outcome(named) == {zhang[0]: "platform_cap", dismissed: "group_unavailable", li[0]: "employee_paused"}


def test_holdout_is_deterministic_and_excluded(world: World) -> None:
    ids = world.customers(60, follower="zhang")
    b = world.broadcast(customers=ids, holdout=30)
    world.plan(b)
    first = world.outcome(b)
    expected = {c: ("holdout" if holdout_bucket(c, b) < 30 else "pending") for c in ids}
    assert first == expected
    assert 5 < sum(v == "holdout" for v in first.values()) < 35
    world.plan(b)
    assert world.outcome(b) == first


def test_a_replan_replaces_recipients_and_chunks_until_sending_starts(world: World) -> None:
    ids = world.customers(3, follower="zhang")
    b = world.broadcast(customers=ids)
    world.plan(b)
    assert world.chunk_sizes(b) == {world.employees["zhang"]: [3]}
    # when one customer opts out and it is planned again
    world.opt_out(ids[0])
    world.plan(b)
    # then the new plan replaced the old one (no leftover chunk, no second row per customer)
    assert world.chunk_sizes(b) == {world.employees["zhang"]: [2]}
    with world.db() as s:
        rows = s.scalar(sa.select(sa.func.count()).where(BroadcastRecipient.broadcast_id == b))
    assert rows == 3
    assert world.outcome(b) == {ids[0]: "opted_out", ids[1]: "pending", ids[2]: "pending"}
    # when a chunk went out, the plan is frozen
    with world.db.begin() as s:
        s.execute(sa.update(BroadcastChunk).where(BroadcastChunk.broadcast_id == b).values(status="sent"))
    with pytest.raises(DomainError) as caught:
        world.plan(b)
    assert caught.value.status_code == 409


@pytest.mark.parametrize(
    ("at", "moved_to", "day"),
    [
        (local(2026, 12, 3, 22, 0), local(2026, 12, 4, 8, 0), date(2026, 12, 4)),
        (local(2026, 12, 3, 7, 15), local(2026, 12, 3, 8, 0), date(2026, 12, 3)),
        (local(2026, 12, 3, 8, 0), None, date(2026, 12, 3)),
    ],
)
def test_quiet_hours_move_the_send(world: World, at: object, moved_to: object, day: date) -> None:
    [c] = world.customers(1, follower="zhang")
    b = world.broadcast(customers=[c])
    planned = world.plan(b, now=at)  # type: ignore[arg-type]
    assert planned.send_day == day
    if moved_to is None:
        assert planned.counts["moved"] is None and planned.scheduled_at is None
    else:
        assert planned.scheduled_at == moved_to
        assert planned.counts["moved"]["quiet_hours"] == "21:00–08:00"


def test_a_scheduled_send_in_quiet_hours_is_moved_too(world: World) -> None:
    [c] = world.customers(1, follower="zhang")
    b = world.broadcast(customers=[c], scheduled_at=local(2026, 12, 5, 23, 0))
    planned = world.plan(b)
    assert planned.scheduled_at == local(2026, 12, 6, 8, 0) and planned.send_day == date(2026, 12, 6)


def test_blocked_content_shows_the_matched_text_and_reserves_nothing(world: World) -> None:
    [c] = world.customers(1, follower="zhang")
    b = world.broadcast(customers=[c], text="转发朋友圈即可领取红包")
    planned = world.plan(b)
    assert planned.status == BroadcastStatus.BLOCKED
    assert "转发朋友圈即可领取" in planned.block_reason
    assert planned.counts["findings"][0]["kind"] == "induced_sharing"
    assert world.outcome(b) == {}


@pytest.mark.usefixtures("caps_path")
def test_moments_cap_at_4_a_month_and_need_eligibility(world: World) -> None:
    # given customers of zhang; one has seen 4 Moments this month; one opted out (a Moment cannot hide from them)
    four, opted, fresh = world.customers(3, follower="zhang")
    for day in (1, 2):
        world.slot(four, date(2026, 12, day), kind="moment")
        world.slot(four, date(2026, 12, day), kind="moment")
    world.opt_out(opted)
    b = world.broadcast(kind="moment", audience={"tag_ids": []})
    # when planned
    planned = world.plan(b)
    # then one job for everyone who can see it
    assert world.outcome(b) == {four: "platform_cap", opted: "pending", fresh: "pending"}
    assert world.chunk_sizes(b) == {None: [2]}
    assert planned.counts["senders"] == {str(world.employees["zhang"]): 2}
    # when the corp is not eligible
    world.policy(moments_eligible=False)
    with pytest.raises(DomainError) as caught:
        world.plan(b)
    assert caught.value.status_code == 422


def test_audiences_by_rule_segment_and_snapshot(world: World) -> None:
    from pyroaring import BitMap

    from siyu.segments.models import Segment, SegmentSnapshot

    ids = world.customers(4, follower="zhang")
    rule = {"version": 1, "rule": {"follow_status": "active"}}
    with world.db.begin() as s:
        seg = Segment(corp_id=world.corp_id, name="活跃", rule=rule, rule_version=3)
        snap = SegmentSnapshot(corp_id=world.corp_id, rule=rule, rule_version=2, members=BitMap(ids[:2]).serialize())
        s.add_all([seg, snap])
        s.flush()
        seg_id, snap_id = seg.id, snap.id
    by_rule = world.broadcast(audience={"rule": rule})
    by_segment = world.broadcast(audience={"segment_id": seg_id})
    by_snapshot = world.broadcast(audience={"snapshot_id": snap_id})
    world.policy(platform_cap="monthly_4", corp_caps=[])  # three plans in one day for the same customers
    for b in (by_rule, by_segment, by_snapshot):
        world.plan(b)
    assert set(world.outcome(by_rule)) == set(world.outcome(by_segment)) == set(ids)
    assert set(world.outcome(by_snapshot)) == set(ids[:2])
    assert world.get(by_segment).rule_version == 3 and world.get(by_snapshot).rule_version == 2


def test_a_bad_rule_is_a_422(world: World) -> None:
    b = world.broadcast(audience={"rule": {"version": 1, "rule": {"tags": {"any": []}}}})
    with pytest.raises(DomainError) as caught:
        world.plan(b)
    assert caught.value.status_code == 422 and "tags" in caught.value.msg


def test_now_is_the_default_send_time(world: World) -> None:
    [c] = world.customers(1, follower="zhang")
    b = world.broadcast(customers=[c])
    assert world.plan(b, now=NOW).planned_at == NOW


def test_a_moment_for_tags_reaches_only_their_customers(world: World) -> None:
    from siyu.tags.models import FollowTag, Tag, TagGroup

    # given two customers of zhang, one tagged VIP on that follow
    vip, other = world.customers(2, follower="zhang")
    with world.db.begin() as s:
        group = TagGroup(corp_id=world.corp_id, wecom_id="etG1", name="等级")
        s.add(group)
        s.flush()
        tag = Tag(corp_id=world.corp_id, group_id=group.id, wecom_id="etT1", name="VIP")
        s.add(tag)
        s.flush()
        follow_id = s.scalar(sa.text("SELECT id FROM follow WHERE customer_id = :c"), {"c": vip})
        s.add(FollowTag(corp_id=world.corp_id, follow_id=follow_id, tag_id=tag.id))
        tag_id = tag.id
    # when a Moment visible to VIP is planned
    b = world.broadcast(kind="moment", audience={"tag_ids": [tag_id]})
    world.plan(b)
    # then only the tagged customer is counted as seeing it
    assert world.outcome(b) == {vip: "pending"}
    assert other not in world.outcome(b)


def test_a_pasted_list_keeps_only_the_corps_own_customers(db: sessionmaker[Session], world: World) -> None:
    # given a list naming one of this corp's customers, another corp's customer and an id nobody has
    [mine] = world.customers(1, follower="zhang")
    elsewhere = World(db, make_corp(db, wecom_corpid="wwanothercorp0001").corp_id)
    elsewhere.employee("zhang")
    [theirs] = elsewhere.customers(1, follower="zhang")
    b = world.broadcast(customers=[mine, theirs, theirs + 1000])
    # when planned
    planned = world.plan(b)
    # then only this corp's customer is a candidate: the others are neither sent to nor listed
    assert world.outcome(b) == {mine: "pending"}
    assert planned.counts["candidates"] == 1
