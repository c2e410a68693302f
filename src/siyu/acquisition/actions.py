"""Managing channel codes, channel groups, group codes, materials and welcome templates.

Each `do_*` validates against the corp's mirror (employees, departments, tags, groups), changes
the local rows, writes the audit row and enqueues the WeCom change in the caller's transaction:
a rolled-back edit never reaches WeCom and a committed one always does (outbox).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor
from siyu.acquisition import codes, outbox
from siyu.acquisition.models import (
    Channel,
    ChannelGroup,
    CodeStatus,
    GroupCode,
    Material,
    MaterialKind,
    WelcomeScope,
    WelcomeTemplate,
)
from siyu.acquisition.rotation import apply_serving
from siyu.acquisition.schemas import (
    MAX_CODE_USERS,
    ChannelGroupWrite,
    ChannelPatch,
    ChannelWrite,
    GroupCodeWrite,
    MaterialWrite,
    WelcomeContent,
    WelcomeTemplateWrite,
)
from siyu.contacts.models import Department, Employee, EmployeeStatus
from siyu.core import audit
from siyu.core.errors import DomainError, ErrorCode
from siyu.groups.models import GroupChat, GroupStatus
from siyu.tags.models import Tag

CHANNEL_STATE_PREFIX = "ch_"
GROUP_CODE_STATE_PREFIX = "gc_"
MAX_IMAGE_BYTES = 2 * 1024 * 1024  # WeCom's image upload limit (2 MB)


def _audit(session: Session, actor: Actor, action: str, object_type: str, object_id: int, **detail: Any) -> None:
    audit.record_by(session, actor, action=action, object_type=object_type, object_id=object_id, detail=detail)


def _invalid(message: str) -> DomainError:
    return DomainError(ErrorCode.INVALID, message)


# --- validation against the mirror --------------------------------------------------------------


def _check_userids(session: Session, corp_id: int, field: str, userids: Iterable[str]) -> None:
    wanted = set(userids)
    if not wanted:
        return
    active = set(
        session.scalars(
            select(Employee.userid).where(
                Employee.corp_id == corp_id,
                Employee.userid.in_(sorted(wanted)),
                Employee.status == EmployeeStatus.ACTIVE,
            )
        )
    )
    missing = sorted(wanted - active)
    if missing:
        raise _invalid(f"{field}: no active employee {', '.join(missing)}")


def _check_departments(session: Session, corp_id: int, party_ids: Iterable[int]) -> None:
    wanted = set(party_ids)
    if not wanted:
        return
    found = set(
        session.scalars(
            select(Department.wecom_id).where(Department.corp_id == corp_id, Department.wecom_id.in_(sorted(wanted)))
        )
    )
    missing = sorted(wanted - found)
    if missing:
        raise _invalid(f"party_ids: no department {', '.join(map(str, missing))}")


def _check_tags(session: Session, corp_id: int, tag_ids: Iterable[int]) -> None:
    wanted = set(tag_ids)
    if not wanted:
        return
    found = dict(
        session.execute(select(Tag.id, Tag.wecom_id).where(Tag.corp_id == corp_id, Tag.id.in_(sorted(wanted)))).all()
    )
    missing = sorted(wanted - set(found))
    if missing:
        raise _invalid(f"tag_ids: unknown tag(s) {', '.join(map(str, missing))}")


def _check_welcome(session: Session, corp_id: int, welcome: WelcomeContent | None) -> None:
    if welcome is None:
        return
    if welcome.material_ids:
        found = set(
            session.scalars(
                select(Material.id).where(Material.corp_id == corp_id, Material.id.in_(welcome.material_ids))
            )
        )
        missing = sorted(set(welcome.material_ids) - found)
        if missing:
            raise _invalid(f"welcome.material_ids: unknown material(s) {', '.join(map(str, missing))}")
    if welcome.group_code_id is not None:
        code = session.get(GroupCode, welcome.group_code_id)
        if code is None or code.corp_id != corp_id or code.status == CodeStatus.DELETED:
            raise _invalid(f"welcome.group_code_id: unknown group code {welcome.group_code_id}")


def _check_group(session: Session, corp_id: int, group_id: int | None) -> None:
    if group_id is None:
        return
    group = session.get(ChannelGroup, group_id)
    if group is None or group.corp_id != corp_id:
        raise _invalid(f"group_id: unknown channel group {group_id}")


def _check_code_size(userids: list[str], party_ids: list[int]) -> None:
    if len(set(userids)) + len(set(party_ids)) > MAX_CODE_USERS:
        raise _invalid(f"a code serves at most {MAX_CODE_USERS} employees and departments")


# --- channel groups -----------------------------------------------------------------------------


def _unique_group_name(session: Session, corp_id: int, name: str, exclude: int | None = None) -> None:
    stmt = select(ChannelGroup.id).where(ChannelGroup.corp_id == corp_id, ChannelGroup.name == name)
    if exclude is not None:
        stmt = stmt.where(ChannelGroup.id != exclude)
    if session.scalar(stmt) is not None:
        raise DomainError(ErrorCode.CONFLICT, f"a channel group named {name!r} already exists")


def do_create_channel_group(session: Session, actor: Actor, body: ChannelGroupWrite) -> ChannelGroup:
    _unique_group_name(session, actor.corp_id, body.name)
    group = ChannelGroup(corp_id=actor.corp_id, name=body.name, kind=body.kind)
    session.add(group)
    session.flush()
    _audit(session, actor, "channel_group.create", "channel_group", group.id, name=body.name, kind=body.kind)
    return group


def do_update_channel_group(session: Session, actor: Actor, group: ChannelGroup, body: ChannelGroupWrite) -> None:
    _unique_group_name(session, actor.corp_id, body.name, exclude=group.id)
    group.name, group.kind = body.name, body.kind
    session.flush()
    _audit(session, actor, "channel_group.update", "channel_group", group.id, name=body.name, kind=body.kind)


def do_delete_channel_group(session: Session, actor: Actor, group: ChannelGroup) -> None:
    """The group goes; its channels stay, ungrouped."""
    session.execute(update(Channel).where(Channel.group_id == group.id).values(group_id=None))
    _audit(session, actor, "channel_group.delete", "channel_group", group.id, name=group.name)
    session.delete(group)
    session.flush()


# --- channel codes ------------------------------------------------------------------------------


def _validate_channel(session: Session, corp_id: int, body: ChannelWrite) -> None:
    _check_group(session, corp_id, body.group_id)
    scheduled = [u for slot in body.schedule for u in slot.userids]
    _check_userids(session, corp_id, "userids", [*body.userids, *scheduled])
    _check_userids(session, corp_id, "backup_userids", body.backup_userids)
    _check_departments(session, corp_id, body.party_ids)
    _check_code_size(body.userids, body.party_ids)
    _check_tags(session, corp_id, body.tag_ids)
    _check_welcome(session, corp_id, body.welcome)


def _new_state(session: Session, corp_id: int, model: type[Channel] | type[GroupCode], prefix: str) -> str:
    while True:
        state = codes.new_state(prefix)
        if session.scalar(select(model.id).where(model.corp_id == corp_id, model.state == state)) is None:
            return state


def do_create_channel(session: Session, actor: Actor, body: ChannelWrite) -> Channel:
    _validate_channel(session, actor.corp_id, body)
    channel = Channel(
        corp_id=actor.corp_id,
        state=_new_state(session, actor.corp_id, Channel, CHANNEL_STATE_PREFIX),
        created_by=actor.label,
        **_channel_fields(body),
    )
    session.add(channel)
    session.flush()
    apply_serving(session, channel)
    outbox_id = outbox.enqueue_channel_add(session, channel, created_by=actor.label)
    _audit(session, actor, "channel.create", "channel", channel.id, name=channel.name, outbox_id=outbox_id)
    return channel


def _channel_fields(body: ChannelWrite) -> dict[str, Any]:
    return {
        "name": body.name,
        "group_id": body.group_id,
        "userids": list(dict.fromkeys(body.userids)),
        "party_ids": list(dict.fromkeys(body.party_ids)),
        "backup_userids": list(dict.fromkeys(body.backup_userids)),
        "daily_cap": body.daily_cap,
        "schedule": [slot.model_dump() for slot in body.schedule],
        "valid_from": body.valid_from,
        "valid_until": body.valid_until,
        "tag_ids": list(dict.fromkeys(body.tag_ids)),
        "welcome": body.welcome.model_dump() if body.welcome else None,
        "skip_verify": body.skip_verify,
        "remark": body.remark,
    }


def channel_as_write(channel: Channel) -> ChannelWrite:
    return ChannelWrite.model_validate(
        {
            "name": channel.name,
            "group_id": channel.group_id,
            "userids": channel.userids,
            "party_ids": channel.party_ids,
            "backup_userids": channel.backup_userids,
            "daily_cap": channel.daily_cap,
            "schedule": channel.schedule,
            "valid_from": channel.valid_from,
            "valid_until": channel.valid_until,
            "tag_ids": channel.tag_ids,
            "welcome": channel.welcome,
            "skip_verify": channel.skip_verify,
            "remark": channel.remark,
        }
    )


def do_update_channel(session: Session, actor: Actor, channel: Channel, patch: ChannelPatch) -> Channel:
    """Apply the fields sent (PATCH); the merged channel is validated as a whole, then pushed to WeCom."""
    if channel.status == CodeStatus.EXPIRED:
        raise DomainError(ErrorCode.CONFLICT, "the code expired and WeCom no longer serves it: create a new channel")
    merged = {**channel_as_write(channel).model_dump(), **patch.model_dump(exclude_unset=True)}
    try:
        body = ChannelWrite.model_validate(merged)
    except ValueError as exc:
        raise _invalid(str(exc)) from exc
    _validate_channel(session, actor.corp_id, body)
    for key, value in _channel_fields(body).items():
        setattr(channel, key, value)
    session.flush()
    apply_serving(session, channel)
    outbox_id = outbox.enqueue_channel_push(session, channel, created_by=actor.label)
    _audit(
        session,
        actor,
        "channel.update",
        "channel",
        channel.id,
        fields=sorted(patch.model_dump(exclude_unset=True)),
        outbox_id=outbox_id,
    )
    return channel


def do_delete_channel(session: Session, actor: Actor, channel: Channel) -> int | None:
    """The code stops working in WeCom; the channel and its history stay for the funnels."""
    channel.status = CodeStatus.DELETED
    session.flush()
    outbox_id = outbox.enqueue_channel_delete(session, channel, created_by=actor.label)
    _audit(session, actor, "channel.delete", "channel", channel.id, name=channel.name, outbox_id=outbox_id)
    return outbox_id


# --- group codes --------------------------------------------------------------------------------


def _validate_group_code(session: Session, corp_id: int, body: GroupCodeWrite) -> None:
    found = set(
        session.scalars(
            select(GroupChat.chat_id).where(
                GroupChat.corp_id == corp_id,
                GroupChat.chat_id.in_(body.chat_ids),
                GroupChat.status == GroupStatus.ACTIVE,
            )
        )
    )
    missing = [c for c in body.chat_ids if c not in found]
    if missing:
        raise _invalid(f"chat_ids: no active group {', '.join(missing)}")
    _check_tags(session, corp_id, body.tag_ids)


def _group_code_fields(body: GroupCodeWrite) -> dict[str, Any]:
    return {
        "name": body.name,
        "chat_ids": list(dict.fromkeys(body.chat_ids)),
        "auto_create_room": body.auto_create_room,
        "room_base_name": body.room_base_name.strip(),
        "room_base_id": body.room_base_id,
        "tag_ids": list(dict.fromkeys(body.tag_ids)),
        "welcome_text": body.welcome_text,
        "remark": body.remark,
    }


def do_create_group_code(session: Session, actor: Actor, body: GroupCodeWrite) -> GroupCode:
    _validate_group_code(session, actor.corp_id, body)
    code = GroupCode(
        corp_id=actor.corp_id,
        state=_new_state(session, actor.corp_id, GroupCode, GROUP_CODE_STATE_PREFIX),
        created_by=actor.label,
        **_group_code_fields(body),
    )
    session.add(code)
    session.flush()
    outbox_id = outbox.enqueue_group_code_add(session, code, created_by=actor.label)
    outbox.enqueue_group_welcome(session, code, created_by=actor.label)
    _audit(session, actor, "group_code.create", "group_code", code.id, name=code.name, outbox_id=outbox_id)
    return code


def do_update_group_code(session: Session, actor: Actor, code: GroupCode, body: GroupCodeWrite) -> GroupCode:
    _validate_group_code(session, actor.corp_id, body)
    welcome_changed = body.welcome_text != code.welcome_text
    for key, value in _group_code_fields(body).items():
        setattr(code, key, value)
    session.flush()
    outbox_id = outbox.enqueue_group_code_push(session, code, created_by=actor.label)
    if welcome_changed:
        outbox.enqueue_group_welcome(session, code, created_by=actor.label)
    _audit(session, actor, "group_code.update", "group_code", code.id, name=code.name, outbox_id=outbox_id)
    return code


def do_delete_group_code(session: Session, actor: Actor, code: GroupCode) -> int | None:
    code.status = CodeStatus.DELETED
    session.flush()
    outbox_id = outbox.enqueue_group_code_delete(session, code, created_by=actor.label)
    _audit(session, actor, "group_code.delete", "group_code", code.id, name=code.name, outbox_id=outbox_id)
    return outbox_id


# --- materials ----------------------------------------------------------------------------------

IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg"}


def do_create_material(
    session: Session, actor: Actor, body: MaterialWrite, image: tuple[bytes, str] | None = None
) -> Material:
    """A welcome attachment; images (and mini-program covers) may be uploaded as PNG or JPEG ≤ 2 MB."""
    if image is not None:
        data, content_type = image
        if content_type not in IMAGE_TYPES:
            raise _invalid("image: only PNG and JPEG images are accepted")
        if not data or len(data) > MAX_IMAGE_BYTES:
            raise _invalid("image: the file must be between 1 byte and 2 MB")
    if body.kind == MaterialKind.IMAGE and image is None and not body.pic_url:
        raise _invalid("an image needs an uploaded file or a pic_url")
    if body.kind == MaterialKind.MINIPROGRAM and image is None:
        raise _invalid("a mini-program needs a cover image upload")
    material = Material(
        corp_id=actor.corp_id,
        kind=body.kind,
        title=body.title.strip(),
        url=body.url,
        pic_url=body.pic_url,
        description=body.description,
        appid=body.appid,
        page=body.page,
        image_data=image[0] if image else None,
        image_type=image[1] if image else "",
    )
    session.add(material)
    session.flush()
    _audit(session, actor, "material.create", "material", material.id, kind=material.kind, title=material.title)
    return material


def do_delete_material(session: Session, actor: Actor, material: Material) -> None:
    """Welcomes that listed it simply stop attaching it."""
    _audit(session, actor, "material.delete", "material", material.id, kind=material.kind, title=material.title)
    session.delete(material)
    session.flush()


# --- default welcome messages --------------------------------------------------------------------


def do_put_welcome_template(session: Session, actor: Actor, body: WelcomeTemplateWrite) -> WelcomeTemplate:
    """Create or replace the default welcome of one scope (an employee, a department, the corp)."""
    if body.scope == WelcomeScope.EMPLOYEE:
        _check_userids(session, actor.corp_id, "scope_key", [body.scope_key])
    elif body.scope == WelcomeScope.DEPARTMENT:
        _check_departments(session, actor.corp_id, [int(body.scope_key)])
    _check_welcome(session, actor.corp_id, body.content)
    template = session.scalar(
        select(WelcomeTemplate).where(
            WelcomeTemplate.corp_id == actor.corp_id,
            WelcomeTemplate.scope == body.scope,
            WelcomeTemplate.scope_key == body.scope_key,
        )
    )
    if template is None:
        template = WelcomeTemplate(corp_id=actor.corp_id, scope=body.scope, scope_key=body.scope_key)
        session.add(template)
    template.text = body.content.text
    template.material_ids = list(body.content.material_ids)
    template.group_code_id = body.content.group_code_id
    template.enabled = body.enabled
    session.flush()
    _audit(
        session, actor, "welcome_template.put", "welcome_template", template.id, scope=body.scope, key=body.scope_key
    )
    return template


def do_delete_welcome_template(session: Session, actor: Actor, template: WelcomeTemplate) -> None:
    _audit(
        session,
        actor,
        "welcome_template.delete",
        "welcome_template",
        template.id,
        scope=template.scope,
        key=template.scope_key,
    )
    session.delete(template)
    session.flush()


def channel_count(session: Session, corp_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Channel).where(Channel.corp_id == corp_id)) or 0
