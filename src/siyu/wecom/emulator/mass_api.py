"""The emulated mass-message and Moments endpoints (reference §3.10–3.12); behaviour lives in mass.py.

Where WeCom's docs leave a choice to us:

* add_msg_template requires `sender` for both chat types (WeCom allows a customer list without one
  and then asks whoever last chatted with each customer). Given only `sender`, the task covers every
  customer of the sender (single) or every group they own (group), as WeCom documents. `fail_list`
  holds the external_userids that are unknown or not the sender's customers (the chat_ids unknown or
  not owned by the sender); nobody left to send to is 41048. More than 10,000 customers, 2,000 chats
  or 9 attachments is 40058; an attachment whose `msgtype` is unknown or does not match its payload
  key is 41065; text over 4000 bytes 45002; text and attachments both empty 40058; `tag_filter` 40058
  (not emulated, so never silently ignored).
* get_groupmsg_list_v2: `chat_type`, `start_time` and `end_time` are required, the range is at most
  31 days (40058 otherwise), `limit` defaults to 50 and larger values clamp to 100; oldest first.
  `creator` is the sender for API-created tasks too.
* get_groupmsg_task / get_groupmsg_send_result: `limit` defaults to 500, clamps to 1000; 41063 for
  `dispatch_seconds` after the task was created (default 0: never); an unknown userid gives an empty list.
* remind_groupmsg_send: the 4th remind of a msgid within 24 hours is 45047 (WeCom documents the limit, not
  the errcode). Missing msgid 41046, unknown 41047.
* add_moment_task: at most 9 images, or 1 video, or 1 link (no mixing, 40058); media ids from
  media/upload are accepted (WeCom wants media/upload_attachment). get_moment_task_result is GET with
  `jobid`; unknown jobid 40058. A job without any valid sender finishes with `result.errcode` 40058.
  get_moment_task before the job is done, or for an unknown moment_id, is 40058.
"""

from __future__ import annotations

from typing import Any

from siyu.wecom.emulator import mass
from siyu.wecom.emulator.api import (
    _ATTACHMENT_RULES,
    WELCOME_TEXT_MAX_BYTES,
    Call,
    Handler,
    Json,
    _body_int,
    _body_str,
    _body_str_list,
    _check_message_part,
    _fingerprint,
    _query,
    _text_content,
    decode_cursor,
    encode_cursor,
)
from siyu.wecom.emulator.state import DAY, EmulatorError, EmulatorState, MassSender, MassTask, MomentTask

MAX_CUSTOMERS = 10_000
MAX_CHATS = 2_000
MAX_ATTACHMENTS = 9
INVALID_ATTACHMENT = 41065
LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT = 50, 100
TASK_DEFAULT_LIMIT, TASK_MAX_LIMIT = 500, 1000
LIST_MAX_SPAN = 31 * DAY
CHAT_TYPES = ("single", "group")


def _limit(call: Call, default: int, maximum: int) -> int:
    limit = _body_int(call, "limit", default)
    return default if limit <= 0 else min(limit, maximum)


def _message_attachments(state: EmulatorState, call: Call) -> list[Json]:
    items = call.body.get("attachments") or []
    if not isinstance(items, list):
        raise EmulatorError(40058, "field `attachments` must be a list")
    if len(items) > MAX_ATTACHMENTS:
        raise EmulatorError(40058, f"at most {MAX_ATTACHMENTS} attachments")
    for item in items:
        msgtype = item.get("msgtype") if isinstance(item, dict) else None
        if msgtype not in _ATTACHMENT_RULES or not isinstance(item.get(msgtype), dict):
            raise EmulatorError(INVALID_ATTACHMENT, f"invalid attachment type: msgtype {msgtype!r} with its payload")
        _check_message_part(state, msgtype, item[msgtype])
    return items


def _message_content(state: EmulatorState, call: Call) -> tuple[str, list[Json]]:
    text = _text_content(call, WELCOME_TEXT_MAX_BYTES)
    attachments = _message_attachments(state, call)
    if not text and not attachments:
        raise EmulatorError(40058, "text and attachments cannot both be empty")
    return text, attachments


def _sender(state: EmulatorState, call: Call) -> str:
    sender = _body_str(call, "sender", required=False)
    if not sender:
        raise EmulatorError(40058, "missing field `sender` (the siyu emulator requires it)")
    if state.require_employee(sender).status != 1:
        raise EmulatorError(40098, f"user not activated or disabled: {sender}")
    return sender


def _recipients(state: EmulatorState, call: Call, chat_type: str, sender: str) -> tuple[list[str], list[str]]:
    """(recipients, fail_list) for the sender."""
    if chat_type == "single":
        asked = list(dict.fromkeys(_body_str_list(call, "external_userid", max_items=MAX_CUSTOMERS)))
        if not asked:
            follows = state.follow_lists.get(sender)
            return ([f.external_userid for f in follows.items] if follows else []), []
        failed = [e for e in asked if state.follow(sender, e) is None]
    else:
        asked = list(dict.fromkeys(_body_str_list(call, "chat_id_list", max_items=MAX_CHATS)))
        if not asked:
            return [g.chat_id for g in state.group_list() if g.owner == sender], []
        failed = [c for c in asked if c not in state.groups or state.groups[c].owner != sender]
    rejected = set(failed)
    return [r for r in asked if r not in rejected], failed


