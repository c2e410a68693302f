"""The emulator's mass messages and Moments over real HTTP: confirmations, receive caps, reactions, controls."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from siyu.wecom.emulator.mass import reaction_chance
from siyu.wecom.emulator.server import RunningEmulator
from tests.emulator_fixtures import CallbackReceiver, access_token

HTTP = httpx.Client(timeout=10)
DAY = 86_400
# 2025-03-10 12:00 in Shanghai (a Monday; March has 31 days)
MONDAY_NOON = int(datetime(2025, 3, 10, 4, 0, tzinfo=UTC).timestamp())


class Clock:
    """The emulator's clock, moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(emulator: RunningEmulator) -> Clock:
    emulator.state.clock = clock = Clock(MONDAY_NOON)
    emulator.configure_mass(confirm_probability=1.0, confirm_delay=0, reaction_delay=0, moment_job_seconds=0)
    return clock


def api(emulator: RunningEmulator, path: str, body: dict[str, Any] | None = None, **query: Any) -> dict[str, Any]:
    params = {"access_token": access_token(emulator), **query}
    url = f"{emulator.base_url}/cgi-bin/externalcontact/{path}"
    r = HTTP.get(url, params=params) if body is None else HTTP.post(url, params=params, json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def control(emulator: RunningEmulator, path: str, body: dict[str, Any] | None = None, **query: Any) -> httpx.Response:
    url = f"{emulator.base_url}/emulator/{path}"
    return HTTP.get(url, params=query) if body is None else HTTP.post(url, json=body)


def sender_and_customers(emulator: RunningEmulator, at_least: int = 3) -> tuple[str, list[str]]:
    for userid in emulator.state.follow_user_ids():
        follows = emulator.state.follow_lists.get(userid)
        if follows and len(follows) >= at_least:
            return userid, [f.external_userid for f in follows.items]
    raise AssertionError("no employee with enough customers")


def send(emulator: RunningEmulator, sender: str, customers: list[str], **extra: Any) -> str:
    body = {"sender": sender, "external_userid": customers, "text": {"content": "新品上市"}, **extra}
    answer = api(emulator, "add_msg_template", body)
    assert answer["errcode"] == 0, answer
    return str(answer["msgid"])


def statuses(emulator: RunningEmulator, msgid: str, userid: str) -> list[int]:
    answer = api(emulator, "get_groupmsg_send_result", {"msgid": msgid, "userid": userid})
    assert answer["errcode"] == 0, answer
    return [item["status"] for item in answer["send_list"]]


def task_status(emulator: RunningEmulator, msgid: str) -> list[int]:
    return [t["status"] for t in api(emulator, "get_groupmsg_task", {"msgid": msgid})["task_list"]]


# --- add_msg_template: what WeCom refuses --------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        ({"sender": ""}, 40058),
        ({"sender": "NoSuchUser"}, 60111),
        ({"chat_type": "broadcast"}, 40058),
        ({"text": {"content": ""}}, 40058),
        ({"text": {"content": "长" * 1400}}, 45002),
        ({"attachments": [{"msgtype": "link", "link": {"title": "t", "url": "https://e.com"}}] * 10}, 40058),
        ({"attachments": [{"msgtype": "image", "link": {"title": "t", "url": "https://e.com"}}]}, 41065),
        ({"attachments": [{"msgtype": "voice", "voice": {"media_id": "x"}}]}, 41065),
        ({"attachments": [{"msgtype": "image", "image": {"media_id": "3NoSuchMedia"}}]}, 40007),
        ({"tag_filter": {"group_list": [{"tag_list": ["et1"]}]}}, 40058),
        ({"external_userid": ["wm"] * 10_001}, 40058),
    ],
)
def test_add_msg_template_checks(emulator: RunningEmulator, change: dict[str, Any], errcode: int) -> None:
    sender, customers = sender_and_customers(emulator)
    body = {"chat_type": "single", "sender": sender, "external_userid": customers[:2], "text": {"content": "hi"}}
    assert api(emulator, "add_msg_template", {**body, **change})["errcode"] == errcode


