"""REST: opt-out / opt-in, the opt-out list, complaints, pauses, the policy, content checks and the budget."""

from __future__ import annotations

import calendar
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from siyu.compliance import monitor
from siyu.compliance.actions import do_opt_out_from_reply, is_opt_out_reply
from siyu.compliance.models import ComplaintSignal, OptOut, ReachPause
from siyu.core.clock import now_utc
from siyu.corp.models import AuditLog
from tests import console_api_support as sup
from tests.compliance.support import SHANGHAI, broadcast, set_policy, shop


def _audit_actions(session: Session, object_id: int | str) -> list[str]:
    """Audit actions on a customer, employee or broadcast with this id."""
    stmt = (
        select(AuditLog.action)
        .where(AuditLog.object_id == str(object_id), AuditLog.object_type.in_(("customer", "employee", "broadcast")))
        .order_by(AuditLog.id)
    )
    return list(session.scalars(stmt))


# --- opt-out ------------------------------------------------------------------------------------------


def test_opt_out_is_idempotent_and_audited(db: sessionmaker[Session]) -> None:
    # given
    w = shop(db)
    client = sup.api_client(db, w.corp_id, "operator")
    c = w.customers[0]

    # when opted out twice, then opted in twice
    first = client.post(f"/api/customers/{c}/opt-out", json={"note": "电话里说不要再发"})
    second = client.post(f"/api/customers/{c}/opt-out", json={"note": "again"})

    # then one record (the first), one audit row, no signal (no message was sent)
    assert first.status_code == 200, first.text
    assert second.json() == first.json()
    assert first.json()["opted_out"] is True and first.json()["opt_out"]["note"] == "电话里说不要再发"
    with db() as s:
        assert s.scalar(select(func.count()).select_from(OptOut)) == 1
        assert _audit_actions(s, c) == ["customer.opt_out"]
        assert s.scalar(select(func.count()).select_from(ComplaintSignal)) == 0

    # when
    back = client.delete(f"/api/customers/{c}/opt-out")
    again = client.delete(f"/api/customers/{c}/opt-out")

    # then
    assert back.status_code == again.status_code == 200
    assert back.json() == {"customer_id": c, "opted_out": False, "opt_out": None}
    with db() as s:
        assert _audit_actions(s, c) == ["customer.opt_out", "customer.opt_in"]


@pytest.mark.parametrize(("hours_ago", "signalled"), [(5, True), (49, False)])
def test_an_opt_out_soon_after_a_message_is_a_signal_against_that_broadcast(
    db: sessionmaker[Session], hours_ago: int, signalled: bool
) -> None:
    # given bob's broadcast reached the customer some hours ago
    w = shop(db)
    c = w.customers[0]
    b = broadcast(db, w.corp_id, sender=w.bob, customers=[c], sent_at=now_utc() - timedelta(hours=hours_ago))
    client = sup.api_client(db, w.corp_id, "compliance")

    # when
    r = client.post(f"/api/customers/{c}/opt-out")

    # then the opt-out names the broadcast, and an opted_out_after_message signal counts against bob
    assert r.status_code == 200, r.text
    assert r.json()["opt_out"]["broadcast_id"] == (b if signalled else None)
    with db() as s:
        signals = s.execute(
            select(ComplaintSignal.kind, ComplaintSignal.employee_id, ComplaintSignal.broadcast_id)
        ).all()
    assert signals == ([("opted_out_after_message", w.bob, b)] if signalled else [])


def test_staff_opt_out_only_the_customers_they_follow(db: sessionmaker[Session]) -> None:
    # given carol follows only her own customer
    w = shop(db)
    [carol] = sup.add(db, sup.employee(w.corp_id, "carol", "赵晓"))
    [mine] = sup.add(db, sup.customer(w.corp_id, "卡罗的客户"))
    sup.add(db, sup.follow(w.corp_id, carol, mine))
    client = sup.api_client(db, w.corp_id, "staff", employee_userid="carol")

    # when / then
    assert client.post(f"/api/customers/{mine}/opt-out").status_code == 200
    assert client.post(f"/api/customers/{w.customers[0]}/opt-out").status_code == 404


