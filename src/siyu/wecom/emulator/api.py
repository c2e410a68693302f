"""The emulated `/cgi-bin/...` endpoints: request → state → WeCom-shaped JSON (reference §3).

Handlers are plain functions of (state, call) returning the success body without errcode/errmsg;
they raise EmulatorError for WeCom errors. They change state silently: as in WeCom, API calls
produce no callbacks. Shapes follow the reference exactly, including the quirks (`get` gives
`follow_user[]` with `tags[]` objects, `batch/get_by_user` gives one `follow_info{}` with `tag_id[]`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import weakref
import zlib
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from siyu.wecom.emulator.state import (
    Customer,
    Department,
    Employee,
    EmulatorError,
    EmulatorState,
    Follow,
    GroupChat,
    Tag,
    TagGroup,
)

BATCH_MAX_USERS = 100
BATCH_MAX_LIMIT = 100
BATCH_DEFAULT_LIMIT = 50
GET_FOLLOW_PAGE = 500
Json = dict[str, Any]


@dataclass(slots=True)
class Call:
    """One API request: the query string and the JSON body (empty for GET)."""

    query: Mapping[str, str]
    body: Json


Handler = Callable[[EmulatorState, Call], Json]


# --- parameters and cursors --------------------------------------------------------------------


def _query(call: Call, name: str, errcode: int = 40058) -> str:
    value = call.query.get(name, "")
    if not value:
        raise EmulatorError(errcode, f"missing parameter `{name}`")
    return value


def _body_str(call: Call, name: str, *, required: bool = True, max_len: int | None = None) -> str:
    value = call.body.get(name)
    if value is None or value == "":
        if required:
            raise EmulatorError(40058, f"missing field `{name}`")
        return ""
    if not isinstance(value, str):
        raise EmulatorError(40058, f"field `{name}` must be a string")
    if max_len is not None and len(value) > max_len:
        raise EmulatorError(40058, f"field `{name}` exceeds max length {max_len}")
    return value


def _body_str_list(call: Call, name: str, *, max_items: int | None = None) -> list[str]:
    value = call.body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EmulatorError(40058, f"field `{name}` must be a list of strings")
    if max_items is not None and len(value) > max_items:
        raise EmulatorError(40058, f"field `{name}` exceeds max size {max_items}")
    return value


def _body_int(call: Call, name: str, default: int) -> int:
    value = call.body.get(name, default)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise EmulatorError(40058, f"field `{name}` must be an integer") from None


def encode_cursor(fingerprint: int, *parts: int) -> str:
    raw = struct.pack(f">I{len(parts)}q", fingerprint & 0xFFFFFFFF, *parts)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: int, n: int) -> tuple[int, ...]:
    """The parts of a cursor we issued for the same request; anything else is 40058 invalid cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fp, *parts = struct.unpack(f">I{n}q", raw)
    except (binascii.Error, ValueError, struct.error):
        raise EmulatorError(40058, "invalid cursor") from None
    if fp != fingerprint & 0xFFFFFFFF:
        raise EmulatorError(40058, "invalid cursor: it belongs to a different request")
    return tuple(parts)


def _fingerprint(*values: object) -> int:
    return zlib.crc32(repr(values).encode())


# --- serializers ---------------------------------------------------------------------------------


def department_json(d: Department) -> Json:
    return {
        "id": d.id,
        "name": d.name,
        "name_en": d.name_en,
        "parentid": d.parentid,
        "order": d.order,
        "department_leader": list(d.department_leader),
    }


def user_json(e: Employee) -> Json:
    """user/get as WeCom sends it (gender is a string there)."""
    return {
        "userid": e.userid,
        "name": e.name,
        "department": list(e.department),
        "order": [0] * len(e.department),
        "position": e.position,
        "mobile": e.mobile,
        "gender": str(e.gender),
        "email": e.email,
        "is_leader_in_dept": list(e.is_leader_in_dept) or [0] * len(e.department),
        "direct_leader": [],
        "avatar": f"https://wework.qpic.cn/wwhead/{e.userid}/0",
        "thumb_avatar": f"https://wework.qpic.cn/wwhead/{e.userid}/100",
        "telephone": "",
        "alias": e.alias,
        "status": e.status,
        "main_department": e.main_department,
    }


