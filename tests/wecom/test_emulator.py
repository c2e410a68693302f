"""The WeCom emulator over real HTTP: tokens, paging, limits, injected errors, and callbacks."""

from __future__ import annotations

import hashlib
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from siyu.wecom.emulator.cli import emulator_app
from siyu.wecom.emulator.server import RunningEmulator
from siyu.wecom.emulator.state import EmulatorState, build_state
from tests.emulator_fixtures import CallbackReceiver, access_token

ERRMSG = re.compile(
    r"^.+, hint: \[\d+\], from ip: [\d.]+, more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=-?\d+$"
)


HTTP = httpx.Client(timeout=10)  # one client: building one per call costs ~30 ms of TLS setup


def api(emulator: RunningEmulator, path: str, body: dict[str, Any] | None = None, **query: Any) -> dict[str, Any]:
    """Call /cgi-bin/<path> (POST when a body is given) and return the JSON; WeCom always answers 200."""
    url = f"{emulator.base_url}/cgi-bin/{path}"
    r = HTTP.post(url, params=query, json=body) if body is not None else HTTP.get(url, params=query)
    assert r.status_code == 200, r.text
    return dict(r.json())


def authed(emulator: RunningEmulator, path: str, body: dict[str, Any] | None = None, **query: Any) -> dict[str, Any]:
    return api(emulator, path, body, access_token=access_token(emulator), **query)


# --- tokens ------------------------------------------------------------------------------------


def test_gettoken_returns_the_same_token_while_valid(emulator: RunningEmulator) -> None:
    # given
    params = {"corpid": emulator.corp.corpid, "corpsecret": emulator.corp.secret}
    # when
    first, second = api(emulator, "gettoken", **params), api(emulator, "gettoken", **params)
    # then
    assert first["errcode"] == 0 and first["errmsg"] == "ok"
    assert first["expires_in"] == 7200
    assert second["access_token"] == first["access_token"]


@pytest.mark.parametrize(
    ("corpid", "secret", "errcode"),
    [("wwnotacorp", "x", 40013), (None, "wrong", 40001), ("", "x", 41002), (None, "", 41004)],
)
def test_gettoken_rejects_bad_credentials(
    emulator: RunningEmulator, corpid: str | None, secret: str, errcode: int
) -> None:
    data = api(emulator, "gettoken", corpid=emulator.corp.corpid if corpid is None else corpid, corpsecret=secret)
    assert data["errcode"] == errcode
    assert ERRMSG.match(data["errmsg"]), data["errmsg"]


def test_calls_without_a_valid_token_fail(emulator: RunningEmulator) -> None:
    assert api(emulator, "externalcontact/get_follow_user_list")["errcode"] == 41001
    assert api(emulator, "externalcontact/get_follow_user_list", access_token="bogus")["errcode"] == 40014


def test_expired_token_gives_42001_then_gettoken_issues_a_new_one(emulator: RunningEmulator) -> None:
    # given
    token = access_token(emulator)
    # when
    emulator.expire_tokens()
    # then
    assert api(emulator, "externalcontact/get_follow_user_list", access_token=token)["errcode"] == 42001
    fresh = access_token(emulator)
    assert fresh != token
    assert api(emulator, "externalcontact/get_follow_user_list", access_token=fresh)["errcode"] == 0


def test_revoked_token_gives_40014_through_the_control_endpoint(emulator: RunningEmulator) -> None:
    token = access_token(emulator)
    r = HTTP.post(f"{emulator.base_url}/emulator/tokens/revoke", json={})
    assert r.status_code == 200 and r.json()["changed"] == 1, r.text
    assert api(emulator, "externalcontact/get_follow_user_list", access_token=token)["errcode"] == 40014
    assert access_token(emulator) != token


# --- reads -------------------------------------------------------------------------------------


