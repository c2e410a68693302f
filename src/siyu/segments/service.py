"""Reads over segments: live counts with a sample, the matching ids, and the plain-SQL baseline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pyroaring import BitMap
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.acquisition.models import Channel, ChannelGroup
from siyu.contacts.models import Department, Employee
from siyu.groups.models import GroupChat
from siyu.segments import sql as rule_sql
from siyu.segments.engine import engine_for
from siyu.segments.rules import CondChannel, CondInGroup, CondOwner, CondTags, Rule, iter_conditions, parse_rule
from siyu.tags.models import Tag

RuleInput = Rule | Mapping[str, Any] | str


@dataclass(frozen=True)
class SegmentCount:
    count: int
    sample_customer_ids: list[int]
    # ids the rule names that the corp does not have, by kind ("tags", "channels", …); empty when none
    unknown_ids: dict[str, list[int | str]] = field(default_factory=dict)


def _rule(rule: RuleInput) -> Rule:
    return rule if isinstance(rule, Rule) else parse_rule(dict(rule) if isinstance(rule, Mapping) else rule)


def count(session: Session, *, corp_id: int, rule: RuleInput, sample: int = 20) -> SegmentCount:
    """How many of the corp's customers match, the first `sample` ids, and the ids the rule names in vain."""
    parsed = _rule(rule)
    ids = engine_for(session, corp_id).evaluate(session, parsed)
    return SegmentCount(len(ids), list(islice(ids, max(sample, 0))), unknown_ids(session, corp_id=corp_id, rule=parsed))


def customer_ids(session: Session, *, corp_id: int, rule: RuleInput) -> BitMap:
    """The matching customer ids (for snapshots and exports)."""
    return engine_for(session, corp_id).evaluate(session, _rule(rule))


def sql_count(session: Session, *, corp_id: int, rule: RuleInput) -> int:
    """The same count by one plain SQL query (the reference and the benchmark baseline)."""
    return rule_sql.count(session, corp_id=corp_id, rule=_rule(rule))


def sql_customer_ids(session: Session, *, corp_id: int, rule: RuleInput) -> BitMap:
    return BitMap(session.scalars(rule_sql.customer_ids_select(session, corp_id=corp_id, rule=_rule(rule))))


def unknown_ids(session: Session, *, corp_id: int, rule: Rule) -> dict[str, list[int | str]]:
    """Tags, channels, channel groups, employees, departments and chats the rule names but the corp lacks."""
    wanted: dict[str, set[Any]] = {k: set() for k in ("tags", "channels", "channel_groups", "employees")}
    wanted |= {"departments": set(), "chat_ids": set()}
    for cond in iter_conditions(rule.root):
        if isinstance(cond, CondTags):
            wanted["tags"].update(cond.tag_ids)
            if cond.employee is not None:
                wanted["employees"].add(cond.employee)
        elif isinstance(cond, CondChannel):
            wanted["channels"].update(cond.channels)
            wanted["channel_groups"].update(cond.groups)
        elif isinstance(cond, CondOwner):
            wanted["employees"].update(cond.employees)
            wanted["departments"].update(cond.departments)
        elif isinstance(cond, CondInGroup):
            wanted["chat_ids"].update(cond.chat_ids)
    columns = {
        "tags": (Tag.id, Tag.corp_id),
        "channels": (Channel.id, Channel.corp_id),
        "channel_groups": (ChannelGroup.id, ChannelGroup.corp_id),
        "employees": (Employee.userid, Employee.corp_id),
        "departments": (Department.wecom_id, Department.corp_id),
        "chat_ids": (GroupChat.chat_id, GroupChat.corp_id),
    }
    out: dict[str, list[int | str]] = {}
    for kind, values in wanted.items():
        if not values:
            continue
        column, corp_column = columns[kind]
        found = set(session.scalars(select(column).where(corp_column == corp_id, column.in_(sorted(values)))))
        if missing := sorted(values - found):
            out[kind] = missing
    return out
