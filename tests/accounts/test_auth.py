"""Sign-in hardening: password hashes, cookies, throttling, CSRF, session endings, redirects."""

from __future__ import annotations

import time
from datetime import timedelta
from http.cookies import SimpleCookie
from unittest import mock

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker

from siyu.accounts import actions
from siyu.accounts.auth import SESSION_COOKIE, SESSION_MAX_AGE, csrf_token_for, session_cookie_value
from siyu.accounts.models import ConsoleUser
from siyu.app import create_app
from siyu.core.clock import now_utc
from siyu.core.config import get_settings
from tests.console_api_support import PASSWORD, make_user
from tests.factories import make_corp

LOGIN_CSRF = "siyu_login_csrf"


@pytest.fixture
def corp_id(db: sessionmaker[Session]) -> int:
    return make_corp(db).corp_id


@pytest.fixture
def user(db: sessionmaker[Session], corp_id: int) -> ConsoleUser:
    return make_user(db, corp_id, "operator")


def _client(base_url: str = "http://testserver") -> TestClient:
    return TestClient(create_app(configure=False), base_url=base_url, follow_redirects=False)


def _login(client: TestClient, username: str, password: str, next_url: str = "/") -> object:
    token = client.get("/login").cookies.get(LOGIN_CSRF) or ""
    data = {"username": username, "password": password, "login_csrf": token, "next": next_url}
    return client.post("/login", data=data)


def _set_cookies(response: object) -> dict[str, str]:
    """Set-Cookie headers by cookie name, lower-cased, for checking their attributes."""
    found = {}
    for header in response.headers.get_list("set-cookie"):  # type: ignore[attr-defined]
        found[next(iter(SimpleCookie(header).keys()))] = header.lower()
    return found


def _fresh(db: sessionmaker[Session], user: ConsoleUser) -> ConsoleUser:
    with db() as s:
        row = s.get(ConsoleUser, user.id)
        assert row is not None
        return row


# --- passwords and cookies --------------------------------------------------------------------


def test_passwords_are_stored_as_argon2id_hashes(db: sessionmaker[Session], user: ConsoleUser) -> None:
    # then the stored value is an argon2id hash, never the password
    stored = _fresh(db, user).password_hash
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


@pytest.mark.parametrize(("base_url", "secure"), [("http://testserver", False), ("https://testserver", True)])
def test_the_session_cookie_is_httponly_and_samesite(user: ConsoleUser, base_url: str, secure: bool) -> None:
    # when the user signs in
    client = _client(base_url)
    r = _login(client, user.username, PASSWORD)
    # then a session cookie is set HttpOnly, SameSite=Lax, Secure over https, and sign-in lands on next
    assert r.status_code == 303, r.text
    cookie = _set_cookies(r)[SESSION_COOKIE]
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert ("secure" in cookie) is secure
    assert f"max-age={SESSION_MAX_AGE}" in cookie


def test_the_cookie_is_secure_behind_an_https_proxy(user: ConsoleUser, monkeypatch: pytest.MonkeyPatch) -> None:
    # given siyu is published at an https URL but reached over plain http (a TLS-terminating proxy)
    monkeypatch.setenv("SIYU_PUBLIC_BASE_URL", "https://scrm.example.com")
    get_settings.cache_clear()
    # when / then
    assert "secure" in _set_cookies(_login(_client(), user.username, PASSWORD))[SESSION_COOKIE]
    get_settings.cache_clear()


def test_the_login_csrf_cookie_is_httponly_and_strict() -> None:
    cookie = _set_cookies(_client().get("/login"))[LOGIN_CSRF]
    assert "httponly" in cookie and "samesite=strict" in cookie


# --- throttling -------------------------------------------------------------------------------


def test_five_failures_lock_the_account_even_for_the_right_password(
    db: sessionmaker[Session], user: ConsoleUser
) -> None:
    # given four wrong passwords: each failure is counted even though the answer is an error
    client = _client()
    for n in range(1, 5):
        r = _login(client, user.username, "wrong-password")
        assert r.status_code == 401
        assert _fresh(db, user).failed_logins == n
    # when the fifth fails
    assert _login(client, user.username, "wrong-password").status_code == 401
    # then the account is locked for 15 minutes, and even the right password is refused
    locked = _fresh(db, user).locked_until
    assert locked is not None and timedelta(minutes=14) < locked - now_utc() <= timedelta(minutes=15)
    r = _login(client, user.username, PASSWORD)
    assert r.status_code == 429
    assert "15 分钟" in r.text and SESSION_COOKIE not in r.cookies


