"""Employees: departments, customer counts, filters, keyset paging, scope, the page."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from siyu.contacts.models import FollowStatus
from siyu.core.tasks import configure_queue
from tests import console_api_support as sup
from tests.factories import make_corp


@pytest.fixture(autouse=True)
def _queue() -> None:
    configure_queue("memory://", immediate=True)


def _build(db: sessionmaker[Session]) -> int:
    """Departments 1 总部 ⊃ 2 销售部 ⊃ 3 华东组; 4 客服部 (led by carol).
    alice (2): 3 active + 1 ended follow; bob (3): 1; carol (4): 0, leads 4; dave (4) resigned: 2."""
    corp_id = make_corp(db).corp_id
    sup.add(
        db,
        sup.department(corp_id, 1, "总部"),
        sup.department(corp_id, 2, "销售部", parent=1),
        sup.department(corp_id, 3, "华东组", parent=2),
        sup.department(corp_id, 4, "客服部", parent=1, leaders=["carol"]),
    )
    alice, bob, _carol, dave = sup.add(
        db,
        sup.employee(corp_id, "alice", "艾丽斯", departments=[2]),
        sup.employee(corp_id, "bob", "鲍勃", departments=[3]),
        sup.employee(corp_id, "carol", "卡罗尔", departments=[4]),
        sup.employee(corp_id, "dave", "戴夫", departments=[4], status="resigned"),
    )
    cs = sup.add(db, *[sup.customer(corp_id) for _ in range(6)])
    sup.add(
        db,
        *[sup.follow(corp_id, alice, c) for c in cs[:3]],
        sup.follow(corp_id, alice, cs[3], status=FollowStatus.CUSTOMER_DELETED_EMPLOYEE),
        sup.follow(corp_id, bob, cs[0]),
        sup.follow(corp_id, dave, cs[4]),
        sup.follow(corp_id, dave, cs[5]),
    )
    return corp_id


def test_list_shows_departments_status_and_customer_counts(db: sessionmaker[Session]) -> None:
    # given
    corp_id = _build(db)
    client = sup.api_client(db, corp_id, "operator")

    # when
    r = client.get("/api/employees")

    # then
    assert r.status_code == 200, r.text
    rows = {e["userid"]: e for e in r.json()["items"]}
    assert {u: (e["customers"], e["status"]) for u, e in rows.items()} == {
        "alice": (3, "active"),
        "bob": (1, "active"),
        "carol": (0, "active"),
        "dave": (2, "resigned"),
    }
    assert rows["bob"]["departments"] == [{"wecom_id": 3, "name": "华东组"}]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("department=2", {"alice", "bob"}),  # sub-departments included
        ("department=3", {"bob"}),
        ("department=4&status=active", {"carol"}),
        ("status=resigned", {"dave"}),
        ("q=ali", {"alice"}),
        ("q=戴", {"dave"}),
    ],
)
def test_filters(db: sessionmaker[Session], query: str, expected: set[str]) -> None:
    # given
    corp_id = _build(db)
    client = sup.api_client(db, corp_id, "admin")

    # when
    r = client.get(f"/api/employees?{query}")

    # then
    assert r.status_code == 200, r.text
    assert {e["userid"] for e in r.json()["items"]} == expected


def test_keyset_paging_walks_every_employee_once(db: sessionmaker[Session]) -> None:
    # given
    corp_id = _build(db)
    client = sup.api_client(db, corp_id, "admin")

    # when
    seen: list[str] = []
    after = None
    while True:
        body = client.get("/api/employees", params={"limit": 3, **({"after": after} if after else {})}).json()
        seen += [e["userid"] for e in body["items"]]
        after = body["next_after"]
        if after is None:
            break

    # then
    assert seen == ["alice", "bob", "carol", "dave"]


@pytest.mark.parametrize(
    ("userid", "expected"),
    [("alice", {"alice"}), ("carol", {"carol", "dave"})],  # a leader sees their department
)
def test_staff_see_their_scope(db: sessionmaker[Session], userid: str, expected: set[str]) -> None:
    # given
    corp_id = _build(db)
    client = sup.api_client(db, corp_id, "staff", employee_userid=userid)

    # when
    r = client.get("/api/employees")

    # then
    assert {e["userid"] for e in r.json()["items"]} == expected


def test_other_corp_is_invisible(db: sessionmaker[Session]) -> None:
    # given
    _build(db)
    other = make_corp(db, wecom_corpid="wwother").corp_id
    client = sup.api_client(db, other, "admin")

    # when
    r = client.get("/api/employees")

    # then
    assert r.json() == {"items": [], "next_after": None}


@pytest.mark.parametrize("query", ["status=fired", "limit=0", "limit=10000", "department=abc"])
def test_bad_input_is_a_clear_422(db: sessionmaker[Session], query: str) -> None:
    # given
    corp_id = _build(db)
    client = sup.api_client(db, corp_id, "admin")

    # when
    r = client.get(f"/api/employees?{query}")

    # then
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["code"] == "invalid"


def test_departments_list(db: sessionmaker[Session]) -> None:
    corp_id = _build(db)
    r = sup.api_client(db, corp_id, "staff", employee_userid="bob").get("/api/departments")
    assert r.status_code == 200, r.text
    assert {d["name"] for d in r.json()} == {"总部", "销售部", "华东组", "客服部"}


def test_employees_page_renders_in_chinese(db: sessionmaker[Session]) -> None:
    # given
    corp_id = _build(db)
    client = sup.console_client(db, corp_id, "operator")

    # when
    r = client.get("/employees?department=2&status=active")

    # then
    assert r.status_code == 200, r.text
    assert "艾丽斯" in r.text and "在职" in r.text and "戴夫" not in r.text
