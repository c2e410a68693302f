"""What an add through a code means: attribution, the channel's tags, the welcome, the cap check.

Called by the callback handler inside the transaction that applied the add (the mirror already
holds the follow). Attribution is by WeCom's `state`: the follow keeps the channel that brought
it, and the customer keeps the first channel that ever did (first touch). The whole corp is
attributed set-based after a sync (`do_attribute_corp`), for follows that arrived without a
callback.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session

from siyu.acquisition import welcome
from siyu.acquisition.models import Channel, CodeStatus, GroupCode, GroupCodeJoin
from siyu.acquisition.rotation import do_rotate_channels
from siyu.acquisition.service import channel_for_state
from siyu.contacts.models import Customer, Employee, Follow, FollowStatus
from siyu.core.clock import now_utc
from siyu.corp.models import Corp
from siyu.outbox.actions import do_enqueue
from siyu.segments.changes import mark_dirty
from siyu.sync.bulk import insert_ignoring_conflicts
from siyu.tags.models import FollowTag, Tag
from siyu.tags.outbox import MARK_TAG
from siyu.timeline.actions import EventKind, do_record_event
from siyu.wecom.client import WeComClient
from siyu.wecom.errors import WeComError

ACTOR = "siyu:channel"


def do_follow_added(
    session: Session,
    *,
    corp_id: int,
    userid: str,
    external_userid: str,
    state: str,
    welcome_code: str,
    event_at: datetime | None,
    received_at: datetime | None,
) -> None:
    row = session.execute(
        select(Follow, Employee, Customer)
        .join(Employee, Employee.id == Follow.employee_id)
        .join(Customer, Customer.id == Follow.customer_id)
        .where(Follow.corp_id == corp_id, Employee.userid == userid, Customer.external_userid == external_userid)
    ).first()
    if row is None:
        return
    follow, employee, customer = row
    channel = channel_for_state(session, corp_id, state or follow.state)
    if channel is not None:
        _attribute(session, follow, customer, channel)
        if follow.status == FollowStatus.ACTIVE and welcome.in_window(channel, received_at or event_at or now_utc()):
            _apply_tags(session, follow, customer, employee, channel.tag_ids, source=f"channel:{channel.id}")
    if welcome_code:
        welcome.do_prepare(
            session,
            corp_id=corp_id,
            welcome_code=welcome_code,
            channel=channel,
            employee=employee,
            customer_id=customer.id,
            nickname=customer.name,
            event_at=event_at,
            received_at=received_at,
        )
    if channel is not None and channel.daily_cap and channel.status == CodeStatus.ACTIVE:
        corp = session.get(Corp, corp_id)
        assert corp is not None
        do_rotate_channels(session, corp, [channel])


def _attribute(session: Session, follow: Follow, customer: Customer, channel: Channel) -> None:
    if follow.channel_id is None:
        follow.channel_id = channel.id
        mark_dirty(session, follow.corp_id, [customer.id])
    if customer.first_channel_id is None:
        customer.first_channel_id = channel.id
    session.flush()


def _apply_tags(
    session: Session, follow: Follow, customer: Customer, employee: Employee, tag_ids: list[int], *, source: str
) -> int | None:
    """Add the code's tags the follow lacks: locally and in WeCom (mark_tag through the outbox)."""
    if not tag_ids:
        return None
    have = set(session.scalars(select(FollowTag.tag_id).where(FollowTag.follow_id == follow.id)))
    tags = session.execute(
        select(Tag.id, Tag.wecom_id, Tag.name).where(
            Tag.corp_id == follow.corp_id, Tag.id.in_([t for t in tag_ids if t not in have])
        )
    ).all()
    tags = [t for t in tags if t.wecom_id and not t.wecom_id.startswith("pending:")]
    if not tags:
        return None
    rows = [{"follow_id": follow.id, "tag_id": t.id, "corp_id": follow.corp_id} for t in tags]
    session.execute(insert_ignoring_conflicts(session, FollowTag.__table__), rows)
    mark_dirty(session, follow.corp_id, [customer.id])
    payload = {
        "userid": employee.userid,
        "external_userid": customer.external_userid,
        "add": [t.wecom_id for t in tags],
        "remove": [],
        "follow_id": follow.id,
        "customer_id": customer.id,
    }
    outbox = do_enqueue(session, corp_id=follow.corp_id, kind=MARK_TAG, payload=payload, created_by=f"{ACTOR}:{source}")
    do_record_event(
        session,
        corp_id=follow.corp_id,
        customer_id=customer.id,
        employee_id=employee.id,
        kind=EventKind.TAGS_CHANGED,
        occurred_at=now_utc(),
        actor=f"{ACTOR}:{source}",
        detail={"added": [t.name for t in tags], "removed": [], "outbox_id": outbox.id},
    )
    return outbox.id


