"""Creating and editing broadcast drafts; planning is `planner.do_plan`, sending `sender.do_start`.

A draft is checked against the corp when it is written (its audience names real segments, snapshots,
customers, chats and employees; its kind's limits hold), so planning fails only on what can change in
between. Staff may start personal broadcasts only: from themselves, to customers they actively follow
(`NotFollowed` otherwise; operators may name any of the corp's, and the planner excludes those the sender
does not follow).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, can, customer_scope, personal_only
from siyu.broadcasts.models import Broadcast, BroadcastChunk, BroadcastKind, BroadcastRecipient, BroadcastStatus
from siyu.broadcasts.planner import do_plan
from siyu.broadcasts.schemas import (
    AUDIENCES_BY_KIND,
    MAX_MOMENT_TEXT_CHARS,
    MOMENT_ATTACHMENT_TYPES,
    Audience,
    BroadcastCreate,
    BroadcastUpdate,
    Content,
)
from siyu.compliance.policy import load_policy
from siyu.contacts.models import Customer, Employee, Follow, FollowStatus
from siyu.core import audit
from siyu.core.errors import DomainError, ErrorCode
from siyu.groups.models import GroupChat
from siyu.segments.models import Segment, SegmentSnapshot
from siyu.segments.rules import RuleError, parse_rule
from siyu.tags.models import Tag

__all__ = ["NotFollowed", "do_create_broadcast", "do_plan", "do_update_broadcast"]

# A planned (not yet started) broadcast may still be edited: it goes back to draft and frees its slots.
EDITABLE = (BroadcastStatus.DRAFT, BroadcastStatus.PLANNED, BroadcastStatus.BLOCKED)
_SHOWN = 10  # unknown ids named in an error
_BATCH = 5_000  # ids per IN (…) when checking them


class NotFollowed(DomainError):
    """A staff member named customers for their personal broadcast whom they do not actively follow;
    `customer_ids` (all of them, in the order named) let the console say it in the user's language."""

    def __init__(self, customer_ids: list[int]) -> None:
        super().__init__(
            ErrorCode.INVALID,
            f"audience.customer_ids: your personal broadcast reaches only customers you follow; not yours: "
            f"{_shown(customer_ids)}",
        )
        self.customer_ids = customer_ids


def do_create_broadcast(session: Session, actor: Actor, body: BroadcastCreate) -> Broadcast:
    check_draft(session, actor, body)
    audience = body.audience.model_dump(exclude_none=True)
    broadcast = Broadcast(
        corp_id=actor.corp_id,
        kind=body.kind,
        name=body.name.strip(),
        status=BroadcastStatus.DRAFT,
        audience=audience,
        segment_id=audience.get("segment_id"),
        snapshot_id=audience.get("snapshot_id"),
        content=body.content.model_dump(),
        sender_ids=sorted(set(body.sender_ids)),
        allow_select=body.allow_select,
        scheduled_at=body.scheduled_at,
        holdout_percent=body.holdout_percent,
        counts={},
        created_by=actor.label,
    )
    session.add(broadcast)
    session.flush()
    _audit(session, actor, broadcast, "broadcast.created", kind=broadcast.kind, audience=audience)
    return broadcast


def do_update_broadcast(session: Session, actor: Actor, broadcast: Broadcast, body: BroadcastUpdate) -> Broadcast:
    """Edit a draft (or an unsent plan, which goes back to draft); 409 once it is scheduled or sending."""
    if broadcast.status not in EDITABLE:
        raise DomainError(
            ErrorCode.CONFLICT, f"broadcast {broadcast.id} is {broadcast.status}; only drafts and unsent plans change"
        )
    changes = body.model_dump(exclude_unset=True)
    try:
        merged = _merged(broadcast, body, changes)
    except ValidationError as exc:  # the stored draft itself no longer validates (written by an older siyu)
        raise DomainError(ErrorCode.INVALID, f"broadcast {broadcast.id}: {exc.errors()[0]['msg']}") from exc
    check_draft(session, actor, merged)
    audience = merged.audience.model_dump(exclude_none=True)
    broadcast.name, broadcast.audience, broadcast.content = merged.name.strip(), audience, merged.content.model_dump()
    broadcast.segment_id, broadcast.snapshot_id = audience.get("segment_id"), audience.get("snapshot_id")
    broadcast.sender_ids, broadcast.allow_select = sorted(set(merged.sender_ids)), merged.allow_select
    broadcast.scheduled_at, broadcast.holdout_percent = merged.scheduled_at, merged.holdout_percent
    _back_to_draft(session, broadcast)
    _audit(session, actor, broadcast, "broadcast.updated", fields=sorted(changes))
    session.flush()
    return broadcast