def test_the_lock_lifts_after_15_minutes(
    db: sessionmaker[Session], user: ConsoleUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a locked account
    client = _client()
    for _ in range(actions.MAX_FAILED_LOGINS):
        _login(client, user.username, "wrong-password")
    # when 16 minutes pass
    later = now_utc() + timedelta(minutes=16)
    monkeypatch.setattr(actions, "now_utc", lambda: later)
    # then the right password signs in and the counters are reset
    r = _login(client, user.username, PASSWORD)
    assert r.status_code == 303, r.text
    fresh = _fresh(db, user)
    assert (fresh.failed_logins, fresh.locked_until) == (0, None)
    assert fresh.last_login_at == later


def test_unknown_users_and_wrong_passwords_get_the_same_answer(user: ConsoleUser) -> None:
    # when
    unknown = _login(_client(), "no-such-user", PASSWORD)
    wrong = _login(_client(), user.username, "wrong-password")
    # then nothing tells them apart
    assert unknown.status_code == wrong.status_code == 401
    assert "用户名或密码错误" in unknown.text and "用户名或密码错误" in wrong.text


def test_a_deactivated_user_cannot_sign_in(db: sessionmaker[Session], user: ConsoleUser) -> None:
    # given
    with db.begin() as s:
        actions.do_update_user(s, user=s.merge(user), changes={"is_active": False}, actor="test")
    # when / then
    assert _login(_client(), user.username, PASSWORD).status_code == 401


# --- CSRF -------------------------------------------------------------------------------------


def _cookie_only(user: ConsoleUser) -> TestClient:
    client = _client()
    client.cookies.set(SESSION_COOKIE, session_cookie_value(user))
    return client


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 403), ({"X-CSRF-Token": "forged"}, 403), ({"X-CSRF-Token": "GOOD"}, 201)],
    ids=["missing", "wrong", "right"],
)
def test_cookie_authenticated_writes_need_the_csrf_token(
    user: ConsoleUser, headers: dict[str, str], status: int
) -> None:
    # given a cookie session
    client = _cookie_only(user)
    good = csrf_token_for(user.id, user.session_version)
    # when it posts with / without the token
    r = client.post("/api/tokens", json={"name": "x"}, headers={k: v.replace("GOOD", good) for k, v in headers.items()})
    # then
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["detail"][0]["code"] == "csrf_failed"


def test_console_forms_carry_the_csrf_token_as_a_field(user: ConsoleUser) -> None:
    # given a cookie session
    client = _cookie_only(user)
    # when a form posts without / with the field
    without = client.post("/account/tokens", data={"name": "x"})
    with_field = client.post(
        "/account/tokens", data={"name": "x", "csrf_token": csrf_token_for(user.id, user.session_version)}
    )
    # then
    assert without.status_code == 403
    assert with_field.status_code == 200, with_field.text


def test_reads_and_bearer_requests_need_no_csrf_token(db: sessionmaker[Session], user: ConsoleUser) -> None:
    # given a cookie session and an API token
    with db.begin() as s:
        _, raw = actions.do_create_api_token(s, user=s.merge(user), name="t")
    # when / then a cookie GET and a bearer POST go through without a CSRF token
    assert _cookie_only(user).get("/api/tokens").status_code == 200
    bearer = _client()
    r = bearer.post("/api/tokens", json={"name": "y"}, headers={"Authorization": f"Bearer {raw}"})
    assert r.status_code == 201, r.text


def test_a_csrf_token_dies_with_its_session(db: sessionmaker[Session], user: ConsoleUser) -> None:
    # given a token from before a password change
    old = csrf_token_for(user.id, user.session_version)
    with db.begin() as s:
        fresh = actions.do_update_user(s, user=s.merge(user), changes={"password": "new-password"}, actor="t")
        client = _cookie_only(fresh)
    # when / then
    assert client.post("/api/tokens", json={"name": "x"}, headers={"X-CSRF-Token": old}).status_code == 403


@pytest.mark.parametrize(
    ("form_token", "cookie_token"),
    [("", ""), ("abc", ""), ("", "abc"), ("abc", "abd")],
    ids=["none", "no-cookie", "no-field", "mismatch"],
)
def test_the_login_form_needs_its_csrf_token(user: ConsoleUser, form_token: str, cookie_token: str) -> None:
    # given a login post whose double-submit token is missing or mismatched
    client = _client()
    if cookie_token:
        client.cookies.set(LOGIN_CSRF, cookie_token)
    data = {"username": user.username, "password": PASSWORD, "login_csrf": form_token}
    # when
    r = client.post("/login", data=data)
    # then it is refused, and the page hands out a fresh token so the retry works
    assert r.status_code == 403
    assert SESSION_COOKIE not in r.cookies
    fresh = r.cookies.get(LOGIN_CSRF)
    assert fresh and fresh in r.text
    retry = client.post("/login", data=data | {"login_csrf": fresh})
    assert retry.status_code == 303, retry.text


# --- how sessions end -------------------------------------------------------------------------


