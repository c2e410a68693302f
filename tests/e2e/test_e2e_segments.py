"""Browser: an operator builds "tag A and (B or C) and not D, added through channel X" in the 客户分群 builder,
sees the live count equal the plain SQL count, saves the segment and takes a snapshot of it."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from e2e_support import Stack, screenshot, signed_in
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import func, select, update

from siyu.acquisition.models import Channel
from siyu.contacts.models import Follow
from siyu.core import db as core_db
from siyu.segments import service
from siyu.segments.changes import mark_dirty
from siyu.tags.models import FollowTag


def _rule(a: int, b: int, c: int, d: int, channel: int) -> dict[str, Any]:
    """The rule the builder steps below produce."""
    return {
        "version": 1,
        "rule": {
            "and": [
                {"tags": {"any": [a]}},
                {"or": [{"tags": {"any": [b]}}, {"tags": {"any": [c]}}]},
                {"not": {"or": [{"tags": {"any": [d]}}]}},
                {"channel": {"channels": [channel]}},
            ]
        },
    }


def _given_a_channel_and_tags(stack: Stack) -> tuple[dict[str, int], int]:
    """Channel X brings two thirds of the customers (set like attribution does); A–D the most telling tags."""
    with core_db.session_scope() as session:
        channel = Channel(corp_id=stack.corp_id, name="地铁海报X", state="ch_e2e_segments")
        session.add(channel)
        session.flush()
        attributed = session.execute(
            update(Follow)
            .where(Follow.corp_id == stack.corp_id, Follow.customer_id % 3 != 0)
            .values(channel_id=channel.id)
            .returning(Follow.customer_id)
            .execution_options(synchronize_session=False)
        ).scalars()
        mark_dirty(session, stack.corp_id, attributed)
        popular = session.execute(
            select(FollowTag.tag_id)
            .where(FollowTag.corp_id == stack.corp_id)
            .group_by(FollowTag.tag_id)
            .order_by(func.count().desc(), FollowTag.tag_id)
            .limit(7)
        ).scalars()
        tags = list(popular)
        channel_id = channel.id
    with core_db.session_scope() as session:
        for a, b, c, d in itertools.permutations(tags, 4):
            picked = {"A": a, "B": b, "C": c, "D": d}
            count = service.sql_count(session, corp_id=stack.corp_id, rule=_rule(a, b, c, d, channel_id))
            if count > 0:
                return picked, channel_id
    raise AssertionError("the seeded corp has no tag combination with members")


def _condition(group: Locator, index: int) -> Locator:
    return group.locator(":scope > .seg-items > [data-testid=seg-cond]").nth(index)


def test_build_a_segment_see_the_exact_count_save_it_and_snapshot_it(page: Page, stack: Stack) -> None:
    tags, channel_id = _given_a_channel_and_tags(stack)
    with core_db.session_scope() as session:
        rule = _rule(tags["A"], tags["B"], tags["C"], tags["D"], channel_id)
        expected = service.sql_count(session, corp_id=stack.corp_id, rule=rule)
    # given an operator on the segments page
    signed_in(page, "operator", next_path="/segments")
    builder = page.get_by_test_id("segment-builder")
    root = builder.locator(":scope > [data-testid=seg-group]")
    # when they add "has tag A"
    root.locator(":scope > .seg-group-foot > [data-testid=seg-add-condition]").click()
    _condition(root, 0).get_by_test_id("seg-tags").select_option([str(tags["A"])])
    # and a group "B or C"
    root.locator(":scope > .seg-group-foot > [data-testid=seg-add-group]").click()
    either = root.locator(":scope > .seg-items > [data-testid=seg-group]").nth(0)
    expect(either.get_by_test_id("seg-group-op")).to_have_value("or")
    _condition(either, 0).get_by_test_id("seg-tags").select_option([str(tags["B"])])
    either.get_by_test_id("seg-add-condition").click()
    _condition(either, 1).get_by_test_id("seg-tags").select_option([str(tags["C"])])
    # and an excluded group "D"
    root.locator(":scope > .seg-group-foot > [data-testid=seg-add-group]").click()
    excluded = root.locator(":scope > .seg-items > [data-testid=seg-group]").nth(1)
    excluded.get_by_test_id("seg-group-not").check()
    _condition(excluded, 0).get_by_test_id("seg-tags").select_option([str(tags["D"])])
    # and "added through channel X"
    root.locator(":scope > .seg-group-foot > [data-testid=seg-add-condition]").click()
    _condition(root, 1).get_by_test_id("seg-cond-type").select_option("channel")
    _condition(root, 1).get_by_test_id("seg-channels").select_option([str(channel_id)])
    # then the live count is the plain SQL count, and the builder wrote exactly the rule
    expect(page.get_by_test_id("segment-count")).to_have_attribute("data-count", str(expected))
    assert page.get_by_test_id("segment-rule").input_value() == _json(rule)
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


def _json(rule: dict[str, Any]) -> str:
    """The rule as the builder's script writes it (JSON.stringify: compact)."""
    return json.dumps(rule, separators=(",", ":"), ensure_ascii=False)
