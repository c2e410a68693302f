"""Employees (成员): departments, status, customer counts; filter by department and status."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from siyu.console.deps import ConsoleDep
from siyu.console.templating import render
from siyu.contacts.models import EmployeeStatus
from siyu.core.deps import SessionDep
from siyu.staff import service

router = APIRouter(include_in_schema=False)
# msgids for employee statuses: distinct English words, so they never clash with other pages' "Active".
STATUS_LABELS = {
    EmployeeStatus.ACTIVE: "Employed",
    EmployeeStatus.DISABLED: "Disabled",
    EmployeeStatus.INACTIVE: "Not activated",
    EmployeeStatus.RESIGNED: "Resigned",
}


@router.get("/employees", response_class=HTMLResponse)
def employees_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    department: str = "",
    status: str = "",
    q: str = Query("", max_length=64),
    after: int | None = None,
) -> HTMLResponse:
    dept = int(department) if department.strip().isdigit() else None
    status = status if status in set(EmployeeStatus) else ""
    page = service.list_(
        session, actor=console.actor, department=dept, status=status or None, q=q or None, after=after, limit=50
    )
    context = {
        "page": page,
        "departments": service.list_departments(session, actor=console.actor),
        "status_labels": {str(k): v for k, v in STATUS_LABELS.items()},
        "filters": {"department": dept, "status": status, "q": q},
    }
    return render(request, "employees/list.html", context, actor=console.actor, csrf_token=console.csrf_token)
