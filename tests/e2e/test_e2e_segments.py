"""Browser: an operator builds "tag A and (B or C) and not D, added through channel X" in the 客户分群 builder,
sees the live count equal the plain SQL count, saves the segment and takes a snapshot of it."""

from __future__ import annotations

import re

from e2e_support import Stack, screenshot, signed_in
from playwright.sync_api import Page, expect
from segment_steps import build_the_rule, given_a_channel_and_tags, reach_rule, rule_json

from siyu.core import db as core_db
from siyu.segments import service


def test_build_a_segment_see_the_exact_count_save_it_and_snapshot_it(page: Page, stack: Stack) -> None:
    tags, channel_id = given_a_channel_and_tags(stack)
    with core_db.session_scope() as session:
        rule = reach_rule(tags["A"], tags["B"], tags["C"], tags["D"], channel_id)
        expected = service.sql_count(session, corp_id=stack.corp_id, rule=rule)
    # given an operator on the segments page
    signed_in(page, "operator", next_path="/segments")
    # when they build "tag A and (B or C) and not D, added through channel X"
    build_the_rule(page, tags, channel_id)
    # then the live count is the plain SQL count, and the builder wrote exactly the rule
    expect(page.get_by_test_id("segment-count")).to_have_attribute("data-count", str(expected))
    assert page.get_by_test_id("segment-rule").input_value() == rule_json(rule)
    expect(page.get_by_test_id("segment-sample-row").first).to_be_visible()
    screenshot(page, "segments-builder")
    # when they save it
    page.get_by_test_id("segment-name").fill("A且(B或C)非D·海报X")
    page.get_by_test_id("segment-save").click()
    page.wait_for_url(re.compile(r"/segments/\d+$"))
    expect(page.get_by_test_id("segment-title")).to_have_text("A且(B或C)非D·海报X")
    expect(page.get_by_test_id("segment-count")).to_have_attribute("data-count", str(expected))
    # and take a snapshot
    page.get_by_test_id("snapshot-name").fill("周一推送名单")
    page.get_by_test_id("snapshot-submit").click()
    row = page.get_by_test_id("snapshot-row").filter(has_text="周一推送名单")
    expect(row.get_by_test_id("snapshot-count")).to_have_text(f"{expected:,}")
    screenshot(page, "segment-detail")
    # and the list shows the saved segment with its count
    page.goto("/segments")
    saved = page.get_by_test_id("segment-row").filter(has_text="A且(B或C)非D·海报X")
    expect(saved.get_by_test_id("segment-row-count")).to_have_text(f"{expected:,}")