def test_a_password_change_ends_every_session(db: sessionmaker[Session], user: ConsoleUser) -> None:
    # given a signed-in session
    client = _cookie_only(user)
    assert client.get("/").status_code == 200
    # when the password changes (here from the CLI's action)
    with db.begin() as s:
        actions.do_update_user(s, user=s.merge(user), changes={"password": "new-password"}, actor="cli")
    # then the old cookie leads to the sign-in page
    r = client.get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_logout_clears_the_cookie_and_a_copy_of_it_stops_working(user: ConsoleUser) -> None:
    # given a signed-in browser and a copy of its cookie
    client = _client()
    _login(client, user.username, PASSWORD)
    stolen = client.cookies.get(SESSION_COOKIE)
    assert stolen and client.get("/").status_code == 200
    csrf = _csrf_of(client)
    # when the user signs out
    r = client.post("/logout", data={"csrf_token": csrf})
    # then the cookie is deleted, and the copy no longer signs anyone in
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert 'siyu_session=""' in r.headers["set-cookie"] or "max-age=0" in r.headers["set-cookie"].lower()
    thief = _client()
    thief.cookies.set(SESSION_COOKIE, stolen)
    assert thief.get("/").status_code == 303


def _csrf_of(client: TestClient) -> str:
    """The CSRF token the console page hands to htmx and forms."""
    html = client.get("/").text
    marker = 'name="csrf_token" value="'
    return html[html.index(marker) + len(marker) :].split('"', 1)[0]


def test_logout_needs_the_csrf_token(user: ConsoleUser) -> None:
    # a cross-site form cannot sign the user out
    client = _client()
    _login(client, user.username, PASSWORD)
    assert client.post("/logout").status_code == 403
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "/\t/evil.example",
        " //evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "",
    ],
)
def test_sign_in_never_redirects_off_site(user: ConsoleUser, next_url: str) -> None:
    # when
    r = _login(_client(), user.username, PASSWORD, next_url)
    # then
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/"


def test_sign_in_returns_to_the_page_asked_for(user: ConsoleUser) -> None:
    # given a signed-out visit to a page with a query
    client = _client()
    r = client.get("/account/tokens?x=1&y=2")
    assert r.status_code == 303
    login_url = r.headers["location"]
    assert login_url.startswith("/login?next=")
    # when the user signs in from there
    page = client.get(login_url)
    token = page.cookies.get(LOGIN_CSRF) or ""
    assert 'value="/account/tokens?x=1&amp;y=2"' in page.text
    data = {"username": user.username, "password": PASSWORD, "login_csrf": token, "next": "/account/tokens?x=1&y=2"}
    done = client.post("/login", data=data)
    # then they land back on it
    assert done.headers["location"] == "/account/tokens?x=1&y=2"


def test_the_login_page_drops_an_off_site_next() -> None:
    page = _client().get("/login", params={"next": "//evil.example"})
    assert 'name="next" value="/"' in page.text


def test_the_language_switch_stays_on_site() -> None:
    r = _client().get("/lang/en", headers={"referer": "https://evil.example//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/"


def _signed(payload: object, *, key: str | None = None, expired: bool = False) -> str:
    serializer = URLSafeTimedSerializer(key or get_settings().resolved_secret_key(), salt="siyu-session")
    if not expired:
        return serializer.dumps(payload)
    signed_at = time.time() - SESSION_MAX_AGE - 60
    with mock.patch("itsdangerous.timed.time.time", return_value=signed_at):
        return serializer.dumps(payload)


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(lambda u: _signed({"uid": u.id, "v": u.session_version}, expired=True), id="expired"),
        pytest.param(lambda u: "garbage.value.here", id="garbled"),
        pytest.param(lambda u: session_cookie_value(u)[:-3] + "AAA", id="tampered"),
        pytest.param(lambda u: _signed({"uid": u.id, "v": u.session_version}, key="other-key"), id="other-key"),
        pytest.param(lambda u: _signed([u.id]), id="not-a-dict"),
        pytest.param(lambda u: _signed({"uid": str(u.id), "v": u.session_version}), id="uid-not-int"),
        pytest.param(lambda u: _signed({"uid": u.id, "v": u.session_version + 1}), id="wrong-version"),
        pytest.param(lambda u: _signed({"uid": 10**9, "v": 1}), id="no-such-user"),
    ],
)
def test_bad_cookies_lead_to_the_sign_in_page(user: ConsoleUser, cookie: object) -> None:
    # given a cookie that is expired, garbled, forged or stale
    client = _client()
    client.cookies.set(SESSION_COOKIE, cookie(user))  # type: ignore[operator]
    # when a page and an API endpoint are asked for
    page = client.get("/")
    api = client.get("/api/tokens")
    # then the page redirects to sign in and the API answers 401
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert api.status_code == 401 and api.json()["detail"][0]["code"] == "unauthorized"


def test_a_session_is_good_until_it_expires(user: ConsoleUser) -> None:
    # a just-signed cookie works; the expired variant above does not
    client = _client()
    client.cookies.set(SESSION_COOKIE, session_cookie_value(user))
    assert client.get("/").status_code == 200
