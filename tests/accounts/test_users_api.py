"""Console users and API tokens: REST, the /users and /account/tokens pages, and `siyu user …`."""

from __future__ import annotations

import json
import re

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from siyu.accounts.actions import do_create_api_token, do_create_user
from siyu.accounts.auth import SESSION_COOKIE, csrf_token_for, session_cookie_value
from siyu.accounts.cli import user_app
from siyu.accounts.models import ApiToken, ConsoleUser, Role
from siyu.app import create_app
from siyu.corp.models import AuditLog
from tests.console_api_support import PASSWORD, add, api_client, console_client, employee, make_user
from tests.factories import make_corp

runner = CliRunner()


@pytest.fixture
def corp_id(db: sessionmaker[Session]) -> int:
    return make_corp(db).corp_id


@pytest.fixture
def admin(db: sessionmaker[Session], corp_id: int) -> TestClient:
    return api_client(db, corp_id, "admin")


def _audit(db: sessionmaker[Session], action: str) -> list[AuditLog]:
    with db() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)))


def _user(db: sessionmaker[Session], username: str) -> ConsoleUser:
    with db() as s:
        return s.scalars(select(ConsoleUser).where(ConsoleUser.username == username)).one()


def _cookie_client(user: ConsoleUser) -> TestClient:
    client = TestClient(create_app(configure=False), follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, session_cookie_value(user))
    client.headers["X-CSRF-Token"] = csrf_token_for(user.id, user.session_version)
    return client


# --- REST: users ------------------------------------------------------------------------------


