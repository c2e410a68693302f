"""The authorization matrix: every role × every object type × own / other department / other corp, read and write.

One world (two corps; departments, one led by a staff member; employees; customers followed by
different employees; tags; groups; a user per role with an API token) and one table. Each row is
(method, path, object, expected status per role); adding an endpoint is adding a row. 2xx = allowed,
403 = the role may not do this to the type at all, 404 = out of scope or another corp's, answered
exactly like a missing id so ids cannot be probed. `test_every_api_endpoint_is_in_the_matrix`
fails for an /api endpoint without a row, so new endpoints cannot skip the matrix.

The world (objects named by whose they are):
  corp A  departments 1 总部 ┬ 2 销售一部 (led by `leader`) ─ 4 华东组
                             ├ 3 销售二部
                             └ 5 客服部
          employees staffer (dept 3), leader (dept 2), mate (dept 4), outsider (dept 5)
          customers C_staffer, C_leader, C_mate, C_outsider — each followed by that employee only
          groups    G_staffer, G_mate, G_outsider — owned by that employee
          tags      TG_a / T_a (on every follow)
  corp B  employee E_b, customer C_b, group G_b, tags TG_b / T_b, admin U_b with token K_b
Roles: admin, operator, compliance (whole corp A); staff (= `staffer`: sees C_staffer only);
leader (a staff user linked to `leader`: their departments 2 and 4, so C_leader and C_mate).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from huey.storage import MemoryStorage
from pyroaring import BitMap
from sqlalchemy.orm import Session, sessionmaker

from siyu.accounts.actions import do_create_api_token, hash_password
from siyu.accounts.auth import SESSION_COOKIE, csrf_token_for, session_cookie_value
from siyu.accounts.models import ConsoleUser
from siyu.acquisition.models import Channel, ChannelGroup, GroupCode, Material, WelcomeTemplate
from siyu.app import create_app
from siyu.broadcasts.models import Broadcast, BroadcastChunk
from siyu.compliance.models import ReachPause
from siyu.contacts.models import CustomerExport
from siyu.core.tasks import huey
from siyu.corp.models import AuditLog
from siyu.groups.models import GroupChat
from siyu.segments.models import Segment, SegmentSnapshot
from tests.console_api_support import (
    add,
    customer,
    department,
    employee,
    follow,
    follow_tag,
    group_chat,
    tag,
    tag_group,
)
from tests.factories import make_corp

ROLES = ("admin", "operator", "staff", "leader", "compliance")
_HASH = hash_password("matrix-password")  # hashed once: argon2 is slow on purpose

# Shorthands for the expected statuses, in ROLES order.
ALL = 200
NOBODY_404 = (404, 404, 404, 404, 404)


def every(status: int) -> tuple[int, ...]:
    return (status,) * len(ROLES)


@dataclass
class World:
    ids: dict[str, int] = field(default_factory=dict)
    chat_ids: dict[str, str] = field(default_factory=dict)  # corp suffix → a group's WeCom chat_id
    api: dict[str, TestClient] = field(default_factory=dict)
    page: dict[str, TestClient] = field(default_factory=dict)

    def id_of(self, key: str, role: str) -> int:
        """`self_user` / `self_token` / `self_export` are the acting role's own; anything else is a named object."""
        own = {"self_user": "U", "self_token": "K", "self_export": "X"}
        return self.ids[f"{own[key]}_{role}"] if key in own else self.ids[key]


# --- the world --------------------------------------------------------------------------------


def _user(db: sessionmaker[Session], corp_id: int, name: str, role: str, employee_id: int | None) -> ConsoleUser:
    with db.begin() as s:
        user = ConsoleUser(
            corp_id=corp_id, username=name, display_name=name, password_hash=_HASH, role=role, employee_id=employee_id
        )
        s.add(user)
    return user


@cache
def _app() -> FastAPI:
    return create_app(configure=False)


def _clients(world: World, role: str, user: ConsoleUser, raw_token: str) -> None:
    app = _app()
    world.api[role] = TestClient(app, headers={"Authorization": f"Bearer {raw_token}"}, follow_redirects=False)
    page = TestClient(app, follow_redirects=False)
    page.cookies.set(SESSION_COOKIE, session_cookie_value(user))
    page.headers["X-CSRF-Token"] = csrf_token_for(user.id, user.session_version)
    world.page[role] = page


def _token(db: sessionmaker[Session], user: ConsoleUser) -> tuple[int, str]:
    with db.begin() as s:
        row, raw = do_create_api_token(s, user=s.merge(user), name="matrix")
        return row.id, raw


def _corp_a(db: sessionmaker[Session], w: World) -> int:
    a = make_corp(db, wecom_corpid="wwcorpA", name="甲公司").corp_id
    add(
        db,
        department(a, 1, "总部"),
        department(a, 2, "销售一部", parent=1, leaders=["leader"]),
        department(a, 3, "销售二部", parent=1),
        department(a, 4, "华东组", parent=2),
        department(a, 5, "客服部", parent=1),
    )
    homes = {"staffer": 3, "leader": 2, "mate": 4, "outsider": 5}
    emp_ids = add(db, *(employee(a, who, departments=[d]) for who, d in homes.items()))
    w.ids |= {f"E_{who}": i for who, i in zip(homes, emp_ids, strict=True)}
    cust_ids = add(db, *(customer(a, f"客户-{who}") for who in homes))
    w.ids |= {f"C_{who}": i for who, i in zip(homes, cust_ids, strict=True)}
    follow_ids = add(db, *(follow(a, w.ids[f"E_{who}"], w.ids[f"C_{who}"]) for who in homes))
    w.ids |= {f"F_{who}": i for who, i in zip(homes, follow_ids, strict=True)}
    [w.ids["TG_a"]] = add(db, tag_group(a, "客户等级"))
    [w.ids["T_a"]] = add(db, tag(a, w.ids["TG_a"], "重要"))
    add(db, *(follow_tag(a, f, w.ids["T_a"]) for f in follow_ids))
    [w.ids["C_shared"]] = add(db, customer(a, "共同客户"))
    w.ids["F_shared_staffer"], w.ids["F_shared_outsider"] = add(
        db, follow(a, w.ids["E_staffer"], w.ids["C_shared"]), follow(a, w.ids["E_outsider"], w.ids["C_shared"])
    )
    [w.ids["AU_a"]] = add(db, AuditLog(corp_id=a, actor="test", action="matrix.a", object_type="test"))
    owners = ("staffer", "mate", "outsider")
    group_ids = add(db, *(group_chat(a, who, f"群-{who}") for who in owners))
    w.ids |= {f"G_{who}": i for who, i in zip(owners, group_ids, strict=True)}
    _acquisition(db, w, a, "a", owner_userid="staffer")
    _broadcasts(db, w, a, "a", sender_id=w.ids["E_staffer"])
    [w.ids["P_a"]] = add(db, ReachPause(corp_id=a, scope="employee", target_id=w.ids["E_staffer"], reason="matrix"))
    w.ids["corp_a"] = a
    return a


