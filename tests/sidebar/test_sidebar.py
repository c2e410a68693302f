"""The sidebar: signed links, the employee's scope, tag edits reaching WeCom, OAuth and JS-SDK signatures."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from siyu.accounts.actions import do_create_user
from siyu.accounts.models import Role
from siyu.app import create_app
from siyu.cli import app as cli_app
from siyu.contacts.models import Customer, Employee, Follow
from siyu.core.tasks import configure_queue
from siyu.sidebar import links
from siyu.sync.flows import run_sync
from siyu.tags.models import FollowTag, Tag
from siyu.wecom.client import client_for_corp
from siyu.wecom.emulator.server import RunningEmulator
from siyu.wecom.errors import ApiError
from tests.sync.test_sync_support import corp_for


@dataclass
class Synced:
    corp_id: int
    emulator: RunningEmulator
    client: TestClient
    db: sessionmaker[Session]


@pytest.fixture
def synced(db: sessionmaker[Session], emulator_factory: Callable[..., RunningEmulator]) -> Iterator[Synced]:
    configure_queue("memory://", immediate=True)  # the outbox sends mark_tag inline after commit
    emulator = emulator_factory(employees=16)  # enough for members who lead no department
    corp_id = corp_for(db, emulator)
    run_sync(corp_id)
    yield Synced(corp_id, emulator, TestClient(create_app(configure=False), follow_redirects=False), db)


def _pair(s: Synced, *, followed: bool = True) -> tuple[str, str]:
    """(employee userid, external_userid): an employee who leads no department (so their scope is their
    own customers), with a customer they follow — or one they don't."""
    state = s.emulator.state
    leaders = {u for d in state.departments.values() for u in d.department_leader}
    userid = next(u for u in state.follow_user_ids() if u not in leaders)
    mine = {f.external_userid for f in state.follow_lists[userid].items}
    return userid, sorted(mine if followed else set(state.customers) - mine)[0]


def _open(s: Synced, employee: str, customer: str) -> httpx.Response:
    token = links.make_link_token(links.SidebarLink(s.corp_id, employee, customer))
    r = s.client.get("/sidebar", params={"t": token})
    assert r.status_code == 303, r.text
    return s.client.get(r.headers["location"])


def test_a_signed_link_opens_the_customer_with_this_follows_remark_and_tags(synced: Synced) -> None:
    # given
    userid, external_userid = _pair(synced)
    follow = synced.emulator.state.follow(userid, external_userid)
    assert follow is not None
    # when
    r = _open(synced, userid, external_userid)
    # then
    assert r.status_code == 200, r.text
    assert 'class="sidebar"' in r.text
    assert synced.emulator.state.customers[external_userid].name in r.text
    for tag_id in follow.tag_ids:
        assert synced.emulator.state.tags[tag_id].name in r.text
    assert "token" not in r.url.query.decode()


@pytest.mark.parametrize("problem", ["expired", "tampered", "unknown_employee"])
def test_a_bad_link_shows_a_message_and_no_data(synced: Synced, monkeypatch: pytest.MonkeyPatch, problem: str) -> None:
    # given
    userid, external_userid = _pair(synced)
    if problem == "unknown_employee":
        userid = "nobody"
    if problem == "expired":
        signed_at = int(time.time()) - links.LINK_MAX_AGE - 60
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: signed_at)
    token = links.make_link_token(links.SidebarLink(synced.corp_id, userid, external_userid))
    monkeypatch.undo()
    if problem == "tampered":
        token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    # when
    r = synced.client.get("/sidebar", params={"t": token})
    # then
    reason = {"expired": "expired", "tampered": "invalid", "unknown_employee": "employee"}[problem]
    assert f'data-reason="{reason}"' in r.text
    assert r.status_code in (401, 403)
    assert links.SESSION_COOKIE not in r.cookies


def test_an_out_of_scope_customer_shows_a_message_not_data(synced: Synced) -> None:
    # given
    userid, stranger = _pair(synced, followed=False)
    # when
    r = _open(synced, userid, stranger)
    # then
    assert r.status_code == 404
    assert 'data-reason="not_found"' in r.text
    assert synced.emulator.state.customers[stranger].name not in r.text


