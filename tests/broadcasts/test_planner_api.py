"""POST/GET/PATCH /api/broadcasts, POST …/plan, GET …/recipients and `siyu broadcast create|plan`."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from siyu.broadcasts.models import Broadcast, BroadcastChunk
from siyu.cli import app
from tests.broadcasts.planner_support import World, make_world
from tests.console_api_support import add, api_client, department


@pytest.fixture
def world(db: sessionmaker[Session]) -> World:
    w = make_world(db)
    w.policy(quiet_start="", quiet_end="")  # the API plans "now": keep the wall clock out of it
    return w


def _draft(customers: list[int], **extra: Any) -> dict[str, Any]:
    return {
        "name": "双十二",
        "audience": {"customer_ids": customers},
        "content": {"text": "双十二会员日，全场八折"},
        **extra,
    }


def test_create_plan_and_page_through_recipients(db: sessionmaker[Session], world: World) -> None:
    # given 5 customers of zhang, one opted out, and an operator
    ids = world.customers(5, follower="zhang")
    world.opt_out(ids[0])
    client = api_client(db, world.corp_id, "operator")
    # when the operator creates, edits and plans a broadcast
    r = client.post("/api/broadcasts", json=_draft(ids))
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    assert r.json()["status"] == "draft"
    r = client.patch(f"/api/broadcasts/{bid}", json={"name": "双十二预热"})
    assert r.status_code == 200 and r.json()["name"] == "双十二预热"
    r = client.post(f"/api/broadcasts/{bid}/plan")
    # then the summary says who gets it from whom and who is excluded why
    assert r.status_code == 200, r.text
    plan = r.json()
    assert (plan["status"], plan["candidates"], plan["eligible"], plan["chunks"]) == ("planned", 5, 4, 1)
    assert plan["excluded"] == {"opted_out": 1}
    assert plan["senders"] == [
        {"employee_id": world.employees["zhang"], "userid": "zhang", "name": "zhang", "eligible": 4, "chunks": 1}
    ]
    assert plan["moved"] is None and plan["findings"] == []
    assert client.get(f"/api/broadcasts/{bid}/plan").json() == plan
    # and the recipients page by keyset, filtered by status or reason
    first = client.get(f"/api/broadcasts/{bid}/recipients", params={"status": "pending", "limit": 3}).json()
    rest = client.get(
        f"/api/broadcasts/{bid}/recipients", params={"status": "pending", "limit": 3, "after": first["next_cursor"]}
    ).json()
    assert [i["customer_id"] for i in first["items"] + rest["items"]] == ids[1:]
    assert rest["next_cursor"] is None
    excluded = client.get(f"/api/broadcasts/{bid}/recipients", params={"reason": "opted_out"}).json()["items"]
    assert [(i["customer_id"], i["status"], i["employee_userid"]) for i in excluded] == [(ids[0], "excluded", "zhang")]
    listed = client.get("/api/broadcasts").json()["items"]
    assert [b["id"] for b in listed] == [bid]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"audience": {"customer_ids": [999999]}}, "not in this corp: 999999"),
        ({"audience": {"rule": {"version": 1, "rule": {"tags": {"any": []}}}}}, "audience.rule.tags.any"),
        ({"audience": {"customer_ids": [1], "segment_id": 1}}, "exactly one of"),
        ({"audience": {"chat_ids": ["wr1"]}}, "customer broadcast's audience is one of"),
        ({"audience": {"segment_id": 424242}}, "audience.segment_id: not in this corp"),
        ({"content": {"text": ""}}, "give a text or at least one attachment"),
        ({"content": {"text": "x", "attachments": [{"msgtype": "image", "image": {"media_id": "m"}}] * 10}}, "9"),
        ({"content": {"text": "x", "attachments": [{"msgtype": "sticker"}]}}, "msgtype must be one of"),
        ({"sender_ids": [999999]}, "sender_ids: not in this corp"),
        ({"holdout_percent": 80}, "holdout_percent"),
        ({"kind": "personal", "sender_ids": []}, "exactly one sender"),
    ],
)
def test_bad_drafts_are_422_with_a_message(
    db: sessionmaker[Session], world: World, change: dict[str, Any], needle: str
) -> None:
    [c] = world.customers(1, follower="zhang")
    client = api_client(db, world.corp_id, "admin")
    r = client.post("/api/broadcasts", json={**_draft([c]), **change})
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"][0]["msg"]


def test_blocked_content_is_shown_in_the_plan(db: sessionmaker[Session], world: World) -> None:
    [c] = world.customers(1, follower="zhang")
    client = api_client(db, world.corp_id, "admin")
    bid = client.post("/api/broadcasts", json={**_draft([c]), "content": {"text": "分享给好友即可免费领取"}}).json()[
        "id"
    ]
    plan = client.post(f"/api/broadcasts/{bid}/plan").json()
    assert plan["status"] == "blocked" and plan["eligible"] == 0
    assert plan["findings"][0]["kind"] == "induced_sharing" and "分享" in plan["findings"][0]["matched"]
    assert "分享给好友即可免费" in plan["block_reason"]
    # fixing the text makes it plannable
    assert client.patch(f"/api/broadcasts/{bid}", json={"content": {"text": "新品上市"}}).json()["status"] == "draft"
    assert client.post(f"/api/broadcasts/{bid}/plan").json()["status"] == "planned"


def test_replanning_or_editing_after_sending_began_is_409(db: sessionmaker[Session], world: World) -> None:
    ids = world.customers(2, follower="zhang")
    client = api_client(db, world.corp_id, "admin")
    bid = client.post("/api/broadcasts", json=_draft(ids)).json()["id"]
    assert client.post(f"/api/broadcasts/{bid}/plan").status_code == 200
    assert client.post(f"/api/broadcasts/{bid}/plan").status_code == 200  # a re-plan is fine until it sends
    with db.begin() as s:
        s.execute(sa.update(BroadcastChunk).where(BroadcastChunk.broadcast_id == bid).values(attempts=1))
    r = client.post(f"/api/broadcasts/{bid}/plan")
    assert r.status_code == 409 and "started sending" in r.json()["detail"][0]["msg"]


def test_editing_an_unsent_plan_returns_it_to_draft(db: sessionmaker[Session], world: World) -> None:
    ids = world.customers(2, follower="zhang")
    client = api_client(db, world.corp_id, "operator")
    bid = client.post("/api/broadcasts", json=_draft(ids)).json()["id"]
    client.post(f"/api/broadcasts/{bid}/plan")
    r = client.patch(f"/api/broadcasts/{bid}", json={"audience": {"customer_ids": ids[:1]}})
    assert r.json()["status"] == "draft" and r.json()["counts"] == {}
    assert client.get(f"/api/broadcasts/{bid}/recipients").json()["items"] == []


def test_staff_start_personal_broadcasts_for_themselves_only(db: sessionmaker[Session], world: World) -> None:
    # given zhang's customers and li's, and zhang signed in as staff
    mine = world.customers(3, follower="zhang")
    [theirs] = world.customers(1, follower="li")
    staff = api_client(db, world.corp_id, "staff", employee_userid="zhang")
    me = world.employees["zhang"]
    personal = {**_draft(mine), "kind": "personal", "sender_ids": [me]}
    # when they start a personal broadcast to their customers, it is theirs to plan
    r = staff.post("/api/broadcasts", json=personal)
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    plan = staff.post(f"/api/broadcasts/{bid}/plan").json()
    assert plan["eligible"] == 3 and plan["senders"][0]["employee_id"] == me
    # but not an enterprise broadcast, not from someone else, not to customers they cannot see
    assert staff.post("/api/broadcasts", json={**personal, "kind": "customer"}).status_code == 403
    assert staff.post("/api/broadcasts", json={**personal, "sender_ids": [world.employees["li"]]}).status_code == 403
    r = staff.post("/api/broadcasts", json={**personal, "audience": {"customer_ids": [theirs]}})
    assert r.status_code == 422 and str(theirs) in r.json()["detail"][0]["msg"]
    r = staff.post("/api/broadcasts", json={**personal, "audience": {"customer_ids": list(range(1, 202))}})
    assert r.status_code == 422
    # and they see only their own broadcasts
    admin = api_client(db, world.corp_id, "admin")
    other = admin.post("/api/broadcasts", json=_draft(mine)).json()["id"]
    assert staff.get(f"/api/broadcasts/{other}").status_code == 404
    assert [b["id"] for b in staff.get("/api/broadcasts").json()["items"]] == [bid]
    assert {b["id"] for b in admin.get("/api/broadcasts").json()["items"]} == {bid, other}


def _broadcast_count(db: sessionmaker[Session]) -> int:
    with db() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Broadcast)) or 0


@pytest.mark.parametrize("case", ["their_departments_customer", "follow_ended", "one_of_many"])
def test_staff_name_only_customers_they_follow(db: sessionmaker[Session], world: World, case: str) -> None:
    # given zhang, who leads li's department (so sees li's customers), and a customer zhang may see but not reach
    add(db, department(world.corp_id, 1, "华东", leaders=["zhang"]))
    mine = world.customers(2, follower="zhang")
    if case == "follow_ended":
        [other] = world.customers(1)
        world.follows("zhang", [other], status="customer_deleted_employee")
    else:
        [other] = world.customers(1, follower="li")
    customers = [*mine, other] if case == "one_of_many" else [other]
    staff = api_client(db, world.corp_id, "staff", employee_userid="zhang")
    personal = {**_draft(customers), "kind": "personal", "sender_ids": [world.employees["zhang"]]}
    # when zhang starts a personal broadcast naming them
    r = staff.post("/api/broadcasts", json=personal)
    # then it is refused, naming the customer, and nothing is saved
    assert r.status_code == 422, r.text
    assert f"only customers you follow; not yours: {other}" in r.json()["detail"][0]["msg"]
    assert _broadcast_count(db) == 0


def test_staff_edit_only_to_customers_they_follow(db: sessionmaker[Session], world: World) -> None:
    # given zhang's personal draft to their own customers, and li's customer in zhang's department
    add(db, department(world.corp_id, 1, "华东", leaders=["zhang"]))
    mine = world.customers(2, follower="zhang")
    [theirs] = world.customers(1, follower="li")
    staff = api_client(db, world.corp_id, "staff", employee_userid="zhang")
    r = staff.post(
        "/api/broadcasts", json={**_draft(mine), "kind": "personal", "sender_ids": [world.employees["zhang"]]}
    )
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    # when zhang adds li's customer to it
    r = staff.patch(f"/api/broadcasts/{bid}", json={"audience": {"customer_ids": [*mine, theirs]}})
    # then it is refused and the draft keeps its audience
    assert r.status_code == 422, r.text
    assert f"not yours: {theirs}" in r.json()["detail"][0]["msg"]
    assert staff.get(f"/api/broadcasts/{bid}").json()["audience"] == {"customer_ids": mine}


@pytest.mark.parametrize("role", ["admin", "operator"])
def test_operators_name_any_customer_in_a_personal_broadcast(
    db: sessionmaker[Session], world: World, role: str
) -> None:
    # given zhang's customer and li's
    [mine] = world.customers(1, follower="zhang")
    [theirs] = world.customers(1, follower="li")
    client = api_client(db, world.corp_id, role)
    # when an operator starts zhang's personal broadcast to both
    personal = {**_draft([mine, theirs]), "kind": "personal", "sender_ids": [world.employees["zhang"]]}
    r = client.post("/api/broadcasts", json=personal)
    # then it is saved, and the plan leaves out the one zhang does not follow
    assert r.status_code == 201, r.text
    plan = client.post(f"/api/broadcasts/{r.json()['id']}/plan").json()
    assert (plan["eligible"], plan["excluded"]) == (1, {"sender_not_allowed": 1})


def test_compliance_reads_but_does_not_write(db: sessionmaker[Session], world: World) -> None:
    ids = world.customers(1, follower="zhang")
    bid = api_client(db, world.corp_id, "admin").post("/api/broadcasts", json=_draft(ids)).json()["id"]
    compliance = api_client(db, world.corp_id, "compliance")
    assert compliance.get(f"/api/broadcasts/{bid}").status_code == 200
    assert compliance.post(f"/api/broadcasts/{bid}/plan").status_code == 403
    assert compliance.post("/api/broadcasts", json=_draft(ids)).status_code == 403


def test_cli_creates_and_plans(world: World) -> None:
    ids = world.customers(3, follower="zhang")
    world.opt_out(ids[0])
    runner = CliRunner()
    corp = ["--corp", str(world.corp_id)]
    created = runner.invoke(
        app,
        [
            "broadcast",
            "create",
            "--name",
            "周末活动",
            "--text",
            "周末到店有礼",
            "--customers",
            ",".join(map(str, ids)),
            *corp,
        ],
    )
    assert created.exit_code == 0, created.output
    bid = int(created.output.split("broadcast ")[1].split()[0])
    planned = runner.invoke(app, ["broadcast", "plan", str(bid), *corp])
    assert planned.exit_code == 0, planned.output
    assert "eligible 2" in planned.output and "opted_out" in planned.output and "zhang" in planned.output
    as_json = runner.invoke(app, ["broadcast", "plan", str(bid), "--json", *corp])
    assert json.loads(as_json.output)["excluded"] == {"opted_out": 1}


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--name", "x", "--text", "hi", "--customers", "999999"],
        ["create", "--name", "x", "--text", "hi", "--rule", "{not json"],
        ["create", "--name", "x", "--text", "hi"],
        ["plan", "424242"],
    ],
)
def test_cli_refuses_bad_input_with_exit_code_2(world: World, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["broadcast", *args, "--corp", str(world.corp_id)])
    assert result.exit_code == 2, result.output
    assert "error" in result.output
