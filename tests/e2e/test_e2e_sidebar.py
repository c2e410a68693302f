"""The sidebar in a phone-sized browser, opened with a signed link as WeCom's toolbar would."""

from __future__ import annotations

from e2e_support import Stack, followed_customer, screenshot
from playwright.sync_api import Page, expect
from sqlalchemy import select

from siyu.core import db as core_db
from siyu.sidebar import links
from siyu.tags.models import FollowTag, Tag


def _open(phone: Page, stack: Stack, username: str, external_userid: str) -> None:
    link = links.SidebarLink(stack.corp_id, stack.employees[username], external_userid)
    phone.goto(links.link_url(link, stack.base_url))


def test_the_sidebar_shows_the_customer_and_edits_a_tag_in_wecom(phone: Page, stack: Stack) -> None:
    # given
    customer_id, follow_id, external_userid = followed_customer(stack, "staff")
    customer = stack.emulator.state.customers[external_userid]
    with core_db.session_scope() as session:
        have = set(session.scalars(select(FollowTag.tag_id).where(FollowTag.follow_id == follow_id)))
        tag = next(t for t in session.scalars(select(Tag).order_by(Tag.id)) if t.id not in have)
        tag_name, tag_wecom_id = tag.name, tag.wecom_id
    # when
    _open(phone, stack, "staff", external_userid)
    # then: profile, this follow, the timeline
    expect(phone.locator("body.sidebar")).to_be_visible()
    expect(phone.locator("#profile h1")).to_have_text(customer.name)
    card = phone.locator(f"#follow-{follow_id}")
    expect(card.locator(".pill.ok")).to_have_text("我")
    expect(phone.locator("#timeline h2")).to_have_text("最近动态")
    screenshot(phone, "sidebar")
    # when: tick one more tag and save
    card.locator("summary").click()
    card.get_by_label(tag_name, exact=True).check()
    card.get_by_role("button", name="保存标签").click()
    # then
    card = phone.locator(f"#follow-{follow_id}")
    expect(card.get_by_role("status")).to_have_text("标签已保存，正在同步到企业微信。")
    expect(card.locator(".tags .tag", has_text=tag_name)).to_be_visible()
    follow = stack.emulator.state.follow(stack.employees["staff"], external_userid)
    assert follow is not None and tag_wecom_id in follow.tag_ids
    screenshot(phone, "sidebar-tag-saved")
    assert customer_id > 0


def test_a_customer_out_of_scope_shows_a_message(phone: Page, stack: Stack) -> None:
    # given: a customer the plain staff member does not follow
    state = stack.emulator.state
    mine = {f.external_userid for f in state.follow_lists[stack.employees["staff"]].items}
    stranger = sorted(set(state.customers) - mine)[0]
    # when
    _open(phone, stack, "staff", stranger)
    # then
    expect(phone.get_by_role("alert")).to_contain_text("该客户不在你的可见范围内。")
    expect(phone.locator("body")).not_to_contain_text(state.customers[stranger].name)
    screenshot(phone, "sidebar-out-of-scope")
