"""Mirror writes for departments, employees, customers and follows.

WeCom owns this data; these actions copy what WeCom reported (a full sync page or a callback
re-fetch) into siyu's tables. They are set-based, only `flush()` (the caller commits), return
what changed, and write nothing when nothing changed. They record no audit row themselves:
the caller — one sync run, or one processed callback — records a single row for the whole
change, so a 20,000-customer sync does not write 20,000 audit rows.
Remark mobiles are personal data: they are stored, never logged or put in audit details.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, event, func, select, update
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, access_customer_by_id, access_follow, require
from siyu.contacts.models import (
    Customer,
    CustomerExport,
    Department,
    Employee,
    EmployeeStatus,
    Follow,
    FollowStatus,
)
from siyu.core import audit
from siyu.core.clock import from_timestamp, now_utc
from siyu.core.counts import Counts
from siyu.core.errors import DomainError, ErrorCode
from siyu.outbox.actions import do_enqueue
from siyu.outbox.models import WeComOutbox
from siyu.segments.changes import mark_dirty
from siyu.sync.bulk import (
    Changes,
    Row,
    chunks,
    delete_ids,
    insert_ignoring_conflicts,
    mark_seen,
    total,
    upsert_rows,
)
from siyu.tags.models import FollowTag, Tag
from siyu.tags.outbox import MARK_TAG
from siyu.timeline.actions import (
    EventKind,
    do_record_event,
    do_record_follows_added,
    do_record_follows_ended,
    tag_change_detail,
)
from siyu.wecom import payloads

# WeCom user status → ours. 1 active, 2 disabled, 4 not yet activated, 5 left the corp.
EMPLOYEE_STATUS = {
    1: EmployeeStatus.ACTIVE,
    2: EmployeeStatus.DISABLED,
    4: EmployeeStatus.INACTIVE,
    5: EmployeeStatus.RESIGNED,
}

DEPARTMENT = Department.__table__
EMPLOYEE = Employee.__table__
CUSTOMER = Customer.__table__
FOLLOW = Follow.__table__
FOLLOW_TAG = FollowTag.__table__


# --- departments -----------------------------------------------------------------------------


def _department_row(department: payloads.Department) -> Row:
    return {
        "wecom_id": department.id,
        "name": department.name,
        "parent_wecom_id": department.parentid,
        "order": department.order,
        "leaders": list(department.department_leader),
    }


def do_sync_departments(
    session: Session, corp_id: int, departments: Sequence[payloads.Department], *, complete: bool = True
) -> Counts:
    """Mirror the department tree; with complete=True the list is all of it, so others are deleted."""
    result = upsert_rows(
        session, DEPARTMENT, corp_id=corp_id, key=("wecom_id",), rows=[_department_row(d) for d in departments]
    )
    counts = result.counts
    if complete:
        keep = {d.id for d in departments}
        stale = session.execute(select(Department.id, Department.wecom_id).where(Department.corp_id == corp_id)).all()
        counts.removed = delete_ids(session, DEPARTMENT, [row.id for row in stale if row.wecom_id not in keep])
    session.flush()
    return counts


# --- employees -------------------------------------------------------------------------------


def _employee_row(user: payloads.User, is_follow_user: bool | None) -> Row:
    row: Row = {
        "userid": user.userid,
        "name": user.name,
        "department_ids": list(user.department),
        "main_department": user.main_department,
        "position": user.position,
        "gender": user.gender,
        "status": EMPLOYEE_STATUS.get(user.status, EmployeeStatus.ACTIVE).value,
    }
    if is_follow_user is not None:
        row["is_follow_user"] = is_follow_user
    return row


def do_sync_employees(
    session: Session,
    corp_id: int,
    users: Sequence[payloads.User],
    *,
    follow_userids: Iterable[str] | None = None,
    complete: bool = True,
) -> Counts:
    """Mirror employees. complete=True: whoever WeCom no longer lists has left (status resigned).

    follow_userids (get_follow_user_list) sets is_follow_user; None leaves it as it is.
    """
    follow = set(follow_userids) if follow_userids is not None else None
    rows = [_employee_row(u, None if follow is None else u.userid in follow) for u in users]
    counts = upsert_rows(session, EMPLOYEE, corp_id=corp_id, key=("userid",), rows=rows).counts
    if complete:
        counts.removed = _resign_missing(session, corp_id, {u.userid for u in users})
    session.flush()
    return counts


def _resign_missing(session: Session, corp_id: int, keep: set[str]) -> int:
    current = session.execute(
        select(Employee.id, Employee.userid).where(
            Employee.corp_id == corp_id, Employee.status != EmployeeStatus.RESIGNED
        )
    ).all()
    gone = [row.id for row in current if row.userid not in keep]
    for part in chunks(gone):
        session.execute(
            update(EMPLOYEE).where(Employee.id.in_(part)).values(status=EmployeeStatus.RESIGNED, updated_at=now_utc())
        )
    return len(gone)


def do_upsert_employee(
    session: Session, corp_id: int, user: payloads.User, *, is_follow_user: bool | None = None
) -> Counts:
    """One employee from a contact-change callback."""
    counts = upsert_rows(
        session, EMPLOYEE, corp_id=corp_id, key=("userid",), rows=[_employee_row(user, is_follow_user)]
    ).counts
    session.flush()
    return counts


def do_mark_employee_resigned(session: Session, corp_id: int, userid: str) -> Counts:
    """The employee left the corp (delete_user callback). Their follows stay: WeCom keeps them for inheritance."""
    result = session.execute(
        update(EMPLOYEE)
        .where(Employee.corp_id == corp_id, Employee.userid == userid, Employee.status != EmployeeStatus.RESIGNED)
        .values(status=EmployeeStatus.RESIGNED, updated_at=now_utc())
    )
    session.flush()
    return Counts(removed=_rowcount(result))


def _rowcount(result: Any) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def employee_ids(session: Session, corp_id: int, userids: Iterable[str]) -> dict[str, int]:
    """userid → employee.id, inserting a bare employee for userids not mirrored yet.

    A follow needs its employee row; an employee that shows up in a customer page before the
    employee sync (or a callback) saw them gets a placeholder that the next employee sync fills in.
    """
    wanted = sorted(set(userids))
    if not wanted:
        return {}
    found: dict[str, int] = {}
    for part in chunks(wanted):
        stmt = select(Employee.userid, Employee.id).where(Employee.corp_id == corp_id, Employee.userid.in_(part))
        found.update({userid: pk for userid, pk in session.execute(stmt)})
    missing = [{"corp_id": corp_id, "userid": u, "is_follow_user": True} for u in wanted if u not in found]
    if missing:
        stmt = insert_ignoring_conflicts(session, EMPLOYEE).returning(EMPLOYEE.c.userid, EMPLOYEE.c.id)
        found.update({userid: pk for userid, pk in session.execute(stmt, missing)})
    if len(found) < len(wanted):
        return employee_ids(session, corp_id, wanted)
    return found


# --- customers and follows -------------------------------------------------------------------


def _customer_row(contact: payloads.ExternalContact) -> Row:
    return {
        "external_userid": contact.external_userid,
        "name": contact.name,
        "type": contact.type,
        "avatar": contact.avatar,
        "gender": contact.gender,
        "unionid": contact.unionid,
        "position": contact.position,
        "corp_name": contact.corp_name,
        "corp_full_name": contact.corp_full_name,
        "external_profile": contact.external_profile,
    }


def _follow_row(customer_id: int, employee_id: int, info: payloads.FollowInfo) -> Row:
    created_at: datetime | None = from_timestamp(info.createtime)
    return {
        "customer_id": customer_id,
        "employee_id": employee_id,
        "remark": info.remark,
        "description": info.description,
        "remark_corp_name": info.remark_corp(),
        "remark_mobiles": list(info.remark_mobiles),
        "add_way": info.add_way,
        "oper_userid": info.oper_userid,
        "state": info.state,
        "created_at": created_at,
        "status": FollowStatus.ACTIVE.value,
        "ended_at": None,
    }


def do_upsert_contacts_by_type(
    session: Session,
    corp_id: int,
    contacts: Sequence[payloads.ExternalContact],
    follows: Sequence[tuple[str, payloads.FollowInfo]],
    *,
    run_id: int | None = None,
) -> Changes:
    """Upsert customers, then the given (external_userid, follow) pairs with their corp tag sets.

    A follow that is listed is active, whatever it was before (re-added, or a wrong removal).
    run_id stamps the follows as seen by that sync run, for its end-of-run removal pass.
    """
    customers = upsert_rows(
        session, CUSTOMER, corp_id=corp_id, key=("external_userid",), rows=[_customer_row(c) for c in contacts]
    )
    customer_ids = {k[0]: v for k, v in customers.ids.items()}
    staff = employee_ids(session, corp_id, [info.userid for _, info in follows])
    rows = [_follow_row(customer_ids[ext], staff[info.userid], info) for ext, info in follows]
    upserted = upsert_rows(
        session, FOLLOW, corp_id=corp_id, key=("customer_id", "employee_id"), rows=rows, corp_filter=False
    )
    mark_seen(session, FOLLOW, upserted.ids.values(), run_id)
    # Only follows this page inserted or rewrote (e.g. re-activated) can be newly added: a re-sync checks none.
    do_record_follows_added(session, corp_id=corp_id, follow_ids=upserted.written_ids, actor=_mirror_actor(run_id))
    do_refresh_added_at(session, customer_ids=customer_ids.values())
    wanted_tags = {upserted.ids[(customer_ids[ext], staff[info.userid])]: info.corp_tag_ids() for ext, info in follows}
    tag_counts, retagged = _replace_follow_tags(session, corp_id, wanted_tags)
    customer_of = {follow_id: key[0] for key, follow_id in upserted.ids.items()}
    # segment indexes: only what this page really changed (a re-sync of unchanged pages marks nothing)
    mark_dirty(session, corp_id, customers.written_ids)
    mark_dirty(session, corp_id, (customer_of.get(f) for f in (*upserted.written_ids, *retagged)))
    session.flush()
    return {"customers": customers.counts, "follows": upserted.counts, "follow_tags": tag_counts}


def do_upsert_contact_page(
    session: Session, corp_id: int, rows: Sequence[payloads.ContactWithFollow], *, run_id: int | None = None
) -> Changes:
    """do_upsert_contacts with the changes per object type, for the sync summary."""
    return do_upsert_contacts_by_type(
        session,
        corp_id,
        [r.external_contact for r in rows],
        [(r.external_contact.external_userid, r.follow_info) for r in rows],
        run_id=run_id,
    )


def do_upsert_contacts(
    session: Session, corp_id: int, rows: Sequence[payloads.ContactWithFollow], *, run_id: int | None = None
) -> Counts:
    """One batch/get_by_user page: customers, that employee's follow of each, and its corp tags."""
    return total(do_upsert_contact_page(session, corp_id, rows, run_id=run_id))


