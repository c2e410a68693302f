"""The emulated corp: plain dataclasses in memory, generated deterministically from (seed, M, N).

Tests read these objects directly to compare a mirror row by row. Every mutation goes through a
method here (under `lock`), shared by the HTTP API (no callback) and the actors (callback).
Follows are kept per employee in seq order so cursor paging seeks with bisect, O(page).
Acquisition objects (contact ways, group join ways, group welcome templates, uploaded media and the
welcomes customers received) live here too; their caps are attributes so tests can lower them.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from siyu.wecom.emulator import seed_data as sd

DAY = 86_400
WELCOME_CODE_TTL = 20
MEDIA_TTL = 3 * DAY
DEFAULT_PUBLIC_URL = "http://emulator.invalid"


class EmulatorError(Exception):
    """A WeCom-style failure of a state operation: the errcode the API answers with."""

    def __init__(self, errcode: int, message: str) -> None:
        super().__init__(f"{message} (errcode {errcode})")
        self.errcode = errcode
        self.message = message


@dataclass(slots=True)
class Corp:
    corpid: str
    corp_name: str
    secret: str
    token: str
    encoding_aes_key: str
    agent_id: int


@dataclass(slots=True)
class Department:
    id: int
    name: str
    parentid: int
    order: int
    name_en: str = ""
    department_leader: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Employee:
    userid: str
    name: str
    department: list[int]
    main_department: int
    position: str
    gender: int  # 1 male, 2 female
    status: int  # 1 active, 2 disabled, 4 not activated, 5 quit the corp
    mobile: str = ""
    email: str = ""
    alias: str = ""
    is_leader_in_dept: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Customer:
    external_userid: str
    name: str
    type: int  # 1 WeChat user, 2 WeCom user
    gender: int  # 0 unknown, 1 male, 2 female
    avatar: str
    unionid: str = ""
    corp_name: str = ""
    corp_full_name: str = ""
    position: str = ""


@dataclass(slots=True)
class Follow:
    """One relation employee ↔ customer; `seq` orders it within the employee's list (cursor paging)."""

    userid: str
    external_userid: str
    remark: str
    description: str
    createtime: int
    add_way: int
    oper_userid: str
    state: str = ""
    remark_corp_name: str = ""
    remark_mobiles: list[str] = field(default_factory=list)
    tag_ids: list[str] = field(default_factory=list)
    seq: int = 0


@dataclass(slots=True)
class Tag:
    id: str
    name: str
    group_id: str
    create_time: int
    order: int


@dataclass(slots=True)
class TagGroup:
    group_id: str
    name: str
    create_time: int
    order: int
    tag_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class GroupMember:
    userid: str
    type: int  # 1 employee, 2 external
    join_time: int
    join_scene: int  # 1 direct invite, 2 invite link, 3 QR scan
    invitor: str = ""
    group_nickname: str = ""
    unionid: str = ""
    state: str = ""


@dataclass(slots=True)
class GroupChat:
    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str
    members: list[GroupMember] = field(default_factory=list)
    admin_list: list[str] = field(default_factory=list)
    status: int = 0  # 0 normal, 1 owner left, 2 inheritance in progress, 3 inheritance done
    seq: int = 0

    def member_version(self) -> str:
        """md5 of the sorted member ids joined with commas (WeCom's exact recipe is not documented)."""
        return member_version(m.userid for m in self.members)


@dataclass(slots=True)
class WelcomeCode:
    code: str
    userid: str
    external_userid: str
    expires_at: int
    used: bool = False


@dataclass(slots=True)
class ContactWay:
    """A 联系我 configuration (reference §3.8); `seq` orders list_contact_way."""

    config_id: str
    type: int  # 1 single member, 2 several
    scene: int  # 1 mini-program button, 2 QR code
    user: list[str]
    party: list[int]
    create_time: int
    style: int = 1
    remark: str = ""
    skip_verify: bool = True
    state: str = ""
    is_temp: bool = False
    expires_in: int = 0
    chat_expires_in: int = 0
    unionid: str = ""
    is_exclusive: bool = False
    mark_source: bool = False
    conclusions: dict[str, Any] | None = None
    seq: int = 0


@dataclass(slots=True)
class JoinWay:
    """A customer-group QR code (加入群聊): customers who scan it join the first of its groups with room."""

    config_id: str
    scene: int
    chat_id_list: list[str]
    create_time: int
    remark: str = ""
    auto_create_room: int = 0
    room_base_name: str = ""
    room_base_id: int = 0
    state: str = ""
    mark_source: bool = False


