"""`WeComClient`: the one place siyu speaks WeCom's HTTP API (reference/wecom-api.md §3).

Every call goes through `_call`, which owns the three things WeCom gets wrong for the unwary:

* the access token comes from a shared `TokenStore`; a token errcode (40014 / 42001 / 41001)
  drops exactly that token, fetches a new one and retries **once**;
* rate errcodes (45009 / 45033 / -1), and 41063 (a mass message still being dispatched), back off
  with full jitter until the retry budget runs out and **never** trigger gettoken — a new token does
  not lift a frequency block, and asking for one counts against the (much smaller) gettoken limit;
* any other errcode becomes its typed exception (`siyu.wecom.errors`), and anything that is not a
  JSON answer with HTTP 200 becomes `TransportError`.

The same class talks to production (`https://qyapi.weixin.qq.com`) and to the emulator; tests can
also inject an `httpx` transport. Secrets and tokens stay out of logs, including httpx's own
request log line, which would otherwise print the query string.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from siyu.core.config import get_settings
from siyu.core.secrets import decrypt_secret
from siyu.corp.models import Corp
from siyu.wecom.auth import TokenStore, obtain_token, token_store_from_settings
from siyu.wecom.errors import (
    BACKOFF_ERRCODES,
    NotFoundError,
    RateLimitError,
    TokenError,
    TransportError,
    error_for,
)
from siyu.wecom.payloads import (
    ContactPage,
    ContactWay,
    ContactWayCreated,
    CorpTagGroup,
    Department,
    ExternalContactDetail,
    GroupChatDetail,
    GroupChatPage,
    JoinWay,
    User,
)
from siyu.wecom.ratelimit import Backoff, RateLimiter

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
GETTOKEN_PATH = "/cgi-bin/gettoken"
NOT_EXTERNAL_CONTACT = 84061

_M = TypeVar("_M", bound=BaseModel)
JsonBody = dict[str, Any]
# multipart parts: field name → (filename, bytes, content type)
Files = Mapping[str, tuple[str, bytes, str]]
CONTACT_WAY_PAGE = 1000
MASS_MAX_CUSTOMERS = 10_000
MASS_MAX_CHATS = 2_000
MASS_MAX_ATTACHMENTS = 9
GROUPMSG_LIST_PAGE = 100
GROUPMSG_TASK_PAGE = 1000
# get_groupmsg_list_v2 reportedly refuses ranges over a month: longer ranges are asked in windows
GROUPMSG_LIST_WINDOW = 30 * 86_400


class _RedactSecrets(logging.Filter):
    """Masks access_token / corpsecret in log records (httpx logs every request URL at INFO)."""

    _pattern = re.compile(r"(access_token|corpsecret)=[^&\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(arg) for arg in record.args)
        return True

    def _redact(self, arg: object) -> object:
        if isinstance(arg, str | httpx.URL):
            return self._pattern.sub(r"\1=***", str(arg))
        return arg


logging.getLogger("httpx").addFilter(_RedactSecrets())


class WeComClient:
    """A typed, token-managing, rate-aware client for one corp and one app secret."""

    def __init__(
        self,
        *,
        corp_id: int,
        corpid: str,
        secret: str,
        token_store: TokenStore | None = None,
        limiter: RateLimiter | None = None,
        base_url: str = DEFAULT_BASE_URL,
        app: str = "contact",
        retry_budget_seconds: float = 30.0,
        timeout_seconds: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.corp_id = corp_id
        self.corpid = corpid
        self.app = app
        self._secret = secret
        self._store = token_store if token_store is not None else shared_token_store()
        self._limiter = limiter if limiter is not None else shared_limiter()
        self._base_url = base_url.rstrip("/")
        self._budget = retry_budget_seconds
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._owns_http = http is None
        self._http = http or httpx.Client(transport=transport, timeout=timeout_seconds)

    def __repr__(self) -> str:
        return f"WeComClient(corp_id={self.corp_id}, corpid={self.corpid!r}, app={self.app!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool, unless it was lent to us."""
        if self._owns_http:
            self._http.close()

    # -- tokens and the call loop -------------------------------------------------------------

    def get_token(self) -> str:
        """The corp's current access token, from the shared store or (when none) from gettoken."""
        return obtain_token(self._store, self.corp_id, self.app, self._fetch_token)

    def _fetch_token(self) -> tuple[str, int]:
        params = {"corpid": self.corpid, "corpsecret": self._secret}
        body = self._with_backoff("GET", GETTOKEN_PATH, params, None, self._backoff())
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise TransportError(f"{GETTOKEN_PATH}: answer without access_token")
        return token, int(body.get("expires_in", 7200))

    def _backoff(self) -> Backoff:
        return Backoff(self._budget, sleep=self._sleep, rng=self._rng)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: JsonBody | None = None,
        files: Files | None = None,
    ) -> JsonBody:
        """One API call with token handling: on a token errcode, drop that token and retry once."""
        backoff = self._backoff()  # one budget for the whole call, across the token retry
        token = self.get_token()
        try:
            query = {**(params or {}), "access_token": token}
            return self._with_backoff(method, path, query, json, backoff, files=files)
        except TokenError as exc:
            log.warning("wecom %s: errcode %s, refreshing the token once", path, exc.errcode)
            self._store.invalidate(self.corp_id, self.app, token)
        token = self.get_token()
        return self._with_backoff(method, path, {**(params or {}), "access_token": token}, json, backoff, files=files)

    def _with_backoff(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any],
        json: JsonBody | None,
        backoff: Backoff,
        *,
        files: Files | None = None,
    ) -> JsonBody:
        """Send until WeCom answers something other than a rate errcode, or the budget is spent."""
        while True:
            self._admit(path, backoff)
            body = self._send(method, path, params, json, files)
            errcode, errmsg = _errcode(body), str(body.get("errmsg", ""))
            if errcode == 0:
                return body
            if errcode not in BACKOFF_ERRCODES:
                raise error_for(errcode, errmsg, path=path)
            delay = backoff.next_delay()
            log.warning("wecom %s: errcode %s, backing off %.2fs", path, errcode, delay)
            if not backoff.pause(delay):
                raise error_for(errcode, f"retry budget spent: {errmsg}", path=path)

    def _admit(self, path: str, backoff: Backoff) -> None:
        """Wait for a slot of the client-side limiter, within the same budget as the back-off."""
        while (wait := self._limiter.try_acquire(self.corp_id, path)) > 0:
            if not backoff.pause(wait):
                raise RateLimitError(45009, "client-side rate limit reached; retry budget spent", path=path)

    def _send(
        self, method: str, path: str, params: Mapping[str, Any], json: JsonBody | None, files: Files | None = None
    ) -> JsonBody:
        try:
            # the multipart body is rebuilt from `files` on every attempt, so retries resend it whole
            response = self._http.request(
                method, self._base_url + path, params=params, json=json, files=dict(files) if files else None
            )
        except httpx.HTTPError as exc:
            # `from None`: the httpx error carries the request, whose URL holds the token or secret.
            raise TransportError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise TransportError(f"{method} {path}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise TransportError(f"{method} {path}: answer is not JSON") from None
        if not isinstance(body, dict):
            raise TransportError(f"{method} {path}: answer is not a JSON object")
        return body

    # -- organisation -------------------------------------------------------------------------

    def list_departments(self, department_id: int | None = None) -> list[Department]:
        """The department tree under `department_id` (the whole visible tree when None)."""
        params = {} if department_id is None else {"id": department_id}
        body = self._call("GET", "/cgi-bin/department/list", params=params)
        return _parse_list(Department, body, "department")

    def list_users(self, department_id: int = 1, fetch_child: bool = True) -> list[User]:
        params = {"department_id": department_id, "fetch_child": int(fetch_child)}
        body = self._call("GET", "/cgi-bin/user/list", params=params)
        return _parse_list(User, body, "userlist")

    def get_user(self, userid: str) -> User:
        return _parse(User, self._call("GET", "/cgi-bin/user/get", params={"userid": userid}))

    # -- customers ----------------------------------------------------------------------------

    def get_follow_user_list(self) -> list[str]:
        """Employees allowed to have customers (客户联系 enabled)."""
        body = self._call("GET", "/cgi-bin/externalcontact/get_follow_user_list")
        return _strings(body, "follow_user")

    def list_external_contacts(self, userid: str) -> list[str]:
        """The external_userids of `userid`'s customers; [] when WeCom says they have none (84061)."""
        try:
            body = self._call("GET", "/cgi-bin/externalcontact/list", params={"userid": userid})
        except NotFoundError as exc:
            if exc.errcode == NOT_EXTERNAL_CONTACT:
                return []
            raise
        return _strings(body, "external_userid")

    def get_external_contact(self, external_userid: str) -> ExternalContactDetail:
        """A customer with every follow, across all `next_cursor` pages (WeCom pages past 500 follows)."""
        pages = [
            _parse(ExternalContactDetail, body)
            for body in self._pages("GET", "/cgi-bin/externalcontact/get", {"external_userid": external_userid})
        ]
        follows = [follow for page in pages for follow in page.follow_user]
        return pages[0].model_copy(update={"follow_user": follows})

    def _pages(self, method: str, path: str, params: JsonBody) -> Iterator[JsonBody]:
        cursor = ""
        while True:
            query = {**params, "cursor": cursor} if cursor else params
            body = self._call(method, path, params=query)
            yield body
            cursor = str(body.get("next_cursor") or "")
            if not cursor:
                return

    def batch_get_by_user(self, userids: Sequence[str], cursor: str = "", limit: int = 100) -> ContactPage:
        """One page of customers of up to 100 employees (pass back `next_cursor` until it is empty)."""
        if not userids or len(userids) > 100:
            raise ValueError(f"batch_get_by_user takes 1..100 userids, got {len(userids)}")
        if not 1 <= limit <= 100:
            raise ValueError(f"batch_get_by_user limit must be 1..100, got {limit}")
        payload = {"userid_list": list(userids), "cursor": cursor, "limit": limit}
        body = self._call("POST", "/cgi-bin/externalcontact/batch/get_by_user", json=payload)
        return _parse(ContactPage, body)

    def remark(
        self,
        userid: str,
        external_userid: str,
        *,
        remark: str | None = None,
        description: str | None = None,
        remark_company: str | None = None,
        remark_mobiles: Sequence[str] | None = None,
    ) -> None:
        """Set the employee's remark fields on a customer; fields left None are not sent (unchanged).

        `remark_mobiles` overwrites the list; pass `[""]` to clear it. With nothing to change no call
        is made, because WeCom rejects a remark call whose optional fields are all absent.
        """
        fields: JsonBody = {
            "remark": remark,
            "description": description,
            "remark_company": remark_company,
            "remark_mobiles": None if remark_mobiles is None else list(remark_mobiles),
        }
        changes = {key: value for key, value in fields.items() if value is not None}
        if not changes:
            return
        payload = {"userid": userid, "external_userid": external_userid, **changes}
        self._call("POST", "/cgi-bin/externalcontact/remark", json=payload)

    # -- corp tags ----------------------------------------------------------------------------

    def get_corp_tag_list(
        self, tag_ids: Sequence[str] | None = None, group_ids: Sequence[str] | None = None
    ) -> list[CorpTagGroup]:
        """Corp tag groups; all of them when neither filter is given (WeCom ignores tag_ids given group_ids)."""
        payload: JsonBody = {}
        if tag_ids:
            payload["tag_id"] = list(tag_ids)
        if group_ids:
            payload["group_id"] = list(group_ids)
        body = self._call("POST", "/cgi-bin/externalcontact/get_corp_tag_list", json=payload)
        return _parse_list(CorpTagGroup, body, "tag_group")

    def add_corp_tag(
        self,
        *,
        group_id: str | None = None,
        group_name: str | None = None,
        order: int | None = None,
        tags: Sequence[tuple[str, int]],
    ) -> CorpTagGroup:
        """Add (name, order) tags to group `group_id`, or to a group named `group_name` (created if absent)."""
        if not tags:
            raise ValueError("add_corp_tag needs at least one tag")
        if not group_id and not group_name:
            raise ValueError("add_corp_tag needs group_id or group_name")
        payload: JsonBody = {"tag": [{"name": name, "order": tag_order} for name, tag_order in tags]}
        payload |= {k: v for k, v in (("group_id", group_id), ("group_name", group_name), ("order", order)) if v}
        body = self._call("POST", "/cgi-bin/externalcontact/add_corp_tag", json=payload)
        return _parse(CorpTagGroup, body.get("tag_group"))

    def edit_corp_tag(self, tag_or_group_id: str, *, name: str | None = None, order: int | None = None) -> None:
        payload: JsonBody = {"id": tag_or_group_id}
        if name is not None:
            payload["name"] = name
        if order is not None:
            payload["order"] = order
        self._call("POST", "/cgi-bin/externalcontact/edit_corp_tag", json=payload)

    def del_corp_tag(self, *, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> None:
        """Delete tags and groups; with both lists empty there is nothing to delete and no call is made."""
        if not tag_ids and not group_ids:
            return
        payload = {"tag_id": list(tag_ids), "group_id": list(group_ids)}
        self._call("POST", "/cgi-bin/externalcontact/del_corp_tag", json=payload)

    def mark_tag(
        self, userid: str, external_userid: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        """Add and remove corp tags on one follow; with both lists empty no call is made."""
        if not add and not remove:
            return
        payload = {
            "userid": userid,
            "external_userid": external_userid,
            "add_tag": list(add),
            "remove_tag": list(remove),
        }
        self._call("POST", "/cgi-bin/externalcontact/mark_tag", json=payload)

    # -- customer groups ----------------------------------------------------------------------

    def list_group_chats(
        self,
        *,
        status_filter: int = 0,
        owner_userids: Sequence[str] | None = None,
        cursor: str = "",
        limit: int = 1000,
    ) -> GroupChatPage:
        """One page of customer group chats (pass back `next_cursor` until it is empty)."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"list_group_chats limit must be 1..1000, got {limit}")
        if owner_userids is not None and len(owner_userids) > 100:
            raise ValueError(f"list_group_chats takes at most 100 owners, got {len(owner_userids)}")
        payload: JsonBody = {"status_filter": status_filter, "cursor": cursor, "limit": limit}
        if owner_userids:
            payload["owner_filter"] = {"userid_list": list(owner_userids)}
        body = self._call("POST", "/cgi-bin/externalcontact/groupchat/list", json=payload)
        return _parse(GroupChatPage, body)

    def get_group_chat(self, chat_id: str, need_name: bool = True) -> GroupChatDetail:
        payload = {"chat_id": chat_id, "need_name": int(need_name)}
        body = self._call("POST", "/cgi-bin/externalcontact/groupchat/get", json=payload)
        return _parse(GroupChatDetail, body.get("group_chat"))

    # -- 联系我 (contact ways) ------------------------------------------------------------------

    def add_contact_way(
        self,
        *,
        type: int,
        scene: int,
        state: str = "",
        user: Sequence[str] = (),
        party: Sequence[int] = (),
        skip_verify: bool = True,
        remark: str = "",
        style: int = 1,
    ) -> ContactWayCreated:
        """Create a 联系我: type 1 single member / 2 several; scene 1 mini-program / 2 QR (qr_code returned)."""
        payload: JsonBody = {
            "type": type,
            "scene": scene,
            "style": style,
            "remark": remark,
            "skip_verify": skip_verify,
            "state": state,
            "user": list(user),
            "party": list(party),
        }
        body = self._call("POST", "/cgi-bin/externalcontact/add_contact_way", json=payload)
        return _parse(ContactWayCreated, body)

    def get_contact_way(self, config_id: str) -> ContactWay:
        """One 联系我; `contact_way` may come as an object (current) or a one-element list (older answers)."""
        body = self._call("POST", "/cgi-bin/externalcontact/get_contact_way", json={"config_id": config_id})
        data = body.get("contact_way")
        if isinstance(data, list):
            if len(data) != 1:
                raise TransportError(f"get_contact_way: expected one contact_way, got {len(data)}")
            data = data[0]
        return _parse(ContactWay, data)

    def update_contact_way(
        self,
        config_id: str,
        *,
        user: Sequence[str],
        party: Sequence[int],
        skip_verify: bool,
        remark: str,
        state: str,
        style: int = 1,
    ) -> None:
        """Overwrite a 联系我: WeCom may reset fields left out, so this always sends the whole config."""
        payload: JsonBody = {
            "config_id": config_id,
            "style": style,
            "remark": remark,
            "skip_verify": skip_verify,
            "state": state,
            "user": list(user),
            "party": list(party),
        }
        self._call("POST", "/cgi-bin/externalcontact/update_contact_way", json=payload)

    def del_contact_way(self, config_id: str) -> None:
        self._call("POST", "/cgi-bin/externalcontact/del_contact_way", json={"config_id": config_id})

    def iter_contact_way_ids(self, start_time: int, end_time: int) -> Iterator[str]:
        """config_ids of the 联系我 created in [start_time, end_time], across every list_contact_way page."""
        cursor = ""
        while True:
            payload: JsonBody = {"start_time": start_time, "end_time": end_time, "limit": CONTACT_WAY_PAGE}
            if cursor:
                payload["cursor"] = cursor
            body = self._call("POST", "/cgi-bin/externalcontact/list_contact_way", json=payload)
            items = body.get("contact_way") or []
            if not isinstance(items, list):
                raise TransportError("list_contact_way: contact_way is not a list")
            yield from (str(item["config_id"]) for item in items if isinstance(item, dict) and item.get("config_id"))
            cursor = str(body.get("next_cursor") or "")
            if not cursor:
                return

    # -- customer-group join ways ---------------------------------------------------------------

    def add_join_way(
        self,
        *,
        scene: int,
        remark: str,
        auto_create_room: bool,
        room_base_name: str,
        room_base_id: int,
        chat_id_list: Sequence[str],
        state: str,
    ) -> str:
        """Create a group join way (scene 1 mini-program / 2 QR) over 1..5 chats; returns its config_id."""
        payload = _join_way_payload(scene, remark, auto_create_room, room_base_name, room_base_id, chat_id_list, state)
        body = self._call("POST", "/cgi-bin/externalcontact/groupchat/add_join_way", json=payload)
        config_id = body.get("config_id")
        if not isinstance(config_id, str) or not config_id:
            raise TransportError("add_join_way: answer without config_id")
        return config_id

    def get_join_way(self, config_id: str) -> JoinWay:
        body = self._call("POST", "/cgi-bin/externalcontact/groupchat/get_join_way", json={"config_id": config_id})
        return _parse(JoinWay, body.get("join_way"))

    def update_join_way(
        self,
        config_id: str,
        *,
        scene: int,
        remark: str,
        auto_create_room: bool,
        room_base_name: str,
        room_base_id: int,
        chat_id_list: Sequence[str],
        state: str,
    ) -> None:
        """Overwrite a group join way: the whole configuration is sent."""
        payload = _join_way_payload(scene, remark, auto_create_room, room_base_name, room_base_id, chat_id_list, state)
        payload["config_id"] = config_id
        self._call("POST", "/cgi-bin/externalcontact/groupchat/update_join_way", json=payload)

    def del_join_way(self, config_id: str) -> None:
        self._call("POST", "/cgi-bin/externalcontact/groupchat/del_join_way", json={"config_id": config_id})

    # -- welcome messages and media ---------------------------------------------------------------

    def send_welcome_msg(self, welcome_code: str, *, text: str | None, attachments: Sequence[JsonBody]) -> None:
        """Send the new customer's welcome (once, within 20 s of the add event).

        41051 means it was already delivered and 41096 that another app is delivering it; both raise
        InvalidRequestError with that errcode for the caller to record.
        """
        payload: JsonBody = {"welcome_code": welcome_code}
        if text:
            payload["text"] = {"content": text}
        if attachments:
            payload["attachments"] = list(attachments)
        self._call("POST", "/cgi-bin/externalcontact/send_welcome_msg", json=payload)

    def add_group_welcome_template(self, text: str) -> str:
        """Create a group welcome (入群欢迎语素材) text; %NICKNAME% is filled in by WeCom. Returns template_id."""
        body = self._call(
            "POST", "/cgi-bin/externalcontact/group_welcome_template/add", json={"text": {"content": text}}
        )
        template_id = body.get("template_id")
        if not isinstance(template_id, str) or not template_id:
            raise TransportError("group_welcome_template/add: answer without template_id")
        return template_id

    def edit_group_welcome_template(self, template_id: str, text: str) -> None:
        payload = {"template_id": template_id, "text": {"content": text}}
        self._call("POST", "/cgi-bin/externalcontact/group_welcome_template/edit", json=payload)

    def del_group_welcome_template(self, template_id: str) -> None:
        payload = {"template_id": template_id}
        self._call("POST", "/cgi-bin/externalcontact/group_welcome_template/del", json=payload)

    def upload_image(self, filename: str, data: bytes, content_type: str) -> tuple[str, int]:
        """Upload a temporary image (valid 3 days) as multipart field `media`; returns (media_id, created_at)."""
        files = {"media": (filename, data, content_type)}
        body = self._call("POST", "/cgi-bin/media/upload", params={"type": "image"}, files=files)
        media_id = body.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise TransportError("media/upload: answer without media_id")
        try:
            created_at = int(body.get("created_at") or 0)  # WeCom sends it as a string
        except (TypeError, ValueError):
            raise TransportError(f"media/upload: created_at is not a number: {body.get('created_at')!r}") from None
        return media_id, created_at

    # -- mass messages (企业群发) and Moments --------------------------------------------------------

    def add_msg_template(
        self,
        *,
        chat_type: str,
        sender: str,
        external_userids: Sequence[str] = (),
        chat_ids: Sequence[str] = (),
        text: str | None,
        attachments: Sequence[JsonBody] = (),
        allow_select: bool = False,
    ) -> tuple[str, list[str]]:
        """Create a mass-message task for `sender` to confirm; returns (msgid, fail_list).

        Nothing is sent until the sender confirms it in WeCom. chat_type "single" takes ≤ 10,000
        external_userids, "group" ≤ 2,000 chat_ids; ≤ 9 attachments. 41048 (nobody to send to) raises
        InvalidRequestError. Not idempotent: a call whose answer was lost may have created the task.
        """
        payload = _msg_template_payload(chat_type, sender, external_userids, chat_ids, allow_select)
        payload |= _message_content(text, attachments)
        body = self._call("POST", "/cgi-bin/externalcontact/add_msg_template", json=payload)
        msgid = body.get("msgid")
        if not isinstance(msgid, str) or not msgid:
            raise TransportError("add_msg_template: answer without msgid")
        return msgid, _strings(body, "fail_list")

    def iter_groupmsg_list(
        self, *, chat_type: str, start_time: int, end_time: int, creator: str | None = None, filter_type: int = 2
    ) -> Iterator[JsonBody]:
        """Mass messages created in [start_time, end_time] (get_groupmsg_list_v2), oldest window first.

        Items: msgid, creator, create_time (a string), create_type (0 enterprise, 1 personal), text, attachments.
        filter_type: 0 enterprise-created, 1 member-created, 2 all.
        """
        window_start = start_time
        while window_start <= end_time:
            window_end = min(end_time, window_start + GROUPMSG_LIST_WINDOW - 1)
            payload: JsonBody = {
                "chat_type": chat_type,
                "start_time": window_start,
                "end_time": window_end,
                "filter_type": filter_type,
                "limit": GROUPMSG_LIST_PAGE,
            }
            if creator:
                payload["creator"] = creator
            for body in self._body_pages("/cgi-bin/externalcontact/get_groupmsg_list_v2", payload):
                yield from _items(body, "group_msg_list")
            window_start = window_end + 1

    def iter_groupmsg_task(self, msgid: str) -> Iterator[JsonBody]:
        """Each sender of a mass message: {"userid", "status" (0 not sent, 2 sent), "send_time" when sent}."""
        payload = {"msgid": msgid, "limit": GROUPMSG_TASK_PAGE}
        for body in self._body_pages("/cgi-bin/externalcontact/get_groupmsg_task", payload):
            yield from _items(body, "task_list")

    def iter_groupmsg_send_result(self, msgid: str, userid: str) -> Iterator[JsonBody]:
        """Each recipient of `userid`'s part: {"external_userid" | "chat_id", "userid", "status", "send_time"?}.

        status: 0 not sent, 1 sent, 2 not a friend (any more), 3 the recipient's receive cap was used up.
        """
        payload = {"msgid": msgid, "userid": userid, "limit": GROUPMSG_TASK_PAGE}
        for body in self._body_pages("/cgi-bin/externalcontact/get_groupmsg_send_result", payload):
            yield from _items(body, "send_list")

    def remind_groupmsg_send(self, msgid: str) -> None:
        """Notify the senders who have not sent yet again; WeCom allows 3 per msgid in 24 h (LimitError after)."""
        self._call("POST", "/cgi-bin/externalcontact/remind_groupmsg_send", json={"msgid": msgid})

    def cancel_groupmsg_send(self, msgid: str) -> None:
        """Stop a mass message: senders who have not confirmed never send; what was sent stays sent."""
        self._call("POST", "/cgi-bin/externalcontact/cancel_groupmsg_send", json={"msgid": msgid})

    def add_moment_task(
        self,
        *,
        text: str | None,
        attachments: Sequence[JsonBody] = (),
        user_list: Sequence[str] = (),
        department_list: Sequence[int] = (),
        tag_list: Sequence[str] = (),
    ) -> str:
        """Start a customer Moments job (senders: the users and departments, default everyone; visible to
        customers with any of the tags, default all); returns the jobid for get_moment_task_result."""
        payload = _message_content(text, attachments)
        senders = {k: list(v) for k, v in (("user_list", user_list), ("department_list", department_list)) if v}
        visible: JsonBody = {"sender_list": senders} if senders else {}
        if tag_list:
            visible["external_contact_list"] = {"tag_list": list(tag_list)}
        if visible:
            payload["visible_range"] = visible
        body = self._call("POST", "/cgi-bin/externalcontact/add_moment_task", json=payload)
        jobid = body.get("jobid")
        if not isinstance(jobid, str) or not jobid:
            raise TransportError("add_moment_task: answer without jobid")
        return jobid

    def get_moment_task_result(self, jobid: str) -> JsonBody:
        """{"status": 1 started | 2 running | 3 done, "type", "result"?: {errcode, moment_id,
        invalid_sender_list, invalid_external_contact_list}}; `result` comes with status 3."""
        body = self._call("GET", "/cgi-bin/externalcontact/get_moment_task_result", params={"jobid": jobid})
        return {k: v for k, v in body.items() if k not in ("errcode", "errmsg")}

    def get_moment_task(self, moment_id: str) -> list[JsonBody]:
        """Every sender of a moment: {"userid", "publish_status" (0 not yet, 1 published)}."""
        payload = {"moment_id": moment_id, "limit": GROUPMSG_TASK_PAGE}
        bodies = self._body_pages("/cgi-bin/externalcontact/get_moment_task", payload)
        return [item for body in bodies for item in _items(body, "task_list")]

    def _body_pages(self, path: str, payload: JsonBody) -> Iterator[JsonBody]:
        """POST pages: the cursor travels in the JSON body until `next_cursor` comes back empty."""
        cursor = ""
        while True:
            body = self._call("POST", path, json={**payload, "cursor": cursor} if cursor else payload)
            yield body
            cursor = str(body.get("next_cursor") or "")
            if not cursor:
                return

    # -- sign-in and the JS-SDK (the sidebar) -------------------------------------------------

    def get_user_info(self, code: str) -> str:
        """The userid of the corp member who was just sent back by WeCom OAuth with `code` (single use).

        A visitor who is not a member of the corp gets no userid: that is a NotFoundError here.
        """
        body = self._call("GET", "/cgi-bin/auth/getuserinfo", params={"code": code})
        userid = body.get("userid") or body.get("UserId")
        if not isinstance(userid, str) or not userid:
            raise NotFoundError(
                0, "the OAuth code belongs to someone outside the corp", path="/cgi-bin/auth/getuserinfo"
            )
        return userid

    def get_jsapi_ticket(self, *, agent: bool = False) -> tuple[str, int]:
        """(ticket, expires_in) for JS-SDK signatures: the corp's (wx.config) or the app's (wx.agentConfig)."""
        if agent:
            body = self._call("GET", "/cgi-bin/ticket/get", params={"type": "agent_config"})
        else:
            body = self._call("GET", "/cgi-bin/get_jsapi_ticket")
        ticket = body.get("ticket")
        if not isinstance(ticket, str) or not ticket:
            raise TransportError("jsapi ticket: answer without ticket")
        return ticket, int(body.get("expires_in", 7200))


def _join_way_payload(
    scene: int,
    remark: str,
    auto_create_room: bool,
    room_base_name: str,
    room_base_id: int,
    chat_id_list: Sequence[str],
    state: str,
) -> JsonBody:
    if not 1 <= len(chat_id_list) <= 5:
        raise ValueError(f"a join way takes 1..5 chat ids, got {len(chat_id_list)}")
    return {
        "scene": scene,
        "remark": remark,
        "auto_create_room": int(auto_create_room),
        "room_base_name": room_base_name,
        "room_base_id": room_base_id,
        "chat_id_list": list(chat_id_list),
        "state": state,
    }


def _msg_template_payload(
    chat_type: str, sender: str, external_userids: Sequence[str], chat_ids: Sequence[str], allow_select: bool
) -> JsonBody:
    if chat_type not in ("single", "group"):
        raise ValueError(f"chat_type must be single or group, got {chat_type!r}")
    if not sender:
        raise ValueError("add_msg_template needs a sender")
    if len(external_userids) > MASS_MAX_CUSTOMERS or len(chat_ids) > MASS_MAX_CHATS:
        raise ValueError(f"a mass message takes ≤ {MASS_MAX_CUSTOMERS} customers and ≤ {MASS_MAX_CHATS} chats")
    recipients, others = (external_userids, chat_ids) if chat_type == "single" else (chat_ids, external_userids)
    if not recipients or others:
        # WeCom reads a sender without recipients as "every customer (group) of the sender": never by accident
        kind = "external_userids" if chat_type == "single" else "chat_ids"
        raise ValueError(f"chat_type {chat_type} needs {kind}, and only those")
    payload: JsonBody = {"chat_type": chat_type, "sender": sender, "allow_select": allow_select}
    if external_userids:
        payload["external_userid"] = list(external_userids)
    if chat_ids:
        payload["chat_id_list"] = list(chat_ids)
    return payload


def _message_content(text: str | None, attachments: Sequence[JsonBody]) -> JsonBody:
    if len(attachments) > MASS_MAX_ATTACHMENTS:
        raise ValueError(f"at most {MASS_MAX_ATTACHMENTS} attachments, got {len(attachments)}")
    if not text and not attachments:
        raise ValueError("a message needs text or attachments")
    content: JsonBody = {"text": {"content": text}} if text else {}
    if attachments:
        content["attachments"] = list(attachments)
    return content


def _items(body: JsonBody, key: str) -> list[JsonBody]:
    items = body.get(key) or []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise TransportError(f"unexpected {key!r}: not a list of objects")
    return items


def _errcode(body: JsonBody) -> int:
    try:
        return int(body.get("errcode", 0))
    except (TypeError, ValueError):
        raise TransportError(f"errcode is not a number: {body.get('errcode')!r}") from None


def _parse(model: type[_M], data: object) -> _M:
    """Validate a WeCom answer; a shape we cannot read is a transport-level failure, not a crash."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise TransportError(f"unexpected {model.__name__} payload: {exc.error_count()} error(s)") from None


def _parse_list(model: type[_M], body: JsonBody, key: str) -> list[_M]:
    items = body.get(key) or []
    if not isinstance(items, list):
        raise TransportError(f"unexpected {key!r}: not a list")
    return [_parse(model, item) for item in items]


def _strings(body: JsonBody, key: str) -> list[str]:
    items = body.get(key) or []
    if not isinstance(items, list):
        raise TransportError(f"unexpected {key!r}: not a list")
    return [str(item) for item in items]


_shared_lock = threading.Lock()
_shared: dict[str, Any] = {}


def shared_limiter() -> RateLimiter:
    """The process-wide limiter, so every client of a corp draws on the same per-API budget."""
    with _shared_lock:
        limiter = _shared.get("limiter")
        if limiter is None:
            limiter = _shared["limiter"] = RateLimiter()
        return limiter


def shared_token_store() -> TokenStore:
    """The token store chosen by settings, built once per Redis URL (the database store is stateless)."""
    key = f"store:{get_settings().redis_url or 'database'}"
    with _shared_lock:
        store = _shared.get(key)
        if store is None:
            store = _shared[key] = token_store_from_settings()
        return store


_thread = threading.local()


def thread_http() -> httpx.Client:
    """This thread's keep-alive HTTP client for WeCom calls, shared by every corp's client on the thread.

    Building an httpx.Client (its TLS context) costs ~35 ms of CPU on the benchmark machine — more
    than a callback's whole apply — so workers must not build one per event (docs/benchmarks.md (d)).
    """
    client: httpx.Client | None = getattr(_thread, "http", None)
    if client is None:
        client = _thread.http = httpx.Client(timeout=get_settings().wecom_timeout_seconds)
    return client


def forget_thread_http() -> None:
    """Drop this thread's HTTP client (before a fork: a child must not share the parent's sockets)."""
    client: httpx.Client | None = getattr(_thread, "http", None)
    if client is not None:
        _thread.http = None
        client.close()


def client_for_corp(
    corp: Corp, *, token_store: TokenStore | None = None, http: httpx.Client | None = None
) -> WeComClient:
    """A client for a stored corp: its API base URL, its decrypted contact secret, the shared store and limiter.

    It borrows this thread's keep-alive HTTP client (`thread_http`) unless given one.
    """
    settings = get_settings()
    return WeComClient(
        corp_id=corp.corp_id,
        corpid=corp.wecom_corpid,
        secret=decrypt_secret(corp.contact_secret_enc),
        token_store=token_store,
        base_url=corp.api_base_url or settings.wecom_api_base,
        retry_budget_seconds=settings.wecom_retry_budget_seconds,
        timeout_seconds=settings.wecom_timeout_seconds,
        http=http or thread_http(),
    )
