"""Reads of console users and API tokens."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.accounts.models import ApiToken, ConsoleUser
from siyu.contacts.models import Employee, EmployeeStatus

MAX_PAGE = 200
# The staff-link select on the users page; a corp with more active employees types the userid instead.
MAX_EMPLOYEE_CHOICES = 5000


@dataclass(frozen=True, slots=True)
class EmployeeChoice:
    id: int
    userid: str
    name: str


def list_users(session: Session, *, corp_id: int, after: int | None = None, limit: int = 50) -> list[ConsoleUser]:
    """A keyset page of the corp's users, by id."""
    stmt = select(ConsoleUser).where(ConsoleUser.corp_id == corp_id)
    if after is not None:
        stmt = stmt.where(ConsoleUser.id > after)
    return list(session.scalars(stmt.order_by(ConsoleUser.id).limit(max(1, min(limit, MAX_PAGE + 1)))))


def get_by_username(session: Session, *, username: str) -> ConsoleUser | None:
    return session.scalar(select(ConsoleUser).where(ConsoleUser.username == username.strip()))


def employee_names(session: Session, *, corp_id: int, employee_ids: set[int]) -> dict[int, str]:
    """Names of the employees linked to a page of users, in one query."""
    if not employee_ids:
        return {}
    rows = session.execute(
        select(Employee.id, Employee.name, Employee.userid).where(
            Employee.corp_id == corp_id, Employee.id.in_(sorted(employee_ids))
        )
    )
    return {row.id: row.name or row.userid for row in rows}


def employee_choices(session: Session, *, corp_id: int) -> list[EmployeeChoice]:
    stmt = (
        select(Employee.id, Employee.userid, Employee.name)
        .where(Employee.corp_id == corp_id, Employee.status == EmployeeStatus.ACTIVE)
        .order_by(Employee.name, Employee.id)
        .limit(MAX_EMPLOYEE_CHOICES)
    )
    return [EmployeeChoice(r.id, r.userid, r.name) for r in session.execute(stmt)]


def list_tokens(session: Session, *, user_id: int, include_revoked: bool = False) -> list[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.user_id == user_id)
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(stmt.order_by(ApiToken.id.desc()).limit(MAX_PAGE)))
