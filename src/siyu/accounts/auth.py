"""Who is asking: session cookies (console), bearer tokens (REST API), CSRF.

Session cookies are signed (itsdangerous), HttpOnly and SameSite=Lax, and carry the
user's session_version so a password change ends every session. Cookie-authenticated
requests that change something must carry the CSRF token (form field or X-CSRF-Token
header, which the console sets for htmx); bearer-token requests need none.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request, Response
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, actor_for
from siyu.accounts.actions import token_hash
from siyu.accounts.models import ApiToken, ConsoleUser
from siyu.core.clock import now_utc
from siyu.core.config import get_settings
from siyu.core.deps import get_session
from siyu.core.errors import DomainError, ErrorCode

SESSION_COOKIE = "siyu_session"
SESSION_MAX_AGE = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().resolved_secret_key(), salt="siyu-session")


def session_cookie_value(user: ConsoleUser) -> str:
    return _serializer().dumps({"uid": user.id, "v": user.session_version})


def set_session_cookie(response: Response, request: Request, user: ConsoleUser) -> None:
    """Sign the user in on this response. Secure whenever siyu is served over https, even behind a proxy."""
    secure = request.url.scheme == "https" or get_settings().public_base_url.startswith("https://")
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie_value(user),
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def csrf_token_for(user_id: int, session_version: int) -> str:
    key = get_settings().resolved_secret_key().encode()
    return hmac.new(key, f"csrf:{user_id}:{session_version}".encode(), hashlib.sha256).hexdigest()


def _user_from_cookie(session: Session, cookie: str | None) -> ConsoleUser | None:
    if not cookie:
        return None
    try:
        data = _serializer().loads(cookie, max_age=SESSION_MAX_AGE)
    except BadData:  # garbled, forged or expired: simply signed out
        return None
    uid = data.get("uid") if isinstance(data, dict) else None
    if not isinstance(uid, int):
        return None
    user = session.get(ConsoleUser, uid)
    if user is None or not user.is_active or user.session_version != data.get("v"):
        return None
    return user


def _user_from_bearer(session: Session, header: str) -> ConsoleUser | None:
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    token = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == token_hash(raw.strip()), ApiToken.revoked_at.is_(None))
    )
    if token is None:
        return None
    token.last_used_at = now_utc()
    user = session.get(ConsoleUser, token.user_id)
    return user if user is not None and user.is_active else None


async def _check_csrf(request: Request, user: ConsoleUser) -> None:
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = str((await request.form()).get("csrf_token", ""))
    if not sent or not hmac.compare_digest(sent, csrf_token_for(user.id, user.session_version)):
        raise DomainError(ErrorCode.CSRF, "missing or wrong CSRF token; reload the page")


async def optional_user(
    request: Request, session: Annotated[Session, Depends(get_session, scope="function")]
) -> ConsoleUser | None:
    header = request.headers.get("authorization")
    if header:
        return _user_from_bearer(session, header)
    user = _user_from_cookie(session, request.cookies.get(SESSION_COOKIE))
    if user is not None:
        await _check_csrf(request, user)
    return user


async def current_actor(
    session: Annotated[Session, Depends(get_session, scope="function")],
    user: Annotated[ConsoleUser | None, Depends(optional_user)],
) -> Actor:
    if user is None:
        raise DomainError(ErrorCode.UNAUTHORIZED, "sign in, or send 'Authorization: Bearer <API token>'")
    return actor_for(session, user)


ActorDep = Annotated[Actor, Depends(current_actor)]