def external_contact_json(c: Customer) -> Json:
    data: Json = {
        "external_userid": c.external_userid,
        "name": c.name,
        "type": c.type,
        "avatar": c.avatar,
        "gender": c.gender,
    }
    if c.unionid:
        data["unionid"] = c.unionid
    if c.type == 2:
        data.update(position=c.position, corp_name=c.corp_name, corp_full_name=c.corp_full_name)
    return data


def _follow_common(f: Follow) -> Json:
    data: Json = {
        "userid": f.userid,
        "remark": f.remark,
        "description": f.description,
        "createtime": f.createtime,
    }
    return data


def _follow_tail(f: Follow, data: Json) -> Json:
    if f.remark_corp_name:
        data["remark_corp_name"] = f.remark_corp_name
    data["remark_mobiles"] = list(f.remark_mobiles)
    data["add_way"] = f.add_way
    data["oper_userid"] = f.oper_userid
    if f.state:
        data["state"] = f.state
    return data


def follow_info_json(f: Follow) -> Json:
    """batch/get_by_user's `follow_info`: tag ids only."""
    data = _follow_common(f)
    data["tag_id"] = list(f.tag_ids)
    return _follow_tail(f, data)


def follow_user_json(state: EmulatorState, f: Follow) -> Json:
    """get's `follow_user[]` entry: full tag objects."""
    data = _follow_common(f)
    data["tags"] = [_tag_ref(state, state.tags[t]) for t in f.tag_ids if t in state.tags]
    return _follow_tail(f, data)


def _tag_ref(state: EmulatorState, tag: Tag) -> Json:
    group = state.tag_groups[tag.group_id]
    return {"group_name": group.name, "tag_name": tag.name, "tag_id": tag.id, "type": 1}


def tag_json(tag: Tag) -> Json:
    return {"id": tag.id, "name": tag.name, "create_time": tag.create_time, "order": tag.order, "deleted": False}


def tag_group_json(state: EmulatorState, group: TagGroup, tag_ids: list[str] | None = None) -> Json:
    ids = group.tag_ids if tag_ids is None else tag_ids
    return {
        "group_id": group.group_id,
        "group_name": group.name,
        "create_time": group.create_time,
        "order": group.order,
        "deleted": False,
        "tag": [tag_json(state.tags[t]) for t in ids],
    }


def group_chat_json(state: EmulatorState, g: GroupChat, need_name: bool) -> Json:
    return {
        "chat_id": g.chat_id,
        "name": g.name,
        "owner": g.owner,
        "create_time": g.create_time,
        "notice": g.notice,
        "member_list": [_member_json(state, m, need_name) for m in g.members],
        "admin_list": [{"userid": a} for a in g.admin_list],
        "member_version": g.member_version(),
    }


def _member_json(state: EmulatorState, m: Any, need_name: bool) -> Json:
    data: Json = {"userid": m.userid, "type": m.type, "join_time": m.join_time, "join_scene": m.join_scene}
    if m.type == 2 and m.unionid:
        data["unionid"] = m.unionid
    if m.invitor:
        data["invitor"] = {"userid": m.invitor}
    if m.state:
        data["state"] = m.state
    data["group_nickname"] = m.group_nickname
    if need_name:
        person = state.employees.get(m.userid) or state.customers.get(m.userid)
        data["name"] = person.name if person else ""
    return data


# --- contacts (the staff directory) --------------------------------------------------------------


def department_list(state: EmulatorState, call: Call) -> Json:
    raw = call.query.get("id", "")
    ids = list(state.departments) if not raw else state.subdepartments(_department_id(state, raw))
    return {"department": [department_json(state.departments[i]) for i in ids]}


def _department_id(state: EmulatorState, raw: str) -> int:
    if not raw.isdigit() or int(raw) not in state.departments:
        raise EmulatorError(60123, f"invalid party id: {raw}")
    return int(raw)


def _users_in(state: EmulatorState, call: Call) -> list[Employee]:
    root = _department_id(state, _query(call, "department_id"))
    depts = set(state.subdepartments(root)) if call.query.get("fetch_child") == "1" else {root}
    return [e for e in state.employees.values() if e.status != 5 and not depts.isdisjoint(e.department)]


def user_list(state: EmulatorState, call: Call) -> Json:
    return {"userlist": [user_json(e) for e in _users_in(state, call)]}


def user_simplelist(state: EmulatorState, call: Call) -> Json:
    users = _users_in(state, call)
    return {"userlist": [{"userid": e.userid, "name": e.name, "department": list(e.department)} for e in users]}


