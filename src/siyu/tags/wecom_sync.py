"""Tag edits made in siyu, written locally and sent to WeCom through the outbox (both ways in sync).

Each `do_*` changes the local rows, records an audit row and enqueues one outbox row in the
caller's transaction, so a rolled-back edit never reaches WeCom and a committed one always does.
A tag or group created here has no WeCom id until the outbox row is sent: it carries a
`pending:` placeholder id (the page shows "syncing"), and `_after_add` swaps in the ids WeCom
returned. Incoming changes (callbacks, sync) use the mirror actions in `siyu.tags.actions`;
if one of them lands first, `_after_add` simply lets the mirrored row win.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor
from siyu.contacts.models import Follow
from siyu.core import audit
from siyu.core.clock import now_utc
from siyu.core.errors import DomainError, ErrorCode
from siyu.outbox.actions import do_enqueue, register_sender
from siyu.outbox.models import WeComOutbox
from siyu.segments.changes import mark_dirty
from siyu.sync.bulk import chunks
from siyu.tags import actions as mirror
from siyu.tags import service
from siyu.tags.models import FollowTag, Tag, TagGroup
from siyu.tags.schemas import TagCreate, TagGroupCreate, TagUpdate
from siyu.wecom.client import WeComClient
from siyu.wecom.errors import InvalidRequestError

ADD, EDIT, DELETE = "add_corp_tag", "edit_corp_tag", "del_corp_tag"
# WeCom's answer to an id that no longer exists: a retried delete has nothing left to do.
ERRCODE_INVALID_ID = 40068


def _placeholder() -> str:
    return f"{service.PENDING_PREFIX}{uuid.uuid4().hex}"


def _refuse_pending(wecom_id: str, what: str) -> None:
    if service.is_pending(wecom_id):
        raise DomainError(ErrorCode.CONFLICT, f"the {what} is still being created in WeCom; try again in a moment")


def _audit(session: Session, actor: Actor, action: str, object_type: str, object_id: int, **detail: Any) -> None:
    audit.record_by(session, actor, action=action, object_type=object_type, object_id=object_id, detail=detail)


def _unique_names(tags: list[TagCreate]) -> None:
    names = [t.name for t in tags]
    if len(set(names)) != len(names):
        raise DomainError(ErrorCode.CONFLICT, "the same tag name is given twice")


# --- local writes + outbox --------------------------------------------------------------------


def do_create_group(session: Session, actor: Actor, body: TagGroupCreate) -> tuple[TagGroup, WeComOutbox]:
    _unique_names(body.tags)
    if service.group_name_taken(session, corp_id=actor.corp_id, name=body.name):
        raise DomainError(ErrorCode.CONFLICT, f"a tag group named {body.name!r} already exists")
    now = now_utc()
    group = TagGroup(corp_id=actor.corp_id, wecom_id=_placeholder(), name=body.name, order=body.order, created_at=now)
    session.add(group)
    session.flush()
    tags = [_new_tag(session, actor.corp_id, group.id, t) for t in body.tags]
    payload = {
        "group_id": None,
        "group_name": group.name,
        "group_order": group.order,
        "group_pending_id": group.wecom_id,
        "tags": [{"name": t.name, "order": t.order, "pending_id": t.wecom_id} for t in tags],
    }
    row = do_enqueue(session, corp_id=actor.corp_id, kind=ADD, payload=payload, created_by=actor.label)
    _audit(session, actor, "tag_group.create", "tag_group", group.id, name=group.name, tags=[t.name for t in tags])
    return group, row


def _new_tag(session: Session, corp_id: int, group_id: int, body: TagCreate) -> Tag:
    tag = Tag(
        corp_id=corp_id,
        group_id=group_id,
        wecom_id=_placeholder(),
        name=body.name,
        order=body.order,
        created_at=now_utc(),
    )
    session.add(tag)
    session.flush()
    return tag


def do_add_tag(session: Session, actor: Actor, group: TagGroup, body: TagCreate) -> tuple[Tag, WeComOutbox]:
    _refuse_pending(group.wecom_id, "tag group")
    if service.name_taken_in_group(session, group_id=group.id, name=body.name):
        raise DomainError(ErrorCode.CONFLICT, f"the group already has a tag named {body.name!r}")
    tag = _new_tag(session, actor.corp_id, group.id, body)
    payload = {
        "group_id": group.wecom_id,
        "group_name": None,
        "group_order": None,
        "group_pending_id": None,
        "tags": [{"name": tag.name, "order": tag.order, "pending_id": tag.wecom_id}],
    }
    row = do_enqueue(session, corp_id=actor.corp_id, kind=ADD, payload=payload, created_by=actor.label)
    _audit(session, actor, "tag.create", "tag", tag.id, name=tag.name, group=group.name)
    return tag, row


def do_update_tag(session: Session, actor: Actor, tag: Tag, body: TagUpdate) -> WeComOutbox | None:
    _refuse_pending(tag.wecom_id, "tag")
    if body.name is not None and service.name_taken_in_group(
        session, group_id=tag.group_id, name=body.name, except_id=tag.id
    ):
        raise DomainError(ErrorCode.CONFLICT, f"the group already has a tag named {body.name!r}")
    return _edit(session, actor, tag, body, "tag")


def do_update_group(session: Session, actor: Actor, group: TagGroup, body: TagUpdate) -> WeComOutbox | None:
    _refuse_pending(group.wecom_id, "tag group")
    if body.name is not None and service.group_name_taken(
        session, corp_id=actor.corp_id, name=body.name, except_id=group.id
    ):
        raise DomainError(ErrorCode.CONFLICT, f"a tag group named {body.name!r} already exists")
    return _edit(session, actor, group, body, "tag_group")


def _edit(session: Session, actor: Actor, target: Tag | TagGroup, body: TagUpdate, kind: str) -> WeComOutbox | None:
    changes = {k: v for k, v in (("name", body.name), ("order", body.order)) if v is not None}
    changes = {k: v for k, v in changes.items() if getattr(target, k) != v}
    if not changes:
        return None
    before = {k: getattr(target, k) for k in changes}
    for key, value in changes.items():
        setattr(target, key, value)
    session.flush()
    row = do_enqueue(
        session, corp_id=actor.corp_id, kind=EDIT, payload={"id": target.wecom_id, **changes}, created_by=actor.label
    )
    _audit(session, actor, f"{kind}.update", kind, target.id, before=before, after=changes)
    return row


def do_delete_tag(session: Session, actor: Actor, tag: Tag) -> WeComOutbox:
    """Delete a tag (and its group when it was the last one, as WeCom does)."""
    _refuse_pending(tag.wecom_id, "tag")
    wecom_id, name, tag_id = tag.wecom_id, tag.name, tag.id
    mirror.do_delete_tag(session, actor.corp_id, wecom_id)
    row = do_enqueue(
        session, corp_id=actor.corp_id, kind=DELETE, payload={"tag_ids": [wecom_id]}, created_by=actor.label
    )
    _audit(session, actor, "tag.delete", "tag", tag_id, name=name, wecom_id=wecom_id)
    return row


def do_delete_group(session: Session, actor: Actor, group: TagGroup) -> WeComOutbox:
    _refuse_pending(group.wecom_id, "tag group")
    wecom_id, name, group_id = group.wecom_id, group.name, group.id
    mirror.do_delete_tag_group(session, actor.corp_id, wecom_id)
    row = do_enqueue(
        session, corp_id=actor.corp_id, kind=DELETE, payload={"group_ids": [wecom_id]}, created_by=actor.label
    )
    _audit(session, actor, "tag_group.delete", "tag_group", group_id, name=name, wecom_id=wecom_id)
    return row


# --- senders ------------------------------------------------------------------------------------


def _send_add(client: WeComClient, payload: dict[str, Any]) -> dict[str, Any]:
    group = client.add_corp_tag(
        group_id=payload.get("group_id") or None,
        group_name=None if payload.get("group_id") else payload.get("group_name"),
        order=payload.get("group_order") or None,
        tags=[(t["name"], int(t.get("order") or 0)) for t in payload["tags"]],
    )
    return group.model_dump()


def _after_add(session: Session, corp_id: int, payload: dict[str, Any], result: dict[str, Any] | None) -> None:
    """Give the placeholder rows the ids WeCom returned (or let rows a callback or sync mirrored win)."""
    if not result:
        return
    group_pk = _settle(session, TagGroup, corp_id, payload.get("group_pending_id"), str(result["group_id"]))
    if group_pk is None:
        group_pk = session.scalar(
            select(TagGroup.id).where(TagGroup.corp_id == corp_id, TagGroup.wecom_id == str(result["group_id"]))
        )
    by_name = {str(t["name"]): str(t["id"]) for t in result.get("tag", [])}
    for wanted in payload["tags"]:
        real = by_name.get(str(wanted["name"])[:30])
        if real is None:
            continue
        if _settle(session, Tag, corp_id, wanted["pending_id"], real) is None and group_pk is not None:
            _insert_if_missing(session, corp_id, group_pk, real, wanted)
    session.flush()


def _settle(
    session: Session, model: type[Tag] | type[TagGroup], corp_id: int, pending: str | None, real: str
) -> int | None:
    """Swap a placeholder id for the real one; returns the row's id, or None when the placeholder is gone."""
    if not pending:
        return None
    row = session.scalar(select(model).where(model.corp_id == corp_id, model.wecom_id == pending))
    if row is None:
        return None
    mirrored = session.scalar(select(model).where(model.corp_id == corp_id, model.wecom_id == real))
    if mirrored is None:
        row.wecom_id = real
        session.flush()
        return row.id
    if isinstance(row, Tag):
        _move_follow_tags(session, corp_id, row.id, mirrored.id)
    else:
        for tag in session.scalars(select(Tag).where(Tag.group_id == row.id)):
            tag.group_id = mirrored.id
    session.flush()
    session.delete(row)
    session.flush()
    return mirrored.id


