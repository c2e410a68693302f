"""Compliance writes: opt-out and opt-in, complaints, the policy, lifting pauses. Each records an audit row.

Lifting a pause resumes the broadcasts it held, through the sender's own start (`sender.do_start`).
Actions only flush; the request, task or CLI commits.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor
from siyu.broadcasts import sender
from siyu.broadcasts.models import Broadcast, BroadcastChunk, BroadcastRecipient, BroadcastStatus, ChunkStatus
from siyu.compliance import monitor
from siyu.compliance.models import ComplaintSignal, OptOut, ReachPause, ReachPolicy, SignalKind
from siyu.compliance.policy import Policy, load_policy
from siyu.compliance.schemas import ComplaintCreate, PolicyWrite, policy_of
from siyu.contacts.models import Employee
from siyu.core import audit
from siyu.core.clock import now_utc
from siyu.core.errors import DomainError, ErrorCode
from siyu.segments.changes import mark_dirty

OPT_OUT_SOURCES = frozenset({"employee", "reply", "console", "api", "import", "sidebar"})


# --- opt-out --------------------------------------------------------------------------------------


def do_opt_out(
    session: Session,
    corp_id: int,
    customer_id: int,
    source: str,
    recorded_by: str,
    note: str = "",
    broadcast_id: int | None = None,
) -> OptOut:
    """Mark the customer as not wanting broadcasts. Idempotent: a second call keeps the first record.

    When a broadcast reached the customer within the policy's hours, the opt-out is linked to it and
    counts as an `opted_out_after_message` signal against its employee and the broadcast.
    """
    existing = session.get(OptOut, (corp_id, customer_id))
    if existing is not None:
        return existing
    if source not in OPT_OUT_SOURCES:
        raise DomainError(ErrorCode.INVALID, f"source: one of {', '.join(sorted(OPT_OUT_SOURCES))}")
    at = now_utc()
    hours = load_policy(session, corp_id).thresholds.delete_within_hours
    who, last = monitor.attribute(
        session, corp_id, customer_id=customer_id, employee_id=None, broadcast_id=broadcast_id, at=at, hours=hours
    )
    row = OptOut(
        corp_id=corp_id,
        customer_id=customer_id,
        source=source,
        recorded_by=recorded_by,
        note=note,
        broadcast_id=broadcast_id if broadcast_id is not None else who.broadcast_id,
        created_at=at,
    )
    session.add(row)
    session.flush()
    mark_dirty(session, corp_id, [customer_id])  # the segment index's opted-out set
    detail = {"source": source, "note": note, "broadcast_id": row.broadcast_id}
    audit.record(
        session,
        corp_id=corp_id,
        actor=recorded_by,
        action="customer.opt_out",
        object_type="customer",
        object_id=customer_id,
        detail=detail,
    )
    if last is not None:
        hours_after = (at - last.sent_at).total_seconds() / 3600
        monitor.do_record_signal(
            session,
            corp_id,
            kind=SignalKind.OPTED_OUT_AFTER_MESSAGE,
            customer_id=customer_id,
            attribution=who,
            detail=f"opted out ({source}) {hours_after:.1f} h after broadcast {last.broadcast_id}",
            occurred_at=at,
        )
    return row


def do_opt_in(session: Session, corp_id: int, customer_id: int, recorded_by: str, note: str = "") -> bool:
    """Undo an opt-out (the customer asked again). Idempotent; returns whether there was one."""
    existing = session.get(OptOut, (corp_id, customer_id))
    if existing is None:
        return False
    before = {"source": existing.source, "recorded_by": existing.recorded_by, "since": existing.created_at.isoformat()}
    session.delete(existing)
    session.flush()
    mark_dirty(session, corp_id, [customer_id])  # the segment index's opted-out set
    audit.record(
        session,
        corp_id=corp_id,
        actor=recorded_by,
        action="customer.opt_in",
        object_type="customer",
        object_id=customer_id,
        detail={"note": note, "opt_out": before},
    )
    return True


# Replies that mean "stop sending me this": TD is the carriers' convention, 退订 its Chinese.
_OPT_OUT_WORDS = frozenset({"td", "t", "退订", "退定", "取消订阅", "拒收", "unsubscribe", "stop", "optout"})
_OPT_OUT_STEM = re.compile(r"退订(?!单)|取消订阅|unsubscribe|拒收")  # 退订单 is "cancel an order"
_NEGATED = re.compile(r"(不|别|没|无需|不用|不要)(要)?(退订|取消订阅|拒收)")
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
MAX_REPLY_CHARS = 16  # a longer message is a conversation, not an opt-out keyword


def is_opt_out_reply(text: str) -> bool:
    """TD / td / Ｔ Ｄ / 退订 / 退订。/ 回复TD退订 / Unsubscribe … — short replies that ask to stop, not "不退订"."""
    folded = unicodedata.normalize("NFKC", text).strip().lower()
    compact = _NOISE.sub("", folded)
    if not compact or len(compact) > MAX_REPLY_CHARS or _NEGATED.search(compact):
        return False
    compact = compact.removeprefix("回复").removeprefix("回")
    return compact in _OPT_OUT_WORDS or _OPT_OUT_STEM.search(compact) is not None


def do_opt_out_from_reply(session: Session, corp_id: int, customer_id: int, text: str) -> OptOut | None:
    """A customer's reply: opt them out when it is an opt-out keyword (source `reply`); else nothing."""
    if not is_opt_out_reply(text):
        return None
    return do_opt_out(session, corp_id, customer_id, "reply", "customer", note=text.strip()[:200])