@dataclass(slots=True)
class GroupWelcomeTemplate:
    """入群欢迎语素材: `content` holds text/image/link/miniprogram/file/video as sent."""

    template_id: str
    content: dict[str, Any]
    create_time: int
    notify: int = 1


@dataclass(slots=True)
class Media:
    """A temporary media upload (media/upload): valid MEDIA_TTL seconds."""

    media_id: str
    type: str
    filename: str
    content_type: str
    data: bytes
    created_at: int


@dataclass(slots=True)
class WelcomeDelivery:
    """A welcome message WeCom accepted and pushed to the customer."""

    code: str
    userid: str
    external_userid: str
    text: str
    attachments: list[dict[str, Any]]
    at: int


# --- mass messages (企业群发), Moments and customer reactions (behaviour: mass.py) -------------------

CAP_MODES = ("days_in_month", "weekly_7", "daily_1", "monthly_4")
REACTION_KINDS = ("reply", "complaint", "delete")


@dataclass(slots=True)
class MassSettings:
    """How simulated staff and customers behave around mass messages; changed through /emulator/mass/settings."""

    confirm_probability: float = 0.9
    """Chance that a sender confirms a task on their own (the rest leave it unsent until reminded or told)."""
    confirm_delay: tuple[float, float] = (2.0, 10.0)
    """Seconds between the task (or a remind) and the sender's confirmation, drawn uniformly."""
    dispatch_seconds: float = 0.0
    """After add_msg_template, get_groupmsg_task / send_result answer 41063 (being dispatched) this long."""
    cap_mode: str = "days_in_month"
    """The receive cap per customer / group chat: one of CAP_MODES."""
    timezone: str = "Asia/Shanghai"
    """Where the cap's days, weeks and months begin (WeCom counts in China time)."""
    reply: float = 0.0
    """Base chance that a customer replies to a delivered message (see `mass.reaction_chance`)."""
    complaint: float = 0.0
    """Base chance that a customer complains about a delivered message."""
    delete: float = 0.0
    """Base chance that a customer deletes the sender after a delivered message (a real del_follow_user)."""
    fatigue: float = 1.0
    """How fast the chances rise with the messages received in the last 7 days: × (1 + fatigue × (n − 1))."""
    opt_out_share: float = 0.25
    """Share of replies that are an opt-out (TD / 退订)."""
    reaction_delay: tuple[float, float] = (1.0, 30.0)
    """Seconds between the delivery and the reaction, drawn uniformly."""
    moment_job_seconds: float = 2.0
    """How long an add_moment_task job takes (status 1 for the first half, 2 for the second, then 3)."""


@dataclass(slots=True)
class MassSender:
    """One sender's part of a mass message: recipients, the confirmation and per-recipient (status, send_time)."""

    userid: str
    recipients: list[str]
    decision: str = "waiting"  # waiting (confirms at due_at) | ignored (until reminded) | declined | sent
    due_at: float | None = None
    send_time: int = 0
    draws: int = 0
    results: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(slots=True)
class MassTask:
    """An add_msg_template task (create_type 0) or an employee's own mass message (create_type 1)."""

    msgid: str
    chat_type: str  # single | group
    creator: str
    create_type: int
    created_at: float
    text: str
    attachments: list[dict[str, Any]]
    allow_select: bool
    senders: dict[str, MassSender]
    seq: int = 0
    cancelled: bool = False
    reminds: list[int] = field(default_factory=list)


@dataclass(slots=True)
class MomentSender:
    userid: str
    decision: str = "waiting"  # waiting (publishes at due_at) | ignored | declined | published
    due_at: float | None = None
    publish_time: int = 0


@dataclass(slots=True)
class MomentTask:
    """An add_moment_task job and the moment it creates (the job's result is only shown once it is done)."""

    jobid: str
    moment_id: str
    created_at: float
    ready_at: float
    text: str
    attachments: list[dict[str, Any]]
    tag_list: list[str]
    senders: dict[str, MomentSender]
    invalid_users: list[str] = field(default_factory=list)
    invalid_departments: list[int] = field(default_factory=list)
    invalid_tags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Reaction:
    """What a customer did after receiving a mass message: a reply (maybe TD / 退订), a complaint, a deletion."""

    id: int
    kind: str  # reply | complaint | delete
    external_userid: str
    userid: str
    msgid: str
    at: int
    text: str = ""
    opt_out: bool = False
    delivered: bool = True