def add_msg_template(state: EmulatorState, call: Call) -> Json:
    mass.advance(state)
    chat_type = call.body.get("chat_type") or "single"
    if chat_type not in CHAT_TYPES:
        raise EmulatorError(40058, "chat_type must be single or group")
    if call.body.get("tag_filter"):
        raise EmulatorError(40058, "tag_filter is not supported by the siyu emulator")
    sender = _sender(state, call)
    text, attachments = _message_content(state, call)
    recipients, failed = _recipients(state, call, chat_type, sender)
    if not recipients:
        raise EmulatorError(mass.NO_RECIPIENTS, "no customer to send: every recipient failed")
    task = mass.create_mass_task(
        state,
        chat_type=chat_type,
        sender=sender,
        recipients=recipients,
        text=text,
        attachments=attachments,
        allow_select=bool(call.body.get("allow_select")),
    )
    return {"fail_list": failed, "msgid": task.msgid}


def _required_int(call: Call, name: str) -> int:
    if call.body.get(name) in (None, ""):
        raise EmulatorError(40058, f"missing field `{name}`")
    return _body_int(call, name, 0)


def _list_filter(call: Call) -> tuple[str, int, int, str, int]:
    chat_type = _body_str(call, "chat_type")
    if chat_type not in CHAT_TYPES:
        raise EmulatorError(40058, "chat_type must be single or group")
    start, end = _required_int(call, "start_time"), _required_int(call, "end_time")
    if end < start or end - start > LIST_MAX_SPAN:
        raise EmulatorError(40058, "start_time..end_time must be a range of at most one month")
    filter_type = _body_int(call, "filter_type", 2)
    if filter_type not in (0, 1, 2):
        raise EmulatorError(40058, "filter_type must be 0, 1 or 2")
    return chat_type, start, end, _body_str(call, "creator", required=False), filter_type


def _matches(task: MassTask, chat_type: str, start: int, end: int, creator: str, filter_type: int) -> bool:
    return (
        task.chat_type == chat_type
        and start <= int(task.created_at) <= end
        and (not creator or task.creator == creator)
        and (filter_type == 2 or task.create_type == filter_type)
    )


def _group_msg_json(task: MassTask) -> Json:
    data: Json = {
        "msgid": task.msgid,
        "creator": task.creator,
        "create_time": str(int(task.created_at)),  # a string, as WeCom sends it
        "create_type": task.create_type,
    }
    if task.text:
        data["text"] = {"content": task.text}
    data["attachments"] = list(task.attachments)
    return data


def get_groupmsg_list_v2(state: EmulatorState, call: Call) -> Json:
    mass.advance(state)
    criteria = _list_filter(call)
    limit = _limit(call, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)
    fingerprint = _fingerprint("groupmsg_list", *criteria)
    cursor = str(call.body.get("cursor") or "")
    (after,) = decode_cursor(cursor, fingerprint, 1) if cursor else (0,)
    found = [t for t in state.mass_tasks.values() if t.seq > after and _matches(t, *criteria)]
    page = found[:limit]
    return {
        "group_msg_list": [_group_msg_json(t) for t in page],
        "next_cursor": encode_cursor(fingerprint, page[-1].seq) if len(found) > limit else "",
    }


def _offset_page(call: Call, items: list[Any], *key: object) -> tuple[list[Any], str]:
    """A page of items by offset, with a cursor tied to the request's key."""
    limit = _limit(call, TASK_DEFAULT_LIMIT, TASK_MAX_LIMIT)
    fingerprint = _fingerprint(*key)
    cursor = str(call.body.get("cursor") or "")
    (start,) = decode_cursor(cursor, fingerprint, 1) if cursor else (0,)
    more = start + limit < len(items)
    return items[start : start + limit], encode_cursor(fingerprint, start + limit) if more else ""


def _dispatched_task(state: EmulatorState, call: Call) -> MassTask:
    mass.advance(state)
    task = mass.require_task(state, call.body.get("msgid"))
    mass.check_dispatched(state, task)
    return task


def get_groupmsg_task(state: EmulatorState, call: Call) -> Json:
    task = _dispatched_task(state, call)
    items = [_sender_json(member) for member in task.senders.values()]
    page, next_cursor = _offset_page(call, items, "groupmsg_task", task.msgid)
    return {"task_list": page, "next_cursor": next_cursor}


def _sender_json(member: MassSender) -> Json:
    if member.decision != "sent":
        return {"userid": member.userid, "status": 0}
    return {"userid": member.userid, "status": 2, "send_time": member.send_time}


def get_groupmsg_send_result(state: EmulatorState, call: Call) -> Json:
    task = _dispatched_task(state, call)
    userid = _body_str(call, "userid")
    member = task.senders.get(userid)
    key = "chat_id" if task.chat_type == "group" else "external_userid"
    items = [_result_json(member, key, r) for r in member.recipients] if member else []
    page, next_cursor = _offset_page(call, items, "groupmsg_send_result", task.msgid, userid)
    return {"send_list": page, "next_cursor": next_cursor}