def test_the_opt_out_list_pages_newest_first(db: sessionmaker[Session]) -> None:
    # given three opt-outs
    w = shop(db)
    client = sup.api_client(db, w.corp_id, "admin")
    for c in w.customers[:3]:
        assert client.post(f"/api/customers/{c}/opt-out").status_code == 200

    # when
    first = client.get("/api/compliance/opt-outs", params={"limit": 2}).json()
    rest = client.get("/api/compliance/opt-outs", params={"limit": 2, "after": first["next_cursor"]}).json()

    # then
    shown = [i["customer_id"] for i in first["items"] + rest["items"]]
    assert shown == list(reversed(w.customers[:3]))
    assert rest["next_cursor"] is None
    assert first["items"][0]["customer_name"] == "客户2"


@pytest.mark.parametrize(
    ("text", "opt_out"),
    [
        ("TD", True),
        ("td", True),
        ("Ｔ Ｄ", True),
        ("退订", True),
        ("退订。", True),
        ("回复TD", True),
        ("Unsubscribe", True),
        ("请取消订阅", True),
        ("不要退订", False),
        ("我想退订单", False),  # cancel an order
        ("谢谢，收到了", False),
        ("这个活动不错，我想问一下怎么退订会员自动续费的服务呢", False),  # a conversation, not a keyword
    ],
)
def test_opt_out_replies_are_recognised(text: str, opt_out: bool) -> None:
    assert is_opt_out_reply(text) is opt_out


def test_a_td_reply_opts_the_customer_out(db: sessionmaker[Session]) -> None:
    w = shop(db)
    with db.begin() as s:
        assert do_opt_out_from_reply(s, w.corp_id, w.customers[0], "谢谢") is None
        row = do_opt_out_from_reply(s, w.corp_id, w.customers[0], " TD ")
        assert row is not None and (row.source, row.recorded_by, row.note) == ("reply", "customer", "TD")


# --- complaints and pauses ------------------------------------------------------------------------------


def test_a_complaint_counts_against_the_last_broadcast_and_can_pause_its_sender(db: sessionmaker[Session]) -> None:
    # given alice's broadcast reached 20 customers; pause at 1,000 per 10,000 (2 signals)
    w = shop(db, customers=20)
    set_policy(db, w.corp_id)
    b = broadcast(db, w.corp_id, sender=w.alice, customers=w.customers)
    client = sup.api_client(db, w.corp_id, "operator")

    # when two customers complain
    made = [
        client.post("/api/compliance/complaints", json={"customer_id": c, "detail": "骚扰"}) for c in w.customers[:2]
    ]

    # then each is attributed to alice's broadcast, and alice is paused
    assert [r.status_code for r in made] == [201, 201], made[0].text
    assert {(r.json()["employee_id"], r.json()["broadcast_id"]) for r in made} == {(w.alice, b)}
    assert made[0].json()["employee_name"] == "王小丽" and made[0].json()["broadcast_name"] == "周末活动"
    pauses = client.get("/api/compliance/pauses", params={"active": True}).json()
    assert {(p["scope"], p["target_id"]) for p in pauses} == {("employee", w.alice), ("broadcast", b)}

    # when an operator (not allowed) and then a compliance officer lift alice's pause
    pause_id = next(p["id"] for p in pauses if p["scope"] == "employee")
    refused = client.post(f"/api/compliance/pauses/{pause_id}/lift")
    officer = sup.api_client(db, w.corp_id, "compliance")
    lifted = officer.post(f"/api/compliance/pauses/{pause_id}/lift")

    # then
    assert refused.status_code == 403
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted_at"] is not None
    assert lifted.json()["lifted_by"].startswith("user:") and ":compliance-" in lifted.json()["lifted_by"]
    with db() as s:
        assert s.scalar(select(func.count()).select_from(ReachPause).where(ReachPause.lifted_at.is_(None))) == 1
        assert "compliance.pause_lifted" in _audit_actions(s, w.alice)