def test_a_sender_without_recipients_means_every_customer_of_the_sender(emulator: RunningEmulator) -> None:
    sender, customers = sender_and_customers(emulator)
    answer = api(emulator, "add_msg_template", {"sender": sender, "text": {"content": "hi"}})
    assert emulator.state.mass_tasks[answer["msgid"]].senders[sender].recipients == customers


def test_group_messages_need_chats_of_the_sender(emulator: RunningEmulator, clock: Clock) -> None:
    # given
    group = next(iter(emulator.state.groups.values()))
    other = next(g for g in emulator.state.groups.values() if g.owner != group.owner)
    body = {"chat_type": "group", "sender": group.owner, "text": {"content": "群发"}}
    # when
    answer = api(emulator, "add_msg_template", {**body, "chat_id_list": [group.chat_id, other.chat_id, "wrNope"]})
    refused = api(emulator, "add_msg_template", {**body, "chat_id_list": [other.chat_id]})
    # then
    assert answer["fail_list"] == [other.chat_id, "wrNope"] and refused["errcode"] == 41048
    result = api(emulator, "get_groupmsg_send_result", {"msgid": answer["msgid"], "userid": group.owner})
    assert result["send_list"] == [
        {"chat_id": group.chat_id, "userid": group.owner, "status": 1, "send_time": clock.now}
    ]


# --- confirmation ------------------------------------------------------------------------------------


def test_the_sender_confirms_after_the_delay(emulator: RunningEmulator, clock: Clock) -> None:
    # given
    emulator.configure_mass(confirm_delay=[10, 10])
    sender, customers = sender_and_customers(emulator)
    msgid = send(emulator, sender, customers[:2])
    before = (task_status(emulator, msgid), statuses(emulator, msgid, sender))
    # when
    clock.now += 10
    # then
    assert before == ([0], [0, 0])
    assert api(emulator, "get_groupmsg_task", {"msgid": msgid})["task_list"] == [
        {"userid": sender, "status": 2, "send_time": MONDAY_NOON + 10}
    ]
    assert statuses(emulator, msgid, sender) == [1, 1]


def test_confirm_probability_decides_per_task_and_reproducibly(emulator_factory: Any) -> None:
    # given: two identical emulators where half the tasks are confirmed
    outcomes = []
    for _ in range(2):
        emu = emulator_factory()
        emu.configure_mass(confirm_probability=0.5, confirm_delay=0)
        sender, customers = sender_and_customers(emu)
        msgids = [send(emu, sender, customers[:1]) for _ in range(40)]
        outcomes.append([task_status(emu, m)[0] for m in msgids])
    # then
    assert outcomes[0] == outcomes[1]
    assert 8 <= outcomes[0].count(2) <= 32


def test_confirm_and_decline_through_the_control_plane(emulator: RunningEmulator, clock: Clock) -> None:
    # given: nobody confirms on their own
    emulator.configure_mass(confirm_probability=0.0)
    sender, customers = sender_and_customers(emulator)
    first, second = send(emulator, sender, customers[:1]), send(emulator, sender, customers[1:2])
    # when
    confirmed = control(emulator, "mass/confirm", {"msgid": first, "userid": sender})
    declined = control(emulator, "mass/confirm", {"msgid": second, "userid": sender, "decline": True})
    clock.now += DAY
    again = control(emulator, "mass/confirm", {"msgid": first, "userid": sender})
    # then
    assert confirmed.json() == {"msgid": first, "userid": sender, "decision": "sent"}
    assert declined.json()["decision"] == "declined"
    assert (task_status(emulator, first), task_status(emulator, second)) == ([2], [0])
    assert again.status_code == 409
    assert control(emulator, "mass/confirm", {"msgid": "msgNope", "userid": sender}).status_code == 404
    assert control(emulator, "mass/confirm", {"userid": sender}).status_code == 422


