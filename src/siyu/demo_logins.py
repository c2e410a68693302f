"""Console users for `siyu demo`: one per role, generated passwords kept in demo.json.

Two staff users show the two data scopes: `staff` is a member who leads no department (their own
customers), `manager` leads the department `staff` is in (everyone's customers there). The
passwords are generated on the first run and stored beside the demo data (mode 0600), so a
reused demo prints the same ones; a reset makes new ones.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select

from siyu.accounts.actions import do_create_api_token, do_create_user
from siyu.accounts.models import ConsoleUser, Role
from siyu.core.db import session_scope
from siyu.wecom.emulator.server import RunningEmulator


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str
    role: str
    note: str


@dataclass(frozen=True, slots=True)
class Logins:
    users: list[Login]
    api_token: str
    sidebar_link: str
    sidebar_employee: str
    sidebar_customer: str


def _staff_pair(emulator: RunningEmulator) -> tuple[str, str]:
    """(member who leads nothing, the leader of their department), both following customers."""
    state = emulator.state
    leaders = {u for d in state.departments.values() for u in d.department_leader}
    for employee in state.employees.values():
        department = state.departments[employee.main_department]
        plain_ok = employee.userid not in leaders and len(state.follow_lists.get(employee.userid, [])) > 0
        if plain_ok and department.parentid != 0 and department.department_leader:
            return employee.userid, department.department_leader[0]
    first = state.follow_user_ids()[0]
    return first, first


def _wanted(emulator: RunningEmulator) -> list[tuple[str, Role, str | None, str]]:
    plain, lead = _staff_pair(emulator)
    return [
        ("admin", Role.ADMIN, None, "the whole corp; users, settings"),
        ("operator", Role.OPERATOR, None, "the whole corp's customers, tags, groups"),
        ("manager", Role.STAFF, lead, f"staff, leads a department (employee {lead})"),
        ("staff", Role.STAFF, plain, f"staff, own customers only (employee {plain})"),
        ("compliance", Role.COMPLIANCE, None, "reads everything, audit log; changes nothing"),
    ]


def ensure(meta: dict[str, object], corp_id: int, emulator: RunningEmulator) -> Logins:
    """Create what is missing (users, the admin's API token) and return everything to print; updates meta."""
    passwords = dict(meta.get("logins") or {})  # type: ignore[call-overload]
    users = []
    with session_scope() as session:
        for username, role, employee, note in _wanted(emulator):
            exists = session.scalar(select(ConsoleUser.id).where(ConsoleUser.username == username)) is not None
            if exists and username not in passwords:
                continue  # made outside the demo (`siyu user create`): not ours to show
            if not exists:
                passwords[username] = secrets.token_urlsafe(12)
                do_create_user(
                    session,
                    corp_id=corp_id,
                    username=username,
                    password=passwords[username],
                    role=role,
                    employee_userid=employee,
                    actor="demo",
                )
            users.append(Login(username, passwords[username], str(role), note))
        if not meta.get("api_token"):
            admin = session.scalar(select(ConsoleUser).where(ConsoleUser.username == "admin"))
            assert admin is not None
            meta["api_token"] = do_create_api_token(session, user=admin, name="demo")[1]
    meta["logins"] = passwords
    employee, customer = _sidebar_target(emulator)
    from siyu.sidebar.cli import make_link

    link = make_link(corp_id=corp_id, employee=employee, customer=customer)
    return Logins(users, str(meta["api_token"]), link, employee, customer)


def _sidebar_target(emulator: RunningEmulator) -> tuple[str, str]:
    """The `staff` user's employee and one of their customers with tags, for the sidebar link."""
    plain, _lead = _staff_pair(emulator)
    follows = emulator.state.follow_lists[plain].items
    tagged = [f for f in follows if f.tag_ids] or follows
    return plain, tagged[0].external_userid
