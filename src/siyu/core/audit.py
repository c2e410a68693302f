"""The audit log: who changed what, written in the same transaction as the change."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from siyu.corp.models import AuditLog

if TYPE_CHECKING:
    from siyu.accounts.access import Actor


def record(
    session: Session,
    *,
    corp_id: int,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """actor is 'wecom' for callbacks, 'sync' for syncs, 'user:<id>' for people."""
    session.add(
        AuditLog(
            corp_id=corp_id,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            detail=json.dumps(detail or {}, ensure_ascii=False, default=str),
        )
    )


def record_by(
    session: Session,
    actor: Actor,
    *,
    action: str,
    object_type: str,
    object_id: str | int = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """A row for something a person did, in their own corp."""
    record(
        session,
        corp_id=actor.corp_id,
        actor=actor.label,
        action=action,
        object_type=object_type,
        object_id=object_id,
        detail=detail,
    )