def test_cancelled_tasks_are_never_sent_by_unconfirmed_senders(emulator: RunningEmulator, clock: Clock) -> None:
    # given
    emulator.configure_mass(confirm_delay=[60, 60])
    sender, customers = sender_and_customers(emulator)
    msgid = send(emulator, sender, customers[:2])
    # when
    cancelled = api(emulator, "cancel_groupmsg_send", {"msgid": msgid})
    clock.now += 3600
    # then
    assert cancelled["errcode"] == 0
    assert task_status(emulator, msgid) == [0] and statuses(emulator, msgid, sender) == [0, 0]
    assert control(emulator, "mass/confirm", {"msgid": msgid, "userid": sender}).status_code == 409


def test_remind_three_times_a_day_and_it_moves_idle_senders(emulator: RunningEmulator, clock: Clock) -> None:
    # given: the sender leaves the task alone
    emulator.configure_mass(confirm_probability=0.0)
    sender, customers = sender_and_customers(emulator)
    msgid = send(emulator, sender, customers[:1])
    # when: two reminds change nothing; then the sender is willing and the third remind works
    codes = [api(emulator, "remind_groupmsg_send", {"msgid": msgid})["errcode"] for _ in range(2)]
    emulator.configure_mass(confirm_probability=1.0)
    codes.append(api(emulator, "remind_groupmsg_send", {"msgid": msgid})["errcode"])
    codes.append(api(emulator, "remind_groupmsg_send", {"msgid": msgid})["errcode"])
    clock.now += DAY + 1
    codes.append(api(emulator, "remind_groupmsg_send", {"msgid": msgid})["errcode"])
    # then
    assert codes == [0, 0, 0, 45047, 0]
    assert task_status(emulator, msgid) == [2]
    assert api(emulator, "remind_groupmsg_send", {"msgid": "msgNope"})["errcode"] == 41047
    assert api(emulator, "remind_groupmsg_send", {})["errcode"] == 41046


def test_results_answer_41063_while_the_task_is_dispatched(emulator: RunningEmulator, clock: Clock) -> None:
    emulator.configure_mass(dispatch_seconds=2)
    sender, customers = sender_and_customers(emulator)
    msgid = send(emulator, sender, customers[:1])
    assert api(emulator, "get_groupmsg_task", {"msgid": msgid})["errcode"] == 41063
    clock.now += 2
    assert api(emulator, "get_groupmsg_task", {"msgid": msgid})["errcode"] == 0


# --- statuses 2 and 3 --------------------------------------------------------------------------------


def test_a_customer_who_left_before_the_confirmation_is_not_a_friend(emulator: RunningEmulator, clock: Clock) -> None:
    # given
    emulator.configure_mass(confirm_delay=[5, 5])
    sender, customers = sender_and_customers(emulator)
    msgid = send(emulator, sender, customers[:2])
    # when
    emulator.actors.customer_delete_employee(sender, customers[0])
    clock.now += 5
    # then
    assert statuses(emulator, msgid, sender) == [2, 1]


@pytest.mark.parametrize(
    ("mode", "offsets", "expected"),
    [
        # days_in_month: 1 a day (the second the same day is status 3), the next day again
        ("days_in_month", [0, 60, DAY], [1, 3, 1]),
        ("daily_1", [0, 60, DAY], [1, 3, 1]),
        # weekly_7: 7 in the ISO week (Mon 10 … Sun 16 March), the 8th refused, next Monday again
        ("weekly_7", [0] * 7 + [6 * DAY, 7 * DAY], [1] * 7 + [3, 1]),
        # monthly_4: 4 in March, the 5th refused, April again
        ("monthly_4", [0, 60, 120, 180, 10 * DAY, 22 * DAY], [1, 1, 1, 1, 3, 1]),
    ],
)
def test_receive_caps(
    emulator: RunningEmulator, clock: Clock, mode: str, offsets: list[int], expected: list[int]
) -> None:
    # given
    assert control(emulator, "mass/settings", {"cap_mode": mode}).status_code == 200
    sender, customers = sender_and_customers(emulator)
    got = []
    for offset in offsets:
        # when
        clock.now = MONDAY_NOON + offset
        msgid = send(emulator, sender, customers[:1])
        got.extend(statuses(emulator, msgid, sender))
    # then
    assert got == expected