def user_get(state: EmulatorState, call: Call) -> Json:
    return user_json(state.require_employee(_query(call, "userid", 41009)))


# --- customers ----------------------------------------------------------------------------------


def get_follow_user_list(state: EmulatorState, call: Call) -> Json:
    return {"follow_user": state.follow_user_ids()}


def external_list(state: EmulatorState, call: Call) -> Json:
    userid = _query(call, "userid", 41009)
    follow_list = state.follow_lists.get(userid)
    if not follow_list:
        raise EmulatorError(84061, f"not external contact: {userid} has no customers")
    return {"external_userid": [f.external_userid for f in follow_list.items]}


def external_get(state: EmulatorState, call: Call) -> Json:
    external_userid = _query(call, "external_userid")
    customer = state.require_customer(external_userid)
    follows = list(state.customer_follows.get(external_userid, {}).values())
    if not follows:
        raise EmulatorError(84061, f"not external contact: {external_userid}")
    fingerprint = _fingerprint("get", external_userid)
    cursor = call.query.get("cursor", "")
    (start,) = decode_cursor(cursor, fingerprint, 1) if cursor else (0,)
    page = follows[start : start + GET_FOLLOW_PAGE]
    more = start + GET_FOLLOW_PAGE < len(follows)
    return {
        "external_contact": external_contact_json(customer),
        "follow_user": [follow_user_json(state, f) for f in page],
        "next_cursor": encode_cursor(fingerprint, start + GET_FOLLOW_PAGE) if more else "",
    }


def _batch_userids(call: Call) -> list[str]:
    userids = _body_str_list(call, "userid_list", max_items=BATCH_MAX_USERS)
    if not userids and isinstance(call.body.get("userid"), str):
        userids = [call.body["userid"]]  # the deprecated single-user form wechatpy still sends
    if not userids:
        raise EmulatorError(40058, "missing field `userid_list`")
    if any(len(u) > 64 for u in userids):
        raise EmulatorError(40058, "field `userid_list` exceed max length 64")
    return list(dict.fromkeys(userids))


def _batch_limit(call: Call) -> int:
    limit = _body_int(call, "limit", BATCH_DEFAULT_LIMIT)
    if limit <= 0:
        return BATCH_DEFAULT_LIMIT
    return min(limit, BATCH_MAX_LIMIT)


def batch_get_by_user(state: EmulatorState, call: Call) -> Json:
    """Follows of up to 100 employees, employee by employee in request order; cursor = (employee, seq)."""
    userids, limit = _batch_userids(call), _batch_limit(call)
    fingerprint = _fingerprint("batch", userids)
    cursor = call.body.get("cursor") or ""
    user_index, after_seq = decode_cursor(str(cursor), fingerprint, 2) if cursor else (0, 0)
    page: list[Follow] = []
    while user_index < len(userids) and len(page) < limit:
        follow_list = state.follow_lists.get(userids[user_index])
        chunk = follow_list.after(after_seq, limit - len(page)) if follow_list else []
        page.extend(chunk)
        if len(page) < limit:
            user_index, after_seq = user_index + 1, 0
    next_cursor = ""
    if page and _more_after(state, userids, user_index, page[-1].seq):
        next_cursor = encode_cursor(fingerprint, user_index, page[-1].seq)
    customers = state.customers
    items = [
        {"external_contact": external_contact_json(customers[f.external_userid]), "follow_info": follow_info_json(f)}
        for f in page
    ]
    return {"external_contact_list": items, "next_cursor": next_cursor}


def _more_after(state: EmulatorState, userids: list[str], user_index: int, last_seq: int) -> bool:
    if user_index >= len(userids):
        return False
    current = state.follow_lists.get(userids[user_index])
    if current and current.has_after(last_seq):
        return True
    return any(state.follow_lists.get(u) for u in userids[user_index + 1 :])


def _optional_str(call: Call, name: str, max_len: int) -> str | None:
    """None when the field is absent (leave it alone), else its value ("" clears it)."""
    return _body_str(call, name, required=False, max_len=max_len) if name in call.body else None


