"""Channel codes for `siyu demo`: groups, codes, materials, welcomes, and a month of scans through them.

The operator's side goes through the same actions as the console (so the worker creates the
codes in the emulator through the outbox); the customers' side is the emulator's actors: a
month of back-dated adds through the codes (no WelcomeCode: WeCom's window closed long ago),
some customers deleting the employee days later (each channel keeps its own customers
differently), then a handful of live scans today whose welcomes the worker sends at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from rich.progress import Progress
from sqlalchemy import select

from siyu.demo_history import DAY, Ended, _redate_endings, _wait_for_inbox
from siyu.wecom.emulator.server import RunningEmulator
from siyu.wecom.emulator.state import Customer, IdFactory, _pinyin_name

HISTORY_DAYS = 30
LIVE_SCANS = 12


@dataclass(frozen=True, slots=True)
class DemoChannel:
    name: str
    group: str
    kind: str
    employees: int
    daily: float  # back-dated adds a day
    churn: float  # share of its customers who delete the employee within a few days


CHANNELS = (
    DemoChannel("南京西路门店", "门店", "store", 2, 3.0, 0.05),
    DemoChannel("徐家汇门店", "门店", "store", 2, 2.0, 0.08),
    DemoChannel("双十一海报", "海报", "poster", 3, 4.0, 0.30),
    DemoChannel("包裹卡", "包裹卡", "package", 2, 2.5, 0.12),
    DemoChannel("视频号直播", "直播", "live", 3, 3.5, 0.22),
)


def seed(emulator: RunningEmulator, corp_id: int, seed_value: int, customers: int) -> dict[str, int]:
    """The first run: create the codes, play their history with callbacks on, then a few live scans.

    Returns the two anchors (history, live) that make both plans replayable.
    """
    from siyu.core.tasks import configure_queue

    configure_queue()
    rng = random.Random(f"acquisition-{seed_value}")
    channel_ids = _create_codes(corp_id, emulator, rng)
    _wait_for_configs(channel_ids)
    members = _members(corp_id)
    anchors = {"history": int(time.time())}
    history = _plan(seed_value, members, anchors["history"], customers)
    with Progress() as bar:
        task = bar.add_task("channel history", total=len(history.steps))
        ended = _play(emulator, history, lambda: bar.advance(task), before_delete=_await_follow(corp_id))
        _wait_for_inbox(corp_id, lambda n: bar.update(task, description=f"processing callbacks ({n} left)"))
        _redate_endings(corp_id, ended)
        # Live scans now, so their WelcomeCodes are fresh: the worker sends those welcomes at once.
        anchors["live"] = int(time.time())
        _play(emulator, _live_plan(seed_value, members, anchors["live"]), None)
        _wait_for_inbox(corp_id, lambda n: bar.update(task, description=f"live scans ({n} left)"))
    return anchors


def replay(emulator: RunningEmulator, corp_id: int, seed_value: int, anchors: dict[str, int], customers: int) -> None:
    """A reused demo: bring the fresh emulator to where the codes' customers left it (callbacks are off).

    The first run's worker tagged each new follow with its channel's tags (mark_tag); the replay
    applies them directly, as no worker listens yet.
    """
    members, tags = _members(corp_id), _channel_tags(corp_id)
    _play(emulator, _plan(seed_value, members, anchors["history"], customers), None, tags)
    _play(emulator, _live_plan(seed_value, members, anchors["live"]), None, tags)


def _channel_tags(corp_id: int) -> dict[str, list[str]]:
    """state → the WeCom ids of the channel's tags."""
    from siyu.acquisition.models import Channel
    from siyu.core.db import session_scope
    from siyu.tags.models import Tag

    with session_scope() as session:
        channels = session.execute(select(Channel.state, Channel.tag_ids).where(Channel.corp_id == corp_id)).all()
        wecom = dict(session.execute(select(Tag.id, Tag.wecom_id).where(Tag.corp_id == corp_id)).all())
    return {state: [wecom[t] for t in tag_ids if t in wecom] for state, tag_ids in channels}


