"""Browser: a staff member opens 群发 from the nav, composes a personal broadcast to two of their own customers
(one found with the search), plans it, sends it, and sees it in their list."""

from __future__ import annotations

import re

import httpx
from e2e_support import Stack, no_quiet_hours, screenshot, send_broadcast, signed_in
from playwright.sync_api import Page, expect

from siyu.broadcasts.models import Broadcast
from siyu.core import db as core_db


def test_staff_plan_and_send_a_personal_broadcast(page: Page, stack: Stack) -> None:
    # given the staff member signed in, and employees who confirm their tasks at once
    no_quiet_hours(stack)
    r = httpx.post(
        f"{stack.emulator.base_url}/emulator/mass/settings", json={"confirm_probability": 1, "confirm_delay": 0}
    )
    assert r.status_code == 200, r.text
    signed_in(page, "staff")

    # when they open 群发 from the nav and start a personal broadcast
    page.locator("nav.nav a[href='/broadcasts']").click()
    page.get_by_test_id("new-personal-broadcast").click()
    page.wait_for_url(re.compile(r"/broadcasts/new\?kind=personal$"))
    form = page.get_by_test_id("broadcast-form")
    expect(form.get_by_test_id("broadcast-senders")).to_have_count(0)
    expect(form.get_by_test_id("broadcast-sender")).to_be_visible()
    customers = form.get_by_test_id("own-customer")
    assert customers.count() >= 2, "the seeded corp gives the staff employee too few customers"
    first, second = customers.nth(0), customers.nth(1)
    chosen = [first.get_attribute("data-customer-id"), second.get_attribute("data-customer-id")]
    form.get_by_test_id("broadcast-name").fill("老客周末回访")
    # and find the second one by the search, tick it, then tick the first with the search cleared
    search = form.get_by_test_id("own-customers-search")
    search.fill(second.locator("xpath=..").inner_text().strip())
    expect(second).to_be_visible()
    second.check()
    search.fill("")
    first.check()
    form.get_by_test_id("broadcast-text").fill("周末到店有小礼物，欢迎来坐坐")
    screenshot(page, "personal-broadcast-compose")
    form.get_by_test_id("broadcast-plan").click()

    # then the plan reaches both, and sending starts
    page.wait_for_url(re.compile(r"/broadcasts/\d+/plan$"))
    broadcast_id = int(page.url.rsplit("/", 2)[1])
    expect(page.get_by_test_id("plan-eligible")).to_have_text("2")

    send_broadcast(page, broadcast_id)
    expect(page.get_by_test_id("broadcast-notice")).to_be_visible()

    # and it is in their list: the only one there, a personal broadcast
    page.goto("/broadcasts")
    rows = page.get_by_test_id("broadcast-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-broadcast-id", str(broadcast_id))
    expect(rows.first).to_contain_text("个人群发")
    screenshot(page, "personal-broadcasts")
    with core_db.session_scope() as session:
        broadcast = session.get(Broadcast, broadcast_id)
        assert broadcast is not None and broadcast.kind == "personal"
        assert sorted(broadcast.audience["customer_ids"]) == sorted(int(c or 0) for c in chosen)
