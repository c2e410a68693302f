"""Browser: an operator creates a channel code, downloads its QR code, a simulated customer scans it,
the welcome reaches the customer, and the channel's funnel moves."""

from __future__ import annotations

import re
from pathlib import Path

from e2e_support import Stack, screenshot, signed_in
from playwright.sync_api import Page, expect

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_create_a_channel_download_its_qr_scan_it_and_see_the_funnel_move(page: Page, stack: Stack) -> None:
    # given an operator on the channel codes page
    signed_in(page, "operator", next_path="/channels")
    form = page.get_by_test_id("channel-form")
    employee = form.get_by_test_id("channel-employees").locator("option").first
    employee_name = employee.inner_text().strip()
    # when they create a code for one employee with a welcome that names the customer
    form.get_by_test_id("channel-name").fill("地铁海报A")
    form.get_by_test_id("channel-employees").select_option(employee.get_attribute("value"))
    form.get_by_test_id("channel-welcome").fill("{nickname}您好，我是{employee}")
    form.get_by_test_id("channel-submit").click()
    # then it lands on the code's page, and the list shows it
    page.wait_for_url(re.compile(r"/channels/\d+$"))
    channel_id = int(page.url.rsplit("/", 1)[1])
    page.goto("/channels")
    row = page.get_by_test_id("channel-row").filter(has_text="地铁海报A")
    expect(row).to_be_visible()
    screenshot(page, "channels")
    page.goto(f"/channels/{channel_id}")
    expect(page.get_by_test_id("qr-image")).to_be_visible()
    with page.expect_download() as png:
        page.get_by_test_id("qr-png").click()
    assert Path(png.value.path()).read_bytes()[:8] == PNG_MAGIC
    with page.expect_download() as svg:
        page.get_by_test_id("qr-svg").click()
    assert b"<svg" in Path(svg.value.path()).read_bytes()[:400]
    screenshot(page, "channel-detail")
    # when a customer opens the code's URL (the emulator's scan page) and scans
    scan_url = page.get_by_test_id("qr-url").get_attribute("href")
    assert scan_url and "/scan/contact/" in scan_url
    scan = page.context.new_page()
    scan.goto(scan_url)
    scan.get_by_role("button").click()
    expect(scan.locator("body")).to_contain_text("external_userid")
    scan.close()
    # then the welcome reached the customer with the variables filled in
    (delivery,) = stack.emulator.welcome_deliveries
    assert delivery.text.endswith(f"您好，我是{employee_name}")
    # and the channel's funnel counts the new follow
    page.goto(f"/funnels?channel_id={channel_id}")
    funnel_row = page.locator(f"[data-testid=funnel-row][data-channel-id='{channel_id}']")
    expect(funnel_row).to_contain_text("地铁海报A")
    expect(funnel_row.locator("td.num").first).to_have_text("1")
    expect(page.get_by_test_id("funnel-chart")).to_be_visible()
    screenshot(page, "funnels")
    # and the channel page's welcome log shows it sent
    page.goto(f"/channels/{channel_id}")
    expect(page.get_by_test_id("welcome-send-row").first).to_be_visible()