def _sync_all_follows(emulator: RunningEmulator, limit: int | None) -> list[tuple[str, str]]:
    token = access_token(emulator)
    userids = api(emulator, "externalcontact/get_follow_user_list", access_token=token)["follow_user"]
    seen: list[tuple[str, str]] = []
    cursor = ""
    while True:
        body: dict[str, Any] = {"userid_list": userids, "cursor": cursor, **({"limit": limit} if limit else {})}
        page = api(emulator, "externalcontact/batch/get_by_user", body, access_token=token)
        assert page["errcode"] == 0, page
        assert len(page["external_contact_list"]) <= min(limit or 50, 100)
        seen += [
            (i["follow_info"]["userid"], i["external_contact"]["external_userid"])
            for i in page["external_contact_list"]
        ]
        cursor = page["next_cursor"]
        if not cursor:
            return seen


@pytest.mark.parametrize("limit", [None, 7, 100, 1000])
def test_batch_get_by_user_pages_cover_every_follow_exactly_once(emulator: RunningEmulator, limit: int | None) -> None:
    # when
    seen = _sync_all_follows(emulator, limit)
    # then
    expected = [(f.userid, f.external_userid) for f in emulator.state.follows()]
    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == set(expected)


def test_batch_get_by_user_matches_the_state_row_by_row(emulator: RunningEmulator) -> None:
    follow = next(emulator.state.follows())
    page = authed(emulator, "externalcontact/batch/get_by_user", {"userid_list": [follow.userid], "limit": 1})
    item = page["external_contact_list"][0]
    customer = emulator.state.customers[follow.external_userid]
    assert item["external_contact"]["name"] == customer.name
    assert item["follow_info"]["tag_id"] == follow.tag_ids
    assert item["follow_info"]["createtime"] == follow.createtime
    assert item["follow_info"]["add_way"] == follow.add_way


def test_batch_get_by_user_limits(emulator: RunningEmulator) -> None:
    too_many = authed(emulator, "externalcontact/batch/get_by_user", {"userid_list": [f"u{i}" for i in range(101)]})
    assert too_many["errcode"] == 40058
    userids = emulator.state.follow_user_ids()
    default = authed(emulator, "externalcontact/batch/get_by_user", {"userid_list": userids})
    clamped = authed(emulator, "externalcontact/batch/get_by_user", {"userid_list": userids, "limit": 500})
    assert len(default["external_contact_list"]) == 50
    assert len(clamped["external_contact_list"]) == 100


def test_get_returns_follow_users_with_full_tags(emulator: RunningEmulator) -> None:
    follow = next(f for f in emulator.state.follows() if f.tag_ids)
    data = authed(emulator, "externalcontact/get", external_userid=follow.external_userid)
    entry = next(u for u in data["follow_user"] if u["userid"] == follow.userid)
    assert [t["tag_id"] for t in entry["tags"]] == follow.tag_ids
    assert {"group_name", "tag_name", "type"} <= set(entry["tags"][0])
    assert data["next_cursor"] == ""


def test_list_of_an_employee_without_customers_is_84061(emulator: RunningEmulator) -> None:
    assert authed(emulator, "externalcontact/list", userid="NoSuchUser")["errcode"] == 84061