def test_an_admin_linked_employee_still_gets_only_the_employee_scope(synced: Synced) -> None:
    # given: the employee's console user is an admin, who could see every customer in the console
    userid, stranger = _pair(synced, followed=False)
    with synced.db.begin() as session:
        do_create_user(
            session,
            corp_id=synced.corp_id,
            username="boss",
            password="boss-password",
            role=Role.ADMIN,
            employee_userid=userid,
        )
    # when
    r = _open(synced, userid, stranger)
    # then
    assert r.status_code == 404
    assert 'data-reason="not_found"' in r.text


def test_without_a_session_the_customer_page_asks_to_open_from_wecom(synced: Synced) -> None:
    # given
    _, external_userid = _pair(synced)
    # when
    r = synced.client.get(f"/sidebar/c/{external_userid}")
    # then
    assert r.status_code == 401
    assert 'data-reason="signed_out"' in r.text


def _tag_form(s: Synced, follow_id: int, tag_ids: list[int], csrf: str | None) -> httpx.Response:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    return s.client.post(
        f"/sidebar/follows/{follow_id}/tags", data={"tag_id": [str(t) for t in tag_ids]}, headers=headers
    )


def _follow_and_csrf(s: Synced, userid: str, external_userid: str) -> tuple[int, str]:
    r = _open(s, userid, external_userid)
    assert r.status_code == 200, r.text
    with s.db() as session:
        follow_id = session.scalar(
            select(Follow.id)
            .join(Employee, Employee.id == Follow.employee_id)
            .join(Customer, Customer.id == Follow.customer_id)
            .where(Employee.userid == userid, Customer.external_userid == external_userid)
        )
        employee_id = session.scalar(select(Employee.id).where(Employee.userid == userid))
    assert follow_id is not None and employee_id is not None
    return follow_id, links.csrf_token(links.SidebarSession(s.corp_id, employee_id))


def test_editing_tags_in_the_sidebar_reaches_wecom(synced: Synced) -> None:
    # given
    userid, external_userid = _pair(synced)
    follow_id, csrf = _follow_and_csrf(synced, userid, external_userid)
    with synced.db() as session:
        tag = session.scalars(select(Tag).order_by(Tag.id)).first()
        current = list(session.scalars(select(FollowTag.tag_id).where(FollowTag.follow_id == follow_id)))
    assert tag is not None
    wanted = sorted(set(current) ^ {tag.id})
    # when
    r = _tag_form(synced, follow_id, wanted, csrf)
    # then
    assert r.status_code == 200, r.text
    assert 'role="status"' in r.text
    emulated = synced.emulator.state.follow(userid, external_userid)
    assert emulated is not None
    assert (tag.wecom_id in emulated.tag_ids) == (tag.id in wanted)
    with synced.db() as session:
        stored = set(session.scalars(select(FollowTag.tag_id).where(FollowTag.follow_id == follow_id)))
    assert stored == set(wanted)


@pytest.mark.parametrize("csrf", [None, "wrong"])
def test_a_tag_edit_without_the_csrf_token_is_refused(synced: Synced, csrf: str | None) -> None:
    # given
    userid, external_userid = _pair(synced)
    follow_id, _ = _follow_and_csrf(synced, userid, external_userid)
    # when
    r = _tag_form(synced, follow_id, [], csrf)
    # then
    assert r.status_code == 403, r.text


def test_a_tag_edit_on_another_employees_follow_is_not_found(synced: Synced) -> None:
    # given
    userid, external_userid = _pair(synced)
    _, csrf = _follow_and_csrf(synced, userid, external_userid)
    with synced.db() as session:
        me = session.scalar(select(Employee.id).where(Employee.userid == userid))
        other = session.scalar(select(Follow.id).where(Follow.employee_id != me).order_by(Follow.id).limit(1))
    assert other is not None
    # when
    r = _tag_form(synced, other, [], csrf)
    # then
    assert r.status_code == 404
    assert 'data-reason="not_found"' in r.text


