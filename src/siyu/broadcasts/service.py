"""Reads over broadcasts: the list, one broadcast, its plan summary, exclusions by reason, recipient pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, broadcast_scope
from siyu.broadcasts.models import (
    CHUNK_OF_RECIPIENT,
    Broadcast,
    BroadcastChunk,
    BroadcastRecipient,
    RecipientStatus,
)
from siyu.broadcasts.schemas import (
    BroadcastPage,
    BroadcastRead,
    Finding,
    PlanSummary,
    RecipientPage,
    RecipientRead,
    ScheduleMove,
    SenderCount,
)
from siyu.contacts.cursor import decode_cursor, encode_cursor
from siyu.contacts.models import Customer, Employee
from siyu.groups.models import GroupChat

MAX_PAGE = 500


def get(broadcast: Broadcast) -> BroadcastRead:
    return BroadcastRead.model_validate(broadcast, from_attributes=True)


def list_(
    session: Session,
    *,
    actor: Actor,
    status: str | None = None,
    kind: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> BroadcastPage:
    """The actor's broadcasts, newest first, keyset-paged by id."""
    stmt = select(Broadcast).where(broadcast_scope(actor))
    if status:
        stmt = stmt.where(Broadcast.status == status)
    if kind:
        stmt = stmt.where(Broadcast.kind == kind)
    if after:
        (last_id,) = decode_cursor(after, "broadcasts")
        stmt = stmt.where(Broadcast.id < int(last_id))
    limit = max(1, min(limit, MAX_PAGE))
    rows = list(session.scalars(stmt.order_by(Broadcast.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    items = [get(b) for b in rows[:limit]]
    return BroadcastPage(items=items, next_cursor=encode_cursor("broadcasts", items[-1].id) if more else None)


def plan_summary(session: Session, *, broadcast: Broadcast) -> PlanSummary:
    """What the last plan decided (from the counts it stored), with each sender's name and chunks."""
    counts: dict[str, Any] = dict(broadcast.counts or {})
    chunks = {
        employee_id: int(n)
        for employee_id, n in session.execute(
            select(BroadcastChunk.employee_id, func.count())
            .where(BroadcastChunk.broadcast_id == broadcast.id)
            .group_by(BroadcastChunk.employee_id)
        )
    }
    eligible_by_sender = {None if k == "None" else int(k): int(v) for k, v in (counts.get("senders") or {}).items()}
    names = _employees(session, [e for e in eligible_by_sender if e is not None])
    senders = [
        SenderCount(
            employee_id=emp,
            userid=names.get(emp, ("", ""))[0] if emp is not None else "",
            name=names.get(emp, ("", ""))[1] if emp is not None else "",
            eligible=n,
            chunks=int(chunks.get(emp, 0)),
        )
        for emp, n in sorted(eligible_by_sender.items(), key=lambda item: (-item[1], item[0] or 0))
    ]
    moved = counts.get("moved")
    return PlanSummary(
        broadcast_id=broadcast.id,
        status=broadcast.status,
        candidates=int(counts.get("candidates", 0)),
        eligible=int(counts.get("eligible", 0)),
        excluded={str(k): int(v) for k, v in (counts.get("excluded") or {}).items()},
        senders=senders,
        chunks=sum(int(n) for n in chunks.values()),
        send_day=broadcast.send_day,
        scheduled_at=broadcast.scheduled_at,
        moved=ScheduleMove(
            requested=datetime.fromisoformat(moved["requested"]),
            moved_to=datetime.fromisoformat(moved["moved_to"]),
            quiet_hours=moved["quiet_hours"],
        )
        if moved
        else None,
        findings=[Finding(**f) for f in counts.get("findings") or []],
        block_reason=broadcast.block_reason,
    )


def _employees(session: Session, ids: list[int]) -> dict[int, tuple[str, str]]:
    if not ids:
        return {}
    rows = session.execute(select(Employee.id, Employee.userid, Employee.name).where(Employee.id.in_(ids)))
    return {i: (userid, name) for i, userid, name in rows}


def count_excluded(session: Session, *, broadcast_id: int) -> dict[str, int]:
    """Excluded recipients per reason, counted from the rows themselves."""
    rows = session.execute(
        select(BroadcastRecipient.reason, func.count())
        .where(BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.status == RecipientStatus.EXCLUDED)
        .group_by(BroadcastRecipient.reason)
    ).all()
    return {str(reason): int(n) for reason, n in sorted(rows)}


def list_recipients(
    session: Session,
    *,
    broadcast: Broadcast,
    status: str | None = None,
    reason: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> RecipientPage:
    """The broadcast's recipients in plan order (eligible per sender, then excluded by reason), filtered by
    status and reason, keyset-paged on the position — a range of the table's key."""
    r = BroadcastRecipient
    stmt = (
        select(r, BroadcastChunk.id, Customer.name, GroupChat.name, Employee.userid)
        .outerjoin(BroadcastChunk, CHUNK_OF_RECIPIENT)
        .outerjoin(Customer, Customer.id == r.customer_id)
        .outerjoin(GroupChat, GroupChat.id == r.chat_id)
        .outerjoin(Employee, Employee.id == r.employee_id)
        .where(r.broadcast_id == broadcast.id)
    )
    if status:
        stmt = stmt.where(r.status == status)
    if reason:
        stmt = stmt.where(r.reason == reason)
    if after:
        (last,) = decode_cursor(after, f"recipients:{broadcast.id}")
        stmt = stmt.where(r.position > int(last))
    limit = max(1, min(limit, MAX_PAGE))
    rows = session.execute(stmt.order_by(r.position).limit(limit + 1)).all()
    items = [
        RecipientRead(
            position=row.position,
            customer_id=row.customer_id,
            customer_name=customer_name,
            chat_id=row.chat_id,
            chat_name=chat_name,
            employee_id=row.employee_id,
            employee_userid=userid,
            chunk_id=chunk_id,
            send_day=row.send_day,
            status=row.status,
            reason=row.reason,
        )
        for row, chunk_id, customer_name, chat_name, userid in rows[:limit]
    ]
    more = len(rows) > limit
    cursor = encode_cursor(f"recipients:{broadcast.id}", items[-1].position) if more else None
    return RecipientPage(items=items, next_cursor=cursor)
