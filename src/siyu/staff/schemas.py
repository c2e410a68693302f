"""API shapes for employees (成员) with their departments and customer counts."""

from __future__ import annotations

from pydantic import BaseModel


class DepartmentRef(BaseModel):
    wecom_id: int
    name: str


class EmployeeRead(BaseModel):
    id: int
    userid: str
    name: str
    position: str
    status: str
    is_follow_user: bool
    departments: list[DepartmentRef]
    customers: int  # active follows


class EmployeePage(BaseModel):
    items: list[EmployeeRead]
    # Pass as ?after= for the next page; None on the last page.
    next_after: int | None


class DepartmentRead(BaseModel):
    wecom_id: int
    name: str
    parent_wecom_id: int
