"""The compliance console pages: reach policy (form, content check), harassment budget (numbers, lift),
and the opt-out card on the customer page and in the sidebar — rendered and posted over HTTP, both databases."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from siyu.app import create_app
from siyu.compliance.models import OptOut, ReachPause, ReachPolicy
from siyu.sidebar import links
from tests import console_api_support as sup
from tests.compliance.support import broadcast, set_policy, shop

POLICY_FORM = {
    "platform_cap": "weekly_7",
    "cap_count": ["2", "", ""],
    "cap_days": ["7", "", ""],
    "quiet_start": "21:30",
    "quiet_end": "08:00",
    "sensitive_words": "秒杀\n内部价",
    "link_allowlist": "example.com, shop.example.cn",
    "warn_per_10k": "3",
    "pause_per_10k": "10",
    "min_messages": "200",
    "window_days": "7",
    "delete_within_hours": "48",
    "moments_eligible": "1",
}


def test_the_policy_page_renders_a_form_for_writers_only(db: sessionmaker[Session]) -> None:
    w = shop(db)
    admin = sup.console_client(db, w.corp_id, "admin").get("/compliance/policy")
    operator = sup.console_client(db, w.corp_id, "operator").get("/compliance/policy")
    staff = sup.console_client(db, w.corp_id, "staff", employee_userid="alice").get("/compliance/policy")

    assert admin.status_code == 200 and 'data-testid="policy-save"' in admin.text
    assert "合规策略" in admin.text and "骚扰预算" in admin.text  # the page and the navigation, Chinese first
    assert operator.status_code == 200 and 'data-testid="policy-save"' not in operator.text
    assert staff.status_code == 403


def test_the_policy_form_saves(db: sessionmaker[Session]) -> None:
    # given
    w = shop(db)
    client = sup.console_client(db, w.corp_id, "compliance")

    # when
    r = client.post("/compliance/policy", data=POLICY_FORM)

    # then
    assert r.status_code == 303 and r.headers["location"] == "/compliance/policy?saved=1"
    with db() as s:
        row = s.get(ReachPolicy, w.corp_id)
        assert row is not None
        assert (row.platform_cap, row.corp_caps, row.quiet_start) == ("weekly_7", [{"count": 2, "days": 7}], "21:30")
        assert row.sensitive_words == ["秒杀", "内部价"] and row.link_allowlist == ["example.com", "shop.example.cn"]
        assert row.complaint_thresholds["pause_per_10k"] == 10 and row.moments_eligible is True
    page = client.get("/compliance/policy?saved=1").text
    assert 'data-testid="policy-saved"' in page and "内部价" in page


def test_a_refused_policy_form_lists_every_problem_and_keeps_the_input(db: sessionmaker[Session]) -> None:
    w = shop(db)
    client = sup.console_client(db, w.corp_id, "admin")
    bad = POLICY_FORM | {"quiet_start": "9pm", "warn_per_10k": "abc", "link_allowlist": "http://x.cn/a b"}

    r = client.post("/compliance/policy", data=bad)

    assert r.status_code == 422
    assert 'data-testid="policy-errors"' in r.text
    for field in ("quiet_start", "thresholds.warn_per_10k", "link_allowlist"):
        assert f"{field}:" in r.text
    assert 'value="9pm"' in r.text and "秒杀" in r.text
    with db() as s:
        assert s.get(ReachPolicy, w.corp_id) is None


def test_the_check_box_highlights_findings(db: sessionmaker[Session]) -> None:
    w = shop(db)
    client = sup.console_client(db, w.corp_id, "operator")

    r = client.post("/compliance/policy/check", data={"text": "全网最低价！转发朋友圈领取红包 https://evil.cn"})

    assert r.status_code == 200
    assert 'data-findings="3"' in r.text
    assert '<mark class="finding sensitive_word" title="敏感词">最低价</mark>' in r.text
    assert '<mark class="finding induced_sharing" title="诱导分享">转发朋友圈领取</mark>' in r.text
    assert '<mark class="finding link" title="白名单外的链接">https://evil.cn</mark>' in r.text


def test_the_budget_page_shows_the_numbers_and_lifts_a_pause(db: sessionmaker[Session]) -> None:
    # given alice's broadcast to 20 customers drew 2 complaints (pause at 1,000 per 10,000)
    w = shop(db, customers=20)
    set_policy(db, w.corp_id)
    broadcast(db, w.corp_id, sender=w.alice, customers=w.customers, name="双十一预热")
    api = sup.api_client(db, w.corp_id, "compliance")
    for c in w.customers[:2]:
        assert api.post("/api/compliance/complaints", json={"customer_id": c}).status_code == 201
    client = sup.console_client(db, w.corp_id, "compliance")

    # when
    page = client.get("/compliance/budget")

    # then
    assert page.status_code == 200
    assert 'data-testid="corp-messages">20<' in page.text
    assert 'data-testid="corp-rate">1000.0<' in page.text
    assert f'data-target="{w.alice}" data-status="paused"' in page.text
    assert "双十一预热" in page.text and "王小丽" in page.text
    assert page.text.count('data-testid="pause-row"') == 2

    # when the officer lifts alice's pause
    with db() as s:
        pause_id = s.scalar(select(ReachPause.id).where(ReachPause.scope == "employee"))
    lifted = client.post(f"/compliance/pauses/{pause_id}/lift")

    # then
    assert lifted.status_code == 303
    with db() as s:
        assert s.get(ReachPause, pause_id).lifted_at is not None  # type: ignore[union-attr]
    assert client.get("/compliance/budget").text.count('data-testid="pause-row"') == 1


def test_operators_see_the_budget_but_cannot_lift(db: sessionmaker[Session]) -> None:
    w = shop(db)
    [pause_id] = sup.add(db, ReachPause(corp_id=w.corp_id, scope="employee", target_id=w.alice, reason="test"))
    client = sup.console_client(db, w.corp_id, "operator")

    page = client.get("/compliance/budget")

    assert page.status_code == 200 and 'data-testid="lift-pause"' not in page.text
    assert client.post(f"/compliance/pauses/{pause_id}/lift").status_code == 403


def test_the_customer_page_opt_out_card(db: sessionmaker[Session]) -> None:
    # given
    w = shop(db)
    c = w.customers[0]
    client = sup.console_client(db, w.corp_id, "staff", employee_userid="alice")
    assert f'hx-get="/compliance/customers/{c}/opt-out"' in client.get(f"/customers/{c}").text

    # when
    before = client.get(f"/compliance/customers/{c}/opt-out")
    after = client.post(f"/compliance/customers/{c}/opt-out", data={"action": "opt_out", "note": "不想收"})

    # then
    assert 'data-opted-out="no"' in before.text and 'data-testid="opt-out"' in before.text
    assert after.status_code == 200 and 'data-opted-out="yes"' in after.text and "不想收" in after.text
    with db() as s:
        row = s.get(OptOut, (w.corp_id, c))
        assert row is not None and row.source == "console"

    # when undone
    again = client.post(f"/compliance/customers/{c}/opt-out", data={"action": "opt_in"})
    assert 'data-opted-out="no"' in again.text


def test_the_sidebar_opt_out_card(db: sessionmaker[Session]) -> None:
    # given alice's sidebar session
    w = shop(db)
    c = w.customers[1]
    sidebar_session = links.SidebarSession(w.corp_id, w.alice)
    client = TestClient(create_app(configure=False), follow_redirects=False)
    client.cookies.set(links.SESSION_COOKIE, links.session_cookie_value(sidebar_session), path="/sidebar")

    # when
    card = client.get(f"/sidebar/opt-out/{c}")
    refused = client.post(f"/sidebar/opt-out/{c}", data={"action": "opt_out"})
    done = client.post(
        f"/sidebar/opt-out/{c}", data={"action": "opt_out"}, headers={"X-CSRF-Token": links.csrf_token(sidebar_session)}
    )

    # then
    assert card.status_code == 200 and 'data-opted-out="no"' in card.text
    assert refused.status_code == 403
    assert done.status_code == 200 and 'data-opted-out="yes"' in done.text
    with db() as s:
        row = s.get(OptOut, (w.corp_id, c))
        assert row is not None and row.source == "sidebar" and row.recorded_by.startswith("sidebar:")
