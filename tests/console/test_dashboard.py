"""The dashboard: numbers against a hand-built corp, days in the corp's time zone, scope, the page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from siyu.callbacks.models import CallbackInbox
from siyu.contacts.models import FollowStatus
from siyu.core import clock
from siyu.core.tasks import configure_queue
from siyu.groups.models import GroupStatus
from siyu.sync.models import SyncRun, SyncStatus
from tests import console_api_support as sup
from tests.factories import make_corp

# 2024-05-20 10:00 in Shanghai (UTC+8) is 02:00 UTC: "today" began at 2024-05-19 16:00 UTC.
NOW = datetime(2024, 5, 20, 2, 0, tzinfo=UTC)
TODAY_START = datetime(2024, 5, 19, 16, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_queue("memory://", immediate=True)
    monkeypatch.setattr(clock, "now_utc", lambda: NOW)


def _build_corp(db: sessionmaker[Session]) -> tuple[int, dict[str, int]]:
    """Two employees; alice: 3 active customers (2 added today, 1 a minute before local midnight),
    1 lost today, 1 lost 3 days ago, 1 transferred today (not a loss); bob: 2 active customers added 40 days ago."""
    corp_id = make_corp(db).corp_id
    alice, bob, gone = sup.add(
        db,
        sup.employee(corp_id, "alice"),
        sup.employee(corp_id, "bob"),
        sup.employee(corp_id, "gone", status="resigned"),
    )
    customers = sup.add(db, *[sup.customer(corp_id) for _ in range(8)])
    long_ago = NOW - timedelta(days=40)
    lost = FollowStatus.CUSTOMER_DELETED_EMPLOYEE
    sup.add(
        db,
        sup.follow(corp_id, alice, customers[0], created_at=TODAY_START + timedelta(hours=1)),
        sup.follow(corp_id, alice, customers[1], created_at=NOW),
        sup.follow(corp_id, alice, customers[2], created_at=TODAY_START - timedelta(minutes=1)),
        sup.follow(corp_id, alice, customers[3], created_at=long_ago, status=lost, ended_at=TODAY_START),
        sup.follow(corp_id, alice, customers[4], created_at=long_ago, status=lost, ended_at=NOW - timedelta(days=3)),
        sup.follow(corp_id, alice, customers[5], created_at=long_ago, status=FollowStatus.TRANSFERRED, ended_at=NOW),
        sup.follow(corp_id, bob, customers[6], created_at=long_ago),
        sup.follow(corp_id, bob, customers[7], created_at=long_ago),
        # the same customer followed twice is one customer
        sup.follow(corp_id, bob, customers[0], created_at=long_ago),
    )
    sup.add(
        db,
        sup.group_chat(corp_id, "alice"),
        sup.group_chat(corp_id, "bob"),
        sup.group_chat(corp_id, "bob", status=GroupStatus.DISMISSED),
        SyncRun(
            corp_id=corp_id,
            scope="all",
            status=SyncStatus.DONE,
            started_at=NOW - timedelta(hours=1),
            finished_at=NOW - timedelta(minutes=50),
        ),
        CallbackInbox(corp_id=corp_id, dedupe_key="a", payload="<xml/>", status="pending"),
        CallbackInbox(corp_id=corp_id, dedupe_key="b", payload="<xml/>", status="failed"),
        CallbackInbox(corp_id=corp_id, dedupe_key="c", payload="<xml/>", status="done"),
    )
    return corp_id, {"alice": alice, "bob": bob, "gone": gone}


def test_dashboard_numbers_for_the_whole_corp(db: sessionmaker[Session]) -> None:
    # given
    corp_id, _ = _build_corp(db)
    client = sup.api_client(db, corp_id, "operator")

    # when
    r = client.get("/api/dashboard")

    # then
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("today", "customers_total", "new_today", "lost_today", "employees", "groups")} == {
        "today": "2024-05-20",
        "customers_total": 5,
        "new_today": 2,
        "lost_today": 1,
        "employees": 2,
        "groups": 2,
    }
    assert body["last_sync"]["status"] == "done"
    assert body["inbox"] == {"pending": 1, "failed": 1}


def test_trend_counts_days_in_the_corp_time_zone(db: sessionmaker[Session]) -> None:
    # given
    corp_id, _ = _build_corp(db)
    client = sup.api_client(db, corp_id, "admin")

    # when
    trend = client.get("/api/dashboard").json()["trend"]

    # then
    assert len(trend) == 30
    assert trend[0]["day"] == "2024-04-21"
    by_day = {d["day"]: d for d in trend}
    assert (by_day["2024-05-20"]["new"], by_day["2024-05-20"]["lost"]) == (2, 1)
    assert (by_day["2024-05-19"]["new"], by_day["2024-05-19"]["lost"]) == (1, 0)
    assert (by_day["2024-05-17"]["new"], by_day["2024-05-17"]["lost"]) == (0, 1)
    assert [trend[-1]["total"], by_day["2024-05-19"]["total"], by_day["2024-05-18"]["total"]] == [5, 4, 3]
    assert by_day["2024-05-16"]["total"] == 4  # before the loss on the 17th


def test_staff_see_only_their_own_customers(db: sessionmaker[Session]) -> None:
    # given
    corp_id, _ = _build_corp(db)
    client = sup.api_client(db, corp_id, "staff", employee_userid="bob")

    # when
    body = client.get("/api/dashboard").json()

    # then
    assert (body["customers_total"], body["new_today"], body["employees"], body["groups"]) == (3, 0, 1, 1)


def test_signed_out_is_refused(db: sessionmaker[Session]) -> None:
    from fastapi.testclient import TestClient

    from siyu.app import create_app

    # given
    make_corp(db)

    # when
    r = TestClient(create_app(configure=False)).get("/api/dashboard")

    # then
    assert r.status_code == 401, r.text


@pytest.mark.parametrize("role", ["admin", "operator", "compliance"])
def test_dashboard_page_renders_in_chinese(db: sessionmaker[Session], role: str) -> None:
    # given
    corp_id, _ = _build_corp(db)
    client = sup.console_client(db, corp_id, role)

    # when
    r = client.get("/")

    # then
    assert r.status_code == 200, r.text
    assert "今日新增" in r.text and 'data-testid="trend-chart"' in r.text
    assert 'data-testid="stat-customers-total"><div class="n">5<' in r.text


def test_dashboard_page_redirects_when_signed_out(db: sessionmaker[Session]) -> None:
    from fastapi.testclient import TestClient

    from siyu.app import create_app

    r = TestClient(create_app(configure=False), follow_redirects=False).get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
