"""Reads of employees for the console and the REST API: one page, three set-based queries.

The page itself (keyset on id), then the customer counts of just those employees (one GROUP BY)
and the names of their departments (one IN) — never a query per row.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, employee_scope, require
from siyu.contacts.departments import department_subtree
from siyu.contacts.models import Department, Employee, Follow, FollowStatus
from siyu.staff.schemas import DepartmentRead, DepartmentRef, EmployeePage, EmployeeRead

MAX_LIMIT = 200


def list_departments(session: Session, *, actor: Actor) -> list[DepartmentRead]:
    """Every department of the corp (names are not personal data; staff see the tree too)."""
    rows = session.execute(
        select(Department.wecom_id, Department.name, Department.parent_wecom_id)
        .where(Department.corp_id == actor.corp_id)
        .order_by(Department.parent_wecom_id, Department.order, Department.wecom_id)
    )
    return [DepartmentRead(wecom_id=r.wecom_id, name=r.name, parent_wecom_id=r.parent_wecom_id) for r in rows]


def _subtree(session: Session, corp_id: int, root: int) -> list[int]:
    return sorted(department_subtree(session, corp_id=corp_id, roots=[root]))


def in_departments(session: Session, department_ids: list[int]) -> ColumnElement[bool]:
    """Employees belonging to any of these departments (department_ids is a JSON array)."""
    ids = ",".join(str(int(d)) for d in department_ids) or "NULL"
    if session.get_bind().dialect.name == "postgresql":
        clause = f"EXISTS (SELECT 1 FROM json_array_elements_text(employee.department_ids) d WHERE d::int IN ({ids}))"
    else:
        clause = f"EXISTS (SELECT 1 FROM json_each(employee.department_ids) d WHERE d.value IN ({ids}))"
    return text(clause)  # type: ignore[return-value]


def list_(
    session: Session,
    *,
    actor: Actor,
    department: int | None = None,
    status: str | None = None,
    q: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> EmployeePage:
    require(actor, "employee", "read")
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = select(Employee).where(employee_scope(actor)).order_by(Employee.id).limit(limit + 1)
    if department is not None:
        stmt = stmt.where(in_departments(session, _subtree(session, actor.corp_id, department)))
    if status:
        stmt = stmt.where(Employee.status == status)
    if q:
        like = f"%{q.strip()}%"
        stmt = stmt.where(Employee.name.ilike(like) | Employee.userid.ilike(like))
    if after is not None:
        stmt = stmt.where(Employee.id > after)
    rows = list(session.scalars(stmt))
    page, more = rows[:limit], len(rows) > limit
    return EmployeePage(items=_read_many(session, actor.corp_id, page), next_after=page[-1].id if more else None)


def _read_many(session: Session, corp_id: int, employees: list[Employee]) -> list[EmployeeRead]:
    counts = count_customers_by_employee(session, employee_ids=[e.id for e in employees])
    dept_ids = sorted({d for e in employees for d in (e.department_ids or [])})
    stmt = select(Department.wecom_id, Department.name).where(
        Department.corp_id == corp_id, Department.wecom_id.in_(dept_ids)
    )
    names = {wecom_id: name for wecom_id, name in session.execute(stmt)}
    return [
        EmployeeRead(
            id=e.id,
            userid=e.userid,
            name=e.name,
            position=e.position,
            status=e.status,
            is_follow_user=e.is_follow_user,
            departments=[DepartmentRef(wecom_id=d, name=names.get(d, str(d))) for d in (e.department_ids or [])],
            customers=counts.get(e.id, 0),
        )
        for e in employees
    ]


def count_customers_by_employee(session: Session, *, employee_ids: list[int]) -> dict[int, int]:
    if not employee_ids:
        return {}
    stmt = (
        select(Follow.employee_id, func.count())
        .where(Follow.employee_id.in_(employee_ids), Follow.status == FollowStatus.ACTIVE.value)
        .group_by(Follow.employee_id)
    )
    return {emp: int(n) for emp, n in session.execute(stmt)}