def _move_follow_tags(session: Session, corp_id: int, from_tag: int, to_tag: int) -> None:
    have = set(session.scalars(select(FollowTag.follow_id).where(FollowTag.tag_id == to_tag)))
    moved: list[int] = []
    for link in session.scalars(select(FollowTag).where(FollowTag.tag_id == from_tag)):
        moved.append(link.follow_id)
        if link.follow_id in have:
            session.delete(link)
        else:
            link.tag_id = to_tag
    for part in chunks(moved):  # these customers' tags changed ids
        mark_dirty(session, corp_id, session.scalars(select(Follow.customer_id).where(Follow.id.in_(part))))


def _insert_if_missing(session: Session, corp_id: int, group_pk: int, real: str, wanted: dict[str, Any]) -> None:
    """The placeholder was removed meanwhile (a full sync ran before the send): mirror the new tag."""
    exists = session.scalar(select(Tag.id).where(Tag.corp_id == corp_id, Tag.wecom_id == real))
    if exists is None:
        session.add(
            Tag(
                corp_id=corp_id,
                group_id=group_pk,
                wecom_id=real,
                name=wanted["name"],
                order=int(wanted.get("order") or 0),
                created_at=now_utc(),
            )
        )


def _send_edit(client: WeComClient, payload: dict[str, Any]) -> None:
    client.edit_corp_tag(str(payload["id"]), name=payload.get("name"), order=payload.get("order"))


def _send_delete(client: WeComClient, payload: dict[str, Any]) -> dict[str, Any] | None:
    try:
        client.del_corp_tag(tag_ids=payload.get("tag_ids", []), group_ids=payload.get("group_ids", []))
    except InvalidRequestError as exc:
        if exc.errcode != ERRCODE_INVALID_ID:
            raise
        return {"already_gone": True}
    return None


register_sender(ADD, _send_add, _after_add)
register_sender(EDIT, _send_edit)
register_sender(DELETE, _send_delete)
