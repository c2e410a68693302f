"""Writes for console users: create, change, sign in (with throttling), sign out, API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.accounts.models import ApiToken, ConsoleUser, Role
from siyu.contacts.models import Employee
from siyu.core import audit
from siyu.core.clock import now_utc
from siyu.core.errors import DomainError, ErrorCode

_hasher = PasswordHasher()
MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("siyu-no-such-user")


def do_create_user(
    session: Session,
    *,
    corp_id: int,
    username: str,
    password: str,
    role: Role,
    display_name: str = "",
    employee_userid: str | None = None,
    employee_id: int | None = None,
    actor: str = "system",
) -> ConsoleUser:
    """Staff users must be linked to the employee they are (their data scope comes from it).

    The employee is named by WeCom userid (CLI) or by siyu id (console, REST); either must be in the corp.
    """
    username = username.strip()
    if not username or len(username) > 64:
        raise DomainError(ErrorCode.INVALID, "username must be 1–64 characters")
    _check_password(password)
    if session.scalar(select(ConsoleUser.id).where(ConsoleUser.username == username)) is not None:
        raise DomainError(ErrorCode.CONFLICT, f"user {username} already exists")
    if employee_id is not None:
        employee_id = _employee_in_corp(session, corp_id, employee_id)
    else:
        employee_id = _employee_id(session, corp_id, employee_userid)
    _check_staff_link(role, employee_id)
    user = ConsoleUser(
        corp_id=corp_id,
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        employee_id=employee_id,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        corp_id=corp_id,
        actor=actor,
        action="user.create",
        object_type="user",
        object_id=user.id,
        detail={"username": username, "role": str(role)},
    )
    return user


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise DomainError(ErrorCode.INVALID, f"password must be at least {MIN_PASSWORD} characters")


def _check_staff_link(role: Role, employee_id: int | None) -> None:
    if role == Role.STAFF and employee_id is None:
        raise DomainError(ErrorCode.INVALID, "a staff user must be linked to an employee (--employee USERID)")


def _employee_in_corp(session: Session, corp_id: int, employee_id: int) -> int:
    found = session.scalar(select(Employee.id).where(Employee.corp_id == corp_id, Employee.id == employee_id))
    if found is None:
        raise DomainError(ErrorCode.INVALID, f"no employee {employee_id} in this corp")
    return found


def do_update_user(
    session: Session, *, user: ConsoleUser, changes: dict[str, Any], actor: str, actor_user_id: int | None = None
) -> ConsoleUser:
    """Apply a partial update (keys: display_name, role, employee_id, is_active, password).

    A new password or a deactivation bumps session_version, which ends every session of the user.
    Admins cannot deactivate or demote themselves, so a corp never locks itself out by accident.
    """
    changes = {k: v for k, v in changes.items() if v is not None or k == "employee_id"}
    if user.id == actor_user_id and (changes.get("is_active") is False or changes.get("role", user.role) != user.role):
        raise DomainError(ErrorCode.INVALID, "you cannot deactivate yourself or change your own role")
    if "password" in changes:
        _check_password(changes["password"])
    if "employee_id" in changes and changes["employee_id"] is not None:
        changes["employee_id"] = _employee_in_corp(session, user.corp_id, changes["employee_id"])
    role = Role(changes.get("role", user.role))
    _check_staff_link(role, changes.get("employee_id", user.employee_id))
    for field in ("display_name", "role", "employee_id", "is_active"):
        if field in changes:
            setattr(user, field, changes[field])
    if "password" in changes:
        user.password_hash = hash_password(changes["password"])
        user.failed_logins, user.locked_until = 0, None
    if "password" in changes or changes.get("is_active") is False:
        user.session_version += 1
    session.flush()
    detail = {k: ("***" if k == "password" else v) for k, v in changes.items()}
    audit.record(
        session,
        corp_id=user.corp_id,
        actor=actor,
        action=_update_action(changes),
        object_type="user",
        object_id=user.id,
        detail=detail,
    )
    return user


def _update_action(changes: dict[str, Any]) -> str:
    """Name the audit row by the change that matters most to a reader of the log."""
    if changes.get("is_active") is False:
        return "user.deactivate"
    if changes.get("is_active") is True:
        return "user.reactivate"
    if set(changes) == {"password"}:
        return "user.set_password"
    return "user.update"


def do_sign_out_everywhere(session: Session, *, user: ConsoleUser) -> None:
    """Session cookies are stateless, so only a new session_version stops a copied cookie from working."""
    user.session_version += 1
    session.flush()


def _employee_id(session: Session, corp_id: int, userid: str | None) -> int | None:
    if not userid:
        return None
    found = session.scalar(select(Employee.id).where(Employee.corp_id == corp_id, Employee.userid == userid))
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no employee {userid} in this corp (run `siyu sync` first?)")
    return found


def do_authenticate(session: Session, *, username: str, password: str) -> ConsoleUser:
    """Check a password. Five failures lock the account for 15 minutes; the error never says which part was wrong."""
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.username == username.strip()))
    if user is None:
        _verify(_dummy_hash(), password)  # as slow as a real check, so timing does not reveal which usernames exist
        raise DomainError(ErrorCode.UNAUTHORIZED, "wrong username or password")
    now = now_utc()
    if user.locked_until is not None and user.locked_until > now:
        raise DomainError(ErrorCode.THROTTLED, "too many failed sign-ins; try again later")
    if not _verify(user.password_hash, password) or not user.is_active:
        _note_failure(session, user)
        raise DomainError(ErrorCode.UNAUTHORIZED, "wrong username or password")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    session.flush()
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _note_failure(session: Session, user: ConsoleUser) -> None:
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.locked_until = now_utc() + timedelta(minutes=LOCK_MINUTES)
        user.failed_logins = 0
        audit.record(
            session, corp_id=user.corp_id, actor="system", action="user.locked", object_type="user", object_id=user.id
        )
    session.flush()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def do_create_api_token(session: Session, *, user: ConsoleUser, name: str) -> tuple[ApiToken, str]:
    """Returns the row and the token itself, which is shown once and never stored."""
    raw = "siyu_" + secrets.token_urlsafe(32)
    row = ApiToken(corp_id=user.corp_id, user_id=user.id, name=name[:64], prefix=raw[:12], token_hash=token_hash(raw))
    session.add(row)
    session.flush()
    audit.record(
        session,
        corp_id=user.corp_id,
        actor=f"user:{user.id}",
        action="api_token.create",
        object_type="api_token",
        object_id=row.id,
        detail={"name": name},
    )
    return row, raw


def do_revoke_api_token(session: Session, *, token: ApiToken, actor: str) -> None:
    token.revoked_at = now_utc()
    session.flush()
    audit.record(
        session,
        corp_id=token.corp_id,
        actor=actor,
        action="api_token.revoke",
        object_type="api_token",
        object_id=token.id,
    )