def test_the_local_day_is_chinas(emulator: RunningEmulator, clock: Clock) -> None:
    # given: 23:30 and 00:30 in Shanghai are two days, though the same UTC day
    sender, customers = sender_and_customers(emulator)
    late = int(datetime(2025, 3, 10, 15, 30, tzinfo=UTC).timestamp())
    got = []
    for moment in (late, late + 3600):
        clock.now = moment
        got.extend(statuses(emulator, send(emulator, sender, customers[:1]), sender))
    assert got == [1, 1]


def test_the_cap_is_per_customer_across_senders_and_counts_only_sends(emulator: RunningEmulator, clock: Clock) -> None:
    # given: a customer followed by two employees; the first task is cancelled, never sent
    customer = next(c for c, follows in emulator.state.customer_follows.items() if len(follows) >= 2)
    first, second = list(emulator.state.customer_follows[customer])[:2]
    emulator.configure_mass(confirm_delay=[30, 30])
    cancelled = send(emulator, first, [customer])
    api(emulator, "cancel_groupmsg_send", {"msgid": cancelled})
    emulator.configure_mass(confirm_delay=0)
    # when
    one = send(emulator, first, [customer])
    two = send(emulator, second, [customer])
    # then
    assert (statuses(emulator, one, first), statuses(emulator, two, second)) == ([1], [3])


def test_group_chats_have_the_cap_too(emulator: RunningEmulator, clock: Clock) -> None:
    group = next(iter(emulator.state.groups.values()))
    body = {"chat_type": "group", "sender": group.owner, "chat_id_list": [group.chat_id], "text": {"content": "群"}}
    msgids = [api(emulator, "add_msg_template", body)["msgid"] for _ in range(2)]
    assert [statuses(emulator, m, group.owner) for m in msgids] == [[1], [3]]


def test_personal_mass_messages_are_listed_and_not_capped(emulator: RunningEmulator, clock: Clock) -> None:
    # given: the customer already got today's enterprise message
    sender, customers = sender_and_customers(emulator)
    enterprise = send(emulator, sender, customers[:1])
    # when
    personal = control(
        emulator,
        "actions/employee_mass_message",
        {"userid": sender, "text": "周末见", "external_userids": customers[:1]},
    ).json()["msgid"]
    window = {"chat_type": "single", "start_time": MONDAY_NOON - 60, "end_time": MONDAY_NOON + 60}
    listed = {
        f: api(emulator, "get_groupmsg_list_v2", {**window, "filter_type": f})["group_msg_list"] for f in (0, 1, 2)
    }
    # then
    assert statuses(emulator, personal, sender) == [1]
    assert [[m["msgid"] for m in listed[f]] for f in (0, 1, 2)] == [[enterprise], [personal], [enterprise, personal]]
    assert listed[1][0]["create_type"] == 1 and listed[1][0]["create_time"] == str(MONDAY_NOON)


# --- get_groupmsg_list_v2 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"start_time": MONDAY_NOON, "end_time": MONDAY_NOON},
        {"chat_type": "single", "end_time": MONDAY_NOON},
        {"chat_type": "single", "start_time": MONDAY_NOON - 32 * DAY, "end_time": MONDAY_NOON},
        {"chat_type": "single", "start_time": MONDAY_NOON, "end_time": MONDAY_NOON - 1},
        {"chat_type": "single", "start_time": 0, "end_time": 1, "filter_type": 3},
        {"chat_type": "single", "start_time": 0, "end_time": 1, "cursor": "bogus"},
    ],
)
def test_groupmsg_list_checks(emulator: RunningEmulator, body: dict[str, Any]) -> None:
    assert api(emulator, "get_groupmsg_list_v2", body)["errcode"] == 40058


