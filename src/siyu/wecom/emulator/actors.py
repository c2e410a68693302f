"""Simulated customers and staff: each action changes the state and sends WeCom's encrypted callback.

WeCom only calls back for what people do in the client or the admin console, never for API calls
(reference §0.10), so these actions are the *only* source of callbacks in the emulator. Each one
builds the self-built-app event XML of reference §4, seals it with the corp's token and
EncodingAESKey (receiveid = corpid) and POSTs `envelope_xml` to the callback URL with
`msg_signature, timestamp, nonce` in the query: 5 s timeout, 3 attempts, every attempt recorded.

Scanning a 联系我 code picks the employee at random (seeded `state.rng`) among the way's active users
and department members, as WeCom spreads multi-member codes randomly; it sends add_external_contact
with State and a WelcomeCode even for skip_verify ways (WeCom may first send
add_half_external_contact there; the emulator does not model the member confirming).
Scanning a group join way joins the first listed group under `state.group_member_cap` members; when
all are full and auto_create_room is on, a new group `{room_base_name}{room_base_id}` owned by the
first group's owner is created (create + add_member callbacks), room_base_id goes up by one and the
new chat replaces the oldest full one if the list already holds 5. All full without auto-create is
errcode 40058 (WeCom shows the customer "group full"; no documented errcode).
"""

from __future__ import annotations

import inspect
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from siyu.wecom.crypto import MsgCrypt, envelope_xml
from siyu.wecom.emulator import mass
from siyu.wecom.emulator.state import (
    ContactWay,
    Customer,
    Department,
    EmulatorError,
    EmulatorState,
    Follow,
    FollowList,
    GroupChat,
    GroupMember,
    JoinWay,
    make_customer,
)

XmlValue = str | int | Sequence[str]
DeliveryStatus = Literal["pending", "delivered", "failed", "no_callback_url"]
ACTIONS: dict[str, Callable[..., ActionResult]] = {}
ALIASES = {"customer_add": "add_customer"}


class CallbackUrlError(Exception):
    """Saving a callback URL failed WeCom's echostr verification."""


# --- event XML ------------------------------------------------------------------------------------


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _element(name: str, value: XmlValue) -> str:
    if isinstance(value, int):
        return f"<{name}>{value}</{name}>"
    if isinstance(value, str):
        return f"<{name}>{_cdata(value)}</{name}>"
    items = "".join(f"<Item>{_cdata(v)}</Item>" for v in value)
    return f"<{name}>{items}</{name}>"


def event_xml(corpid: str, create_time: int, event: str, fields: Sequence[tuple[str, XmlValue]]) -> str:
    """The decrypted body of a self-built app's event callback (reference §4)."""
    head: list[tuple[str, XmlValue]] = [
        ("ToUserName", corpid),
        ("FromUserName", "sys"),
        ("CreateTime", create_time),
        ("MsgType", "event"),
        ("Event", event),
    ]
    return "<xml>" + "".join(_element(k, v) for k, v in [*head, *fields]) + "</xml>"


# --- delivery -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Delivery:
    """One callback: what was sent, where, and what each attempt got back (HTTP status or error text)."""

    id: int
    event: str
    change_type: str
    xml: str
    url: str
    status: DeliveryStatus = "pending"
    attempts: int = 0
    responses: list[int | str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "change_type": self.change_type,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "responses": self.responses,
            "xml": self.xml,
        }