# --- complaints -----------------------------------------------------------------------------------


def do_record_complaint(session: Session, actor: Actor, body: ComplaintCreate) -> ComplaintSignal:
    """An explicit complaint about the customer's messages. Without a broadcast or employee it counts against
    the last broadcast that reached the customer in the window (and its sender); then the monitor judges."""
    corp_id = actor.corp_id
    _check_refs(session, corp_id, body)
    policy = load_policy(session, corp_id)
    who, _ = monitor.attribute(
        session,
        corp_id,
        customer_id=body.customer_id,
        employee_id=body.employee_id,
        broadcast_id=body.broadcast_id,
        at=now_utc(),
        hours=policy.thresholds.window_days * 24,
    )
    if body.broadcast_id is not None and who.broadcast_id is None:
        who = monitor.Attribution(
            who.employee_id or _sender_of(session, body.broadcast_id, body.customer_id), body.broadcast_id
        )
    signal = monitor.do_record_signal(
        session, corp_id, kind=SignalKind.COMPLAINT, customer_id=body.customer_id, attribution=who, detail=body.detail
    )
    audit.record_by(
        session,
        actor,
        action="compliance.complaint",
        object_type="customer",
        object_id=body.customer_id,
        detail={"signal_id": signal.id, "employee_id": who.employee_id, "broadcast_id": who.broadcast_id},
    )
    return signal


def _check_refs(session: Session, corp_id: int, body: ComplaintCreate) -> None:
    if body.employee_id is not None:
        employee = session.get(Employee, body.employee_id)
        if employee is None or employee.corp_id != corp_id:
            raise DomainError(ErrorCode.INVALID, f"employee_id: no employee {body.employee_id}")
    if body.broadcast_id is not None:
        broadcast = session.get(Broadcast, body.broadcast_id)
        if broadcast is None or broadcast.corp_id != corp_id:
            raise DomainError(ErrorCode.INVALID, f"broadcast_id: no broadcast {body.broadcast_id}")


def _sender_of(session: Session, broadcast_id: int, customer_id: int) -> int | None:
    return session.scalar(
        select(BroadcastRecipient.employee_id).where(
            BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.customer_id == customer_id
        )
    )


# --- policy and pauses ----------------------------------------------------------------------------


def do_update_policy(session: Session, actor: Actor, body: PolicyWrite) -> ReachPolicy:
    """Replace the corp's policy; the audit row lists each value that changed (from the effective policy)."""
    before = _policy_values(load_policy(session, actor.corp_id))
    row = session.get(ReachPolicy, actor.corp_id)
    if row is None:
        row = ReachPolicy(corp_id=actor.corp_id)
        session.add(row)
    row.platform_cap = body.platform_cap
    row.corp_caps = [c.model_dump() for c in body.corp_caps]
    row.quiet_start, row.quiet_end = body.quiet_start, body.quiet_end
    row.sensitive_words = list(body.sensitive_words)
    row.link_allowlist = list(body.link_allowlist)
    row.complaint_thresholds = body.thresholds.model_dump()
    row.moments_eligible = body.moments_eligible
    row.updated_by = actor.label
    row.updated_at = now_utc()
    session.flush()
    after = _policy_values(policy_of(body))
    changed = {k: {"from": before[k], "to": v} for k, v in after.items() if before[k] != v}
    audit.record_by(
        session,
        actor,
        action="compliance.policy_updated",
        object_type="reach_policy",
        object_id=actor.corp_id,
        detail={"changed": changed},
    )
    return row


