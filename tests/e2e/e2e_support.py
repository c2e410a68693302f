"""Helpers for the browser tests (the fixtures are in conftest.py): sign in, screenshots, test data."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Dialog, Page
from sqlalchemy import select
from sqlalchemy.engine import Engine

from siyu.compliance.models import ReachPolicy
from siyu.contacts.models import Customer, Employee, Follow
from siyu.core import db as core_db
from siyu.wecom.emulator.server import RunningEmulator

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "e2e-password-1"
# Usernames are the role names; staff is an employee who leads no department, staff_lead one who does.
ROLES = ("admin", "operator", "staff", "staff_lead", "compliance")


@dataclass
class Stack:
    """A running siyu with a synced corp."""

    base_url: str
    emulator: RunningEmulator
    corp_id: int
    engine: Engine
    employees: dict[str, str] = field(default_factory=dict)  # staff username → employee userid

    def url(self, path: str) -> str:
        return self.base_url + path


def signed_in(page: Page, role: str, *, next_path: str = "/") -> Page:
    """Sign `page` in as the user for `role` (see ROLES) through the real form."""
    page.goto(f"/login?next={next_path}")
    page.fill("input[name=username]", role)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")
    assert "/login" not in page.url, f"sign-in as {role} failed: {page.url}"
    return page


def screenshot(page: Page, name: str) -> Path:
    """Keep a full-page screenshot as a test artifact (test-artifacts/ is git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    page.evaluate("window.scrollTo(0, 0)")  # a sticky header would otherwise land mid-page
    page.screenshot(path=str(path), full_page=True)
    return path


def followed_customer(stack: Stack, username: str) -> tuple[int, int, str]:
    """(customer id, follow id, external_userid) of one active customer the staff user follows."""
    with core_db.session_scope() as session:
        row = session.execute(
            select(Customer.id, Follow.id, Customer.external_userid)
            .join(Follow, Follow.customer_id == Customer.id)
            .join(Employee, Employee.id == Follow.employee_id)
            .where(Employee.userid == stack.employees[username], Follow.status == "active")
            .order_by(Customer.id)
            .limit(1)
        ).one()
    return int(row[0]), int(row[1]), str(row[2])


def no_quiet_hours(stack: Stack) -> None:
    """Tests plan "now"; the default quiet hours (21:00–08:00) would move the send to the morning."""
    with core_db.session_scope() as session:
        session.merge(ReachPolicy(corp_id=stack.corp_id, quiet_start="", quiet_end=""))


def plan_broadcast(page: Page, name: str, source: str, fill: str, text: str) -> None:
    """Compose a customer broadcast to a rule (`source` "rule") or a list, and plan it: ends on its plan page."""
    page.goto("/broadcasts/new")
    form = page.get_by_test_id("broadcast-form")
    form.get_by_test_id("broadcast-name").fill(name)
    form.get_by_test_id(f"source-{source}").check()
    form.get_by_test_id("audience-rule" if source == "rule" else "audience-list").fill(fill)
    form.get_by_test_id("broadcast-text").fill(text)
    form.get_by_test_id("broadcast-plan").click()
    page.wait_for_url(re.compile(r"/broadcasts/\d+/plan$"))


def send_broadcast(page: Page, broadcast_id: int) -> None:
    """On a planned broadcast's page: confirm and send (accepting the confirm dialog); ends on its progress page."""

    def accept(dialog: Dialog) -> None:
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_test_id("broadcast-send").click()
    page.wait_for_url(re.compile(rf"/broadcasts/{broadcast_id}\?notice=started$"))
