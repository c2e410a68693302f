"""WeComClient's mass-message and Moments calls over real HTTP against the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from siyu.wecom.client import WeComClient
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from siyu.wecom.errors import BusyError, InvalidRequestError, LimitError, NotFoundError, RateLimitError
from tests.wecom.client_support import CountingTransport, emulator_client

LIST = "/cgi-bin/externalcontact/get_groupmsg_list_v2"
TASK = "/cgi-bin/externalcontact/get_groupmsg_task"
RESULT = "/cgi-bin/externalcontact/get_groupmsg_send_result"
DAY = 86_400


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with start_emulator(employees=8, customers=120, seed=11) as running:
        running.configure_mass(confirm_probability=1.0, confirm_delay=0, moment_job_seconds=0)
        yield running


@pytest.fixture
def transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
def client(emu: RunningEmulator, transport: CountingTransport) -> Iterator[WeComClient]:
    with emulator_client(emu, transport, retry_budget_seconds=2.0) as wecom:
        yield wecom


def sender_with_customers(emu: RunningEmulator, at_least: int = 3) -> tuple[str, list[str]]:
    for userid in emu.state.follow_user_ids():
        follows = emu.state.follow_lists.get(userid)
        if follows and len(follows) >= at_least:
            return userid, [f.external_userid for f in follows.items]
    raise AssertionError("no employee with enough customers")


def send(client: WeComClient, sender: str, customers: list[str], text: str = "新品上市") -> str:
    msgid, _ = client.add_msg_template(chat_type="single", sender=sender, external_userids=customers, text=text)
    return msgid


# --- add_msg_template ----------------------------------------------------------------------------------


def test_add_msg_template_returns_the_msgid_and_the_customers_that_failed(
    emu: RunningEmulator, client: WeComClient
) -> None:
    # given: two of the sender's customers, one of someone else's, one unknown
    sender, customers = sender_with_customers(emu)
    stranger = next(c for c in emu.state.customers if emu.state.follow(sender, c) is None)
    link = {"msgtype": "link", "link": {"title": "双十一", "url": "https://example.com/sale"}}
    # when
    msgid, fail_list = client.add_msg_template(
        chat_type="single",
        sender=sender,
        external_userids=[*customers[:2], stranger, "wmUnknown"],
        text="新品上市",
        attachments=[link],
        allow_select=True,
    )
    # then
    task = emu.state.mass_tasks[msgid]
    assert msgid.startswith("msg") and fail_list == [stranger, "wmUnknown"]
    assert (task.text, task.attachments, task.allow_select) == ("新品上市", [link], True)
    assert task.senders[sender].recipients == customers[:2]


def test_add_msg_template_to_group_chats(emu: RunningEmulator, client: WeComClient) -> None:
    # given
    group = next(iter(emu.state.groups.values()))
    other = next(g for g in emu.state.groups.values() if g.owner != group.owner)
    # when
    msgid, fail_list = client.add_msg_template(
        chat_type="group", sender=group.owner, chat_ids=[group.chat_id, other.chat_id], text="群公告"
    )
    results = list(client.iter_groupmsg_send_result(msgid, group.owner))
    # then
    assert fail_list == [other.chat_id]
    assert results == [
        {"chat_id": group.chat_id, "userid": group.owner, "status": 1, "send_time": results[0]["send_time"]}
    ]


def test_nobody_to_send_to_is_41048(emu: RunningEmulator, client: WeComClient) -> None:
    sender, _ = sender_with_customers(emu)
    stranger = next(c for c in emu.state.customers if emu.state.follow(sender, c) is None)
    with pytest.raises(InvalidRequestError) as raised:
        client.add_msg_template(chat_type="single", sender=sender, external_userids=[stranger], text="hi")
    assert raised.value.errcode == 41048


def test_a_mismatched_attachment_is_41065(emu: RunningEmulator, client: WeComClient) -> None:
    sender, customers = sender_with_customers(emu)
    bad = {"msgtype": "image", "link": {"title": "t", "url": "https://example.com"}}
    with pytest.raises(InvalidRequestError) as raised:
        client.add_msg_template(
            chat_type="single", sender=sender, external_userids=customers, text="", attachments=[bad]
        )
    assert raised.value.errcode == 41065


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chat_type": "single", "external_userids": []}, "needs external_userids"),
        ({"chat_type": "group", "chat_ids": []}, "needs chat_ids"),
        ({"chat_type": "single", "external_userids": ["wm1"], "chat_ids": ["wr1"]}, "and only those"),
        ({"chat_type": "broadcast", "external_userids": ["wm1"]}, "single or group"),
        ({"chat_type": "single", "external_userids": ["wm"] * 10_001}, "10000"),
        ({"chat_type": "single", "external_userids": ["wm1"], "text": ""}, "text or attachments"),
        ({"chat_type": "single", "external_userids": ["wm1"], "attachments": [{}] * 10}, "at most 9"),
    ],
)
def test_add_msg_template_refuses_what_would_surprise(
    client: WeComClient, transport: CountingTransport, kwargs: dict[str, object], message: str
) -> None:
    # given: without recipients WeCom would send to *every* customer of the sender
    params: dict[str, object] = {"sender": "ZhangWei", "text": "hi", **kwargs}
    # when / then
    with pytest.raises(ValueError, match=message):
        client.add_msg_template(**params)  # type: ignore[arg-type]
    assert not transport.paths


# --- results -----------------------------------------------------------------------------------------


def test_iter_groupmsg_list_pages_and_filters(
    emu: RunningEmulator, client: WeComClient, transport: CountingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: pages of 2 and five tasks
    monkeypatch.setattr("siyu.wecom.client.GROUPMSG_LIST_PAGE", 2)
    sender, customers = sender_with_customers(emu)
    made = [send(client, sender, customers[:1], text=f"第{i}条") for i in range(5)]
    now = emu.state.now()
    # when
    listed = list(client.iter_groupmsg_list(chat_type="single", start_time=now - 60, end_time=now + 60))
    by_other = list(client.iter_groupmsg_list(chat_type="single", start_time=now - 60, end_time=now, creator="X"))
    personal = list(client.iter_groupmsg_list(chat_type="single", start_time=now - 60, end_time=now, filter_type=1))
    groups = list(client.iter_groupmsg_list(chat_type="group", start_time=now - 60, end_time=now + 60))
    # then
    assert [item["msgid"] for item in listed] == made
    first = listed[0]
    assert (first["creator"], first["create_type"], first["text"]) == (sender, 0, {"content": "第0条"})
    assert isinstance(first["create_time"], str) and abs(int(first["create_time"]) - now) <= 2
    assert by_other == [] and personal == [] and groups == []
    assert transport.paths[LIST] == 3 + 3


def test_iter_groupmsg_list_asks_long_ranges_in_month_windows(
    emu: RunningEmulator, client: WeComClient, transport: CountingTransport
) -> None:
    # given: one task today; a 70-day range would be refused by WeCom in one call
    sender, customers = sender_with_customers(emu)
    msgid = send(client, sender, customers[:1])
    now = emu.state.now()
    # when
    listed = list(client.iter_groupmsg_list(chat_type="single", start_time=now - 70 * DAY, end_time=now + 60))
    # then
    assert [item["msgid"] for item in listed] == [msgid]
    assert transport.paths[LIST] == 3


def test_task_and_send_result_page_through_statuses(
    emu: RunningEmulator, client: WeComClient, transport: CountingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: pages of 2; the first customer got a message already today (quota), the second left the sender
    monkeypatch.setattr("siyu.wecom.client.GROUPMSG_TASK_PAGE", 2)
    sender, customers = sender_with_customers(emu, 4)
    send(client, sender, customers[:1])
    emu.actors.customer_delete_employee(sender, customers[1])
    emu.configure_mass(confirm_probability=0.0)
    msgid, _ = client.add_msg_template(chat_type="single", sender=sender, external_userids=customers[:4], text="hi")
    before = list(client.iter_groupmsg_task(msgid))
    # when
    emu.confirm_mass(msgid, sender)
    tasks = list(client.iter_groupmsg_task(msgid))
    results = list(client.iter_groupmsg_send_result(msgid, sender))
    # then
    assert before == [{"userid": sender, "status": 0}]
    assert tasks == [{"userid": sender, "status": 2, "send_time": tasks[0]["send_time"]}]
    assert [(r["external_userid"], r["status"]) for r in results] == [
        (customers[0], 3),
        (customers[2], 1),
        (customers[3], 1),
    ]
    assert all(("send_time" in r) == (r["status"] == 1) for r in results)
    assert transport.paths[RESULT] == 2


def test_send_result_of_someone_who_is_not_a_sender_is_empty(emu: RunningEmulator, client: WeComClient) -> None:
    sender, customers = sender_with_customers(emu)
    msgid = send(client, sender, customers[:2])
    assert list(client.iter_groupmsg_send_result(msgid, "SomeoneElse")) == []


def test_41063_while_dispatching_is_waited_out(
    emu: RunningEmulator, client: WeComClient, transport: CountingTransport
) -> None:
    # given: WeCom answers 41063 twice right after the task was created
    sender, customers = sender_with_customers(emu)
    msgid = send(client, sender, customers[:1])
    emu.inject_error("externalcontact/get_groupmsg_task", 41063, times=2)
    # when
    tasks = list(client.iter_groupmsg_task(msgid))
    # then
    assert [t["status"] for t in tasks] == [2]
    assert transport.paths[TASK] == 3


def test_41063_past_the_retry_budget_is_a_busy_error(emu: RunningEmulator, client: WeComClient) -> None:
    # given: still being dispatched for a minute
    emu.configure_mass(dispatch_seconds=60)
    sender, customers = sender_with_customers(emu)
    msgid = send(client, sender, customers[:1])
    # when
    with pytest.raises(BusyError) as raised:
        list(client.iter_groupmsg_task(msgid))
    # then: a transient error, like a rate limit
    assert raised.value.errcode == 41063 and isinstance(raised.value, RateLimitError)


def test_unknown_msgid_is_not_found(client: WeComClient) -> None:
    with pytest.raises(NotFoundError) as raised:
        list(client.iter_groupmsg_task("msgNoSuchTask"))
    assert raised.value.errcode == 41047


# --- remind and cancel ---------------------------------------------------------------------------------


def test_remind_works_three_times_a_day(emu: RunningEmulator, client: WeComClient) -> None:
    # given
    emu.configure_mass(confirm_probability=0.0)
    sender, customers = sender_with_customers(emu)
    msgid = send(client, sender, customers[:1])
    # when
    for _ in range(3):
        client.remind_groupmsg_send(msgid)
    with pytest.raises(LimitError) as raised:
        client.remind_groupmsg_send(msgid)
    # then: permanent for now, so an outbox parks it rather than retrying
    assert raised.value.errcode == 45047 and isinstance(raised.value, InvalidRequestError)


def test_cancel_stops_unconfirmed_senders(emu: RunningEmulator, client: WeComClient) -> None:
    # given
    emu.configure_mass(confirm_delay=[30, 30])
    sender, customers = sender_with_customers(emu)
    msgid = send(client, sender, customers[:2])
    # when
    client.cancel_groupmsg_send(msgid)
    emu.state.clock = lambda: emu.state.mass_tasks[msgid].created_at + 60
    # then
    assert [t["status"] for t in client.iter_groupmsg_task(msgid)] == [0]
    assert {r["status"] for r in client.iter_groupmsg_send_result(msgid, sender)} == {0}


# --- Moments ---------------------------------------------------------------------------------------------


def test_moment_job_reports_invalid_senders_and_tags(emu: RunningEmulator, client: WeComClient) -> None:
    # given
    users = emu.state.follow_user_ids()[:2]
    tag = next(iter(emu.state.tags))
    # when
    jobid = client.add_moment_task(text="春季上新", user_list=[*users, "NoSuchUser"], tag_list=[tag, "etNoSuchTag"])
    result = client.get_moment_task_result(jobid)
    # then
    assert result["status"] == 3 and result["type"] == "add_moment_task"
    details = result["result"]
    assert details["moment_id"].startswith("mom")
    assert details["invalid_sender_list"] == {"user_list": ["NoSuchUser"], "department_list": []}
    assert details["invalid_external_contact_list"] == {"tag_list": ["etNoSuchTag"]}
    assert client.get_moment_task(details["moment_id"]) == [{"userid": u, "publish_status": 1} for u in users]


def test_a_running_moment_job_has_no_result_yet(emu: RunningEmulator, client: WeComClient) -> None:
    emu.configure_mass(moment_job_seconds=600)
    jobid = client.add_moment_task(text="春季上新")
    assert client.get_moment_task_result(jobid) == {"status": 1, "type": "add_moment_task"}


def test_get_moment_task_pages_every_sender(
    emu: RunningEmulator, client: WeComClient, transport: CountingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: every employee sends (no visible range), pages of 2, nobody publishes on their own
    monkeypatch.setattr("siyu.wecom.client.GROUPMSG_TASK_PAGE", 2)
    emu.configure_mass(confirm_probability=0.0)
    jobid = client.add_moment_task(text=None, attachments=[{"msgtype": "link", "link": {"title": "t", "url": "u"}}])
    moment_id = client.get_moment_task_result(jobid)["result"]["moment_id"]
    first = emu.state.follow_user_ids()[0]
    emu.confirm_moment(moment_id, first)
    # when
    senders = client.get_moment_task(moment_id)
    # then
    assert [s["userid"] for s in senders] == emu.state.follow_user_ids()
    assert [s["publish_status"] for s in senders] == [1] + [0] * (len(senders) - 1)
    assert transport.paths["/cgi-bin/externalcontact/get_moment_task"] == (len(senders) + 1) // 2
