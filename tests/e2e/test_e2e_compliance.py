"""Browser: a compliance officer sets the reach policy and checks a message; then customers delete the employee
soon after a broadcast (real del_follow_user callbacks from the emulator), the harassment budget shows the
employee paused, and the officer lifts the pause."""

from __future__ import annotations

from datetime import timedelta

from e2e_support import Stack, followed_customer, screenshot, signed_in
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from siyu.broadcasts.models import Broadcast, BroadcastChunk, BroadcastRecipient
from siyu.contacts.models import Customer, Employee, Follow
from siyu.core import db as core_db
from siyu.core.clock import now_utc

AUDIENCE = 20


def _sent_broadcast(stack: Stack) -> tuple[int, str, str, list[str]]:
    """A broadcast WeCom accepted an hour ago from the employee with the most customers, delivered to 20 of
    them: (employee id, userid, name, the customers' external_userids)."""
    with core_db.session_scope() as s:
        employee_id, userid, name = s.execute(
            select(Employee.id, Employee.userid, Employee.name)
            .join(Follow, Follow.employee_id == Employee.id)
            .where(Follow.status == "active", Employee.corp_id == stack.corp_id)
            .group_by(Employee.id, Employee.userid, Employee.name)
            .order_by(func.count().desc(), Employee.id)
            .limit(1)
        ).one()
        customers = s.execute(
            select(Customer.id, Customer.external_userid)
            .join(Follow, Follow.customer_id == Customer.id)
            .where(Follow.employee_id == employee_id, Follow.status == "active")
            .order_by(Customer.id)
            .limit(AUDIENCE)
        ).all()
        sent_at = now_utc() - timedelta(hours=1)
        broadcast = Broadcast(
            corp_id=stack.corp_id, name="周末上新", status="sent", sent_at=sent_at, send_day=sent_at.date()
        )
        s.add(broadcast)
        s.flush()
        chunk = BroadcastChunk(
            corp_id=stack.corp_id,
            broadcast_id=broadcast.id,
            employee_id=employee_id,
            chunk_no=1,
            status="sent",
            size=len(customers),
            first_position=1,
            last_position=len(customers),
            sent_at=sent_at,
        )
        s.add(chunk)
        s.add_all(
            BroadcastRecipient(
                corp_id=stack.corp_id,
                broadcast_id=broadcast.id,
                position=n,
                customer_id=c,
                employee_id=employee_id,
                send_day=sent_at.date(),
                status="sent",
            )
            for n, (c, _) in enumerate(customers, start=1)
        )
    return employee_id, userid, name, [e for _, e in customers]


def test_set_the_policy_check_a_message_see_an_employee_paused_and_lift_it(page: Page, stack: Stack) -> None:
    # given a compliance officer on the policy page (Chinese by default)
    signed_in(page, "compliance", next_path="/compliance/policy")
    expect(page.locator("h1")).to_have_text("合规策略")
    form = page.get_by_test_id("policy-form")
    # when they set thresholds for a small test (warn 500, pause 1,000 per 10,000; verdicts from 10 messages)
    form.get_by_test_id("sensitive-words").fill("秒杀")
    form.get_by_test_id("warn-per-10k").fill("500")
    form.get_by_test_id("pause-per-10k").fill("1000")
    form.get_by_test_id("min-messages").fill("10")
    form.get_by_test_id("policy-save").click()
    # then the policy is saved
    expect(page.get_by_test_id("policy-saved")).to_be_visible()
    expect(page.get_by_test_id("sensitive-words")).to_have_value("秒杀")
    # when they check a message
    page.get_by_test_id("check-text").fill("限时秒杀！转发朋友圈领取红包 https://evil.example.cn/x")
    page.get_by_test_id("check-submit").click()
    # then each finding is highlighted in the text and listed
    result = page.get_by_test_id("check-highlighted")
    expect(result.locator("mark.sensitive_word")).to_have_text("秒杀")
    expect(result.locator("mark.induced_sharing")).to_have_text("转发朋友圈领取")
    expect(result.locator("mark.link")).to_have_text("https://evil.example.cn/x")
    expect(page.get_by_test_id("finding")).to_have_count(3)
    screenshot(page, "compliance-policy")

    # given a broadcast delivered to 20 customers an hour ago
    employee_id, userid, name, customers = _sent_broadcast(stack)
    # when two of them delete the employee in WeChat (the emulator sends the real callbacks)
    for external_userid in customers[:2]:
        stack.emulator.actors.customer_delete_employee(userid, external_userid)
    # then the budget shows the employee paused at 1,000 per 10,000, with the deletions as signals
    page.goto("/compliance/budget")
    expect(page.locator("h1")).to_have_text("骚扰预算")
    row = page.get_by_test_id("budget-employees").locator(f"[data-target='{employee_id}']")
    expect(row).to_have_attribute("data-status", "paused")
    expect(row.get_by_test_id("messages")).to_have_text(str(AUDIENCE))
    expect(row.get_by_test_id("rate")).to_have_text(f"{2 * 10_000 / AUDIENCE:.1f}")
    expect(page.get_by_test_id("signal-row").filter(has_text="收到消息后删除员工")).to_have_count(2)
    expect(page.get_by_test_id("corp-gauge")).to_have_attribute("data-ready", "1")
    expect(page.get_by_test_id("employee-chart")).to_have_attribute("data-ready", "1")
    pause = page.get_by_test_id("pause-row").filter(has_text=name)
    expect(pause).to_be_visible()
    screenshot(page, "compliance-budget")
    # when the officer lifts the pause
    pause.get_by_test_id("lift-pause").click()
    # then the employee may send again
    expect(page.get_by_test_id("pause-row").filter(has_text=name)).to_have_count(0)
    expect(row).not_to_have_attribute("data-status", "paused")


def test_staff_opt_a_customer_out_on_the_customer_page(page: Page, stack: Stack) -> None:
    # given a staff member on the page of a customer they follow
    customer_id, _, _ = followed_customer(stack, "staff")
    signed_in(page, "staff", next_path=f"/customers/{customer_id}")
    card = page.get_by_test_id("opt-out-card")
    expect(card).to_have_attribute("data-opted-out", "no")
    # when they record the customer's opt-out with a note
    card.get_by_test_id("opt-out-note").fill("电话里说不要再发活动")
    card.get_by_test_id("opt-out").click()
    # then the card says so, and it holds after a reload
    expect(page.get_by_test_id("opt-out-card")).to_have_attribute("data-opted-out", "yes")
    page.reload()
    expect(page.get_by_test_id("opt-out-status")).to_have_text("已退订")
    expect(page.get_by_test_id("opt-out-card")).to_contain_text("电话里说不要再发活动")
