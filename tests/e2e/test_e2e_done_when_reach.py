"""Browser: issue 5's "Done when", end to end. An operator builds "tag A and (B or C) and not D, added through
channel X" and sees its count at once, saves it, goes from the segment to a broadcast to it, plans it and sees
exactly who is excluded and why, sends it; the employees confirm in the emulator and the results come in; the
emulator's customers complain, and once the compliance officer's thresholds are crossed the harassment budget
shows the employee paused."""

from __future__ import annotations

import re
from typing import Any

from e2e_support import Stack, no_quiet_hours, plan_broadcast, screenshot, send_broadcast, signed_in
from playwright.sync_api import Page, expect
from segment_steps import build_the_rule, given_a_channel_and_tags, reach_rule
from sqlalchemy import ColumnElement, func, select

from siyu.broadcasts.models import BroadcastChunk, BroadcastRecipient, RecipientStatus
from siyu.compliance.models import ComplaintSignal, ReachPause, SignalKind
from siyu.contacts.models import Employee, Follow
from siyu.core import db as core_db
from siyu.demo_reach import ReactionFeed
from siyu.segments import service

SEGMENT = "A且(B或C)非D·海报X"
# The compliance officer's thresholds for a small test: warn at 500 and pause at 1,000 signals per 10,000
# messages, judged from the first message (the segment holds a handful of the e2e corp's 400 customers, so
# each sender has only a message or two).
WARN, PAUSE, MIN_MESSAGES = 500, 1000, 1


def _members_with_a_follow(stack: Stack, rule: dict[str, Any]) -> list[int]:
    with core_db.session_scope() as session:
        members = list(service.sql_customer_ids(session, corp_id=stack.corp_id, rule=rule))
        followed = session.scalars(
            select(Follow.customer_id)
            .where(Follow.corp_id == stack.corp_id, Follow.customer_id.in_(members), Follow.status == "active")
            .distinct()
            .order_by(Follow.customer_id)
        )
        return list(followed)


def _recipients_by(broadcast_id: int, column: ColumnElement[Any], *where: ColumnElement[bool]) -> dict[Any, int]:
    """The broadcast's recipient rows counted by `column`."""
    with core_db.session_scope() as session:
        rows = session.execute(
            select(column, func.count()).where(BroadcastRecipient.broadcast_id == broadcast_id, *where).group_by(column)
        )
        return {key: n for key, n in rows}


def _confirm_every_task(stack: Stack, broadcast_id: int) -> int:
    """Each sender confirms their mass-message task in WeCom (the emulator); returns how many did."""
    with core_db.session_scope() as session:
        tasks = session.execute(
            select(BroadcastChunk.msgid, Employee.userid)
            .join(Employee, Employee.id == BroadcastChunk.employee_id)
            .where(BroadcastChunk.broadcast_id == broadcast_id, BroadcastChunk.msgid != "")
        ).all()
    for msgid, userid in tasks:
        stack.emulator.confirm_mass(msgid, userid)
    return len(tasks)


def _complaints_by_employee(broadcast_id: int) -> dict[int, int]:
    with core_db.session_scope() as session:
        rows = session.execute(
            select(ComplaintSignal.employee_id, func.count())
            .where(ComplaintSignal.broadcast_id == broadcast_id, ComplaintSignal.kind == SignalKind.COMPLAINT)
            .group_by(ComplaintSignal.employee_id)
        )
        return {int(e): n for e, n in rows if e is not None}


def _paused_employees(stack: Stack) -> set[int]:
    with core_db.session_scope() as session:
        paused = session.scalars(
            select(ReachPause.target_id).where(
                ReachPause.corp_id == stack.corp_id, ReachPause.scope == "employee", ReachPause.lifted_at.is_(None)
            )
        )
        return set(paused)