def _result_json(member: MassSender, key: str, recipient: str) -> Json:
    status, send_time = member.results.get(recipient, (mass.NOT_SENT, 0))
    item: Json = {key: recipient, "userid": member.userid, "status": status}
    if send_time:
        item["send_time"] = send_time
    return item


def remind_groupmsg_send(state: EmulatorState, call: Call) -> Json:
    mass.advance(state)
    mass.remind(state, call.body.get("msgid"))
    return {}


def cancel_groupmsg_send(state: EmulatorState, call: Call) -> Json:
    mass.advance(state)
    mass.cancel(state, call.body.get("msgid"))
    return {}


# --- Moments --------------------------------------------------------------------------------------


def _moment_attachments(state: EmulatorState, call: Call) -> list[Json]:
    raw = call.body.get("attachments") or []
    kinds = {item.get("msgtype") for item in raw if isinstance(item, dict)} if isinstance(raw, list) else set()
    if kinds - {"image", "video", "link"}:
        raise EmulatorError(INVALID_ATTACHMENT, "moments take image, video or link attachments")
    items = _message_attachments(state, call)
    if len(kinds) > 1 or (kinds & {"video", "link"} and len(items) > 1):
        raise EmulatorError(40058, "moments take up to 9 images, or 1 video, or 1 link, not a mix")
    return items


def _visible_range(call: Call) -> tuple[list[str], list[int], list[str]]:
    visible = call.body.get("visible_range") or {}
    if not isinstance(visible, dict):
        raise EmulatorError(40058, "field `visible_range` must be an object")
    senders, externals = visible.get("sender_list") or {}, visible.get("external_contact_list") or {}
    if not isinstance(senders, dict) or not isinstance(externals, dict):
        raise EmulatorError(40058, "sender_list and external_contact_list must be objects")
    users, departments = senders.get("user_list") or [], senders.get("department_list") or []
    tags = externals.get("tag_list") or []
    if not all(isinstance(v, str) for v in [*users, *tags]) or not all(type(d) is int for d in departments):
        raise EmulatorError(40058, "user_list and tag_list take strings, department_list integers")
    return list(users), list(departments), list(tags)


def add_moment_task(state: EmulatorState, call: Call) -> Json:
    mass.advance(state)
    text = _text_content(call, WELCOME_TEXT_MAX_BYTES)
    attachments = _moment_attachments(state, call)
    if not text and not attachments:
        raise EmulatorError(40058, "text and attachments cannot both be empty")
    users, departments, tags = _visible_range(call)
    task = mass.create_moment_task(
        state, text=text, attachments=attachments, users=users, departments=departments, tags=tags
    )
    return {"jobid": task.jobid}


def _moment_result(task: MomentTask) -> Json:
    invalid = {
        "invalid_sender_list": {"user_list": task.invalid_users, "department_list": task.invalid_departments},
        "invalid_external_contact_list": {"tag_list": task.invalid_tags},
    }
    if not task.senders:
        return {"errcode": 40058, "errmsg": "no valid sender in visible_range", **invalid}
    return {"errcode": 0, "errmsg": "ok", "moment_id": task.moment_id, **invalid}


def get_moment_task_result(state: EmulatorState, call: Call) -> Json:
    mass.advance(state)
    jobid = _query(call, "jobid")
    task = state.moment_tasks.get(jobid)
    if task is None or state.clock() > task.created_at + DAY:
        raise EmulatorError(40058, f"invalid jobid: {jobid}")
    status = mass.moment_job_status(state, task)
    data: Json = {"status": status, "type": "add_moment_task"}
    if status == 3:
        data["result"] = _moment_result(task)
    return data


def get_moment_task(state: EmulatorState, call: Call) -> Json:
    mass.advance(state)
    task = mass.require_moment(state, call.body.get("moment_id"))
    items = [
        {"userid": m.userid, "publish_status": 1 if m.decision == "published" else 0} for m in task.senders.values()
    ]
    page, next_cursor = _offset_page(call, items, "moment_task", task.moment_id)
    return {"task_list": page, "next_cursor": next_cursor}


MASS_ROUTES: dict[str, tuple[str, Handler]] = {
    "externalcontact/add_msg_template": ("POST", add_msg_template),
    "externalcontact/get_groupmsg_list_v2": ("POST", get_groupmsg_list_v2),
    "externalcontact/get_groupmsg_task": ("POST", get_groupmsg_task),
    "externalcontact/get_groupmsg_send_result": ("POST", get_groupmsg_send_result),
    "externalcontact/remind_groupmsg_send": ("POST", remind_groupmsg_send),
    "externalcontact/cancel_groupmsg_send": ("POST", cancel_groupmsg_send),
    "externalcontact/add_moment_task": ("POST", add_moment_task),
    "externalcontact/get_moment_task_result": ("GET", get_moment_task_result),
    "externalcontact/get_moment_task": ("POST", get_moment_task),
}