def member_version(userids: Iterable[str]) -> str:
    return hashlib.md5(",".join(sorted(userids)).encode()).hexdigest()


class FollowList:
    """One employee's follows in seq order; seqs only grow, so a cursor is (employee, last seq)."""

    __slots__ = ("items", "next_seq", "seqs")

    def __init__(self) -> None:
        self.items: list[Follow] = []
        self.seqs: list[int] = []
        self.next_seq = 1

    def __len__(self) -> int:
        return len(self.items)

    def append(self, follow: Follow) -> None:
        follow.seq = self.next_seq
        self.next_seq += 1
        self.items.append(follow)
        self.seqs.append(follow.seq)

    def remove(self, follow: Follow) -> None:
        i = bisect_left(self.seqs, follow.seq)
        if i < len(self.seqs) and self.items[i] is follow:
            del self.items[i]
            del self.seqs[i]

    def after(self, seq: int, limit: int) -> list[Follow]:
        start = bisect_right(self.seqs, seq)
        return self.items[start : start + limit]

    def has_after(self, seq: int) -> bool:
        return bisect_right(self.seqs, seq) < len(self.seqs)


class IdFactory:
    """WeCom-shaped ids from one seeded generator, so a seed reproduces them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def chars(self, n: int) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(n * 3 // 4 + 3)).decode()[:n]

    def external_userid(self) -> str:
        return "wm" + self.chars(30)

    def tag_id(self) -> str:
        return "et" + self.chars(30)

    def chat_id(self) -> str:
        return "wr" + self.chars(30)

    def unionid(self) -> str:
        return "oz" + self.chars(26)

    def welcome_code(self) -> str:
        return self.chars(43)

    def media_id(self) -> str:
        return "3" + self.chars(63)

    def template_id(self) -> str:
        return "msg" + self.chars(29)

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def mobile(self) -> str:
        return f"1{self.rng.choice('3578')}{self.rng.randrange(10**9):09d}"


class EmulatorState:
    """The whole corp. Read attributes freely; change it only through the methods (they take `lock`)."""

    def __init__(self, corp: Corp, rng: random.Random, clock: Callable[[], float] = time.time) -> None:
        self.corp = corp
        self.ids = IdFactory(rng)
        self.rng = rng
        self.clock = clock
        self.lock = threading.RLock()
        self.departments: dict[int, Department] = {}
        self.employees: dict[str, Employee] = {}
        self.customers: dict[str, Customer] = {}
        self.follow_lists: dict[str, FollowList] = {}
        self.customer_follows: dict[str, dict[str, Follow]] = {}
        self.tag_groups: dict[str, TagGroup] = {}
        self.tags: dict[str, Tag] = {}
        self.groups: dict[str, GroupChat] = {}
        self.welcome_codes: dict[str, WelcomeCode] = {}
        self._group_seq = 0
        # acquisition: 联系我, group join ways, welcomes, media
        self.public_url = DEFAULT_PUBLIC_URL
        self.contact_ways: dict[str, ContactWay] = {}
        self.contact_way_cap = 500_000
        self._contact_way_seq = 0
        self.join_ways: dict[str, JoinWay] = {}
        self.group_member_cap = 200
        self.group_welcome_templates: dict[str, GroupWelcomeTemplate] = {}
        self.group_welcome_template_cap = 100
        self.media: dict[str, Media] = {}
        self.welcome_deliveries: list[WelcomeDelivery] = []
        # mass messages and Moments: tasks, receipts counted by the caps, the event queue, reactions
        self.mass_settings = MassSettings()
        self.mass_tasks: dict[str, MassTask] = {}
        self.moment_tasks: dict[str, MomentTask] = {}
        self.moments: dict[str, MomentTask] = {}
        self.mass_receipts: dict[str, list[int]] = {}
        self.mass_events: list[tuple[float, int, str, str, str]] = []
        self.mass_pending_reactions: dict[int, Reaction] = {}
        self.mass_deletions: list[Reaction] = []
        self.reactions: list[Reaction] = []
        self.mass_seq = 0

    def now(self) -> int:
        return int(self.clock())

    # --- reads ------------------------------------------------------------------------------

    def follow(self, userid: str, external_userid: str) -> Follow | None:
        return self.customer_follows.get(external_userid, {}).get(userid)

    def require_follow(self, userid: str, external_userid: str) -> Follow:
        found = self.follow(userid, external_userid)
        if found is None:
            raise EmulatorError(84061, f"{external_userid} is not an external contact of {userid}")
        return found

    def require_employee(self, userid: str) -> Employee:
        employee = self.employees.get(userid)
        if employee is None or employee.status == 5:
            raise EmulatorError(60111, f"userid not found: {userid}")
        return employee

    def require_customer(self, external_userid: str) -> Customer:
        customer = self.customers.get(external_userid)
        if customer is None:
            raise EmulatorError(40096, f"invalid external userid: {external_userid}")
        return customer

    def require_group(self, chat_id: str) -> GroupChat:
        group = self.groups.get(chat_id)
        if group is None:
            raise EmulatorError(40050, f"chat_id not found: {chat_id}")
        return group

    def follows(self) -> Iterator[Follow]:
        """Every follow, employee by employee."""
        for follow_list in self.follow_lists.values():
            yield from follow_list.items

    def follow_user_ids(self) -> list[str]:
        """Active employees with customer-contact permission (here: every active employee)."""
        return [e.userid for e in self.employees.values() if e.status == 1]

    def group_list(self) -> list[GroupChat]:
        return sorted(self.groups.values(), key=lambda g: g.seq)

    def subdepartments(self, root: int) -> list[int]:
        found, frontier = [root], [root]
        while frontier:
            frontier = [d.id for d in self.departments.values() if d.parentid in frontier]
            found.extend(frontier)
        return found

    def counts(self) -> dict[str, int]:
        return {
            "departments": len(self.departments),
            "employees": sum(1 for e in self.employees.values() if e.status != 5),
            "customers": len(self.customers),
            "follows": sum(len(fl) for fl in self.follow_lists.values()),
            "tag_groups": len(self.tag_groups),
            "tags": len(self.tags),
            "groups": len(self.groups),
        }

    # --- follows and customers --------------------------------------------------------------

    def add_customer(self, customer: Customer) -> Customer:
        with self.lock:
            self.customers[customer.external_userid] = customer
            self.customer_follows.setdefault(customer.external_userid, {})
            return customer

    def add_follow(self, follow: Follow) -> Follow:
        with self.lock:
            if self.follow(follow.userid, follow.external_userid) is not None:
                raise EmulatorError(40058, f"{follow.external_userid} already follows {follow.userid}")
            self.follow_lists.setdefault(follow.userid, FollowList()).append(follow)
            self.customer_follows.setdefault(follow.external_userid, {})[follow.userid] = follow
            return follow

    def remove_follow(self, userid: str, external_userid: str) -> Follow:
        with self.lock:
            follow = self.require_follow(userid, external_userid)
            self.follow_lists[userid].remove(follow)
            del self.customer_follows[external_userid][userid]
            return follow

    def update_follow(
        self,
        userid: str,
        external_userid: str,
        *,
        remark: str | None = None,
        description: str | None = None,
        remark_corp_name: str | None = None,
        remark_mobiles: list[str] | None = None,
    ) -> Follow:
        """Overwrite the given fields; remark_mobiles `[""]` clears the list (as `remark` does)."""
        with self.lock:
            follow = self.require_follow(userid, external_userid)
            if remark is not None:
                follow.remark = remark
            if description is not None:
                follow.description = description
            if remark_corp_name is not None:
                follow.remark_corp_name = remark_corp_name
            if remark_mobiles is not None:
                follow.remark_mobiles = [m for m in remark_mobiles if m]
            return follow

    def mark_tag(self, userid: str, external_userid: str, add: list[str], remove: list[str]) -> Follow:
        with self.lock:
            follow = self.require_follow(userid, external_userid)
            for tag_id in [*add, *remove]:
                if tag_id not in self.tags:
                    raise EmulatorError(40068, f"invalid tagid: {tag_id}")
            kept = [t for t in follow.tag_ids if t not in remove]
            follow.tag_ids = kept + [t for t in dict.fromkeys(add) if t not in kept]
            return follow

    def new_welcome_code(self, userid: str, external_userid: str) -> WelcomeCode:
        with self.lock:
            code = WelcomeCode(self.ids.welcome_code(), userid, external_userid, self.now() + WELCOME_CODE_TTL)
            self.welcome_codes[code.code] = code
            return code

    def use_welcome_code(self, code: str) -> WelcomeCode:
        """The code, checked (41050 unknown or past its 20 s, 41051 already used); the caller marks it used."""
        found = self.welcome_codes.get(code)
        if found is None or found.expires_at < self.now():
            raise EmulatorError(41050, "invalid welcome_code")
        if found.used:
            raise EmulatorError(41051, "externaluser has started chatting")
        return found

    def record_welcome(self, code: WelcomeCode, text: str, attachments: list[dict[str, Any]]) -> WelcomeDelivery:
        with self.lock:
            code.used = True
            delivery = WelcomeDelivery(code.code, code.userid, code.external_userid, text, attachments, self.now())
            self.welcome_deliveries.append(delivery)
            return delivery

    # --- contact ways (联系我) ----------------------------------------------------------------

    def require_contact_way(self, config_id: str) -> ContactWay:
        if not config_id:
            raise EmulatorError(41043, "missing config_id")
        way = self.contact_ways.get(config_id)
        if way is None:
            raise EmulatorError(41044, f"invalid config_id: {config_id}")
        return way

    def department_members(self, party: Iterable[int]) -> list[str]:
        """Members of the departments and their sub-departments, any status except quit, in directory order."""
        depts: set[int] = set()
        for dept_id in party:
            if dept_id not in self.departments:
                raise EmulatorError(60123, f"invalid party id: {dept_id}")
            depts.update(self.subdepartments(dept_id))
        return [e.userid for e in self.employees.values() if e.status != 5 and not depts.isdisjoint(e.department)]

    def check_contact_way_members(self, user: list[str], party: list[int]) -> list[str]:
        """The members a contact way reaches (≤ 100): 60111 unknown user, 40098 not activated or disabled."""
        for userid in user:
            if self.require_employee(userid).status != 1:
                raise EmulatorError(40098, f"user not activated or disabled: {userid}")
        members = list(dict.fromkeys([*user, *self.department_members(party)]))
        if len(members) > 100:
            raise EmulatorError(41041, f"too many users: {len(members)} members, at most 100")
        return members

    def add_contact_way(self, way: ContactWay) -> ContactWay:
        with self.lock:
            if len(self.contact_ways) >= self.contact_way_cap:
                raise EmulatorError(41045, f"contact way count exceeds the limit {self.contact_way_cap}")
            self._contact_way_seq += 1
            way.seq = self._contact_way_seq
            self.contact_ways[way.config_id] = way
            return way

    def delete_contact_way(self, config_id: str) -> ContactWay:
        with self.lock:
            way = self.require_contact_way(config_id)
            del self.contact_ways[config_id]
            return way

    def contact_way_scan_members(self, way: ContactWay) -> list[str]:
        """Who a scan can reach: the listed users and the departments' members who are active now."""
        members = dict.fromkeys([*way.user, *self.department_members(way.party)])
        return [u for u in members if u in self.employees and self.employees[u].status == 1]

    # --- group join ways, group welcome templates and media ----------------------------------

    def require_join_way(self, config_id: str) -> JoinWay:
        if not config_id:
            raise EmulatorError(41043, "missing config_id")
        way = self.join_ways.get(config_id)
        if way is None:
            raise EmulatorError(41044, f"invalid config_id: {config_id}")
        return way

    def add_group_welcome_template(self, content: dict[str, Any], notify: int) -> GroupWelcomeTemplate:
        with self.lock:
            if len(self.group_welcome_templates) >= self.group_welcome_template_cap:
                raise EmulatorError(41055, f"group welcome template count exceeds {self.group_welcome_template_cap}")
            template = GroupWelcomeTemplate(self.ids.template_id(), content, self.now(), notify)
            self.group_welcome_templates[template.template_id] = template
            return template

    def require_group_welcome_template(self, template_id: str) -> GroupWelcomeTemplate:
        template = self.group_welcome_templates.get(template_id)
        if template is None:
            raise EmulatorError(40058, f"invalid template_id: {template_id}")
        return template

    def add_media(self, type_: str, filename: str, content_type: str, data: bytes) -> Media:
        with self.lock:
            media = Media(self.ids.media_id(), type_, filename, content_type, data, self.now())
            self.media[media.media_id] = media
            return media

    def require_media(self, media_id: object) -> Media:
        """An uploaded media still within its 3 days, else 40007 invalid media_id."""
        media = self.media.get(media_id) if isinstance(media_id, str) else None
        if media is None or media.created_at + MEDIA_TTL < self.now():
            raise EmulatorError(40007, f"invalid media_id: {media_id}")
        return media

    # --- corp tags --------------------------------------------------------------------------

    def tag_group_by_name(self, name: str) -> TagGroup | None:
        return next((g for g in self.tag_groups.values() if g.name == name), None)

    def create_tag_group(self, name: str, order: int = 0) -> TagGroup:
        with self.lock:
            if self.tag_group_by_name(name) is not None:
                raise EmulatorError(40071, f"tag group name already exists: {name}")
            group = TagGroup(self.ids.tag_id(), name, self.now(), order)
            self.tag_groups[group.group_id] = group
            return group

    def create_tag(self, group_id: str, name: str, order: int = 0) -> Tag:
        """A tag in group_id; an existing tag of the same name is returned as it is."""
        with self.lock:
            group = self.tag_groups.get(group_id)
            if group is None:
                raise EmulatorError(40068, f"invalid tag group id: {group_id}")
            existing = next((self.tags[t] for t in group.tag_ids if self.tags[t].name == name), None)
            if existing is not None:
                return existing
            tag = Tag(self.ids.tag_id(), name, group_id, self.now(), order)
            self.tags[tag.id] = tag
            group.tag_ids.append(tag.id)
            return tag

    def rename_tag_or_group(self, id_: str, name: str | None, order: int | None) -> Tag | TagGroup:
        with self.lock:
            target: Tag | TagGroup | None = self.tags.get(id_) or self.tag_groups.get(id_)
            if target is None:
                raise EmulatorError(40068, f"invalid tagid: {id_}")
            if name is not None and name != target.name:
                self._check_unique_name(target, name)
                target.name = name
            if order is not None:
                target.order = order
            return target

    def _check_unique_name(self, target: Tag | TagGroup, name: str) -> None:
        if isinstance(target, TagGroup):
            taken = self.tag_group_by_name(name) is not None
        else:
            taken = any(self.tags[t].name == name for t in self.tag_groups[target.group_id].tag_ids)
        if taken:
            raise EmulatorError(40071, f"tag name already exists: {name}")

    def delete_tags(self, tag_ids: list[str], group_ids: list[str]) -> list[str]:
        """Delete tags and groups; a group losing its last tag goes too. Returns the group ids deleted."""
        with self.lock:
            for id_ in tag_ids:
                if id_ not in self.tags:
                    raise EmulatorError(40068, f"invalid tagid: {id_}")
            for id_ in group_ids:
                if id_ not in self.tag_groups:
                    raise EmulatorError(40068, f"invalid tag group id: {id_}")
            doomed = set(tag_ids)
            for id_ in group_ids:
                doomed.update(self.tag_groups[id_].tag_ids)
            emptied = self._drop_tags(doomed)
            for id_ in dict.fromkeys([*group_ids, *emptied]):
                self.tag_groups.pop(id_, None)
            return list(dict.fromkeys([*group_ids, *emptied]))

    def _drop_tags(self, doomed: set[str]) -> list[str]:
        emptied: list[str] = []
        for id_ in doomed:
            tag = self.tags.pop(id_)
            group = self.tag_groups[tag.group_id]
            group.tag_ids.remove(id_)
            if not group.tag_ids:
                emptied.append(group.group_id)
        for follow in self.follows():
            if follow.tag_ids and not doomed.isdisjoint(follow.tag_ids):
                follow.tag_ids = [t for t in follow.tag_ids if t not in doomed]
        return emptied

    # --- groups -----------------------------------------------------------------------------

    def add_group(self, group: GroupChat) -> GroupChat:
        with self.lock:
            self._group_seq += 1
            group.seq = self._group_seq
            self.groups[group.chat_id] = group
            return group

    def member_type(self, userid: str) -> int:
        if userid in self.employees:
            return 1
        if userid in self.customers:
            return 2
        raise EmulatorError(40058, f"unknown group member: {userid}")