def do_apply_customer_detail(session: Session, corp_id: int, detail: payloads.ExternalContactDetail) -> Counts:
    """externalcontact/get after a callback: the customer and every follow it lists.

    Follows it does not list are left alone: `get` pages its follows past 500, and an ended
    follow is ended by its own callback (do_end_follow), never inferred here.
    """
    contact = detail.external_contact
    follows = [(contact.external_userid, info) for info in detail.follow_user]
    return total(do_upsert_contacts_by_type(session, corp_id, [contact], follows))


def _replace_follow_tags(session: Session, corp_id: int, wanted: dict[int, list[str]]) -> tuple[Counts, set[int]]:
    """Make each follow's corp tag set exactly `wanted` (by WeCom tag id); unknown tag ids are skipped.

    Returns the counts and the follows whose tags changed."""
    tag_ids = _tag_ids(session, corp_id, {t for ids in wanted.values() for t in ids})
    desired = {(f, tag_ids[t]) for f, ids in wanted.items() for t in ids if t in tag_ids}
    current: set[tuple[int, int]] = set()
    for part in chunks(sorted(wanted)):
        stmt = select(FollowTag.follow_id, FollowTag.tag_id).where(FollowTag.follow_id.in_(part))
        current.update((f, t) for f, t in session.execute(stmt))
    gone = [{"f": f, "t": t} for f, t in current - desired]
    if gone:
        stmt = delete(FOLLOW_TAG).where(FOLLOW_TAG.c.follow_id == bindparam("f"), FOLLOW_TAG.c.tag_id == bindparam("t"))
        session.execute(stmt, gone)
    new = [{"follow_id": f, "tag_id": t, "corp_id": corp_id} for f, t in sorted(desired - current)]
    if new:
        session.execute(insert_ignoring_conflicts(session, FOLLOW_TAG), new)
    changed = {row["f"] for row in gone} | {row["follow_id"] for row in new}
    return Counts(added=len(new), removed=len(gone)), changed