def _merged(broadcast: Broadcast, body: BroadcastUpdate, changes: dict[str, Any]) -> BroadcastCreate:
    """The draft as it will be: the stored fields with the given ones replacing them."""
    return BroadcastCreate(
        kind=BroadcastKind(broadcast.kind),
        name=changes.get("name") or broadcast.name,
        audience=body.audience if body.audience is not None else Audience.model_validate(broadcast.audience),
        content=body.content if body.content is not None else Content.model_validate(broadcast.content),
        sender_ids=changes.get("sender_ids", broadcast.sender_ids) or [],
        allow_select=changes.get("allow_select", broadcast.allow_select),
        scheduled_at=changes.get("scheduled_at", broadcast.scheduled_at),
        holdout_percent=changes.get("holdout_percent", broadcast.holdout_percent),
    )


def _back_to_draft(session: Session, broadcast: Broadcast) -> None:
    """An edited plan is no longer the plan: its recipients and chunks go (freeing their slots)."""
    session.execute(delete(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == broadcast.id))
    session.execute(delete(BroadcastChunk).where(BroadcastChunk.broadcast_id == broadcast.id))
    broadcast.status, broadcast.counts, broadcast.block_reason = BroadcastStatus.DRAFT, {}, ""
    broadcast.send_day, broadcast.planned_at = None, None


# --- checks ------------------------------------------------------------------------------------------


def check_draft(session: Session, actor: Actor, body: BroadcastCreate) -> None:
    """Who may write this draft, and whether it fits its kind and names only what the corp has."""
    _check_author(actor, body)
    source = body.audience.source
    if source not in AUDIENCES_BY_KIND[body.kind]:
        allowed = ", ".join(AUDIENCES_BY_KIND[body.kind])
        raise DomainError(ErrorCode.INVALID, f"audience: a {body.kind} broadcast's audience is one of {allowed}")
    if body.kind == BroadcastKind.PERSONAL:  # before the audience: staff hear "not yours", not "not in this corp"
        _check_personal(session, actor, body)
    _check_audience(session, actor, body.audience)
    _check_employees(session, actor.corp_id, body.sender_ids, "sender_ids")
    if body.kind == BroadcastKind.MOMENT:
        _check_moment(session, actor, body)


def _check_author(actor: Actor, body: BroadcastCreate) -> None:
    if can(actor, "broadcast", "write"):
        return
    if not can(actor, "personal_broadcast", "write"):
        raise DomainError(ErrorCode.FORBIDDEN, f"your role ({actor.role}) may not write broadcast")
    if body.kind != BroadcastKind.PERSONAL:
        raise DomainError(ErrorCode.FORBIDDEN, f"your role ({actor.role}) may only start personal broadcasts")
    if actor.employee_id is None or body.sender_ids != [actor.employee_id]:
        raise DomainError(ErrorCode.FORBIDDEN, "a personal broadcast you start is sent by you: sender_ids = [your id]")
    if body.audience.customer_ids is None:
        raise DomainError(ErrorCode.INVALID, "audience: pick the customers (customer_ids)")


def _check_audience(session: Session, actor: Actor, audience: Audience) -> None:
    corp_id = actor.corp_id
    if audience.rule is not None:
        try:
            parse_rule(audience.rule)
        except RuleError as exc:
            raise DomainError(ErrorCode.INVALID, f"audience.{exc}") from exc
    if audience.segment_id is not None:
        _check_ids(session, Segment.id, Segment.corp_id == corp_id, [audience.segment_id], "audience.segment_id")
    if audience.snapshot_id is not None:
        where = SegmentSnapshot.corp_id == corp_id
        _check_ids(session, SegmentSnapshot.id, where, [audience.snapshot_id], "audience.snapshot_id")
    if audience.customer_ids is not None:
        # staff name only customers they can see; others only their corp's
        _check_ids(session, Customer.id, customer_scope(actor), audience.customer_ids, "audience.customer_ids")
    if audience.chat_ids is not None:
        _check_ids(session, GroupChat.chat_id, GroupChat.corp_id == corp_id, audience.chat_ids, "audience.chat_ids")
    if audience.owner_ids is not None:
        _check_employees(session, corp_id, audience.owner_ids, "audience.owner_ids")
    if audience.tag_ids:
        _check_ids(session, Tag.id, Tag.corp_id == corp_id, audience.tag_ids, "audience.tag_ids")


