"""The emulated `/cgi-bin/...` endpoints: request → state → WeCom-shaped JSON (reference §3).

Handlers are plain functions of (state, call) returning the success body without errcode/errmsg;
they raise EmulatorError for WeCom errors. They change state silently: as in WeCom, API calls
produce no callbacks. Shapes follow the reference exactly, including the quirks (`get` gives
`follow_user[]` with `tags[]` objects, `batch/get_by_user` gives one `follow_info{}` with `tag_id[]`).

Acquisition (reference §3.8, §3.9) and where the emulator chooses because WeCom's docs do not say:

* 联系我: missing/invalid `type` 41037, `scene` 41038, unknown config_id 41044 (missing 41043), more than
  100 members after expanding `party` (sub-departments included) 41041, cap 41045
  (`state.contact_way_cap`). A type-1 way without exactly one user (or with a party) is 40058, as are
  remark/state over 30 chars. An unknown or departed user is 60111; one who exists but is not active
  (disabled, not activated) is 40098. `qr_code` (scene 2 only) is a page on the emulator itself,
  `{public_url}/scan/contact/{config_id}`, that a simulated customer can "scan". Temporary-chat
  fields (is_temp, expires_in, conclusions) are stored and echoed but have no behaviour.
* update_contact_way / update_join_way overwrite: fields given replace, optional fields left out go
  back to their defaults (the reference warns they "may be reset"); user/party, and chat_id_list,
  are kept when left out, since a way without members is invalid.
* list_contact_way: start_time defaults to 90 days before end_time (default: now); limit 1..1000
  (default 100, more is 40058); only non-temporary ways, oldest first.
* Group join ways reuse 41043/41044 for config_id; a chat_id that does not exist is 40050; scene not
  1|2, 0 or more than 5 chats, remark/state over 30 chars, auto_create_room without room_base_name
  are 40058. A join way's `qr_code` is `{public_url}/scan/group/{config_id}`.
* send_welcome_msg: 41049 missing code, 41050 unknown or expired (20 s), 41051 already used; then the
  content: text over 4000 bytes 45002, more than 9 attachments or both empty 40058, a media id not
  uploaded (or older than 3 days) 40007. A rejected message leaves the code unused. Accepted
  welcomes are recorded in `state.welcome_deliveries`.
* group_welcome_template: text over 3000 bytes 45002, unknown template_id 40058, the 101st 41055;
  edit replaces the whole message content with the fields given.
* media/upload (multipart field `media`; type image|voice|video|file, else 40004; no `media` part
  41005; an image outside 5 B..10 MB 40009) returns `created_at` as a string, as WeCom does. Media
  ids are valid 3 days; GET /emulator/media/{media_id} serves the bytes back.
* 41096 ("welcome msg is being distributed") is not produced on its own: queue it with the generic
  error injection (POST /emulator/errors {"path": "externalcontact/send_welcome_msg", "errcode": 41096}).
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
from dataclasses import dataclass, field
from typing import Any

from siyu.wecom.emulator.state import (
    DAY,
    ContactWay,
    Customer,
    Department,
    Employee,
    EmulatorError,
    EmulatorState,
    Follow,
    GroupChat,
    JoinWay,
    Tag,
    TagGroup,
)

BATCH_MAX_USERS = 100
BATCH_MAX_LIMIT = 100
BATCH_DEFAULT_LIMIT = 50
GET_FOLLOW_PAGE = 500
Json = dict[str, Any]


@dataclass(slots=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class Call:
    """One API request: the query string, the JSON body (empty for GET) and any multipart files."""

    query: Mapping[str, str]
    body: Json
    files: Mapping[str, UploadedFile] = field(default_factory=dict)


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


# --- 联系我 (contact ways) -------------------------------------------------------------------------

CONTACT_WAY_LIST_DEFAULT = 100
CONTACT_WAY_LIST_MAX = 1000
SCAN_CONTACT_PATH = "/scan/contact/"
SCAN_GROUP_PATH = "/scan/group/"


def _flag(call: Call, name: str, default: bool) -> bool:
    value = call.body.get(name, default)
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise EmulatorError(40058, f"field `{name}` must be a boolean")


def _int_list(call: Call, name: str) -> list[int]:
    value = call.body.get(name) or []
    if not isinstance(value, list):
        raise EmulatorError(40058, f"field `{name}` must be a list")
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        raise EmulatorError(40058, f"field `{name}` must be a list of integers") from None


def _choice(call: Call, name: str, allowed: tuple[int, ...], errcode: int) -> int:
    value = call.body.get(name)
    if value is None or value == "":
        raise EmulatorError(errcode, f"missing {name}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise EmulatorError(errcode, f"invalid {name}: {value!r}") from None
    if number not in allowed:
        raise EmulatorError(errcode, f"invalid {name}: {number}")
    return number


def _contact_way_members(state: EmulatorState, way_type: int, call: Call) -> tuple[list[str], list[int]]:
    user, party = _body_str_list(call, "user"), _int_list(call, "party")
    if way_type == 1 and (len(user) != 1 or party):
        raise EmulatorError(40058, "a type 1 contact way takes exactly one user and no party")
    if not user and not party:
        raise EmulatorError(40058, "user and party cannot both be empty")
    state.check_contact_way_members(user, party)
    return user, party


def _contact_way_options(call: Call) -> Json:
    """The optional fields of add/update_contact_way; absent ones take their defaults (overwrite semantics)."""
    conclusions = call.body.get("conclusions")
    if conclusions is not None and not isinstance(conclusions, dict):
        raise EmulatorError(40058, "field `conclusions` must be an object")
    return {
        "style": _body_int(call, "style", 1),
        "remark": _body_str(call, "remark", required=False, max_len=30),
        "skip_verify": _flag(call, "skip_verify", True),
        "state": _body_str(call, "state", required=False, max_len=30),
        "expires_in": _body_int(call, "expires_in", 0),
        "chat_expires_in": _body_int(call, "chat_expires_in", 0),
        "unionid": _body_str(call, "unionid", required=False),
        "is_exclusive": _flag(call, "is_exclusive", False),
        "mark_source": _flag(call, "mark_source", False),
        "conclusions": conclusions,
    }


def contact_way_qr(state: EmulatorState, way: ContactWay) -> str:
    return f"{state.public_url}{SCAN_CONTACT_PATH}{way.config_id}" if way.scene == 2 else ""


def contact_way_json(state: EmulatorState, way: ContactWay) -> Json:
    data: Json = {
        "config_id": way.config_id,
        "type": way.type,
        "scene": way.scene,
        "style": way.style,
        "remark": way.remark,
        "skip_verify": way.skip_verify,
        "state": way.state,
        "qr_code": contact_way_qr(state, way),
        "user": list(way.user),
        "party": list(way.party),
        "is_temp": way.is_temp,
        "expires_in": way.expires_in,
        "chat_expires_in": way.chat_expires_in,
        "unionid": way.unionid,
        "is_exclusive": way.is_exclusive,
    }
    if way.conclusions:
        data["conclusions"] = way.conclusions
    return data


def add_contact_way(state: EmulatorState, call: Call) -> Json:
    way_type = _choice(call, "type", (1, 2), 41037)
    scene = _choice(call, "scene", (1, 2), 41038)
    user, party = _contact_way_members(state, way_type, call)
    options = _contact_way_options(call)
    is_temp = _flag(call, "is_temp", False)
    way = ContactWay(state.ids.hex(32), way_type, scene, user, party, state.now(), is_temp=is_temp, **options)
    state.add_contact_way(way)
    data: Json = {"config_id": way.config_id}
    if scene == 2:
        data["qr_code"] = contact_way_qr(state, way)
    return data


def get_contact_way(state: EmulatorState, call: Call) -> Json:
    way = state.require_contact_way(_body_str(call, "config_id", required=False))
    return {"contact_way": contact_way_json(state, way)}


def update_contact_way(state: EmulatorState, call: Call) -> Json:
    way = state.require_contact_way(_body_str(call, "config_id", required=False))
    user, party = way.user, way.party
    if "user" in call.body or "party" in call.body:
        user, party = _contact_way_members(state, way.type, call)
    options = _contact_way_options(call)
    way.user, way.party = user, party
    for name, value in options.items():
        setattr(way, name, value)
    return {}


def del_contact_way(state: EmulatorState, call: Call) -> Json:
    state.delete_contact_way(_body_str(call, "config_id", required=False))
    return {}


def list_contact_way(state: EmulatorState, call: Call) -> Json:
    end = _body_int(call, "end_time", state.now())
    start = _body_int(call, "start_time", end - 90 * DAY)
    limit = _body_int(call, "limit", CONTACT_WAY_LIST_DEFAULT) or CONTACT_WAY_LIST_DEFAULT
    if not 1 <= limit <= CONTACT_WAY_LIST_MAX:
        raise EmulatorError(40058, f"field `limit` must be between 1 and {CONTACT_WAY_LIST_MAX}")
    fingerprint = _fingerprint("contact_way", start, end)
    cursor = str(call.body.get("cursor") or "")
    (after,) = decode_cursor(cursor, fingerprint, 1) if cursor else (0,)
    ways = [w for w in state.contact_ways.values() if not w.is_temp and start <= w.create_time <= end and w.seq > after]
    page = ways[:limit]
    more = len(ways) > limit
    return {
        "contact_way": [{"config_id": w.config_id} for w in page],
        "next_cursor": encode_cursor(fingerprint, page[-1].seq) if more else "",
    }


# --- customer-group join ways (加入群聊) -------------------------------------------------------------

JOIN_WAY_MAX_CHATS = 5


def _join_way_fields(state: EmulatorState, call: Call, keep_chats: list[str] | None) -> Json:
    if keep_chats is not None and "chat_id_list" not in call.body:
        chats = keep_chats
    else:
        chats = _body_str_list(call, "chat_id_list")
        if not 1 <= len(chats) <= JOIN_WAY_MAX_CHATS:
            raise EmulatorError(40058, f"chat_id_list takes 1..{JOIN_WAY_MAX_CHATS} chat ids, got {len(chats)}")
        for chat_id in chats:
            state.require_group(chat_id)
    auto_create = _choice(call, "auto_create_room", (0, 1), 40058) if "auto_create_room" in call.body else 0
    base_name = _body_str(call, "room_base_name", required=False, max_len=40)
    if auto_create and not base_name:
        raise EmulatorError(40058, "auto_create_room needs room_base_name")
    return {
        "scene": _choice(call, "scene", (1, 2), 40058),
        "chat_id_list": list(dict.fromkeys(chats)),
        "remark": _body_str(call, "remark", required=False, max_len=30),
        "auto_create_room": auto_create,
        "room_base_name": base_name,
        "room_base_id": _body_int(call, "room_base_id", 0),
        "state": _body_str(call, "state", required=False, max_len=30),
        "mark_source": _flag(call, "mark_source", False),
    }


def join_way_qr(state: EmulatorState, way: JoinWay) -> str:
    return f"{state.public_url}{SCAN_GROUP_PATH}{way.config_id}"


def join_way_json(state: EmulatorState, way: JoinWay) -> Json:
    return {
        "config_id": way.config_id,
        "scene": way.scene,
        "remark": way.remark,
        "auto_create_room": way.auto_create_room,
        "room_base_name": way.room_base_name,
        "room_base_id": way.room_base_id,
        "chat_id_list": list(way.chat_id_list),
        "qr_code": join_way_qr(state, way),
        "state": way.state,
    }


def add_join_way(state: EmulatorState, call: Call) -> Json:
    way = JoinWay(state.ids.hex(32), create_time=state.now(), **_join_way_fields(state, call, None))
    state.join_ways[way.config_id] = way
    return {"config_id": way.config_id}


def get_join_way(state: EmulatorState, call: Call) -> Json:
    way = state.require_join_way(_body_str(call, "config_id", required=False))
    return {"join_way": join_way_json(state, way)}


def update_join_way(state: EmulatorState, call: Call) -> Json:
    way = state.require_join_way(_body_str(call, "config_id", required=False))
    for name, value in _join_way_fields(state, call, way.chat_id_list).items():
        setattr(way, name, value)
    return {}


def del_join_way(state: EmulatorState, call: Call) -> Json:
    config_id = _body_str(call, "config_id", required=False)
    state.require_join_way(config_id)
    del state.join_ways[config_id]
    return {}


# --- welcome messages --------------------------------------------------------------------------

WELCOME_TEXT_MAX_BYTES = 4000
GROUP_WELCOME_TEXT_MAX_BYTES = 3000
WELCOME_MAX_ATTACHMENTS = 9
_ATTACHMENT_RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # msgtype: (required fields, fields naming an uploaded media)
    "image": ((), ("media_id",)),
    "link": (("title", "url"), ()),
    "miniprogram": (("title", "pic_media_id", "appid", "page"), ("pic_media_id",)),
    "video": (("media_id",), ("media_id",)),
    "file": (("media_id",), ("media_id",)),
}


def _text_content(call: Call, max_bytes: int) -> str:
    text = call.body.get("text") or {}
    if not isinstance(text, dict):
        raise EmulatorError(40058, "field `text` must be an object")
    content = text.get("content") or ""
    if not isinstance(content, str):
        raise EmulatorError(40058, "field `text.content` must be a string")
    if len(content.encode()) > max_bytes:
        raise EmulatorError(45002, f"content size out of limit: text.content exceeds {max_bytes} bytes")
    return content


def _check_message_part(state: EmulatorState, msgtype: str, part: object) -> None:
    if msgtype not in _ATTACHMENT_RULES:
        raise EmulatorError(40058, f"invalid msgtype: {msgtype!r}")
    if not isinstance(part, dict):
        raise EmulatorError(40058, f"field `{msgtype}` must be an object")
    required, media_fields = _ATTACHMENT_RULES[msgtype]
    for name in required:
        if not part.get(name):
            raise EmulatorError(40058, f"missing field `{msgtype}.{name}`")
    if msgtype == "image" and not part.get("media_id") and not part.get("pic_url"):
        raise EmulatorError(40058, "an image needs media_id or pic_url")
    for name in media_fields:
        if part.get(name):
            state.require_media(part[name])


def _attachments(state: EmulatorState, call: Call) -> list[Json]:
    attachments = call.body.get("attachments") or []
    if not isinstance(attachments, list):
        raise EmulatorError(40058, "field `attachments` must be a list")
    if len(attachments) > WELCOME_MAX_ATTACHMENTS:
        raise EmulatorError(40058, f"at most {WELCOME_MAX_ATTACHMENTS} attachments")
    for item in attachments:
        msgtype = item.get("msgtype") if isinstance(item, dict) else None
        _check_message_part(state, str(msgtype), item.get(str(msgtype)) if isinstance(item, dict) else None)
    return attachments


def send_welcome_msg(state: EmulatorState, call: Call) -> Json:
    """Accept a welcome message once per WelcomeCode, within its 20 s, and record what the customer got."""
    raw = call.body.get("welcome_code")
    if not raw or not isinstance(raw, str):
        raise EmulatorError(41049, "missing welcome_code")
    code = state.use_welcome_code(raw)
    text = _text_content(call, WELCOME_TEXT_MAX_BYTES)
    attachments = _attachments(state, call)
    if not text and not attachments:
        raise EmulatorError(40058, "text and attachments cannot both be empty")
    state.record_welcome(code, text, attachments)
    return {}


GROUP_WELCOME_PARTS = ("image", "link", "miniprogram", "file", "video")


def _group_welcome_content(state: EmulatorState, call: Call) -> Json:
    content: Json = {}
    text = _text_content(call, GROUP_WELCOME_TEXT_MAX_BYTES)
    if text:
        content["text"] = {"content": text}
    for msgtype in GROUP_WELCOME_PARTS:
        if call.body.get(msgtype):
            _check_message_part(state, msgtype, call.body[msgtype])
            content[msgtype] = call.body[msgtype]
    if not content:
        raise EmulatorError(40058, "text and every attachment cannot all be empty")
    return content


def group_welcome_template_add(state: EmulatorState, call: Call) -> Json:
    content = _group_welcome_content(state, call)
    template = state.add_group_welcome_template(content, _body_int(call, "notify", 1))
    return {"template_id": template.template_id}


def group_welcome_template_edit(state: EmulatorState, call: Call) -> Json:
    template = state.require_group_welcome_template(_body_str(call, "template_id"))
    template.content = _group_welcome_content(state, call)
    return {}


def group_welcome_template_get(state: EmulatorState, call: Call) -> Json:
    template = state.require_group_welcome_template(_body_str(call, "template_id"))
    return dict(template.content)


def group_welcome_template_del(state: EmulatorState, call: Call) -> Json:
    template = state.require_group_welcome_template(_body_str(call, "template_id"))
    del state.group_welcome_templates[template.template_id]
    return {}


# --- media ---------------------------------------------------------------------------------------

MEDIA_TYPES = ("image", "voice", "video", "file")
MEDIA_MAX_BYTES = {"image": 10 * 2**20, "voice": 2 * 2**20, "video": 10 * 2**20, "file": 20 * 2**20}


def media_upload(state: EmulatorState, call: Call) -> Json:
    media_type = call.query.get("type", "")
    if media_type not in MEDIA_TYPES:
        raise EmulatorError(40004, f"invalid media type: {media_type!r}")
    upload = call.files.get("media")
    if upload is None:
        raise EmulatorError(41005, "media data missing: multipart field `media`")
    if not 5 < len(upload.data) <= MEDIA_MAX_BYTES[media_type]:
        raise EmulatorError(40009 if media_type == "image" else 40058, f"invalid {media_type} size")
    media = state.add_media(media_type, upload.filename, upload.content_type, upload.data)
    return {"type": media.type, "media_id": media.media_id, "created_at": str(media.created_at)}


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
    "externalcontact/add_contact_way": ("POST", add_contact_way),
    "externalcontact/get_contact_way": ("POST", get_contact_way),
    "externalcontact/update_contact_way": ("POST", update_contact_way),
    "externalcontact/del_contact_way": ("POST", del_contact_way),
    "externalcontact/list_contact_way": ("POST", list_contact_way),
    "externalcontact/groupchat/add_join_way": ("POST", add_join_way),
    "externalcontact/groupchat/get_join_way": ("POST", get_join_way),
    "externalcontact/groupchat/update_join_way": ("POST", update_join_way),
    "externalcontact/groupchat/del_join_way": ("POST", del_join_way),
    "externalcontact/group_welcome_template/add": ("POST", group_welcome_template_add),
    "externalcontact/group_welcome_template/edit": ("POST", group_welcome_template_edit),
    "externalcontact/group_welcome_template/get": ("POST", group_welcome_template_get),
    "externalcontact/group_welcome_template/del": ("POST", group_welcome_template_del),
    "media/upload": ("POST", media_upload),
    "auth/getuserinfo": ("GET", auth_getuserinfo),
    "get_jsapi_ticket": ("GET", get_jsapi_ticket),
    "ticket/get": ("GET", ticket_get),
}
