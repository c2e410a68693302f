"""Callback bodies → typed events: the POST envelope, then the decrypted event XML.

Pure functions over bytes, so the HTTP endpoint, the worker and the emulator share one parser.
Everything here is untrusted input from the network until the signature is checked, and the
event XML is only as trustworthy as whoever holds the token, so every document goes through
defusedxml with DTDs forbidden: no entity expansion (billion laughs), no external fetches.

Parsing is lenient about form (CDATA or bare text, missing optional fields, ints as text,
unknown events) because WeCom has changed its samples over the years (reference §4.2), and
strict only about what makes a body unusable (not XML / JSON, no Encrypt).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from siyu.wecom.errors import WeComError

__all__ = [
    "CallbackEvent",
    "CallbackParseError",
    "ContactEvent",
    "EnvelopeIn",
    "ExternalChatEvent",
    "ExternalContactEvent",
    "ExternalTagEvent",
    "UnknownEvent",
    "dedupe_key",
    "parse_envelope",
    "parse_event",
]


class CallbackParseError(WeComError):
    """A callback body that cannot be read: not XML / JSON, a DTD or entity, or no Encrypt."""


# --- the envelope -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvelopeIn:
    """The outer POST body: who it is for, and the ciphertext the signature covers."""

    to_user_name: str
    encrypt: str
    agent_id: str


def parse_envelope(body: bytes) -> EnvelopeIn:
    """Read the POST body, XML (the default) or JSON (`callback_format=json`, reference §1.4)."""
    if body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        fields = _json_envelope_fields(body)
    else:
        root = _parse_xml(body)
        fields = {tag: _text(root, tag) for tag in ("ToUserName", "Encrypt", "AgentID")}
    if not fields["Encrypt"]:
        raise CallbackParseError("callback body has no Encrypt")
    return EnvelopeIn(fields["ToUserName"], fields["Encrypt"], fields["AgentID"])


def _json_envelope_fields(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise CallbackParseError("callback body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise CallbackParseError("callback JSON body is not an object")
    keys = {"ToUserName": "tousername", "Encrypt": "encrypt", "AgentID": "agentid"}
    return {tag: _json_scalar(data.get(key)) for tag, key in keys.items()}


def _json_scalar(value: object) -> str:
    """agentid arrives as a number in some JSON samples; anything non-scalar counts as absent."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return str(value).strip()


# --- events --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackEvent:
    """What every decrypted callback carries; `raw` keeps the plaintext for audit and dedupe."""

    to_user_name: str
    create_time: int
    event: str
    change_type: str
    raw: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ExternalContactEvent(CallbackEvent):
    """change_external_contact: add / edit / add_half / del / del_follow_user / transfer_fail / …"""

    user_id: str = ""
    external_user_id: str = ""
    state: str = ""
    welcome_code: str = ""
    source: str = ""
    fail_reason: str = ""


@dataclass(frozen=True, slots=True)
class ExternalChatEvent(CallbackEvent):
    """change_external_chat: create / update / dismiss; the update fields are often absent."""

    chat_id: str = ""
    update_detail: str = ""
    join_scene: int | None = None
    quit_scene: int | None = None
    mem_change_cnt: int | None = None
    mem_change_list: tuple[str, ...] = ()
    last_mem_ver: str = ""
    cur_mem_ver: str = ""


@dataclass(frozen=True, slots=True)
class ExternalTagEvent(CallbackEvent):
    """change_external_tag: `tag_type` is 'tag', 'tag_group', or '' (shuffle carries none)."""

    id: str = ""
    tag_type: str = ""
    strategy_id: str = ""


@dataclass(frozen=True, slots=True)
class ContactEvent(CallbackEvent):
    """change_contact (the staff directory): user and party create / update / delete, update_tag."""

    user_id: str = ""
    new_user_id: str = ""
    name: str = ""
    alias: str = ""
    position: str = ""
    department_ids: tuple[int, ...] = ()
    main_department: int | None = None
    status: int | None = None
    party_id: int | None = None
    parent_id: int | None = None
    order: int | None = None
    tag_id: int | None = None
    add_user_ids: tuple[str, ...] = ()
    del_user_ids: tuple[str, ...] = ()
    add_party_ids: tuple[int, ...] = ()
    del_party_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class UnknownEvent(CallbackEvent):
    """Anything we don't model (kf, msgaudit_notify, plain messages): kept, never an error."""

    fields: tuple[tuple[str, str], ...] = ()


class _Common(TypedDict):
    """The CallbackEvent fields, read once and passed to whichever subclass fits."""

    to_user_name: str
    create_time: int
    event: str
    change_type: str
    raw: str


def parse_event(xml: bytes) -> CallbackEvent:
    """The typed event inside a decrypted callback.

    Third-party suites send InfoType / AuthCorpId / TimeStamp where self-built apps send
    Event / ToUserName / CreateTime (reference §4); both shapes land in the same fields.
    """
    root = _parse_xml(xml)
    event = _text(root, "Event") or _text(root, "InfoType")
    base: _Common = {
        "to_user_name": _text(root, "ToUserName") or _text(root, "AuthCorpId"),
        "create_time": _int(root, "CreateTime") or _int(root, "TimeStamp") or 0,
        "event": event,
        "change_type": _text(root, "ChangeType"),
        "raw": xml.decode("utf-8", errors="replace"),
    }
    build = _BUILDERS.get(event, _unknown)
    return build(root, base)


