"""Reach for `siyu demo`: staff who confirm mass messages, customers who react, and what siyu hears of it.

The emulator's staff confirm a mass message after a few seconds (most of them); its customers reply,
complain or delete the employee with propensities that rise with how many messages they got this
week (docs/emulator.md). Deletions reach siyu as real `del_follow_user` callbacks. Complaints and
"TD" replies are not visible through WeCom's API (an employee would record them, or the session
archive would show them), so the demo plays that part: every second it reads the emulator's new
reactions and records complaints and opt-out replies through the compliance actions, attributed to
the broadcast whose msgid the customer reacted to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from siyu.wecom.emulator.server import RunningEmulator
from siyu.wecom.emulator.state import Reaction

# Propensities per delivered message (before fatigue); a second message in a week doubles them. About 2 %
# of messages end in a signal (complaint 0.6 %, deletion 0.4 %, "TD" reply 1 %): 200 per 10,000, far above
# what a real corp should see, so that the demo's small segments show the monitor at work.
REACTIONS = {
    "confirm_probability": 0.9,
    "confirm_delay": [2, 8],
    "reply": 0.04,
    "complaint": 0.006,
    "delete": 0.004,
    "fatigue": 1.0,
    "opt_out_share": 0.25,
    "reaction_delay": [1, 20],
}
# The demo's thresholds: a segment of a hundred customers from a channel's two or three employees (30–50
# messages each) warns most of them and pauses one or two; a second message that week pauses more.
THRESHOLDS = {"warn_per_10k": 100.0, "pause_per_10k": 250.0, "min_messages": 20, "window_days": 7}


def seed(emulator: RunningEmulator, corp_id: int) -> None:
    """Configure the emulator's people and the corp's policy (idempotent: also run on --reuse)."""
    from siyu.compliance.models import ReachPolicy
    from siyu.core.db import session_scope

    emulator.configure_mass(**REACTIONS)
    with session_scope() as session:
        policy = session.get(ReachPolicy, corp_id)
        if policy is None:
            session.add(
                ReachPolicy(
                    corp_id=corp_id,
                    corp_caps=[{"count": 2, "days": 7}],
                    complaint_thresholds=THRESHOLDS,
                    updated_by="demo",
                )
            )


OPTED_OUT_SHARE = 0.015  # customers who said "no more broadcasts" before the demo starts
MORNING_AUDIENCE_TAGS = 2  # this morning's broadcast: customers carrying both of the two most used tags


def seed_history(corp_id: int, seed_value: int) -> dict[str, int]:
    """The first run: opt-outs on record and a broadcast sent this morning, so a new plan has exclusions
    (opted out; WeCom's daily cap for whoever got the morning one) and the monitor has messages to judge.

    Everything goes through the same actions as the console; the worker sends the morning broadcast.
    """
    import random

    from sqlalchemy import func

    from siyu.accounts.access import Actor
    from siyu.accounts.models import Role
    from siyu.broadcasts.actions import do_create_broadcast
    from siyu.broadcasts.planner import do_plan
    from siyu.broadcasts.schemas import Audience, BroadcastCreate, Content
    from siyu.broadcasts.sender import do_start
    from siyu.compliance.actions import do_opt_out
    from siyu.contacts.models import Customer
    from siyu.core.db import session_scope
    from siyu.core.tasks import configure_queue
    from siyu.tags.models import FollowTag

    configure_queue()
    rng = random.Random(f"reach-{seed_value}")
    actor = Actor(0, corp_id, "demo", Role.ADMIN, None, None)
    with session_scope() as session:
        ids = list(session.scalars(select(Customer.id).where(Customer.corp_id == corp_id).order_by(Customer.id)))
        opted = sorted(rng.sample(ids, int(len(ids) * OPTED_OUT_SHARE)))
        for customer_id in opted:
            do_opt_out(session, corp_id, customer_id, source="employee", recorded_by="demo", note="不想再收到群发")
        tags = list(
            session.scalars(
                select(FollowTag.tag_id)
                .where(FollowTag.corp_id == corp_id)
                .group_by(FollowTag.tag_id)
                .order_by(func.count().desc(), FollowTag.tag_id)
                .limit(MORNING_AUDIENCE_TAGS)
            )
        )
        rule = {"version": 1, "rule": {"and": [{"tags": {"any": [tag]}} for tag in tags]}}
        body = BroadcastCreate(
            name="早安福利·会员专享",
            audience=Audience(rule=rule),
            content=Content(text="早上好！会员专享福利今日开抢，回复TD退订"),
        )
        broadcast_id = do_create_broadcast(session, actor, body).id
    with session_scope() as session:
        planned = do_plan(session, broadcast_id, actor)
        eligible = int(planned.counts.get("eligible", 0))
    if eligible:  # a tiny demo corp may have nobody with both tags: the plan is kept, nothing to send
        with session_scope() as session:
            do_start(session, broadcast_id, actor)
    return {"opted_out": len(opted), "morning_broadcast": broadcast_id, "morning_eligible": eligible}


@dataclass(slots=True)
class ReactionFeed:
    """Reads the emulator's reactions after a cursor and records complaints and opt-out replies in siyu."""

    emulator: RunningEmulator
    corp_id: int
    cursor: int = 0

    def step(self) -> int:
        """Apply what is due in the emulator, then record new reactions; returns how many were recorded."""
        self.emulator.run_mass_due()
        reactions = [r for r in self.emulator.reactions(self.cursor, ["complaint", "reply"]) if r.id > self.cursor]
        if not reactions:
            return 0
        self.cursor = max(r.id for r in reactions)
        return record(self.corp_id, reactions)


def record(corp_id: int, reactions: list[Reaction]) -> int:
    """Complaints → complaint signals; TD / 退订 replies → opt-outs (which record their own signal)."""
    from siyu.broadcasts.models import BroadcastChunk
    from siyu.compliance import monitor
    from siyu.compliance.actions import do_opt_out_from_reply
    from siyu.compliance.models import SignalKind
    from siyu.contacts.models import Customer, Employee
    from siyu.core.db import session_scope

    with session_scope() as session:
        customers = dict(
            session.execute(
                select(Customer.external_userid, Customer.id).where(
                    Customer.corp_id == corp_id, Customer.external_userid.in_({r.external_userid for r in reactions})
                )
            ).all()
        )
        employees = dict(
            session.execute(
                select(Employee.userid, Employee.id).where(
                    Employee.corp_id == corp_id, Employee.userid.in_({r.userid for r in reactions})
                )
            ).all()
        )
        broadcasts = dict(
            session.execute(
                select(BroadcastChunk.msgid, BroadcastChunk.broadcast_id).where(
                    BroadcastChunk.corp_id == corp_id, BroadcastChunk.msgid.in_({r.msgid for r in reactions})
                )
            ).all()
        )
        recorded = 0
        for reaction in reactions:
            customer_id = customers.get(reaction.external_userid)
            if customer_id is None:
                continue
            if reaction.kind == "reply":
                recorded += do_opt_out_from_reply(session, corp_id, customer_id, reaction.text) is not None
                continue
            monitor.do_record_signal(
                session,
                corp_id,
                kind=SignalKind.COMPLAINT,
                customer_id=customer_id,
                attribution=monitor.Attribution(employees.get(reaction.userid), broadcasts.get(reaction.msgid)),
                detail="demo: the customer complained about the message (recorded by the employee)",
                occurred_at=datetime.fromtimestamp(reaction.at, UTC),
            )
            recorded += 1
    return recorded