# --- generation ---------------------------------------------------------------------------------


def build_state(*, seed: int = 0, employees: int = 20, customers: int = 1000, now: int | None = None) -> EmulatorState:
    """A corp with `employees` staff and `customers` customers (~1.5 follows each), same seed → same corp.

    Times are spread over the year before `now` (default: today's 00:00 UTC, so a seed reproduces
    the same corp all day; pass `now` to pin it across days).
    """
    anchor = now if now is not None else int(time.time()) // DAY * DAY
    rng = random.Random(seed)
    state = EmulatorState(_make_corp(random.Random(f"corp-{seed}")), rng)
    _make_departments(state)
    _make_employees(state, employees)
    _make_tags(state, anchor)
    _make_customers(state, customers, anchor)
    _make_groups(state, anchor)
    return state


def _make_corp(rng: random.Random) -> Corp:
    ids = IdFactory(rng)
    return Corp(
        corpid="ww" + ids.hex(16),
        corp_name=sd.CORP_NAME,
        secret=ids.chars(43),
        token=ids.chars(32).replace("-", "x").replace("_", "y"),
        encoding_aes_key=base64.b64encode(rng.randbytes(32)).decode()[:-1],
        agent_id=1000002,
    )


def _make_departments(state: EmulatorState) -> None:
    by_name: dict[str, int] = {}
    for i, (name, parent, name_en) in enumerate(sd.DEPARTMENTS, start=1):
        parentid = by_name[parent] if parent else 0
        state.departments[i] = Department(i, name, parentid, order=100_000_000 - i, name_en=name_en)
        by_name[name] = i