def test_a_complaint_about_an_unknown_broadcast_is_refused(db: sessionmaker[Session]) -> None:
    w = shop(db)
    client = sup.api_client(db, w.corp_id, "admin")
    r = client.post("/api/compliance/complaints", json={"customer_id": w.customers[0], "broadcast_id": 999999})
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "broadcast_id: no broadcast 999999"


# --- policy and content checks --------------------------------------------------------------------------

VALID_POLICY: dict[str, Any] = {
    "platform_cap": "weekly_7",
    "corp_caps": [{"count": 2, "days": 7}, {"count": 5, "days": 30}],
    "quiet_start": "22:00",
    "quiet_end": "08:30",
    "sensitive_words": ["秒杀", " 秒杀 ", "VIP专享"],
    "link_allowlist": ["Example.com", "*.siyu.dev"],
    "thresholds": {
        "warn_per_10k": 3,
        "pause_per_10k": 10,
        "min_messages": 200,
        "window_days": 7,
        "delete_within_hours": 48,
    },
    "moments_eligible": False,
}


def test_the_policy_is_replaced_and_audited(db: sessionmaker[Session]) -> None:
    # given
    w = shop(db)
    client = sup.api_client(db, w.corp_id, "compliance")
    assert client.get("/api/compliance/policy").json()["platform_cap"] == "days_in_month"

    # when
    r = client.put("/api/compliance/policy", json=VALID_POLICY)

    # then normalised, saved, audited
    assert r.status_code == 200, r.text
    saved = client.get("/api/compliance/policy").json()
    assert saved["sensitive_words"] == ["秒杀", "VIP专享"]
    assert saved["link_allowlist"] == ["example.com", "siyu.dev"]
    assert saved["corp_caps"] == VALID_POLICY["corp_caps"] and saved["thresholds"] == VALID_POLICY["thresholds"]
    assert "最好" in saved["default_sensitive_words"]
    with db() as s:
        [detail] = s.scalars(select(AuditLog.detail).where(AuditLog.action == "compliance.policy_updated"))
    assert json.loads(detail)["changed"]["platform_cap"] == {"from": "days_in_month", "to": "weekly_7"}


def test_an_invalid_policy_is_refused_with_every_problem(db: sessionmaker[Session]) -> None:
    # given
    w = shop(db)
    client = sup.api_client(db, w.corp_id, "admin")
    bad = VALID_POLICY | {
        "platform_cap": "hourly",
        "quiet_start": "25:00",
        "corp_caps": [{"count": 0, "days": 7}],
        "link_allowlist": ["https://example.com/path"],
        "thresholds": VALID_POLICY["thresholds"] | {"warn_per_10k": 20},
    }

    # when
    r = client.put("/api/compliance/policy", json=bad)

    # then 422 naming each field; nothing saved
    assert r.status_code == 422
    messages = [d["msg"] for d in r.json()["detail"]]
    assert {m.split(":")[0] for m in messages} == {
        "platform_cap",
        "quiet_start",
        "corp_caps.0.count",
        "link_allowlist",
        "thresholds",
    }, messages
    assert any("warn_per_10k must not be above pause_per_10k" in m for m in messages)
    assert client.get("/api/compliance/policy").json()["platform_cap"] == "days_in_month"


def test_content_check_uses_the_corps_words_and_allowlist(db: sessionmaker[Session]) -> None:
    w = shop(db)
    client = sup.api_client(db, w.corp_id, "operator")
    admin = sup.api_client(db, w.corp_id, "admin")
    assert admin.put("/api/compliance/policy", json=VALID_POLICY).status_code == 200

    r = client.post("/api/compliance/content-check", json={"text": "秒杀！详见 https://m.example.com 与 https://x.cn"})

    assert r.status_code == 200, r.text
    assert r.json()["ok"] is False
    assert [(f["kind"], f["matched"], f["start"]) for f in r.json()["findings"]] == [
        ("sensitive_word", "秒杀", 0),
        ("link", "https://x.cn", 30),
    ]