def do_attribute_corp(session: Session, corp_id: int) -> int:
    """Attribute every unattributed follow whose state names a channel, and fill first-touch channels."""
    channel_id = (
        select(Channel.id).where(Channel.corp_id == Follow.corp_id, Channel.state == Follow.state).scalar_subquery()
    )
    customers = (
        session.execute(
            update(Follow)
            .where(
                Follow.corp_id == corp_id,
                Follow.channel_id.is_(None),
                Follow.state != "",
                exists().where(and_(Channel.corp_id == Follow.corp_id, Channel.state == Follow.state)),
            )
            .values(channel_id=channel_id)
            .returning(Follow.customer_id)
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    mark_dirty(session, corp_id, customers)
    attributed = len(customers)
    if attributed:
        first = (
            select(Follow.channel_id)
            .where(Follow.customer_id == Customer.id, Follow.channel_id.is_not(None))
            .order_by(Follow.created_at, Follow.id)
            .limit(1)
            .scalar_subquery()
        )
        session.execute(
            update(Customer)
            .where(
                Customer.corp_id == corp_id,
                Customer.first_channel_id.is_(None),
                exists().where(and_(Follow.customer_id == Customer.id, Follow.channel_id.is_not(None))),
            )
            .values(first_channel_id=first)
            .execution_options(synchronize_session=False)
        )
    return attributed


# --- group codes: joiners -------------------------------------------------------------------------


def do_group_members_joined(
    session: Session,
    *,
    corp_id: int,
    chat_id: str,
    members: list[tuple[str, str, datetime | None]],
    client: WeComClient | None = None,
) -> int:
    """Record joiners whose member state names a group code, and tag them where an employee follows them.

    Returns how many joiners named a code (a repeated event records nothing new).

    `members` are (member userid, state, join time) of external members who just joined. A join into
    a group the code does not list means WeCom rotated in a new group (auto_create_room): the code's
    groups are re-read from WeCom (get_join_way) so the console shows what customers really join.
    """
    states = {state for _, state, _ in members if state}
    if not states:
        return 0
    codes_by_state = {
        c.state: c
        for c in session.scalars(
            select(GroupCode).where(GroupCode.corp_id == corp_id, GroupCode.state.in_(sorted(states)))
        )
    }
    recorded = 0
    for code in codes_by_state.values():
        if chat_id not in code.chat_ids and client is not None and code.config_id:
            _refresh_join_way(session, client, code)
    for member_userid, state, joined_at in members:
        code = codes_by_state.get(state)
        if code is None:
            continue
        customer = session.scalar(
            select(Customer).where(Customer.corp_id == corp_id, Customer.external_userid == member_userid)
        )
        row = {
            "corp_id": corp_id,
            "group_code_id": code.id,
            "chat_id": chat_id,
            "member_userid": member_userid,
            "customer_id": customer.id if customer else None,
            "joined_at": joined_at,
        }
        session.execute(insert_ignoring_conflicts(session, GroupCodeJoin.__table__), row)
        recorded += 1
        if customer is not None and code.tag_ids:
            for follow, employee in session.execute(
                select(Follow, Employee)
                .join(Employee, Employee.id == Follow.employee_id)
                .where(Follow.customer_id == customer.id, Follow.status == FollowStatus.ACTIVE)
            ).all():
                _apply_tags(session, follow, customer, employee, code.tag_ids, source=f"group_code:{code.id}")
    return recorded


def _refresh_join_way(session: Session, client: WeComClient, code: GroupCode) -> None:
    try:
        way = client.get_join_way(code.config_id)
    except WeComError as exc:
        code.sync_error = f"get_join_way: {exc}"[:2000]
    else:
        code.chat_ids, code.room_base_id = list(way.chat_id_list), way.room_base_id or code.room_base_id
    session.flush()