def _corp_b(db: sessionmaker[Session], w: World) -> None:
    b = make_corp(db, wecom_corpid="wwcorpB", name="乙公司").corp_id
    add(db, department(b, 1, "总部"))
    [w.ids["E_b"]] = add(db, employee(b, "staffer", departments=[1]))  # same userid as in A, on purpose
    [w.ids["C_b"]] = add(db, customer(b, "乙客户"))
    [w.ids["F_b"]] = add(db, follow(b, w.ids["E_b"], w.ids["C_b"]))
    [w.ids["TG_b"]] = add(db, tag_group(b, "乙标签组"))
    [w.ids["T_b"]] = add(db, tag(b, w.ids["TG_b"], "乙标签"))
    [w.ids["G_b"]] = add(db, group_chat(b, "staffer", "乙群"))
    [w.ids["AU_b"]] = add(db, AuditLog(corp_id=b, actor="test", action="matrix.b", object_type="test"))
    user = _user(db, b, "b-admin", "admin", None)
    w.ids["U_b"] = user.id
    w.ids["K_b"], _ = _token(db, user)
    [w.ids["X_b"]] = add(db, CustomerExport(corp_id=b, user_id=user.id, filters={}))
    _acquisition(db, w, b, "b", owner_userid="staffer")
    _broadcasts(db, w, b, "b", sender_id=w.ids["E_b"])
    [w.ids["P_b"]] = add(db, ReachPause(corp_id=b, scope="employee", target_id=w.ids["E_b"], reason="matrix"))
    w.ids["corp_b"] = b


def _acquisition(db: sessionmaker[Session], w: World, corp_id: int, suffix: str, *, owner_userid: str) -> None:
    """A channel group, a channel code, a group code, an image material and the corp's default welcome."""
    [chat] = add(db, group_chat(corp_id, owner_userid, f"群码群-{suffix}"))
    with db() as s:
        chat_id = s.get(GroupChat, chat).chat_id  # type: ignore[union-attr]
    w.chat_ids[suffix] = chat_id
    [w.ids[f"CHG_{suffix}"]] = add(db, ChannelGroup(corp_id=corp_id, name=f"门店-{suffix}"))
    [w.ids[f"CH_{suffix}"]] = add(
        db,
        Channel(
            corp_id=corp_id,
            name=f"渠道-{suffix}",
            state=f"ch_matrix_{suffix}",
            userids=[owner_userid],
            live_userids=[owner_userid],
            config_id=f"cfg-{suffix}",
            qr_url=f"http://emulator.invalid/scan/contact/cfg-{suffix}",
        ),
    )
    [w.ids[f"GC_{suffix}"]] = add(
        db,
        GroupCode(
            corp_id=corp_id,
            name=f"群码-{suffix}",
            state=f"gc_matrix_{suffix}",
            chat_ids=[chat_id],
            room_base_name="群",
            config_id=f"jw-{suffix}",
            qr_url=f"http://emulator.invalid/scan/group/jw-{suffix}",
        ),
    )
    [w.ids[f"M_{suffix}"]] = add(
        db, Material(corp_id=corp_id, kind="image", title="图", image_data=b"\x89PNG-matrix", image_type="image/png")
    )
    [w.ids[f"WT_{suffix}"]] = add(db, WelcomeTemplate(corp_id=corp_id, scope="corp", scope_key="", text="欢迎"))


def _broadcasts(db: sessionmaker[Session], w: World, corp_id: int, suffix: str, *, sender_id: int) -> None:
    """A planned broadcast (BC_) and a sent one whose only task is unconfirmed (BCS_)."""
    content = {"text": "会员日", "attachments": []}
    [w.ids[f"BC_{suffix}"]] = add(
        db, Broadcast(corp_id=corp_id, name=f"计划-{suffix}", status="planned", content=content)
    )
    [w.ids[f"BCS_{suffix}"]] = add(
        db, Broadcast(corp_id=corp_id, name=f"已发-{suffix}", status="sent", content=content)
    )
    add(
        db,
        BroadcastChunk(
            corp_id=corp_id,
            broadcast_id=w.ids[f"BCS_{suffix}"],
            employee_id=sender_id,
            chunk_no=0,
            size=1,
            status="sent",
            msgid=f"msg-matrix-{suffix}",
            confirm_status="unconfirmed",
        ),
    )


def _segments(db: sessionmaker[Session], w: World) -> None:
    """A saved segment and a snapshot in each corp (SEG_a / SEG_b, SN_a / SN_b)."""
    for suffix in ("a", "b"):
        corp_id = w.ids[f"corp_{suffix}"]
        [w.ids[f"SEG_{suffix}"]] = add(db, Segment(corp_id=corp_id, name=f"分群-{suffix}", rule=SEGMENT_RULE["rule"]))
        snapshot = SegmentSnapshot(
            corp_id=corp_id, segment_id=w.ids[f"SEG_{suffix}"], rule=SEGMENT_RULE["rule"], members=BitMap().serialize()
        )
        [w.ids[f"SN_{suffix}"]] = add(db, snapshot)