def remark(state: EmulatorState, call: Call) -> Json:
    userid = _body_str(call, "userid")
    external_userid = _body_str(call, "external_userid")
    fields = ("remark", "description", "remark_company", "remark_mobiles", "remark_pic_mediaid")
    if not any(name in call.body for name in fields):
        raise EmulatorError(40058, "at least one of remark, description, remark_company, remark_mobiles is required")
    state.update_follow(
        userid,
        external_userid,
        remark=_optional_str(call, "remark", 20),
        description=_optional_str(call, "description", 150),
        remark_corp_name=_optional_str(call, "remark_company", 20),
        remark_mobiles=_body_str_list(call, "remark_mobiles") if "remark_mobiles" in call.body else None,
    )
    return {}


def send_welcome_msg(state: EmulatorState, call: Call) -> Json:
    """Accept a welcome message once per WelcomeCode, within its 20 s."""
    code = state.welcome_codes.get(_body_str(call, "welcome_code"))
    if code is None or code.expires_at < state.now():
        raise EmulatorError(40058, "invalid welcome_code: unknown or expired")
    if code.used:
        raise EmulatorError(41051, "externaluser has started chatting")
    if not any(k in call.body for k in ("text", "attachments")):
        raise EmulatorError(40058, "text and attachments cannot both be empty")
    code.used = True
    return {}


# --- corp tags ----------------------------------------------------------------------------------


def get_corp_tag_list(state: EmulatorState, call: Call) -> Json:
    tag_ids = _body_str_list(call, "tag_id")
    group_ids = _body_str_list(call, "group_id")
    groups = list(state.tag_groups.values())
    if group_ids:
        return {"tag_group": [tag_group_json(state, g) for g in groups if g.group_id in set(group_ids)]}
    if tag_ids:
        wanted = set(tag_ids)
        picked = [(g, [t for t in g.tag_ids if t in wanted]) for g in groups]
        return {"tag_group": [tag_group_json(state, g, ids) for g, ids in picked if ids]}
    return {"tag_group": [tag_group_json(state, g) for g in groups]}


def add_corp_tag(state: EmulatorState, call: Call) -> Json:
    tags = call.body.get("tag")
    if not isinstance(tags, list) or not tags or not all(isinstance(t, dict) and t.get("name") for t in tags):
        raise EmulatorError(40058, "field `tag` must be a non-empty list of {name, order}")
    with state.lock:
        group = _group_for_add(state, call)
        created = [state.create_tag(group.group_id, str(t["name"])[:30], int(t.get("order") or 0)).id for t in tags]
        return {"tag_group": tag_group_json(state, group, list(dict.fromkeys(created)))}


def _group_for_add(state: EmulatorState, call: Call) -> TagGroup:
    group_id = _body_str(call, "group_id", required=False)
    if group_id:
        group = state.tag_groups.get(group_id)
        if group is None:
            raise EmulatorError(40068, f"invalid tag group id: {group_id}")
        return group
    name = _body_str(call, "group_name", max_len=30)
    existing = state.tag_group_by_name(name)
    return existing or state.create_tag_group(name, _body_int(call, "order", 0))


def edit_corp_tag(state: EmulatorState, call: Call) -> Json:
    id_ = _body_str(call, "id")
    name = _body_str(call, "name", required=False, max_len=30) or None
    order = _body_int(call, "order", 0) if "order" in call.body else None
    state.rename_tag_or_group(id_, name, order)
    return {}


def del_corp_tag(state: EmulatorState, call: Call) -> Json:
    tag_ids, group_ids = _body_str_list(call, "tag_id"), _body_str_list(call, "group_id")
    if not tag_ids and not group_ids:
        raise EmulatorError(40058, "tag_id and group_id cannot both be empty")
    state.delete_tags(tag_ids, group_ids)
    return {}


def mark_tag(state: EmulatorState, call: Call) -> Json:
    add, remove = _body_str_list(call, "add_tag"), _body_str_list(call, "remove_tag")
    if not add and not remove:
        raise EmulatorError(40058, "add_tag and remove_tag cannot both be empty")
    state.mark_tag(_body_str(call, "userid"), _body_str(call, "external_userid"), add, remove)
    return {}


# --- customer groups ----------------------------------------------------------------------------


