"""Writes: saved segments (name unique per corp, the rule validated), snapshots that freeze membership.

Each `do_*` checks the actor, writes, records an audit row and only flushes (the caller commits).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, require
from siyu.core import audit
from siyu.core.errors import DomainError, ErrorCode
from siyu.segments import service
from siyu.segments.models import Segment, SegmentSnapshot
from siyu.segments.rules import Rule, RuleError
from siyu.segments.schemas import SegmentCreate, SegmentUpdate


def validated(rule: dict[str, Any] | str) -> Rule:
    """The parsed rule, or a 422 naming the first problem by its JSON path."""
    try:
        return service.parse(rule)
    except RuleError as exc:
        raise DomainError(ErrorCode.INVALID, str(exc)) from exc


def _name_free(session: Session, corp_id: int, name: str, *, but: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise DomainError(ErrorCode.INVALID, "name: must not be empty")
    taken = session.scalar(select(Segment.id).where(Segment.corp_id == corp_id, Segment.name == name))
    if taken is not None and taken != but:
        raise DomainError(ErrorCode.CONFLICT, f"name: a segment named {name!r} already exists")
    return name


def do_create_segment(session: Session, actor: Actor, body: SegmentCreate) -> Segment:
    require(actor, "segment", "write")
    rule = validated(body.rule)
    segment = Segment(
        corp_id=actor.corp_id,
        name=_name_free(session, actor.corp_id, body.name),
        description=body.description,
        rule=rule.to_json(),
        rule_version=rule.version,
        created_by=actor.label,
    )
    segment.last_count = len(service.customer_ids(session, corp_id=actor.corp_id, rule=rule))
    session.add(segment)
    session.flush()
    _audit(session, actor, "segment.create", segment, {"name": segment.name, "count": segment.last_count})
    return segment


def do_update_segment(session: Session, actor: Actor, segment: Segment, body: SegmentUpdate) -> Segment:
    """Rename, describe or change the rule; a new rule is counted again. Snapshots keep the rule they froze."""
    require(actor, "segment", "write")
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name") is not None:
        segment.name = _name_free(session, actor.corp_id, changes["name"], but=segment.id)
    if changes.get("description") is not None:
        segment.description = changes["description"]
    if changes.get("rule") is not None:
        rule = validated(changes["rule"])
        segment.rule, segment.rule_version = rule.to_json(), rule.version
        segment.last_count = len(service.customer_ids(session, corp_id=actor.corp_id, rule=rule))
    session.flush()
    _audit(
        session, actor, "segment.update", segment, {"fields": sorted(k for k, v in changes.items() if v is not None)}
    )
    return segment


def do_recount(session: Session, actor: Actor, segment: Segment) -> int:
    """Count the segment now and keep the number on it (the list shows it)."""
    require(actor, "segment", "read")
    segment.last_count = len(service.customer_ids(session, corp_id=actor.corp_id, rule=segment.rule))
    session.flush()
    return segment.last_count


def do_delete_segment(session: Session, actor: Actor, segment: Segment) -> None:
    """The segment goes; its snapshots stay (frozen audiences broadcasts may refer to), detached."""
    require(actor, "segment", "write")
    _audit(session, actor, "segment.delete", segment, {"name": segment.name})
    for snapshot in session.scalars(select(SegmentSnapshot).where(SegmentSnapshot.segment_id == segment.id)):
        snapshot.segment_id = None
    session.delete(segment)
    session.flush()


def do_snapshot(
    session: Session,
    actor: Actor,
    *,
    segment: Segment | None = None,
    rule: dict[str, Any] | None = None,
    name: str = "",
) -> SegmentSnapshot:
    """Freeze who matches now: the rule as it is, its language version, and the ids as a roaring bitmap."""
    require(actor, "segment", "write")
    if segment is None and rule is None:
        raise DomainError(ErrorCode.INVALID, "a snapshot needs a segment or a rule")
    parsed = validated(segment.rule if segment is not None else rule)  # type: ignore[arg-type]
    ids = service.customer_ids(session, corp_id=actor.corp_id, rule=parsed)
    ids.run_optimize()
    snapshot = SegmentSnapshot(
        corp_id=actor.corp_id,
        segment_id=segment.id if segment is not None else None,
        name=name.strip() or (segment.name if segment is not None else ""),
        rule=parsed.to_json(),
        rule_version=parsed.version,
        member_count=len(ids),
        members=ids.serialize(),
        created_by=actor.label,
    )
    session.add(snapshot)
    if segment is not None:
        segment.last_count = len(ids)
    session.flush()
    detail = {"segment_id": snapshot.segment_id, "members": snapshot.member_count, "bytes": len(snapshot.members)}
    audit.record_by(
        session, actor, action="segment.snapshot", object_type="segment_snapshot", object_id=snapshot.id, detail=detail
    )
    return snapshot


def do_record_export(session: Session, actor: Actor, *, object_type: str, object_id: int, rows: int) -> None:
    """An export of customers leaves siyu: who took which audience, and how many people were in it."""
    audit.record_by(
        session,
        actor,
        action=f"{object_type}.export",
        object_type=object_type,
        object_id=object_id,
        detail={"rows": rows},
    )


def _audit(session: Session, actor: Actor, action: str, segment: Segment, detail: dict[str, Any]) -> None:
    audit.record_by(session, actor, action=action, object_type="segment", object_id=segment.id, detail=detail)
