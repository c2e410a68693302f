"""Mirror writes for customer groups (客户群) and their members.

Like the contact mirror actions: set-based, flush only, no write when nothing changed, and the
caller (a sync run or a processed callback) records the audit row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from siyu.contacts.models import Customer
from siyu.core.clock import from_timestamp, now_utc
from siyu.core.counts import Counts
from siyu.groups.models import GroupChat, GroupMember, GroupStatus
from siyu.segments.changes import mark_dirty
from siyu.sync.bulk import Changes, Row, chunks, mark_seen, total, upsert_rows
from siyu.wecom import payloads

GROUP_CHAT = GroupChat.__table__
GROUP_MEMBER = GroupMember.__table__
EXTERNAL_MEMBER = 2


def _chat_row(detail: payloads.GroupChatDetail, wecom_status: int) -> Row:
    return {
        "chat_id": detail.chat_id,
        "name": detail.name,
        "owner_userid": detail.owner,
        "notice": detail.notice,
        "created_at": from_timestamp(detail.create_time),
        "wecom_status": wecom_status,
        "status": GroupStatus.ACTIVE.value,
        "member_version": detail.member_version,
        "dismissed_at": None,
    }


def _member_row(chat_pk: int, member: payloads.GroupChatMember, customer_ids: dict[str, int]) -> Row:
    return {
        "group_chat_id": chat_pk,
        "userid": member.userid,
        "member_type": member.type,
        "customer_id": customer_ids.get(member.userid) if member.type == EXTERNAL_MEMBER else None,
        "name": member.name,
        "group_nickname": member.group_nickname,
        "unionid": member.unionid,
        "join_time": from_timestamp(member.join_time),
        "join_scene": member.join_scene,
        "invitor_userid": member.invitor.userid if member.invitor else "",
        "state": member.state,
    }


def do_upsert_group_chats(
    session: Session,
    corp_id: int,
    chats: Sequence[tuple[payloads.GroupChatDetail, int]],
    *,
    run_id: int | None = None,
) -> Changes:
    """Upsert (groupchat/get detail, groupchat/list status) pairs and replace each member set.

    External members are linked to customers by external_userid (None if not mirrored yet;
    the next sync links them). run_id stamps the groups as listed by that sync run.
    """
    upserted = upsert_rows(
        session, GROUP_CHAT, corp_id=corp_id, key=("chat_id",), rows=[_chat_row(d, s) for d, s in chats]
    )
    mark_seen(session, GROUP_CHAT, upserted.ids.values(), run_id)
    chat_pks = {k[0]: v for k, v in upserted.ids.items()}
    customer_ids = _customer_ids(session, corp_id, chats)
    rows = [_member_row(chat_pks[d.chat_id], m, customer_ids) for d, _ in chats for m in d.member_list]
    members = _replace_members(session, corp_id, rows, list(chat_pks.values()))
    session.flush()
    return {"group_chats": upserted.counts, "group_members": members}


def _replace_members(session: Session, corp_id: int, rows: list[Row], chat_pks: list[int]) -> Counts:
    """Make the member set of each chat exactly `rows` (chats that now have no member included)."""
    result = upsert_rows(
        session, GROUP_MEMBER, corp_id=corp_id, key=("group_chat_id", "userid"), rows=rows, corp_filter=False
    )
    counts = result.counts
    emptied = sorted(set(chat_pks) - {row["group_chat_id"] for row in rows})
    stale = result.extra_ids + _member_ids(session, emptied)
    left = _delete_members(session, stale)
    counts.removed = len(stale)
    # segment indexes: customers who joined, whose membership row was rewritten, or who left
    written = set(result.written_ids)
    joined = (row["customer_id"] for row in rows if result.ids.get((row["group_chat_id"], row["userid"])) in written)
    mark_dirty(session, corp_id, [*joined, *left])
    return counts


def _delete_members(session: Session, ids: list[int]) -> list[int | None]:
    """Delete member rows; returns the customer ids they linked (None for employees and unlinked members)."""
    customers: list[int | None] = []
    for part in chunks(ids):
        stmt = delete(GROUP_MEMBER).where(GROUP_MEMBER.c.id.in_(part)).returning(GROUP_MEMBER.c.customer_id)
        customers.extend(session.execute(stmt).scalars())
    return customers


def _member_ids(session: Session, chat_pks: list[int]) -> list[int]:
    found: list[int] = []
    for part in chunks(chat_pks):
        found.extend(session.execute(select(GroupMember.id).where(GroupMember.group_chat_id.in_(part))).scalars())
    return found


def _customer_ids(
    session: Session, corp_id: int, chats: Sequence[tuple[payloads.GroupChatDetail, int]]
) -> dict[str, int]:
    external = sorted({m.userid for d, _ in chats for m in d.member_list if m.type == EXTERNAL_MEMBER})
    found: dict[str, int] = {}
    for part in chunks(external):
        stmt = select(Customer.external_userid, Customer.id).where(
            Customer.corp_id == corp_id, Customer.external_userid.in_(part)
        )
        found.update({ext: pk for ext, pk in session.execute(stmt)})
    return found


def do_upsert_group_chat(
    session: Session, corp_id: int, detail: payloads.GroupChatDetail, *, wecom_status: int = 0
) -> Counts:
    """One group after a change callback: its details and its whole member set."""
    return total(do_upsert_group_chats(session, corp_id, [(detail, wecom_status)]))


def do_dismiss_group_chat(session: Session, corp_id: int, chat_id: str) -> Counts:
    """The group was dismissed (dismiss callback). Members stay as the record of who was in it."""
    result = session.execute(
        update(GROUP_CHAT)
        .where(GroupChat.corp_id == corp_id, GroupChat.chat_id == chat_id, GroupChat.status != GroupStatus.DISMISSED)
        .values(status=GroupStatus.DISMISSED, dismissed_at=now_utc(), updated_at=now_utc())
    )
    session.flush()
    return Counts(removed=max(result.rowcount or 0, 0))


def do_dismiss_unlisted_group_chats(session: Session, corp_id: int, *, run_id: int, started_at: datetime) -> Counts:
    """A complete sync run did not list these groups: WeCom no longer has them.

    Groups written after the run started (a callback while it ran) are spared.
    """
    result = session.execute(
        update(GROUP_CHAT)
        .where(
            GroupChat.corp_id == corp_id,
            GroupChat.status == GroupStatus.ACTIVE,
            GroupChat.last_seen_run_id.is_(None) | (GroupChat.last_seen_run_id != run_id),
            GroupChat.updated_at < started_at,
        )
        .values(status=GroupStatus.DISMISSED, dismissed_at=now_utc(), updated_at=now_utc())
    )
    session.flush()
    return Counts(removed=max(result.rowcount or 0, 0))