def test_wecom_oauth_signs_the_employee_in(synced: Synced) -> None:
    # given: the toolbar opens /sidebar?corp=…; siyu sends the browser to WeCom's (here: the emulator's) OAuth page
    userid = synced.emulator.state.follow_user_ids()[1]
    r = synced.client.get("/sidebar", params={"corp": synced.corp_id})
    assert r.status_code == 302, r.text
    authorize = r.headers["location"]
    assert authorize.startswith(f"{synced.emulator.base_url}/connect/oauth2/authorize?appid=")
    assert authorize.endswith("#wechat_redirect")
    # when: WeCom redirects back with a code
    back = httpx.get(authorize.split("#")[0] + f"&userid={userid}", follow_redirects=False)
    assert back.status_code == 302, back.text
    parts = urlsplit(back.headers["location"])
    r = synced.client.get(f"{parts.path}?{parts.query}")
    # then
    assert r.status_code == 303, r.text
    assert links.SESSION_COOKIE in r.cookies
    shell = synced.client.get("/sidebar")
    assert shell.status_code == 200
    assert "getCurExternalContact" in shell.text
    # and the code works once only
    again = synced.client.get(f"{parts.path}?{parts.query}")
    assert again.status_code == 502
    assert 'data-reason="wecom"' in again.text


def test_a_forged_oauth_state_is_refused(synced: Synced) -> None:
    # when
    r = synced.client.get("/sidebar/oauth", params={"code": "x", "state": "forged"})
    # then
    assert r.status_code == 401
    assert 'data-reason="invalid"' in r.text


def test_jsapi_signatures_use_the_corp_and_agent_tickets(synced: Synced) -> None:
    # given
    userid, external_userid = _pair(synced)
    _open(synced, userid, external_userid)
    url = "http://testserver/sidebar"
    # when
    r = synced.client.get("/sidebar/jsapi", params={"url": url + "#x"})
    # then
    assert r.status_code == 200, r.text
    cfg = r.json()
    with synced.db() as session:
        from siyu.corp.models import Corp

        corp = session.get(Corp, synced.corp_id)
        assert corp is not None
        with client_for_corp(corp) as client:
            tickets = {agent: client.get_jsapi_ticket(agent=agent)[0] for agent in (False, True)}
    for agent, key in ((False, "corp_signature"), (True, "agent_signature")):
        plain = f"jsapi_ticket={tickets[agent]}&noncestr={cfg['nonce']}&timestamp={cfg['timestamp']}&url={url}"
        assert cfg[key] == hashlib.sha1(plain.encode()).hexdigest()


def test_jsapi_needs_a_sidebar_session(synced: Synced) -> None:
    # when
    r = synced.client.get("/sidebar/jsapi", params={"url": "http://testserver/sidebar"})
    # then
    assert r.status_code == 401


def test_the_emulator_refuses_an_unknown_oauth_code(synced: Synced) -> None:
    # given
    with synced.db() as session:
        from siyu.corp.models import Corp

        corp = session.get(Corp, synced.corp_id)
        assert corp is not None
        client = client_for_corp(corp)
    # when / then
    with client, pytest.raises(ApiError) as raised:
        client.get_user_info("not-a-code")
    assert raised.value.errcode == 40029


def test_the_cli_prints_a_working_link(synced: Synced) -> None:
    # given
    userid, external_userid = _pair(synced)
    # when
    result = CliRunner().invoke(
        cli_app,
        ["sidebar-link", "--employee", userid, "--customer", external_userid, "--base-url", "http://testserver"],
    )
    # then
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    token = parse_qs(urlsplit(url).query)["t"][0]
    assert links.read_link_token(token) == links.SidebarLink(synced.corp_id, userid, external_userid)


def test_the_cli_refuses_an_unknown_employee(synced: Synced) -> None:
    # when
    result = CliRunner().invoke(cli_app, ["sidebar-link", "--employee", "nobody", "--customer", "wm1"])
    # then
    assert result.exit_code == 2
    assert "no employee nobody" in result.output


def test_every_sidebar_message_and_timeline_label_has_chinese() -> None:
    # given
    from siyu.console.i18n import catalog
    from siyu.console.routes import sidebar

    used = {text for pair in sidebar.MESSAGES.values() for text in pair} | set(sidebar.EVENT_LABELS.values())
    # then
    assert sorted(used - set(catalog("zh_CN"))) == []