def test_groupchat_list_pages_and_get_matches_member_version(emulator: RunningEmulator) -> None:
    token = access_token(emulator)
    chat_ids, cursor = [], ""
    while True:
        page = api(emulator, "externalcontact/groupchat/list", {"limit": 1, "cursor": cursor}, access_token=token)
        chat_ids += [g["chat_id"] for g in page["group_chat_list"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(chat_ids) == sorted(emulator.state.groups)
    chat = api(emulator, "externalcontact/groupchat/get", {"chat_id": chat_ids[0], "need_name": 1}, access_token=token)
    members = sorted(m["userid"] for m in chat["group_chat"]["member_list"])
    assert chat["group_chat"]["member_version"] == hashlib.md5(",".join(members).encode()).hexdigest()
    assert all(m["name"] for m in chat["group_chat"]["member_list"])


def test_groupchat_list_rejects_a_limit_out_of_range(emulator: RunningEmulator) -> None:
    assert authed(emulator, "externalcontact/groupchat/list", {"limit": 1001})["errcode"] == 40058


# --- rate limits and injected errors -----------------------------------------------------------


def test_rate_limit_gives_45009(emulator_factory: Callable[..., RunningEmulator]) -> None:
    # given
    emulator = emulator_factory(rate_limit_per_minute=5)
    token = access_token(emulator)
    # when
    codes = [api(emulator, "externalcontact/get_follow_user_list", access_token=token)["errcode"] for _ in range(7)]
    # then
    assert codes[:5] == [0] * 5
    assert codes[5:] == [45009, 45009]
    limited = api(emulator, "externalcontact/get_follow_user_list", access_token=token)
    assert limited["errmsg"].startswith("api freq out of limit, hint: [")
    assert api(emulator, "department/list", access_token=token)["errcode"] == 0  # the limit is per path


def test_injected_errors_hit_the_next_n_calls(emulator: RunningEmulator) -> None:
    # given
    token = access_token(emulator)
    r = HTTP.post(f"{emulator.base_url}/emulator/errors", json={"path": "department/list", "errcode": -1, "times": 2})
    assert r.status_code == 200, r.text
    emulator.inject_error("/cgi-bin/department/list", 45033)
    # when
    codes = [api(emulator, "department/list", access_token=token)["errcode"] for _ in range(4)]
    # then
    assert codes == [-1, -1, 45033, 0]


# --- API writes: state changes, no callback ----------------------------------------------------


def test_mark_tag_and_remark_change_state_without_callbacks(
    emulator: RunningEmulator, callback_receiver: CallbackReceiver
) -> None:
    # given
    callback_receiver.use_corp(emulator)
    emulator.set_callback_url(callback_receiver.url)
    follow = next(emulator.state.follows())
    tag_id = next(t for t in emulator.state.tags if t not in follow.tag_ids)
    who = {"userid": follow.userid, "external_userid": follow.external_userid}
    # when
    marked = authed(emulator, "externalcontact/mark_tag", {**who, "add_tag": [tag_id]})
    remarked = authed(emulator, "externalcontact/remark", {**who, "remark": "王姐", "remark_mobiles": ["13800000001"]})
    # then
    assert marked["errcode"] == 0 and remarked["errcode"] == 0
    assert tag_id in follow.tag_ids
    assert (follow.remark, follow.remark_mobiles) == ("王姐", ["13800000001"])
    assert callback_receiver.received == [] and emulator.deliveries == []


def test_mark_tag_for_someone_elses_customer_is_84061(emulator: RunningEmulator) -> None:
    follow = next(emulator.state.follows())
    outsider = next(u for u in emulator.state.follow_user_ids() if not emulator.state.follow(u, follow.external_userid))
    tag_id = next(iter(emulator.state.tags))
    body = {"userid": outsider, "external_userid": follow.external_userid, "add_tag": [tag_id]}
    assert authed(emulator, "externalcontact/mark_tag", body)["errcode"] == 84061


def test_deleting_the_last_tag_of_a_group_deletes_the_group(emulator: RunningEmulator) -> None:
    token = access_token(emulator)
    added = api(
        emulator,
        "externalcontact/add_corp_tag",
        {"group_name": "测试分组", "tag": [{"name": "甲"}, {"name": "甲"}]},
        access_token=token,
    )
    group = added["tag_group"]
    assert len(group["tag"]) == 1
    deleted = api(emulator, "externalcontact/del_corp_tag", {"tag_id": [group["tag"][0]["id"]]}, access_token=token)
    assert deleted["errcode"] == 0
    assert group["group_id"] not in emulator.state.tag_groups
    listing = api(emulator, "externalcontact/get_corp_tag_list", {}, access_token=token)
    assert all(g["group_id"] != group["group_id"] for g in listing["tag_group"])


# --- actors and callbacks ----------------------------------------------------------------------


def _fields(event: ET.Element) -> dict[str, str]:
    return {child.tag: (child.text or "") for child in event}


def _first_follow(state: EmulatorState) -> dict[str, str]:
    follow = next(state.follows())
    return {"userid": follow.userid, "external_userid": follow.external_userid}


def _chat_with_customer(state: EmulatorState) -> dict[str, Any]:
    group = next(iter(state.groups.values()))
    return {"chat_id": group.chat_id}


def _tag_group(state: EmulatorState) -> str:
    return next(iter(state.tag_groups))


Case = tuple[str, Callable[[EmulatorState], dict[str, Any]], dict[str, str]]
ACTION_CASES: list[Case] = [
    (
        "add_customer",
        lambda s: {"userid": s.follow_user_ids()[0], "state": "store_sh_01"},
        {"Event": "change_external_contact", "ChangeType": "add_external_contact", "State": "store_sh_01"},
    ),
    (
        "add_customer",
        lambda s: {"userid": s.follow_user_ids()[1], "half": True},
        {"Event": "change_external_contact", "ChangeType": "add_half_external_contact"},
    ),
    ("customer_delete_employee", _first_follow, {"ChangeType": "del_follow_user"}),
    ("employee_delete_customer", _first_follow, {"ChangeType": "del_external_contact", "Source": ""}),
    ("edit_remark", lambda s: {**_first_follow(s), "remark": "李总"}, {"ChangeType": "edit_external_contact"}),
    (
        "tag_customer",
        lambda s: {**_first_follow(s), "add_tags": [next(iter(s.tags))]},
        {"ChangeType": "edit_external_contact"},
    ),
    (
        "transfer_fail",
        lambda s: {**_first_follow(s), "reason": "customer_limit_exceed"},
        {"ChangeType": "transfer_fail", "FailReason": "customer_limit_exceed"},
    ),
    (
        "create_tag_group",
        lambda s: {"group_name": "会员卡", "tags": ["金卡", "银卡"]},
        {"Event": "change_external_tag", "TagType": "tag_group", "ChangeType": "create"},
    ),
    (
        "create_tag",
        lambda s: {"group_id": _tag_group(s), "name": "新标签"},
        {"TagType": "tag", "ChangeType": "create"},
    ),
    (
        "update_tag",
        lambda s: {"tag_id": next(iter(s.tags)), "name": "改名"},
        {"TagType": "tag", "ChangeType": "update"},
    ),
    (
        "update_tag_group",
        lambda s: {"group_id": _tag_group(s), "order": 99},
        {"TagType": "tag_group", "ChangeType": "update"},
    ),
    ("delete_tag", lambda s: {"tag_id": next(iter(s.tags))}, {"TagType": "tag", "ChangeType": "delete"}),
    (
        "delete_tag_group",
        lambda s: {"group_id": _tag_group(s)},
        {"TagType": "tag_group", "ChangeType": "delete"},
    ),
    ("shuffle_tags", lambda s: {"group_id": _tag_group(s)}, {"ChangeType": "shuffle"}),
    (
        "create_group",
        lambda s: {
            "owner": s.follow_user_ids()[0],
            "name": "新群",
            "external_userids": [_first_follow(s)["external_userid"]],
        },
        {"Event": "change_external_chat", "ChangeType": "create"},
    ),
    (
        "group_add_members",
        lambda s: {**_chat_with_customer(s), "userids": [next(iter(s.customers))], "join_scene": 3},
        {"ChangeType": "update", "UpdateDetail": "add_member", "JoinScene": "3", "MemChangeCnt": "1"},
    ),
    (
        "group_remove_members",
        lambda s: {**_chat_with_customer(s), "userids": [next(iter(s.groups.values())).members[-1].userid]},
        {"ChangeType": "update", "UpdateDetail": "del_member", "QuitScene": "0", "MemChangeCnt": "1"},
    ),
    (
        "group_change_owner",
        lambda s: {**_chat_with_customer(s), "new_owner": s.follow_user_ids()[-1]},
        {"ChangeType": "update", "UpdateDetail": "change_owner"},
    ),
    ("group_rename", lambda s: {**_chat_with_customer(s), "name": "改名群"}, {"UpdateDetail": "change_name"}),
    (
        "group_change_notice",
        lambda s: {**_chat_with_customer(s), "notice": "新公告"},
        {"UpdateDetail": "change_notice"},
    ),
    ("group_dismiss", _chat_with_customer, {"ChangeType": "dismiss"}),
    (
        "resign_employee",
        lambda s: {"userid": s.follow_user_ids()[-1]},
        {"Event": "change_contact", "ChangeType": "delete_user"},
    ),
    (
        "create_department",
        lambda s: {"name": "苏州门店", "parentid": 5},
        {"Event": "change_contact", "ChangeType": "create_party", "Name": "苏州门店", "ParentId": "5"},
    ),
    (
        "update_department",
        lambda s: {"id": 13, "name": "北京旗舰店"},
        {"ChangeType": "update_party", "Id": "13", "Name": "北京旗舰店"},
    ),
    ("delete_department", lambda s: {"id": 11}, {"ChangeType": "delete_party", "Id": "11"}),
]


@pytest.mark.parametrize(
    ("name", "params", "expected"), ACTION_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(ACTION_CASES)]
)
def test_each_action_delivers_an_encrypted_callback(
    emulator: RunningEmulator,
    callback_receiver: CallbackReceiver,
    name: str,
    params: Callable[[EmulatorState], dict[str, Any]],
    expected: dict[str, str],
) -> None:
    # given
    callback_receiver.use_corp(emulator)
    emulator.set_callback_url(callback_receiver.url)
    body = params(emulator.state)
    # when
    r = HTTP.post(f"{emulator.base_url}/emulator/actions/{name}", json=body)
    # then
    assert r.status_code == 200, r.text
    assert r.json()["deliveries"][0]["status"] == "delivered"
    event = _fields(callback_receiver.events()[0])
    assert event["ToUserName"] == emulator.corp.corpid
    assert event["FromUserName"] == "sys"
    assert event["MsgType"] == "event"
    assert abs(int(event["CreateTime"]) - time.time()) < 60
    assert {k: event.get(k) for k in expected} == expected
    for key in ("UserID", "ExternalUserID", "ChatId", "Id"):
        if key in event and key.lower() in {k.lower() for k in body}:
            assert event[key] == str(body[next(k for k in body if k.lower() == key.lower())])


def test_add_customer_creates_the_follow_and_a_welcome_code(
    emulator: RunningEmulator, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.use_corp(emulator)
    emulator.set_callback_url(callback_receiver.url)
    userid = emulator.state.follow_user_ids()[0]
    result = emulator.actors.add_customer(userid, state="store_sh_01")
    event = _fields(callback_receiver.events()[0])
    follow = emulator.state.follow(userid, result.data["external_userid"])
    assert follow is not None and follow.state == "store_sh_01"
    assert event["ExternalUserID"] == result.data["external_userid"]
    assert event["WelcomeCode"] == result.data["welcome_code"]


def test_group_member_change_carries_member_versions(
    emulator: RunningEmulator, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.use_corp(emulator)
    emulator.set_callback_url(callback_receiver.url)
    group = next(iter(emulator.state.groups.values()))
    before = group.member_version()
    newcomer = next(c for c in emulator.state.customers if c not in {m.userid for m in group.members})
    emulator.actors.group_add_members(group.chat_id, [newcomer])
    event = callback_receiver.events()[0]
    assert event.findtext("LastMemVer") == before
    assert event.findtext("CurMemVer") == group.member_version() != before
    assert [i.text for i in event.iter("Item")] == [newcomer]


def test_callback_is_retried_up_to_three_times(emulator: RunningEmulator, callback_receiver: CallbackReceiver) -> None:
    # given
    callback_receiver.use_corp(emulator)
    emulator.set_callback_url(callback_receiver.url)
    callback_receiver.fail_next = 2
    # when
    first = emulator.actors.add_customer().delivery
    callback_receiver.fail_next = 5
    second = emulator.actors.add_customer().delivery
    # then
    assert first is not None and (first.status, first.attempts, first.responses) == ("delivered", 3, [500, 500, 200])
    assert second is not None and (second.status, second.attempts) == ("failed", 3)
    assert len(callback_receiver.received) == 6


def test_saving_a_callback_url_runs_the_echostr_check(
    emulator: RunningEmulator, callback_receiver: CallbackReceiver
) -> None:
    # a receiver that cannot decrypt fails verification and the URL is not saved
    refused = HTTP.post(f"{emulator.base_url}/emulator/callback", json={"url": callback_receiver.url})
    assert refused.status_code == 400 and "echostr" in refused.json()["detail"]
    callback_receiver.use_corp(emulator)
    saved = HTTP.post(f"{emulator.base_url}/emulator/callback", json={"url": callback_receiver.url})
    assert saved.status_code == 200, saved.text
    assert saved.json()["callback_url"] == callback_receiver.url


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("no_such_action", {}, 404),
        ("add_customer", {"userid": "Nobody"}, 404),
        ("add_customer", {"userid": ["not", "a", "string"]}, 422),
        ("add_customer", {"unexpected": 1}, 422),
        ("delete_department", {"id": 1}, 409),
    ],
)
def test_bad_action_input_is_a_clear_4xx(
    emulator: RunningEmulator, name: str, body: dict[str, Any], status: int
) -> None:
    r = HTTP.post(f"{emulator.base_url}/emulator/actions/{name}", json=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_cli_act_runs_an_action_and_reports_failures(emulator: RunningEmulator) -> None:
    runner = CliRunner()
    ok = runner.invoke(emulator_app, ["act", "create_department", "--url", emulator.base_url, "-p", "name=测试部"])
    assert ok.exit_code == 0, ok.output
    assert '"id": 14' in ok.output
    bad = runner.invoke(
        emulator_app, ["act", "create_department", "--url", emulator.base_url, "-p", "parentid=99", "-p", "name=x"]
    )
    assert bad.exit_code == 1
    down = runner.invoke(emulator_app, ["act", "add_customer", "--url", "http://127.0.0.1:9"])
    assert down.exit_code == 2
    assert "unreachable" in down.output


# --- determinism and scale ---------------------------------------------------------------------


def _snapshot(state: EmulatorState) -> dict[str, Any]:
    return {
        "corp": asdict(state.corp),
        "employees": [asdict(e) for e in state.employees.values()],
        "customers": [asdict(c) for c in state.customers.values()],
        "follows": [asdict(f) for f in state.follows()],
        "tags": [asdict(t) for t in state.tags.values()],
        "groups": [asdict(g) for g in state.groups.values()],
    }


def test_same_seed_builds_the_same_corp() -> None:
    a = build_state(seed=3, employees=30, customers=500, now=1_700_000_000)
    b = build_state(seed=3, employees=30, customers=500, now=1_700_000_000)
    c = build_state(seed=4, employees=30, customers=500, now=1_700_000_000)
    assert _snapshot(a) == _snapshot(b)
    assert _snapshot(a) != _snapshot(c)


def test_generated_corp_has_wecom_shaped_ids() -> None:
    state = build_state(seed=1, employees=30, customers=400)
    assert re.fullmatch(r"ww[0-9a-f]{16}", state.corp.corpid)
    assert all(re.fullmatch(r"wm[\w-]{30}", c) for c in state.customers)
    assert all(re.fullmatch(r"et[\w-]{30}", t) for t in state.tags)
    assert all(re.fullmatch(r"wr[\w-]{30}", g) for g in state.groups)
    assert len({e.userid for e in state.employees.values()}) == 30
    follows_per_customer = sum(1 for _ in state.follows()) / len(state.customers)
    assert 1.3 < follows_per_customer < 1.7
    assert all(1 <= len(state.customer_follows[c]) <= 3 for c in state.customers)


def test_paging_a_larger_corp_returns_every_follow_once(emulator_factory: Callable[..., RunningEmulator]) -> None:
    # its speed is measured in bench/sync_full.py (the fetch-only baseline), not here
    emulator = emulator_factory(employees=50, customers=5_000)
    seen = _sync_all_follows(emulator, 100)
    assert len(seen) == sum(1 for _ in emulator.state.follows())
