"""Reading a customer's timeline: newest first, keyset-paged by (occurred_at, id)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, tuple_
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor
from siyu.contacts.cursor import decode_cursor, encode_cursor
from siyu.contacts.models import Employee
from siyu.timeline.models import CustomerEvent

MAX_LIMIT = 200


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    event: CustomerEvent
    employee_name: str


def list_(
    session: Session, *, actor: Actor, customer_id: int, before: str | None = None, limit: int = 20
) -> tuple[list[TimelineEntry], str | None]:
    """Events of one customer the caller already reached through access_customer_by_id.

    Staff see the events of the follows in their scope, and those tied to no employee.
    """
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = (
        select(CustomerEvent, Employee.name)
        .outerjoin(Employee, Employee.id == CustomerEvent.employee_id)
        .where(CustomerEvent.corp_id == actor.corp_id, CustomerEvent.customer_id == customer_id)
        .order_by(CustomerEvent.occurred_at.desc(), CustomerEvent.id.desc())
        .limit(limit + 1)
    )
    if actor.scope_employee_ids is not None:
        scope = sorted(actor.scope_employee_ids)
        stmt = stmt.where(or_(CustomerEvent.employee_id.is_(None), CustomerEvent.employee_id.in_(scope)))
    if before:
        at, event_id = decode_cursor(before, "timeline")
        key = (datetime.fromisoformat(str(at)), int(str(event_id)))
        stmt = stmt.where(tuple_(CustomerEvent.occurred_at, CustomerEvent.id) < key)
    rows = session.execute(stmt).all()
    entries = [TimelineEntry(event, name or "") for event, name in rows[:limit]]
    if len(rows) <= limit:
        return entries, None
    last = entries[-1].event
    return entries, encode_cursor("timeline", last.occurred_at.isoformat(), last.id)
