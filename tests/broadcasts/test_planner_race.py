"""The last-slot race: two broadcasts planned at the same moment never both take a customer's last slot."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from siyu.broadcasts import planner
from siyu.compliance import caps
from tests.broadcasts.planner_support import make_world


def _together(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both plans reach the lock at the same instant, and each lingers after writing its rows before
    committing — so without the lock both would count the slot as free and both would take it."""
    barrier = threading.Barrier(2)
    lock, write = caps.lock_reach, planner._write_recipients

    def lock_together(session: Session, corp_id: int) -> None:
        barrier.wait(timeout=10)
        lock(session, corp_id)

    def write_slowly(*args: Any, **kwargs: Any) -> None:
        write(*args, **kwargs)
        time.sleep(0.5)

    monkeypatch.setattr(caps, "lock_reach", lock_together)
    monkeypatch.setattr(planner, "_write_recipients", write_slowly)


def _in_threads(*calls: Callable[[], object]) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_two_concurrent_plans_never_both_take_the_last_slot(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a customer with one slot left today (WeCom's 1 per day; no quiet hours, no corp caps)
    world = make_world(db)
    world.policy(quiet_start="", quiet_end="", corp_caps=[])
    [customer] = world.customers(1, follower="zhang")
    one, two = world.broadcast(customers=[customer]), world.broadcast(customers=[customer])
    _together(monkeypatch)
    # when both are planned at once, each on its own connection
    errors = _in_threads(lambda: world.plan(one), lambda: world.plan(two))
    # then exactly one of them holds the slot; the other lists the customer as capped
    assert errors == []
    outcomes = sorted([world.outcome(one)[customer], world.outcome(two)[customer]])
    assert outcomes == ["pending", "platform_cap"]