def _policy_values(policy: Policy) -> dict[str, object]:
    values = asdict(policy)
    values["platform_cap"] = str(policy.platform_cap)
    values.pop("personal_max_recipients", None)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def do_lift_pause(session: Session, actor: Actor, pause: ReachPause, *, note: str = "") -> ReachPause:
    """A person lets the employee or broadcast send again. Idempotent; the monitor then judges afresh from now.

    The paused broadcasts the pause held and nothing else still holds resume (`do_resume_after_lift`)."""
    if pause.lifted_at is not None:
        return pause
    pause.lifted_at = now_utc()
    pause.lifted_by = actor.label
    session.flush()
    audit.record(
        session,
        corp_id=pause.corp_id,
        actor=actor.label,
        action="compliance.pause_lifted",
        object_type=pause.scope,
        object_id=pause.target_id,
        detail={"pause_id": pause.id, "note": note, "paused_since": _iso(pause.created_at)},
    )
    do_resume_after_lift(session, actor, pause)
    return pause


def do_resume_after_lift(session: Session, actor: Actor, pause: ReachPause) -> list[int]:
    """Each `paused` broadcast the lifted pause held resumes as sending it again would (`sender.do_start`: its
    pending chunks are enqueued after commit, the sender's claim keeps any chunk from going out twice), unless
    another active pause still holds it. Returns the ids resumed; each one that stays paused says why in an
    audit row `broadcast.not_resumed` (still held, or do_start refused it — a send day gone by)."""
    return [b for b in _held_by(session, pause) if _resume(session, actor, pause, b)]


def _held_by(session: Session, pause: ReachPause) -> list[int]:
    """The broadcasts the pause may have held: its broadcast (whatever its status now — `_resume` locks it,
    so a worker pausing it at this moment is seen, see `sender._pause_broadcast`), or the corp's paused
    broadcasts with the employee's pending chunks."""
    if pause.scope == "broadcast":
        return [pause.target_id]
    stmt = select(Broadcast.id).where(
        Broadcast.corp_id == pause.corp_id,
        Broadcast.status == BroadcastStatus.PAUSED,
        exists().where(
            BroadcastChunk.broadcast_id == Broadcast.id,
            BroadcastChunk.employee_id == pause.target_id,
            BroadcastChunk.status == ChunkStatus.PENDING,
        ),
    )
    return list(session.scalars(stmt.order_by(Broadcast.id)))


def _resume(session: Session, actor: Actor, pause: ReachPause, broadcast_id: int) -> bool:
    # The row lock orders two lifts of pauses holding the same broadcast: the second to take it sees the
    # first's lift committed, so one of them resumes the broadcast (and the other finds it sending).
    broadcast = session.get(Broadcast, broadcast_id, with_for_update=True, populate_existing=True)
    if broadcast is None or broadcast.status != BroadcastStatus.PAUSED:
        return False
    cause = {"cause": "compliance.pause_lifted", "pause_id": pause.id, "lifted_by": pause.lifted_by}
    holding = _pauses_holding(session, broadcast)
    if holding:
        _audit_broadcast(
            session, actor, broadcast, "broadcast.not_resumed", reason="still paused", held_by=holding, **cause
        )
        return False
    pending = session.scalar(
        select(func.count()).where(
            BroadcastChunk.broadcast_id == broadcast.id, BroadcastChunk.status == ChunkStatus.PENDING
        )
    )
    try:
        with session.begin_nested():
            sender.do_start(session, broadcast.id, actor)
    except DomainError as exc:
        _audit_broadcast(session, actor, broadcast, "broadcast.not_resumed", reason=exc.msg, **cause)
        return False
    _audit_broadcast(session, actor, broadcast, "broadcast.resumed", chunks=pending, status=broadcast.status, **cause)
    return True


def _pauses_holding(session: Session, broadcast: Broadcast) -> list[int]:
    """Active pauses of the broadcast itself or of a sender with a pending chunk in it."""
    senders = select(BroadcastChunk.employee_id).where(
        BroadcastChunk.broadcast_id == broadcast.id,
        BroadcastChunk.status == ChunkStatus.PENDING,
        BroadcastChunk.employee_id.is_not(None),
    )
    stmt = select(ReachPause.id).where(
        ReachPause.corp_id == broadcast.corp_id,
        ReachPause.lifted_at.is_(None),
        or_(
            (ReachPause.scope == "broadcast") & (ReachPause.target_id == broadcast.id),
            (ReachPause.scope == "employee") & ReachPause.target_id.in_(senders),
        ),
    )
    return list(session.scalars(stmt.order_by(ReachPause.id)))


def _audit_broadcast(session: Session, actor: Actor, broadcast: Broadcast, action: str, **detail: object) -> None:
    audit.record_by(session, actor, action=action, object_type="broadcast", object_id=broadcast.id, detail=detail)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""
