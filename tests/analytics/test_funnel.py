"""Channel funnels: exact numbers for a hand-built corp, corp-time-zone day edges, scope, validation, CSV, pages."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from siyu.acquisition.models import Channel, ChannelGroup, CodeStatus
from siyu.app import create_app
from siyu.contacts.models import FollowStatus
from siyu.core import clock
from siyu.core.tasks import configure_queue
from tests import console_api_support as sup
from tests.factories import make_corp

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 6, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
MAY = {"start": "2024-05-01", "end": "2024-05-20"}
CUSTOMER_LEFT = FollowStatus.CUSTOMER_DELETED_EMPLOYEE
EMPLOYEE_LEFT = FollowStatus.EMPLOYEE_DELETED_CUSTOMER


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_queue("memory://", immediate=True)
    monkeypatch.setattr(clock, "now_utc", lambda: NOW)


def local(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


@dataclass(frozen=True)
class World:
    corp_id: int
    other_corp_id: int
    group_id: int
    channels: dict[str, int]  # name → id
    other_channel_id: int
    other_group_id: int


def _channel(corp_id: int, name: str, state: str, group_id: int | None = None, **kw: object) -> Channel:
    return Channel(corp_id=corp_id, name=name, state=state, group_id=group_id, **kw)


def _build(db: sessionmaker[Session]) -> World:
    """Channels 门店A and 门店B (group 门店), 海报 (no group), 旧活动 (deleted, still has history), 停用 (deleted,
    nothing in May); employees alice and bob; follows added and ended on chosen local days (see each comment)."""
    corp_id = make_corp(db).corp_id
    other = make_corp(db, wecom_corpid="wwotherother0001", name="别家").corp_id
    group, other_group = sup.add(
        db, ChannelGroup(corp_id=corp_id, name="门店"), ChannelGroup(corp_id=other, name="别组")
    )
    a, b, c, e, d, x = sup.add(
        db,
        _channel(corp_id, "门店A", "s-a", group),
        _channel(corp_id, "门店B", "s-b", group),
        _channel(corp_id, "海报", "s-c"),
        _channel(corp_id, "旧活动", "s-e", status=CodeStatus.DELETED),
        _channel(corp_id, "停用", "s-d", status=CodeStatus.DELETED),
        _channel(other, "别家渠道", "s-x", other_group),
    )
    alice, bob = sup.add(db, sup.employee(corp_id, "alice", "爱丽丝"), sup.employee(corp_id, "bob", "鲍勃"))
    (stranger,) = sup.add(db, sup.employee(other, "alice", "外人"))
    half, lost_by = timedelta(hours=12), {"status": CUSTOMER_LEFT}
    plan: list[tuple[int | None, int, datetime, dict[str, object]]] = [
        (a, alice, local(5, 1, 10), {}),  # a1
        (a, alice, local(5, 1, 12), {**lost_by, "ended_at": local(5, 1, 12) + half}),  # a2: lost 05-02, within 1 day
        (a, alice, local(5, 2), {"status": EMPLOYEE_LEFT, "ended_at": local(5, 5)}),  # a3: 3 days
        (a, bob, local(5, 3), {"status": FollowStatus.REMOVED, "ended_at": local(5, 13)}),  # a4: 10 days
        (a, bob, local(5, 4), {"status": FollowStatus.TRANSFERRED, "ended_at": local(5, 6)}),  # a5: not a loss
        (a, alice, local(5, 18), {}),  # a6: too young for the 30-day window
        (a, alice, local(5, 20, 23, 59), {}),  # a9: last minute of the range
        (a, alice, local(4, 1), {**lost_by, "ended_at": local(5, 11)}),  # a7: April cohort, lost in May after 40 days
        (a, alice, local(4, 30, 23, 59), {}),  # a8: a minute before the range
        (a, alice, local(5, 21, 0, 0), {}),  # a10: the first minute after it
        (b, alice, local(5, 10), {}),  # b1
        (b, bob, local(5, 10, 11), {"status": EMPLOYEE_LEFT, "ended_at": local(5, 10, 23)}),  # b2
        (b, alice, local(6, 10, 8), {}),  # b3: added two hours before now
        (c, bob, local(5, 15), {}),  # c1
        (e, alice, local(5, 5), {}),  # e1: a deleted channel keeps its history
        (None, alice, local(5, 5), {}),  # no channel
    ]
    customers = sup.add(db, *[sup.customer(corp_id) for _ in plan])
    follows = []
    for (channel_id, employee_id, added, extra), customer_id in zip(plan, customers, strict=True):
        follow = sup.follow(corp_id, employee_id, customer_id, created_at=added, **extra)  # type: ignore[arg-type]
        follow.channel_id = channel_id
        follows.append(follow)
    (outsider,) = sup.add(db, sup.customer(other))
    foreign = sup.follow(other, stranger, outsider, created_at=local(5, 5))
    foreign.channel_id = x
    sup.add(db, *follows, foreign)
    names = {"门店A": a, "门店B": b, "海报": c, "旧活动": e, "停用": d}
    return World(corp_id, other, group, names, x, other_group)


def _window(days: int, measurable: int, deleted: int) -> dict[str, object]:
    rate = round(deleted / measurable, 4) if measurable else None
    return {
        "days": days,
        "measurable": measurable,
        "deleted": deleted,
        "deleted_rate": rate,
        "retained_rate": None if rate is None else round(1 - rate, 4),
    }


def _summary(row: dict[str, object]) -> tuple[object, ...]:
    return (row["new"], row["lost"], row["net"], *[(w["measurable"], w["deleted"]) for w in row["retention"]])  # type: ignore[attr-defined]


def test_comparison_numbers_per_channel(db: sessionmaker[Session]) -> None:
    # given
    world = _build(db)
    client = sup.api_client(db, world.corp_id, "operator")

    # when
    r = client.get("/api/funnels/channels", params=MAY)

    # then
    assert r.status_code == 200, r.text
    body = r.json()
    rows = {row["channel_name"]: row for row in body["rows"]}
    assert body["rows"][0]["channel_name"] == "门店A"  # busiest first
    assert set(rows) == {"门店A", "门店B", "海报", "旧活动"}  # 停用: deleted, nothing in the range
    # (new, lost, net, (measurable, deleted) for 1 / 7 / 30 days)
    assert _summary(rows["门店A"]) == (7, 4, 3, (7, 1), (7, 2), (5, 3))
    assert _summary(rows["门店B"]) == (2, 1, 1, (2, 1), (2, 1), (2, 1))
    assert _summary(rows["海报"]) == (1, 0, 1, (1, 0), (1, 0), (0, 0))
    assert _summary(rows["旧活动"]) == (1, 0, 1, (1, 0), (1, 0), (1, 0))
    assert rows["门店A"]["retention"][2] == _window(30, 5, 3) and rows["门店A"]["retention"][2]["deleted_rate"] == 0.6
    assert rows["海报"]["retention"][2]["deleted_rate"] is None  # not yet measurable
    assert (rows["门店A"]["group_name"], rows["海报"]["group_name"]) == ("门店", "")
    assert _summary(body["totals"]) == (11, 5, 6, (11, 2), (11, 3), (8, 4))
    assert (body["start"], body["end"], body["timezone"]) == ("2024-05-01", "2024-05-20", "Asia/Shanghai")


def test_comparison_by_group_and_filters(db: sessionmaker[Session]) -> None:
    # given
    world = _build(db)
    client = sup.api_client(db, world.corp_id, "admin")

    # when
    by_group = client.get("/api/funnels/channels", params={**MAY, "by": "group"}).json()["rows"]
    in_group = client.get("/api/funnels/channels", params={**MAY, "group_id": world.group_id}).json()["rows"]
    chosen = client.get(
        "/api/funnels/channels", params={**MAY, "channel_id": [world.channels["海报"], world.channels["停用"]]}
    ).json()["rows"]

    # then
    groups = {row["group_name"]: row for row in by_group}
    assert _summary(groups["门店"]) == (9, 5, 4, (9, 2), (9, 3), (7, 4)) and groups["门店"]["channels"] == 2
    assert _summary(groups[""]) == (2, 0, 2, (2, 0), (2, 0), (1, 0)) and groups[""]["group_id"] is None
    assert [row["channel_name"] for row in in_group] == ["门店A", "门店B"]
    assert sorted(row["channel_name"] for row in chosen) == ["停用", "海报"]  # asked for by id: shown even if idle


def test_days_are_counted_in_the_corp_time_zone(db: sessionmaker[Session]) -> None:
    # given
    world = _build(db)
    client = sup.api_client(db, world.corp_id, "operator")
    channel_a = world.channels["门店A"]

    # when
    april = client.get(f"/api/funnels/channels/{channel_a}", params={"start": "2024-04-30", "end": "2024-04-30"})
    may = client.get(f"/api/funnels/channels/{channel_a}", params=MAY).json()

    # then
    assert april.status_code == 200, april.text
    assert april.json()["totals"]["new"] == 1  # a8 at 23:59 local (15:59 UTC) is still April 30
    days = {d["day"]: (d["new"], d["lost"], d["net"]) for d in may["days"]}
    assert len(may["days"]) == 20 and may["days"][0]["day"] == "2024-05-01"
    assert {day: v for day, v in days.items() if v != (0, 0, 0)} == {
        "2024-05-01": (2, 0, 2),
        "2024-05-02": (1, 1, 0),  # a2 ended at local midnight
        "2024-05-03": (1, 0, 1),
        "2024-05-04": (1, 0, 1),
        "2024-05-05": (0, 1, -1),
        "2024-05-11": (0, 1, -1),  # a7, added in April
        "2024-05-13": (0, 1, -1),
        "2024-05-18": (1, 0, 1),
        "2024-05-20": (1, 0, 1),  # a9 at 23:59; a10 at 00:00 on the 21st is out
    }


def test_channel_detail_retention_and_employees(db: sessionmaker[Session]) -> None:
    # given
    world = _build(db)
    client = sup.api_client(db, world.corp_id, "compliance")

    # when
    body = client.get(f"/api/funnels/channels/{world.channels['门店A']}", params=MAY).json()

    # then
    assert body["channel"] == {
        "id": world.channels["门店A"],
        "name": "门店A",
        "status": "active",
        "group_id": world.group_id,
        "group_name": "门店",
    }
    assert body["totals"]["retention"] == [_window(1, 7, 1), _window(7, 7, 2), _window(30, 5, 3)]
    people = {
        (e["userid"], e["new"], e["lost"], e["net"], e["measurable_7d"], e["deleted_7d"], e["retained_7d_rate"])
        for e in body["employees"]
    }
    assert people == {("alice", 5, 3, 2, 5, 2, 0.6), ("bob", 2, 1, 1, 2, 0, 1.0)}


def test_a_cohort_younger_than_the_window_is_not_yet_measurable(db: sessionmaker[Session]) -> None:
    # given
    world = _build(db)
    client = sup.api_client(db, world.corp_id, "operator")

    # when
    body = client.get(
        f"/api/funnels/channels/{world.channels['门店B']}", params={"start": "2024-06-10", "end": "2024-06-10"}
    ).json()

    # then
    assert body["totals"]["new"] == 1
    assert body["totals"]["retention"] == [_window(1, 0, 0), _window(7, 0, 0), _window(30, 0, 0)]
    assert body["totals"]["retention"][0]["deleted_rate"] is None
    assert body["employees"][0]["retained_7d_rate"] is None


def test_staff_see_only_their_employees_follows(db: sessionmaker[Session]) -> None:
    # given
    world = _build(db)
    client = sup.api_client(db, world.corp_id, "staff", employee_userid="alice")

    # when
    rows = client.get("/api/funnels/channels", params=MAY).json()["rows"]
    detail = client.get(f"/api/funnels/channels/{world.channels['门店A']}", params=MAY).json()

    # then
    summary = {row["channel_name"]: (row["new"], row["lost"]) for row in rows}
    assert summary == {"门店A": (5, 3), "门店B": (1, 0), "海报": (0, 0), "旧活动": (1, 0)}
    assert [e["userid"] for e in detail["employees"]] == ["alice"]


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"start": "2024-13-01"}, "start: '2024-13-01' is not a date"),
        ({"start": "2024-05-02", "end": "2024-05-01"}, "before start"),
        ({"start": "2023-05-01", "end": "2024-05-01"}, "at most 366"),
        ({"end": "yesterday"}, "end: 'yesterday' is not a date"),
    ],
)
def test_bad_ranges_are_refused(db: sessionmaker[Session], params: dict[str, str], needle: str) -> None:
    # given
    world = _build(db)
    client = sup.api_client(db, world.corp_id, "operator")

    # when
    r = client.get("/api/funnels/channels", params=params)

    # then
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["code"] == "invalid" and needle in r.json()["detail"][0]["msg"]


def test_a_366_day_range_is_allowed(db: sessionmaker[Session]) -> None:
    world = _build(db)
    client = sup.api_client(db, world.corp_id, "operator")
    r = client.get("/api/funnels/channels", params={"start": "2023-06-10", "end": "2024-06-09"})
    assert r.status_code == 200, r.text
    assert r.json()["totals"]["new"] == 14


def test_other_corps_and_unknown_ids_are_not_found(db: sessionmaker[Session]) -> None:
    # given
    world = _build(db)
    client = sup.api_client(db, world.corp_id, "admin")

    # when
    answers = [
        client.get(f"/api/funnels/channels/{world.other_channel_id}"),
        client.get("/api/funnels/channels/999999"),
        client.get("/api/funnels/channels", params={"channel_id": world.other_channel_id}),
        client.get("/api/funnels/channels", params={"group_id": world.other_group_id}),
        sup.console_client(db, world.corp_id, "admin").get(f"/funnels/{world.other_channel_id}"),
    ]

    # then
    assert [r.status_code for r in answers] == [404] * 5
    assert answers[0].json()["detail"][0]["code"] == "not_found"


def test_signed_out_is_refused(db: sessionmaker[Session]) -> None:
    make_corp(db)
    assert TestClient(create_app(configure=False)).get("/api/funnels/channels").status_code == 401


def test_csv_export(db: sessionmaker[Session]) -> None:
    # given
    world = _build(db)
    client = sup.console_client(db, world.corp_id, "operator")  # the page's download link uses the session

    # when
    r = client.get("/api/funnels/channels.csv", params=MAY)
    by_group = client.get("/api/funnels/channels.csv", params={**MAY, "by": "group"})

    # then
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert lines[0][:7] == ["渠道", "渠道ID", "渠道分组", "状态", "新增", "流失", "净增"]
    assert lines[0][7:11] == ["1天可统计", "1天内删除", "1天删除率", "1天留存率"]
    first = lines[1]
    assert first[:7] == ["门店A", str(world.channels["门店A"]), "门店", "active", "7", "4", "3"]
    assert first[-4:] == ["5", "3", "60.0%", "40.0%"]
    poster = next(line for line in lines if line[0] == "海报")
    assert poster[-4:] == ["0", "0", "", ""]  # not yet measurable
    group_lines = list(csv.reader(io.StringIO(by_group.content.decode("utf-8-sig"))))
    assert group_lines[0][:2] == ["渠道分组", "渠道数"] and group_lines[1][:5] == ["门店", "2", "9", "5", "4"]


def test_funnel_pages_render(db: sessionmaker[Session]) -> None:
    # given
    world = _build(db)
    client = sup.console_client(db, world.corp_id, "operator")

    # when
    page = client.get("/funnels", params=MAY)
    detail = client.get(f"/funnels/{world.channels['门店A']}", params=MAY)
    bad = client.get("/funnels", params={"start": "2024-05-09", "end": "2024-05-01"})
    client.cookies.set("siyu_lang", "en")
    english = client.get("/funnels", params={**MAY, "by": "group"})

    # then
    assert page.status_code == 200, page.text
    assert "渠道漏斗" in page.text and 'data-testid="funnel-chart"' in page.text
    assert page.text.count('data-testid="funnel-row"') == 4 and ">门店A</a>" in page.text
    assert "/api/funnels/channels.csv?start=2024-05-01&amp;end=2024-05-20" in page.text
    assert detail.status_code == 200, detail.text
    assert detail.text.count('data-testid="funnel-employee-row"') == 2 and "爱丽丝" in detail.text
    assert "60.0%" in detail.text  # 30-day deletion rate of 门店A
    assert english.status_code == 200 and "Channel funnels" in english.text and "Ungrouped" in english.text
    assert bad.status_code == 200 and "结束日期早于开始日期" in bad.text