def _employee_slots(state: EmulatorState) -> list[int]:
    """The department each successive employee joins: a manager at the root, then stores and teams."""
    others = [d.id for d in state.departments.values() if d.parentid != 0 and not d.name.endswith("大区")]
    return [1, *others]


def _pinyin_name(rng: random.Random) -> tuple[str, str]:
    surname, s_py = rng.choice(sd.SURNAMES)
    given = [rng.choice(sd.GIVEN_CHARS) for _ in range(1 + (rng.random() < 0.67))]
    return surname + "".join(c for c, _ in given), s_py.capitalize() + "".join(p.capitalize() for _, p in given)


def _make_employees(state: EmulatorState, count: int) -> None:
    rng, slots = state.rng, _employee_slots(state)
    for i in range(count):
        name, userid = _pinyin_name(rng)
        userid = _unique(userid, state.employees)
        dept = state.departments[slots[i % len(slots)]]
        employee = Employee(
            userid=userid,
            name=name,
            department=[dept.id],
            main_department=dept.id,
            position=_position(rng, dept.name),
            gender=rng.choice((1, 2, 2)),
            # a few invited staff never activated their account (only in larger corps)
            status=4 if i % 25 == 24 else 1,
            mobile=state.ids.mobile(),
            email=f"{userid.lower()}@siyu-demo.com",
        )
        if not dept.department_leader:
            dept.department_leader.append(userid)
            employee.is_leader_in_dept = [1]
        state.employees[userid] = employee