def build_world(db: sessionmaker[Session]) -> World:
    w = World()
    a = _corp_a(db, w)
    _corp_b(db, w)
    _segments(db, w)
    links = {"staff": "E_staffer", "leader": "E_leader"}
    for role in ROLES:
        db_role = "staff" if role == "leader" else role
        user = _user(db, a, f"a-{role}", db_role, w.ids.get(links.get(role, ""), None))
        w.ids[f"U_{role}"] = user.id
        w.ids[f"K_{role}"], raw = _token(db, user)
        [w.ids[f"X_{role}"]] = add(db, CustomerExport(corp_id=a, user_id=user.id, filters={}))
        _clients(w, role, user, raw)
    other = _user(db, a, "a-other", "operator", None)  # someone else in the same corp, for their token and export
    w.ids["U_other"] = other.id
    w.ids["K_other"], _ = _token(db, other)
    [w.ids["X_other"]] = add(db, CustomerExport(corp_id=a, user_id=other.id, filters={}))
    _broadcast_drafts(db, w)
    return w


def _broadcast_drafts(db: sessionmaker[Session], w: World) -> None:
    """A draft in each corp (BD_) and a personal broadcast the staff user started (BP_staff)."""
    content = {"text": "会员日", "attachments": []}
    for suffix in ("a", "b"):
        [w.ids[f"BD_{suffix}"]] = add(
            db,
            Broadcast(
                corp_id=w.ids[f"corp_{suffix}"],
                name=f"草稿-{suffix}",
                audience={"customer_ids": [w.ids[f"C_{'staffer' if suffix == 'a' else 'b'}"]]},
                content=content,
            ),
        )
    [w.ids["BP_staff"]] = add(
        db,
        Broadcast(
            corp_id=w.ids["corp_a"],
            kind="personal",
            name="我的群发",
            audience={"customer_ids": [w.ids["C_staffer"]]},
            content=content,
            sender_ids=[w.ids["E_staffer"]],
            created_by=f"user:{w.ids['U_staff']}:a-staff",
        ),
    )


@pytest.fixture
def world(db: sessionmaker[Session]) -> Iterator[World]:
    # WeCom writes are enqueued, never sent: the matrix is about who may, not about WeCom.
    huey.immediate = False
    huey.storage = MemoryStorage(name="matrix")
    yield build_world(db)
    huey.storage = MemoryStorage(name="matrix")


# --- the table --------------------------------------------------------------------------------

Body = dict[str, Any] | Callable[[World, str], dict[str, Any]] | None


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # {id} (and {id2}) = the objects' ids
    obj: str  # a World key, or "-" for none
    expect: tuple[int, ...]  # one status per role, in ROLES order
    body: Body = None
    via: str = "api"  # "api" (bearer token), "form" (bearer token, a multipart form) or "page" (console cookie)


def _new_user(_w: World, role: str) -> dict[str, Any]:
    return {"username": f"new-by-{role}", "password": "long-enough", "role": "operator"}


CUSTOMERS = "C_staffer", "C_leader", "C_mate", "C_outsider", "C_b"
# Who sees each customer (and its employee, follows, groups), in ROLES order.
SEES = {
    "staffer": (200, 200, 200, 404, 200),
    "leader": (200, 200, 404, 200, 200),
    "mate": (200, 200, 404, 200, 200),
    "outsider": (200, 200, 404, 404, 200),
    "shared": (200, 200, 200, 404, 200),  # followed by staffer and outsider
    "b": NOBODY_404,
}


def write_of(read: tuple[int, ...], ok: int = 200) -> tuple[int, ...]:
    """A customer write: what the role could read it may change (ok), but compliance changes nothing (403)."""
    statuses = tuple(ok if st == 200 else st for st in read)
    return (*statuses[:-1], 403)


# (customer, follow) → expected for PUT …/follows/{id2}/tags
FOLLOW_WRITES = {
    "C_staffer,F_staffer": write_of(SEES["staffer"]),
    "C_leader,F_leader": write_of(SEES["leader"]),
    "C_mate,F_mate": write_of(SEES["mate"]),
    "C_outsider,F_outsider": write_of(SEES["outsider"]),
    "C_shared,F_shared_staffer": write_of(SEES["shared"]),
    # staff see this customer, but not the other employee's follow of it
    "C_shared,F_shared_outsider": write_of(SEES["outsider"]),
    # a follow of another customer, named under a customer the role does see
    "C_staffer,F_mate": write_of(NOBODY_404),
    "C_b,F_b": write_of(NOBODY_404),
}
ADMIN_ONLY = (200, 403, 403, 403, 403)
ADMIN_OPERATOR = (200, 200, 403, 403, 403)
REDIRECT_ADMIN = (303, 403, 403, 403, 403)  # console forms answer a done write with a redirect


def _per_customer(method: str, path: str, via: str = "api") -> list[Row]:
    return [Row(method, path, f"C_{who}", SEES[who], via=via) for who in SEES]


def _per_group(path: str, via: str = "api") -> list[Row]:
    return [Row("GET", path, f"G_{who}", SEES[who], via=via) for who in ("staffer", "mate", "outsider", "b")]


