"""REST API: employees (成员) with departments and customer counts, and the department list."""

from __future__ import annotations

from fastapi import APIRouter, Query

from siyu.accounts.access import require
from siyu.accounts.auth import ActorDep
from siyu.contacts.models import EmployeeStatus
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode
from siyu.staff import service
from siyu.staff.schemas import DepartmentRead, EmployeePage

router = APIRouter(prefix="/api", tags=["employees"])


@router.get("/employees", response_model=EmployeePage)
def list_employees(
    session: SessionDep,
    actor: ActorDep,
    department: int | None = Query(None, description="WeCom department id; its sub-departments are included"),
    status: str | None = Query(None, description="active, disabled, inactive or resigned"),
    q: str | None = Query(None, max_length=64, description="name or userid contains"),
    after: int | None = Query(None, description="the next_after of the previous page"),
    limit: int = Query(50, ge=1, le=service.MAX_LIMIT),
) -> EmployeePage:
    if status and status not in set(EmployeeStatus):
        raise DomainError(ErrorCode.INVALID, f"status must be one of {', '.join(EmployeeStatus)}")
    return service.list_(
        session, actor=actor, department=department, status=status or None, q=q, after=after, limit=limit
    )


@router.get("/departments", response_model=list[DepartmentRead])
def list_departments(session: SessionDep, actor: ActorDep) -> list[DepartmentRead]:
    require(actor, "employee", "read")
    return service.list_departments(session, actor=actor)
