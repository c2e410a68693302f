"""The pure rules of a channel code: who serves it when, and the welcome's variables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from siyu.acquisition.codes import Serving, new_state, render_text, serving, slot_applies

MONDAY_10 = datetime(2026, 11, 30, 10, 0)  # a Monday
SLOTS = [
    {"weekdays": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00", "userids": ["day1", "day2"]},
    {"weekdays": [5], "start": "22:00", "end": "02:00", "userids": ["night"]},
]


def _serve(**kwargs: Any) -> Serving:
    args: dict[str, Any] = {
        "userids": ["a", "b"],
        "party_ids": [],
        "backup_userids": [],
        "schedule": [],
        "daily_cap": None,
        "adds_today": {},
        "at": MONDAY_10,
    }
    return serving(**{**args, **kwargs})


def test_without_schedule_or_cap_the_configured_employees_serve() -> None:
    assert _serve(party_ids=[3]) == Serving(["a", "b"], [3])


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2026, 11, 30, 9, 0), ["day1", "day2"]),  # Monday, start included
        (datetime(2026, 11, 30, 18, 0), ["a", "b"]),  # end excluded: back to the configured employees
        (datetime(2026, 12, 4, 23, 30), ["night"]),  # Friday night
        (datetime(2026, 12, 5, 1, 59), ["night"]),  # the overnight slot runs into Saturday morning
        (datetime(2026, 12, 5, 2, 0), ["a", "b"]),
        (datetime(2026, 12, 6, 10, 0), ["a", "b"]),  # Sunday: no slot
    ],
)
def test_the_schedule_slot_in_force_serves(at: datetime, expected: list[str]) -> None:
    assert _serve(schedule=SLOTS, at=at).userids == expected


def test_a_slot_names_employees_only_so_departments_serve_outside_slots() -> None:
    assert _serve(schedule=SLOTS, party_ids=[3]).party_ids == []
    assert _serve(schedule=SLOTS, party_ids=[3], at=datetime(2026, 12, 6, 10)).party_ids == [3]


def test_capped_employees_step_aside_then_backups_take_over() -> None:
    assert _serve(daily_cap=2, adds_today={"a": 2}).userids == ["b"]
    assert _serve(daily_cap=2, adds_today={"a": 2, "b": 3}, backup_userids=["x", "y"]) == Serving(["x", "y"], [])
    assert _serve(daily_cap=2, adds_today={"a": 2, "b": 2, "x": 2}, backup_userids=["x", "y"]).userids == ["y"]


def test_when_everyone_is_capped_the_backups_carry_on_over_the_cap() -> None:
    result = _serve(daily_cap=1, adds_today={"a": 1, "b": 1, "x": 1}, backup_userids=["x"])
    assert result == Serving(["x"], [], over_cap=True)
    assert _serve(daily_cap=1, adds_today={"a": 1, "b": 1}).userids == ["a", "b"]


def test_employees_who_cannot_serve_are_skipped() -> None:
    assert _serve(available={"b"}).userids == ["b"]
    assert _serve(available={"x"}, backup_userids=["x"], daily_cap=5).userids == ["x"]
    assert _serve(available=set()) == Serving([], [], over_cap=True)


def test_slot_applies_checks_the_weekday() -> None:
    assert slot_applies(SLOTS[0], MONDAY_10)
    assert not slot_applies(SLOTS[0], datetime(2026, 12, 5, 10, 0))


def test_welcome_variables_in_english_and_chinese() -> None:
    text = "{nickname}您好，我是{employee}。{客户昵称}/{员工姓名} {unknown}"
    assert render_text(text, nickname="李雷", employee="韩梅梅") == "李雷您好，我是韩梅梅。李雷/韩梅梅 {unknown}"


def test_states_are_short_unique_and_prefixed() -> None:
    states = {new_state("ch_") for _ in range(1000)}
    assert len(states) == 1000
    assert all(s.startswith("ch_") and len(s) <= 30 for s in states)
