"""How channel codes and group codes reach WeCom from the outbox.

Payloads are snapshots taken when the change was stored. A code is created once
(add_contact_way / add_join_way); its `after` step stores the config_id and QR URL WeCom
returned and, if the code changed while the add was in flight, enqueues one update with the
current configuration, so an edit made before WeCom answered is never lost. Deletes of an id
WeCom no longer knows count as done, so a retried delete is harmless. A lost answer to an add
can leave an orphan config in WeCom carrying our state; `reconcile` finds and deletes those.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from siyu.acquisition.models import Channel, CodeStatus, GroupCode
from siyu.outbox.actions import do_enqueue, register_sender
from siyu.wecom.client import WeComClient
from siyu.wecom.errors import ApiError

ADD_CONTACT_WAY, UPDATE_CONTACT_WAY, DEL_CONTACT_WAY = "add_contact_way", "update_contact_way", "del_contact_way"
ADD_JOIN_WAY, UPDATE_JOIN_WAY, DEL_JOIN_WAY = "add_join_way", "update_join_way", "del_join_way"
ADD_GROUP_WELCOME, EDIT_GROUP_WELCOME = "add_group_welcome", "edit_group_welcome"
# WeCom's answers for a config id it does not know (contact way 41044, join way 41044/40058 per doc copies).
GONE_ERRCODES = frozenset({41044, 41043})


def contact_way_config(channel: Channel) -> dict[str, Any]:
    """The config WeCom should hold for the channel now (what update_contact_way overwrites)."""
    # Always type 2 (multi-member), even with one employee: WeCom fixes the type at creation, and the
    # rotation must be able to put several employees (or backups) on the same printed code later.
    return {
        "type": 2,
        "state": channel.state,
        "user": list(channel.live_userids),
        "party": list(channel.live_party_ids),
        "skip_verify": channel.skip_verify,
        "remark": channel.remark,
    }


def _config_part(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: payload.get(k) for k in ("user", "party", "skip_verify", "remark")}


def enqueue_channel_push(session: Session, channel: Channel, *, created_by: str) -> int | None:
    """Send the channel's current configuration: an update once WeCom knows the code; before that the add's
    after-step sends it. Returns the outbox id, if a row was written."""
    if not channel.config_id:
        return None
    payload = {"channel_id": channel.id, "config_id": channel.config_id, **contact_way_config(channel)}
    return do_enqueue(
        session, corp_id=channel.corp_id, kind=UPDATE_CONTACT_WAY, payload=payload, created_by=created_by
    ).id


def enqueue_channel_add(session: Session, channel: Channel, *, created_by: str) -> int:
    payload = {"channel_id": channel.id, **contact_way_config(channel)}
    return do_enqueue(session, corp_id=channel.corp_id, kind=ADD_CONTACT_WAY, payload=payload, created_by=created_by).id


def enqueue_channel_delete(session: Session, channel: Channel, *, created_by: str) -> int | None:
    if not channel.config_id:
        return None  # the add's after-step deletes it once WeCom answers
    payload = {"channel_id": channel.id, "config_id": channel.config_id}
    return do_enqueue(session, corp_id=channel.corp_id, kind=DEL_CONTACT_WAY, payload=payload, created_by=created_by).id


def _send_add_contact_way(client: WeComClient, payload: dict[str, Any]) -> dict[str, Any]:
    created = client.add_contact_way(
        type=int(payload["type"]),
        scene=2,
        state=str(payload["state"]),
        user=list(payload["user"]),
        party=list(payload["party"]),
        skip_verify=bool(payload["skip_verify"]),
        remark=str(payload["remark"]),
    )
    return {"config_id": created.config_id, "qr_code": created.qr_code}


def _after_add_contact_way(
    session: Session, corp_id: int, payload: dict[str, Any], result: dict[str, Any] | None
) -> None:
    channel = session.get(Channel, int(payload["channel_id"]))
    if channel is None or result is None:
        return
    channel.config_id, channel.qr_url, channel.sync_error = str(result["config_id"]), str(result["qr_code"]), ""
    session.flush()
    if channel.status in (CodeStatus.DELETED, CodeStatus.EXPIRED):
        enqueue_channel_delete(session, channel, created_by="outbox")
    elif _config_part(contact_way_config(channel)) != _config_part(payload):
        enqueue_channel_push(session, channel, created_by="outbox")


def _send_update_contact_way(client: WeComClient, payload: dict[str, Any]) -> None:
    client.update_contact_way(
        str(payload["config_id"]),
        user=list(payload["user"]),
        party=list(payload["party"]),
        skip_verify=bool(payload["skip_verify"]),
        remark=str(payload["remark"]),
        state=str(payload["state"]),
    )


def _send_del_contact_way(client: WeComClient, payload: dict[str, Any]) -> None:
    try:
        client.del_contact_way(str(payload["config_id"]))
    except ApiError as exc:
        if exc.errcode not in GONE_ERRCODES:
            raise


def join_way_config(code: GroupCode) -> dict[str, Any]:
    return {
        "scene": 2,
        "remark": code.remark,
        "auto_create_room": code.auto_create_room,
        "room_base_name": code.room_base_name,
        "room_base_id": code.room_base_id,
        "chat_id_list": list(code.chat_ids),
        "state": code.state,
    }


def enqueue_group_code_add(session: Session, code: GroupCode, *, created_by: str) -> int:
    payload = {"group_code_id": code.id, **join_way_config(code)}
    return do_enqueue(session, corp_id=code.corp_id, kind=ADD_JOIN_WAY, payload=payload, created_by=created_by).id


def enqueue_group_code_push(session: Session, code: GroupCode, *, created_by: str) -> int | None:
    if not code.config_id:
        return None
    payload = {"group_code_id": code.id, "config_id": code.config_id, **join_way_config(code)}
    return do_enqueue(session, corp_id=code.corp_id, kind=UPDATE_JOIN_WAY, payload=payload, created_by=created_by).id


def enqueue_group_code_delete(session: Session, code: GroupCode, *, created_by: str) -> int | None:
    if not code.config_id:
        return None
    payload = {"group_code_id": code.id, "config_id": code.config_id}
    return do_enqueue(session, corp_id=code.corp_id, kind=DEL_JOIN_WAY, payload=payload, created_by=created_by).id


def enqueue_group_welcome(session: Session, code: GroupCode, *, created_by: str) -> int | None:
    """The group welcome template (入群欢迎语) for the code's groups: created once, then edited."""
    if not code.welcome_text.strip():
        return None
    kind = EDIT_GROUP_WELCOME if code.welcome_template_id else ADD_GROUP_WELCOME
    payload = {"group_code_id": code.id, "template_id": code.welcome_template_id, "text": code.welcome_text}
    return do_enqueue(session, corp_id=code.corp_id, kind=kind, payload=payload, created_by=created_by).id