def _check_employees(session: Session, corp_id: int, ids: Sequence[int], where: str) -> None:
    if ids:
        _check_ids(session, Employee.id, Employee.corp_id == corp_id, ids, where)


def _check_ids(session: Session, column: Any, scope: Any, ids: Sequence[Any], where: str) -> None:
    """Every id is one the corp (or the actor's scope) has; else 422 naming the first few that are not."""
    wanted = set(ids)
    found: set[Any] = set()
    values = sorted(wanted)
    for start in range(0, len(values), _BATCH):
        batch = values[start : start + _BATCH]
        found.update(session.scalars(select(column).where(scope, column.in_(batch))))
    if missing := sorted(wanted - found):
        raise DomainError(ErrorCode.INVALID, f"{where}: not in this corp: {_shown(missing)}")


def _shown(ids: Sequence[Any]) -> str:
    return ", ".join(map(str, ids[:_SHOWN])) + (" …" if len(ids) > _SHOWN else "")


def _check_personal(session: Session, actor: Actor, body: BroadcastCreate) -> None:
    if len(set(body.sender_ids)) != 1:
        raise DomainError(ErrorCode.INVALID, "sender_ids: a personal broadcast has exactly one sender")
    limit = load_policy(session, actor.corp_id).personal_max_recipients
    if body.audience.customer_ids is not None and len(set(body.audience.customer_ids)) > limit:
        raise DomainError(ErrorCode.INVALID, f"audience.customer_ids: a personal broadcast reaches at most {limit}")
    if personal_only(actor):
        _check_followed(session, actor, body.audience.customer_ids or [])


def _check_followed(session: Session, actor: Actor, customer_ids: Sequence[int]) -> None:
    """Staff reach only customers they actively follow themselves (without an employee: nobody)."""
    others = list(dict.fromkeys(customer_ids))
    if actor.employee_id is not None:
        others = _not_followed(session, actor.corp_id, actor.employee_id, others)
    if others:
        raise NotFollowed(others)


def _not_followed(session: Session, corp_id: int, employee_id: int, customer_ids: Sequence[int]) -> list[int]:
    """The given customers (each once, in the order given) this employee does not actively follow."""
    wanted = list(dict.fromkeys(customer_ids))
    followed: set[int] = set()
    for start in range(0, len(wanted), _BATCH):
        batch = wanted[start : start + _BATCH]
        followed.update(
            session.scalars(
                select(Follow.customer_id).where(
                    Follow.corp_id == corp_id,
                    Follow.employee_id == employee_id,
                    Follow.status == FollowStatus.ACTIVE,
                    Follow.customer_id.in_(batch),
                )
            )
        )
    return [i for i in wanted if i not in followed]


def _check_moment(session: Session, actor: Actor, body: BroadcastCreate) -> None:
    if not load_policy(session, actor.corp_id).moments_eligible:
        raise DomainError(ErrorCode.INVALID, "this corp is not eligible for customer Moments (reach policy)")
    if body.holdout_percent:
        raise DomainError(
            ErrorCode.INVALID,
            "holdout_percent: WeCom shows a Moment to every customer of its senders; none is held out",
        )
    if len(body.content.text) > MAX_MOMENT_TEXT_CHARS:
        raise DomainError(ErrorCode.INVALID, f"content.text: a Moment's text is at most {MAX_MOMENT_TEXT_CHARS} chars")
    kinds = {a.get("msgtype") for a in body.content.attachments}
    if not kinds <= set(MOMENT_ATTACHMENT_TYPES) or len(kinds) > 1:
        raise DomainError(ErrorCode.INVALID, "content.attachments: a Moment has images, or one video, or one link")
    if kinds & {"video", "link"} and len(body.content.attachments) > 1:
        raise DomainError(ErrorCode.INVALID, "content.attachments: a Moment has one video or one link")


def _audit(session: Session, actor: Actor, broadcast: Broadcast, action: str, **detail: Any) -> None:
    audit.record(
        session,
        corp_id=broadcast.corp_id,
        actor=actor.label,
        action=action,
        object_type="broadcast",
        object_id=broadcast.id,
        detail=detail,
    )