def _unique(candidate: str, taken: dict[str, Employee]) -> str:
    name, n = candidate, 2
    while name in taken:
        name, n = f"{candidate}{n}", n + 1
    return name


def _position(rng: random.Random, dept_name: str) -> str:
    return rng.choice(sd.POSITIONS_BY_DEPARTMENT.get(dept_name, sd.STORE_POSITIONS))


def _make_tags(state: EmulatorState, anchor: int) -> None:
    created = anchor - 400 * DAY
    for g_order, (group_name, names) in enumerate(sd.TAG_GROUPS):
        group = TagGroup(state.ids.tag_id(), group_name, created, order=len(sd.TAG_GROUPS) - g_order)
        state.tag_groups[group.group_id] = group
        for t_order, name in enumerate(names):
            tag = Tag(state.ids.tag_id(), name, group.group_id, created, order=len(names) - t_order)
            state.tags[tag.id] = tag
            group.tag_ids.append(tag.id)


class _FollowMaker:
    """Random follows, with the lookups precomputed once (this runs ~150,000 times for the benchmark)."""

    def __init__(self, state: EmulatorState, anchor: int) -> None:
        self.state, self.rng, self.anchor = state, state.rng, anchor
        self.ways = [w for w, _ in sd.ADD_WAYS]
        self.cum = list(accumulate(weight for _, weight in sd.ADD_WAYS))
        self.tag_ids = list(state.tags)

    def add_way(self) -> int:
        return self.ways[bisect_right(self.cum, self.rng.random() * self.cum[-1])]

    def make(self, userid: str, customer: Customer) -> Follow:
        rng, way = self.rng, self.add_way()
        by_customer = way in (1, 16)
        return Follow(
            userid=userid,
            external_userid=customer.external_userid,
            remark=customer.name + rng.choice(sd.REMARK_SUFFIXES) if rng.random() < 0.5 else "",
            description=rng.choice(sd.DESCRIPTIONS) if rng.random() < 0.3 else "",
            createtime=self.anchor - rng.randrange(DAY, 365 * DAY),
            add_way=way,
            oper_userid=customer.external_userid if by_customer else userid,
            state=rng.choice(sd.CHANNEL_STATES) if by_customer and rng.random() < 0.5 else "",
            remark_mobiles=[self.state.ids.mobile()] if rng.random() < 0.2 else [],
            tag_ids=_pick(rng, self.tag_ids, rng.choice((0, 1, 1, 2, 2, 3))),
        )