def test_groupmsg_list_pages_with_a_clamped_limit(emulator: RunningEmulator, clock: Clock) -> None:
    # given
    sender, customers = sender_and_customers(emulator)
    made = [send(emulator, sender, customers[:1]) for _ in range(3)]
    body = {"chat_type": "single", "start_time": MONDAY_NOON, "end_time": MONDAY_NOON, "limit": 2}
    # when
    first = api(emulator, "get_groupmsg_list_v2", body)
    second = api(emulator, "get_groupmsg_list_v2", {**body, "cursor": first["next_cursor"]})
    everything = api(emulator, "get_groupmsg_list_v2", {**body, "limit": 5000})
    # then
    assert [m["msgid"] for m in first["group_msg_list"] + second["group_msg_list"]] == made
    assert second["next_cursor"] == "" and len(everything["group_msg_list"]) == 3


# --- Moments -------------------------------------------------------------------------------------------


def test_a_moment_job_goes_from_started_to_done_and_senders_publish(emulator: RunningEmulator, clock: Clock) -> None:
    # given: the job takes 10 s, each sender publishes 5 s after it
    emulator.configure_mass(moment_job_seconds=10, confirm_delay=[5, 5])
    users = emulator.state.follow_user_ids()[:2]
    body = {
        "text": {"content": "春季上新"},
        "visible_range": {"sender_list": {"user_list": users, "department_list": [999]}},
    }
    jobid = api(emulator, "add_moment_task", body)["jobid"]
    # when
    seen = []
    for step in (0, 6, 10):
        clock.now = MONDAY_NOON + step
        seen.append(api(emulator, "get_moment_task_result", jobid=jobid))
    moment_id = seen[-1]["result"]["moment_id"]
    published_before = api(emulator, "get_moment_task", {"moment_id": moment_id})["task_list"]
    clock.now += 5
    published_after = api(emulator, "get_moment_task", {"moment_id": moment_id})["task_list"]
    # then
    assert [s["status"] for s in seen] == [1, 2, 3] and "result" not in seen[0]
    assert seen[-1]["result"]["invalid_sender_list"] == {"user_list": [], "department_list": [999]}
    assert [t["publish_status"] for t in published_before] == [0, 0]
    assert published_after == [{"userid": u, "publish_status": 1} for u in users]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({}, 40058),
        (
            {"text": {"content": "x"}, "attachments": [{"msgtype": "link", "link": {"title": "t", "url": "u"}}] * 2},
            40058,
        ),
        (
            {
                "attachments": [
                    {"msgtype": "link", "link": {"title": "t", "url": "u"}},
                    {"msgtype": "image", "image": {"pic_url": "https://p"}},
                ]
            },
            40058,
        ),
        ({"attachments": [{"msgtype": "file", "file": {"media_id": "x"}}]}, 41065),
        ({"text": {"content": "x"}, "visible_range": {"sender_list": {"department_list": ["2"]}}}, 40058),
    ],
)
def test_add_moment_task_checks(emulator: RunningEmulator, body: dict[str, Any], errcode: int) -> None:
    assert api(emulator, "add_moment_task", body)["errcode"] == errcode


def test_a_moment_without_valid_senders_fails_in_its_result(emulator: RunningEmulator, clock: Clock) -> None:
    body = {"text": {"content": "x"}, "visible_range": {"sender_list": {"user_list": ["Nobody"]}}}
    jobid = api(emulator, "add_moment_task", body)["jobid"]
    result = api(emulator, "get_moment_task_result", jobid=jobid)["result"]
    assert result["errcode"] == 40058 and "moment_id" not in result
    assert result["invalid_sender_list"]["user_list"] == ["Nobody"]
    assert api(emulator, "get_moment_task_result", jobid="jobNope")["errcode"] == 40058


