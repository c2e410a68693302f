"""The rule language: what parses, and the exact error for everything that does not."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from siyu.segments.rules import (
    And,
    CondAdded,
    CondChannel,
    CondCorpName,
    CondCustomerType,
    CondFollowStatus,
    CondGender,
    CondInGroup,
    CondOwner,
    CondTags,
    Not,
    Or,
    RuleError,
    iter_conditions,
    parse_rule,
)


def rule(node: Any) -> dict[str, Any]:
    return {"version": 1, "rule": node}


def test_parses_every_condition_into_a_typed_tree() -> None:
    # given the demo's rule and one of every other condition
    data = rule(
        {
            "and": [
                {"tags": {"any": [1]}},
                {"or": [{"tags": {"any": [2]}}, {"tags": {"any": [3]}}]},
                {"not": {"tags": {"any": [4]}}},
                {"channel": {"channels": [7]}},
                {"tags": {"all": [5, 5, 6], "employee": "zhangsan"}},
                {"gender": [2, 1]},
                {"customer_type": [2]},
                {"corp_name": {"contains": "银行"}},
                {"owner": {"employees": ["lisi"], "departments": [3]}},
                {"added": {"from": "2024-01-01", "to": "2024-01-31"}},
                {"follow_status": "lost"},
                {"in_group": {"chat_ids": []}},
            ]
        }
    )
    # when
    parsed = parse_rule(data)
    # then
    root = parsed.root
    assert isinstance(root, And)
    assert isinstance(root.items[1], Or) and isinstance(root.items[2], Not)
    assert [type(c) for c in iter_conditions(root)] == [
        CondTags,
        CondTags,
        CondTags,
        CondTags,
        CondChannel,
        CondTags,
        CondGender,
        CondCustomerType,
        CondCorpName,
        CondOwner,
        CondAdded,
        CondFollowStatus,
        CondInGroup,
    ]
    tags = root.items[4]
    assert isinstance(tags, CondTags)
    assert (tags.mode, tags.tag_ids, tags.employee) == ("all", (5, 6), "zhangsan")
    added = root.items[9]
    assert isinstance(added, CondAdded) and (added.from_, added.to) == (date(2024, 1, 1), date(2024, 1, 31))


def test_round_trips_through_json() -> None:
    data = rule({"or": [{"gender": [1, 2]}, {"not": {"added": {"to": "2024-02-01"}}}, {"in_group": {}}]})
    assert parse_rule(data).to_json() == data
    assert parse_rule(parse_rule(data).to_json()) == parse_rule(data)


@pytest.mark.parametrize(
    "node",
    [
        {"field": {"key": "city", "in": ["上海", "北京"]}},  # sorted, as parsing keeps them
        {"field": {"key": "city", "equals": ""}},
        {"field": {"key": "vip", "exists": False}},
        {"field": {"key": "note", "contains": "VIP"}},
        {"opted_out": True},
        {"last_broadcast": {"before": "2024-03-01"}},
        {"last_broadcast": {"after": "2024-03-01"}},
        {"last_broadcast": {"within_days": 7}},
        {"last_broadcast": {"never": True}},
    ],
)
def test_new_conditions_round_trip(node: dict[str, Any]) -> None:
    data = rule({"not": node})
    assert parse_rule(data).to_json() == data
    assert parse_rule(parse_rule(data).to_json()) == parse_rule(data)


def test_accepts_a_json_string() -> None:
    assert parse_rule('{"version": 1, "rule": {"follow_status": "active"}}').root == CondFollowStatus(status="active")


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"gender": [1]}
    for _ in range(levels):
        node = {"not": node}
    return node


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{", "$: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
        ([], "$: must be an object with version and rule"),
        ({"rule": {"gender": [1]}}, "version: required"),
        ({"version": 2, "rule": {"gender": [1]}}, "version: unsupported version 2 (expected 1)"),
        ({"version": True, "rule": {"gender": [1]}}, "version: unsupported version true (expected 1)"),
        ({"version": 1}, "rule: required"),
        ({"version": 1, "rule": {}, "name": "x"}, "name: unknown key"),
        (
            rule({}),
            "rule: must be an object with exactly one key (and, or, not, tags, corp_name, owner, channel, added, "
            "in_group, field, last_broadcast, gender, customer_type, follow_status, opted_out)",
        ),
        (
            rule({"gender": [1], "customer_type": [1]}),
            "rule: must be an object with exactly one key (and, or, not, tags, corp_name, owner, channel, added, "
            "in_group, field, last_broadcast, gender, customer_type, follow_status, opted_out)",
        ),
        (rule({"age": 3}), "rule.age: unknown condition"),
        (rule({"and": []}), "rule.and: must be a non-empty list of rules"),
        (rule({"or": {"gender": [1]}}), "rule.or: must be a non-empty list of rules"),
        (
            rule({"and": [{"gender": [1]}, {"gender": [1]}, {"tags": {"any": []}}]}),
            "rule.and[2].tags.any: must be a non-empty list of tag ids",
        ),
        (rule({"tags": {"any": ["1"]}}), "rule.tags.any: must be a non-empty list of tag ids"),
        (rule({"tags": {"any": [True]}}), "rule.tags.any: must be a non-empty list of tag ids"),
        (rule({"tags": {"any": [1], "all": [2]}}), "rule.tags: must have exactly one of any, all, none"),
        (rule({"tags": {"employee": "u"}}), "rule.tags: must have exactly one of any, all, none"),
        (rule({"tags": {"any": [1], "employee": ""}}), "rule.tags.employee: must be a non-empty userid"),
        (rule({"tags": {"any": [1], "match": "x"}}), "rule.tags.match: unknown key"),
        (rule({"tags": [1]}), "rule.tags: must be an object"),
        (rule({"gender": []}), "rule.gender: must be a non-empty list of genders (0, 1, 2)"),
        (rule({"gender": [3]}), "rule.gender: must be a non-empty list of genders (0, 1, 2)"),
        (rule({"customer_type": [0]}), "rule.customer_type: must be a non-empty list of customer types (1, 2)"),
        (rule({"corp_name": {"contains": " "}}), "rule.corp_name.contains: must be a non-empty string"),
        (rule({"corp_name": {}}), "rule.corp_name.contains: Field required"),
        (rule({"owner": {}}), "rule.owner: needs employees or departments"),
        (rule({"owner": {"employees": [1]}}), "rule.owner.employees: must be a list of userids"),
        (rule({"owner": {"departments": ["1"]}}), "rule.owner.departments: must be a list of department ids"),
        (rule({"channel": {"channels": []}}), "rule.channel: needs channels or groups"),
        (rule({"channel": {"groups": "3"}}), "rule.channel.groups: must be a list of channel group ids"),
        (rule({"added": {}}), "rule.added: needs from or to"),
        (rule({"added": {"from": "2024-1-1"}}), "rule.added.from: must be a date YYYY-MM-DD"),
        (rule({"added": {"to": "2024-02-30"}}), "rule.added.to: must be a date YYYY-MM-DD"),
        (rule({"added": {"from": "2024-02-02", "to": "2024-02-01"}}), "rule.added: from is after to"),
        (rule({"follow_status": "gone"}), "rule.follow_status: must be one of 'active' or 'lost'"),
        (rule({"in_group": {"chat_ids": [""]}}), "rule.in_group.chat_ids: must be a list of chat ids"),
        (rule({"not": {"in_group": {"chats": []}}}), "rule.not.in_group.chats: unknown key"),
        (rule({"field": {"equals": "x"}}), "rule.field.key: Field required"),
        (rule({"field": {"key": "city"}}), "rule.field: must have exactly one of equals, in, contains, exists"),
        (
            rule({"field": {"key": "city", "equals": "a", "in": ["a"]}}),
            "rule.field: must have exactly one of equals, in, contains, exists",
        ),
        (rule({"field": {"key": "city", "in": []}}), "rule.field.in: must be a non-empty list of strings"),
        (rule({"field": {"key": "city", "in_": ["a"]}}), "rule.field.in_: unknown key"),
        (rule({"field": {"key": "city", "exists": "yes"}}), "rule.field.exists: must be true or false (exists)"),
        (rule({"field": {"key": " ", "exists": True}}), "rule.field.key: must be a non-empty field key"),
        (rule({"field": {"key": "k" * 65, "exists": True}}), "rule.field: key is longer than 64 characters"),
        (rule({"opted_out": "no"}), "rule.opted_out: must be true or false (opted out)"),
        (
            rule({"last_broadcast": {}}),
            "rule.last_broadcast: must have exactly one of before, after, within_days, never",
        ),
        (rule({"last_broadcast": {"before": "2024-13-01"}}), "rule.last_broadcast.before: must be a date YYYY-MM-DD"),
        (
            rule({"last_broadcast": {"within_days": 0}}),
            "rule.last_broadcast.within_days: must be a whole number of days from 1 to 3660",
        ),
        (
            rule({"last_broadcast": {"within_days": True}}),
            "rule.last_broadcast.within_days: must be a whole number of days from 1 to 3660",
        ),
        (
            rule({"last_broadcast": {"never": False}}),
            "rule.last_broadcast: never must be true (use not for the opposite)",
        ),
        (
            rule({"last_broadcast": {"after": "2024-01-01", "never": True}}),
            "rule.last_broadcast: must have exactly one of before, after, within_days, never",
        ),
        (rule(_deep(10)), "rule.not.not.not.not.not.not.not.not.not.not: nested deeper than 10 levels"),
        (rule({"or": [{"gender": [1]}] * 101}), "rule.or[100]: more than 100 conditions"),
    ],
)
def test_refuses_with_a_clear_message(data: Any, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(data)
    assert str(caught.value) == message


def test_limits_are_inclusive() -> None:
    parse_rule(rule(_deep(9)))  # ten levels: nine NOTs and the condition
    parse_rule(rule({"or": [{"gender": [1]}] * 100}))
