"""Browser: an operator opts a customer out, composes a customer broadcast to a rule, checks its content, plans it,
sees who is excluded and why (opted out, WeCom's daily cap), sends it, the employees confirm in the emulator, and
the results come in."""

from __future__ import annotations

import json
import re

import httpx
from e2e_support import Stack, no_quiet_hours, plan_broadcast, screenshot, send_broadcast, signed_in
from playwright.sync_api import Page, expect
from sqlalchemy import select

from siyu.contacts.models import Customer, Employee, Follow
from siyu.core import db as core_db


def _customers_of(stack: Stack, userid: str) -> list[int]:
    with core_db.session_scope() as session:
        ids = session.scalars(
            select(Customer.id)
            .join(Follow, Follow.customer_id == Customer.id)
            .join(Employee, Employee.id == Follow.employee_id)
            .where(Employee.userid == userid, Follow.status == "active")
            .order_by(Customer.id)
        )
        return list(dict.fromkeys(ids))


def test_compose_plan_send_and_see_results(page: Page, stack: Stack) -> None:
    # given the staff employee's customers: one will opt out, one already got a broadcast today
    no_quiet_hours(stack)
    userid = stack.employees["staff"]
    customers = _customers_of(stack, userid)
    assert len(customers) >= 4, "the seeded corp gives the staff employee too few customers"
    opted, capped = customers[0], customers[1]
    signed_in(page, "operator", next_path=f"/customers/{opted}")
    card = page.get_by_test_id("opt-out-card")
    card.get_by_test_id("opt-out").click()
    expect(page.get_by_test_id("opt-out-card")).to_have_attribute("data-opted-out", "yes")
    plan_broadcast(page, "预占额度", "customer_ids", str(capped), "今日到店礼")
    expect(page.get_by_test_id("plan-eligible")).to_have_text("1")

    # when the operator composes a broadcast to everyone the staff employee follows
    page.goto("/broadcasts/new")
    form = page.get_by_test_id("broadcast-form")
    form.get_by_test_id("broadcast-name").fill("双十二会员日")
    form.get_by_test_id("source-rule").check()
    form.get_by_test_id("audience-rule").fill(json.dumps({"version": 1, "rule": {"owner": {"employees": [userid]}}}))
    form.get_by_test_id("audience-count-button").click()
    expect(page.get_by_test_id("audience-count-value")).to_have_attribute("data-count", str(len(customers)))
    # and the live content check flags a sensitive word, then passes the fixed text
    form.get_by_test_id("broadcast-text").fill("双十二全网最低价")
    highlighted = page.get_by_test_id("check-highlighted").locator("mark.finding.sensitive_word")
    expect(highlighted).to_have_text("最低价")
    screenshot(page, "broadcast-compose")
    form.get_by_test_id("broadcast-text").fill("双十二会员日，全场八折")
    expect(page.get_by_test_id("check-clean")).to_be_visible()
    form.get_by_test_id("broadcast-plan").click()

    # then the plan shows the eligible customers and the excluded ones by reason
    page.wait_for_url(re.compile(r"/broadcasts/\d+/plan$"))
    broadcast_id = int(page.url.rsplit("/", 2)[1])
    for reason in ("opted_out", "platform_cap"):
        expect(page.locator(f"[data-testid=excluded-row][data-reason={reason}] td.num")).to_have_text("1")
    eligible = int(page.get_by_test_id("plan-eligible").inner_text())
    assert eligible == len(customers) - 2
    expect(page.get_by_test_id("excluded-chart").locator("canvas")).to_be_visible()
    page.locator("[data-testid=reason-filter][data-reason=opted_out]").click()
    expect(page.get_by_test_id("recipient-row")).to_have_count(1)
    expect(page.get_by_test_id("recipient-row")).to_have_attribute("data-customer-id", str(opted))
    screenshot(page, "broadcast-plan")

    # when the employees confirm on their own at once, and the operator sends
    r = httpx.post(
        f"{stack.emulator.base_url}/emulator/mass/settings", json={"confirm_probability": 1, "confirm_delay": 0}
    )
    assert r.status_code == 200, r.text

    send_broadcast(page, broadcast_id)
    expect(page.get_by_test_id("broadcast-notice")).to_be_visible()

    # then fetching the results shows them coming in
    sent = page.get_by_test_id("count-sent")
    for _ in range(20):
        if sent.inner_text() != "0" or not page.get_by_test_id("fetch-results").count():
            break
        page.wait_for_timeout(300)
        page.get_by_test_id("fetch-results").click()
        page.wait_for_url(re.compile(rf"/broadcasts/{broadcast_id}\?notice=fetching$"))
    outcomes = {k: int(page.get_by_test_id(f"count-{k}").inner_text()) for k in ("sent", "not_friend", "quota")}
    assert outcomes["sent"] > 0
    assert sum(outcomes.values()) == eligible
    expect(page.get_by_test_id("chunk-progress")).to_have_attribute("data-accepted", re.compile(r"[1-9]\d*"))
    expect(page.get_by_test_id("employee-row").first).to_be_visible()
    screenshot(page, "broadcast-results")
    # and the list shows what was sent
    page.goto("/broadcasts")
    row = page.locator(f"[data-testid=broadcast-row][data-broadcast-id='{broadcast_id}']")
    expect(row.get_by_test_id("row-sent")).to_have_text(str(outcomes["sent"]))
    screenshot(page, "broadcasts")
