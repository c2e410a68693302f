"""The bitmap engine gives exactly the ids of the plain SQL evaluation, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.acquisition.models import Channel, ChannelGroup
from siyu.broadcasts.models import Broadcast, BroadcastRecipient
from siyu.compliance.models import OptOut
from siyu.contacts.models import Customer, Department, Employee, Follow, FollowStatus
from siyu.core import clock
from siyu.corp.models import Corp
from siyu.groups.models import GroupChat, GroupMember
from siyu.segments import service
from siyu.segments.changes import mark_dirty, publish
from siyu.segments.engine import BitmapEngine, drop_engine, engine_for
from siyu.segments.models import CustomerField
from siyu.segments.rules import parse_rule
from siyu.tags.models import FollowTag, Tag, TagGroup

_seq = itertools.count(1)
UNKNOWN = 10**6
DAY0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 1, 10, 12, tzinfo=UTC)  # "today" for last_broadcast.within_days
CORP_NAMES = ["", "Acme", "acme co", "Beta_1", "贝塔"]
ZONES = ["Asia/Shanghai", "UTC", "America/New_York"]
FIELD_KEYS = ["city", "level"]
FIELD_VALUES = ["上海", "Shanghai", "beijing", "VIP_1", ""]
RECIPIENT_STATUSES = ["sent", "sent", "not_sent", "quota", "pending"]


@dataclass
class World:
    corp_id: int
    userids: list[str]
    tag_ids: list[int]
    channel_ids: list[int]
    channel_group_ids: list[int]
    chat_ids: list[str]
    customer_ids: list[int]
    follows: list[Follow] = field(default_factory=list)
    chat_pks: list[int] = field(default_factory=list)


@pytest.fixture(autouse=True)
def _fixed_now(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(clock, "now_utc", lambda: NOW)
    yield


def _corp(session: Session, zone: str = "Asia/Shanghai") -> int:
    n = next(_seq)
    corp = Corp(
        name=f"c{n}",
        timezone=zone,
        wecom_corpid=f"wwseg{n}-{datetime.now(UTC).timestamp()}",
        api_base_url="http://127.0.0.1:9",
        contact_secret_enc="x",
        callback_token_enc="x",
        callback_aes_key_enc="x",
    )
    session.add(corp)
    session.flush()
    return corp.corp_id


def build_world(session: Session, data: st.DataObject) -> World:
    draw = data.draw
    corp_id = _corp(session, draw(st.sampled_from(ZONES)))
    # departments 1 ← 2 ← 3 (or 3 under 1)
    session.add_all(
        [
            Department(corp_id=corp_id, wecom_id=1, name="d1", parent_wecom_id=0),
            Department(corp_id=corp_id, wecom_id=2, name="d2", parent_wecom_id=1),
            Department(corp_id=corp_id, wecom_id=3, name="d3", parent_wecom_id=draw(st.sampled_from([1, 2]))),
        ]
    )
    n_emp = draw(st.integers(1, 6))
    employees = [
        Employee(
            corp_id=corp_id,
            userid=f"u{i}",
            name=f"u{i}",
            department_ids=draw(st.lists(st.sampled_from([1, 2, 3]), max_size=2, unique=True)),
        )
        for i in range(n_emp)
    ]
    group = TagGroup(corp_id=corp_id, wecom_id=f"g{next(_seq)}", name="g")
    session.add_all([*employees, group])
    session.flush()
    tags = [
        Tag(corp_id=corp_id, group_id=group.id, wecom_id=f"t{next(_seq)}", name="t")
        for _ in range(draw(st.integers(1, 5)))
    ]
    cgroups = [ChannelGroup(corp_id=corp_id, name=f"cg{i}") for i in range(2)]
    session.add_all([*tags, *cgroups])
    session.flush()
    channels = [
        Channel(
            corp_id=corp_id,
            name=f"ch{i}",
            state=f"s{i}",
            group_id=draw(st.sampled_from([None, *[g.id for g in cgroups]])),
        )
        for i in range(draw(st.integers(0, 4)))
    ]
    customers = [
        Customer(
            corp_id=corp_id,
            external_userid=f"wm{next(_seq)}",
            gender=draw(st.integers(0, 2)),
            type=draw(st.integers(1, 2)),
            corp_name=draw(st.sampled_from(CORP_NAMES)),
        )
        for _ in range(draw(st.integers(0, 40)))
    ]
    chats = [GroupChat(corp_id=corp_id, chat_id=f"wr{next(_seq)}", owner_userid="u0") for _ in range(2)]
    session.add_all([*channels, *customers, *chats])
    session.flush()
    world = World(
        corp_id,
        [e.userid for e in employees],
        [t.id for t in tags],
        [c.id for c in channels],
        [g.id for g in cgroups],
        [c.chat_id for c in chats],
        [c.id for c in customers],
    )
    for customer in customers:
        for emp in draw(st.lists(st.sampled_from(employees), max_size=3, unique_by=lambda e: e.id)):
            world.follows.append(_follow(session, data, corp_id, emp.id, customer.id, world))
    session.flush()
    for follow in world.follows:
        # a coin per tag: dense enough that "all" and "any" differ
        for tag_id in world.tag_ids:
            if draw(st.booleans()):
                session.add(FollowTag(corp_id=corp_id, follow_id=follow.id, tag_id=tag_id))
    world.chat_pks = [c.id for c in chats]
    _extras(session, data, world)
    for chat in chats:
        for customer_id in draw(st.lists(st.sampled_from(world.customer_ids or [0]), max_size=6, unique=True)):
            session.add(
                GroupMember(
                    corp_id=corp_id,
                    group_chat_id=chat.id,
                    userid=f"wm{next(_seq)}",
                    member_type=2,
                    customer_id=customer_id or None,
                )
            )
    session.flush()
    return world


def _extras(session: Session, data: st.DataObject, w: World) -> None:
    """Opt-outs, custom fields and broadcast recipients (last broadcast received)."""
    draw = data.draw
    for customer_id in w.customer_ids:
        if draw(st.integers(0, 3)) == 0:
            session.add(OptOut(corp_id=w.corp_id, customer_id=customer_id, source="console"))
        for key in draw(st.lists(st.sampled_from(FIELD_KEYS), max_size=2, unique=True)):
            value = draw(st.sampled_from(FIELD_VALUES))
            session.add(CustomerField(corp_id=w.corp_id, customer_id=customer_id, key=key, value=value))
        for _ in range(draw(st.integers(0, 2))):
            _recipient(session, data, w, customer_id)


def _recipient(session: Session, data: st.DataObject, w: World, customer_id: int) -> None:
    """One more broadcast reaching (or not) the customer: a customer is one recipient per broadcast."""
    day = draw_day(data)
    broadcast = Broadcast(corp_id=w.corp_id, name=f"b{next(_seq)}")
    session.add(broadcast)
    session.flush()
    session.add(
        BroadcastRecipient(
            corp_id=w.corp_id,
            broadcast_id=broadcast.id,
            position=1,
            customer_id=customer_id,
            send_day=day,
            status=data.draw(st.sampled_from(RECIPIENT_STATUSES)),
        )
    )


def draw_day(data: st.DataObject) -> date | None:
    offset = data.draw(st.one_of(st.none(), st.integers(0, 12)))
    return None if offset is None else NOW.date() - timedelta(days=offset)


def _follow(
    session: Session, data: st.DataObject, corp_id: int, employee_id: int, customer_id: int, w: World
) -> Follow:
    draw = data.draw
    day = draw(st.one_of(st.none(), st.integers(0, 9)))
    status = draw(st.sampled_from([FollowStatus.ACTIVE, FollowStatus.ACTIVE, FollowStatus.CUSTOMER_DELETED_EMPLOYEE]))
    follow = Follow(
        corp_id=corp_id,
        employee_id=employee_id,
        customer_id=customer_id,
        status=status,
        created_at=None if day is None else DAY0 + timedelta(days=day, hours=draw(st.integers(0, 23))),
        channel_id=draw(st.sampled_from([None, *w.channel_ids])),
    )
    session.add(follow)
    return follow


def conditions(w: World) -> st.SearchStrategy[dict[str, Any]]:
    tag = st.sampled_from([*w.tag_ids * 4, UNKNOWN])
    tag_list = st.lists(tag, min_size=1, max_size=3)
    userid = st.sampled_from([*w.userids, "nobody"])
    day = st.integers(-1, 10).map(lambda d: (DAY0 + timedelta(days=d)).date().isoformat())

    def tags(mode: str, ids: list[int], emp: str | None) -> dict[str, Any]:
        return {"tags": {mode: ids} | ({"employee": emp} if emp else {})}

    def added(a: str | None, b: str | None) -> dict[str, Any]:
        if a and b and a > b:
            a, b = b, a
        return {"added": ({"from": a} if a else {}) | ({"to": b} if b else {}) or {"from": "2024-01-03"}}

    return st.one_of(
        st.builds(tags, st.sampled_from(["any", "all", "none"]), tag_list, st.one_of(st.none(), userid)),
        st.lists(st.integers(0, 2), min_size=1, max_size=2).map(lambda v: {"gender": v}),
        st.lists(st.integers(1, 2), min_size=1, max_size=2).map(lambda v: {"customer_type": v}),
        st.sampled_from(["acme", "Beta_", "塔", "_", "%"]).map(lambda s: {"corp_name": {"contains": s}}),
        st.builds(
            lambda e, d: {"owner": ({"employees": e} if e else {}) | ({"departments": d} if d or not e else {})},
            st.lists(userid, max_size=2),
            st.lists(st.sampled_from([1, 2, 3, 99]), min_size=1, max_size=2),
        ),
        st.builds(
            lambda c, g: {"channel": {"channels": c, "groups": g} if c or g else {"channels": [UNKNOWN]}},
            st.lists(st.sampled_from([*w.channel_ids, UNKNOWN]), max_size=2),
            st.lists(st.sampled_from([*w.channel_group_ids, UNKNOWN]), max_size=1),
        ),
        st.builds(added, st.one_of(st.none(), day), st.one_of(st.none(), day)),
        st.sampled_from(["active", "lost"]).map(lambda s: {"follow_status": s}),
        st.lists(st.sampled_from([*w.chat_ids, "wrnone"]), max_size=2).map(lambda c: {"in_group": {"chat_ids": c}}),
        fields(),
        st.booleans().map(lambda b: {"opted_out": b}),
        last_broadcasts(),
    )


def fields() -> st.SearchStrategy[dict[str, Any]]:
    key = st.sampled_from([*FIELD_KEYS, "none"])
    value = st.sampled_from([*FIELD_VALUES, "x"])
    test = st.one_of(
        value.map(lambda v: {"equals": v}),
        st.lists(value, min_size=1, max_size=3).map(lambda vs: {"in": vs}),
        st.sampled_from(["海", "SHANG", "_", "%", "vip"]).map(lambda v: {"contains": v}),
        st.booleans().map(lambda b: {"exists": b}),
    )
    return st.builds(lambda k, t: {"field": {"key": k, **t}}, key, test)


def last_broadcasts() -> st.SearchStrategy[dict[str, Any]]:
    day = st.integers(-1, 13).map(lambda d: (NOW.date() - timedelta(days=d)).isoformat())
    return st.one_of(
        day.map(lambda d: {"last_broadcast": {"before": d}}),
        day.map(lambda d: {"last_broadcast": {"after": d}}),
        st.integers(1, 14).map(lambda n: {"last_broadcast": {"within_days": n}}),
        st.just({"last_broadcast": {"never": True}}),
    )


def rules(w: World) -> st.SearchStrategy[dict[str, Any]]:
    node = st.recursive(
        conditions(w),
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"and": xs}),
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"or": xs}),
            inner.map(lambda x: {"not": x}),
        ),
        max_leaves=6,
    )
    return node.map(lambda n: {"version": 1, "rule": n})


def mutate(session: Session, data: st.DataObject, w: World) -> set[int]:
    """A few random changes; returns the customers touched."""
    touched: set[int] = set()
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(
            st.sampled_from(
                ["tag_add", "tag_remove", "end", "reactivate", "delete", "gender", "new", "opt", "group", "sent"]
            )
        )
        if kind == "new" or not w.follows:
            c = Customer(corp_id=w.corp_id, external_userid=f"wm{next(_seq)}", gender=data.draw(st.integers(0, 2)))
            session.add(c)
            session.flush()
            touched.add(c.id)
            continue
        f = data.draw(st.sampled_from(w.follows))
        touched.add(f.customer_id)
        if kind in ("opt", "group", "sent"):
            _mutate_extra(session, data, w, kind, f.customer_id)
        elif kind == "tag_add":
            tag_id = data.draw(st.sampled_from(w.tag_ids))
            exists = session.get(FollowTag, (f.id, tag_id))
            if exists is None:
                session.add(FollowTag(corp_id=w.corp_id, follow_id=f.id, tag_id=tag_id))
        elif kind == "tag_remove":
            session.execute(delete(FollowTag).where(FollowTag.follow_id == f.id))
        elif kind == "end":
            f.status = FollowStatus.EMPLOYEE_DELETED_CUSTOMER
        elif kind == "reactivate":
            f.status = FollowStatus.ACTIVE
        elif kind == "delete":
            session.execute(delete(FollowTag).where(FollowTag.follow_id == f.id))
            session.delete(f)
            w.follows.remove(f)
        else:
            customer = session.get(Customer, f.customer_id)
            assert customer is not None
            customer.gender = (customer.gender + 1) % 3
        session.flush()
        session.expire_all()
    return touched


def _mutate_extra(session: Session, data: st.DataObject, w: World, kind: str, customer_id: int) -> None:
    if kind == "opt":
        row = session.get(OptOut, (w.corp_id, customer_id))
        if row is None:
            session.add(OptOut(corp_id=w.corp_id, customer_id=customer_id, source="reply"))
        else:
            session.delete(row)
    elif kind == "group":
        chat = data.draw(st.sampled_from(w.chat_pks))
        member = session.scalar(
            select(GroupMember).where(GroupMember.group_chat_id == chat, GroupMember.customer_id == customer_id)
        )
        if member is None:
            session.add(
                GroupMember(
                    corp_id=w.corp_id,
                    group_chat_id=chat,
                    userid=f"wm{next(_seq)}",
                    member_type=2,
                    customer_id=customer_id,
                )
            )
        else:
            session.delete(member)
    else:
        _recipient(session, data, w, customer_id)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_engine_equals_sql(session: Session, data: st.DataObject) -> None:
    # given a random world and its bitmaps
    w = build_world(session, data)
    eng = BitmapEngine.build(session, w.corp_id)
    drawn = [parse_rule(data.draw(rules(w))) for _ in range(4)]
    # then every rule gives the same ids both ways
    for rule in drawn:
        assert eng.evaluate(session, rule) == service.sql_customer_ids(session, corp_id=w.corp_id, rule=rule), rule
    # when rows change, the writer marks the customers it touched, and the engine catches up from the change log
    touched = mutate(session, data, w)
    mark_dirty(session, w.corp_id, touched)
    publish(session)
    assert eng.catch_up(session)
    # then the bitmaps equal a rebuild, and the rules still agree with SQL
    assert eng.check(session) == []
    for rule in drawn:
        assert eng.evaluate(session, rule) == service.sql_customer_ids(session, corp_id=w.corp_id, rule=rule), rule


# ---- the peers' bugs, one by one ------------------------------------------------------------------


@pytest.fixture
def small(session: Session) -> dict[str, Any]:
    """Two employees, tags A B D, four customers."""
    corp_id = _corp(session)
    e1, e2 = Employee(corp_id=corp_id, userid="e1", department_ids=[1]), Employee(corp_id=corp_id, userid="e2")
    group = TagGroup(corp_id=corp_id, wecom_id="g", name="g")
    session.add_all([e1, e2, group])
    session.flush()
    a, b, d = (Tag(corp_id=corp_id, group_id=group.id, wecom_id=x, name=x) for x in "ABD")
    customers = [Customer(corp_id=corp_id, external_userid=f"wm{i}-{next(_seq)}") for i in range(4)]
    session.add_all([a, b, d, *customers])
    session.flush()
    drop_engine(corp_id)
    return {"corp_id": corp_id, "e1": e1, "e2": e2, "A": a.id, "B": b.id, "D": d.id, "c": [c.id for c in customers]}


def _tagged(session: Session, corp_id: int, emp: Employee, customer_id: int, *tag_ids: int, **kw: Any) -> Follow:
    follow = Follow(corp_id=corp_id, employee_id=emp.id, customer_id=customer_id, **kw)
    session.add(follow)
    session.flush()
    session.add_all([FollowTag(corp_id=corp_id, follow_id=follow.id, tag_id=t) for t in tag_ids])
    session.flush()
    return follow


def _both(session: Session, corp_id: int, rule: dict[str, Any]) -> list[int]:
    engine_ids = service.customer_ids(session, corp_id=corp_id, rule=rule)
    assert engine_ids == service.sql_customer_ids(session, corp_id=corp_id, rule=rule)
    return list(engine_ids)


def test_all_of_tags_may_sit_on_different_follows(session: Session, small: dict[str, Any]) -> None:
    # given customer 0 with A from e1 and B from e2; customer 1 with A only
    corp_id, (c0, c1, *_) = small["corp_id"], small["c"]
    _tagged(session, corp_id, small["e1"], c0, small["A"])
    _tagged(session, corp_id, small["e2"], c0, small["B"])
    _tagged(session, corp_id, small["e1"], c1, small["A"])
    # then "all of A and B" matches customer 0, but not on e1's follow alone
    assert _both(session, corp_id, {"version": 1, "rule": {"tags": {"all": [small["A"], small["B"]]}}}) == [c0]
    on_e1 = {"version": 1, "rule": {"tags": {"all": [small["A"], small["B"]], "employee": "e1"}}}
    assert _both(session, corp_id, on_e1) == []


def test_ended_follow_is_not_active(session: Session, small: dict[str, Any]) -> None:
    # given customer 0 whose only follow (tagged A) ended: they deleted the employee
    corp_id, (c0, c1, *_) = small["corp_id"], small["c"]
    _tagged(session, corp_id, small["e1"], c0, small["A"], status=FollowStatus.CUSTOMER_DELETED_EMPLOYEE)
    _tagged(session, corp_id, small["e1"], c1, small["A"])
    # then they have neither the tag nor an active follow, and they count as lost
    assert _both(session, corp_id, {"version": 1, "rule": {"tags": {"any": [small["A"]]}}}) == [c1]
    assert _both(session, corp_id, {"version": 1, "rule": {"follow_status": "active"}}) == [c1]
    assert _both(session, corp_id, {"version": 1, "rule": {"follow_status": "lost"}}) == [c0]
    assert _both(session, corp_id, {"version": 1, "rule": {"owner": {"employees": ["e1"]}}}) == [c1]


def test_not_is_relative_to_the_corps_customers(session: Session, small: dict[str, Any]) -> None:
    # given another corp with its own customers
    other = _corp(session)
    session.add(Customer(corp_id=other, external_userid="wmother"))
    corp_id, c = small["corp_id"], small["c"]
    _tagged(session, corp_id, small["e1"], c[0], small["D"])
    # then NOT D and "none of D" are this corp's other customers, untagged ones included
    assert _both(session, corp_id, {"version": 1, "rule": {"not": {"tags": {"any": [small["D"]]}}}}) == c[1:]
    assert _both(session, corp_id, {"version": 1, "rule": {"tags": {"none": [small["D"]]}}}) == c[1:]


def test_count_reports_sample_and_unknown_ids(session: Session, small: dict[str, Any]) -> None:
    corp_id, c = small["corp_id"], small["c"]
    _tagged(session, corp_id, small["e1"], c[0], small["A"])
    rule = {"version": 1, "rule": {"or": [{"tags": {"any": [small["A"], 999_999]}}, {"owner": {"employees": ["zz"]}}]}}
    # when
    result = service.count(session, corp_id=corp_id, rule=rule, sample=1)
    # then
    assert (result.count, result.sample_customer_ids) == (1, [c[0]])
    assert result.unknown_ids == {"tags": [999_999], "employees": ["zz"]}
    assert service.sql_count(session, corp_id=corp_id, rule=rule) == 1


def test_mark_dirty_refreshes_the_registry_engine(session: Session, small: dict[str, Any]) -> None:
    corp_id, c = small["corp_id"], small["c"]
    rule = {"version": 1, "rule": {"tags": {"any": [small["B"]]}}}
    assert service.count(session, corp_id=corp_id, rule=rule).count == 0
    # when a writer tags customer 1 and marks it dirty
    _tagged(session, corp_id, small["e2"], c[1], small["B"])
    assert service.count(session, corp_id=corp_id, rule=rule).count == 0  # not marked yet: the engine is stale
    mark_dirty(session, corp_id, [c[1]])
    publish(session)  # what commit does
    # then the next use sees it, and the engine agrees with a rebuild
    assert service.count(session, corp_id=corp_id, rule=rule).sample_customer_ids == [c[1]]
    assert engine_for(session, corp_id).check(session) == []
    drop_engine(corp_id)


def test_department_owner_includes_sub_departments(session: Session, small: dict[str, Any]) -> None:
    corp_id, c = small["corp_id"], small["c"]
    session.add_all(
        [
            Department(corp_id=corp_id, wecom_id=1, name="root", parent_wecom_id=0),
            Department(corp_id=corp_id, wecom_id=5, name="sub", parent_wecom_id=1),
        ]
    )
    small["e2"].department_ids = [5]
    _tagged(session, corp_id, small["e2"], c[2])
    assert _both(session, corp_id, {"version": 1, "rule": {"owner": {"departments": [1]}}}) == [c[2]]
