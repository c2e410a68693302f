"""Reads of the callback inbox."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.callbacks.models import CallbackInbox, InboxStatus


def pending_ids(session: Session, *, limit: int = 1000, after_id: int = 0) -> list[int]:
    return list(
        session.scalars(
            select(CallbackInbox.id)
            .where(CallbackInbox.status == InboxStatus.PENDING, CallbackInbox.id > after_id)
            .order_by(CallbackInbox.id)
            .limit(limit)
        )
    )


def list_(
    session: Session, *, corp_id: int, status: str | None = None, before_id: int | None = None, limit: int = 50
) -> list[CallbackInbox]:
    """Newest first, keyset-paged by id."""
    stmt = select(CallbackInbox).where(CallbackInbox.corp_id == corp_id)
    if status:
        stmt = stmt.where(CallbackInbox.status == status)
    if before_id:
        stmt = stmt.where(CallbackInbox.id < before_id)
    return list(session.scalars(stmt.order_by(CallbackInbox.id.desc()).limit(limit)))
