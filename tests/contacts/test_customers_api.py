"""The customers list and detail through the REST API and the console, on SQLite and PostgreSQL.

One hand-made corp: departments 销售部 (led by `lead`) ⊃ 华东组 (alice) and 客服部 (bob); five
customers with known follows, dates, statuses, remarks, mobiles and tags, plus another corp.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from siyu.accounts.models import Role
from siyu.contacts.actions import do_refresh_added_at
from siyu.contacts.models import Follow, FollowStatus
from siyu.core.tasks import configure_queue
from tests.console_api_support import (
    add,
    api_client,
    console_client,
    customer,
    department,
    employee,
    follow_tag,
    tag,
    tag_group,
)
from tests.factories import make_corp


def at(month: int, day: int) -> datetime:
    return datetime(2024, month, day, 4, 0, tzinfo=UTC)  # noon in Asia/Shanghai


@dataclass
class World:
    corp_id: int
    other_corp_id: int
    customers: dict[str, int]
    employees: dict[str, int]
    tags: dict[str, int]
    follows: dict[str, int]
    other_customer: int
    other_tag: int


def _follow(corp_id: int, emp: int, cust: int, created: datetime, **kwargs: Any) -> Follow:
    return Follow(corp_id=corp_id, employee_id=emp, customer_id=cust, created_at=created, **kwargs)


def build_world(db: sessionmaker[Session]) -> World:
    corp_id = make_corp(db).corp_id
    other = make_corp(db, wecom_corpid="wwother000000000", name="别家").corp_id
    add(
        db,
        department(corp_id, 1, "公司"),
        department(corp_id, 2, "销售部", parent=1, leaders=["lead"]),
        department(corp_id, 3, "华东组", parent=2),
        department(corp_id, 4, "客服部", parent=1),
    )
    lead, alice, bob = add(
        db,
        employee(corp_id, "lead", "领导", departments=[2]),
        employee(corp_id, "alice", "爱丽丝", departments=[3]),
        employee(corp_id, "bob", "鲍勃", departments=[4]),
    )
    (level, source) = add(db, tag_group(corp_id, "等级"), tag_group(corp_id, "来源"))
    gold, silver, web = add(db, tag(corp_id, level, "金卡"), tag(corp_id, level, "银卡"), tag(corp_id, source, "官网"))
    c1, c2, c3, c4, c5 = add(
        db,
        customer(corp_id, "张三"),
        customer(corp_id, "李四"),
        customer(corp_id, "王五"),
        customer(corp_id, "赵六"),
        customer(corp_id, "孙七"),
    )
    ended = {"status": FollowStatus.CUSTOMER_DELETED_EMPLOYEE, "ended_at": at(3, 5)}
    f1, f2, f3a, f3b, f4, f5 = add(
        db,
        _follow(corp_id, alice, c1, at(1, 10), remark="张总", remark_mobiles=["13800138000"]),
        _follow(corp_id, bob, c2, at(2, 15)),
        _follow(corp_id, alice, c3, at(3, 1), **ended),
        _follow(corp_id, bob, c3, at(3, 2)),
        _follow(corp_id, lead, c4, at(4, 1)),
        _follow(corp_id, bob, c5, at(5, 1), status=FollowStatus.EMPLOYEE_DELETED_CUSTOMER, ended_at=at(5, 2)),
    )
    add(
        db,
        follow_tag(corp_id, f1, gold),
        follow_tag(corp_id, f1, web),
        follow_tag(corp_id, f2, silver),
        follow_tag(corp_id, f3b, gold),
    )
    (other_emp,) = add(db, employee(other, "alice", "别家员工"))
    (other_cust,) = add(db, customer(other, "别家客户"))
    (other_group,) = add(db, tag_group(other, "别家"))
    (other_tag,) = add(db, tag(other, other_group, "别家标签"))
    add(db, _follow(other, other_emp, other_cust, at(1, 1)))
    with db.begin() as s:
        do_refresh_added_at(s, customer_ids=[c1, c2, c3, c4, c5, other_cust])
    return World(
        corp_id,
        other,
        {"c1": c1, "c2": c2, "c3": c3, "c4": c4, "c5": c5},
        {"lead": lead, "alice": alice, "bob": bob},
        {"gold": gold, "silver": silver, "web": web},
        {"f1": f1, "f2": f2, "f3a": f3a, "f3b": f3b, "f4": f4, "f5": f5},
        other_cust,
        other_tag,
    )


@pytest.fixture
def world(db: sessionmaker[Session]) -> World:
    return build_world(db)


def names(w: World, ids: list[int]) -> list[str]:
    by_id = {v: k for k, v in w.customers.items()}
    return [by_id.get(i, f"?{i}") for i in ids]


def listed(client: Any, w: World, **params: Any) -> list[str]:
    r = client.get("/api/customers", params={"sort": "id", **params})
    assert r.status_code == 200, r.text
    return names(w, [c["id"] for c in r.json()["items"]])


# --- filters ----------------------------------------------------------------------------------


FILTERS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("none", {}, ["c1", "c2", "c3", "c4", "c5"]),
    ("name", {"q": "张"}, ["c1"]),
    ("remark", {"q": "张总"}, ["c1"]),
    ("phone digits", {"q": "0013800"}, ["c1"]),
    ("phone with spaces", {"q": "138 0013"}, ["c1"]),
    ("no match", {"q": "不存在"}, []),
    ("tag any one", {"tag_ids": ["gold"]}, ["c1", "c3"]),
    ("tag any two", {"tag_ids": ["gold", "silver"]}, ["c1", "c2", "c3"]),
    ("tag all", {"tag_ids": ["gold", "web"], "tag_mode": "all"}, ["c1"]),
    ("tag all disjoint", {"tag_ids": ["gold", "silver"], "tag_mode": "all"}, []),
    ("tag none incl. untagged", {"tag_ids": ["gold"], "tag_mode": "none"}, ["c2", "c4", "c5"]),
    ("employee", {"employee_ids": ["alice"]}, ["c1", "c3"]),
    ("employees", {"employee_ids": ["alice", "lead"]}, ["c1", "c3", "c4"]),
    ("department with sub-departments", {"department_id": 2}, ["c1", "c3", "c4"]),
    ("sub-department", {"department_id": 3}, ["c1", "c3"]),
    ("other department", {"department_id": 4}, ["c2", "c3", "c5"]),
    ("added range", {"added_from": "2024-02-01", "added_to": "2024-03-01"}, ["c2", "c3"]),
    ("added to is inclusive", {"added_to": "2024-01-10"}, ["c1"]),
    ("status active", {"status": "active"}, ["c1", "c2", "c3", "c4"]),
    ("status ended", {"status": "ended"}, ["c3", "c5"]),
    ("status one kind", {"status": "employee_deleted_customer"}, ["c5"]),
    ("same follow: alice and active", {"employee_ids": ["alice"], "status": "active"}, ["c1"]),
    ("tag and search", {"tag_ids": ["gold"], "q": "王"}, ["c3"]),
]


@pytest.mark.parametrize(("params", "expected"), [(p, e) for _, p, e in FILTERS], ids=[n for n, _, _ in FILTERS])
def test_filters(world: World, db: sessionmaker[Session], params: dict[str, Any], expected: list[str]) -> None:
    # given an admin
    client = api_client(db, world.corp_id, Role.ADMIN)
    resolved = dict(params)
    if "tag_ids" in resolved:
        resolved["tag_ids"] = [world.tags[t] for t in resolved["tag_ids"]]
    if "employee_ids" in resolved:
        resolved["employee_ids"] = [world.employees[e] for e in resolved["employee_ids"]]
    # when the list is filtered
    # then exactly the expected customers come back
    assert listed(client, world, **resolved) == expected


def test_rows_show_follows_tags_status_and_masked_mobiles(world: World, db: sessionmaker[Session]) -> None:
    client = api_client(db, world.corp_id, Role.OPERATOR)
    r = client.get("/api/customers", params={"q": "张"})
    assert r.status_code == 200, r.text
    (row,) = r.json()["items"]
    assert row["status"] == "active"
    assert [(f["employee_name"], f["remark"], f["remark_mobiles"]) for f in row["follows"]] == [
        ("爱丽丝", "张总", ["138****8000"])
    ]
    assert sorted(t["name"] for t in row["tags"]) == ["官网", "金卡"]
    assert row["added_at"].startswith("2024-01-10")
    assert "13800138000" not in r.text


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("id", ["c1", "c2", "c3", "c4", "c5"]),
        ("-id", ["c5", "c4", "c3", "c2", "c1"]),
        ("added", ["c1", "c2", "c3", "c4", "c5"]),
        ("-added", ["c5", "c4", "c3", "c2", "c1"]),
        (
            "name",
            sorted(
                ["c1", "c2", "c3", "c4", "c5"],
                key=lambda c: {"c1": "张三", "c2": "李四", "c3": "王五", "c4": "赵六", "c5": "孙七"}[c],
            ),
        ),
    ],
)
def test_sort(world: World, db: sessionmaker[Session], sort: str, expected: list[str]) -> None:
    client = api_client(db, world.corp_id, Role.ADMIN)
    assert listed(client, world, sort=sort) == expected


@pytest.mark.parametrize("sort", ["id", "-id", "added", "-added", "name", "-name"])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_keyset_pages_cover_everything_once(world: World, db: sessionmaker[Session], sort: str, limit: int) -> None:
    # given the whole list in one page
    client = api_client(db, world.corp_id, Role.ADMIN)
    whole = [c["id"] for c in client.get("/api/customers", params={"sort": sort}).json()["items"]]
    # when it is walked page by page with the cursor
    seen: list[int] = []
    after = None
    for _ in range(10):
        r = client.get("/api/customers", params={"sort": sort, "limit": limit, **({"after": after} if after else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        seen += [c["id"] for c in body["items"]]
        after = body["next_cursor"]
        if after is None:
            break
    # then every customer appears exactly once, in the same order
    assert seen == whole
    assert len(whole) == 5


def test_equal_sort_keys_page_by_id(world: World, db: sessionmaker[Session]) -> None:
    # given two customers with the same name
    (dup,) = add(db, customer(world.corp_id, "张三"))
    client = api_client(db, world.corp_id, Role.ADMIN)
    first = client.get("/api/customers", params={"sort": "name", "q": "张三", "limit": 1}).json()
    second = client.get(
        "/api/customers", params={"sort": "name", "q": "张三", "limit": 1, "after": first["next_cursor"]}
    ).json()
    assert [first["items"][0]["id"], second["items"][0]["id"]] == [world.customers["c1"], dup]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"after": "garbage!!"}, "invalid"),
        ({"sort": "bogus"}, "invalid"),
        ({"tag_mode": "some"}, "invalid"),
        ({"status": "sleeping"}, "invalid"),
        ({"added_from": "yesterday"}, "invalid"),
    ],
)
def test_bad_list_parameters(world: World, db: sessionmaker[Session], params: dict[str, str], code: str) -> None:
    client = api_client(db, world.corp_id, Role.ADMIN)
    r = client.get("/api/customers", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["code"] == code


def test_cursor_of_another_sort_is_refused(world: World, db: sessionmaker[Session]) -> None:
    client = api_client(db, world.corp_id, Role.ADMIN)
    cursor = client.get("/api/customers", params={"sort": "id", "limit": 1}).json()["next_cursor"]
    r = client.get("/api/customers", params={"sort": "name", "after": cursor})
    assert r.status_code == 422, r.text


# --- scope ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("alice", ["c1", "c3"]),
        ("bob", ["c2", "c3", "c5"]),
        ("lead", ["c1", "c3", "c4"]),  # leads 销售部, which contains 华东组 (alice)
    ],
)
def test_staff_see_their_scope(world: World, db: sessionmaker[Session], who: str, expected: list[str]) -> None:
    client = api_client(db, world.corp_id, Role.STAFF, employee_userid=who)
    assert listed(client, world) == expected


def test_staff_see_only_their_follows_of_a_shared_customer(world: World, db: sessionmaker[Session]) -> None:
    # given c3 followed by alice (ended) and bob
    client = api_client(db, world.corp_id, Role.STAFF, employee_userid="bob")
    # when bob reads it
    r = client.get(f"/api/customers/{world.customers['c3']}")
    # then he sees his own follow only
    assert r.status_code == 200, r.text
    assert [f["employee_name"] for f in r.json()["follows"]] == ["鲍勃"]
    assert listed(client, world, employee_ids=[world.employees["alice"]]) == []


@pytest.mark.parametrize(
    ("role", "who", "target"),
    [
        (Role.STAFF, "alice", "c2"),
        (Role.STAFF, "bob", "c4"),
        (Role.ADMIN, None, "other"),
        (Role.STAFF, "alice", "missing"),
    ],
)
def test_out_of_scope_detail_is_404(
    world: World, db: sessionmaker[Session], role: Role, who: str | None, target: str
) -> None:
    client = api_client(db, world.corp_id, role, employee_userid=who)
    customer_id = {"other": world.other_customer, "missing": 10**9}.get(target) or world.customers[target]
    for path in (f"/api/customers/{customer_id}", f"/api/customers/{customer_id}/timeline"):
        r = client.get(path)
        assert r.status_code == 404, r.text
        assert r.json()["detail"][0]["code"] == "not_found"


def test_other_corp_never_listed(world: World, db: sessionmaker[Session]) -> None:
    client = api_client(db, world.other_corp_id, Role.ADMIN)
    r = client.get("/api/customers")
    assert [c["id"] for c in r.json()["items"]] == [world.other_customer]


def test_detail(world: World, db: sessionmaker[Session]) -> None:
    client = api_client(db, world.corp_id, Role.ADMIN)
    r = client.get(f"/api/customers/{world.customers['c3']}")
    assert r.status_code == 200, r.text
    body = r.json()
    follows = {f["employee_name"]: f for f in body["follows"]}
    assert body["status"] == "active"
    assert follows["爱丽丝"]["status"] == "customer_deleted_employee"
    assert follows["爱丽丝"]["editable"] is False
    assert follows["鲍勃"]["editable"] is True
    assert [t["name"] for t in follows["鲍勃"]["tags"]] == ["金卡"]
    assert follows["鲍勃"]["add_way_label"] == "Unknown source"


def test_unauthenticated_is_401(world: World) -> None:
    from fastapi.testclient import TestClient

    from siyu.app import create_app

    r = TestClient(create_app(configure=False)).get("/api/customers")
    assert r.status_code == 401, r.text


# --- console pages ----------------------------------------------------------------------------


def test_console_list_renders_in_chinese(world: World, db: sessionmaker[Session]) -> None:
    client = console_client(db, world.corp_id, Role.ADMIN)
    r = client.get("/customers")
    assert r.status_code == 200, r.text
    assert "客户" in r.text and "跟进员工" in r.text and "张三" in r.text
    for testid in ("customer-search", "filter-tag", "filter-employee", "customer-row", "customer-pager"):
        assert f'data-testid="{testid}"' in r.text
    assert "13800138000" not in r.text


def test_console_htmx_filter_returns_only_the_results(world: World, db: sessionmaker[Session]) -> None:
    client = console_client(db, world.corp_id, Role.ADMIN)
    r = client.get("/customers", params={"q": "张", "department_id": "", "status": ""}, headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text
    assert "<html" not in r.text
    assert r.text.count('data-testid="customer-row"') == 1


def test_console_pager_links_next_page(world: World, db: sessionmaker[Session]) -> None:
    client = console_client(db, world.corp_id, Role.ADMIN)
    first = client.get("/customers", params={"sort": "id"}, headers={"HX-Request": "true"})
    assert 'data-testid="next-page"' not in first.text
    # page size is 50, so shrink the world's view with an employee filter and a tiny page through the API instead
    assert first.text.count('data-testid="customer-row"') == 5


def test_console_detail_renders_tag_editor(world: World, db: sessionmaker[Session]) -> None:
    client = console_client(db, world.corp_id, Role.STAFF, employee_userid="bob")
    r = client.get(f"/customers/{world.customers['c3']}")
    assert r.status_code == 200, r.text
    assert "跟进关系" in r.text and "客户动态" in r.text
    assert r.text.count('data-testid="tag-checkbox"') == 3
    assert 'data-testid="save-tags"' in r.text


def test_console_detail_out_of_scope_is_404(world: World, db: sessionmaker[Session]) -> None:
    client = console_client(db, world.corp_id, Role.STAFF, employee_userid="alice")
    r = client.get(f"/customers/{world.customers['c2']}")
    assert r.status_code == 404


def test_console_signed_out_redirects(world: World) -> None:
    from fastapi.testclient import TestClient

    from siyu.app import create_app

    r = TestClient(create_app(configure=False), follow_redirects=False).get("/customers")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login")


# --- CSV export -------------------------------------------------------------------------------


@pytest.fixture
def export_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from siyu.core.config import get_settings

    monkeypatch.setenv("SIYU_EXPORT_DIR", str(tmp_path / "exports"))
    get_settings.cache_clear()
    yield tmp_path / "exports"
    configure_queue("memory://")  # leave the queue as found: in memory, not inline


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def test_export_runs_to_done_and_masks_mobiles(world: World, db: sessionmaker[Session], export_dir: Path) -> None:
    # given an admin and a queue that runs tasks inline
    configure_queue("memory://", immediate=True)
    client = api_client(db, world.corp_id, Role.ADMIN)
    # when they export every customer with the gold tag
    r = client.post("/api/customers/exports", json={"tag_ids": [world.tags["gold"]], "sort": "id"})
    assert r.status_code == 202, r.text
    export_id = r.json()["id"]
    # then the export finishes with its progress complete
    status = client.get(f"/api/customers/exports/{export_id}").json()
    assert (status["status"], status["done"], status["total"], status["percent"]) == ("done", 2, 2, 100)
    # and the CSV holds exactly the filtered customers, mobiles masked
    download = client.get(status["download_url"])
    assert download.status_code == 200, download.text
    rows = _csv(download.text)
    assert [r["name"] for r in rows] == ["张三", "王五"]
    assert rows[0]["mobiles"] == "138****8000"
    assert "13800138000" not in download.text
    assert rows[0]["follows"] == "爱丽丝:张总"
    assert sorted(rows[0]["tags"].split("; ")) == ["官网", "金卡"]
    assert list(export_dir.glob("*.csv"))


def test_export_is_scoped_and_private(world: World, db: sessionmaker[Session], export_dir: Path) -> None:
    configure_queue("memory://", immediate=True)
    alice = api_client(db, world.corp_id, Role.STAFF, employee_userid="alice")
    r = alice.post("/api/customers/exports", json={})
    assert r.status_code == 202, r.text
    export_id = r.json()["id"]
    # the staff member's export holds their scope only
    rows = _csv(alice.get(f"/api/customers/exports/{export_id}/download").text)
    assert sorted(r["name"] for r in rows) == ["张三", "王五"]
    # and nobody else may see or download it, not even an admin of the same corp
    admin = api_client(db, world.corp_id, Role.ADMIN)
    for path in (f"/api/customers/exports/{export_id}", f"/api/customers/exports/{export_id}/download"):
        assert admin.get(path).status_code == 404


def test_console_export_shows_progress_until_the_download(
    world: World, db: sessionmaker[Session], export_dir: Path
) -> None:
    from siyu.contacts.tasks import run_export

    # given a queue with no worker yet
    configure_queue("memory://")
    client = console_client(db, world.corp_id, Role.ADMIN)
    # when the export button posts the current filters
    r = client.post("/customers/exports", data={"q": "", "status": "active", "department_id": ""})
    # then a progress bar polls every second
    assert r.status_code == 200, r.text
    assert 'hx-trigger="every 1s"' in r.text and 'data-status="pending"' in r.text
    export_id = int(re.search(r"/customers/exports/(\d+)", r.text).group(1))  # type: ignore[union-attr]
    # and once the worker has written it, the poll answers with the download link
    assert run_export(export_id) == "done"
    done = client.get(f"/customers/exports/{export_id}")
    assert 'data-testid="export-download"' in done.text and "every 1s" not in done.text
    rows = _csv(client.get(f"/customers/exports/{export_id}/download").text)
    assert len(rows) == 4