def _over_the_line(messages: dict[int, int], complaints: dict[int, int]) -> set[int]:
    """Employees whose complaint rate crosses the pause line with enough messages to judge."""
    return {e for e, n in messages.items() if n >= MIN_MESSAGES and complaints.get(e, 0) * 10_000 / n >= PAUSE}


def test_build_plan_send_see_results_and_an_employee_paused(page: Page, stack: Stack) -> None:
    # given channel X and tags A–D, no quiet hours, and two customers of the segment-to-be: one opted out,
    # one already holding today's only WeCom slot (a broadcast planned to them alone)
    no_quiet_hours(stack)
    tags, channel_id = given_a_channel_and_tags(stack)
    rule = reach_rule(tags["A"], tags["B"], tags["C"], tags["D"], channel_id)
    with core_db.session_scope() as session:
        expected = service.sql_count(session, corp_id=stack.corp_id, rule=rule)
    members = _members_with_a_follow(stack, rule)
    assert len(members) >= 4, "the seeded corp gives the segment too few customers"
    opted, capped = members[0], members[1]
    signed_in(page, "operator", next_path=f"/customers/{opted}")
    page.get_by_test_id("opt-out-card").get_by_test_id("opt-out").click()
    expect(page.get_by_test_id("opt-out-card")).to_have_attribute("data-opted-out", "yes")
    plan_broadcast(page, "预占额度", "customer_ids", str(capped), "今日到店礼")
    expect(page.get_by_test_id("plan-eligible")).to_have_text("1")

    # when the operator builds "tag A and (B or C) and not D, added through channel X" in 客户分群
    page.goto("/segments")
    build_the_rule(page, tags, channel_id)
    # then they see the count at once, the plain SQL count
    expect(page.get_by_test_id("segment-count")).to_have_attribute("data-count", str(expected))
    # when they save it
    page.get_by_test_id("segment-name").fill(SEGMENT)
    page.get_by_test_id("segment-save").click()
    page.wait_for_url(re.compile(r"/segments/\d+$"))
    segment_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("segment-count")).to_have_attribute("data-count", str(expected))

    # when they go from the segment to a broadcast to it
    page.get_by_test_id("segment-broadcast").click()
    page.wait_for_url(re.compile(rf"/broadcasts/new\?segment_id={segment_id}$"))
    form = page.get_by_test_id("broadcast-form")
    # then the saved segment is the audience
    expect(form.get_by_test_id("source-segment_id")).to_be_checked()
    expect(form.get_by_test_id("audience-segment")).to_have_value(segment_id)
    form.get_by_test_id("audience-count-button").click()
    expect(page.get_by_test_id("audience-count-value")).to_have_attribute("data-count", str(expected))
    # when they fill the text and plan it
    form.get_by_test_id("broadcast-name").fill("分群群发·周末会员日")
    form.get_by_test_id("broadcast-text").fill("周末会员日，到店领取小礼品")
    expect(page.get_by_test_id("check-clean")).to_be_visible()
    screenshot(page, "done-when-compose")
    form.get_by_test_id("broadcast-plan").click()
    page.wait_for_url(re.compile(r"/broadcasts/\d+/plan$"))
    broadcast_id = int(page.url.rsplit("/", 2)[1])

    # then the plan shows exactly who is excluded and why, as the frozen recipient rows record it
    excluded = _recipients_by(broadcast_id, BroadcastRecipient.reason, BroadcastRecipient.status == "excluded")
    assert excluded.get("opted_out") == 1 and excluded.get("platform_cap") == 1, excluded
    expect(page.get_by_test_id("plan-candidates")).to_have_text(str(expected))
    expect(page.get_by_test_id("excluded-row")).to_have_count(len(excluded))
    for reason, n in excluded.items():
        expect(page.locator(f"[data-testid=excluded-row][data-reason={reason}] td.num")).to_have_text(str(n))
    eligible = _recipients_by(broadcast_id, BroadcastRecipient.status)[RecipientStatus.PENDING]
    expect(page.get_by_test_id("plan-eligible")).to_have_text(str(eligible))
    for reason, customer_id in (("opted_out", opted), ("platform_cap", capped)):
        page.locator(f"[data-testid=reason-filter][data-reason={reason}]").click()
        expect(page.get_by_test_id("recipient-row")).to_have_count(1)
        expect(page.get_by_test_id("recipient-row")).to_have_attribute("data-customer-id", str(customer_id))
    screenshot(page, "done-when-plan")

    # given customers who complain about every message they get, and employees who confirm only when told
    stack.emulator.configure_mass(confirm_probability=0, complaint=1, reply=0, delete=0, fatigue=0, reaction_delay=0)

    # when the operator sends it
    send_broadcast(page, broadcast_id)
    # and the employees confirm in WeCom, and the operator fetches the results
    assert _confirm_every_task(stack, broadcast_id) > 0
    page.get_by_test_id("fetch-results").click()
    page.wait_for_url(re.compile(rf"/broadcasts/{broadcast_id}\?notice=fetching$"))
    # then the results are in, as the recipient rows record them
    expect(page.get_by_test_id("results-final")).to_be_visible()
    outcomes = _recipients_by(broadcast_id, BroadcastRecipient.status, BroadcastRecipient.status != "excluded")
    assert outcomes.get(RecipientStatus.SENT, 0) > 0, outcomes
    assert sum(outcomes.values()) == eligible
    for status in ("sent", "not_sent", "not_friend", "quota", "pending", "cancelled"):
        expect(page.get_by_test_id(f"count-{status}")).to_have_text(str(outcomes.get(status, 0)))
    screenshot(page, "done-when-results")

    # when the customers' complaints are recorded (as the demo does), and a compliance officer lowers the
    # thresholds and runs the complaint monitor
    assert ReactionFeed(stack.emulator, stack.corp_id).step() > 0
    messages = {
        int(e): n
        for e, n in _recipients_by(
            broadcast_id, BroadcastRecipient.employee_id, BroadcastRecipient.status == "sent"
        ).items()
        if e is not None
    }
    complaints = _complaints_by_employee(broadcast_id)
    crossing = _over_the_line(messages, complaints)
    assert crossing, f"no employee crosses the line: messages {messages}, complaints {complaints}"
    assert not _paused_employees(stack), "the default thresholds (from 50 messages) paused someone already"
    signed_in(page, "compliance", next_path="/compliance/policy")
    policy = page.get_by_test_id("policy-form")
    policy.get_by_test_id("warn-per-10k").fill(str(WARN))
    policy.get_by_test_id("pause-per-10k").fill(str(PAUSE))
    policy.get_by_test_id("min-messages").fill(str(MIN_MESSAGES))
    policy.get_by_test_id("policy-save").click()
    expect(page.get_by_test_id("policy-saved")).to_be_visible()
    page.goto("/compliance/budget")
    page.get_by_test_id("evaluate-now").click()
    page.wait_for_url(re.compile(r"/compliance/budget$"))

    # then the harassment budget shows exactly the employees over the line paused, as reach_pause records them
    assert _paused_employees(stack) == crossing
    worst = max(crossing, key=lambda e: (complaints.get(e, 0), messages[e]))
    row = page.get_by_test_id("budget-employees").locator(f"[data-target='{worst}']")
    expect(row).to_have_attribute("data-status", "paused")
    expect(row.get_by_test_id("messages")).to_have_text(str(messages[worst]))
    expect(row.get_by_test_id("rate")).to_have_text(f"{complaints[worst] * 10_000 / messages[worst]:.1f}")
    pauses = page.locator("[data-testid=pause-row][data-scope=employee]")
    expect(pauses).to_have_count(len(crossing))
    assert {int(t) for t in pauses.evaluate_all("rows => rows.map(r => r.dataset.target)")} == crossing
    screenshot(page, "done-when-budget")
