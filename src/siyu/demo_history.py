"""A few months of history for `siyu demo`, made the way real history is made: by WeCom events.

The emulator's actors add customers, delete follows (both ways), tag customers and bring
customers into groups, each at a back-dated time on the emulator's clock, so the callbacks
carry that CreateTime and siyu's timeline records it. siyu stamps a follow's end with the time
it heard of it, so once the worker has processed everything the demo re-dates those endings
to the emulated time (the one place the demo writes siyu's tables directly).

The plan is deterministic (seed, anchor day, size), and the actors draw ids from the emulator's
seeded generator: a reused demo replays the same plan on a fresh emulator, with callbacks off,
so the emulator again agrees with what siyu remembers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.progress import Progress
from sqlalchemy import func, select, update

from siyu.wecom.emulator.server import RunningEmulator
from siyu.wecom.emulator.state import EmulatorError

DAY = 86_400
HISTORY_DAYS = 90
# Events a day in a 20,000-customer corp; smaller demos scale down (at least one of each). The sync
# already brings a year of adds (WeCom's createtime); these make the endings, tag edits and group
# joins. Each is a real callback through server and worker (~6 a second on SQLite), hence modest.
DAILY = {"add": 1.0, "customer_delete": 0.6, "employee_delete": 0.4, "tag": 1.0, "join": 0.5}
PER_CUSTOMERS = 20_000


@dataclass(frozen=True, slots=True)
class Step:
    at: int
    kind: str


@dataclass(frozen=True, slots=True)
class Ended:
    userid: str
    external_userid: str
    at: int


def plan(seed: int, anchor: int, customers: int) -> list[Step]:
    """HISTORY_DAYS before the anchor day, plus a few events early on the anchor day itself ("today")."""
    rng = random.Random(f"history-{seed}")
    scale = customers / PER_CUSTOMERS
    steps = []
    for kind, rate in DAILY.items():
        count = max(1, round(rate * scale * HISTORY_DAYS))
        steps += [Step(anchor - rng.randrange(1, HISTORY_DAYS * DAY), kind) for _ in range(count)]
        steps += [Step(anchor + rng.randrange(60, 3600), kind) for _ in range(max(1, round(rate * scale)))]
    return sorted(steps, key=lambda s: (s.at, s.kind))


def replay(emulator: RunningEmulator, steps: list[Step], seed: int) -> None:
    """Bring a fresh emulator to where the first run left it (no callback URL is set yet)."""
    _run(emulator, steps, seed)


def seed(emulator: RunningEmulator, steps: list[Step], seed: int, corp_id: int) -> None:
    """The first run: play the plan with callbacks on, wait for the worker, re-date the endings."""
    with Progress() as bar:
        task = bar.add_task("history", total=len(steps))
        ended = _run(emulator, steps, seed, lambda: bar.advance(task))
        waiting = bar.add_task("processing callbacks", total=None)
        _wait_for_inbox(corp_id, lambda n: bar.update(waiting, description=f"processing callbacks ({n} left)"))
    _redate_endings(corp_id, ended)


def _run(
    emulator: RunningEmulator, steps: list[Step], seed: int, tick: Callable[[], None] | None = None
) -> list[Ended]:
    rng = random.Random(f"history-targets-{seed}")
    state = emulator.state
    ended: list[Ended] = []
    try:
        for step in steps:
            state.clock = lambda at=step.at: float(at)
            try:
                done = ACTIONS[step.kind](emulator, rng)
            except (EmulatorError, IndexError):
                done = None  # nothing suitable at this moment (e.g. every member already in the group)
            if isinstance(done, Ended):
                ended.append(Ended(done.userid, done.external_userid, step.at))
            if tick is not None:
                tick()
    finally:
        state.clock = time.time
    return ended


def _random_follow(emulator: RunningEmulator, rng: random.Random) -> tuple[str, str]:
    """A follow that already existed at the emulated moment (WeCom never deletes a follow before it exists)."""
    state = emulator.state
    for _ in range(20):
        userid = rng.choice(state.follow_user_ids())
        follow = rng.choice(state.follow_lists[userid].items)
        if follow.createtime < state.now():
            return userid, follow.external_userid
    raise IndexError("no follow old enough")


def _add(emulator: RunningEmulator, rng: random.Random) -> None:
    emulator.actors.add_customer(userid=rng.choice(emulator.state.follow_user_ids()), state="demo")


def _customer_delete(emulator: RunningEmulator, rng: random.Random) -> Ended:
    userid, external_userid = _random_follow(emulator, rng)
    emulator.actors.customer_delete_employee(userid, external_userid)
    return Ended(userid, external_userid, 0)


def _employee_delete(emulator: RunningEmulator, rng: random.Random) -> Ended:
    userid, external_userid = _random_follow(emulator, rng)
    emulator.actors.employee_delete_customer(userid, external_userid)
    return Ended(userid, external_userid, 0)


def _tag(emulator: RunningEmulator, rng: random.Random) -> None:
    userid, external_userid = _random_follow(emulator, rng)
    follow = emulator.state.follow(userid, external_userid)
    assert follow is not None
    tags = sorted(emulator.state.tags)
    add = [t for t in rng.sample(tags, k=min(2, len(tags))) if t not in follow.tag_ids]
    remove = follow.tag_ids[:1] if follow.tag_ids and rng.random() < 0.4 else []
    emulator.actors.tag_customer(userid, external_userid, add_tags=add, remove_tags=remove)


def _join(emulator: RunningEmulator, rng: random.Random) -> None:
    state = emulator.state
    group = rng.choice(sorted(state.groups.values(), key=lambda g: g.chat_id))
    present = {m.userid for m in group.members}
    owned = state.follow_lists.get(group.owner)
    candidates = [f.external_userid for f in owned.items] if owned is not None else []
    joining = [c for c in candidates if c not in present][:1]
    if joining:
        emulator.actors.group_add_members(group.chat_id, joining, join_scene=3)


ACTIONS: dict[str, Callable[[RunningEmulator, random.Random], Ended | None]] = {
    "add": _add,
    "customer_delete": _customer_delete,
    "employee_delete": _employee_delete,
    "tag": _tag,
    "join": _join,
}


def _wait_for_inbox(corp_id: int, report: Callable[[int], None], timeout: float = 600) -> None:
    from siyu.callbacks.models import CallbackInbox, InboxStatus
    from siyu.core.db import session_scope

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            pending = session.scalar(
                select(func.count())
                .select_from(CallbackInbox)
                .where(CallbackInbox.corp_id == corp_id, CallbackInbox.status == InboxStatus.PENDING)
            )
        report(int(pending or 0))
        if not pending:
            return
        time.sleep(0.5)
    raise RuntimeError("the worker did not process the demo's callbacks in time")


def _redate_endings(corp_id: int, ended: list[Ended]) -> None:
    from datetime import UTC, datetime

    from siyu.contacts.models import Customer, Employee, Follow
    from siyu.core.db import session_scope
    from siyu.timeline.actions import EventKind
    from siyu.timeline.models import CustomerEvent

    with session_scope() as session:
        for item in ended:
            at = datetime.fromtimestamp(item.at, UTC)
            employee = select(Employee.id).where(Employee.corp_id == corp_id, Employee.userid == item.userid)
            customer = select(Customer.id).where(
                Customer.corp_id == corp_id, Customer.external_userid == item.external_userid
            )
            which = (Follow.employee_id == employee.scalar_subquery()) & (
                Follow.customer_id == customer.scalar_subquery()
            )
            session.execute(update(Follow).where(Follow.corp_id == corp_id, which).values(ended_at=at))
            session.execute(
                update(CustomerEvent)
                .where(
                    CustomerEvent.corp_id == corp_id,
                    CustomerEvent.kind == EventKind.FOLLOW_ENDED,
                    CustomerEvent.employee_id == employee.scalar_subquery(),
                    CustomerEvent.customer_id == customer.scalar_subquery(),
                )
                .values(occurred_at=at)
            )
