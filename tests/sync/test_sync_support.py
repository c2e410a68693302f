"""Shared by the sync tests (no tests here): a corp pointing at an emulator, and the mirror comparison."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.contacts.actions import EMPLOYEE_STATUS
from siyu.contacts.models import FollowStatus
from siyu.groups.models import GroupStatus
from siyu.wecom.client import WeComClient, client_for_corp
from siyu.wecom.emulator.server import RunningEmulator
from siyu.wecom.emulator.state import EmulatorState
from tests.factories import make_corp

DATETIME = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d")
MIRRORED_TABLES = (
    "department",
    "employee",
    "customer",
    "follow",
    "follow_tag",
    "tag_group",
    "tag",
    "group_chat",
    "group_member",
)


def corp_for(db: sessionmaker[Session], emu: RunningEmulator) -> int:
    c = emu.corp
    return make_corp(
        db,
        wecom_corpid=c.corpid,
        secret=c.secret,
        token=c.token,
        aes_key=c.encoding_aes_key,
        api_base_url=emu.base_url,
    ).corp_id


def ts(value: int) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


class CountingClient:
    """The real client, counting calls per method and optionally failing after N contact pages."""

    def __init__(self, inner: WeComClient, *, fail_after_pages: int | None = None) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.fail_after_pages = fail_after_pages

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            limit = self.fail_after_pages
            if name == "batch_get_by_user" and limit is not None and self.calls[name] > limit:
                raise RuntimeError("simulated crash")
            return method(*args, **kwargs)

        return counted


def counting_client(db: sessionmaker[Session], corp_id: int, **kwargs: Any) -> CountingClient:
    from siyu.corp.models import Corp

    with db() as s:
        corp = s.get(Corp, corp_id)
        assert corp is not None
        return CountingClient(client_for_corp(corp), **kwargs)


def _rows(session: Session, sql: str) -> list[Sequence[Any]]:
    return [tuple(r) for r in session.execute(sa.text(sql))]


def _normalize(value: Any) -> Any:
    """Text SQL reads JSON and datetimes back as strings on SQLite; compare them as values on both backends."""
    if isinstance(value, str) and value.startswith(("[", "{")):
        return json.loads(value)
    if isinstance(value, str) and DATETIME.match(value):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def snapshot(db: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Every mirrored row, all columns but the sync bookkeeping, to prove a second run writes nothing."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db() as s:
        for table in MIRRORED_TABLES:
            cols = [c for c in sa.inspect(s.get_bind()).get_columns(table) if c["name"] != "last_seen_run_id"]
            names = ", ".join(f'"{c["name"]}"' for c in cols)
            rows = _rows(s, f"SELECT {names} FROM {table}")
            out[table] = sorted((tuple(_normalize(v) for v in r) for r in rows), key=repr)
    return out


def mirror_of(db: sessionmaker[Session], corp_id: int) -> dict[str, Any]:
    """The mirror as plain data keyed like the emulator's state."""
    with db() as s:
        return {
            "departments": _departments(s, corp_id),
            "employees": _employees(s, corp_id),
            "customers": _customers(s, corp_id),
            "follows": _follows(s, corp_id),
            "follow_tags": _follow_tags(s, corp_id),
            "tag_groups": _tag_groups(s, corp_id),
            "tags": _tags(s, corp_id),
            "groups": _groups(s, corp_id),
            "members": _members(s, corp_id),
        }


def _q(s: Session, sql: str, corp_id: int) -> list[Any]:
    return list(s.execute(sa.text(sql), {"c": corp_id}))


def _departments(s: Session, corp_id: int) -> dict[int, tuple[Any, ...]]:
    rows = _q(s, 'SELECT wecom_id, name, parent_wecom_id, "order", leaders FROM department WHERE corp_id=:c', corp_id)
    return {r[0]: (r[1], r[2], r[3], _normalize(r[4])) for r in rows}


def _employees(s: Session, corp_id: int) -> dict[str, tuple[Any, ...]]:
    sql = (
        "SELECT userid, name, department_ids, main_department, position, gender, status, is_follow_user"
        " FROM employee WHERE corp_id=:c"
    )
    return {r[0]: (r[1], _normalize(r[2]), r[3], r[4], r[5], r[6], bool(r[7])) for r in _q(s, sql, corp_id)}


def _customers(s: Session, corp_id: int) -> dict[str, tuple[Any, ...]]:
    sql = (
        "SELECT external_userid, name, type, avatar, gender, unionid, position, corp_name, corp_full_name"
        " FROM customer WHERE corp_id=:c"
    )
    return {r[0]: tuple(r[1:]) for r in _q(s, sql, corp_id)}


def _follows(s: Session, corp_id: int) -> dict[tuple[str, str], tuple[Any, ...]]:
    sql = (
        "SELECT e.userid, c.external_userid, f.remark, f.description, f.remark_corp_name, f.remark_mobiles,"
        " f.add_way, f.oper_userid, f.state, f.created_at, f.status FROM follow f"
        " JOIN employee e ON e.id = f.employee_id JOIN customer c ON c.id = f.customer_id WHERE f.corp_id=:c"
    )
    return {(r[0], r[1]): tuple(_normalize(v) for v in r[2:]) for r in _q(s, sql, corp_id)}