def test_admin_creates_a_staff_user_linked_to_an_employee(
    db: sessionmaker[Session], corp_id: int, admin: TestClient
) -> None:
    # given an employee
    [emp_id] = add(db, employee(corp_id, "lisi"))
    # when the admin creates a staff user for them
    body = {"username": "lisi", "password": "s3cret-pass", "role": "staff", "employee_id": emp_id}
    r = admin.post("/api/users", json=body)
    # then the user exists, linked, with an argon2 hash, and the creation is audited
    assert r.status_code == 201, r.text
    assert r.json() | {"id": 0, "created_at": ""} == {
        "id": 0,
        "corp_id": corp_id,
        "username": "lisi",
        "display_name": "lisi",
        "role": "staff",
        "employee_id": emp_id,
        "is_active": True,
        "last_login_at": None,
        "created_at": "",
    }
    assert "password" not in r.text and "hash" not in r.text
    assert _user(db, "lisi").password_hash.startswith("$argon2id$")
    assert [a.object_id for a in _audit(db, "user.create")][-1] == str(r.json()["id"])


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"username": "x1", "password": "short", "role": "operator"}, 422, "invalid"),
        ({"username": "x2", "password": "long-enough", "role": "staff"}, 422, "invalid"),
        ({"username": "x3", "password": "long-enough", "role": "staff", "employee_id": 999999}, 422, "invalid"),
        ({"username": "x4", "password": "long-enough", "role": "owner"}, 422, "invalid"),
        ({"username": "", "password": "long-enough", "role": "operator"}, 422, "invalid"),
    ],
    ids=["short-password", "staff-without-employee", "unknown-employee", "unknown-role", "empty-username"],
)
def test_bad_user_creations_are_refused_with_a_code(
    admin: TestClient, body: dict[str, object], status: int, code: str
) -> None:
    # when / then
    r = admin.post("/api/users", json=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"][0]["code"] == code


def test_a_duplicate_username_conflicts(admin: TestClient) -> None:
    # given a user
    body = {"username": "dup", "password": "long-enough", "role": "operator"}
    assert admin.post("/api/users", json=body).status_code == 201
    # when the same name is created again
    r = admin.post("/api/users", json=body)
    # then
    assert r.status_code == 409, r.text
    assert r.json()["detail"][0]["code"] == "conflict"


def test_staff_cannot_be_linked_to_another_corps_employee(db: sessionmaker[Session], admin: TestClient) -> None:
    # given an employee of another corp
    other = make_corp(db, wecom_corpid="wwother").corp_id
    [emp_id] = add(db, employee(other, "wangwu"))
    # when / then
    body = {"username": "ww", "password": "long-enough", "role": "staff", "employee_id": emp_id}
    assert admin.post("/api/users", json=body).status_code == 422


def test_the_user_list_is_the_corps_own_in_keyset_pages(
    db: sessionmaker[Session], corp_id: int, admin: TestClient
) -> None:
    # given three more users here and one in another corp
    for _ in range(3):
        make_user(db, corp_id, "operator")
    other = make_corp(db, wecom_corpid="wwother").corp_id
    stranger = make_user(db, other, "admin")
    # when the admin pages through two at a time
    first = admin.get("/api/users", params={"limit": 2}).json()
    second = admin.get("/api/users", params={"limit": 2, "after": first["next_after"]}).json()
    # then four users come back, in id order, without the other corp's
    ids = [u["id"] for u in first["items"] + second["items"]]
    assert len(ids) == 4 and ids == sorted(ids)
    assert stranger.id not in ids
    assert second["next_after"] is None


def test_deactivating_a_user_ends_their_sessions_and_tokens(
    db: sessionmaker[Session], corp_id: int, admin: TestClient
) -> None:
    # given an operator signed in with a cookie and holding a token
    op = make_user(db, corp_id, "operator")
    op_api = _bearer_client(db, op)
    op_console = _cookie_client(op)
    # when the admin deactivates them
    r = admin.patch(f"/api/users/{op.id}", json={"is_active": False})
    # then neither the token nor the cookie works, and it is audited
    assert r.status_code == 200, r.text
    assert r.json()["is_active"] is False
    assert op_api.get("/api/tokens").status_code == 401
    assert op_console.get("/").status_code == 303
    assert _audit(db, "user.deactivate")[-1].object_id == str(op.id)
    # and reactivating lets the token work again
    assert admin.patch(f"/api/users/{op.id}", json={"is_active": True}).status_code == 200
    assert op_api.get("/api/tokens").status_code == 200
    assert _audit(db, "user.reactivate")


def _bearer_client(db: sessionmaker[Session], user: ConsoleUser) -> TestClient:
    with db.begin() as s:
        _, raw = do_create_api_token(s, user=s.merge(user), name="test")
    return TestClient(create_app(configure=False), headers={"Authorization": f"Bearer {raw}"})


def test_resetting_a_password_ends_sessions_and_is_audited_without_the_password(
    db: sessionmaker[Session], corp_id: int, admin: TestClient
) -> None:
    # given a signed-in operator
    op = make_user(db, corp_id, "operator")
    old_session = _cookie_client(op)
    assert old_session.get("/").status_code == 200
    # when the admin sets a new password
    r = admin.patch(f"/api/users/{op.id}", json={"password": "brand-new-pass"})
    # then the old session is over, the audit row hides the password, and the new one signs in
    assert r.status_code == 200, r.text
    assert old_session.get("/").status_code == 303
    row = _audit(db, "user.set_password")[-1]
    assert json.loads(row.detail) == {"password": "***"}
    assert "brand-new-pass" not in row.detail
    assert _sign_in(op.username, "brand-new-pass").cookies.get(SESSION_COOKIE)


def _sign_in(username: str, password: str) -> TestClient:
    client = TestClient(create_app(configure=False), follow_redirects=False)
    token = client.get("/login").cookies.get("siyu_login_csrf") or ""
    client.post("/login", data={"username": username, "password": password, "login_csrf": token})
    return client


@pytest.mark.parametrize("change", [{"is_active": False}, {"role": "operator"}])
def test_an_admin_cannot_lock_themselves_out(
    db: sessionmaker[Session], corp_id: int, change: dict[str, object]
) -> None:
    # given an admin
    me = make_user(db, corp_id, "admin")
    client = _cookie_client(me)
    # when they deactivate or demote themselves / then it is refused
    r = client.patch(f"/api/users/{me.id}", json=change)
    assert r.status_code == 422, r.text


def test_a_user_becomes_staff_only_with_an_employee(db: sessionmaker[Session], corp_id: int, admin: TestClient) -> None:
    # given an operator and an employee
    op = make_user(db, corp_id, "operator")
    [emp_id] = add(db, employee(corp_id, "zhaoliu"))
    # when made staff without / with the employee
    without = admin.patch(f"/api/users/{op.id}", json={"role": "staff"})
    with_emp = admin.patch(f"/api/users/{op.id}", json={"role": "staff", "employee_id": emp_id})
    # then
    assert without.status_code == 422, without.text
    assert with_emp.status_code == 200, with_emp.text
    assert with_emp.json()["employee_id"] == emp_id


# --- REST: API tokens -------------------------------------------------------------------------


def test_a_token_is_shown_once_listed_by_prefix_and_revoked(db: sessionmaker[Session], corp_id: int) -> None:
    # given a staff member (any role manages their own tokens)
    add(db, employee(corp_id, "zhangsan"))
    client = api_client(db, corp_id, "staff", employee_userid="zhangsan")
    # when they create a token
    r = client.post("/api/tokens", json={"name": "crm-bridge"})
    # then the token is in that response only
    assert r.status_code == 201, r.text
    raw = r.json()["token"]
    assert raw.startswith("siyu_") and r.json()["prefix"] == raw[:12]
    listed = client.get("/api/tokens").json()
    assert {t["name"] for t in listed} == {"test", "crm-bridge"}
    assert raw not in json.dumps(listed)
    with db() as s:
        assert raw not in {t.token_hash for t in s.scalars(select(ApiToken))}
    # and the new token works, records its use, and stops after revocation
    new = TestClient(create_app(configure=False), headers={"Authorization": f"Bearer {raw}"})
    assert new.get("/api/tokens").status_code == 200
    used = next(t for t in client.get("/api/tokens").json() if t["name"] == "crm-bridge")
    assert used["last_used_at"] is not None
    assert client.delete(f"/api/tokens/{used['id']}").status_code == 204
    assert new.get("/api/tokens").status_code == 401
    assert _audit(db, "api_token.revoke")


def test_nobody_sees_or_revokes_another_users_token(db: sessionmaker[Session], corp_id: int) -> None:
    # given two users in the corp, one an admin
    admin = api_client(db, corp_id, "admin")
    other = api_client(db, corp_id, "operator")
    theirs = other.post("/api/tokens", json={"name": "theirs"}).json()
    # when the admin lists and deletes / then the other's token is invisible and not found
    assert "theirs" not in {t["name"] for t in admin.get("/api/tokens").json()}
    assert admin.delete(f"/api/tokens/{theirs['id']}").status_code == 404


# --- console pages ----------------------------------------------------------------------------


def test_the_users_page_lists_creates_deactivates_and_resets(db: sessionmaker[Session], corp_id: int) -> None:
    # given an admin in the console and an employee
    add(db, employee(corp_id, "sunqi", "孙七"))
    client = console_client(db, corp_id, "admin")
    csrf = client.headers["X-CSRF-Token"]
    del client.headers["X-CSRF-Token"]  # forms carry the token as a field
    page = client.get("/users")
    assert page.status_code == 200, page.text
    assert "孙七 (sunqi)" in page.text
    emp_id = _employee_option(page.text, "sunqi")
    # when they create a staff user through the form
    form = {"csrf_token": csrf, "username": "sunqi", "password": "initial-pass", "role": "staff"}
    r = client.post("/users", data=form | {"employee_id": emp_id})
    # then
    assert r.status_code == 303, r.text
    listed = client.get("/users").text
    assert 'data-username="sunqi"' in listed and "孙七" in listed
    user = _user(db, "sunqi")
    # and deactivating / resetting through forms works
    assert client.post(f"/users/{user.id}/active", data={"csrf_token": csrf, "active": "false"}).status_code == 303
    assert _user(db, "sunqi").is_active is False
    r = client.post(f"/users/{user.id}/password", data={"csrf_token": csrf, "password": "another-pass"})
    assert r.status_code == 303
    assert _user(db, "sunqi").session_version == user.session_version + 2


def _employee_option(html: str, userid: str) -> str:
    match = re.search(r'<option value="(\d+)" >[^<]*\(' + userid + r"\)", html)
    assert match, html
    return match.group(1)


def test_the_users_form_shows_errors_in_chinese(db: sessionmaker[Session], corp_id: int) -> None:
    # given an admin
    client = console_client(db, corp_id, "admin")
    # when a staff user is submitted without an employee
    r = client.post("/users", data={"username": "nobody", "password": "long-enough", "role": "staff"})
    # then the form comes back with the error, kept values, and no user
    assert r.status_code == 422
    assert "员工角色须关联一名企业成员" in r.text and 'value="nobody"' in r.text
    with db() as s:
        assert s.scalar(select(ConsoleUser).where(ConsoleUser.username == "nobody")) is None


def test_the_tokens_page_shows_a_new_token_once(db: sessionmaker[Session], corp_id: int) -> None:
    # given a compliance user in the console
    client = console_client(db, corp_id, "compliance")
    # when they create a token
    r = client.post("/account/tokens", data={"name": "reports"})
    # then it is on that page and not on the next
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    with db() as s:
        token = s.scalars(select(ApiToken).where(ApiToken.name == "reports")).one()
    assert f'data-testid="new-token">{token.prefix}' in r.text
    again = client.get("/account/tokens").text
    assert "reports" in again and token.prefix in again and 'data-testid="new-token"' not in again
    # and revoking removes it
    assert client.post(f"/account/tokens/{token.id}/revoke").status_code == 303
    assert "reports" not in client.get("/account/tokens").text


def test_the_users_page_is_for_admins_only(db: sessionmaker[Session], corp_id: int) -> None:
    # given an operator / then the page is forbidden and not in the navigation
    client = console_client(db, corp_id, "operator")
    assert client.get("/users").status_code == 403
    assert 'href="/users"' not in client.get("/account/tokens").text


# --- CLI --------------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(user_app, name="user")

    @app.callback()
    def _root() -> None:
        """siyu"""

    return app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "admin", "--corp", "nope"], "no corp 'nope'"),
        (["--role", "staff"], "must be linked to an employee"),
        (["--role", "staff", "--employee", "ghost"], "no employee ghost"),
        (["--role", "admin", "--password", "short"], "at least 8 characters"),
        (["--role", "emperor"], "Invalid value for '--role'"),
    ],
    ids=["unknown-corp", "staff-without-employee", "unknown-employee", "short-password", "bad-role"],
)
def test_user_create_refuses_bad_input(corp_id: int, args: list[str], message: str) -> None:
    # when
    argv = ["user", "create", "someone", *args]
    if "--password" not in args:
        argv += ["--password", "long-enough"]
    result = runner.invoke(_cli(), argv)
    # then
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_user_create_refuses_a_duplicate_username(corp_id: int) -> None:
    # given
    args = ["user", "create", "boss", "--role", "admin", "--password", "long-enough"]
    assert runner.invoke(_cli(), args).exit_code == 0
    # when / then
    result = runner.invoke(_cli(), args)
    assert result.exit_code == 2
    assert "already exists" in result.output