def groupchat_list(state: EmulatorState, call: Call) -> Json:
    limit = _body_int(call, "limit", 0)
    if not 1 <= limit <= 1000:
        raise EmulatorError(40058, "field `limit` must be between 1 and 1000")
    status = _body_int(call, "status_filter", 0)
    owners = _owner_filter(call)
    fingerprint = _fingerprint("groupchat", status, owners)
    cursor = str(call.body.get("cursor") or "")
    (after,) = decode_cursor(cursor, fingerprint, 1) if cursor else (0,)
    groups = [g for g in state.group_list() if (not status or g.status == status) and (not owners or g.owner in owners)]
    start = bisect_right([g.seq for g in groups], after)
    page = groups[start : start + limit]
    more = start + limit < len(groups)
    return {
        "group_chat_list": [{"chat_id": g.chat_id, "status": g.status} for g in page],
        "next_cursor": encode_cursor(fingerprint, page[-1].seq) if more else "",
    }


def _owner_filter(call: Call) -> list[str]:
    owner_filter = call.body.get("owner_filter") or {}
    if not isinstance(owner_filter, dict):
        raise EmulatorError(40058, "field `owner_filter` must be an object")
    return _body_str_list(Call({}, owner_filter), "userid_list", max_items=100)


def groupchat_get(state: EmulatorState, call: Call) -> Json:
    group = state.require_group(_body_str(call, "chat_id"))
    return {"group_chat": group_chat_json(state, group, _body_int(call, "need_name", 0) == 1)}


# --- OAuth sign-in and JS-SDK tickets (the sidebar) ---------------------------------------------

OAUTH_CODE_TTL = 300
_used_oauth_codes: weakref.WeakKeyDictionary[EmulatorState, set[str]] = weakref.WeakKeyDictionary()


def _corp_mac(state: EmulatorState, message: str) -> str:
    return hmac.new(state.corp.secret.encode(), message.encode(), hashlib.sha256).hexdigest()[:32]


def issue_oauth_code(state: EmulatorState, userid: str) -> str:
    """What WeCom's authorize page hands back: a code naming the member, valid 5 minutes, usable once."""
    state.require_employee(userid)
    payload = f"{userid}.{state.now() + OAUTH_CODE_TTL}.{state.ids.hex(8)}"
    raw = f"{payload}.{_corp_mac(state, payload)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def auth_getuserinfo(state: EmulatorState, call: Call) -> Json:
    code = _query(call, "code", 41008)
    try:
        payload, _, mac = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)).decode().rpartition(".")
        userid, expires, _nonce = payload.rsplit(".", 2)
        valid = hmac.compare_digest(mac, _corp_mac(state, payload)) and int(expires) >= state.now()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        valid = False
    used = _used_oauth_codes.setdefault(state, set())
    if not valid or code in used:
        raise EmulatorError(40029, "invalid code")
    used.add(code)
    return {"userid": userid, "user_ticket": ""}


def _ticket(state: EmulatorState, kind: str) -> Json:
    return {"ticket": "tk" + _corp_mac(state, f"ticket:{kind}:{state.now() // 7200}"), "expires_in": 7200}


def get_jsapi_ticket(state: EmulatorState, call: Call) -> Json:
    return _ticket(state, "corp")


def ticket_get(state: EmulatorState, call: Call) -> Json:
    kind = _query(call, "type")
    if kind != "agent_config":
        raise EmulatorError(40058, "invalid type")
    return _ticket(state, kind)


ROUTES: dict[str, tuple[str, Handler]] = {
    "department/list": ("GET", department_list),
    "user/list": ("GET", user_list),
    "user/simplelist": ("GET", user_simplelist),
    "user/get": ("GET", user_get),
    "externalcontact/get_follow_user_list": ("GET", get_follow_user_list),
    "externalcontact/list": ("GET", external_list),
    "externalcontact/get": ("GET", external_get),
    "externalcontact/batch/get_by_user": ("POST", batch_get_by_user),
    "externalcontact/remark": ("POST", remark),
    "externalcontact/send_welcome_msg": ("POST", send_welcome_msg),
    "externalcontact/get_corp_tag_list": ("POST", get_corp_tag_list),
    "externalcontact/add_corp_tag": ("POST", add_corp_tag),
    "externalcontact/edit_corp_tag": ("POST", edit_corp_tag),
    "externalcontact/del_corp_tag": ("POST", del_corp_tag),
    "externalcontact/mark_tag": ("POST", mark_tag),
    "externalcontact/groupchat/list": ("POST", groupchat_list),
    "externalcontact/groupchat/get": ("POST", groupchat_get),
    "auth/getuserinfo": ("GET", auth_getuserinfo),
    "get_jsapi_ticket": ("GET", get_jsapi_ticket),
    "ticket/get": ("GET", ticket_get),
}
