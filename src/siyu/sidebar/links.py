"""Signed tokens for the sidebar: demo links, the sidebar session, the OAuth state and CSRF.

A sidebar link (`/sidebar?t=…`) carries corp, employee userid and external_userid, signed with
the secret key (itsdangerous) and valid for minutes: whoever holds it acts as that employee,
so it must not outlive the moment it was made for. Opening it starts a sidebar session — a
separate cookie (`siyu_sidebar`, path /sidebar) that only the sidebar's own pages accept, so it
never opens the console.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from siyu.core.config import get_settings
from siyu.core.errors import DomainError, ErrorCode

LINK_MAX_AGE = 30 * 60
SESSION_MAX_AGE = 8 * 3600
OAUTH_STATE_MAX_AGE = 10 * 60
SESSION_COOKIE = "siyu_sidebar"


@dataclass(frozen=True, slots=True)
class SidebarLink:
    corp_id: int
    employee_userid: str
    external_userid: str


@dataclass(frozen=True, slots=True)
class SidebarSession:
    corp_id: int
    employee_id: int


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().resolved_secret_key(), salt=salt)


def _load(salt: str, token: str, max_age: int) -> dict[str, object]:
    try:
        data = _serializer(salt).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise DomainError(ErrorCode.UNAUTHORIZED, "this sidebar link has expired; make a new one") from exc
    except BadSignature as exc:
        raise DomainError(ErrorCode.UNAUTHORIZED, "this sidebar link is not valid") from exc
    if not isinstance(data, dict):
        raise DomainError(ErrorCode.UNAUTHORIZED, "this sidebar link is not valid")
    return data


def make_link_token(link: SidebarLink) -> str:
    return _serializer("siyu-sidebar-link").dumps([link.corp_id, link.employee_userid, link.external_userid])


def read_link_token(token: str, *, max_age: int = LINK_MAX_AGE) -> SidebarLink:
    try:
        corp_id, employee, customer = _serializer("siyu-sidebar-link").loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise DomainError(ErrorCode.UNAUTHORIZED, "this sidebar link has expired; make a new one") from exc
    except (BadSignature, ValueError, TypeError) as exc:
        raise DomainError(ErrorCode.UNAUTHORIZED, "this sidebar link is not valid") from exc
    return SidebarLink(int(corp_id), str(employee), str(customer))


def link_url(link: SidebarLink, base_url: str | None = None) -> str:
    base = (base_url or get_settings().public_base_url).rstrip("/")
    return f"{base}/sidebar?{urlencode({'t': make_link_token(link)})}"


def session_cookie_value(session: SidebarSession) -> str:
    return _serializer("siyu-sidebar-session").dumps({"c": session.corp_id, "e": session.employee_id})


def read_session_cookie(value: str | None) -> SidebarSession | None:
    if not value:
        return None
    try:
        data = _load("siyu-sidebar-session", value, SESSION_MAX_AGE)
        return SidebarSession(int(str(data["c"])), int(str(data["e"])))
    except (DomainError, KeyError, ValueError):
        return None


def csrf_token(session: SidebarSession) -> str:
    key = get_settings().resolved_secret_key().encode()
    message = f"sidebar-csrf:{session.corp_id}:{session.employee_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def check_csrf(session: SidebarSession, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(sent, csrf_token(session)):
        raise DomainError(ErrorCode.CSRF, "missing or wrong CSRF token; reload the sidebar")


def make_oauth_state(corp_id: int) -> str:
    """WeCom hands `state` back unchanged: signing it (with the corp) stops forged OAuth redirects."""
    return _serializer("siyu-sidebar-oauth").dumps({"c": corp_id})


def read_oauth_state(state: str) -> int:
    data = _load("siyu-sidebar-oauth", state, OAUTH_STATE_MAX_AGE)
    return int(str(data.get("c", 0)))
