"""The emulator's acquisition side over real HTTP: 联系我, scans, group join ways, welcomes, media, traffic."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from siyu.wecom.emulator.cli import emulator_app
from siyu.wecom.emulator.server import RunningEmulator
from siyu.wecom.emulator.state import EmulatorState
from siyu.wecom.emulator.traffic import run_traffic
from tests.emulator_fixtures import CallbackReceiver, access_token

HTTP = httpx.Client(timeout=10)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def authed(emulator: RunningEmulator, path: str, body: dict[str, Any], **query: Any) -> dict[str, Any]:
    r = HTTP.post(
        f"{emulator.base_url}/cgi-bin/{path}", params={"access_token": access_token(emulator), **query}, json=body
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def active(state: EmulatorState) -> list[str]:
    return state.follow_user_ids()


def add_way(emulator: RunningEmulator, **overrides: Any) -> dict[str, Any]:
    body = {"type": 2, "scene": 2, "state": "store_sh", "user": active(emulator.state)[:2], **overrides}
    return authed(emulator, "externalcontact/add_contact_way", body)


def upload(emulator: RunningEmulator, data: bytes = PNG, media_type: str = "image") -> dict[str, Any]:
    r = HTTP.post(
        f"{emulator.base_url}/cgi-bin/media/upload",
        params={"access_token": access_token(emulator), "type": media_type},
        files={"media": ("a.png", data, "image/png")},
    )
    return dict(r.json())


def fields(event: Any) -> dict[str, str]:
    return {child.tag: child.text or "" for child in event}


# --- 联系我 ----------------------------------------------------------------------------------------


def test_contact_way_lifecycle(emulator: RunningEmulator) -> None:
    # given
    users = active(emulator.state)[:2]
    # when
    created = add_way(emulator, remark="门店海报", party=[3], skip_verify=False)
    got = authed(emulator, "externalcontact/get_contact_way", {"config_id": created["config_id"]})
    # then
    assert created["errcode"] == 0, created
    assert created["qr_code"] == f"{emulator.base_url}/scan/contact/{created['config_id']}"
    way = got["contact_way"]
    assert isinstance(way, dict)
    assert (way["user"], way["party"], way["state"], way["remark"]) == (users, [3], "store_sh", "门店海报")
    assert way["skip_verify"] is False and way["qr_code"] == created["qr_code"]


def test_scene_1_has_no_qr_code(emulator: RunningEmulator) -> None:
    created = add_way(emulator, scene=1)
    assert created["errcode"] == 0 and "qr_code" not in created


def test_update_contact_way_overwrites_and_resets_what_is_left_out(emulator: RunningEmulator) -> None:
    # given
    config_id = add_way(emulator, remark="old", skip_verify=False)["config_id"]
    new_user = active(emulator.state)[3]
    # when
    r = authed(emulator, "externalcontact/update_contact_way", {"config_id": config_id, "user": [new_user]})
    # then
    assert r["errcode"] == 0, r
    way = emulator.state.contact_ways[config_id]
    assert (way.user, way.remark, way.state, way.skip_verify) == ([new_user], "", "", True)


def test_del_and_unknown_config_id(emulator: RunningEmulator) -> None:
    config_id = add_way(emulator)["config_id"]
    assert authed(emulator, "externalcontact/del_contact_way", {"config_id": config_id})["errcode"] == 0
    for path in ("get_contact_way", "update_contact_way", "del_contact_way"):
        assert authed(emulator, f"externalcontact/{path}", {"config_id": config_id})["errcode"] == 41044
    assert authed(emulator, "externalcontact/get_contact_way", {})["errcode"] == 41043


def test_list_contact_way_pages_by_cursor(emulator: RunningEmulator) -> None:
    # given
    made = [add_way(emulator)["config_id"] for _ in range(5)]
    now = emulator.state.now()
    seen: list[str] = []
    cursor = ""
    # when
    while True:
        page = authed(
            emulator,
            "externalcontact/list_contact_way",
            {"start_time": now - 60, "end_time": now + 60, "cursor": cursor, "limit": 2},
        )
        assert page["errcode"] == 0, page
        seen += [c["config_id"] for c in page["contact_way"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # then
    assert seen == made
    assert authed(emulator, "externalcontact/list_contact_way", {"limit": 1001})["errcode"] == 40058
    out_of_range = {"start_time": now - 7200, "end_time": now - 3600}
    assert authed(emulator, "externalcontact/list_contact_way", out_of_range)["contact_way"] == []


def _not_activated(state: EmulatorState) -> str:
    employee = next(e for e in state.employees.values() if e.status == 1)
    employee.status = 4
    return employee.userid


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"type": None}, 41037),
        ({"type": 3}, 41037),
        ({"scene": None}, 41038),
        ({"scene": 5}, 41038),
        ({"type": 1}, 40058),  # two users on a single-member way
        ({"type": 2, "user": [], "party": []}, 40058),
        ({"state": "s" * 31}, 40058),
        ({"remark": "r" * 31}, 40058),
        ({"user": ["NoSuchUser"]}, 60111),
        ({"user": "not-activated"}, 40098),
        ({"party": [999]}, 60123),
    ],
)
def test_add_contact_way_errcodes(emulator: RunningEmulator, overrides: dict[str, Any], errcode: int) -> None:
    if overrides.get("user") == "not-activated":
        overrides = {"user": [_not_activated(emulator.state)]}
    body = {k: v for k, v in add_way_body(emulator, **overrides).items() if v is not None}
    assert authed(emulator, "externalcontact/add_contact_way", body)["errcode"] == errcode


def add_way_body(emulator: RunningEmulator, **overrides: Any) -> dict[str, Any]:
    return {"type": 2, "scene": 2, "state": "s", "user": active(emulator.state)[:2], **overrides}


def test_more_than_100_members_is_41041(emulator_factory: Any) -> None:
    emulator = emulator_factory(employees=130, customers=50)
    assert add_way(emulator, user=[], party=[1])["errcode"] == 41041
    assert add_way(emulator, user=active(emulator.state)[:100])["errcode"] == 0


def test_the_per_corp_cap_is_41045(emulator: RunningEmulator) -> None:
    emulator.state.contact_way_cap = 2
    assert [add_way(emulator)["errcode"] for _ in range(3)] == [0, 0, 41045]


# --- scanning a 联系我 -------------------------------------------------------------------------------


def test_scanning_over_http_adds_the_customer_with_state_and_welcome_code(
    emulator: RunningEmulator, callback_receiver: CallbackReceiver
) -> None:
    # given
    callback_receiver.use_corp(emulator)
    emulator.set_callback_url(callback_receiver.url)
    qr = add_way(emulator, type=1, user=active(emulator.state)[:1])["qr_code"]
    # when
    page = HTTP.get(qr)
    scanned = HTTP.post(qr, json={"name": "王小明"})
    # then
    assert page.status_code == 200 and "扫码添加 / Scan and add" in page.text and "<form" in page.text
    assert scanned.status_code == 200, scanned.text
    data = scanned.json()
    assert data["userid"] == active(emulator.state)[0] and data["name"] == "王小明"
    follow = emulator.state.follow(data["userid"], data["external_userid"])
    assert follow is not None and (follow.state, follow.add_way) == ("store_sh", 1)
    event = fields(callback_receiver.events()[0])
    assert event["ChangeType"] == "add_external_contact"
    assert (event["State"], event["WelcomeCode"]) == ("store_sh", data["welcome_code"])


def test_the_scan_page_form_posts_and_unknown_codes_are_404(emulator: RunningEmulator) -> None:
    qr = add_way(emulator)["qr_code"]
    assert HTTP.post(qr, data={}).status_code == 200
    assert HTTP.get(f"{emulator.base_url}/scan/contact/nope").status_code == 404
    assert HTTP.post(f"{emulator.base_url}/scan/contact/nope").status_code == 404


def test_a_multi_member_code_reaches_every_user_and_department_member(emulator: RunningEmulator) -> None:
    # given: two named users plus department 3 (客服部)
    state = emulator.state
    users = active(state)[:2]
    dept_members = [e.userid for e in state.employees.values() if 3 in e.department and e.status == 1]
    assert dept_members
    config_id = add_way(emulator, user=users, party=[3])["config_id"]
    # when
    reached = Counter(emulator.actors.scan_contact_way(config_id).data["userid"] for _ in range(60))
    # then
    assert set(reached) == set(users) | set(dept_members)


def test_scanning_skips_members_who_are_no_longer_active(emulator: RunningEmulator) -> None:
    users = active(emulator.state)[:2]
    config_id = add_way(emulator, user=users)["config_id"]
    emulator.actors.resign_employee(users[0])
    assert {emulator.actors.scan_contact_way(config_id).data["userid"] for _ in range(10)} == {users[1]}


# --- welcome messages ----------------------------------------------------------------------------


def welcome_code(emulator: RunningEmulator) -> str:
    return str(emulator.actors.add_customer(active(emulator.state)[0]).data["welcome_code"])


def test_a_welcome_is_accepted_once_and_recorded(emulator: RunningEmulator) -> None:
    # given
    code = welcome_code(emulator)
    media_id = upload(emulator)["media_id"]
    attachments = [
        {"msgtype": "image", "image": {"media_id": media_id}},
        {"msgtype": "link", "link": {"title": "新人礼", "url": "https://example.com/gift"}},
    ]
    body = {"welcome_code": code, "text": {"content": "你好"}, "attachments": attachments}
    # when
    first = authed(emulator, "externalcontact/send_welcome_msg", body)
    again = authed(emulator, "externalcontact/send_welcome_msg", body)
    listed = HTTP.get(f"{emulator.base_url}/emulator/welcome_deliveries").json()["welcome_deliveries"]
    # then
    assert (first["errcode"], again["errcode"]) == (0, 41051)
    assert len(listed) == 1
    assert (listed[0]["code"], listed[0]["text"], listed[0]["attachments"]) == (code, "你好", attachments)
    assert listed[0]["userid"] == active(emulator.state)[0]


def test_a_welcome_code_expires_after_20_seconds(emulator: RunningEmulator) -> None:
    # given
    code = welcome_code(emulator)
    start = time.time()
    emulator.state.clock = lambda: start + 21
    # when
    r = authed(emulator, "externalcontact/send_welcome_msg", {"welcome_code": code, "text": {"content": "hi"}})
    # then
    assert r["errcode"] == 41050
    assert "invalid welcome_code" in r["errmsg"]


def _miniprogram(media_id: str) -> dict[str, Any]:
    return {"title": "t", "pic_media_id": media_id, "appid": "wx1", "page": "/index"}


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"text": {"content": "hi"}}, 41049),
        ({"welcome_code": "nope", "text": {"content": "hi"}}, 41050),
        ({"welcome_code": "CODE"}, 40058),
        ({"welcome_code": "CODE", "text": {"content": "字" * 1334}}, 45002),
        ({"welcome_code": "CODE", "attachments": [{"msgtype": "link", "link": {"title": "x"}}] * 10}, 40058),
        ({"welcome_code": "CODE", "attachments": [{"msgtype": "image", "image": {"media_id": "gone"}}]}, 40007),
        ({"welcome_code": "CODE", "attachments": [{"msgtype": "image", "image": {}}]}, 40058),
        ({"welcome_code": "CODE", "attachments": [{"msgtype": "link", "link": {"title": "x"}}]}, 40058),
        ({"welcome_code": "CODE", "attachments": [{"msgtype": "video", "video": {"media_id": "gone"}}]}, 40007),
        ({"welcome_code": "CODE", "attachments": [{"msgtype": "file", "file": {"media_id": "gone"}}]}, 40007),
        (
            {"welcome_code": "CODE", "attachments": [{"msgtype": "miniprogram", "miniprogram": _miniprogram("x")}]},
            40007,
        ),
        ({"welcome_code": "CODE", "attachments": [{"msgtype": "voice", "voice": {}}]}, 40058),
    ],
)
def test_send_welcome_msg_errcodes_leave_the_code_usable(
    emulator: RunningEmulator, body: dict[str, Any], errcode: int
) -> None:
    # given
    code = welcome_code(emulator)
    if body.get("welcome_code") == "CODE":
        body = {**body, "welcome_code": code}
    # when
    r = authed(emulator, "externalcontact/send_welcome_msg", body)
    # then
    assert r["errcode"] == errcode, r
    retry = authed(emulator, "externalcontact/send_welcome_msg", {"welcome_code": code, "text": {"content": "ok"}})
    assert retry["errcode"] == 0


def test_attachments_with_uploaded_media_and_pic_url_are_accepted(emulator: RunningEmulator) -> None:
    media_id = upload(emulator)["media_id"]
    attachments = [
        {"msgtype": "image", "image": {"pic_url": "https://example.com/a.png"}},
        {"msgtype": "miniprogram", "miniprogram": _miniprogram(media_id)},
        {"msgtype": "video", "video": {"media_id": upload(emulator, media_type="video")["media_id"]}},
        {"msgtype": "file", "file": {"media_id": upload(emulator, media_type="file")["media_id"]}},
    ]
    body = {"welcome_code": welcome_code(emulator), "attachments": attachments}
    assert authed(emulator, "externalcontact/send_welcome_msg", body)["errcode"] == 0


def test_injected_41096_hits_the_next_call_only(emulator: RunningEmulator) -> None:
    # given
    code = welcome_code(emulator)
    r = HTTP.post(
        f"{emulator.base_url}/emulator/errors",
        json={
            "path": "externalcontact/send_welcome_msg",
            "errcode": 41096,
            "errmsg": "welcome msg is being distributed",
        },
    )
    assert r.status_code == 200, r.text
    body = {"welcome_code": code, "text": {"content": "hi"}}
    # when
    first = authed(emulator, "externalcontact/send_welcome_msg", body)
    second = authed(emulator, "externalcontact/send_welcome_msg", body)
    # then
    assert first["errcode"] == 41096 and "being distributed" in first["errmsg"]
    assert second["errcode"] == 0


# --- media and group welcome templates -----------------------------------------------------------


def test_media_upload_keeps_the_bytes_for_three_days(emulator: RunningEmulator) -> None:
    # given
    uploaded = upload(emulator)
    # when
    served = HTTP.get(f"{emulator.base_url}/emulator/media/{uploaded['media_id']}")
    # then
    assert uploaded["errcode"] == 0 and uploaded["type"] == "image"
    assert isinstance(uploaded["created_at"], str) and abs(int(uploaded["created_at"]) - time.time()) < 60
    assert served.content == PNG and served.headers["content-type"] == "image/png"
    assert upload(emulator, media_type="gif")["errcode"] == 40004
    start = time.time()
    emulator.state.clock = lambda: start + 3 * 86_400 + 60
    with pytest.raises(Exception, match="40007"):
        emulator.state.require_media(uploaded["media_id"])


def test_media_upload_without_the_media_part_fails(emulator: RunningEmulator) -> None:
    r = HTTP.post(
        f"{emulator.base_url}/cgi-bin/media/upload",
        params={"access_token": access_token(emulator), "type": "image"},
        files={"other": ("a.png", PNG, "image/png")},
    )
    assert r.json()["errcode"] == 41005


def test_group_welcome_template_lifecycle_and_limits(emulator: RunningEmulator) -> None:
    # given
    path = "externalcontact/group_welcome_template"
    added = authed(emulator, f"{path}/add", {"text": {"content": "欢迎 %NICKNAME%"}})
    template_id = added["template_id"]
    # when
    edited = authed(emulator, f"{path}/edit", {"template_id": template_id, "text": {"content": "新欢迎语"}})
    got = authed(emulator, f"{path}/get", {"template_id": template_id})
    deleted = authed(emulator, f"{path}/del", {"template_id": template_id})
    # then
    assert template_id.startswith("msg") and edited["errcode"] == 0 and deleted["errcode"] == 0
    assert got["text"] == {"content": "新欢迎语"}
    assert authed(emulator, f"{path}/get", {"template_id": template_id})["errcode"] == 40058
    assert authed(emulator, f"{path}/add", {"text": {"content": "字" * 1001}})["errcode"] == 45002
    assert authed(emulator, f"{path}/add", {})["errcode"] == 40058
    emulator.state.group_welcome_template_cap = 1
    assert [authed(emulator, f"{path}/add", {"text": {"content": "x"}})["errcode"] for _ in range(2)] == [0, 41055]


# --- group join ways ------------------------------------------------------------------------------


def join_way(emulator: RunningEmulator, chat_ids: list[str], **overrides: Any) -> dict[str, Any]:
    body = {"scene": 2, "remark": "门店群", "chat_id_list": chat_ids, "state": "grp_sh", **overrides}
    return authed(emulator, "externalcontact/groupchat/add_join_way", body)


def test_join_way_lifecycle(emulator: RunningEmulator) -> None:
    # given
    chats = list(emulator.state.groups)[:2]
    config_id = join_way(emulator, chats, auto_create_room=1, room_base_name="福利群", room_base_id=3)["config_id"]
    # when
    got = authed(emulator, "externalcontact/groupchat/get_join_way", {"config_id": config_id})["join_way"]
    update = {"config_id": config_id, "scene": 2, "chat_id_list": chats[:1], "remark": "改"}
    updated = authed(emulator, "externalcontact/groupchat/update_join_way", update)
    # then
    assert got == {
        "config_id": config_id,
        "scene": 2,
        "remark": "门店群",
        "auto_create_room": 1,
        "room_base_name": "福利群",
        "room_base_id": 3,
        "chat_id_list": chats,
        "qr_code": f"{emulator.base_url}/scan/group/{config_id}",
        "state": "grp_sh",
    }
    assert updated["errcode"] == 0
    way = emulator.state.join_ways[config_id]
    assert (way.chat_id_list, way.remark, way.state, way.auto_create_room) == (chats[:1], "改", "", 0)
    assert authed(emulator, "externalcontact/groupchat/del_join_way", {"config_id": config_id})["errcode"] == 0
    assert authed(emulator, "externalcontact/groupchat/get_join_way", {"config_id": config_id})["errcode"] == 41044


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"chat_id_list": []}, 40058),
        ({"chat_id_list": "six"}, 40058),
        ({"chat_id_list": ["wrNoSuchChat"]}, 40050),
        ({"scene": 3}, 40058),
        ({"state": "s" * 31}, 40058),
        ({"remark": "r" * 31}, 40058),
        ({"auto_create_room": 1}, 40058),  # without room_base_name
    ],
)
def test_add_join_way_errcodes(emulator: RunningEmulator, overrides: dict[str, Any], errcode: int) -> None:
    if overrides.get("chat_id_list") == "six":
        overrides = {"chat_id_list": [next(iter(emulator.state.groups))] * 6}
    assert join_way(emulator, list(emulator.state.groups)[:1], **overrides)["errcode"] == errcode


def test_join_way_fills_groups_then_auto_creates_one(
    emulator: RunningEmulator, callback_receiver: CallbackReceiver
) -> None:
    # given: two groups, room for one more in the first and two in the second
    callback_receiver.use_corp(emulator)
    emulator.set_callback_url(callback_receiver.url)
    first, second = list(emulator.state.groups.values())[:2]
    emulator.state.group_member_cap = len(first.members) + 1
    base = dict(auto_create_room=1, room_base_name="福利群", room_base_id=7)
    config_id = join_way(emulator, [first.chat_id, second.chat_id], **base)["config_id"]
    joins_second = emulator.state.group_member_cap - len(second.members)
    # when
    results = [emulator.actors.scan_join_way(config_id) for _ in range(1 + max(joins_second, 0) + 1)]
    # then
    chats = [r.data["chat_id"] for r in results]
    assert chats[0] == first.chat_id
    assert results[-1].data["created_group"] is True
    new_group = emulator.state.groups[chats[-1]]
    assert (new_group.name, new_group.owner) == ("福利群7", first.owner)
    way = emulator.state.join_ways[config_id]
    assert way.room_base_id == 8 and way.chat_id_list == [first.chat_id, second.chat_id, new_group.chat_id]
    member = new_group.members[-1]
    assert (member.join_scene, member.state, member.type) == (3, "grp_sh", 2)
    events = [fields(e) for e in callback_receiver.events()]
    assert events[-2] == {**events[-2], "ChatId": new_group.chat_id, "ChangeType": "create"}
    assert events[-1]["UpdateDetail"] == "add_member" and events[-1]["JoinScene"] == "3"


def test_a_full_join_way_without_auto_create_refuses_and_a_full_list_drops_the_oldest(
    emulator: RunningEmulator,
) -> None:
    # given
    owner = active(emulator.state)[0]
    chats = [emulator.actors.create_group(owner, name=f"群{i}").data["chat_id"] for i in range(5)]
    emulator.state.group_member_cap = 1
    closed = join_way(emulator, chats[:1])["config_id"]
    rolling = join_way(emulator, chats, auto_create_room=1, room_base_name="群", room_base_id=1)["config_id"]
    # when
    refused = HTTP.post(f"{emulator.base_url}/scan/group/{closed}", json={})
    joined = emulator.actors.scan_join_way(rolling)
    # then
    assert refused.status_code == 409 and "full" in refused.json()["detail"]
    assert emulator.state.join_ways[rolling].chat_id_list == [*chats[1:], joined.data["chat_id"]]


# --- traffic -----------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_traffic_paces_scans_weights_codes_and_churns_later(emulator: RunningEmulator) -> None:
    # given
    a, b = add_way(emulator)["config_id"], add_way(emulator, user=active(emulator.state)[2:4])["config_id"]
    fake = FakeTime()
    # when
    report = run_traffic(
        emulator.actors,
        config_ids={a: 3, b: 1},
        scans=40,
        per_minute=120,
        churn={a: 0.0, b: 1.0},
        churn_after=30,
        seed=1,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    # then
    assert report.scans == 40 and report.errors == 0
    assert report.per_config[a] + report.per_config[b] == 40 and report.per_config[a] > report.per_config[b] > 0
    assert set(report.per_employee) <= set(active(emulator.state)[:4])
    assert report.churned == report.churned_per_config[b] == report.per_config[b]
    assert 1000 + 30 < fake.now <= 1000 + 39 * 0.5 + 30  # the last churn falls due 30 s after its scan
    assert len(report.scan_times) == 40
    churned_state = [f for f in emulator.state.follows() if f.state == "store_sh"]
    assert len(churned_state) == report.per_config[a]


@pytest.mark.parametrize(("per_minute", "sleeps"), [(0, []), (60, [1.0] * 4)])
def test_traffic_without_churn_is_paced_evenly(
    emulator: RunningEmulator, per_minute: float, sleeps: list[float]
) -> None:
    config_id = add_way(emulator)["config_id"]
    fake = FakeTime()
    report = run_traffic(
        emulator.actors, config_ids=[config_id], scans=5, per_minute=per_minute, clock=fake.clock, sleep=fake.sleep
    )
    assert (report.scans, report.churned, fake.sleeps) == (5, 0, sleeps)


def test_traffic_control_endpoint_runs_in_the_background(emulator: RunningEmulator) -> None:
    # given
    config_id = add_way(emulator)["config_id"]
    # when
    started = HTTP.post(
        f"{emulator.base_url}/emulator/traffic", json={"scans": 6, "per_minute": 0, "churn": 0.5, "seed": 3}
    )
    run = started.json()
    for _ in range(100):
        run = HTTP.get(f"{emulator.base_url}/emulator/traffic/{run['id']}").json()
        if run["status"] != "running":
            break
        time.sleep(0.05)
    # then
    assert started.status_code == 202, started.text
    assert run["status"] == "done", run
    assert run["report"]["per_config"] == {config_id: 6}
    assert 0 < run["report"]["churned"] < 6
    assert HTTP.get(f"{emulator.base_url}/emulator/traffic").json()["runs"][0]["id"] == run["id"]
    bad = HTTP.post(f"{emulator.base_url}/emulator/traffic", json={"scans": 1, "config_ids": ["nope"]})
    assert bad.status_code == 404


def test_cli_traffic_waits_and_prints_the_report(emulator: RunningEmulator) -> None:
    config_id = add_way(emulator)["config_id"]
    result = CliRunner().invoke(
        emulator_app,
        ["traffic", "--url", emulator.base_url, "--scans", "3", "--per-minute", "0", "--config-id", f"{config_id}=2"],
    )
    assert result.exit_code == 0, result.output
    assert '"status": "done"' in result.output and f'"{config_id}": 3' in result.output


def test_a_traffic_run_can_be_stopped(emulator: RunningEmulator) -> None:
    # given: one scan every 10 s
    add_way(emulator)
    run = HTTP.post(f"{emulator.base_url}/emulator/traffic", json={"scans": 100, "per_minute": 6}).json()
    # when
    stopped = HTTP.delete(f"{emulator.base_url}/emulator/traffic/{run['id']}")
    emulator.emulator.traffic_runs[run["id"]].thread.join(timeout=5)
    # then
    assert stopped.status_code == 200
    final = HTTP.get(f"{emulator.base_url}/emulator/traffic/{run['id']}").json()
    assert final["status"] == "stopped" and final["report"]["scans"] <= 1