def _create_codes(corp_id: int, emulator: RunningEmulator, rng: random.Random) -> dict[str, int]:
    from siyu.accounts.access import Actor
    from siyu.accounts.models import Role
    from siyu.acquisition import actions
    from siyu.acquisition.models import MaterialKind
    from siyu.acquisition.schemas import (
        ChannelGroupWrite,
        ChannelWrite,
        GroupCodeWrite,
        MaterialWrite,
        WelcomeTemplateWrite,
    )
    from siyu.contacts.models import Employee, EmployeeStatus
    from siyu.core.db import session_scope
    from siyu.groups.models import GroupChat
    from siyu.tags.models import Tag

    actor = Actor(0, corp_id, "demo", Role.ADMIN, None, None)
    with session_scope() as session:
        userids = list(
            session.scalars(
                select(Employee.userid)
                .where(Employee.corp_id == corp_id, Employee.status == EmployeeStatus.ACTIVE)
                .order_by(Employee.id)
            )
        )
        tag_ids = list(session.scalars(select(Tag.id).where(Tag.corp_id == corp_id).order_by(Tag.id).limit(12)))
        chats = list(session.scalars(select(GroupChat.chat_id).where(GroupChat.corp_id == corp_id).limit(2)))
        groups = {}
        for spec in CHANNELS:
            if spec.group not in groups:
                groups[spec.group] = actions.do_create_channel_group(
                    session, actor, ChannelGroupWrite(name=spec.group, kind=spec.kind)
                ).id
        link = actions.do_create_material(
            session,
            actor,
            MaterialWrite(
                kind=MaterialKind.LINK,
                title="新客专享：到店礼",
                url="https://example.com/welcome-gift",
                description="凭此页面到店领取小礼物",
            ),
        )
        group_code_id = None
        if chats:
            group_code_id = actions.do_create_group_code(
                session,
                actor,
                GroupCodeWrite(
                    name="会员福利群", chat_ids=chats, room_base_name="会员福利群", welcome_text="欢迎入群！"
                ),
            ).id
        actions.do_put_welcome_template(
            session,
            actor,
            WelcomeTemplateWrite.model_validate(
                {"scope": "corp", "content": {"text": "{nickname}您好，我是{employee}，很高兴为您服务。"}}
            ),
        )
        created: dict[str, int] = {}
        for i, spec in enumerate(CHANNELS):
            staff = rng.sample(userids, k=min(len(userids), spec.employees + 1))
            welcome = {
                "text": f"{{nickname}}您好！我是{spec.name}的{{employee}}，欢迎添加～",
                "material_ids": [link.id],
                "group_code_id": group_code_id if i % 2 == 0 else None,
            }
            channel = actions.do_create_channel(
                session,
                actor,
                ChannelWrite(
                    name=spec.name,
                    group_id=groups[spec.group],
                    userids=staff[:-1],
                    backup_userids=staff[-1:],
                    daily_cap=40 if spec.kind == "poster" else None,
                    tag_ids=tag_ids[i * 2 : i * 2 + 2],
                    welcome=welcome,
                ),
            )
            created[spec.name] = channel.id
        return created


def _wait_for_configs(channel_ids: dict[str, int], timeout: float = 60) -> dict[str, tuple[str, str]]:
    """The worker sends add_contact_way; wait until every code has its config id (name → (config_id, state)).

    The live scans of the plan add customers as a scan would (the code's member, its state, a WelcomeCode)."""
    from siyu.acquisition.models import Channel
    from siyu.core.db import session_scope

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            rows = session.execute(
                select(Channel.name, Channel.config_id, Channel.state).where(Channel.id.in_(channel_ids.values()))
            ).all()
        if rows and all(config_id for _, config_id, _ in rows):
            return {name: (config_id, state) for name, config_id, state in rows}
        time.sleep(0.3)
    raise RuntimeError("the worker did not create the demo's channel codes in WeCom in time")


@dataclass(frozen=True, slots=True)
class Step:
    at: int
    kind: str  # add (back-dated, no WelcomeCode), scan (today, with one), delete
    userid: str
    customer: Customer
    state: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    anchor: int
    steps: list[Step]


def _members(corp_id: int) -> dict[str, tuple[str, list[str]]]:
    """Each demo channel's state and configured employees, as siyu stored them (the same on every run)."""
    from siyu.acquisition.models import Channel
    from siyu.core.db import session_scope

    names = [spec.name for spec in CHANNELS]
    with session_scope() as session:
        rows = session.execute(
            select(Channel.name, Channel.state, Channel.userids)
            .where(Channel.corp_id == corp_id, Channel.name.in_(names))
            .order_by(Channel.id)
        ).all()
    return {name: (state, list(userids)) for name, state, userids in rows}


def _plan(seed_value: int, members: dict[str, tuple[str, list[str]]], anchor: int, customers: int) -> Plan:
    """Deterministic from (seed, channels, anchor): customers get their ids from this plan's own generator,
    so replaying it on a fresh emulator recreates exactly the same customers and follows."""
    rng = random.Random(f"acquisition-history-{seed_value}")
    ids = IdFactory(rng)
    scale = max(0.1, min(1.0, customers / 20_000))
    steps: list[Step] = []
    for spec in CHANNELS:
        if spec.name not in members:
            continue
        state, userids = members[spec.name]
        adds: list[Step] = []
        deleted = False
        for day in range(HISTORY_DAYS, 0, -1):
            for _ in range(_poisson(rng, spec.daily * scale)):
                at = anchor - day * DAY + rng.randrange(0, 14 * 3600)
                customer, userid = _customer(rng, ids), rng.choice(userids)
                adds.append(Step(at, "add", userid, customer, state))
                if rng.random() < spec.churn:
                    later = at + int(rng.expovariate(1 / (3 * DAY)))
                    if later < anchor:
                        steps.append(Step(later, "delete", userid, customer))
                        deleted = True
        if adds and not deleted:
            # Every channel loses someone, so even a small demo's funnel shows its retention.
            first = adds[0]
            steps.append(Step(first.at + DAY, "delete", first.userid, first.customer))
        steps += adds
    return Plan(anchor, sorted(steps, key=lambda s: (s.at, s.kind != "add")))


