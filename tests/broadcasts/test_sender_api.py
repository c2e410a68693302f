"""REST (POST …/send, /remind, /cancel; GET …/results) and `siyu broadcast send|status|remind|cancel`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.accounts.actions import do_create_api_token
from siyu.app import create_app
from siyu.broadcasts import send_cli
from siyu.broadcasts.models import BroadcastKind
from siyu.cli import app
from siyu.core.tasks import configure_queue
from tests.broadcasts.test_sender_support import Live
from tests.console_api_support import api_client, make_user


def test_send_results_remind_and_cancel_over_rest(live: Live) -> None:
    (a, a_ids), (b, b_ids) = live.senders(2, customers=2)
    broadcast_id = live.planned([(a, a_ids[:2]), (b, b_ids[:2])])
    operator = api_client(live.db, live.corp_id, "operator")
    # when the operator sends it
    r = operator.post(f"/api/broadcasts/{broadcast_id}/send")
    assert r.status_code == 202, r.text
    assert r.json() == {
        "broadcast_id": broadcast_id,
        "status": "sending",
        "scheduled_at": None,
        "chunks": {"pending": 2},
    }
    # sending twice is a conflict, with a code
    again = operator.post(f"/api/broadcasts/{broadcast_id}/send")
    assert again.status_code == 409 and again.json()["detail"][0]["code"] == "conflict"
    # the worker sends the chunks; a confirms, b does not
    live.send_all(broadcast_id)
    first = live.chunks(broadcast_id)[0]
    live.emu.confirm_mass(first.msgid, a)
    live.poll(broadcast_id)
    r = operator.get(f"/api/broadcasts/{broadcast_id}/results")
    assert r.status_code == 200, r.text
    data = r.json()
    assert (data["status"], data["final"], data["counts"]) == ("sent", False, {"sent": 2, "pending": 2})
    rates = {e["userid"]: (e["tasks"], e["confirmed"], e["rate"], e["sent"]) for e in data["employees"]}
    assert rates == {a: (1, 1, 1.0, 2), b: (1, 0, 0.0, 0)}
    assert data["confirmation_rate"] == 0.5
    assert [(c["status"], c["confirm_status"]) for c in data["chunks"]] == [
        ("sent", "confirmed"),
        ("sent", "unconfirmed"),
    ]
    # remind reaches only b's task; cancel withdraws it
    r = operator.post(f"/api/broadcasts/{broadcast_id}/remind")
    assert r.status_code == 202 and r.json() == {"broadcast_id": broadcast_id, "reminded": 1, "at_limit": 0}
    r = operator.post(f"/api/broadcasts/{broadcast_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    live.send_outbox()
    second = live.chunks(broadcast_id)[1]
    assert len(live.task(second.msgid).reminds) == 1 and live.task(second.msgid).cancelled


@pytest.mark.parametrize(
    ("role", "method", "path", "expected"),
    [
        ("compliance", "get", "results", 200),
        ("compliance", "post", "send", 403),
        ("staff", "get", "results", 404),  # staff see only the personal broadcasts they started
        ("admin", "post", "remind", 409),  # planned, not sending: nothing to remind
    ],
)
def test_who_may_do_what(live: Live, role: str, method: str, path: str, expected: int) -> None:
    ((a, ids),) = live.senders(1, customers=1)
    broadcast_id = live.planned([(a, ids[:1])])
    client = api_client(live.db, live.corp_id, role, **({"employee_userid": a} if role == "staff" else {}))
    r = getattr(client, method)(f"/api/broadcasts/{broadcast_id}/{path}")
    assert r.status_code == expected, r.text
    missing = getattr(client, method)(f"/api/broadcasts/99999999/{path}")
    assert missing.status_code == (404 if expected != 403 else 403)


def test_staff_send_the_personal_broadcasts_they_started(live: Live) -> None:
    ((a, ids),) = live.senders(1, customers=2)
    user = make_user(live.db, live.corp_id, "staff", employee_userid=a)
    with live.db.begin() as s:
        _, token = do_create_api_token(s, user=s.merge(user), name="test")
    label = f"user:{user.id}:{user.username}"
    mine = live.planned([(a, ids[:2])], kind=BroadcastKind.PERSONAL, created_by=label)
    theirs = live.planned([(a, ids[:2])], kind=BroadcastKind.PERSONAL)
    client = TestClient(create_app(configure=False), headers={"Authorization": f"Bearer {token}"})
    assert client.post(f"/api/broadcasts/{mine}/send").status_code == 202
    assert client.post(f"/api/broadcasts/{theirs}/send").status_code == 404
    assert live.send_all(mine) == ["sent"]
    (task,) = live.tasks()
    assert task.chat_type == "single" and set(task.senders) == {a}


@pytest.fixture
def inline_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI's queue runs tasks in-process (no worker), so `send --wait` sees the chunks go out."""
    monkeypatch.setattr(send_cli, "configure_queue", lambda: configure_queue(immediate=True))
    yield
    configure_queue()


def test_cli_send_wait_status_remind_cancel(live: Live, inline_queue: None) -> None:
    ((a, ids),) = live.senders(1, customers=2)
    broadcast_id = live.planned([(a, ids[:1]), (a, ids[1:2])])
    runner = CliRunner()
    r = runner.invoke(app, ["broadcast", "send", str(broadcast_id), "--wait", "--timeout", "30"])
    assert r.exit_code == 0, r.output
    assert f"broadcast {broadcast_id}: sending" in r.output and "2/2 chunks done (sent 2)" in r.output
    assert len(live.tasks()) == 2
    r = runner.invoke(app, ["broadcast", "status", str(broadcast_id), "--refresh"])
    assert r.exit_code == 0, r.output
    assert "sent" in r.output and "pending 2" in r.output and a in r.output
    r = runner.invoke(app, ["broadcast", "remind", str(broadcast_id)])
    assert r.exit_code == 0 and "reminded 2 senders" in r.output
    assert all(len(t.reminds) == 1 for t in live.tasks())
    r = runner.invoke(app, ["broadcast", "cancel", str(broadcast_id)])
    assert r.exit_code == 0 and f"broadcast {broadcast_id} cancelled" in r.output
    assert all(t.cancelled for t in live.tasks())
    # a broadcast in the wrong state is bad input too
    r = runner.invoke(app, ["broadcast", "send", str(broadcast_id)])
    assert r.exit_code == 2 and "is cancelled; only planned ones send" in r.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["send", "99999999"], 2, "no broadcast 99999999"),
        (["cancel", "99999999"], 2, "no broadcast 99999999"),
        (["send", "abc"], 2, "Invalid value"),
        (["send", "1", "--corp", "wwnosuchcorp"], 2, "wwnosuchcorp"),
    ],
)
def test_cli_bad_input_exits_nonzero_with_a_message(
    live: Live, inline_queue: None, args: list[str], code: int, message: str
) -> None:
    r = CliRunner().invoke(app, ["broadcast", *args])
    assert r.exit_code == code, r.output
    assert message in r.output
