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

# Propensities per delivered message (before fatigue); a second message in a week doubles them.
REACTIONS = {
    "confirm_probability": 0.9,
    "confirm_delay": [2, 8],
    "reply": 0.03,
    "complaint": 0.002,
    "delete": 0.003,
    "fatigue": 1.0,
    "opt_out_share": 0.25,
    "reaction_delay": [1, 20],
}
# The demo's thresholds: low enough that a broadcast to a few thousand customers shows warnings and a pause.
THRESHOLDS = {"warn_per_10k": 50.0, "pause_per_10k": 150.0, "min_messages": 60, "window_days": 7}


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
