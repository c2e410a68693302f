"""What each WeCom event means for our mirror.

Callbacks only notify: every handler re-fetches the current truth through the API and
applies it with the same mirror actions the sync uses, so processing an event twice,
or late, converges on WeCom's state. Deletions carry their cause (who deleted whom),
which the API cannot tell us afterwards, so those are applied from the event itself.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.acquisition import intake
from siyu.compliance import monitor as complaints
from siyu.contacts import actions as contacts
from siyu.contacts.models import Customer, Employee, Follow, FollowStatus
from siyu.core import audit
from siyu.core.clock import from_timestamp
from siyu.core.counts import Counts
from siyu.groups import actions as groups
from siyu.groups.models import GroupChat, GroupMember
from siyu.tags import actions as tags
from siyu.timeline import actions as timeline
from siyu.wecom.callbacks import (
    CallbackEvent,
    ContactEvent,
    ExternalChatEvent,
    ExternalContactEvent,
    ExternalTagEvent,
)
from siyu.wecom.client import WeComClient
from siyu.wecom.errors import NotFoundError

# process_one puts the inbox row's receipt time here: the welcome window is measured from it.
RECEIVED_AT_KEY = "siyu.callback_received_at"


class Skip(Exception):
    """The event is stored but has nothing to apply (unknown type, or the object is already gone)."""


Handler = Callable[[Session, int, WeComClient, CallbackEvent], Counts]


def _refresh_customer(session: Session, corp_id: int, client: WeComClient, external_userid: str) -> Counts:
    try:
        detail = client.get_external_contact(external_userid)
    except NotFoundError as exc:
        raise Skip(f"customer {external_userid} no longer visible: {exc.errmsg}") from exc
    return contacts.do_apply_customer_detail(session, corp_id, detail)


def on_external_contact(session: Session, corp_id: int, client: WeComClient, event: CallbackEvent) -> Counts:
    assert isinstance(event, ExternalContactEvent)
    kind = event.change_type
    if kind in ("add_external_contact", "add_half_external_contact", "edit_external_contact"):
        before = timeline.follow_states(session, corp_id=corp_id, external_userid=event.external_user_id)
        counts = _refresh_customer(session, corp_id, client, event.external_user_id)
        after = timeline.follow_states(session, corp_id=corp_id, external_userid=event.external_user_id)
        occurred = from_timestamp(event.create_time)
        timeline.do_record_follow_changes(session, corp_id=corp_id, before=before, after=after, occurred_at=occurred)
        if kind != "edit_external_contact":
            intake.do_follow_added(
                session,
                corp_id=corp_id,
                userid=event.user_id,
                external_userid=event.external_user_id,
                state=event.state,
                welcome_code=event.welcome_code,
                event_at=occurred,
                received_at=session.info.get(RECEIVED_AT_KEY),
            )
        return counts
    if kind in ("del_external_contact", "del_follow_user"):
        if _readded_since(session, corp_id, event):
            raise Skip("the follow was re-created after this deletion")
        status = _end_status(event)
        counts = contacts.do_end_follow(
            session, corp_id, userid=event.user_id, external_userid=event.external_user_id, status=status
        )
        if status == FollowStatus.CUSTOMER_DELETED_EMPLOYEE and (counts.removed or counts.updated):
            # a deletion soon after a broadcast from this employee is a complaint signal
            complaints.do_signal_for_deletion_event(
                session,
                corp_id,
                userid=event.user_id,
                external_userid=event.external_user_id,
                occurred_at=from_timestamp(event.create_time),
            )
        return counts
    if kind == "transfer_fail":
        audit.record(
            session,
            corp_id=corp_id,
            actor="wecom",
            action="follow.transfer_fail",
            object_type="customer",
            object_id=event.external_user_id,
            detail={"userid": event.user_id, "reason": event.fail_reason},
        )
        return Counts()
    raise Skip(f"change_external_contact/{kind} is not applied")


def _readded_since(session: Session, corp_id: int, event: ExternalContactEvent) -> bool:
    """A deletion that arrives after a re-add (callbacks can come out of order) must not end the new follow."""
    created = session.execute(
        select(Follow.created_at)
        .join(Employee, Employee.id == Follow.employee_id)
        .join(Customer, Customer.id == Follow.customer_id)
        .where(
            Follow.corp_id == corp_id,
            Employee.userid == event.user_id,
            Customer.external_userid == event.external_user_id,
        )
    ).scalar()
    occurred = from_timestamp(event.create_time)
    return created is not None and occurred is not None and created > occurred


def _end_status(event: ExternalContactEvent) -> FollowStatus:
    if event.change_type == "del_follow_user":
        return FollowStatus.CUSTOMER_DELETED_EMPLOYEE
    if event.source == "DELETE_BY_TRANSFER":
        return FollowStatus.TRANSFERRED
    return FollowStatus.EMPLOYEE_DELETED_CUSTOMER


def on_external_chat(session: Session, corp_id: int, client: WeComClient, event: CallbackEvent) -> Counts:
    assert isinstance(event, ExternalChatEvent)
    if event.change_type == "dismiss":
        return groups.do_dismiss_group_chat(session, corp_id, event.chat_id)
    try:
        detail = client.get_group_chat(event.chat_id)
    except NotFoundError as exc:
        raise Skip(f"group {event.chat_id} no longer visible: {exc.errmsg}") from exc
    counts = groups.do_upsert_group_chat(session, corp_id, detail)
    if event.update_detail == "add_member":
        _record_group_code_joins(session, corp_id, client, event)
    if event.update_detail in ("add_member", "del_member"):
        timeline.do_record_group_membership(
            session,
            corp_id=corp_id,
            chat_id=event.chat_id,
            member_userids=event.mem_change_list,
            joined=event.update_detail == "add_member",
            occurred_at=from_timestamp(event.create_time),
        )
    return counts


def _record_group_code_joins(session: Session, corp_id: int, client: WeComClient, event: ExternalChatEvent) -> None:
    """Joiners through a group code carry its state on their membership (groupchat/get)."""
    rows = session.execute(
        select(GroupMember.userid, GroupMember.state, GroupMember.join_time)
        .join(GroupChat, GroupChat.id == GroupMember.group_chat_id)
        .where(
            GroupChat.corp_id == corp_id,
            GroupChat.chat_id == event.chat_id,
            GroupMember.userid.in_(event.mem_change_list),
            GroupMember.member_type == 2,
            GroupMember.state != "",
        )
    ).all()
    if rows:
        intake.do_group_members_joined(
            session, corp_id=corp_id, chat_id=event.chat_id, members=[(r[0], r[1], r[2]) for r in rows], client=client
        )


def on_external_tag(session: Session, corp_id: int, client: WeComClient, event: CallbackEvent) -> Counts:
    assert isinstance(event, ExternalTagEvent)
    if event.change_type == "delete":
        if event.tag_type == "tag_group":
            return tags.do_delete_tag_group(session, corp_id, event.id)
        return tags.do_delete_tag(session, corp_id, event.id)
    if event.change_type == "shuffle" and not event.id:
        return tags.do_sync_corp_tags(session, corp_id, client.get_corp_tag_list(), complete=True)
    if event.tag_type == "tag":
        fetched = client.get_corp_tag_list(tag_ids=[event.id])
        # A single-tag fetch returns the tag's group with only that tag; refresh the whole group.
        group_ids = [g.group_id for g in fetched]
        fetched = client.get_corp_tag_list(group_ids=group_ids) if group_ids else []
    else:
        fetched = client.get_corp_tag_list(group_ids=[event.id])
    if not fetched:
        raise Skip(f"tag {event.id} no longer visible")
    return tags.do_sync_corp_tags(session, corp_id, fetched, complete=False)


def on_contact(session: Session, corp_id: int, client: WeComClient, event: CallbackEvent) -> Counts:
    assert isinstance(event, ContactEvent)
    kind = event.change_type
    if kind == "delete_user":
        return contacts.do_mark_employee_resigned(session, corp_id, event.user_id)
    if kind in ("create_user", "update_user"):
        return _refresh_employee(session, corp_id, client, event)
    if kind in ("create_party", "update_party", "delete_party"):
        return contacts.do_sync_departments(session, corp_id, client.list_departments(), complete=True)
    raise Skip(f"change_contact/{kind} is not applied")


def _refresh_employee(session: Session, corp_id: int, client: WeComClient, event: ContactEvent) -> Counts:
    userid = event.new_user_id or event.user_id
    try:
        user = client.get_user(userid)
    except NotFoundError:
        return contacts.do_mark_employee_resigned(session, corp_id, userid)
    return contacts.do_upsert_employee(session, corp_id, user)


HANDLERS: dict[type[CallbackEvent], Handler] = {
    ExternalContactEvent: on_external_contact,
    ExternalChatEvent: on_external_chat,
    ExternalTagEvent: on_external_tag,
    ContactEvent: on_contact,
}


def apply_event(session: Session, corp_id: int, client: WeComClient, event: CallbackEvent) -> Counts:
    handler = HANDLERS.get(type(event))
    if handler is None:
        raise Skip(f"unknown event {event.event}/{event.change_type}")
    return handler(session, corp_id, client, event)
