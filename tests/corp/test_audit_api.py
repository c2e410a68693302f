"""The audit log: admin and compliance only, newest first, keyset paged, filtered, shown readably."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from siyu.core.tasks import configure_queue
from siyu.corp.models import AuditLog
from tests import console_api_support as sup
from tests.factories import make_corp


@pytest.fixture(autouse=True)
def _queue() -> None:
    configure_queue("memory://", immediate=True)


def _entry(corp_id: int, action: str, actor: str, at: datetime, **detail: object) -> AuditLog:
    return AuditLog(
        corp_id=corp_id,
        actor=actor,
        action=action,
        object_type=action.split(".")[0],
        object_id="1",
        detail=json.dumps(detail, ensure_ascii=False),
        created_at=at,
    )


def _build(db: sessionmaker[Session]) -> int:
    corp_id = make_corp(db).corp_id  # writes corp.create
    sup.add(
        db,
        # 2024-05-01 23:30 in Shanghai is still 1 May locally although 15:30 UTC
        _entry(corp_id, "tag.create", "user:7:ops", datetime(2024, 5, 1, 15, 30, tzinfo=UTC), name="VIP"),
        # 2024-05-01 16:30 UTC is 2 May 00:30 in Shanghai
        _entry(corp_id, "tag_group.delete", "user:7:ops", datetime(2024, 5, 1, 16, 30, tzinfo=UTC), name="旧组"),
        _entry(
            corp_id, "corp.update_connection", "user:1:boss", datetime(2024, 5, 3, 1, 0, tzinfo=UTC), changed=["secret"]
        ),
    )
    return corp_id


@pytest.mark.parametrize("role", ["admin", "compliance"])
def test_newest_first(db: sessionmaker[Session], role: str) -> None:
    # given
    corp_id = _build(db)
    client = sup.api_client(db, corp_id, role)

    # when
    r = client.get("/api/audit?action=tag")

    # then
    assert r.status_code == 200, r.text
    assert [e["action"] for e in r.json()["items"]] == ["tag_group.delete", "tag.create"]
    assert r.json()["items"][1]["detail"] == {"name": "VIP"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action=tag.", ["tag.create"]),
        ("action=corp.update", ["corp.update_connection"]),
        ("actor=user:7", ["tag_group.delete", "tag.create"]),
        ("since=2024-05-02&until=2024-05-02", ["tag_group.delete"]),
        ("since=2024-05-01&until=2024-05-01", ["tag.create"]),
        ("since=2024-05-03&action=corp.update", ["corp.update_connection"]),
        ("action=nothing", []),
    ],
)
def test_filters(db: sessionmaker[Session], query: str, expected: list[str]) -> None:
    corp_id = _build(db)
    r = sup.api_client(db, corp_id, "admin").get(f"/api/audit?{query}")
    assert [e["action"] for e in r.json()["items"]] == expected


def test_keyset_paging_walks_everything_once(db: sessionmaker[Session]) -> None:
    # given
    corp_id = _build(db)
    client = sup.api_client(db, corp_id, "compliance")
    everything = [e["id"] for e in client.get("/api/audit?limit=500").json()["items"]]

    # when
    seen: list[int] = []
    after = None
    while True:
        body = client.get("/api/audit", params={"limit": 2, **({"after": after} if after else {})}).json()
        seen += [e["id"] for e in body["items"]]
        if (after := body["next_after"]) is None:
            break

    # then
    assert seen == everything == sorted(everything, reverse=True)


@pytest.mark.parametrize("role", ["operator", "staff"])
def test_other_roles_are_refused(db: sessionmaker[Session], role: str) -> None:
    corp_id = _build(db)
    sup.add(db, sup.employee(corp_id, "u1"))
    client = sup.api_client(db, corp_id, role, **({"employee_userid": "u1"} if role == "staff" else {}))
    assert client.get("/api/audit").status_code == 403
    assert (
        sup.console_client(db, corp_id, role, **({"employee_userid": "u1"} if role == "staff" else {}))
        .get("/audit")
        .status_code
        == 403
    )


def test_another_corps_log_is_invisible(db: sessionmaker[Session]) -> None:
    _build(db)
    other = make_corp(db, wecom_corpid="wwother").corp_id
    items = sup.api_client(db, other, "admin").get("/api/audit").json()["items"]
    assert {e["action"] for e in items} <= {"corp.create", "user.create", "api_token.create"}


@pytest.mark.parametrize("query", ["since=yesterday", "limit=0", "after=abc"])
def test_bad_input_is_422(db: sessionmaker[Session], query: str) -> None:
    corp_id = _build(db)
    assert sup.api_client(db, corp_id, "admin").get(f"/api/audit?{query}").status_code == 422


def test_page_renders_in_chinese_with_readable_detail(db: sessionmaker[Session]) -> None:
    # given
    corp_id = _build(db)
    client = sup.console_client(db, corp_id, "compliance")

    # when
    r = client.get("/audit?action=tag_group")

    # then
    assert r.status_code == 200, r.text
    assert "操作人" in r.text and "旧组" in r.text and "tag.create" not in r.text
    assert "&#34;name&#34;: &#34;旧组&#34;" in r.text or '"name": "旧组"' in r.text
