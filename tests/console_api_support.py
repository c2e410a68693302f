"""Shared by the console/REST tests of dashboard, employees, tags, groups, settings, audit (no tests here).

Signed-in clients (bearer token or session cookie + CSRF) for a user of a given role, and small
builders for hand-made data (departments, employees, customers, follows, groups, tags).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from siyu.accounts.actions import do_create_api_token, do_create_user
from siyu.accounts.auth import SESSION_COOKIE, csrf_token_for, session_cookie_value
from siyu.accounts.models import ConsoleUser, Role
from siyu.app import create_app
from siyu.contacts.models import Customer, Department, Employee, Follow, FollowStatus
from siyu.groups.models import GroupChat, GroupMember
from siyu.tags.models import FollowTag, Tag, TagGroup

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


def make_user(
    db: sessionmaker[Session], corp_id: int, role: Role | str, *, employee_userid: str | None = None
) -> ConsoleUser:
    with db.begin() as s:
        user = do_create_user(
            s,
            corp_id=corp_id,
            username=f"{role}-{next(_seq)}",
            password=PASSWORD,
            role=Role(role),
            employee_userid=employee_userid,
        )
    return user


def api_client(db: sessionmaker[Session], corp_id: int, role: Role | str, **kwargs: Any) -> TestClient:
    """A client authenticated with a bearer API token (no CSRF needed)."""
    user = make_user(db, corp_id, role, **kwargs)
    with db.begin() as s:
        _, raw = do_create_api_token(s, user=s.merge(user), name="test")
    client = TestClient(create_app(configure=False))
    client.headers["Authorization"] = f"Bearer {raw}"
    return client


def console_client(db: sessionmaker[Session], corp_id: int, role: Role | str, **kwargs: Any) -> TestClient:
    """A client signed in with a session cookie; writes carry the CSRF header like htmx does."""
    user = make_user(db, corp_id, role, **kwargs)
    client = TestClient(create_app(configure=False), follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, session_cookie_value(user))
    client.headers["X-CSRF-Token"] = csrf_token_for(user.id, user.session_version)
    return client


def add(db: sessionmaker[Session], *rows: Any) -> list[int]:
    """Insert rows; returns their ids (or the first primary key column)."""
    with db.begin() as s:
        s.add_all(rows)
        s.flush()
        return [getattr(r, "id", None) or 0 for r in rows]


def department(
    corp_id: int, wecom_id: int, name: str, *, parent: int = 0, leaders: list[str] | None = None
) -> Department:
    return Department(corp_id=corp_id, wecom_id=wecom_id, name=name, parent_wecom_id=parent, leaders=leaders or [])


def employee(
    corp_id: int, userid: str, name: str = "", *, departments: list[int] | None = None, status: str = "active"
) -> Employee:
    return Employee(
        corp_id=corp_id, userid=userid, name=name or userid, department_ids=departments or [1], status=status
    )


def customer(corp_id: int, name: str = "") -> Customer:
    n = next(_seq)
    return Customer(corp_id=corp_id, external_userid=f"wm{n:08d}", name=name or f"客户{n}")


def follow(
    corp_id: int,
    employee_id: int,
    customer_id: int,
    *,
    created_at: datetime | None = None,
    status: str = FollowStatus.ACTIVE,
    ended_at: datetime | None = None,
) -> Follow:
    return Follow(
        corp_id=corp_id,
        employee_id=employee_id,
        customer_id=customer_id,
        created_at=created_at,
        status=status,
        ended_at=ended_at,
    )


def group_chat(corp_id: int, owner: str, name: str = "", **kwargs: Any) -> GroupChat:
    n = next(_seq)
    return GroupChat(corp_id=corp_id, chat_id=f"wr{n:08d}", name=name or f"群{n}", owner_userid=owner, **kwargs)


def group_member(corp_id: int, chat_pk: int, userid: str, member_type: int, **kwargs: Any) -> GroupMember:
    return GroupMember(corp_id=corp_id, group_chat_id=chat_pk, userid=userid, member_type=member_type, **kwargs)


def tag_group(corp_id: int, name: str, wecom_id: str = "", order: int = 0) -> TagGroup:
    return TagGroup(corp_id=corp_id, wecom_id=wecom_id or f"etG{next(_seq)}", name=name, order=order)


def tag(corp_id: int, group_id: int, name: str, wecom_id: str = "", order: int = 0) -> Tag:
    return Tag(corp_id=corp_id, group_id=group_id, wecom_id=wecom_id or f"etT{next(_seq)}", name=name, order=order)


def follow_tag(corp_id: int, follow_id: int, tag_id: int) -> FollowTag:
    return FollowTag(corp_id=corp_id, follow_id=follow_id, tag_id=tag_id)