def test_get_moment_task_result_is_a_get(emulator: RunningEmulator) -> None:
    assert api(emulator, "get_moment_task_result", {"jobid": "x"})["errcode"] == 43001


# --- reactions -------------------------------------------------------------------------------------------


def fields(event: Any) -> dict[str, str]:
    return {child.tag: child.text or "" for child in event}


def test_reaction_chance_rises_with_the_messages_of_the_last_week() -> None:
    assert [reaction_chance(0.3, 1.0, n) for n in (0, 1, 2)] == [0.3, 0.3, 0.6]
    assert reaction_chance(0.3, 1.0, 4) == 1.0 and reaction_chance(0.3, 0.0, 4) == 0.3


def test_a_customer_who_deletes_the_sender_sends_a_real_del_follow_user(
    emulator: RunningEmulator, clock: Clock, callback_receiver: CallbackReceiver
) -> None:
    # given
    callback_receiver.use_corp(emulator)
    emulator.set_callback_url(callback_receiver.url)
    emulator.configure_mass(delete=1.0)
    sender, customers = sender_and_customers(emulator)
    msgid = send(emulator, sender, customers[:1])
    # when
    ran = control(emulator, "mass/tick", {})
    # then
    assert ran.status_code == 200
    assert emulator.state.follow(sender, customers[0]) is None
    events = [fields(e) for e in callback_receiver.events()]
    assert [(e["ChangeType"], e["UserID"], e["ExternalUserID"]) for e in events] == [
        ("del_follow_user", sender, customers[0])
    ]
    listed = control(emulator, "reactions", kind="delete").json()["reactions"]
    assert [(r["kind"], r["external_userid"], r["userid"], r["msgid"], r["delivered"]) for r in listed] == [
        ("delete", customers[0], sender, msgid, True)
    ]


def test_the_background_clock_delivers_reactions_without_being_asked(
    emulator: RunningEmulator, callback_receiver: CallbackReceiver
) -> None:
    # given: real time; the sender confirms after 0.3 s and the customer deletes them right after
    callback_receiver.use_corp(emulator)
    emulator.set_callback_url(callback_receiver.url)
    emulator.configure_mass(confirm_probability=1.0, confirm_delay=0.3, reaction_delay=0, delete=1.0)
    sender, customers = sender_and_customers(emulator)
    send(emulator, sender, customers[:1])
    # when
    deadline = time.monotonic() + 5
    while not callback_receiver.delivered() and time.monotonic() < deadline:
        time.sleep(0.05)
    # then
    assert [fields(e)["ChangeType"] for e in callback_receiver.events()] == ["del_follow_user"]


def test_replies_and_complaints_are_listed_since_a_cursor(emulator: RunningEmulator, clock: Clock) -> None:
    # given: every customer replies with an opt-out and complains
    emulator.configure_mass(reply=1.0, complaint=1.0, opt_out_share=1.0, reaction_delay=[3, 3])
    sender, customers = sender_and_customers(emulator)
    msgid = send(emulator, sender, customers[:2])
    early = control(emulator, "reactions").json()
    # when
    clock.now += 3
    emulator.run_mass_due()
    everything = control(emulator, "reactions").json()
    complaints = control(emulator, "reactions", kind="complaint").json()
    later = control(emulator, "reactions", since=everything["next_cursor"]).json()
    # then
    assert early == {"reactions": [], "next_cursor": 0}
    assert [(r["kind"], r["external_userid"]) for r in everything["reactions"]] == [
        ("reply", customers[0]),
        ("complaint", customers[0]),
        ("reply", customers[1]),
        ("complaint", customers[1]),
    ]
    replies = [r for r in everything["reactions"] if r["kind"] == "reply"]
    assert all(r["opt_out"] and r["text"] in ("TD", "退订", "td", "退订，别再发了") for r in replies)
    assert all(r["msgid"] == msgid and r["at"] == MONDAY_NOON + 3 for r in everything["reactions"])
    assert [r["kind"] for r in complaints["reactions"]] == ["complaint", "complaint"]
    assert complaints["next_cursor"] == everything["next_cursor"] == 4
    assert later == {"reactions": [], "next_cursor": 4}


