"""Sign in, sign out, and the language switch."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from siyu.accounts.actions import do_authenticate
from siyu.accounts.auth import SESSION_COOKIE, SESSION_MAX_AGE, session_cookie_value
from siyu.console.deps import ConsoleDep
from siyu.console.i18n import LANG_COOKIE, LANGUAGES
from siyu.console.templating import render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "siyu_login_csrf"


def _safe_next(next_url: str) -> str:
    return next_url if next_url.startswith("/") and not next_url.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", {"next": _safe_next(next), "login_csrf": token, "error": ""})
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", max_age=3600)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    login_csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    if not login_csrf or login_csrf != request.cookies.get(LOGIN_CSRF_COOKIE):
        return render(request, "login.html", {"next": next, "login_csrf": login_csrf, "error": "csrf"}, status_code=403)
    try:
        user = do_authenticate(session, username=username, password=password)
    except DomainError as exc:
        session.commit()  # keep the failed-attempt count even though we answer with an error
        return render(
            request,
            "login.html",
            {"next": next, "login_csrf": login_csrf, "error": exc.code},
            status_code=exc.status_code,
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie_value(user),
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(console: ConsoleDep) -> Response:
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
