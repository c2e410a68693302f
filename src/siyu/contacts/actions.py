"""Mirror writes for departments, employees, customers and follows.

WeCom owns this data; these actions copy what WeCom reported (a full sync page or a callback
re-fetch) into siyu's tables. They are set-based, only `flush()` (the caller commits), return
what changed, and write nothing when nothing changed. They record no audit row themselves:
the caller — one sync run, or one processed callback — records a single row for the whole
change, so a 20,000-customer sync does not write 20,000 audit rows.
Remark mobiles are personal data: they are stored, never logged or put in audit details.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from siyu.contacts.models import Customer, Department, Employee, EmployeeStatus, Follow, FollowStatus
from siyu.core.clock import from_timestamp, now_utc
from siyu.core.counts import Counts
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
    wanted_tags = {upserted.ids[(customer_ids[ext], staff[info.userid])]: info.corp_tag_ids() for ext, info in follows}
    tag_counts = _replace_follow_tags(session, corp_id, wanted_tags)
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


def _replace_follow_tags(session: Session, corp_id: int, wanted: dict[int, list[str]]) -> Counts:
    """Make each follow's corp tag set exactly `wanted` (by WeCom tag id); unknown tag ids are skipped."""
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
    return Counts(added=len(new), removed=len(gone))


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
        select(Follow.id, Follow.status, Follow.ended_at)
        .join(Employee, Employee.id == Follow.employee_id)
        .join(Customer, Customer.id == Follow.customer_id)
        .where(Follow.corp_id == corp_id, Employee.userid == userid, Customer.external_userid == external_userid)
    ).first()
    if follow is None or follow.status == status:
        return Counts()
    session.execute(
        update(FOLLOW)
        .where(Follow.id == follow.id)
        .values(status=status, ended_at=follow.ended_at or now_utc(), updated_at=now_utc())
    )
    session.flush()
    return Counts(removed=1) if follow.status == FollowStatus.ACTIVE else Counts(updated=1)


def do_end_unseen_follows(session: Session, corp_id: int, *, run_id: int, started_at: datetime) -> Counts:
    """End the active follows a complete sync run did not see: WeCom no longer has them.

    Follows written after the run started (a callback while it ran) are spared: the run may
    have fetched that employee's page before the callback's follow existed.
    """
    unseen = (
        update(FOLLOW)
        .where(
            Follow.corp_id == corp_id,
            Follow.status == FollowStatus.ACTIVE,
            (Follow.last_seen_run_id.is_(None)) | (Follow.last_seen_run_id != run_id),
            Follow.updated_at < started_at,
        )
        .values(status=FollowStatus.REMOVED, ended_at=now_utc(), updated_at=now_utc())
    )
    result = session.execute(unseen)
    session.flush()
    return Counts(removed=_rowcount(result))
