"""The department tree: a department with all its sub-departments, and the employees in them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.contacts.models import Department, Employee


def department_subtree(session: Session, *, corp_id: int, roots: Iterable[int]) -> set[int]:
    """The WeCom department ids of `roots` and every department below them (one query)."""
    edges = session.execute(
        select(Department.wecom_id, Department.parent_wecom_id).where(Department.corp_id == corp_id)
    ).all()
    children: dict[int, list[int]] = {}
    for child, parent in edges:
        children.setdefault(parent, []).append(child)
    found = set(roots)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def employees_in(session: Session, *, corp_id: int, department_ids: set[int]) -> set[int]:
    """Employee ids (ours) with any department in department_ids."""
    if not department_ids:
        return set()
    members = session.execute(select(Employee.id, Employee.department_ids).where(Employee.corp_id == corp_id))
    return {emp_id for emp_id, departments in members if department_ids.intersection(departments or [])}