ADMIN_COMPLIANCE = (200, 403, 403, 403, 200)
WRITE_OTHER_CORP = (
    404,
    404,
    403,
    403,
    403,
)  # writers get not-found for another corp's object; others are refused first
CHANNEL_READS = ("/api/channels/{id}", "/api/channels/{id}/qr.png", "/api/channels/{id}/qr.svg")
GROUP_CODE_READS = ("/api/group-codes/{id}", "/api/group-codes/{id}/qr.png", "/api/group-codes/{id}/qr.svg")
SEGMENT_RULE = {"rule": {"version": 1, "rule": {"gender": [1]}}}
SEGMENT_READ = (200, 200, 403, 403, 200)  # admin, operator and compliance; staff never
SEGMENT_OTHER_CORP = (404, 404, 403, 403, 404)
SEGMENT_READS = ("/api/segments/{id}", "/api/segments/{id}/snapshots", "/api/segments/{id}/export.csv")
SNAPSHOT_READS = (
    "/api/segment-snapshots/{id}",
    "/api/segment-snapshots/{id}/members",
    "/api/segment-snapshots/{id}/export.csv",
)
ACQUISITION_PAGES = ("/channels", "/group-codes", "/welcome", "/materials", "/funnels")
COMPLIANCE_READ = (200, 200, 403, 403, 200)  # admin, operator, compliance
POLICY = {
    "platform_cap": "days_in_month",
    "corp_caps": [{"count": 2, "days": 7}],
    "quiet_start": "21:00",
    "quiet_end": "08:00",
    "sensitive_words": [],
    "link_allowlist": [],
    "thresholds": {
        "warn_per_10k": 5,
        "pause_per_10k": 20,
        "min_messages": 50,
        "window_days": 7,
        "delete_within_hours": 48,
    },
    "moments_eligible": True,
}


BROADCAST_READS = ("/api/broadcasts/{id}", "/api/broadcasts/{id}/plan", "/api/broadcasts/{id}/recipients")
BROADCAST_READ = (200, 200, 404, 404, 200)
BROADCAST_WRITE = (200, 200, 404, 404, 403)
BROADCAST_WRITE_OTHER_CORP = (404, 404, 404, 404, 403)
OWN_PERSONAL_READ = (200, 200, 200, 404, 200)  # the staff user started it; the leader did not
OWN_PERSONAL_WRITE = (200, 200, 200, 404, 403)


def _broadcast_body(w: World, kind: str, role: str) -> dict[str, Any]:
    """A draft to C_staffer; a personal one from the acting staff member (the leader: to their own customer)."""
    who = "leader" if role == "leader" else "staffer"
    body: dict[str, Any] = {
        "kind": kind,
        "name": "新群发",
        "audience": {"customer_ids": [w.ids[f"C_{who}"]]},
        "content": {"text": "会员日"},
    }
    if kind == "personal":
        body["sender_ids"] = [w.ids[f"E_{who}"]]
    return body


def _group_code_body(w: World, suffix: str) -> dict[str, Any]:
    return {"name": "新群码", "chat_ids": [w.chat_ids[suffix]], "room_base_name": "新群"}


