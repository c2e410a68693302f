"""Tags: read with counts; create / add / rename / reorder / delete reach the emulator through the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from siyu.contacts.models import Employee
from siyu.core.tasks import configure_queue
from siyu.corp.models import AuditLog
from siyu.outbox.models import OutboxStatus, WeComOutbox
from siyu.outbox.tasks import send_one
from siyu.sync.flows import run_sync
from siyu.tags.models import Tag, TagGroup
from siyu.wecom.emulator.server import RunningEmulator
from tests import console_api_support as sup
from tests.factories import make_corp
from tests.sync.test_sync_support import corp_for


@pytest.fixture
def corp(db: sessionmaker[Session], emulator: RunningEmulator) -> Iterator[int]:
    """A corp mirrored from the emulator; outbox rows wait until a test sends them."""
    configure_queue("memory://")
    corp_id = corp_for(db, emulator)
    run_sync(corp_id)
    yield corp_id
    configure_queue("memory://", immediate=True)


def _send_pending(db: sessionmaker[Session]) -> list[str]:
    with db() as s:
        ids = list(s.scalars(select(WeComOutbox.id).where(WeComOutbox.status == "pending").order_by(WeComOutbox.id)))
    return [send_one(i) for i in ids]


def _emu_group(emu: RunningEmulator, name: str) -> Any:
    return emu.state.tag_group_by_name(name)


def _emu_tag_names(emu: RunningEmulator, group: Any) -> set[str]:
    return {emu.state.tags[t].name for t in group.tag_ids}


def _counts(db: sessionmaker[Session]) -> tuple[int, int, int, int]:
    with db() as s:
        return (
            s.scalar(select(func.count()).select_from(TagGroup)) or 0,
            s.scalar(select(func.count()).select_from(Tag)) or 0,
            s.scalar(select(func.count()).select_from(WeComOutbox)) or 0,
            s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action.like("tag%"))) or 0,
        )


def test_list_matches_the_emulator(db: sessionmaker[Session], emulator: RunningEmulator, corp: int) -> None:
    # given
    client = sup.api_client(db, corp, "operator")

    # when
    r = client.get("/api/tag-groups")

    # then
    assert r.status_code == 200, r.text
    got = {g["name"]: {t["name"] for t in g["tags"]} for g in r.json()}
    want = {g.name: _emu_tag_names(emulator, g) for g in emulator.state.tag_groups.values()}
    assert got == want
    assert all(not g["syncing"] and g["wecom_id"] for g in r.json())
    assert sum(t["customers"] for g in r.json() for t in g["tags"]) > 0


def test_create_group_with_tags_reaches_wecom(db: sessionmaker[Session], emulator: RunningEmulator, corp: int) -> None:
    # given
    client = sup.api_client(db, corp, "operator")

    # when
    r = client.post(
        "/api/tag-groups", json={"name": "试验等级", "tags": [{"name": "VIP"}, {"name": "普通", "order": 2}]}
    )

    # then: local rows syncing, then sent, then carrying WeCom's ids
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["syncing"] and created["wecom_id"] is None
    assert [t["syncing"] for t in created["tags"]] == [True, True]
    assert _emu_group(emulator, "试验等级") is None
    assert _send_pending(db) == [OutboxStatus.SENT]
    group = _emu_group(emulator, "试验等级")
    assert group is not None and _emu_tag_names(emulator, group) == {"VIP", "普通"}
    after = client.get(f"/api/tag-groups/{created['id']}").json()
    assert after["wecom_id"] == group.group_id and not after["syncing"]
    assert {t["name"]: t["wecom_id"] for t in after["tags"]} == {emulator.state.tags[t].name: t for t in group.tag_ids}


def test_add_rename_reorder_delete_reach_wecom(db: sessionmaker[Session], emulator: RunningEmulator, corp: int) -> None:
    # given: a group created and sent
    client = sup.api_client(db, corp, "admin")
    gid = client.post("/api/tag-groups", json={"name": "试验来源", "tags": [{"name": "展会"}]}).json()["id"]
    _send_pending(db)

    # when: add a tag, rename it, reorder it, rename the group
    tag = client.post(f"/api/tag-groups/{gid}/tags", json={"name": "官网"})
    assert tag.status_code == 201, tag.text
    _send_pending(db)
    tid = tag.json()["id"]
    renamed = client.patch(f"/api/tags/{tid}", json={"name": "官方网站", "order": 7})
    group_renamed = client.patch(f"/api/tag-groups/{gid}", json={"name": "试验渠道"})
    assert renamed.status_code == 200 and group_renamed.status_code == 200, (renamed.text, group_renamed.text)
    assert _send_pending(db) == [OutboxStatus.SENT, OutboxStatus.SENT]

    # then
    group = _emu_group(emulator, "试验渠道")
    assert group is not None and _emu_tag_names(emulator, group) == {"展会", "官方网站"}
    wecom_tag = emulator.state.tags[renamed.json()["wecom_id"]]
    assert (wecom_tag.name, wecom_tag.order) == ("官方网站", 7)

    # when: delete one tag, then the whole group
    r1 = client.delete(f"/api/tags/{tid}")
    assert r1.status_code == 202, r1.text
    assert send_one(r1.json()["outbox_id"]) == OutboxStatus.SENT
    assert _emu_tag_names(emulator, _emu_group(emulator, "试验渠道")) == {"展会"}
    r2 = client.delete(f"/api/tag-groups/{gid}")
    assert r2.status_code == 202, r2.text
    assert send_one(r2.json()["outbox_id"]) == OutboxStatus.SENT

    # then
    assert _emu_group(emulator, "试验渠道") is None
    assert client.get(f"/api/tag-groups/{gid}").status_code == 404


def test_deleting_an_existing_tag_removes_it_and_its_follow_tags(
    db: sessionmaker[Session], emulator: RunningEmulator, corp: int
) -> None:
    # given: a mirrored tag that customers carry
    client = sup.api_client(db, corp, "operator")
    groups = client.get("/api/tag-groups").json()
    tag = max((t for g in groups for t in g["tags"]), key=lambda t: t["customers"])
    assert tag["customers"] > 0

    # when
    r = client.delete(f"/api/tags/{tag['id']}")
    send_one(r.json()["outbox_id"])

    # then
    assert tag["wecom_id"] not in emulator.state.tags
    assert all(tag["wecom_id"] not in f.tag_ids for f in emulator.state.follows())
    assert client.get(f"/api/tags/{tag['id']}").status_code == 404


def test_a_mirrored_row_arriving_first_wins(db: sessionmaker[Session], emulator: RunningEmulator, corp: int) -> None:
    # given: a group created in siyu, sent, and a sync that mirrors it before the placeholder is settled
    client = sup.api_client(db, corp, "operator")
    gid = client.post("/api/tag-groups", json={"name": "试验活动", "tags": [{"name": "双十一"}]}).json()["id"]
    emulator.state.create_tag_group("试验活动")
    emulator.state.create_tag(emulator.state.tag_group_by_name("试验活动").group_id, "双十一")
    run_sync(corp, only="tags")

    # when
    assert _send_pending(db) == [OutboxStatus.SENT]

    # then: exactly one group 活动 with one tag, carrying WeCom's ids
    groups = [g for g in client.get("/api/tag-groups").json() if g["name"] == "试验活动"]
    assert len(groups) == 1 and [t["name"] for t in groups[0]["tags"]] == ["双十一"]
    assert not groups[0]["syncing"] and not groups[0]["tags"][0]["syncing"]
    del gid


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        ({"name": "", "tags": [{"name": "a"}]}, "invalid", 422),
        ({"name": "x" * 31, "tags": [{"name": "a"}]}, "invalid", 422),
        ({"name": "组", "tags": []}, "invalid", 422),
        ({"name": "组", "tags": [{"name": "y" * 31}]}, "invalid", 422),
        ({"name": "组", "tags": [{"name": "同名"}, {"name": "同名"}]}, "conflict", 409),
    ],
)
def test_bad_group_input_writes_nothing(
    db: sessionmaker[Session], corp: int, body: dict[str, Any], code: str, status: int
) -> None:
    # given
    client = sup.api_client(db, corp, "operator")
    before = _counts(db)

    # when
    r = client.post("/api/tag-groups", json=body)

    # then
    assert r.status_code == status, r.text
    assert r.json()["detail"][0]["code"] == code
    assert _counts(db) == before


def test_duplicate_names_conflict(db: sessionmaker[Session], corp: int) -> None:
    # given
    client = sup.api_client(db, corp, "operator")
    groups = client.get("/api/tag-groups").json()
    group = next(g for g in groups if len(g["tags"]) >= 2)
    first, second = group["tags"][0], group["tags"][1]
    before = _counts(db)

    # when
    responses = [
        client.post("/api/tag-groups", json={"name": group["name"], "tags": [{"name": "新"}]}),
        client.post(f"/api/tag-groups/{group['id']}/tags", json={"name": first["name"]}),
        client.patch(f"/api/tags/{second['id']}", json={"name": first["name"]}),
        client.patch(f"/api/tag-groups/{groups[-1]['id']}", json={"name": groups[0]["name"]})
        if len(groups) > 1
        else client.post(f"/api/tag-groups/{group['id']}/tags", json={"name": first["name"]}),
    ]

    # then
    assert [r.status_code for r in responses] == [409, 409, 409, 409], [r.text for r in responses]
    assert _counts(db) == before


def test_a_syncing_tag_cannot_be_edited_yet(db: sessionmaker[Session], corp: int) -> None:
    # given
    client = sup.api_client(db, corp, "operator")
    created = client.post("/api/tag-groups", json={"name": "待同步", "tags": [{"name": "t"}]}).json()

    # when
    r = client.patch(f"/api/tags/{created['tags'][0]['id']}", json={"name": "u"})

    # then
    assert r.status_code == 409, r.text
    assert "WeCom" in r.json()["detail"][0]["msg"]


@pytest.mark.parametrize("role", ["staff", "compliance"])
def test_read_only_roles_may_not_write(db: sessionmaker[Session], corp: int, role: str) -> None:
    # given
    client = _client_for(db, corp, role)
    group = client.get("/api/tag-groups").json()[0]
    before = _counts(db)

    # when
    responses = [
        client.post("/api/tag-groups", json={"name": "n", "tags": [{"name": "t"}]}),
        client.post(f"/api/tag-groups/{group['id']}/tags", json={"name": "t"}),
        client.patch(f"/api/tags/{group['tags'][0]['id']}", json={"name": "u"}),
        client.delete(f"/api/tag-groups/{group['id']}"),
    ]

    # then
    assert [r.status_code for r in responses] == [403] * 4, [r.text for r in responses]
    assert _counts(db) == before


def _client_for(db: sessionmaker[Session], corp: int, role: str) -> TestClient:
    if role != "staff":
        return sup.api_client(db, corp, role)
    with db() as s:
        userid = s.scalar(select(Employee.userid).where(Employee.corp_id == corp).limit(1))
    return sup.api_client(db, corp, "staff", employee_userid=userid)


def test_another_corps_tags_are_not_found(db: sessionmaker[Session], corp: int) -> None:
    # given
    mine = sup.api_client(db, corp, "admin").get("/api/tag-groups").json()[0]
    other = make_corp(db, wecom_corpid="wwother").corp_id
    client = sup.api_client(db, other, "admin")

    # when
    responses = [
        client.get(f"/api/tag-groups/{mine['id']}"),
        client.patch(f"/api/tag-groups/{mine['id']}", json={"name": "x"}),
        client.delete(f"/api/tags/{mine['tags'][0]['id']}"),
    ]

    # then
    assert [r.status_code for r in responses] == [404, 404, 404]
    assert client.get("/api/tag-groups").json() == []


def test_tags_page_renders_in_chinese(db: sessionmaker[Session], corp: int) -> None:
    # given
    client = sup.console_client(db, corp, "operator")

    # when
    r = client.get("/tags")

    # then
    assert r.status_code == 200, r.text
    assert "新建标签组" in r.text and 'data-testid="tag-group-create"' in r.text


def test_tags_page_create_form_with_htmx(db: sessionmaker[Session], emulator: RunningEmulator, corp: int) -> None:
    # given
    client = sup.console_client(db, corp, "operator")

    # when
    r = client.post("/tags/groups", data={"name": "页面组", "tags": "甲\n乙, 丙"}, headers={"HX-Request": "true"})

    # then
    assert r.status_code == 200, r.text
    assert "页面组" in r.text and "同步中" in r.text
    _send_pending(db)
    assert _emu_tag_names(emulator, _emu_group(emulator, "页面组")) == {"甲", "乙", "丙"}


def test_tags_page_shows_errors_without_writing(db: sessionmaker[Session], corp: int) -> None:
    # given
    client = sup.console_client(db, corp, "operator")
    before = _counts(db)

    # when
    r = client.post("/tags/groups", data={"name": "x" * 31, "tags": "a"}, headers={"HX-Request": "true"})

    # then
    assert r.status_code == 200, r.text
    assert 'role="alert"' in r.text
    assert _counts(db) == before
