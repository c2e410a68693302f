"""The acquisition console pages: channel codes (list, form, detail, poster), channel groups, group codes,
default welcomes with the welcome log, and materials — rendered and posted over HTTP, on both databases."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import segno
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from siyu.acquisition.models import (
    Channel,
    ChannelGroup,
    CodeStatus,
    GroupCode,
    Material,
    WelcomeSend,
    WelcomeTemplate,
)
from siyu.core.clock import now_utc
from siyu.core.tasks import configure_queue
from siyu.outbox.models import WeComOutbox
from tests import console_api_support as sup
from tests.factories import make_corp

PAGES = ["/channels", "/group-codes", "/welcome", "/materials"]
FORMS = {
    "/channels": 'data-testid="channel-form"',
    "/group-codes": 'data-testid="group-code-form"',
    "/welcome": 'data-testid="welcome-form"',
    "/materials": 'data-testid="material-form"',
}


@pytest.fixture(autouse=True)
def _queue() -> None:
    configure_queue("memory://")  # outbox rows stay pending: nothing talks to WeCom


def _corp(db: sessionmaker[Session]) -> dict[str, object]:
    corp_id = make_corp(db).corp_id
    sup.add(db, sup.department(corp_id, 1, "总部"), sup.department(corp_id, 2, "销售部", parent=1))
    alice, bob = sup.add(
        db,
        sup.employee(corp_id, "alice", "王小丽", departments=[2]),
        sup.employee(corp_id, "bob", "李大明", departments=[2]),
        sup.employee(corp_id, "gone", "离职员工", status="resigned"),
    )[:2]
    (group_pk,) = sup.add(db, sup.tag_group(corp_id, "来源"))
    (tag_id,) = sup.add(db, sup.tag(corp_id, group_pk, "门店"))
    chat = sup.group_chat(corp_id, "alice", "福利群1")
    sup.add(db, chat)
    return {"corp_id": corp_id, "alice": alice, "bob": bob, "tag_id": tag_id, "chat_id": chat.chat_id}


def _live_channel(db: sessionmaker[Session], corp_id: int, name: str = "门店海报") -> int:
    (channel_id,) = sup.add(
        db,
        Channel(
            corp_id=corp_id,
            name=name,
            state="ch_test01",
            userids=["alice"],
            live_userids=["alice"],
            config_id="cfg-1",
            qr_url="https://wecom.example/contact_me/cfg-1",
        ),
    )
    return channel_id


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_with_forms_for_admin(db: sessionmaker[Session], path: str) -> None:
    # given
    corp_id = _corp(db)["corp_id"]
    client = sup.console_client(db, corp_id, "admin")

    # when
    r = client.get(path)

    # then
    assert r.status_code == 200
    assert FORMS[path] in r.text
    assert 'href="/channels"' in r.text and "渠道活码" in r.text  # the navigation, in Chinese


@pytest.mark.parametrize("path", PAGES)
def test_read_only_roles_see_no_forms(db: sessionmaker[Session], path: str) -> None:
    # given
    corp_id = _corp(db)["corp_id"]
    _live_channel(db, corp_id)
    client = sup.console_client(db, corp_id, "compliance")

    # when
    r = client.get(path)

    # then
    assert r.status_code == 200
    assert FORMS[path] not in r.text
    assert "csrf_token" not in r.text.split("</header>", 1)[1]  # no form posts anywhere below the header


def test_creating_a_channel_through_the_form(db: sessionmaker[Session]) -> None:
    # given
    data = _corp(db)
    corp_id = data["corp_id"]
    client = sup.console_client(db, corp_id, "operator")

    # when
    r = client.post(
        "/channels",
        data={
            "name": "地铁广告",
            "userids": ["alice", "bob"],
            "party_ids": ["2"],
            "daily_cap": "50",
            "slot0_weekdays": ["1", "2", "3"],
            "slot0_start": "09:00",
            "slot0_end": "18:00",
            "slot0_userids": ["bob"],
            "slot1_start": "09:00",  # a row left empty (only the default times) is ignored
            "slot1_end": "18:00",
            "tag_ids": [str(data["tag_id"])],
            "skip_verify": "1",
            "remark": "地铁",
            "welcome_text": "你好 {nickname}，我是 {employee}",
            "valid_until": "2099-01-01T00:00",
        },
    )

    # then
    assert r.status_code == 303
    with db() as s:
        channel = s.scalars(select(Channel).where(Channel.corp_id == corp_id)).one()
        outbox = s.scalars(select(WeComOutbox).where(WeComOutbox.corp_id == corp_id)).all()
    assert r.headers["location"] == f"/channels/{channel.id}"
    assert channel.userids == ["alice", "bob"] and channel.party_ids == [2] and channel.daily_cap == 50
    assert channel.schedule == [{"weekdays": [1, 2, 3], "start": "09:00", "end": "18:00", "userids": ["bob"]}]
    assert channel.tag_ids == [data["tag_id"]] and channel.skip_verify
    assert channel.welcome == {"text": "你好 {nickname}，我是 {employee}", "material_ids": [], "group_code_id": None}
    assert channel.valid_until == datetime(2098, 12, 31, 16, 0, tzinfo=UTC)  # midnight in Shanghai
    assert [o.kind for o in outbox] == ["add_contact_way"]
    page = client.get("/channels")
    assert 'data-testid="channel-row"' in page.text and "地铁广告" in page.text
    assert 'data-testid="syncing"' in page.text and 'hx-trigger="every 3s"' in page.text
    polled = client.get("/channels/list")
    assert polled.status_code == 200 and "地铁广告" in polled.text and "<html" not in polled.text
    detail = client.get(f"/channels/{channel.id}")
    assert detail.status_code == 200 and 'data-testid="syncing"' in detail.text


def test_a_refused_channel_keeps_its_input_and_says_why(db: sessionmaker[Session]) -> None:
    # given
    corp_id = _corp(db)["corp_id"]
    client = sup.console_client(db, corp_id, "admin")

    # when: nobody chosen to serve the code
    r = client.post("/channels", data={"name": "没有员工的渠道", "remark": "备注", "welcome_text": "欢迎"})
    unknown = client.post("/channels", data={"name": "离职员工渠道", "userids": ["gone"]})

    # then
    assert r.status_code == 200
    assert 'data-testid="channel-error"' in r.text and "请至少选择一名员工或一个部门" in r.text
    assert 'value="没有员工的渠道"' in r.text and 'value="备注"' in r.text and ">欢迎</textarea>" in r.text
    assert "no active employee gone" in unknown.text
    with db() as s:
        assert s.scalars(select(Channel)).all() == []
        assert s.scalars(select(WeComOutbox)).all() == []


def test_channel_detail_qr_poster_edit_and_delete(db: sessionmaker[Session]) -> None:
    # given
    data = _corp(db)
    corp_id = data["corp_id"]
    channel_id = _live_channel(db, corp_id)
    client = sup.console_client(db, corp_id, "admin")

    # when
    detail = client.get(f"/channels/{channel_id}")
    svg = client.get(f"/api/channels/{channel_id}/qr.svg")  # what <img> loads, with the session cookie
    png = client.get(f"/api/channels/{channel_id}/qr.png")
    poster = client.get(f"/channels/{channel_id}/poster")

    # then
    assert detail.status_code == 200
    for testid in ("qr-png", "qr-svg", "poster-link", "funnel-link", "channel-form", "channel-delete"):
        assert f'data-testid="{testid}"' in detail.text
    assert f'src="/api/channels/{channel_id}/qr.svg"' in detail.text
    assert "https://wecom.example/contact_me/cfg-1" in detail.text and "王小丽" in detail.text
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert poster.status_code == 200 and "<svg" in poster.text and "扫码添加专属顾问" in poster.text
    assert 'class="nav"' not in poster.text and "@page" in poster.text

    # when: edited (a full form, PATCH semantics) and deleted
    edited = client.post(
        f"/channels/{channel_id}/edit",
        data={"name": "门店海报（新）", "userids": ["bob"], "slot0_start": "09:00", "slot0_end": "18:00"},
    )
    deleted = client.post(f"/channels/{channel_id}/delete")

    # then
    assert edited.status_code == 303 and deleted.status_code == 303
    with db() as s:
        channel = s.get(Channel, channel_id)
        kinds = [o.kind for o in s.scalars(select(WeComOutbox).order_by(WeComOutbox.id))]
    assert channel is not None and channel.name == "门店海报（新）" and channel.userids == ["bob"]
    assert channel.status == CodeStatus.DELETED
    assert kinds == ["update_contact_way", "del_contact_way"]
    assert "门店海报（新）" not in client.get("/channels").text


def test_read_only_detail_has_no_edit_form(db: sessionmaker[Session]) -> None:
    # given
    corp_id = _corp(db)["corp_id"]
    channel_id = _live_channel(db, corp_id)
    client = sup.console_client(db, corp_id, "compliance")

    # when
    r = client.get(f"/channels/{channel_id}")
    refused = client.post(f"/channels/{channel_id}/delete")

    # then
    assert r.status_code == 200 and 'data-testid="qr-svg"' in r.text
    assert 'data-testid="channel-form"' not in r.text and 'data-testid="channel-delete"' not in r.text
    assert refused.status_code == 200 and "无权" in refused.text
    with db() as s:
        assert s.get(Channel, channel_id).status == CodeStatus.ACTIVE  # type: ignore[union-attr]


def test_channel_groups_create_rename_filter_delete(db: sessionmaker[Session]) -> None:
    # given
    corp_id = _corp(db)["corp_id"]
    channel_id = _live_channel(db, corp_id)
    client = sup.console_client(db, corp_id, "admin")

    # when
    created = client.post("/channel-groups", data={"name": "线下", "kind": "store"})
    duplicate = client.post("/channel-groups", data={"name": "线下", "kind": "store"})
    with db() as s:
        group_id = s.scalars(select(ChannelGroup.id)).one()
    renamed = client.post(f"/channel-groups/{group_id}", data={"name": "线下门店", "kind": "store"})
    with db.begin() as s:
        s.get(Channel, channel_id).group_id = group_id  # type: ignore[union-attr]
    filtered = client.get(f"/channels?group_id={group_id}")
    removed = client.post(f"/channel-groups/{group_id}", data={"delete": "1"})

    # then
    assert created.status_code == 303 and renamed.status_code == 303 and removed.status_code == 303
    assert duplicate.status_code == 200 and 'data-testid="channel-group-error"' in duplicate.text
    assert "线下门店" in filtered.text and 'data-testid="channel-row"' in filtered.text
    with db() as s:
        assert s.scalars(select(ChannelGroup)).all() == []
        assert s.get(Channel, channel_id).group_id is None  # type: ignore[union-attr]


def test_group_code_create_edit_delete(db: sessionmaker[Session]) -> None:
    # given
    data = _corp(db)
    corp_id = data["corp_id"]
    client = sup.console_client(db, corp_id, "operator")

    # when
    refused = client.post(  # auto-create without a base name
        "/group-codes", data={"name": "福利群码", "chat_ids": [data["chat_id"]], "auto_create_room": "1"}
    )
    created = client.post(
        "/group-codes",
        data={
            "name": "福利群码",
            "chat_ids": [data["chat_id"]],
            "auto_create_room": "1",
            "room_base_name": "福利群",
            "room_base_id": "2",
            "tag_ids": [str(data["tag_id"])],
            "welcome_text": "欢迎入群",
        },
    )

    # then
    assert refused.status_code == 200 and 'data-testid="group-code-error"' in refused.text
    assert 'value="福利群码"' in refused.text and "自动建群需要填写群名前缀" in refused.text
    assert created.status_code == 303
    with db() as s:
        code = s.scalars(select(GroupCode)).one()
        kinds = {o.kind for o in s.scalars(select(WeComOutbox))}
    assert code.chat_ids == [data["chat_id"]] and code.room_base_id == 2 and code.tag_ids == [data["tag_id"]]
    assert kinds == {"add_join_way", "add_group_welcome"}
    page = client.get("/group-codes")
    assert 'data-testid="group-code-row"' in page.text and "福利群1" in page.text

    # when
    edited = client.post(
        f"/group-codes/{code.id}/edit", data={"name": "福利群码2", "chat_ids": [data["chat_id"]], "welcome_text": ""}
    )
    deleted = client.post(f"/group-codes/{code.id}/delete")

    # then
    assert edited.status_code == 303 and deleted.status_code == 303
    with db() as s:
        stored = s.get(GroupCode, code.id)
    assert stored is not None and stored.name == "福利群码2" and not stored.auto_create_room
    assert stored.status == CodeStatus.DELETED


def _png() -> bytes:
    buffer = io.BytesIO()
    segno.make("x").save(buffer, kind="png")
    return buffer.getvalue()


def test_materials_upload_link_and_delete(db: sessionmaker[Session]) -> None:
    # given
    corp_id = _corp(db)["corp_id"]
    client = sup.console_client(db, corp_id, "admin")

    # when
    image = client.post(
        "/materials", data={"kind": "image", "title": "二维码"}, files={"image": ("a.png", _png(), "image/png")}
    )
    link = client.post(
        "/materials", data={"kind": "link", "title": "新品", "url": "https://example.com/p", "description": "看看"}
    )
    gif = client.post("/materials", data={"kind": "image"}, files={"image": ("a.gif", b"GIF89a", "image/gif")})
    bad_link = client.post("/materials", data={"kind": "link", "title": "坏链接", "url": "ftp://x"})

    # then
    assert image.status_code == 303 and link.status_code == 303
    assert gif.status_code == 200 and "only PNG and JPEG" in gif.text
    assert bad_link.status_code == 200 and 'data-testid="material-error"' in bad_link.text
    assert 'value="坏链接"' in bad_link.text
    with db() as s:
        materials = {m.kind: m for m in s.scalars(select(Material))}
    assert materials["image"].image_data == _png() and materials["image"].image_type == "image/png"
    assert materials["link"].url == "https://example.com/p"
    page = client.get("/materials")
    assert page.text.count('data-testid="material-row"') == 2
    assert f'src="/api/materials/{materials["image"].id}/image"' in page.text
    assert client.get(f"/api/materials/{materials['image'].id}/image").content == _png()

    # when
    removed = client.post(f"/materials/{materials['link'].id}/delete")

    # then
    assert removed.status_code == 303
    with db() as s:
        assert [m.kind for m in s.scalars(select(Material))] == ["image"]


def test_default_welcomes_and_the_welcome_log(db: sessionmaker[Session]) -> None:
    # given
    data = _corp(db)
    corp_id = data["corp_id"]
    channel_id = _live_channel(db, corp_id)
    now = now_utc()
    sup.add(
        db,
        WelcomeSend(
            corp_id=corp_id,
            welcome_code="wc-1",
            employee_id=data["alice"],
            channel_id=channel_id,
            source="channel",
            status="sent",
            event_at=now,
            received_at=now,
            deadline_at=now + timedelta(seconds=20),
            sent_at=now + timedelta(milliseconds=350),
        ),
        WelcomeSend(
            corp_id=corp_id,
            welcome_code="wc-2",
            employee_id=data["bob"],
            source="",
            status="expired",
            reason="the 20 s window closed",
            received_at=now,
            deadline_at=now + timedelta(seconds=20),
        ),
    )
    client = sup.console_client(db, corp_id, "admin")

    # when
    corp = client.post("/welcome", data={"scope": "corp", "text": "您好 {nickname}", "enabled": "1"})
    employee = client.post("/welcome", data={"scope": "employee", "employee_key": "bob", "text": "我是李大明"})
    missing = client.post("/welcome", data={"scope": "department", "department_key": "", "text": "x"})
    empty = client.post("/welcome", data={"scope": "corp", "text": "  "})

    # then
    assert corp.status_code == 303 and employee.status_code == 303
    assert missing.status_code == 200 and 'data-testid="welcome-error"' in missing.text
    assert empty.status_code == 200 and "欢迎语需要文字或至少一个附件" in empty.text
    with db() as s:
        templates = {t.scope: t for t in s.scalars(select(WelcomeTemplate))}
    assert templates["corp"].enabled and templates["corp"].text == "您好 {nickname}"
    assert templates["employee"].scope_key == "bob" and not templates["employee"].enabled
    page = client.get("/welcome")
    assert page.text.count('data-testid="welcome-template-row"') == 2 and "李大明" in page.text
    assert page.text.count('data-testid="welcome-send-row"') == 2 and ">350<" in page.text
    only_expired = client.get("/welcome?status=expired")
    assert only_expired.text.count('data-testid="welcome-send-row"') == 1 and "window closed" in only_expired.text
    edit = client.get(f"/welcome?edit={templates['employee'].id}")
    assert ">我是李大明</textarea>" in edit.text
    channel_page = client.get(f"/channels/{channel_id}")
    assert channel_page.text.count('data-testid="welcome-send-row"') == 1

    # when
    removed = client.post(f"/welcome/{templates['corp'].id}/delete")

    # then
    assert removed.status_code == 303
    with db() as s:
        assert [t.scope for t in s.scalars(select(WelcomeTemplate))] == ["employee"]


def test_english_switch(db: sessionmaker[Session]) -> None:
    # given
    corp_id = _corp(db)["corp_id"]
    client = sup.console_client(db, corp_id, "admin")
    client.cookies.set("siyu_lang", "en")

    # when
    r = client.get("/channels")

    # then
    assert r.status_code == 200 and "Channel codes" in r.text and "New channel" in r.text