def _tag_ids(session: Session, corp_id: int, wecom_ids: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in chunks(sorted(wecom_ids)):
        stmt = select(Tag.wecom_id, Tag.id).where(Tag.corp_id == corp_id, Tag.wecom_id.in_(part))
        found.update({wecom_id: pk for wecom_id, pk in session.execute(stmt)})
    return found


def do_end_follow(session: Session, corp_id: int, *, userid: str, external_userid: str, status: FollowStatus) -> Counts:
    """End one follow (del_external_contact / del_follow_user / transfer). Idempotent.

    Ending an active follow counts as a removal; re-labelling an already ended one (say a sync's
    'removed' later explained by a callback) is an update and keeps the first ended_at.
    """
    follow = session.execute(
        select(Follow.id, Follow.customer_id, Follow.status, Follow.ended_at)
        .join(Employee, Employee.id == Follow.employee_id)
        .join(Customer, Customer.id == Follow.customer_id)
        .where(Follow.corp_id == corp_id, Employee.userid == userid, Customer.external_userid == external_userid)
    ).first()
    if follow is None or follow.status == status:
        return Counts()
    do_record_follows_ended(session, corp_id=corp_id, where=Follow.id == follow.id, cause=status, actor="wecom")
    session.execute(
        update(FOLLOW)
        .where(Follow.id == follow.id)
        .values(status=status, ended_at=follow.ended_at or now_utc(), updated_at=now_utc())
    )
    mark_dirty(session, corp_id, [follow.customer_id])
    session.flush()
    return Counts(removed=1) if follow.status == FollowStatus.ACTIVE else Counts(updated=1)


def do_end_unseen_follows(session: Session, corp_id: int, *, run_id: int, started_at: datetime) -> Counts:
    """End the active follows a complete sync run did not see: WeCom no longer has them.

    Follows written after the run started (a callback while it ran) are spared: the run may
    have fetched that employee's page before the callback's follow existed.
    """
    not_seen = and_(
        Follow.corp_id == corp_id,
        Follow.status == FollowStatus.ACTIVE,
        (Follow.last_seen_run_id.is_(None)) | (Follow.last_seen_run_id != run_id),
        Follow.updated_at < started_at,
    )
    do_record_follows_ended(session, corp_id=corp_id, where=not_seen, cause=FollowStatus.REMOVED, actor="sync")
    unseen = (
        update(FOLLOW)
        .where(not_seen)
        .values(status=FollowStatus.REMOVED, ended_at=now_utc(), updated_at=now_utc())
        .returning(FOLLOW.c.customer_id)
    )
    ended = session.execute(unseen).scalars().all()
    mark_dirty(session, corp_id, ended)
    session.flush()
    return Counts(removed=len(ended))


# --- the customers page: added date, tag edits, exports --------------------------------------


def _mirror_actor(run_id: int | None) -> str:
    return "sync" if run_id is not None else "wecom"


def do_refresh_added_at(session: Session, *, customer_ids: Iterable[int]) -> None:
    """customer.added_at = its earliest follow createtime; one UPDATE a chunk, no write when unchanged."""
    first = (
        select(func.min(Follow.created_at))
        .where(Follow.customer_id == Customer.id, Follow.created_at.is_not(None))
        .scalar_subquery()
    )
    for part in chunks(sorted(set(customer_ids))):
        session.execute(
            update(Customer)
            .where(Customer.id.in_(part), first.is_not(None), Customer.added_at != first)
            .values(added_at=first, updated_at=Customer.updated_at)
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True, slots=True)
class TagChange:
    added: list[int]
    removed: list[int]
    outbox_id: int | None


def do_set_follow_tags(
    session: Session, *, actor: Actor, customer_id: int, follow_id: int, tag_ids: Sequence[int]
) -> TagChange:
    """Make one follow's corp tags exactly `tag_ids`, locally and in WeCom (mark_tag through the outbox).

    The follow_tag rows, the outbox row, the timeline event and the audit row are one transaction:
    either the change is stored and will reach WeCom, or nothing happened.
    """
    customer = access_customer_by_id(session, actor, customer_id, write=True)
    follow = access_follow(session, actor, follow_id, write=True)
    if follow.customer_id != customer.id:
        raise DomainError(ErrorCode.NOT_FOUND, f"customer {customer_id} has no follow {follow_id}")
    if follow.status != FollowStatus.ACTIVE:
        raise DomainError(ErrorCode.CONFLICT, "this follow has ended; WeCom no longer accepts tags on it")
    wanted = _corp_tags(session, actor.corp_id, set(tag_ids))
    current = set(session.scalars(select(FollowTag.tag_id).where(FollowTag.follow_id == follow.id)))
    added, removed = sorted(set(wanted) - current), sorted(current - set(wanted))
    if not added and not removed:
        return TagChange([], [], None)
    _write_follow_tags(session, actor.corp_id, follow.id, added, removed)
    mark_dirty(session, actor.corp_id, [follow.customer_id])
    names = {**{t.id: t.name for t in wanted.values()}, **_names(session, removed)}
    outbox = _enqueue_mark_tag(session, actor, follow, customer, added, removed, wanted)
    _record_tag_edit(session, actor, follow, added, removed, names, outbox.id)
    return TagChange(added, removed, outbox.id)


def _corp_tags(session: Session, corp_id: int, tag_ids: set[int]) -> dict[int, Tag]:
    """The requested tags; any unknown, other-corp or not-yet-in-WeCom id refuses the whole edit."""
    found = {t.id: t for t in session.scalars(select(Tag).where(Tag.id.in_(sorted(tag_ids)), Tag.corp_id == corp_id))}
    unknown = sorted(tag_ids - set(found))
    if unknown:
        raise DomainError(ErrorCode.INVALID, f"tag_ids: unknown tag(s) {', '.join(map(str, unknown))}")
    unsynced = sorted(t.id for t in found.values() if not t.wecom_id)
    if unsynced:
        raise DomainError(
            ErrorCode.INVALID, f"tag_ids: tag(s) {', '.join(map(str, unsynced))} not yet created in WeCom"
        )
    return found


def _write_follow_tags(session: Session, corp_id: int, follow_id: int, added: list[int], removed: list[int]) -> None:
    if removed:
        session.execute(delete(FOLLOW_TAG).where(FOLLOW_TAG.c.follow_id == follow_id, FOLLOW_TAG.c.tag_id.in_(removed)))
    if added:
        rows = [{"follow_id": follow_id, "tag_id": t, "corp_id": corp_id} for t in added]
        session.execute(insert_ignoring_conflicts(session, FOLLOW_TAG), rows)


def _names(session: Session, tag_ids: list[int]) -> dict[int, str]:
    if not tag_ids:
        return {}
    return dict(session.execute(select(Tag.id, Tag.name).where(Tag.id.in_(tag_ids))).all())


def _enqueue_mark_tag(
    session: Session,
    actor: Actor,
    follow: Follow,
    customer: Customer,
    added: list[int],
    removed: list[int],
    wanted: dict[int, Tag],
) -> WeComOutbox:
    userid = session.scalar(select(Employee.userid).where(Employee.id == follow.employee_id))
    removed_wecom = dict(session.execute(select(Tag.id, Tag.wecom_id).where(Tag.id.in_(removed))).all())
    payload = {
        "userid": userid,
        "external_userid": customer.external_userid,
        "add": [wanted[t].wecom_id for t in added],
        "remove": [removed_wecom[t] for t in removed if removed_wecom.get(t)],
        "follow_id": follow.id,
        "customer_id": customer.id,
    }
    return do_enqueue(session, corp_id=actor.corp_id, kind=MARK_TAG, payload=payload, created_by=actor.label)


def _record_tag_edit(
    session: Session,
    actor: Actor,
    follow: Follow,
    added: list[int],
    removed: list[int],
    names: dict[int, str],
    outbox_id: int,
) -> None:
    detail = {**tag_change_detail(added, removed, names), "outbox_id": outbox_id}
    do_record_event(
        session,
        corp_id=actor.corp_id,
        customer_id=follow.customer_id,
        employee_id=follow.employee_id,
        kind=EventKind.TAGS_CHANGED,
        occurred_at=now_utc(),
        actor=actor.label,
        detail=detail,
    )
    audit.record_by(
        session,
        actor,
        action="follow.tags",
        object_type="follow",
        object_id=follow.id,
        detail={"added": added, "removed": removed, "outbox_id": outbox_id},
    )


def do_start_export(session: Session, *, actor: Actor, filters: Mapping[str, Any]) -> CustomerExport:
    """A CSV export of the filtered list, written by a task after commit (so the task sees the row)."""
    require(actor, "customer", "read")
    export = CustomerExport(corp_id=actor.corp_id, user_id=actor.user_id, filters=dict(filters))
    session.add(export)
    session.flush()
    audit.record_by(
        session,
        actor,
        action="customer.export",
        object_type="customer_export",
        object_id=export.id,
        detail={"filters": dict(filters)},
    )
    export_id = export.id

    def enqueue(_session: Session) -> None:
        from siyu.contacts.tasks import export_customers

        export_customers(export_id)

    event.listen(session, "after_commit", enqueue, once=True)
    return export
