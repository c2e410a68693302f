"""The console's main pages in a real browser: customers (search, filter, tag edit reaching WeCom) and
each page loading with its main content."""

from __future__ import annotations

import re

import pytest
from e2e_support import Stack, screenshot, signed_in
from playwright.sync_api import Page, expect
from sqlalchemy import select

from siyu.contacts.models import Customer, Employee, Follow, FollowStatus
from siyu.core import db as core_db
from siyu.tags.models import FollowTag, Tag


def _a_tagged_customer(stack: Stack) -> tuple[int, str, str]:
    """(customer id, customer name, a tag name on one of their active follows)."""
    with core_db.session_scope() as session:
        row = session.execute(
            select(Customer.id, Customer.name, Tag.name)
            .join(Follow, Follow.customer_id == Customer.id)
            .join(FollowTag, FollowTag.follow_id == Follow.id)
            .join(Tag, Tag.id == FollowTag.tag_id)
            .where(Follow.status == FollowStatus.ACTIVE, Customer.name != "")
            .order_by(Customer.id)
            .limit(1)
        ).one()
    return int(row[0]), str(row[1]), str(row[2])


def test_search_customers_by_name(page: Page, stack: Stack) -> None:
    # given
    _, name, _ = _a_tagged_customer(stack)
    signed_in(page, "operator", next_path="/customers")
    expect(page.get_by_test_id("customer-row").first).to_be_visible()
    screenshot(page, "customers")
    # when
    page.get_by_test_id("customer-search").fill(name)
    page.get_by_test_id("customer-search").press("Enter")
    # then
    expect(page).to_have_url(re.compile(r"q="))
    rows = page.get_by_test_id("customer-row")
    expect(rows.first).to_contain_text(name)
    for text in rows.all_inner_texts():
        assert name in text


def test_filter_customers_by_tag_and_employee(page: Page, stack: Stack) -> None:
    # given
    _, _, tag_name = _a_tagged_customer(stack)
    signed_in(page, "operator", next_path="/customers")
    # when: any of one tag
    page.get_by_test_id("filter-tags").locator("summary").click()
    page.get_by_test_id("filter-tags").get_by_label(tag_name, exact=True).check()
    page.get_by_test_id("filter-submit").click()
    # then
    expect(page.get_by_test_id("customer-row").first).to_be_visible()
    assert "tag_ids=" in page.url
    # when: and one employee
    page.get_by_test_id("filter-employee").select_option(index=1)
    # then
    expect(page).to_have_url(re.compile(r"employee=\d+"))
    expect(page.get_by_test_id("customer-table")).to_be_visible()
    screenshot(page, "customers-filtered")


def test_edit_a_customers_tags_on_the_detail_page_reaches_wecom(page: Page, stack: Stack) -> None:
    # given
    customer_id, _, _ = _a_tagged_customer(stack)
    with core_db.session_scope() as session:
        follow_id, userid, external_userid = session.execute(
            select(Follow.id, Employee.userid, Customer.external_userid)
            .join(Employee, Employee.id == Follow.employee_id)
            .join(Customer, Customer.id == Follow.customer_id)
            .where(Follow.customer_id == customer_id, Follow.status == FollowStatus.ACTIVE)
            .limit(1)
        ).one()
        have = set(session.scalars(select(FollowTag.tag_id).where(FollowTag.follow_id == follow_id)))
        tag = next(t for t in session.scalars(select(Tag).order_by(Tag.id)) if t.id not in have)
        tag_name, tag_wecom_id = tag.name, tag.wecom_id
    signed_in(page, "operator", next_path=f"/customers/{customer_id}")
    expect(page.get_by_test_id("customer-profile")).to_be_visible()
    expect(page.get_by_test_id("timeline")).to_be_visible()
    screenshot(page, "customer-detail")
    card = page.locator(f"#follow-{follow_id}")
    # when
    card.get_by_test_id("edit-tags").click()
    card.locator(f"[data-testid=tag-checkbox][data-tag-name='{tag_name}']").check()
    card.get_by_test_id("save-tags").click()
    # then
    card = page.locator(f"#follow-{follow_id}")
    expect(card.get_by_test_id("follow-tag").filter(has_text=tag_name)).to_be_visible()
    expect(card.get_by_test_id("tag-sync")).to_have_attribute("data-status", "sent")
    follow = stack.emulator.state.follow(userid, external_userid)
    assert follow is not None and tag_wecom_id in follow.tag_ids
    screenshot(page, "customer-detail-tag-saved")


@pytest.mark.parametrize(
    ("path", "role", "main"),
    [
        ("/", "admin", "stat-customers-total"),
        ("/employees", "admin", "employee-row"),
        ("/tags", "admin", "tag-group"),
        ("/groups", "admin", "group-row"),
        ("/settings", "admin", "callback-settings"),
        ("/audit", "admin", "audit-row"),
        ("/customers", "staff", "customer-row"),
        ("/", "compliance", "stat-customers-total"),
    ],
)
def test_each_page_loads_with_its_main_content(page: Page, path: str, role: str, main: str) -> None:
    # given
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # when
    signed_in(page, role, next_path=path)
    # then
    expect(page.get_by_test_id(main).first).to_be_visible()
    assert errors == [], errors
    screenshot(page, f"page-{path.strip('/') or 'dashboard'}-{role}")


def test_a_group_opens_with_its_members(page: Page) -> None:
    # given
    signed_in(page, "operator", next_path="/groups")
    # when
    page.get_by_test_id("group-row").first.locator("a").first.click()
    # then
    expect(page.get_by_test_id("group-owner")).to_be_visible()
    expect(page.get_by_test_id("member-row").first).to_be_visible()
    screenshot(page, "group-detail")
