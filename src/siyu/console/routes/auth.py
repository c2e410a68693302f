"""Sign in, sign out, and the language switch."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from siyu.accounts.actions import do_authenticate, do_sign_out_everywhere
from siyu.accounts.auth import SESSION_COOKIE, set_session_cookie
from siyu.console.deps import ConsoleDep
from siyu.console.i18n import LANG_COOKIE, LANGUAGES
from siyu.console.templating import render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "siyu_login_csrf"


def _safe_next(next_url: str) -> str:
    """Only a path on this site: browsers read `//host`, `/\\host` and control characters as another site."""
    if not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
        return "/"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in next_url):
        return "/"
    parts = urlsplit(next_url)
    return next_url if not parts.scheme and not parts.netloc else "/"


def _login_form(request: Request, next_url: str, error: str = "", status_code: int = 200) -> Response:
    """The sign-in form with a fresh login-CSRF token (double-submit: cookie and hidden field)."""
    token = secrets.token_urlsafe(24)
    context = {"next": _safe_next(next_url), "login_csrf": token, "error": error}
    response = render(request, "login.html", context, status_code=status_code)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", max_age=3600)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    return _login_form(request, next)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    login_csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not login_csrf or not cookie or not hmac.compare_digest(login_csrf, cookie):
        return _login_form(request, next, "csrf", status_code=403)
    try:
        user = do_authenticate(session, username=username, password=password)
    except DomainError as exc:
        session.commit()  # keep the failed-attempt count even though we answer with an error
        return _login_form(request, next, exc.code, status_code=exc.status_code)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(response, request, user)
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(console: ConsoleDep, session: SessionDep) -> Response:
    """Ends the session for good: a copy of the cookie (stateless, signed) stops working too.

    That signs the user out on their other devices as well — the price of not storing sessions.
    """
    do_sign_out_everywhere(session, user=console.user)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/lang/{code}")
def switch_language(code: str, request: Request) -> Response:
    referer = urlsplit(request.headers.get("referer") or "/")
    back = _safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))
    response = RedirectResponse(back if code in LANGUAGES else "/", status_code=303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax")
    return response
