"""Browser tests: Playwright driving Debian's chromium against a live siyu stack.

Each test module gets one live stack, started in-process: a seeded WeCom emulator, siyu's own
server over real HTTP (`serve_in_thread(create_app(configure=False))`), the task queue in
immediate mode (outbox sends and callback processing run inline, so a change made in the
browser has reached the emulator when the response arrives), a synced corp, and one console
user per role with a known password.

The stack runs on SQLite only. The database matrix (SQLite and PostgreSQL) is the job of the API
and authorization tests behind every page; the browser tests check what only a browser can —
the pages render, their scripts run, forms and htmx updates work — and running them twice would
double the slowest part of the suite for no extra coverage.

Chromium comes from the system (`apt-get install chromium`, done by `.ci/run`); Playwright never
downloads a browser. Without /usr/bin/chromium the tests skip with a message, except under
CI=true, where they fail. Screenshots of each main page are written to
`test-artifacts/screenshots/` (git-ignored) for people to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import PASSWORD, ROLES, Stack
from playwright.sync_api import Browser, Page
from sqlalchemy.engine import Engine

from siyu.accounts.actions import do_create_user
from siyu.accounts.models import Role
from siyu.app import create_app
from siyu.core import db as core_db
from siyu.core.migrate import upgrade
from siyu.core.tasks import configure_queue
from siyu.sync.flows import run_sync
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from tests.factories import make_corp
from tests.server_fixtures import serve_in_thread

CHROMIUM = Path(os.environ.get("SIYU_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() == "true"
CORP = {"employees": 16, "customers": 400, "seed": 7}


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`)"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires the browser tests to run", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless chromium for the session; Playwright gives each launch a fresh temporary user-data dir."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    """A fresh browser context (no cookies: Chinese by default, signed out) and page for each test."""
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 860}, locale="zh-CN")
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def phone(browser: Browser, stack: Stack) -> Iterator[Page]:
    """A phone-sized page, as WeCom's chat toolbar opens the sidebar."""
    context = browser.new_context(
        base_url=stack.base_url, viewport={"width": 390, "height": 780}, locale="zh-CN", is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


def _migrated_sqlite(path: Path) -> Engine:
    url = f"sqlite:///{path}"
    engine = core_db.make_engine(url)
    upgrade(url=url, engine=engine)
    return engine


def _staff_userids(emulator: RunningEmulator) -> tuple[str, str]:
    """A member who leads no department, and the leader of their (non-root) department."""
    state = emulator.state
    leaders = {u for d in state.departments.values() for u in d.department_leader}
    for employee in state.employees.values():
        department = state.departments[employee.main_department]
        if employee.userid not in leaders and department.parentid != 0 and department.department_leader:
            return employee.userid, department.department_leader[0]
    raise AssertionError("the seeded corp has no department with a leader and a member")


def _create_users(stack: Stack) -> None:
    plain, lead = _staff_userids(stack.emulator)
    stack.employees = {"staff": plain, "staff_lead": lead}
    with core_db.session_scope() as session:
        for username in ROLES:
            role = Role.STAFF if username.startswith("staff") else Role(username)
            do_create_user(
                session,
                corp_id=stack.corp_id,
                username=username,
                password=PASSWORD,
                role=role,
                employee_userid=stack.employees.get(username),
                actor="e2e",
            )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Emulator + server + immediate queue + synced corp + one user per role, for one test module."""
    _require_chromium()
    tmp = tmp_path_factory.mktemp("e2e")
    engine = _migrated_sqlite(tmp / "siyu.db")
    with pytest.MonkeyPatch.context() as env, start_emulator(**CORP, callback_retry_delay=0.01) as emulator:
        env.setenv("SIYU_ENV", "test")
        env.setenv("SIYU_SECRET_KEY", "e2e-secret-key-not-for-production")
        env.setenv("SIYU_DATABASE_URL", str(engine.url))
        env.setenv("SIYU_QUEUE_URL", "memory://")
        core_db.reset_caches()
        core_db.use_engine(engine)
        configure_queue("memory://", immediate=True)
        c = emulator.corp
        corp = make_corp(
            core_db.get_sessionmaker(),
            wecom_corpid=c.corpid,
            secret=c.secret,
            token=c.token,
            aes_key=c.encoding_aes_key,
            api_base_url=emulator.base_url,
        )
        run_sync(corp.corp_id)
        with serve_in_thread(create_app(configure=False)) as base_url:
            emulator.set_callback_url(f"{base_url}/wecom/callback/{corp.corp_id}")
            running = Stack(base_url, emulator, corp.corp_id, engine)
            _create_users(running)
            yield running
        core_db.reset_caches()
    engine.dispose()