class CallbackSender:
    """Seals event XML and POSTs it to the callback URL, synchronously or on one background thread."""

    def __init__(
        self,
        crypt: MsgCrypt,
        *,
        corpid: str,
        agent_id: str = "",
        url: str | None = None,
        timeout: float = 5.0,
        attempts: int = 3,
        retry_delay: float = 0.2,
        background: bool = False,
    ) -> None:
        self.crypt, self.corpid, self.agent_id, self.url = crypt, corpid, agent_id, url
        self.timeout, self.attempts, self.retry_delay = timeout, attempts, retry_delay
        self.background = background
        self.deliveries: deque[Delivery] = deque(maxlen=10_000)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emulator-callbacks")
        self._pending: list[Future[None]] = []
        # one client, made once: building an httpx client (its TLS context) costs tens of ms
        self._client = httpx.Client(timeout=timeout)
        self._client_lock = threading.Lock()

    def verify_url(self, url: str, *, timeout: float = 5.0) -> None:
        """The admin console's check: GET url with an encrypted echostr; the body must be its plaintext."""
        plain = str(int(time.time() * 1000))
        env = self.crypt.seal(plain)
        params = {"msg_signature": env.msg_signature, "timestamp": env.timestamp, "nonce": env.nonce}
        try:
            with self._client_lock:
                r = self._client.get(url, params={**params, "echostr": env.encrypt}, timeout=timeout)
        except httpx.HTTPError as exc:
            raise CallbackUrlError(f"callback URL unreachable: {exc!r}") from exc
        if r.status_code != 200 or r.text != plain:
            raise CallbackUrlError(f"callback URL failed echostr verification: HTTP {r.status_code} {r.text[:200]!r}")

    def send(self, xml: str, event: str, change_type: str) -> Delivery:
        delivery = Delivery(next(self._ids), event, change_type, xml, self.url or "")
        with self._lock:
            self.deliveries.append(delivery)
        if not self.url:
            delivery.status = "no_callback_url"
            return delivery
        if self.background:
            with self._lock:
                self._pending.append(self._executor.submit(self._deliver, delivery))
        else:
            self._deliver(delivery)
        return delivery

    def wait(self, timeout: float | None = None) -> None:
        """Block until every background delivery has finished (a no-op in synchronous mode)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result(timeout=timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _deliver(self, delivery: Delivery) -> None:
        env = self.crypt.seal(delivery.xml)
        body = envelope_xml(self.corpid, env.encrypt, self.agent_id)
        params = {"msg_signature": env.msg_signature, "timestamp": env.timestamp, "nonce": env.nonce}
        for attempt in range(1, self.attempts + 1):
            delivery.attempts = attempt
            with self._client_lock:
                ok = self._attempt(self._client, delivery, params, body)
            if ok:
                delivery.status = "delivered"
                return
            if attempt < self.attempts:
                time.sleep(self.retry_delay)
        delivery.status = "failed"

    @staticmethod
    def _attempt(client: httpx.Client, delivery: Delivery, params: dict[str, str], body: str) -> bool:
        try:
            r = client.post(delivery.url, params=params, content=body.encode(), headers={"Content-Type": "text/xml"})
        except httpx.HTTPError as exc:
            delivery.responses.append(type(exc).__name__)
            return False
        delivery.responses.append(r.status_code)
        return r.status_code == 200


# --- actions --------------------------------------------------------------------------------------


@dataclass(slots=True)
class ActionResult:
    """What an action changed (`data`, JSON-ready) and the callbacks it sent."""

    data: dict[str, Any]
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def delivery(self) -> Delivery | None:
        return self.deliveries[0] if self.deliveries else None

    def to_json(self) -> dict[str, Any]:
        return {**self.data, "deliveries": [d.to_json() for d in self.deliveries]}


def action(method: Callable[..., ActionResult]) -> Callable[..., ActionResult]:
    """Register a method of Actors as an action reachable over HTTP and the CLI under its own name."""
    ACTIONS[method.__name__] = method
    return method


def action_params(name: str) -> list[dict[str, Any]]:
    """The parameters of an action, for the `/emulator/actions` listing and `siyu emulator act --help`."""
    sig = inspect.signature(ACTIONS[name])
    return [
        {"name": p.name, "type": str(p.annotation), "required": p.default is inspect.Parameter.empty}
        | ({} if p.default is inspect.Parameter.empty else {"default": p.default})
        for p in list(sig.parameters.values())[1:]
    ]


class Actors:
    """People doing things in WeCom. Every public method is an action: mutate, then send the callback."""

    def __init__(self, state: EmulatorState, sender: CallbackSender) -> None:
        self.state = state
        self.sender = sender

    @property
    def deliveries(self) -> list[Delivery]:
        return list(self.sender.deliveries)

    def _emit(self, event: str, fields: Sequence[tuple[str, XmlValue]]) -> Delivery:
        change_type = next(str(v) for k, v in fields if k == "ChangeType")
        xml = event_xml(self.state.corp.corpid, self.state.now(), event, fields)
        return self.sender.send(xml, event, change_type)

    def _contact_event(
        self, change_type: str, userid: str, external_userid: str, *extra: tuple[str, XmlValue]
    ) -> Delivery:
        fields: list[tuple[str, XmlValue]] = [
            ("ChangeType", change_type),
            ("UserID", userid),
            ("ExternalUserID", external_userid),
            *extra,
        ]
        return self._emit("change_external_contact", fields)

    # --- customers ------------------------------------------------------------------------

    @action
    def add_customer(
        self,
        userid: str | None = None,
        external_userid: str | None = None,
        name: str | None = None,
        state: str = "",
        add_way: int = 1,
        half: bool = False,
        welcome_code: bool = True,
        remark: str = "",
    ) -> ActionResult:
        """A customer adds an employee (new customer unless external_userid is given): add_external_contact.

        userid defaults to a random active employee. `half=True` is the skip-verify variant
        (add_half_external_contact); `welcome_code=False` models the cases where WeCom sends none
        (an admin-configured welcome message, a chat already started).
        """
        with self.state.lock:
            userid = userid or self._random_employee()
            self.state.require_employee(userid)
            customer = self._customer_for(external_userid, name)
            follow = Follow(
                userid=userid,
                external_userid=customer.external_userid,
                remark=remark,
                description="",
                createtime=self.state.now(),
                add_way=add_way,
                oper_userid=customer.external_userid if add_way in (1, 16) else userid,
                state=state,
            )
            self.state.add_follow(follow)
            code = self.state.new_welcome_code(userid, customer.external_userid).code if welcome_code else ""
        extra: list[tuple[str, XmlValue]] = [("State", state)] if state else []
        if code:
            extra.append(("WelcomeCode", code))
        change = "add_half_external_contact" if half else "add_external_contact"
        delivery = self._contact_event(change, userid, customer.external_userid, *extra)
        data = {
            "userid": userid,
            "external_userid": customer.external_userid,
            "name": customer.name,
            "welcome_code": code,
        }
        return ActionResult(data, [delivery])

    @action
    def scan_contact_way(
        self, config_id: str, external_userid: str | None = None, name: str | None = None
    ) -> ActionResult:
        """A customer scans a 联系我 code: a random active member of it gets add_external_contact with its State."""
        with self.state.lock:
            way = self.state.require_contact_way(config_id)
            userid = self._scan_target(way)
        # outside the lock: the callback receiver may call the API back before answering
        result = self.add_customer(userid, external_userid, name, state=way.state, add_way=1)
        result.data |= {"config_id": config_id, "state": way.state}
        return result

    def _scan_target(self, way: ContactWay) -> str:
        members = self.state.contact_way_scan_members(way)
        if not members:
            raise EmulatorError(60111, f"contact way {way.config_id} has no active member")
        return members[0] if len(members) == 1 else self.state.rng.choice(members)

    def _random_employee(self) -> str:
        candidates = self.state.follow_user_ids()
        if not candidates:
            raise EmulatorError(60111, "the corp has no active employee")
        return self.state.rng.choice(candidates)

    def _customer_for(self, external_userid: str | None, name: str | None) -> Customer:
        if external_userid:
            return self.state.require_customer(external_userid)
        customer = make_customer(self.state)
        if name:
            customer.name = name
        return self.state.add_customer(customer)

    @action
    def customer_delete_employee(self, userid: str, external_userid: str) -> ActionResult:
        """The customer deletes the employee from WeChat: del_follow_user (the follow goes)."""
        self.state.remove_follow(userid, external_userid)
        delivery = self._contact_event("del_follow_user", userid, external_userid)
        return ActionResult({"userid": userid, "external_userid": external_userid}, [delivery])

    @action
    def employee_mass_message(
        self, userid: str, text: str, external_userids: list[str] | None = None, chat_ids: list[str] | None = None
    ) -> ActionResult:
        """An employee sends their own mass message from the client (create_type 1): sent at once, no callback.

        Customers by default (all of the employee's, or `external_userids`); `chat_ids` sends to groups instead.
        Personal messages are not counted by the enterprise receive cap, but customers may react to them.
        """
        with self.state.lock:
            self.state.require_employee(userid)
            if chat_ids:
                chat_type, recipients = "group", list(dict.fromkeys(chat_ids))
            else:
                own = [f.external_userid for f in self.state.follow_lists.get(userid, FollowList()).items]
                chat_type, recipients = "single", list(dict.fromkeys(external_userids or own))
            if not recipients:
                raise EmulatorError(41048, f"{userid} has nobody to send to")
            task = mass.create_mass_task(
                self.state,
                chat_type=chat_type,
                sender=userid,
                recipients=recipients,
                text=text,
                attachments=[],
                create_type=1,
            )
        return ActionResult({"msgid": task.msgid, "chat_type": chat_type, "recipients": len(recipients)})

    @action
    def employee_delete_customer(self, userid: str, external_userid: str, source: str = "") -> ActionResult:
        """The employee deletes the customer: del_external_contact (Source DELETE_BY_TRANSFER for inheritance)."""
        self.state.remove_follow(userid, external_userid)
        delivery = self._contact_event("del_external_contact", userid, external_userid, ("Source", source))
        return ActionResult({"userid": userid, "external_userid": external_userid}, [delivery])

    @action
    def edit_remark(
        self,
        userid: str,
        external_userid: str,
        remark: str | None = None,
        description: str | None = None,
        remark_corp_name: str | None = None,
        remark_mobiles: list[str] | None = None,
    ) -> ActionResult:
        """The employee edits remark/description in the client: edit_external_contact.

        As in WeCom, changing only the remark mobiles sends no callback.
        """
        self.state.update_follow(
            userid,
            external_userid,
            remark=remark,
            description=description,
            remark_corp_name=remark_corp_name,
            remark_mobiles=remark_mobiles,
        )
        data = {"userid": userid, "external_userid": external_userid}
        if remark is None and description is None and remark_corp_name is None:
            return ActionResult(data)
        return ActionResult(data, [self._contact_event("edit_external_contact", userid, external_userid)])

    @action
    def tag_customer(
        self, userid: str, external_userid: str, add_tags: list[str] | None = None, remove_tags: list[str] | None = None
    ) -> ActionResult:
        """The employee tags the customer in the client: edit_external_contact."""
        follow = self.state.mark_tag(userid, external_userid, add_tags or [], remove_tags or [])
        delivery = self._contact_event("edit_external_contact", userid, external_userid)
        return ActionResult(
            {"userid": userid, "external_userid": external_userid, "tag_ids": follow.tag_ids}, [delivery]
        )

    @action
    def transfer_fail(self, userid: str, external_userid: str, reason: str = "customer_refused") -> ActionResult:
        """An on-duty transfer to userid failed (customer_refused | customer_limit_exceed): transfer_fail."""
        if reason not in ("customer_refused", "customer_limit_exceed"):
            raise EmulatorError(40058, f"reason must be customer_refused or customer_limit_exceed, not {reason!r}")
        self.state.require_employee(userid)
        self.state.require_customer(external_userid)
        fields: list[tuple[str, XmlValue]] = [
            ("ChangeType", "transfer_fail"),
            ("FailReason", reason),
            ("UserID", userid),
            ("ExternalUserID", external_userid),
        ]
        return ActionResult(
            {"userid": userid, "external_userid": external_userid}, [self._emit("change_external_contact", fields)]
        )

    # --- corp tags ------------------------------------------------------------------------

    def _tag_event(self, change_type: str, id_: str, tag_type: str | None) -> Delivery:
        fields: list[tuple[str, XmlValue]] = [("Id", id_)]
        if tag_type is not None:
            fields.append(("TagType", tag_type))
        fields.append(("ChangeType", change_type))
        return self._emit("change_external_tag", fields)

    @action
    def create_tag_group(self, group_name: str, tags: list[str], order: int = 0) -> ActionResult:
        """An admin creates a tag group with its tags: one change_external_tag create, TagType tag_group."""
        if not tags:
            raise EmulatorError(40058, "a tag group needs at least one tag")
        with self.state.lock:
            group = self.state.create_tag_group(group_name, order)
            tag_ids = [self.state.create_tag(group.group_id, name).id for name in tags]
        delivery = self._tag_event("create", group.group_id, "tag_group")
        return ActionResult({"group_id": group.group_id, "tag_ids": tag_ids}, [delivery])

    @action
    def create_tag(self, group_id: str, name: str, order: int = 0) -> ActionResult:
        """An admin adds a tag to a group: change_external_tag create, TagType tag."""
        tag = self.state.create_tag(group_id, name, order)
        return ActionResult({"tag_id": tag.id, "group_id": group_id}, [self._tag_event("create", tag.id, "tag")])

    @action
    def update_tag(self, tag_id: str, name: str | None = None, order: int | None = None) -> ActionResult:
        """An admin renames / reorders a tag: change_external_tag update, TagType tag."""
        if tag_id not in self.state.tags:
            raise EmulatorError(40068, f"invalid tagid: {tag_id}")
        self.state.rename_tag_or_group(tag_id, name, order)
        return ActionResult({"tag_id": tag_id}, [self._tag_event("update", tag_id, "tag")])

    @action
    def update_tag_group(self, group_id: str, name: str | None = None, order: int | None = None) -> ActionResult:
        """An admin renames / reorders a tag group: change_external_tag update, TagType tag_group."""
        if group_id not in self.state.tag_groups:
            raise EmulatorError(40068, f"invalid tag group id: {group_id}")
        self.state.rename_tag_or_group(group_id, name, order)
        return ActionResult({"group_id": group_id}, [self._tag_event("update", group_id, "tag_group")])

    @action
    def delete_tag(self, tag_id: str) -> ActionResult:
        """An admin deletes a tag: delete (tag), plus delete (tag_group) when it was the group's last tag."""
        emptied = self.state.delete_tags([tag_id], [])
        deliveries = [self._tag_event("delete", tag_id, "tag")]
        deliveries += [self._tag_event("delete", group_id, "tag_group") for group_id in emptied]
        return ActionResult({"tag_id": tag_id, "deleted_group_ids": emptied}, deliveries)

    @action
    def delete_tag_group(self, group_id: str) -> ActionResult:
        """An admin deletes a whole group: one delete event for the group, none per tag."""
        self.state.delete_tags([], [group_id])
        return ActionResult({"group_id": group_id}, [self._tag_event("delete", group_id, "tag_group")])

    @action
    def shuffle_tags(self, group_id: str = "") -> ActionResult:
        """An admin reorders the tags of group_id (or, with no group_id, the groups): shuffle, no TagType."""
        with self.state.lock:
            if group_id:
                if group_id not in self.state.tag_groups:
                    raise EmulatorError(40068, f"invalid tag group id: {group_id}")
                targets: list[Any] = [self.state.tags[t] for t in self.state.tag_groups[group_id].tag_ids]
            else:
                targets = list(self.state.tag_groups.values())
            orders = [t.order for t in targets]
            for target, order in zip(targets, orders[1:] + orders[:1], strict=True):
                target.order = order
        return ActionResult({"group_id": group_id}, [self._tag_event("shuffle", group_id, None)])

    # --- customer groups ------------------------------------------------------------------

    def _chat_event(self, chat_id: str, change_type: str, *extra: tuple[str, XmlValue]) -> Delivery:
        return self._emit("change_external_chat", [("ChatId", chat_id), ("ChangeType", change_type), *extra])

    def _new_member(self, userid: str, join_scene: int, invitor: str) -> GroupMember:
        kind = self.state.member_type(userid)
        unionid = self.state.customers[userid].unionid if kind == 2 else ""
        return GroupMember(userid, kind, self.state.now(), join_scene, invitor=invitor, unionid=unionid)

    @action
    def create_group(
        self,
        owner: str,
        name: str = "",
        member_userids: list[str] | None = None,
        external_userids: list[str] | None = None,
        notice: str = "",
    ) -> ActionResult:
        """An employee creates a customer group: change_external_chat create."""
        with self.state.lock:
            self.state.require_employee(owner)
            group = GroupChat(self.state.ids.chat_id(), name, owner, self.state.now(), notice)
            group.members.append(GroupMember(owner, 1, group.create_time, 1))
            for userid in dict.fromkeys([*(member_userids or []), *(external_userids or [])]):
                if userid != owner:
                    group.members.append(self._new_member(userid, 1, owner))
            self.state.add_group(group)
        data = {"chat_id": group.chat_id, "member_version": group.member_version()}
        return ActionResult(data, [self._chat_event(group.chat_id, "create")])

    @action
    def group_add_members(self, chat_id: str, userids: list[str], join_scene: int = 1) -> ActionResult:
        """Members join (1 invited, 2 invite link, 3 QR scan): update / add_member with the member versions."""
        with self.state.lock:
            group = self.state.require_group(chat_id)
            present = {m.userid for m in group.members}
            joining = [u for u in dict.fromkeys(userids) if u not in present]
            if not joining:
                raise EmulatorError(40058, "every userid is already a member")
            last = group.member_version()
            invitor = group.owner if join_scene != 3 else ""
            group.members.extend(self._new_member(u, join_scene, invitor) for u in joining)
            current = group.member_version()
        delivery = self._member_change(chat_id, "add_member", ("JoinScene", join_scene), joining, last, current)
        return ActionResult({"chat_id": chat_id, "member_version": current}, [delivery])

    @action
    def group_remove_members(self, chat_id: str, userids: list[str], quit_scene: int = 0) -> ActionResult:
        """Members leave (0 left, 1 removed by owner/admin): update / del_member."""
        with self.state.lock:
            group = self.state.require_group(chat_id)
            if group.owner in userids:
                raise EmulatorError(40058, "the owner cannot leave; change the owner or dismiss the group")
            leaving = [m.userid for m in group.members if m.userid in set(userids)]
            if not leaving:
                raise EmulatorError(40058, "none of the userids is a member")
            last = group.member_version()
            group.members = [m for m in group.members if m.userid not in set(leaving)]
            group.admin_list = [a for a in group.admin_list if a not in set(leaving)]
            current = group.member_version()
        delivery = self._member_change(chat_id, "del_member", ("QuitScene", quit_scene), leaving, last, current)
        return ActionResult({"chat_id": chat_id, "member_version": current}, [delivery])

    def _member_change(
        self, chat_id: str, detail: str, scene: tuple[str, int], changed: list[str], last: str, current: str
    ) -> Delivery:
        return self._chat_event(
            chat_id,
            "update",
            ("UpdateDetail", detail),
            scene,
            ("MemChangeCnt", len(changed)),
            ("MemChangeList", changed),
            ("LastMemVer", last),
            ("CurMemVer", current),
        )

    @action
    def scan_join_way(
        self, config_id: str, external_userid: str | None = None, name: str | None = None
    ) -> ActionResult:
        """A customer scans a group join way: joins the first group with room (QR scan, the way's state)."""
        with self.state.lock:
            way = self.state.require_join_way(config_id)
            if external_userid and any(external_userid in self._member_ids(c) for c in way.chat_id_list):
                raise EmulatorError(40058, f"{external_userid} is already in a group of {config_id}")
            group = self._group_with_room(way)
            created = group is None
            group = group or self._auto_create_group(way)
            customer = self._customer_for(external_userid, name)
            last = group.member_version()
            member = self._new_member(customer.external_userid, 3, "")
            member.state = way.state
            group.members.append(member)
            current = group.member_version()
        deliveries = [self._chat_event(group.chat_id, "create")] if created else []
        joined = [customer.external_userid]
        deliveries.append(self._member_change(group.chat_id, "add_member", ("JoinScene", 3), joined, last, current))
        data = {
            "config_id": config_id,
            "chat_id": group.chat_id,
            "external_userid": customer.external_userid,
            "name": customer.name,
            "state": way.state,
            "member_version": current,
            "created_group": created,
        }
        return ActionResult(data, deliveries)

    def _member_ids(self, chat_id: str) -> set[str]:
        group = self.state.groups.get(chat_id)
        return {m.userid for m in group.members} if group else set()

    def _group_with_room(self, way: JoinWay) -> GroupChat | None:
        for chat_id in way.chat_id_list:
            group = self.state.groups.get(chat_id)
            if group is not None and len(group.members) < self.state.group_member_cap:
                return group
        return None

    def _auto_create_group(self, way: JoinWay) -> GroupChat:
        if not way.auto_create_room:
            raise EmulatorError(40058, f"every group of join way {way.config_id} is full")
        first = self.state.require_group(way.chat_id_list[0])
        now = self.state.now()
        group = GroupChat(self.state.ids.chat_id(), f"{way.room_base_name}{way.room_base_id}", first.owner, now, "")
        group.members.append(GroupMember(first.owner, 1, now, 1))
        self.state.add_group(group)
        way.room_base_id += 1
        if len(way.chat_id_list) >= 5:
            way.chat_id_list.pop(0)
        way.chat_id_list.append(group.chat_id)
        return group

    @action
    def group_change_owner(self, chat_id: str, new_owner: str) -> ActionResult:
        """The owner hands the group over to another employee (who joins if needed): update / change_owner."""
        with self.state.lock:
            group = self.state.require_group(chat_id)
            self.state.require_employee(new_owner)
            if new_owner not in {m.userid for m in group.members}:
                group.members.append(self._new_member(new_owner, 1, group.owner))
            group.owner, group.status = new_owner, 0
        return ActionResult({"chat_id": chat_id, "owner": new_owner}, [self._group_update(group, "change_owner")])

    def _group_update(self, group: GroupChat, detail: str) -> Delivery:
        version = group.member_version()
        return self._chat_event(
            group.chat_id, "update", ("UpdateDetail", detail), ("LastMemVer", version), ("CurMemVer", version)
        )

    @action
    def group_rename(self, chat_id: str, name: str) -> ActionResult:
        """update / change_name."""
        with self.state.lock:
            group = self.state.require_group(chat_id)
            group.name = name
        return ActionResult({"chat_id": chat_id, "name": name}, [self._group_update(group, "change_name")])

    @action
    def group_change_notice(self, chat_id: str, notice: str) -> ActionResult:
        """update / change_notice."""
        with self.state.lock:
            group = self.state.require_group(chat_id)
            group.notice = notice
        return ActionResult({"chat_id": chat_id, "notice": notice}, [self._group_update(group, "change_notice")])

    @action
    def group_dismiss(self, chat_id: str) -> ActionResult:
        """The owner dismisses the group (it disappears from groupchat/list): dismiss."""
        with self.state.lock:
            self.state.require_group(chat_id)
            del self.state.groups[chat_id]
        return ActionResult({"chat_id": chat_id}, [self._chat_event(chat_id, "dismiss")])

    # --- staff directory ------------------------------------------------------------------

    def _party_event(self, change_type: str, *fields: tuple[str, XmlValue]) -> Delivery:
        return self._emit("change_contact", [("ChangeType", change_type), *fields])

    @action
    def resign_employee(self, userid: str) -> ActionResult:
        """The employee leaves the corp: change_contact delete_user. Follows stay, awaiting inheritance."""
        with self.state.lock:
            employee = self.state.require_employee(userid)
            employee.status = 5
            for dept in self.state.departments.values():
                if userid in dept.department_leader:
                    dept.department_leader.remove(userid)
            for group in self.state.groups.values():
                if group.owner == userid:
                    group.status = 1
        return ActionResult({"userid": userid}, [self._party_event("delete_user", ("UserID", userid))])

    @action
    def create_department(self, name: str, parentid: int = 1, order: int = 0, name_en: str = "") -> ActionResult:
        """An admin creates a department: change_contact create_party."""
        with self.state.lock:
            self._require_department(parentid)
            dept_id = max(self.state.departments, default=0) + 1
            self.state.departments[dept_id] = Department(dept_id, name, parentid, order, name_en)
        fields = [("Id", dept_id), ("Name", name), ("ParentId", parentid), ("Order", order)]
        return ActionResult({"id": dept_id}, [self._party_event("create_party", *fields)])

    @action
    def update_department(self, id: int, name: str | None = None, parentid: int | None = None) -> ActionResult:
        """An admin renames or moves a department: change_contact update_party (only the changed fields)."""
        fields: list[tuple[str, XmlValue]] = [("Id", id)]
        with self.state.lock:
            dept = self._require_department(id)
            if name is not None:
                dept.name = name
                fields.append(("Name", name))
            if parentid is not None:
                if parentid in self.state.subdepartments(id):
                    raise EmulatorError(60010, f"department {parentid} is inside department {id}")
                self._require_department(parentid)
                dept.parentid = parentid
                fields.append(("ParentId", parentid))
        return ActionResult({"id": id}, [self._party_event("update_party", *fields)])

    @action
    def delete_department(self, id: int) -> ActionResult:
        """An admin deletes an empty department: change_contact delete_party."""
        with self.state.lock:
            self._require_department(id)
            if any(d.parentid == id for d in self.state.departments.values()):
                raise EmulatorError(60006, f"department {id} has sub-departments")
            if any(id in e.department and e.status != 5 for e in self.state.employees.values()):
                raise EmulatorError(60005, f"department {id} has members")
            del self.state.departments[id]
        return ActionResult({"id": id}, [self._party_event("delete_party", ("Id", id))])

    def _require_department(self, dept_id: int) -> Department:
        dept = self.state.departments.get(dept_id)
        if dept is None:
            raise EmulatorError(60123, f"invalid party id: {dept_id}")
        return dept