def test_reactions_rise_with_frequency(emulator: RunningEmulator, clock: Clock) -> None:
    # given: a complaint chance of 0.5 for a first message in a week, × 2 for a second
    emulator.configure_mass(complaint=0.5, fatigue=1.0)
    customers = [c for c, follows in emulator.state.customer_follows.items() if follows][:40]
    # when: one message on Monday, one on Tuesday, each from the customer's first employee
    counts = []
    for day in (0, 1):
        clock.now = MONDAY_NOON + day * DAY
        before = len(emulator.reactions(kinds=["complaint"]))
        for customer in customers:
            send(emulator, next(iter(emulator.state.customer_follows[customer])), [customer])
        emulator.run_mass_due()
        counts.append(len(emulator.reactions(kinds=["complaint"])) - before)
    # then
    assert 8 <= counts[0] <= 32 and counts[1] == len(customers)


def test_no_reactions_by_default(emulator: RunningEmulator) -> None:
    emulator.configure_mass(confirm_probability=1.0, confirm_delay=0, reaction_delay=0)
    sender, customers = sender_and_customers(emulator)
    send(emulator, sender, customers)
    emulator.run_mass_due()
    assert emulator.reactions() == []


@pytest.mark.parametrize("kind", ["reply", "bogus"])
def test_the_reactions_kind_filter_is_checked(emulator: RunningEmulator, kind: str) -> None:
    assert control(emulator, "reactions", kind=kind).status_code == (200 if kind == "reply" else 422)


# --- settings ---------------------------------------------------------------------------------------------


def test_settings_read_and_change(emulator: RunningEmulator) -> None:
    defaults = control(emulator, "mass/settings").json()
    changed = control(emulator, "mass/settings", {"cap_mode": "weekly_7", "delete": 0.01, "confirm_delay": [1, 2]})
    assert defaults["confirm_probability"] == 0.9 and defaults["cap_mode"] == "days_in_month"
    assert defaults["reply"] == defaults["complaint"] == defaults["delete"] == 0.0
    assert changed.status_code == 200
    assert (changed.json()["cap_mode"], changed.json()["delete"], changed.json()["confirm_delay"]) == (
        "weekly_7",
        0.01,
        [1.0, 2.0],
    )


@pytest.mark.parametrize(
    "body",
    [
        {"cap_mode": "hourly"},
        {"confirm_probability": 2},
        {"reply": "often"},
        {"confirm_delay": [5, 1]},
        {"timezone": "Mars/Olympus"},
        {"surprise": 1},
    ],
)
def test_bad_settings_are_422(emulator: RunningEmulator, body: dict[str, Any]) -> None:
    r = control(emulator, "mass/settings", body)
    assert r.status_code == 422, r.text
    assert control(emulator, "mass/settings").json()["cap_mode"] == "days_in_month"


def test_the_tasks_listing_counts_statuses(emulator: RunningEmulator, clock: Clock) -> None:
    sender, customers = sender_and_customers(emulator)
    send(emulator, sender, customers[:1])
    msgid = send(emulator, sender, customers[:2])
    task = next(t for t in control(emulator, "mass/tasks").json()["tasks"] if t["msgid"] == msgid)
    assert task["senders"] == [
        {
            "userid": sender,
            "decision": "sent",
            "due_at": None,
            "send_time": MONDAY_NOON,
            "recipients": 2,
            "statuses": {"1": 1, "3": 1},
        }
    ]