def _pick(rng: random.Random, items: list[str], k: int) -> list[str]:
    """k distinct items; cheaper than rng.sample for the tiny k used here."""
    picked: dict[str, None] = {}
    while len(picked) < min(k, len(items)):
        picked[items[int(rng.random() * len(items))]] = None
    return list(picked)


def make_customer(state: EmulatorState) -> Customer:
    rng, ids = state.rng, state.ids
    name, _ = _pinyin_name(rng)
    external_userid = ids.external_userid()
    customer = Customer(
        external_userid=external_userid,
        name=name,
        type=1,
        gender=rng.choice((0, 1, 2, 2)),
        avatar=f"https://wx.qlogo.cn/mmhead/{external_userid[2:26]}/0",
        unionid=ids.unionid(),
    )
    if rng.random() < 0.05:
        customer.type = 2
        customer.corp_name, customer.corp_full_name = rng.choice(sd.CUSTOMER_CORPS)
        customer.position = rng.choice(sd.CUSTOMER_POSITIONS)
    return customer


def _make_customers(state: EmulatorState, count: int, anchor: int) -> None:
    followers = state.follow_user_ids()
    if not followers:
        return
    maker = _FollowMaker(state, anchor)
    rng = state.rng
    for _ in range(count):
        customer = state.add_customer(make_customer(state))
        k = min(len(followers), 1 if rng.random() < 0.6 else (2 if rng.random() < 0.75 else 3))
        for userid in _pick(rng, followers, k):
            state.add_follow(maker.make(userid, customer))