ROWS: list[Row] = [
    # customers and follows (their tags) — scoped by whom the role's employees follow
    Row("GET", "/api/customers", "-", every(200)),
    *_per_customer("GET", "/api/customers/{id}"),
    *_per_customer("GET", "/api/customers/{id}/timeline"),
    *(
        Row("PUT", "/api/customers/{id}/follows/{id2}/tags", pair, expect, {"tag_ids": []})
        for pair, expect in FOLLOW_WRITES.items()
    ),
    # customer exports — anyone may export their scope; only the exporter sees the export
    Row("POST", "/api/customers/exports", "-", every(202), {}),
    Row("GET", "/api/customers/exports/{id}", "self_export", every(200)),
    Row("GET", "/api/customers/exports/{id}", "X_other", NOBODY_404),
    Row("GET", "/api/customers/exports/{id}", "X_b", NOBODY_404),
    Row("GET", "/api/customers/exports/{id}/download", "self_export", every(409)),  # allowed, just not ready
    Row("GET", "/api/customers/exports/{id}/download", "X_other", NOBODY_404),
    Row("GET", "/api/customers/exports/{id}/download", "X_b", NOBODY_404),
    # group chats — staff see the groups their scope's employees own
    Row("GET", "/api/groups", "-", every(200)),
    *_per_group("/api/groups/{id}"),
    # settings — admin and operator read and test, admin changes and reveals secrets
    Row("GET", "/api/settings/connection", "-", ADMIN_OPERATOR),
    Row("PATCH", "/api/settings/connection", "-", ADMIN_ONLY, {"agent_id": "1000002"}),
    Row("POST", "/api/settings/callback-secrets", "-", ADMIN_ONLY),
    Row("POST", "/api/settings/test-connection", "-", ADMIN_OPERATOR),
    Row("GET", "/api/settings/sync-progress", "-", ADMIN_OPERATOR),
    # the audit log — admin and compliance
    Row("GET", "/api/audit", "-", ADMIN_COMPLIANCE),
    # users — admins only, their own corp only
    Row("GET", "/api/users", "-", ADMIN_ONLY),
    Row("POST", "/api/users", "-", (201, 403, 403, 403, 403), _new_user),
    Row("GET", "/api/users/{id}", "U_staff", ADMIN_ONLY),
    Row("GET", "/api/users/{id}", "U_b", (404, 403, 403, 403, 403)),
    Row("PATCH", "/api/users/{id}", "U_other", ADMIN_ONLY, {"display_name": "改名"}),
    Row("PATCH", "/api/users/{id}", "self_user", ADMIN_ONLY, {"display_name": "改名"}),
    Row("PATCH", "/api/users/{id}", "U_b", (404, 403, 403, 403, 403), {"is_active": False}),
    # API tokens — everyone their own, nobody anyone else's
    Row("GET", "/api/tokens", "-", every(200)),
    Row("POST", "/api/tokens", "-", every(201), {"name": "more"}),
    Row("DELETE", "/api/tokens/{id}", "self_token", every(204)),
    Row("DELETE", "/api/tokens/{id}", "K_other", NOBODY_404),
    Row("DELETE", "/api/tokens/{id}", "K_b", NOBODY_404),
    # corp settings and sync — admin and operator read, admin changes, operator may sync
    Row("GET", "/api/corps", "-", ADMIN_OPERATOR),
    Row("GET", "/api/corps/{id}", "corp_a", ADMIN_OPERATOR),
    Row("GET", "/api/corps/{id}", "corp_b", (404, 404, 403, 403, 403)),
    Row("POST", "/api/corps/{id}/sync", "corp_a", (202, 202, 403, 403, 403), {}),
    Row("POST", "/api/corps/{id}/sync", "corp_b", (404, 404, 403, 403, 403), {}),
    Row("GET", "/api/corps/{id}/sync-runs", "corp_a", ADMIN_OPERATOR),
    Row("GET", "/api/corps/{id}/sync-runs", "corp_b", (404, 404, 403, 403, 403)),
    Row("GET", "/api/corps/{id}/callbacks", "corp_a", ADMIN_OPERATOR),
    Row("GET", "/api/corps/{id}/callbacks", "corp_b", (404, 404, 403, 403, 403)),
    # employees and departments — everyone reads (scoped lists are checked below)
    Row("GET", "/api/employees", "-", every(200)),
    Row("GET", "/api/departments", "-", every(200)),
    # tag groups and tags — everyone reads their corp's, admin and operator write
    Row("GET", "/api/tag-groups", "-", every(200)),
    Row("GET", "/api/tags", "-", every(200)),
    Row("GET", "/api/tag-groups/{id}", "TG_a", every(200)),
    Row("GET", "/api/tag-groups/{id}", "TG_b", NOBODY_404),
    Row("GET", "/api/tags/{id}", "T_a", every(200)),
    Row("GET", "/api/tags/{id}", "T_b", NOBODY_404),
    Row("POST", "/api/tag-groups", "-", (201, 201, 403, 403, 403), {"name": "新组", "tags": [{"name": "新标签"}]}),
    Row("PATCH", "/api/tag-groups/{id}", "TG_a", ADMIN_OPERATOR, {"name": "改名组"}),
    Row("PATCH", "/api/tag-groups/{id}", "TG_b", (404, 404, 403, 403, 403), {"name": "改名组"}),
    Row("DELETE", "/api/tag-groups/{id}", "TG_a", (202, 202, 403, 403, 403)),
    Row("DELETE", "/api/tag-groups/{id}", "TG_b", (404, 404, 403, 403, 403)),
    Row("POST", "/api/tag-groups/{id}/tags", "TG_a", (201, 201, 403, 403, 403), {"name": "又一个"}),
    Row("POST", "/api/tag-groups/{id}/tags", "TG_b", (404, 404, 403, 403, 403), {"name": "又一个"}),
    Row("PATCH", "/api/tags/{id}", "T_a", ADMIN_OPERATOR, {"name": "改名"}),
    Row("PATCH", "/api/tags/{id}", "T_b", (404, 404, 403, 403, 403), {"name": "改名"}),
    Row("DELETE", "/api/tags/{id}", "T_a", (202, 202, 403, 403, 403)),
    Row("DELETE", "/api/tags/{id}", "T_b", (404, 404, 403, 403, 403)),
    # dashboard — everyone (its numbers are scoped: see test_the_dashboard_counts_only_what_the_role_sees)
    Row("GET", "/api/dashboard", "-", every(200)),
    # acquisition — everyone reads the corp's codes, materials and welcomes; admin and operator change them
    Row("GET", "/api/channel-groups", "-", every(200)),
    Row("POST", "/api/channel-groups", "-", (201, 201, 403, 403, 403), {"name": "新分组", "kind": "store"}),
    Row("PUT", "/api/channel-groups/{id}", "CHG_a", ADMIN_OPERATOR, {"name": "改名分组", "kind": "poster"}),
    Row("PUT", "/api/channel-groups/{id}", "CHG_b", WRITE_OTHER_CORP, {"name": "改名分组", "kind": "poster"}),
    Row("DELETE", "/api/channel-groups/{id}", "CHG_a", (204, 204, 403, 403, 403)),
    Row("DELETE", "/api/channel-groups/{id}", "CHG_b", WRITE_OTHER_CORP),
    Row("GET", "/api/channels", "-", every(200)),
    Row("POST", "/api/channels", "-", (201, 201, 403, 403, 403), {"name": "新码", "userids": ["staffer"]}),
    *(Row("GET", path, "CH_a", every(200)) for path in CHANNEL_READS),
    *(Row("GET", path, "CH_b", NOBODY_404) for path in CHANNEL_READS),
    Row("PATCH", "/api/channels/{id}", "CH_a", ADMIN_OPERATOR, {"name": "改名码"}),
    Row("PATCH", "/api/channels/{id}", "CH_b", WRITE_OTHER_CORP, {"name": "改名码"}),
    Row("DELETE", "/api/channels/{id}", "CH_a", (204, 204, 403, 403, 403)),
    Row("DELETE", "/api/channels/{id}", "CH_b", WRITE_OTHER_CORP),
    Row("GET", "/api/welcome-templates", "-", every(200)),
    Row("PUT", "/api/welcome-templates", "-", ADMIN_OPERATOR, {"scope": "corp", "content": {"text": "您好"}}),
    Row("DELETE", "/api/welcome-templates/{id}", "WT_a", (204, 204, 403, 403, 403)),
    Row("DELETE", "/api/welcome-templates/{id}", "WT_b", WRITE_OTHER_CORP),
    Row("GET", "/api/welcome-sends", "-", every(200)),
    Row("GET", "/api/materials", "-", every(200)),
    Row("GET", "/api/materials/{id}/image", "M_a", every(200)),
    Row("GET", "/api/materials/{id}/image", "M_b", NOBODY_404),
    Row("DELETE", "/api/materials/{id}", "M_a", (204, 204, 403, 403, 403)),
    Row("DELETE", "/api/materials/{id}", "M_b", WRITE_OTHER_CORP),
    Row(
        "POST",
        "/api/materials",
        "-",
        (201, 201, 403, 403, 403),
        {"kind": "link", "title": "链接", "url": "https://example.com"},
        "form",
    ),
    Row("GET", "/api/group-codes", "-", every(200)),
    Row("POST", "/api/group-codes", "-", (201, 201, 403, 403, 403), lambda w, _r: _group_code_body(w, "a")),
    *(Row("GET", path, "GC_a", every(200)) for path in GROUP_CODE_READS),
    *(Row("GET", path, "GC_b", NOBODY_404) for path in GROUP_CODE_READS),
    Row("PUT", "/api/group-codes/{id}", "GC_a", ADMIN_OPERATOR, lambda w, _r: _group_code_body(w, "a")),
    Row("PUT", "/api/group-codes/{id}", "GC_b", WRITE_OTHER_CORP, lambda w, _r: _group_code_body(w, "b")),
    Row("DELETE", "/api/group-codes/{id}", "GC_a", (204, 204, 403, 403, 403)),
    Row("DELETE", "/api/group-codes/{id}", "GC_b", WRITE_OTHER_CORP),
    # segments — whole-corp audiences: admin, operator and compliance count; staff do not
    Row("POST", "/api/segments/count", "-", SEGMENT_READ, SEGMENT_RULE),
    Row("GET", "/api/segments", "-", SEGMENT_READ),
    Row("POST", "/api/segments", "-", (201, 201, 403, 403, 403), lambda _w, r: {"name": f"新-{r}", **SEGMENT_RULE}),
    Row("POST", "/api/segment-snapshots", "-", (201, 201, 403, 403, 403), SEGMENT_RULE),
    Row("GET", "/api/segment-snapshots", "-", SEGMENT_READ),
    *(Row("GET", path, "SEG_a", SEGMENT_READ) for path in SEGMENT_READS),
    *(Row("GET", path, "SEG_b", SEGMENT_OTHER_CORP) for path in SEGMENT_READS),
    Row("POST", "/api/segments/{id}/count", "SEG_a", SEGMENT_READ),
    Row("POST", "/api/segments/{id}/count", "SEG_b", SEGMENT_OTHER_CORP),
    Row("PATCH", "/api/segments/{id}", "SEG_a", ADMIN_OPERATOR, {"description": "改"}),
    Row("PATCH", "/api/segments/{id}", "SEG_b", WRITE_OTHER_CORP, {"description": "改"}),
    Row("POST", "/api/segments/{id}/snapshots", "SEG_a", (201, 201, 403, 403, 403), {}),
    Row("POST", "/api/segments/{id}/snapshots", "SEG_b", WRITE_OTHER_CORP, {}),
    Row("DELETE", "/api/segments/{id}", "SEG_a", (204, 204, 403, 403, 403)),
    Row("DELETE", "/api/segments/{id}", "SEG_b", WRITE_OTHER_CORP),
    *(Row("GET", path, "SN_a", SEGMENT_READ) for path in SNAPSHOT_READS),
    *(Row("GET", path, "SN_b", SEGMENT_OTHER_CORP) for path in SNAPSHOT_READS),
    # sending broadcasts — admin and operator send, remind and cancel; compliance reads the results;
    # staff see only the personal broadcasts they started (these are not), so they get not-found
    Row("POST", "/api/broadcasts/{id}/send", "BC_a", (202, 202, 404, 404, 403)),
    Row("POST", "/api/broadcasts/{id}/send", "BC_b", (404, 404, 404, 404, 403)),
    Row("POST", "/api/broadcasts/{id}/remind", "BCS_a", (202, 202, 404, 404, 403)),
    Row("POST", "/api/broadcasts/{id}/remind", "BCS_b", (404, 404, 404, 404, 403)),
    Row("POST", "/api/broadcasts/{id}/cancel", "BC_a", (200, 200, 404, 404, 403)),
    Row("POST", "/api/broadcasts/{id}/cancel", "BC_b", (404, 404, 404, 404, 403)),
    Row("GET", "/api/broadcasts/{id}/results", "BCS_a", (200, 200, 404, 404, 200)),
    Row("GET", "/api/broadcasts/{id}/results", "BCS_b", NOBODY_404),
    # broadcast drafts and plans — admin and operator write, compliance reads; staff create, read and plan
    # only the personal broadcasts they start themselves (anything else is not-found to them)
    Row("GET", "/api/broadcasts", "-", every(200)),
    Row("POST", "/api/broadcasts", "-", (201, 201, 403, 403, 403), lambda w, r: _broadcast_body(w, "customer", r)),
    Row("POST", "/api/broadcasts", "-", (201, 201, 201, 201, 403), lambda w, r: _broadcast_body(w, "personal", r)),
    *(Row("GET", path, "BD_a", BROADCAST_READ) for path in BROADCAST_READS),
    *(Row("GET", path, "BD_b", NOBODY_404) for path in BROADCAST_READS),
    *(Row("GET", path, "BP_staff", OWN_PERSONAL_READ) for path in BROADCAST_READS),
    Row("PATCH", "/api/broadcasts/{id}", "BD_a", BROADCAST_WRITE, {"name": "改名"}),
    Row("PATCH", "/api/broadcasts/{id}", "BD_b", BROADCAST_WRITE_OTHER_CORP, {"name": "改名"}),
    Row("PATCH", "/api/broadcasts/{id}", "BP_staff", OWN_PERSONAL_WRITE, {"name": "改名"}),
    Row("POST", "/api/broadcasts/{id}/plan", "BD_a", BROADCAST_WRITE),
    Row("POST", "/api/broadcasts/{id}/plan", "BD_b", BROADCAST_WRITE_OTHER_CORP),
    Row("POST", "/api/broadcasts/{id}/plan", "BP_staff", OWN_PERSONAL_WRITE),
    # channel funnels — everyone (numbers scoped like the dashboard)
    Row("GET", "/api/funnels/channels", "-", every(200)),
    Row("GET", "/api/funnels/channels.csv", "-", every(200)),
    Row("GET", "/api/funnels/channels/{id}", "CH_a", every(200)),
    Row("GET", "/api/funnels/channels/{id}", "CH_b", NOBODY_404),
    # compliance — opt-outs and complaints by anyone for the customers they see; the policy, budget and
    # pauses read by admin / operator / compliance, changed by admin and compliance
    *_per_customer("POST", "/api/customers/{id}/opt-out"),
    *_per_customer("DELETE", "/api/customers/{id}/opt-out"),
    Row("GET", "/api/compliance/opt-outs", "-", COMPLIANCE_READ),
    Row(
        "POST",
        "/api/compliance/complaints",
        "-",
        tuple(201 if st == 200 else st for st in SEES["staffer"]),
        lambda w, _r: {"customer_id": w.ids["C_staffer"]},
    ),
    Row("POST", "/api/compliance/complaints", "-", NOBODY_404, lambda w, _r: {"customer_id": w.ids["C_b"]}),
    Row("GET", "/api/compliance/signals", "-", COMPLIANCE_READ),
    Row("GET", "/api/compliance/pauses", "-", COMPLIANCE_READ),
    Row("POST", "/api/compliance/pauses/{id}/lift", "P_a", ADMIN_COMPLIANCE),
    Row("POST", "/api/compliance/pauses/{id}/lift", "P_b", (404, 403, 403, 403, 404)),
    Row("POST", "/api/compliance/evaluate", "-", ADMIN_COMPLIANCE),
    Row("GET", "/api/compliance/policy", "-", COMPLIANCE_READ),
    Row("PUT", "/api/compliance/policy", "-", ADMIN_COMPLIANCE, POLICY),
    Row("POST", "/api/compliance/content-check", "-", COMPLIANCE_READ, {"text": "你好"}),
    Row("GET", "/api/compliance/budget", "-", COMPLIANCE_READ),
    # console pages
    Row("GET", "/", "-", every(200), via="page"),
    Row("GET", "/compliance/policy", "-", COMPLIANCE_READ, via="page"),
    Row("GET", "/compliance/budget", "-", COMPLIANCE_READ, via="page"),
    *_per_customer("GET", "/compliance/customers/{id}/opt-out", via="page"),
    Row("POST", "/compliance/pauses/{id}/lift", "P_a", (303, 403, 403, 403, 303), {}, "page"),
    Row("POST", "/compliance/pauses/{id}/lift", "P_b", (404, 403, 403, 403, 404), {}, "page"),
    Row("GET", "/users", "-", (200, 403, 403, 403, 403), via="page"),
    Row("GET", "/account/tokens", "-", every(200), via="page"),
    Row("POST", "/account/tokens/{id}/revoke", "K_other", NOBODY_404, via="page"),
    Row("POST", "/users/{id}/active", "U_other", REDIRECT_ADMIN, {"active": "false"}, "page"),
    Row("POST", "/users/{id}/active", "U_b", (404, 403, 403, 403, 403), {"active": "false"}, "page"),
    Row("GET", "/employees", "-", every(200), via="page"),
    Row("GET", "/tags", "-", every(200), via="page"),
    Row("GET", "/customers", "-", every(200), via="page"),
    *_per_customer("GET", "/customers/{id}", via="page"),
    *_per_customer("GET", "/customers/{id}/timeline", via="page"),
    Row("GET", "/customers/{id}/follows/{id2}", "C_shared,F_shared_staffer", SEES["shared"], via="page"),
    Row("GET", "/customers/{id}/follows/{id2}", "C_shared,F_shared_outsider", SEES["outsider"], via="page"),
    Row("GET", "/customers/exports/{id}", "self_export", every(200), via="page"),
    Row("GET", "/customers/exports/{id}", "X_other", NOBODY_404, via="page"),
    Row("GET", "/groups", "-", every(200), via="page"),
    *_per_group("/groups/{id}", via="page"),
    Row("GET", "/settings", "-", ADMIN_OPERATOR, via="page"),
    Row("GET", "/audit", "-", ADMIN_COMPLIANCE, via="page"),
    Row("GET", "/segments", "-", SEGMENT_READ, via="page"),
    Row("GET", "/segments/{id}", "SEG_a", SEGMENT_READ, via="page"),
    Row("GET", "/segments/{id}", "SEG_b", SEGMENT_OTHER_CORP, via="page"),
    *(Row("GET", path, "-", every(200), via="page") for path in ACQUISITION_PAGES),
    *(
        Row("GET", path, "CH_a", every(200), via="page")
        for path in ("/channels/{id}", "/channels/{id}/poster", "/funnels/{id}")
    ),
    *(
        Row("GET", path, "CH_b", NOBODY_404, via="page")
        for path in ("/channels/{id}", "/channels/{id}/poster", "/funnels/{id}")
    ),
]