def _external_contact(root: Element, base: _Common) -> CallbackEvent:
    return ExternalContactEvent(
        **base,
        user_id=_text(root, "UserID"),
        external_user_id=_text(root, "ExternalUserID"),
        state=_text(root, "State"),
        welcome_code=_text(root, "WelcomeCode"),
        source=_text(root, "Source"),
        fail_reason=_text(root, "FailReason"),
    )


def _external_chat(root: Element, base: _Common) -> CallbackEvent:
    return ExternalChatEvent(
        **base,
        chat_id=_text(root, "ChatId"),
        update_detail=_text(root, "UpdateDetail"),
        join_scene=_int(root, "JoinScene"),
        quit_scene=_int(root, "QuitScene"),
        mem_change_cnt=_int(root, "MemChangeCnt"),
        mem_change_list=_str_list(root, "MemChangeList"),
        last_mem_ver=_text(root, "LastMemVer"),
        cur_mem_ver=_text(root, "CurMemVer"),
    )


def _external_tag(root: Element, base: _Common) -> CallbackEvent:
    return ExternalTagEvent(
        **base,
        id=_text(root, "Id"),
        tag_type=_text(root, "TagType"),
        strategy_id=_text(root, "StrategyId"),
    )


def _contact(root: Element, base: _Common) -> CallbackEvent:
    """User events name the party list Department; party events carry their own Id and ParentId."""
    return ContactEvent(
        **base,
        user_id=_text(root, "UserID"),
        new_user_id=_text(root, "NewUserID"),
        name=_text(root, "Name"),
        alias=_text(root, "Alias"),
        position=_text(root, "Position"),
        department_ids=_int_list(root, "Department"),
        main_department=_int(root, "MainDepartment"),
        status=_int(root, "Status"),
        party_id=_int(root, "Id"),
        parent_id=_int(root, "ParentId"),
        order=_int(root, "Order"),
        tag_id=_int(root, "TagId"),
        add_user_ids=_str_list(root, "AddUserItems"),
        del_user_ids=_str_list(root, "DelUserItems"),
        add_party_ids=_int_list(root, "AddPartyItems"),
        del_party_ids=_int_list(root, "DelPartyItems"),
    )


def _unknown(root: Element, base: _Common) -> CallbackEvent:
    pairs = tuple((child.tag, (child.text or "").strip()) for child in root)
    return UnknownEvent(**base, fields=pairs)


_BUILDERS: dict[str, Callable[[Element, _Common], CallbackEvent]] = {
    "change_external_contact": _external_contact,
    "change_external_chat": _external_chat,
    "change_external_tag": _external_tag,
    "change_contact": _contact,
}


# --- dedupe --------------------------------------------------------------------------------------


def dedupe_key(event: CallbackEvent) -> str:
    """sha256 of the event's decrypted XML in canonical form: every element, CDATA-free, stripped.

    WeCom retries a callback it got no fast 200 for (3 tries); a retry re-encrypts the same
    plaintext, so only the envelope (random prefix, timestamp, nonce, signature) differs and the
    decrypted XML is identical. Hashing all of it is therefore retry-stable by construction, and
    it keeps apart any two real events that differ in anything at all. Keying on a chosen tuple
    (ToUserName, Event, ChangeType, UserID, ExternalUserID, CreateTime) is what dropped events
    for our peers: two group updates in one second differ only in UpdateDetail / MemChangeList /
    CurMemVer, a tag create and a group create only in TagType, a re-add only in State — and
    every new field WeCom adds would have to be remembered here. Canonical rather than raw bytes,
    so a formatting difference (CDATA or not, whitespace, element order) cannot split one event
    in two. Two events identical in every field in one second collapse into one, which is
    harmless: callbacks are notifications and the handler re-fetches the current state.
    """
    canonical = json.dumps(_canonical(_parse_xml(event.raw.encode())), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical(element: Element) -> list[object]:
    """Children sorted by tag (stable, so repeated <Item>s keep their order)."""
    children = sorted(element, key=lambda child: child.tag)
    return [element.tag, (element.text or "").strip(), [_canonical(child) for child in children]]


# --- XML helpers --------------------------------------------------------------------------------


def _parse_xml(data: bytes) -> Element:
    """defusedxml with every guard on: any DOCTYPE is refused before an entity can be declared."""
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise CallbackParseError(f"callback XML refused: {type(exc).__name__}") from exc
    except ParseError as exc:
        raise CallbackParseError(f"callback body is not well-formed XML: {exc}") from exc


def _text(root: Element, tag: str) -> str:
    """The stripped text of a direct child; CDATA is already unwrapped by the parser."""
    child = root.find(tag)
    if child is None or child.text is None:
        return ""
    return child.text.strip()


def _int(root: Element, tag: str) -> int | None:
    return _to_int(_text(root, tag))


def _to_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _str_list(root: Element, tag: str) -> tuple[str, ...]:
    """Repeated <Item> children (the official form) or one comma-joined text (seen in SDK tests)."""
    child = root.find(tag)
    if child is None:
        return ()
    items = child.findall("Item")
    parts = [item.text or "" for item in items] if items else (child.text or "").split(",")
    return tuple(part.strip() for part in parts if part.strip())


def _int_list(root: Element, tag: str) -> tuple[int, ...]:
    """Department lists come comma-joined ("1,2,3"); tokens that are not ints are skipped."""
    numbers = (_to_int(part) for part in _str_list(root, tag))
    return tuple(number for number in numbers if number is not None)
