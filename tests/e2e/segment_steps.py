"""Browser steps shared by the segment tests: the data behind "tag A and (B or C) and not D, added through
channel X", and building that rule in the 客户分群 builder."""

from __future__ import annotations

import itertools
import json
from typing import Any

from e2e_support import Stack
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import func, select, update

from siyu.acquisition.models import Channel
from siyu.contacts.models import Follow
from siyu.core import db as core_db
from siyu.segments import service
from siyu.segments.changes import mark_dirty
from siyu.tags.models import FollowTag


def reach_rule(a: int, b: int, c: int, d: int, channel: int) -> dict[str, Any]:
    """The rule `build_the_rule` produces."""
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


def given_a_channel_and_tags(stack: Stack) -> tuple[dict[str, int], int]:
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
            count = service.sql_count(session, corp_id=stack.corp_id, rule=reach_rule(a, b, c, d, channel_id))
            if count > 0:
                return picked, channel_id
    raise AssertionError("the seeded corp has no tag combination with members")


def _condition(group: Locator, index: int) -> Locator:
    return group.locator(":scope > .seg-items > [data-testid=seg-cond]").nth(index)


def build_the_rule(page: Page, tags: dict[str, int], channel_id: int) -> None:
    """On the segments page: "has tag A", a group "B or C", an excluded group "D", "added through channel X"."""
    builder = page.get_by_test_id("segment-builder")
    root = builder.locator(":scope > [data-testid=seg-group]")
    root.locator(":scope > .seg-group-foot > [data-testid=seg-add-condition]").click()
    _condition(root, 0).get_by_test_id("seg-tags").select_option([str(tags["A"])])
    root.locator(":scope > .seg-group-foot > [data-testid=seg-add-group]").click()
    either = root.locator(":scope > .seg-items > [data-testid=seg-group]").nth(0)
    expect(either.get_by_test_id("seg-group-op")).to_have_value("or")
    _condition(either, 0).get_by_test_id("seg-tags").select_option([str(tags["B"])])
    either.get_by_test_id("seg-add-condition").click()
    _condition(either, 1).get_by_test_id("seg-tags").select_option([str(tags["C"])])
    root.locator(":scope > .seg-group-foot > [data-testid=seg-add-group]").click()
    excluded = root.locator(":scope > .seg-items > [data-testid=seg-group]").nth(1)
    excluded.get_by_test_id("seg-group-not").check()
    _condition(excluded, 0).get_by_test_id("seg-tags").select_option([str(tags["D"])])
    root.locator(":scope > .seg-group-foot > [data-testid=seg-add-condition]").click()
    _condition(root, 1).get_by_test_id("seg-cond-type").select_option("channel")
    _condition(root, 1).get_by_test_id("seg-channels").select_option([str(channel_id)])


def rule_json(rule: dict[str, Any]) -> str:
    """The rule as the builder's script writes it (JSON.stringify: compact)."""
    return json.dumps(rule, separators=(",", ":"), ensure_ascii=False)