def _join_way_args(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "scene": int(payload["scene"]),
        "remark": str(payload["remark"]),
        "auto_create_room": int(bool(payload["auto_create_room"])),
        "room_base_name": str(payload["room_base_name"]),
        "room_base_id": int(payload["room_base_id"]),
        "chat_id_list": list(payload["chat_id_list"]),
        "state": str(payload["state"]),
    }


def _send_add_join_way(client: WeComClient, payload: dict[str, Any]) -> dict[str, Any]:
    config_id = client.add_join_way(**_join_way_args(payload))
    return {"config_id": config_id, "qr_code": client.get_join_way(config_id).qr_code}


def _after_add_join_way(session: Session, corp_id: int, payload: dict[str, Any], result: dict[str, Any] | None) -> None:
    code = session.get(GroupCode, int(payload["group_code_id"]))
    if code is None or result is None:
        return
    code.config_id, code.qr_url, code.sync_error = str(result["config_id"]), str(result["qr_code"]), ""
    session.flush()
    if code.status == CodeStatus.DELETED:
        enqueue_group_code_delete(session, code, created_by="outbox")
    elif join_way_config(code) != {k: payload.get(k) for k in join_way_config(code)}:
        enqueue_group_code_push(session, code, created_by="outbox")


def _send_update_join_way(client: WeComClient, payload: dict[str, Any]) -> None:
    client.update_join_way(str(payload["config_id"]), **_join_way_args(payload))


def _send_del_join_way(client: WeComClient, payload: dict[str, Any]) -> None:
    try:
        client.del_join_way(str(payload["config_id"]))
    except ApiError as exc:
        if exc.errcode not in GONE_ERRCODES:
            raise


def _send_add_group_welcome(client: WeComClient, payload: dict[str, Any]) -> dict[str, Any]:
    return {"template_id": client.add_group_welcome_template(str(payload["text"]))}


def _after_add_group_welcome(
    session: Session, corp_id: int, payload: dict[str, Any], result: dict[str, Any] | None
) -> None:
    code = session.get(GroupCode, int(payload["group_code_id"]))
    if code is None or result is None:
        return
    code.welcome_template_id = str(result["template_id"])
    session.flush()
    if code.welcome_text != payload["text"]:
        enqueue_group_welcome(session, code, created_by="outbox")


def _send_edit_group_welcome(client: WeComClient, payload: dict[str, Any]) -> None:
    client.edit_group_welcome_template(str(payload["template_id"]), str(payload["text"]))


register_sender(ADD_CONTACT_WAY, _send_add_contact_way, _after_add_contact_way)
register_sender(UPDATE_CONTACT_WAY, _send_update_contact_way)
register_sender(DEL_CONTACT_WAY, _send_del_contact_way)
register_sender(ADD_JOIN_WAY, _send_add_join_way, _after_add_join_way)
register_sender(UPDATE_JOIN_WAY, _send_update_join_way)
register_sender(DEL_JOIN_WAY, _send_del_join_way)
register_sender(ADD_GROUP_WELCOME, _send_add_group_welcome, _after_add_group_welcome)
register_sender(EDIT_GROUP_WELCOME, _send_edit_group_welcome)