def _cases() -> Iterator[Any]:
    for row in ROWS:
        for role, status in zip(ROLES, row.expect, strict=True):
            yield pytest.param(role, row, status, id=f"{role}:{row.method} {row.path}:{row.obj}")


def _request(world: World, role: str, row: Row) -> Any:
    path = row.path
    if row.obj != "-":  # "C_x" fills {id}; "C_x,F_y" fills {id} and {id2}
        for placeholder, key in zip(("{id}", "{id2}"), row.obj.split(","), strict=False):
            path = path.replace(placeholder, str(world.id_of(key, role)))
    body = row.body(world, role) if callable(row.body) else row.body
    client = world.page[role] if row.via == "page" else world.api[role]
    if row.via == "form":
        return client.request(row.method, path, data=body, files={"_": ("", b"")})
    if row.via == "page" and body is not None:
        return client.request(row.method, path, data=body)
    return client.request(row.method, path, json=body)


@pytest.mark.parametrize(("role", "row", "status"), list(_cases()))
def test_matrix(world: World, role: str, row: Row, status: int) -> None:
    # when the role asks
    r = _request(world, role, row)
    # then it gets exactly the expected answer; refusals carry a code, and 404 reads like a missing id
    assert r.status_code == status, f"{role} {row.method} {row.path} [{row.obj}]: {r.status_code} {r.text[:300]}"
    if status in (403, 404) and row.via != "page":
        assert r.json()["detail"][0]["code"] == ("forbidden" if status == 403 else "not_found")


