"""WeComClient's acquisition calls over real HTTP against the emulator: 联系我, join ways, welcomes, media."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from siyu.wecom.client import WeComClient
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from siyu.wecom.errors import InvalidRequestError, NotFoundError, TransportError
from siyu.wecom.payloads import ContactWay
from siyu.wecom.ratelimit import RateLimiter
from tests.wecom.client_support import CountingTransport, MemoryTokenStore, emulator_client

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 32


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with start_emulator(employees=8, customers=60, seed=7) as running:
        yield running


@pytest.fixture
def transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
def client(emu: RunningEmulator, transport: CountingTransport) -> Iterator[WeComClient]:
    with emulator_client(emu, transport) as wecom:
        yield wecom


def users(emu: RunningEmulator, n: int = 2) -> list[str]:
    return emu.state.follow_user_ids()[:n]


def test_contact_way_round_trip(emu: RunningEmulator, client: WeComClient) -> None:
    # given
    created = client.add_contact_way(
        type=2, scene=2, state="poster_618", user=users(emu), party=[3], skip_verify=False, remark="海报"
    )
    # when
    way = client.get_contact_way(created.config_id)
    client.update_contact_way(
        created.config_id, user=users(emu, 1), party=[], skip_verify=True, remark="新", state="poster_619"
    )
    updated = client.get_contact_way(created.config_id)
    # then
    assert created.qr_code == f"{emu.base_url}/scan/contact/{created.config_id}"
    assert (way.type, way.scene, way.user, way.party, way.skip_verify) == (2, 2, users(emu), [3], False)
    assert (way.state, way.remark, way.qr_code) == ("poster_618", "海报", created.qr_code)
    assert (updated.user, updated.party, updated.state, updated.remark) == (users(emu, 1), [], "poster_619", "新")
    client.del_contact_way(created.config_id)
    with pytest.raises(InvalidRequestError) as raised:
        client.get_contact_way(created.config_id)
    assert raised.value.errcode == 41044


def test_add_contact_way_errors_are_typed(emu: RunningEmulator, client: WeComClient) -> None:
    with pytest.raises(InvalidRequestError) as too_many:
        client.add_contact_way(type=1, scene=2, user=users(emu, 2))
    with pytest.raises(NotFoundError) as unknown:
        client.add_contact_way(type=1, scene=2, user=["NoSuchUser"])
    assert (too_many.value.errcode, unknown.value.errcode) == (40058, 60111)


def test_iter_contact_way_ids_pages_through_everything(
    emu: RunningEmulator, client: WeComClient, transport: CountingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: pages of 2 so paging happens
    monkeypatch.setattr("siyu.wecom.client.CONTACT_WAY_PAGE", 2)
    made = [client.add_contact_way(type=1, scene=1, user=users(emu, 1)).config_id for _ in range(5)]
    now = emu.state.now()
    # when
    ids = list(client.iter_contact_way_ids(now - 60, now + 60))
    # then
    assert ids == made
    assert transport.paths["/cgi-bin/externalcontact/list_contact_way"] == 3


def test_get_contact_way_tolerates_the_old_one_element_list() -> None:
    # given: wechatpy's old fixture shape, served by a stub transport
    way = {"config_id": "42b3", "type": 1, "scene": 2, "user": ["zhangsan"], "party": [], "state": "s"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("gettoken"):
            return httpx.Response(200, json={"errcode": 0, "access_token": "T", "expires_in": 7200})
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "contact_way": [way]})

    client = WeComClient(
        corp_id=2,
        corpid="ww1",
        secret="s",
        token_store=MemoryTokenStore(),
        limiter=RateLimiter(),
        transport=httpx.MockTransport(handler),
    )
    # when
    got = client.get_contact_way("42b3")
    # then
    assert got == ContactWay.model_validate(way)


def test_join_way_round_trip(emu: RunningEmulator, client: WeComClient) -> None:
    # given
    chats = list(emu.state.groups)[:2]
    config_id = client.add_join_way(
        scene=2,
        remark="门店群",
        auto_create_room=True,
        room_base_name="福利群",
        room_base_id=1,
        chat_id_list=chats,
        state="grp",
    )
    # when
    way = client.get_join_way(config_id)
    client.update_join_way(
        config_id,
        scene=2,
        remark="改",
        auto_create_room=False,
        room_base_name="",
        room_base_id=0,
        chat_id_list=chats[:1],
        state="grp2",
    )
    updated = client.get_join_way(config_id)
    # then
    assert (way.chat_id_list, way.auto_create_room, way.room_base_name, way.state) == (chats, 1, "福利群", "grp")
    assert way.qr_code == f"{emu.base_url}/scan/group/{config_id}"
    assert (updated.chat_id_list, updated.remark, updated.state, updated.auto_create_room) == (
        chats[:1],
        "改",
        "grp2",
        0,
    )
    client.del_join_way(config_id)
    with pytest.raises(InvalidRequestError):
        client.get_join_way(config_id)
    with pytest.raises(ValueError):
        client.add_join_way(
            scene=2, remark="", auto_create_room=False, room_base_name="", room_base_id=0, chat_id_list=[], state=""
        )


def test_upload_image_then_send_welcome_with_it(emu: RunningEmulator, client: WeComClient) -> None:
    # given
    media_id, created_at = client.upload_image("a.png", PNG, "image/png")
    code = emu.actors.add_customer(users(emu, 1)[0]).data["welcome_code"]
    attachments: list[dict[str, Any]] = [{"msgtype": "image", "image": {"media_id": media_id}}]
    # when
    client.send_welcome_msg(code, text="欢迎光临", attachments=attachments)
    # then
    assert abs(created_at - emu.state.now()) < 60
    assert emu.state.media[media_id].data == PNG
    [delivery] = emu.welcome_deliveries
    assert (delivery.code, delivery.text, delivery.attachments) == (code, "欢迎光临", attachments)
    with pytest.raises(InvalidRequestError) as again:
        client.send_welcome_msg(code, text="again", attachments=[])
    assert again.value.errcode == 41051


def test_send_welcome_msg_surfaces_41096_and_expired_codes(emu: RunningEmulator, client: WeComClient) -> None:
    code = emu.actors.add_customer(users(emu, 1)[0]).data["welcome_code"]
    emu.inject_error("externalcontact/send_welcome_msg", 41096)
    with pytest.raises(InvalidRequestError) as busy:
        client.send_welcome_msg(code, text="hi", attachments=[])
    start = emu.state.now()
    emu.state.clock = lambda: start + 21
    with pytest.raises(InvalidRequestError) as expired:
        client.send_welcome_msg(code, text="hi", attachments=[])
    assert (busy.value.errcode, expired.value.errcode) == (41096, 41050)


def test_upload_survives_a_token_refresh_and_a_rate_limit(
    emu: RunningEmulator, client: WeComClient, transport: CountingTransport
) -> None:
    # given: a token WeCom has revoked, and one 45009 waiting on the upload
    client.get_token()
    emu.revoke_tokens()
    emu.inject_error("media/upload", 45009)
    # when
    media_id, _ = client.upload_image("b.png", PNG, "image/png")
    # then: the 45009 was backed off, the 40014 refreshed once, and the bytes arrived whole
    assert transport.paths["/cgi-bin/media/upload"] == 3
    assert transport.paths["/cgi-bin/gettoken"] == 2
    assert emu.state.media[media_id].data == PNG


def test_group_welcome_templates(emu: RunningEmulator, client: WeComClient) -> None:
    template_id = client.add_group_welcome_template("欢迎 %NICKNAME%")
    client.edit_group_welcome_template(template_id, "欢迎新朋友 %NICKNAME%")
    assert emu.state.group_welcome_templates[template_id].content == {"text": {"content": "欢迎新朋友 %NICKNAME%"}}
    client.del_group_welcome_template(template_id)
    assert template_id not in emu.state.group_welcome_templates


def test_a_shape_we_cannot_read_is_a_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("gettoken"):
            return httpx.Response(200, json={"errcode": 0, "access_token": "T", "expires_in": 7200})
        return httpx.Response(200, content=json.dumps({"errcode": 0, "type": "image", "created_at": "x1"}))

    client = WeComClient(
        corp_id=3,
        corpid="ww1",
        secret="s",
        token_store=MemoryTokenStore(),
        limiter=RateLimiter(),
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(TransportError):
        client.upload_image("a.png", PNG, "image/png")
