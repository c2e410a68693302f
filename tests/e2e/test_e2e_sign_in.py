"""Signing in and switching language in a real browser."""

from __future__ import annotations

import pytest
from e2e_support import PASSWORD, Stack, screenshot, signed_in
from playwright.sync_api import Page, expect


def test_wrong_password_shows_the_error_and_keeps_the_user_out(page: Page) -> None:
    # given
    page.goto("/")
    expect(page).to_have_url("/login?next=/")
    screenshot(page, "login")
    # when
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "not-the-password")
    page.click("form[action='/login'] button[type=submit]")
    # then
    expect(page.get_by_role("alert")).to_have_text("用户名或密码错误。")
    assert "/login" in page.url


def test_right_password_lands_on_the_dashboard_with_its_chart(page: Page) -> None:
    # given
    page.goto("/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    # when
    page.click("form[action='/login'] button[type=submit]")
    # then
    expect(page).to_have_url("/")
    expect(page.locator("h1")).to_have_text("概览")
    chart = page.locator(".chart canvas, .chart svg").first
    expect(chart).to_be_visible()
    screenshot(page, "dashboard")


def test_language_switch_goes_to_english_and_back(page: Page) -> None:
    # given
    signed_in(page, "operator")
    expect(page.locator("nav.nav")).to_contain_text("客户")
    # when
    with page.expect_navigation():
        page.click("a[data-lang=en]")
    # then
    expect(page.locator("nav.nav")).to_contain_text("Customers")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    screenshot(page, "dashboard-en")
    # when
    with page.expect_navigation():
        page.click("a[data-lang=zh_CN]")
    # then
    expect(page.locator("nav.nav")).to_contain_text("客户")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


@pytest.mark.parametrize("role", ["admin", "operator", "staff", "staff_lead", "compliance"])
def test_every_role_signs_in(page: Page, stack: Stack, role: str) -> None:
    # when
    signed_in(page, role)
    # then
    expect(page.locator(".who")).to_contain_text(role)