def test_a_404_for_another_corps_object_reads_exactly_like_a_missing_one(world: World) -> None:
    # given the admin of corp A, an id of corp B's and an id that does not exist
    client = world.api["admin"]
    # when / then the bodies match apart from the id itself
    theirs = client.get(f"/api/tags/{world.ids['T_b']}").json()["detail"][0]
    missing = client.get("/api/tags/99999999").json()["detail"][0]
    assert theirs["code"] == missing["code"] == "not_found"
    assert theirs["msg"].replace(str(world.ids["T_b"]), "N") == missing["msg"].replace("99999999", "N")


# --- lists: each role sees exactly its scope --------------------------------------------------


@dataclass(frozen=True)
class ListRow:
    path: str
    universe: tuple[str, ...]  # the World keys of every object of this type, both corps
    visible: dict[str, frozenset[str]]  # role → the keys it sees (roles left out are refused: see ROWS)


def _scoped(prefix: str, owners: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """Per role, the objects (prefix + owner) whose owner the role may see, from SEES."""
    return {role: frozenset(f"{prefix}{o}" for o in owners if SEES[o][i] == 200) for i, role in enumerate(ROLES)}


def _same(keys: set[str], roles: tuple[str, ...] = ROLES) -> dict[str, frozenset[str]]:
    return dict.fromkeys(roles, frozenset(keys))


EMPLOYEES = ("staffer", "leader", "mate", "outsider")
USERS_A = {"U_admin", "U_staff", "U_other"}
CUSTOMER_OWNERS = ("staffer", "leader", "mate", "outsider", "shared")
GROUP_OWNERS = ("staffer", "mate", "outsider")
LIST_ROWS: list[ListRow] = [
    ListRow("/api/customers", tuple(f"C_{o}" for o in (*CUSTOMER_OWNERS, "b")), _scoped("C_", CUSTOMER_OWNERS)),
    ListRow("/api/employees", tuple(f"E_{o}" for o in (*EMPLOYEES, "b")), _scoped("E_", EMPLOYEES)),
    ListRow("/api/groups", tuple(f"G_{o}" for o in (*GROUP_OWNERS, "b")), _scoped("G_", GROUP_OWNERS)),
    ListRow(
        "/api/users", ("U_admin", "U_staff", "U_other", "U_b"), _same({"U_admin", "U_staff", "U_other"}, ("admin",))
    ),
    ListRow("/api/tags", ("T_a", "T_b"), _same({"T_a"})),
    ListRow("/api/tag-groups", ("TG_a", "TG_b"), _same({"TG_a"})),
    ListRow("/api/audit", ("AU_a", "AU_b"), _same({"AU_a"}, ("admin", "compliance"))),
    ListRow("/api/tokens", tuple(f"K_{r}" for r in (*ROLES, "other", "b")), {r: frozenset({f"K_{r}"}) for r in ROLES}),
    ListRow(
        "/api/broadcasts",
        ("BD_a", "BD_b", "BP_staff", "BC_a", "BC_b", "BCS_a", "BCS_b"),
        {
            **_same({"BD_a", "BP_staff", "BC_a", "BCS_a"}, ("admin", "operator", "compliance")),
            "staff": frozenset({"BP_staff"}),
            "leader": frozenset(),
        },
    ),
]


def _list_cases() -> Iterator[Any]:
    for row in LIST_ROWS:
        for role, visible in row.visible.items():
            yield pytest.param(role, row, visible, id=f"{role}:{row.path}")


def _ids_in(payload: Any) -> set[int]:
    items = payload["items"] if isinstance(payload, dict) else payload
    return {item["id"] for item in items}


@pytest.mark.parametrize(("role", "row", "visible"), list(_list_cases()))
def test_lists_show_exactly_the_roles_scope(world: World, role: str, row: ListRow, visible: frozenset[str]) -> None:
    # when the role lists the objects
    r = world.api[role].get(row.path, params={"limit": 200})
    # then of all the objects of that type, in both corps, exactly those in scope come back
    assert r.status_code == 200, r.text
    by_id = {world.ids[key]: key for key in row.universe}
    shown = {by_id[i] for i in _ids_in(r.json()) if i in by_id}
    assert shown == visible


@pytest.mark.parametrize(
    ("role", "customers"), [("admin", 5), ("operator", 5), ("compliance", 5), ("staff", 2), ("leader", 2)]
)
def test_the_dashboard_counts_only_what_the_role_sees(world: World, role: str, customers: int) -> None:
    r = world.api[role].get("/api/dashboard")
    assert r.status_code == 200, r.text
    assert r.json()["customers_total"] == customers


# --- the matrix covers every endpoint ---------------------------------------------------------

NOT_USER_FACING = {("GET", "/wecom/callback/{}"), ("POST", "/wecom/callback/{}"), ("GET", "/healthz")}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_api_endpoint_is_in_the_matrix() -> None:
    # given every operation the app publishes in its OpenAPI
    spec = create_app(configure=False).openapi()
    published = {(m.upper(), _shape(p)) for p, ops in spec["paths"].items() for m in ops} - NOT_USER_FACING
    # then each has at least one row (lists count for their GET)
    covered = {(r.method, _shape(r.path)) for r in ROWS if r.via in ("api", "form")}
    covered |= {("GET", _shape(r.path)) for r in LIST_ROWS}
    missing = sorted(published - covered)
    assert not missing, f"add matrix rows for: {missing}"