# --- the budget ----------------------------------------------------------------------------------------


def test_budget_numbers_on_a_hand_built_dataset(db: sessionmaker[Session]) -> None:
    # given alice: 30 messages (two broadcasts), 1 complaint + 1 deletion; bob: 10 messages, none;
    # a broadcast sent 8 days ago (outside the 7-day window); a pending (planned) broadcast to 3 customers
    w = shop(db, customers=30)
    set_policy(db, w.corp_id, corp_caps=[{"count": 2, "days": 7}, {"count": 3, "days": 7}])
    b1 = broadcast(db, w.corp_id, sender=w.alice, customers=w.customers[:20], name="一")
    b2 = broadcast(db, w.corp_id, sender=w.alice, customers=w.customers[20:], name="二")
    b3 = broadcast(db, w.corp_id, sender=w.bob, customers=w.customers[:10], name="三")
    broadcast(db, w.corp_id, sender=w.bob, customers=w.customers, sent_at=now_utc() - timedelta(days=8), name="旧")
    broadcast(db, w.corp_id, sender=w.bob, customers=w.customers[:3], status="pending", name="待发")
    client = sup.api_client(db, w.corp_id, "compliance")
    assert client.post("/api/compliance/complaints", json={"customer_id": w.customers[25]}).status_code == 201
    with db.begin() as s:
        monitor.do_signals_for_deleted_follows(s, w.corp_id, [(w.alice, w.customers[0], now_utc())])

    # when
    r = client.get("/api/compliance/budget")

    # then
    assert r.status_code == 200, r.text
    data = r.json()
    employees = {e["target_id"]: e for e in data["employees"]}
    assert employees[w.alice]["messages"] == 30
    assert employees[w.alice]["signals"] == {"complaint": 1, "deleted_after_message": 1}
    assert employees[w.alice]["rate_per_10k"] == pytest.approx(666.67)
    assert employees[w.alice]["status"] == "warning"
    assert employees[w.alice]["budget_used"] == pytest.approx(0.6667)
    assert (employees[w.bob]["messages"], employees[w.bob]["signals_total"], employees[w.bob]["status"]) == (
        10,
        0,
        "ok",
    )
    broadcasts = {b["target_id"]: (b["messages"], b["signals_total"], b["status"]) for b in data["broadcasts"]}
    assert broadcasts == {b1: (20, 1, "warning"), b2: (10, 1, "paused"), b3: (10, 0, "ok")}
    assert (data["corp"]["messages"], data["corp"]["signals_total"]) == (40, 2)
    assert data["corp"]["rate_per_10k"] == pytest.approx(500)
    # b2 crossed 1,000 per 10,000 on its own and was paused when the complaint was recorded
    assert [(p["scope"], p["target_id"]) for p in data["pauses"]] == [("broadcast", b2)]
    assert len(data["recent_signals"]) == 2
    # slots held in the last 7 days: customers 0-2 three (b1, b3, the pending one), 3-9 two, the rest one
    today = now_utc().astimezone(SHANGHAI).date()
    sent_today = (now_utc() - timedelta(minutes=10)).astimezone(SHANGHAI).date() == today
    assert [(c["kind"], c["limit"], c["days"], c["customers_at_cap"]) for c in data["caps"]] == [
        ("platform", 1, 1, 30 if sent_today else 0),
        ("platform", calendar.monthrange(today.year, today.month)[1], 0, 0),
        ("corp", 2, 7, 10),
        ("corp", 3, 7, 3),
    ]
    assert data["customers_reached_this_month"] == 30