def _follow_tags(s: Session, corp_id: int) -> dict[tuple[str, str], set[str]]:
    sql = (
        "SELECT e.userid, c.external_userid, t.wecom_id FROM follow_tag ft JOIN follow f ON f.id = ft.follow_id"
        " JOIN employee e ON e.id = f.employee_id JOIN customer c ON c.id = f.customer_id"
        " JOIN tag t ON t.id = ft.tag_id WHERE ft.corp_id=:c"
    )
    out: dict[tuple[str, str], set[str]] = {}
    for userid, ext, tag in _q(s, sql, corp_id):
        out.setdefault((userid, ext), set()).add(tag)
    return out


def _tag_groups(s: Session, corp_id: int) -> dict[str, tuple[Any, ...]]:
    rows = _q(s, 'SELECT wecom_id, name, "order", created_at FROM tag_group WHERE corp_id=:c', corp_id)
    return {r[0]: (r[1], r[2], _normalize(r[3])) for r in rows}


def _tags(s: Session, corp_id: int) -> dict[str, tuple[Any, ...]]:
    sql = (
        'SELECT t.wecom_id, t.name, g.wecom_id, t."order", t.created_at FROM tag t'
        " JOIN tag_group g ON g.id = t.group_id WHERE t.corp_id=:c"
    )
    return {r[0]: (r[1], r[2], r[3], _normalize(r[4])) for r in _q(s, sql, corp_id)}


def _groups(s: Session, corp_id: int) -> dict[str, tuple[Any, ...]]:
    sql = (
        "SELECT chat_id, name, owner_userid, notice, created_at, wecom_status, member_version, status"
        " FROM group_chat WHERE corp_id=:c"
    )
    return {r[0]: (r[1], r[2], r[3], _normalize(r[4]), r[5], r[6], r[7]) for r in _q(s, sql, corp_id)}


def _members(s: Session, corp_id: int) -> dict[tuple[str, str], tuple[Any, ...]]:
    sql = (
        "SELECT g.chat_id, m.userid, m.member_type, c.external_userid, m.name, m.group_nickname, m.unionid,"
        " m.join_time, m.join_scene, m.invitor_userid, m.state FROM group_member m"
        " JOIN group_chat g ON g.id = m.group_chat_id LEFT JOIN customer c ON c.id = m.customer_id"
        " WHERE m.corp_id=:c"
    )
    return {(r[0], r[1]): tuple(_normalize(v) for v in r[2:]) for r in _q(s, sql, corp_id)}


def expected_from(state: EmulatorState) -> dict[str, Any]:
    """What the mirror must hold for this emulator state (every follow active, every group active)."""
    follow_users = set(state.follow_user_ids())
    listed = [e for e in state.employees.values() if e.status != 5]
    return {
        "departments": {
            d.id: (d.name, d.parentid, d.order, list(d.department_leader)) for d in state.departments.values()
        },
        "employees": {
            e.userid: (
                e.name,
                list(e.department),
                e.main_department,
                e.position,
                e.gender,
                EMPLOYEE_STATUS[e.status].value,
                e.userid in follow_users,
            )
            for e in listed
        },
        "customers": {
            c.external_userid: (
                c.name,
                c.type,
                c.avatar,
                c.gender,
                c.unionid,
                c.position,
                c.corp_name,
                c.corp_full_name,
            )
            for c in state.customers.values()
        },
        "follows": {
            (f.userid, f.external_userid): (
                f.remark,
                f.description,
                f.remark_corp_name,
                list(f.remark_mobiles),
                f.add_way,
                f.oper_userid,
                f.state,
                ts(f.createtime),
                FollowStatus.ACTIVE.value,
            )
            for f in state.follows()
        },
        "follow_tags": {
            (f.userid, f.external_userid): {t for t in f.tag_ids if t in state.tags}
            for f in state.follows()
            if any(t in state.tags for t in f.tag_ids)
        },
        "tag_groups": {g.group_id: (g.name, g.order, ts(g.create_time)) for g in state.tag_groups.values()},
        "tags": {t.id: (t.name, t.group_id, t.order, ts(t.create_time)) for t in state.tags.values()},
        "groups": {
            g.chat_id: (
                g.name,
                g.owner,
                g.notice,
                ts(g.create_time),
                g.status,
                g.member_version(),
                GroupStatus.ACTIVE.value,
            )
            for g in state.groups.values()
        },
        "members": {
            (g.chat_id, m.userid): (
                m.type,
                m.userid if m.type == 2 and m.userid in state.customers else None,
                _member_name(state, m.userid),
                m.group_nickname,
                m.unionid if m.type == 2 else "",
                ts(m.join_time),
                m.join_scene,
                m.invitor,
                m.state,
            )
            for g in state.groups.values()
            for m in g.members
        },
    }


def _member_name(state: EmulatorState, userid: str) -> str:
    person = state.employees.get(userid) or state.customers.get(userid)
    return person.name if person else ""


def assert_mirrors(db: sessionmaker[Session], corp_id: int, state: EmulatorState) -> None:
    """Row by row, per object type (one assert each, so a failure names the type)."""
    mirror, expected = mirror_of(db, corp_id), expected_from(state)
    for name in expected:
        assert mirror[name] == expected[name], f"{name} differ"
