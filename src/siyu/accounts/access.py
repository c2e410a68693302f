"""Who may see and change what — written once per object type (STYLE §6).

An `Actor` is a signed-in user (console session or API token) with the data scope of
their role: admin, operator and compliance see the whole corp; staff see the customers
they follow, widened to their departments (and sub-departments) when they lead them.
Nobody ever sees another corp. `access_<noun>_by_id` gives the same not-found for
missing and out-of-scope objects, so ids cannot be probed; routes never re-check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session

from siyu.accounts.models import ApiToken, ConsoleUser, Role
from siyu.acquisition.models import Channel, ChannelGroup, CodeStatus, GroupCode, Material, WelcomeTemplate
from siyu.broadcasts.models import Broadcast
from siyu.compliance.models import ReachPause
from siyu.contacts.departments import department_subtree, employees_in
from siyu.contacts.models import Customer, Department, Employee, Follow
from siyu.core.errors import DomainError, ErrorCode
from siyu.groups.models import GroupChat
from siyu.segments.models import Segment, SegmentSnapshot
from siyu.tags.models import Tag, TagGroup


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: int
    corp_id: int
    username: str
    role: Role
    employee_id: int | None
    # None: the whole corp. Otherwise the employees whose customers this actor may see.
    scope_employee_ids: frozenset[int] | None

    @property
    def label(self) -> str:
        return f"user:{self.user_id}:{self.username}"


# (object type, action) → roles allowed. Object-level scope is applied on top by the access functions.
PERMISSIONS: dict[tuple[str, str], frozenset[Role]] = {
    ("customer", "read"): frozenset(Role),
    ("customer", "write"): frozenset({Role.ADMIN, Role.OPERATOR, Role.STAFF}),
    ("employee", "read"): frozenset(Role),
    ("tag", "read"): frozenset(Role),
    ("tag", "write"): frozenset({Role.ADMIN, Role.OPERATOR}),
    ("group_chat", "read"): frozenset(Role),
    ("audit_log", "read"): frozenset({Role.ADMIN, Role.COMPLIANCE}),
    ("corp", "read"): frozenset({Role.ADMIN, Role.OPERATOR}),
    ("corp", "write"): frozenset({Role.ADMIN}),
    ("sync", "write"): frozenset({Role.ADMIN, Role.OPERATOR}),
    ("user", "read"): frozenset({Role.ADMIN}),
    ("user", "write"): frozenset({Role.ADMIN}),
    # Everyone manages their own API tokens (access_api_token_by_id keeps them to their own).
    ("api_token", "read"): frozenset(Role),
    ("api_token", "write"): frozenset(Role),
    ("dashboard", "read"): frozenset(Role),
    # Acquisition: channel codes, group codes, welcome messages and materials; funnels read with `channel`.
    ("channel", "read"): frozenset(Role),
    ("channel", "write"): frozenset({Role.ADMIN, Role.OPERATOR}),
    # Segments span the whole corp: the people who reach customers (and compliance, who audits them).
    ("segment", "read"): frozenset({Role.ADMIN, Role.OPERATOR, Role.COMPLIANCE}),
    ("segment", "write"): frozenset({Role.ADMIN, Role.OPERATOR}),
    # Compliance: the reach policy, complaint rates, pauses and the harassment budget (whole corp).
    ("compliance", "read"): frozenset({Role.ADMIN, Role.OPERATOR, Role.COMPLIANCE}),
    ("compliance", "write"): frozenset({Role.ADMIN, Role.COMPLIANCE}),
    # Broadcasts reach the whole corp: admins and operators plan, send, remind and cancel; compliance reads.
    ("broadcast", "read"): frozenset({Role.ADMIN, Role.OPERATOR, Role.COMPLIANCE}),
    ("broadcast", "write"): frozenset({Role.ADMIN, Role.OPERATOR}),
    # Staff reach their own customers only with personal broadcasts they start themselves (≤ 200).
    ("personal_broadcast", "read"): frozenset({Role.STAFF}),
    ("personal_broadcast", "write"): frozenset({Role.STAFF}),
    # Anyone may record a customer's opt-out or complaint — for the customers they can see.
    ("opt_out", "write"): frozenset(Role),
    ("complaint", "write"): frozenset(Role),
}


def can(actor: Actor, object_type: str, action: str) -> bool:
    return actor.role in PERMISSIONS.get((object_type, action), frozenset())


def require(actor: Actor, object_type: str, action: str) -> None:
    if not can(actor, object_type, action):
        raise DomainError(ErrorCode.FORBIDDEN, f"your role ({actor.role}) may not {action} {object_type}")


def actor_for(session: Session, user: ConsoleUser) -> Actor:
    role = Role(user.role)
    scope = None if role != Role.STAFF else frozenset(_staff_scope(session, user))
    return Actor(user.id, user.corp_id, user.username, role, user.employee_id, scope)


def _staff_scope(session: Session, user: ConsoleUser) -> set[int]:
    """The staff member's own employee, plus everyone in the departments they lead (recursively)."""
    if user.employee_id is None:
        return set()
    me = session.get(Employee, user.employee_id)
    if me is None or me.corp_id != user.corp_id:
        return set()
    led_ids = {
        d.wecom_id
        for d in session.execute(
            select(Department.wecom_id, Department.leaders).where(Department.corp_id == user.corp_id)
        )
        if me.userid in (d.leaders or [])
    }
    tree = department_subtree(session, corp_id=user.corp_id, roots=led_ids) if led_ids else set()
    return {me.id} | employees_in(session, corp_id=user.corp_id, department_ids=tree)


