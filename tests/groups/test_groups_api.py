"""Customer groups: list with member counts, detail with members, keyset paging, scope, pages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from siyu.core.tasks import configure_queue
from siyu.groups.models import GroupStatus
from tests import console_api_support as sup
from tests.factories import make_corp

JOINED = datetime(2024, 5, 1, 2, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _queue() -> None:
    configure_queue("memory://", immediate=True)


def _build(db: sessionmaker[Session]) -> tuple[int, list[int]]:
    """alice owns 销售一群 (alice, bob, 2 customers) and an old dismissed group; bob owns 售后群 (bob, 1 customer)."""
    corp_id = make_corp(db).corp_id
    sup.add(db, sup.employee(corp_id, "alice", "艾丽斯"), sup.employee(corp_id, "bob", "鲍勃"))
    (c1,) = sup.add(db, sup.customer(corp_id, "张三"))
    chats = sup.add(
        db,
        sup.group_chat(corp_id, "alice", "旧群", status=GroupStatus.DISMISSED),
        sup.group_chat(corp_id, "alice", "销售一群", notice="欢迎"),
        sup.group_chat(corp_id, "bob", "售后群"),
    )
    sup.add(
        db,
        sup.group_member(corp_id, chats[1], "alice", 1, join_time=JOINED, join_scene=1),
        sup.group_member(corp_id, chats[1], "bob", 1, join_time=JOINED, join_scene=1, invitor_userid="alice"),
        sup.group_member(
            corp_id,
            chats[1],
            "wmZHANG",
            2,
            customer_id=c1,
            name="张三",
            join_time=JOINED,
            join_scene=3,
            invitor_userid="bob",
        ),
        sup.group_member(corp_id, chats[1], "wmLI", 2, name="李四", join_time=JOINED, join_scene=2),
        sup.group_member(corp_id, chats[2], "bob", 1),
        sup.group_member(corp_id, chats[2], "wmWANG", 2, name="王五"),
    )
    return corp_id, chats


def test_list_shows_owner_and_member_counts_newest_first(db: sessionmaker[Session]) -> None:
    # given
    corp_id, _ = _build(db)
    client = sup.api_client(db, corp_id, "operator")

    # when
    r = client.get("/api/groups")

    # then
    assert r.status_code == 200, r.text
    got = [
        (g["name"], g["owner_name"], g["internal_members"], g["external_members"], g["status"])
        for g in r.json()["items"]
    ]
    assert got == [
        ("售后群", "鲍勃", 1, 1, "active"),
        ("销售一群", "艾丽斯", 2, 2, "active"),
        ("旧群", "艾丽斯", 0, 0, "dismissed"),
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [("status=active", ["售后群", "销售一群"]), ("q=销售", ["销售一群"]), ("owner=bob", ["售后群"])],
)
def test_filters(db: sessionmaker[Session], query: str, expected: list[str]) -> None:
    corp_id, _ = _build(db)
    r = sup.api_client(db, corp_id, "admin").get(f"/api/groups?{query}")
    assert [g["name"] for g in r.json()["items"]] == expected


def test_keyset_paging(db: sessionmaker[Session]) -> None:
    # given
    corp_id, _ = _build(db)
    client = sup.api_client(db, corp_id, "admin")

    # when
    first = client.get("/api/groups?limit=2").json()
    second = client.get(f"/api/groups?limit=2&after={first['next_after']}").json()

    # then
    assert [g["name"] for g in first["items"]] == ["售后群", "销售一群"]
    assert [g["name"] for g in second["items"]] == ["旧群"] and second["next_after"] is None


def test_detail_lists_members_with_scene_and_invitor(db: sessionmaker[Session]) -> None:
    # given
    corp_id, chats = _build(db)
    client = sup.api_client(db, corp_id, "compliance")

    # when
    r = client.get(f"/api/groups/{chats[1]}")

    # then
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["owner_name"], body["notice"]) == ("艾丽斯", "欢迎")
    members = {m["userid"]: (m["name"], m["type"], m["join_scene_label"], m["invitor_name"]) for m in body["members"]}
    assert members == {
        "alice": ("艾丽斯", "employee", "invited directly by a member", ""),
        "bob": ("鲍勃", "employee", "invited directly by a member", "艾丽斯"),
        "wmZHANG": ("张三", "customer", "scanned the group QR code", "鲍勃"),
        "wmLI": ("李四", "customer", "invited by a member's link", ""),
    }


@pytest.mark.parametrize(("userid", "visible"), [("alice", ["销售一群", "旧群"]), ("bob", ["售后群"])])
def test_staff_see_groups_they_own(db: sessionmaker[Session], userid: str, visible: list[str]) -> None:
    # given
    corp_id, chats = _build(db)
    client = sup.api_client(db, corp_id, "staff", employee_userid=userid)

    # when
    names = [g["name"] for g in client.get("/api/groups").json()["items"]]
    other = chats[2] if userid == "alice" else chats[1]

    # then
    assert names == visible
    assert client.get(f"/api/groups/{other}").status_code == 404


def test_other_corp_and_missing_groups_are_404(db: sessionmaker[Session]) -> None:
    # given
    _, chats = _build(db)
    other = make_corp(db, wecom_corpid="wwother").corp_id
    client = sup.api_client(db, other, "admin")

    # then
    assert client.get(f"/api/groups/{chats[1]}").status_code == 404
    assert client.get("/api/groups/999999").status_code == 404
    assert client.get("/api/groups").json()["items"] == []


@pytest.mark.parametrize("query", ["status=gone", "limit=0", "after=x"])
def test_bad_input_is_422(db: sessionmaker[Session], query: str) -> None:
    corp_id, _ = _build(db)
    r = sup.api_client(db, corp_id, "admin").get(f"/api/groups?{query}")
    assert r.status_code == 422, r.text


def test_pages_render_in_chinese(db: sessionmaker[Session]) -> None:
    # given
    corp_id, chats = _build(db)
    client = sup.console_client(db, corp_id, "operator")

    # when
    listing = client.get("/groups")
    detail = client.get(f"/groups/{chats[1]}")

    # then
    assert listing.status_code == 200 and detail.status_code == 200, (listing.text, detail.text)
    assert "群主" in listing.text and "已解散" in listing.text
    assert "扫描群二维码入群" in detail.text and "张三" in detail.text
    assert client.get("/groups/999999").status_code == 404