def _live_plan(seed_value: int, members: dict[str, tuple[str, list[str]]], anchor: int) -> Plan:
    """Today's scans: a member of the code, its state, and a WelcomeCode (one a second from the anchor)."""
    rng = random.Random(f"acquisition-live-{seed_value}")
    ids = IdFactory(rng)
    live = [name for name in members if members[name][1]]
    steps = []
    for i in range(LIVE_SCANS if live else 0):
        state, userids = members[rng.choice(live)]
        steps.append(Step(anchor + i, "scan", rng.choice(userids), _customer(rng, ids), state))
    return Plan(anchor, steps)


def _customer(rng: random.Random, ids: IdFactory) -> Customer:
    name, _ = _pinyin_name(rng)
    external_userid = ids.external_userid()
    return Customer(
        external_userid=external_userid,
        name=name,
        type=1,
        gender=rng.choice((0, 1, 2, 2)),
        avatar=f"https://wx.qlogo.cn/mmhead/{external_userid[2:26]}/0",
        unionid=ids.unionid(),
    )


def _await_follow(corp_id: int, timeout: float = 30) -> Callable[[Step], None]:
    """Before a deletion: wait until the worker has recorded the follow it ends. The worker reads the
    customer from WeCom when it handles the add; played faster than it keeps up (a busy machine), it would
    find the follow already deleted and record neither — and the channel would show nobody lost."""
    from siyu.contacts.models import Customer as CustomerRow
    from siyu.contacts.models import Employee, Follow
    from siyu.core.db import session_scope

    def wait(step: Step) -> None:
        stmt = (
            select(Follow.id)
            .join(Employee, Employee.id == Follow.employee_id)
            .join(CustomerRow, CustomerRow.id == Follow.customer_id)
            .where(
                Follow.corp_id == corp_id,
                Employee.userid == step.userid,
                CustomerRow.external_userid == step.customer.external_userid,
            )
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with session_scope() as session:
                if session.scalar(stmt.limit(1)) is not None:
                    return
            time.sleep(0.05)

    return wait


def _play(
    emulator: RunningEmulator,
    plan: Plan,
    tick: Callable[[], None] | None,
    tags_by_state: dict[str, list[str]] | None = None,
    *,
    before_delete: Callable[[Step], None] | None = None,
) -> list[Ended]:
    """Adds through the codes at their (back-dated) times, deletions days later, then today's live scans."""
    state = emulator.state
    ended: list[Ended] = []
    try:
        for step in plan.steps:
            state.clock = lambda at=step.at: float(at)
            if step.kind == "delete":
                if before_delete is not None:
                    before_delete(step)
                if state.follow(step.userid, step.customer.external_userid) is not None:
                    emulator.actors.customer_delete_employee(step.userid, step.customer.external_userid)
                    ended.append(Ended(step.userid, step.customer.external_userid, step.at))
            else:
                if step.customer.external_userid not in state.customers:
                    state.add_customer(replace(step.customer))
                emulator.actors.add_customer(
                    userid=step.userid,
                    external_userid=step.customer.external_userid,
                    state=step.state,
                    welcome_code=step.kind == "scan",
                )
                tags = (tags_by_state or {}).get(step.state)
                if tags:
                    state.mark_tag(step.userid, step.customer.external_userid, tags, [])
            if tick is not None:
                tick()
    finally:
        state.clock = time.time
    return ended


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, pow(2.718281828459045, -mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def reconnect(corp_id: int) -> None:
    """A reused demo starts a fresh emulator, which knows none of the codes: create them there again.

    (The customers the codes brought stay in siyu; the fresh emulator does not replay them.)
    """
    from sqlalchemy import update

    from siyu.acquisition import outbox
    from siyu.acquisition.models import Channel, CodeStatus, GroupCode
    from siyu.core.db import session_scope
    from siyu.core.tasks import configure_queue

    configure_queue()
    with session_scope() as session:
        for model in (Channel, GroupCode):
            session.execute(
                update(model).where(model.corp_id == corp_id, model.status == CodeStatus.ACTIVE).values(config_id="")
            )
        for channel in session.scalars(
            select(Channel).where(Channel.corp_id == corp_id, Channel.status == CodeStatus.ACTIVE)
        ):
            outbox.enqueue_channel_add(session, channel, created_by="demo")
        for code in session.scalars(
            select(GroupCode).where(GroupCode.corp_id == corp_id, GroupCode.status == CodeStatus.ACTIVE)
        ):
            code.welcome_template_id = ""
            outbox.enqueue_group_code_add(session, code, created_by="demo")
            outbox.enqueue_group_welcome(session, code, created_by="demo")