def _make_groups(state: EmulatorState, anchor: int) -> None:
    owners = [u for u in state.follow_user_ids() if state.follow_lists.get(u)]
    if not owners:
        return
    for _ in range(min(2000, max(2, len(state.customers) // 100))):
        state.add_group(_make_group(state, state.rng.choice(owners), anchor))


def _make_group(state: EmulatorState, owner: str, anchor: int) -> GroupChat:
    rng = state.rng
    created = anchor - rng.randrange(DAY, 300 * DAY)
    staff = [owner, *rng.sample(state.follow_user_ids(), min(2, len(state.follow_user_ids())))]
    own_customers = state.follow_lists[owner].items
    externals = rng.sample(own_customers, min(len(own_customers), rng.randrange(3, 40)))
    members = [GroupMember(owner, 1, created, 1)]
    for userid in dict.fromkeys(staff[1:]):
        if userid != owner:
            members.append(GroupMember(userid, 1, created + rng.randrange(60, DAY), 1, invitor=owner))
    for follow in externals:
        members.append(_external_member(state, follow.external_userid, owner, created + rng.randrange(60, 30 * DAY)))
    admins = [m.userid for m in members[1:2] if m.type == 1]
    name = rng.choice(sd.GROUP_NAMES) + f"{rng.randrange(1, 99)}群"
    return GroupChat(state.ids.chat_id(), name, owner, created, rng.choice(sd.GROUP_NOTICES), members, admins)


def _external_member(state: EmulatorState, external_userid: str, owner: str, join_time: int) -> GroupMember:
    scene = state.rng.choice((1, 2, 3))
    return GroupMember(
        userid=external_userid,
        type=2,
        join_time=join_time,
        join_scene=scene,
        invitor=owner if scene != 3 else "",
        group_nickname=state.rng.choice(("", "", "小仙女", "老王")),
        unionid=state.customers[external_userid].unionid,
        state=state.rng.choice(sd.CHANNEL_STATES) if scene == 3 and state.rng.random() < 0.3 else "",
    )