_M = TypeVar(
    "_M",
    TagGroup,
    Tag,
    ConsoleUser,
    ApiToken,
    Channel,
    ChannelGroup,
    GroupCode,
    Material,
    WelcomeTemplate,
    ReachPause,
    Broadcast,
    Segment,
    SegmentSnapshot,
)


def _not_found(object_type: str, object_id: object) -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, f"no {object_type} {object_id}")


# --- customers --------------------------------------------------------------------------------


def customer_scope(actor: Actor) -> ColumnElement[bool]:
    """A WHERE clause for the customers this actor may see (use it in every customer query)."""
    in_corp = Customer.corp_id == actor.corp_id
    if actor.scope_employee_ids is None:
        return in_corp
    followed = exists().where(
        Follow.customer_id == Customer.id, Follow.employee_id.in_(sorted(actor.scope_employee_ids))
    )
    return in_corp & followed


def access_customer_by_id(session: Session, actor: Actor, customer_id: int, *, write: bool = False) -> Customer:
    require(actor, "customer", "write" if write else "read")
    customer = session.scalar(select(Customer).where(Customer.id == customer_id, customer_scope(actor)))
    if customer is None:
        raise _not_found("customer", customer_id)
    return customer


def access_follow(session: Session, actor: Actor, follow_id: int, *, write: bool = False) -> Follow:
    """A follow is reachable when its customer is; staff may change only follows in their scope."""
    require(actor, "customer", "write" if write else "read")
    follow = session.get(Follow, follow_id)
    if follow is None or follow.corp_id != actor.corp_id:
        raise _not_found("follow", follow_id)
    scope = actor.scope_employee_ids
    if scope is not None and follow.employee_id not in scope:
        raise _not_found("follow", follow_id)
    return follow


# --- employees, groups, tags ------------------------------------------------------------------


def employee_scope(actor: Actor) -> ColumnElement[bool]:
    in_corp = Employee.corp_id == actor.corp_id
    if actor.scope_employee_ids is None:
        return in_corp
    return in_corp & Employee.id.in_(sorted(actor.scope_employee_ids))


def access_employee_by_id(session: Session, actor: Actor, employee_id: int) -> Employee:
    require(actor, "employee", "read")
    employee = session.scalar(select(Employee).where(Employee.id == employee_id, employee_scope(actor)))
    if employee is None:
        raise _not_found("employee", employee_id)
    return employee


def group_scope(actor: Actor) -> ColumnElement[bool]:
    """Staff see the groups owned by employees in their scope."""
    in_corp = GroupChat.corp_id == actor.corp_id
    if actor.scope_employee_ids is None:
        return in_corp
    owners = select(Employee.userid).where(
        Employee.corp_id == actor.corp_id, Employee.id.in_(sorted(actor.scope_employee_ids))
    )
    return in_corp & GroupChat.owner_userid.in_(owners)


def access_group_by_id(session: Session, actor: Actor, group_id: int) -> GroupChat:
    require(actor, "group_chat", "read")
    group = session.scalar(select(GroupChat).where(GroupChat.id == group_id, group_scope(actor)))
    if group is None:
        raise _not_found("group", group_id)
    return group


def _in_corp(session: Session, actor: Actor, model: type[_M], object_id: int, label: str) -> _M:
    """A corp-wide object (no finer scope): it exists for the actor only inside their own corp."""
    found = session.get(model, object_id)
    if found is None or found.corp_id != actor.corp_id:
        raise _not_found(label, object_id)
    return found


def access_tag_group_by_id(session: Session, actor: Actor, group_id: int, *, write: bool = False) -> TagGroup:
    require(actor, "tag", "write" if write else "read")
    return _in_corp(session, actor, TagGroup, group_id, "tag group")


def access_tag_by_id(session: Session, actor: Actor, tag_id: int, *, write: bool = False) -> Tag:
    require(actor, "tag", "write" if write else "read")
    return _in_corp(session, actor, Tag, tag_id, "tag")


# --- acquisition: channel codes, their groups, group codes, materials, welcome templates --------
# Corp-wide objects: every role reads them (staff see the codes they serve on), admins and operators change them.


def access_channel_by_id(session: Session, actor: Actor, channel_id: int, *, write: bool = False) -> Channel:
    require(actor, "channel", "write" if write else "read")
    channel = _in_corp(session, actor, Channel, channel_id, "channel")
    if channel.status == CodeStatus.DELETED and write:
        raise _not_found("channel", channel_id)
    return channel