def test_user_create_list_set_password_and_token(db: sessionmaker[Session], corp_id: int) -> None:
    # given a staff user created from the CLI
    add(db, employee(corp_id, "zhouba", "周八"))
    created = runner.invoke(
        _cli(), ["user", "create", "zhouba", "--role", "staff", "--employee", "zhouba", "--password", PASSWORD]
    )
    assert created.exit_code == 0, created.output
    # when listed / then shown with the employee
    listed = runner.invoke(_cli(), ["user", "list"])
    assert listed.exit_code == 0, listed.output
    assert "zhouba" in listed.output and "周八" in listed.output and "staff" in listed.output
    # when the password is set / then sessions end and the new password signs in
    before = _user(db, "zhouba").session_version
    changed = runner.invoke(_cli(), ["user", "set-password", "zhouba", "--password", "next-password"])
    assert changed.exit_code == 0, changed.output
    assert _user(db, "zhouba").session_version == before + 1
    assert _sign_in("zhouba", "next-password").cookies.get(SESSION_COOKIE)
    # and a token printed on stdout works
    token = runner.invoke(_cli(), ["user", "token", "zhouba"]).stdout.strip()
    client = TestClient(create_app(configure=False), headers={"Authorization": f"Bearer {token}"})
    assert client.get("/api/tokens").status_code == 200


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["user", "set-password", "ghost", "--password", "long-enough"], "no user ghost"),
        (["user", "set-password", "admin-x", "--password", "short"], "at least 8 characters"),
        (["user", "token", "ghost"], "no user ghost"),
        (["user", "list", "--corp", "nope"], "no corp 'nope'"),
    ],
)
def test_user_commands_refuse_bad_input(db: sessionmaker[Session], corp_id: int, argv: list[str], message: str) -> None:
    # given a user named admin-x
    with db.begin() as s:
        do_create_user(s, corp_id=corp_id, username="admin-x", password=PASSWORD, role=Role.ADMIN)
    # when / then
    result = runner.invoke(_cli(), argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
