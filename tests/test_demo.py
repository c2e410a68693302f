"""`siyu demo` end to end: a subprocess that syncs a small demo corp, prints logins that work, and reuses its data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from siyu.app import create_app
from siyu.core import db as core_db
from siyu.core.tasks import configure_queue
from siyu.timeline.models import CustomerEvent
from tests.server_fixtures import free_port

LOGIN_LINE = re.compile(r"^\s{2}(admin|operator|manager|staff|compliance)\s+(\S+)\s+(\w+)\s", re.MULTILINE)
TOKEN = re.compile(r"API token: (siyu_\S+?)\)")
SIDEBAR = re.compile(r"^\s+(http://127\.0\.0\.1:\d+/sidebar\?t=\S+)$", re.MULTILINE)


def _run_demo(data_dir: Path, *flags: str) -> str:
    command = [sys.executable, "-m", "siyu", "demo", *flags, "--customers", "300", "--employees", "10"]
    command += ["--exit-after-sync", "--data-dir", str(data_dir)]
    command += ["--port", str(free_port()), "--emulator-port", str(free_port())]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data_dir = tmp_path_factory.mktemp("demo")
    return data_dir, _run_demo(data_dir, "--reset")


@pytest.fixture
def demo_server(demo_run: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """siyu's app on the demo's database and secret key, as `siyu serve` would run it."""
    data_dir, _ = demo_run
    meta = json.loads((data_dir / "demo.json").read_text())
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{data_dir / 'siyu.db'}")
    monkeypatch.setenv("SIYU_SECRET_KEY", meta["secret_key"])
    monkeypatch.setenv("SIYU_ENV", "development")
    core_db.reset_caches()
    configure_queue("memory://", immediate=True)
    yield TestClient(create_app(configure=False), follow_redirects=False)
    core_db.reset_caches()


def _logins(output: str) -> dict[str, tuple[str, str]]:
    return {user: (password, role) for user, password, role in LOGIN_LINE.findall(output)}


def test_the_demo_prints_a_login_for_every_role(demo_run: tuple[Path, str]) -> None:
    # when
    logins = _logins(demo_run[1])
    # then
    assert {role for _, role in logins.values()} == {"admin", "operator", "staff", "compliance"}
    assert set(logins) == {"admin", "operator", "manager", "staff", "compliance"}


@pytest.mark.parametrize("username", ["admin", "operator", "manager", "staff", "compliance"])
def test_each_printed_login_signs_in(demo_run: tuple[Path, str], demo_server: TestClient, username: str) -> None:
    # given
    password, _ = _logins(demo_run[1])[username]
    form = demo_server.get("/login")
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert login_csrf is not None
    # when
    r = demo_server.post(
        "/login", data={"username": username, "password": password, "login_csrf": login_csrf.group(1), "next": "/"}
    )
    # then
    assert r.status_code == 303, r.text
    assert demo_server.get("/").status_code == 200


def test_the_printed_api_token_and_sidebar_link_work(demo_run: tuple[Path, str], demo_server: TestClient) -> None:
    # given
    token = TOKEN.search(demo_run[1])
    link = SIDEBAR.search(demo_run[1])
    assert token is not None and link is not None, demo_run[1]
    # when
    api = demo_server.get("/api/corps", headers={"Authorization": f"Bearer {token.group(1)}"})
    parts = urlsplit(link.group(1))
    sidebar = demo_server.get(f"{parts.path}?{parts.query}")
    # then
    assert api.status_code == 200, api.text
    assert sidebar.status_code == 303, sidebar.text
    assert demo_server.get(sidebar.headers["location"]).status_code == 200


def test_the_demo_has_months_of_history(demo_run: tuple[Path, str], demo_server: TestClient) -> None:
    # when
    with core_db.session_scope() as session:
        kinds = dict(session.execute(select(CustomerEvent.kind, func.count()).group_by(CustomerEvent.kind)).all())
        oldest_end = session.scalar(
            select(func.min(CustomerEvent.occurred_at)).where(CustomerEvent.kind == "follow_ended")
        )
    # then
    assert {"follow_added", "follow_ended", "tags_changed", "joined_group"} <= set(kinds), kinds
    assert oldest_end is not None
    assert oldest_end.timestamp() < time.time() - 7 * 86_400


def test_a_reused_demo_prints_the_same_logins(demo_run: tuple[Path, str]) -> None:
    # given
    data_dir, first = demo_run
    # when
    again = _run_demo(data_dir, "--reuse")
    # then
    assert _logins(again) == _logins(first)
    assert "0 rows changed" in again  # the re-sync finds nothing new


def test_the_demo_has_channel_codes_with_customers_and_sent_welcomes(
    demo_run: tuple[Path, str], demo_server: TestClient
) -> None:
    from siyu.acquisition.models import Channel, WelcomeSend
    from siyu.contacts.models import Follow

    with core_db.session_scope() as session:
        channels = session.scalar(select(func.count()).select_from(Channel))
        attributed = session.scalar(select(func.count()).select_from(Follow).where(Follow.channel_id.is_not(None)))
        lost = session.scalar(
            select(func.count()).select_from(Follow).where(Follow.channel_id.is_not(None), Follow.ended_at.is_not(None))
        )
        welcomes = dict(session.execute(select(WelcomeSend.status, func.count()).group_by(WelcomeSend.status)).all())
    assert channels == 5
    assert attributed and attributed > 20 and lost
    assert welcomes.get("sent", 0) >= 10, welcomes


def test_the_demo_has_opt_outs_and_a_broadcast_sent_this_morning(
    demo_run: tuple[Path, str], demo_server: TestClient
) -> None:
    from siyu.broadcasts.models import Broadcast, BroadcastRecipient
    from siyu.compliance.models import OptOut

    data_dir, _ = demo_run
    reach = json.loads((data_dir / "demo.json").read_text())["reach"]
    with core_db.session_scope() as session:
        opted = session.scalar(select(func.count()).select_from(OptOut))
        broadcast = session.get(Broadcast, reach["morning_broadcast"])
        assert broadcast is not None
        rows = session.scalar(
            select(func.count()).select_from(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == broadcast.id)
        )
    # then a new plan has someone to exclude as opted out, and the morning broadcast froze its audience
    assert opted == reach["opted_out"] >= 4  # 1.5 % of 300 customers and the channels' new ones
    assert broadcast.name == "早安福利·会员专享" and broadcast.planned_at is not None
    assert rows == broadcast.counts["candidates"] and broadcast.counts["eligible"] == reach["morning_eligible"]
    started = {"sending", "sent", "finished", "scheduled"}  # scheduled: the demo ran in the quiet hours
    assert broadcast.status in (started if reach["morning_eligible"] else {"planned", "scheduled"}), broadcast.status