def access_channel_group_by_id(session: Session, actor: Actor, group_id: int, *, write: bool = False) -> ChannelGroup:
    require(actor, "channel", "write" if write else "read")
    return _in_corp(session, actor, ChannelGroup, group_id, "channel group")


def access_group_code_by_id(session: Session, actor: Actor, code_id: int, *, write: bool = False) -> GroupCode:
    require(actor, "channel", "write" if write else "read")
    code = _in_corp(session, actor, GroupCode, code_id, "group code")
    if code.status == CodeStatus.DELETED and write:
        raise _not_found("group code", code_id)
    return code


def access_material_by_id(session: Session, actor: Actor, material_id: int, *, write: bool = False) -> Material:
    require(actor, "channel", "write" if write else "read")
    return _in_corp(session, actor, Material, material_id, "material")


def access_welcome_template_by_id(
    session: Session, actor: Actor, template_id: int, *, write: bool = False
) -> WelcomeTemplate:
    require(actor, "channel", "write" if write else "read")
    return _in_corp(session, actor, WelcomeTemplate, template_id, "welcome template")


# --- compliance: pauses of an employee or a broadcast (corp-wide) ------------------------------------


def access_pause_by_id(session: Session, actor: Actor, pause_id: int, *, write: bool = False) -> ReachPause:
    require(actor, "compliance", "write" if write else "read")
    return _in_corp(session, actor, ReachPause, pause_id, "pause")


# --- broadcasts (corp-wide; staff: the personal ones they started) --------------------------------


def broadcast_scope(actor: Actor, *, write: bool = False) -> ColumnElement[bool]:
    """The broadcasts this actor may see (or change): the corp's, or for staff the personal ones they created."""
    action = "write" if write else "read"
    in_corp = Broadcast.corp_id == actor.corp_id
    if can(actor, "broadcast", action):
        return in_corp
    if can(actor, "personal_broadcast", action):
        return in_corp & (Broadcast.kind == "personal") & (Broadcast.created_by == actor.label)
    raise DomainError(ErrorCode.FORBIDDEN, f"your role ({actor.role}) may not {action} broadcast")


def can_broadcast(actor: Actor, action: str = "read") -> bool:
    """Whether the actor reaches customers by broadcast at all: the corp's, or (staff) their personal ones."""
    return can(actor, "broadcast", action) or can(actor, "personal_broadcast", action)


def personal_only(actor: Actor) -> bool:
    """Staff: they may write personal broadcasts only (from themselves, to customers they follow)."""
    return not can(actor, "broadcast", "write") and can(actor, "personal_broadcast", "write")


class _OwnedBroadcast(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def created_by(self) -> str: ...


def can_write_broadcast(actor: Actor, broadcast: _OwnedBroadcast) -> bool:
    """Whether the actor may edit, plan, send, remind or cancel this broadcast, already read within their scope
    (the Python twin of `broadcast_scope(write=True)`, for the pages' buttons)."""
    if can(actor, "broadcast", "write"):
        return True
    own = broadcast.kind == "personal" and broadcast.created_by == actor.label
    return own and can(actor, "personal_broadcast", "write")


def access_broadcast_by_id(session: Session, actor: Actor, broadcast_id: int, *, write: bool = False) -> Broadcast:
    scope = broadcast_scope(actor, write=write)
    broadcast = session.scalar(select(Broadcast).where(Broadcast.id == broadcast_id, scope))
    if broadcast is None:
        raise _not_found("broadcast", broadcast_id)
    return broadcast


# --- segments and their snapshots (corp-wide) -----------------------------------------------------


def access_segment_by_id(session: Session, actor: Actor, segment_id: int, *, write: bool = False) -> Segment:
    require(actor, "segment", "write" if write else "read")
    return _in_corp(session, actor, Segment, segment_id, "segment")


def access_snapshot_by_id(session: Session, actor: Actor, snapshot_id: int, *, write: bool = False) -> SegmentSnapshot:
    require(actor, "segment", "write" if write else "read")
    return _in_corp(session, actor, SegmentSnapshot, snapshot_id, "snapshot")


# --- console users and API tokens -------------------------------------------------------------


def access_user_by_id(session: Session, actor: Actor, user_id: int, *, write: bool = False) -> ConsoleUser:
    require(actor, "user", "write" if write else "read")
    return _in_corp(session, actor, ConsoleUser, user_id, "user")


def access_api_token_by_id(session: Session, actor: Actor, token_id: int, *, write: bool = False) -> ApiToken:
    """A token is its owner's alone: not even an admin sees or revokes another user's token here."""
    require(actor, "api_token", "write" if write else "read")
    token = _in_corp(session, actor, ApiToken, token_id, "API token")
    if token.user_id != actor.user_id:
        raise _not_found("API token", token_id)
    return token
