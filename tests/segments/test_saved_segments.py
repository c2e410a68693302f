"""Saved segments, snapshots and exports through the REST API and the CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from siyu.cli import app
from siyu.contacts.models import Follow
from siyu.corp.models import AuditLog
from siyu.segments import engine
from tests.console_api_support import add, api_client, customer, employee, follow, follow_tag, tag, tag_group
from tests.factories import make_corp


@pytest.fixture
def world(db: sessionmaker[Session]) -> dict[str, Any]:
    """Corp: 甲 (tags X, Y; followed by 张三 with a remark mobile), 乙 (X), 丙 (none); another corp with X too."""
    engine.drop_engine()
    corp = make_corp(db).corp_id
    [emp] = add(db, employee(corp, "zhangsan", "张三"))
    a, b, c = add(db, customer(corp, "甲"), customer(corp, "乙"), customer(corp, "丙"))
    fa_row = follow(corp, emp, a)
    fa_row.remark_mobiles = ["13812345678"]
    fa, fb, fc = add(db, fa_row, follow(corp, emp, b), follow(corp, emp, c))
    [group] = add(db, tag_group(corp, "兴趣"))
    x, y = add(db, tag(corp, group, "X"), tag(corp, group, "Y"))
    add(db, follow_tag(corp, fa, x), follow_tag(corp, fa, y), follow_tag(corp, fb, x))
    other = make_corp(db, wecom_corpid="wwother").corp_id
    [oemp] = add(db, employee(other, "lisi"))
    [oc] = add(db, customer(other, "别家"))
    [of] = add(db, follow(other, oemp, oc))
    add(db, follow_tag(other, of, x))
    return {"corp": corp, "a": a, "b": b, "c": c, "x": x, "y": y, "fc": fc, "other": other}


def _rule(node: object) -> dict[str, object]:
    return {"version": 1, "rule": node}


def test_save_list_update_and_delete(db: sessionmaker[Session], world: dict[str, Any]) -> None:
    client = api_client(db, world["corp"], "operator")
    # when an operator saves "has X"
    r = client.post("/api/segments", json={"name": "兴趣X", "rule": _rule({"tags": {"any": [world["x"]]}})})
    # then it is stored with its count
    assert r.status_code == 201, r.text
    seg = r.json()
    assert (seg["name"], seg["last_count"], seg["rule_version"]) == ("兴趣X", 2, 1)
    # and the name is unique in the corp
    again = client.post("/api/segments", json={"name": "兴趣X", "rule": _rule({"gender": [1]})})
    assert again.status_code == 409
    assert again.json()["detail"][0]["msg"] == "name: a segment named '兴趣X' already exists"
    # when the rule changes, the count follows; the list shows it
    r = client.patch(f"/api/segments/{seg['id']}", json={"rule": _rule({"tags": {"all": [world["x"], world["y"]]}})})
    assert r.status_code == 200, r.text
    assert r.json()["last_count"] == 1
    listed = client.get("/api/segments").json()["items"]
    assert [(s["name"], s["last_count"]) for s in listed] == [("兴趣X", 1)]
    # when deleted, it is gone
    assert client.delete(f"/api/segments/{seg['id']}").status_code == 204
    assert client.get(f"/api/segments/{seg['id']}").status_code == 404


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (_rule({"and": [{"tags": {"any": []}}]}), "rule.and[0].tags.any: must be a non-empty list of tag ids"),
        ({"version": 7, "rule": {"gender": [1]}}, "version: unsupported version 7 (expected 1)"),
        (_rule({"last_broadcast": {"within_days": 0}}), "rule.last_broadcast.within_days: must be a whole number"),
    ],
)
def test_a_bad_rule_is_refused_with_its_path(
    db: sessionmaker[Session], world: dict[str, Any], rule: dict[str, Any], message: str
) -> None:
    client = api_client(db, world["corp"], "admin")
    r = client.post("/api/segments", json={"name": "坏", "rule": rule})
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"].startswith(message)


def test_count_of_a_saved_segment_samples_with_owners(db: sessionmaker[Session], world: dict[str, Any]) -> None:
    client = api_client(db, world["corp"], "compliance")
    operator = api_client(db, world["corp"], "operator")
    seg = operator.post("/api/segments", json={"name": "X", "rule": _rule({"tags": {"any": [world["x"]]}})}).json()
    r = client.post(f"/api/segments/{seg['id']}/count", params={"sample": 1})
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 2
    assert r.json()["sample"] == [{"id": world["a"], "name": "甲", "owners": ["张三"]}]


def test_a_snapshot_freezes_membership_while_the_segment_moves(
    db: sessionmaker[Session], world: dict[str, Any]
) -> None:
    client = api_client(db, world["corp"], "operator")
    seg = client.post("/api/segments", json={"name": "X", "rule": _rule({"tags": {"any": [world["x"]]}})}).json()
    # when a snapshot is taken
    r = client.post(f"/api/segments/{seg['id']}/snapshots", json={"name": "三月活动"})
    assert r.status_code == 201, r.text
    snap = r.json()
    assert (snap["member_count"], snap["segment_id"], snap["rule"], snap["rule_version"]) == (
        2,
        seg["id"],
        seg["rule"],
        1,
    )
    # and 丙 is tagged X afterwards (a real writer: the tag edit)
    r = client.put(f"/api/customers/{world['c']}/follows/{world['fc']}/tags", json={"tag_ids": [world["x"]]})
    assert r.status_code == 200, r.text
    # then the segment has three, the snapshot still two
    assert client.post(f"/api/segments/{seg['id']}/count").json()["count"] == 3
    walked, after = [], None
    while True:
        params = {"limit": 1} | ({"after": after} if after is not None else {})
        page = client.get(f"/api/segment-snapshots/{snap['id']}/members", params=params).json()
        walked += [(m["id"], m["name"]) for m in page["items"]]
        after = page["next_cursor"]
        if after is None:
            break
    assert walked == [(world["a"], "甲"), (world["b"], "乙")]
    listed = client.get(f"/api/segments/{seg['id']}/snapshots").json()["items"]
    assert [s["id"] for s in listed] == [snap["id"]]
    # and deleting the segment keeps the snapshot, detached
    assert client.delete(f"/api/segments/{seg['id']}").status_code == 204
    assert client.get(f"/api/segment-snapshots/{snap['id']}").json()["segment_id"] is None


def test_a_rule_snapshot_without_a_segment(db: sessionmaker[Session], world: dict[str, Any]) -> None:
    client = api_client(db, world["corp"], "admin")
    r = client.post(
        "/api/segment-snapshots", json={"name": "临时", "rule": _rule({"not": {"tags": {"any": [world["x"]]}}})}
    )
    assert r.status_code == 201, r.text
    assert (r.json()["member_count"], r.json()["segment_id"]) == (1, None)
    assert [s["name"] for s in client.get("/api/segment-snapshots").json()["items"]] == ["临时"]


def _csv(body: bytes) -> list[list[str]]:
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_export_is_a_csv_with_bom_and_masked_mobiles(db: sessionmaker[Session], world: dict[str, Any]) -> None:
    client = api_client(db, world["corp"], "operator")
    seg = client.post("/api/segments", json={"name": "X", "rule": _rule({"tags": {"any": [world["x"]]}})}).json()
    r = client.get(f"/api/segments/{seg['id']}/export.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = _csv(r.content)
    assert rows[0][:3] == ["id", "external_userid", "name"]
    by_name = {row[2]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert sorted(by_name) == ["乙", "甲"]
    assert by_name["甲"]["mobiles"] == "138****5678"
    assert by_name["甲"]["owners"] == "张三" and by_name["甲"]["tags"] == "X; Y"
    snap = client.post(f"/api/segments/{seg['id']}/snapshots", json={}).json()
    assert len(_csv(client.get(f"/api/segment-snapshots/{snap['id']}/export.csv").content)) == 3
    with db() as s:
        actions = s.scalars(select(AuditLog.action).where(AuditLog.action.like("segment%")).order_by(AuditLog.id)).all()
    assert actions == ["segment.create", "segment.export", "segment.snapshot", "segment_snapshot.export"]


def test_the_export_of_many_customers_is_streamed_in_batches(db: sessionmaker[Session], world: dict[str, Any]) -> None:
    # given 2,500 more customers (three batches of 1,000)
    more = [customer(world["corp"], f"客户{i}") for i in range(2500)]
    add(db, *more)
    engine.drop_engine()
    client = api_client(db, world["corp"], "admin")
    seg = client.post("/api/segments", json={"name": "全部", "rule": _rule({"customer_type": [1, 2]})}).json()
    with client.stream("GET", f"/api/segments/{seg['id']}/export.csv") as r:
        chunks = list(r.iter_raw())
    rows = _csv(b"".join(chunks))
    assert len(rows) == 1 + 2503
    assert len({row[0] for row in rows[1:]}) == 2503


def test_cli_saves_lists_snapshots_and_exports(
    world: dict[str, Any], tmp_path: Path, db: sessionmaker[Session]
) -> None:
    runner = CliRunner()
    corp = ["--corp", str(world["corp"])]
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps(_rule({"tags": {"any": [world["x"]]}})))
    saved = runner.invoke(app, ["segment", "save", "--name", "兴趣X", "--rule", str(rule), *corp])
    assert saved.exit_code == 0, saved.output
    assert "saved: 2 customers" in saved.output
    resaved = runner.invoke(
        app, ["segment", "save", "--name", "兴趣X", "--rule", '{"version": 1, "rule": {"gender": [0]}}', *corp]
    )
    assert "updated: 3 customers" in resaved.output
    listed = runner.invoke(app, ["segment", "list", *corp])
    assert "兴趣X" in listed.output and "3" in listed.output
    snap = runner.invoke(app, ["segment", "snapshot", "--segment", "兴趣X", "--name", "周一", *corp])
    assert snap.exit_code == 0 and "'周一': 3 customers" in snap.output
    out = tmp_path / "x.csv"
    exported = runner.invoke(app, ["segment", "export", "--segment", "兴趣X", "--out", str(out), *corp])
    assert exported.exit_code == 0, exported.output
    assert len(_csv(out.read_bytes())) == 4
    both = runner.invoke(app, ["segment", "export", "--out", str(out), *corp])
    assert both.exit_code == 2
    missing = runner.invoke(app, ["segment", "snapshot", "--segment", "nope", *corp])
    assert missing.exit_code == 1 and "no segment 'nope'" in missing.output
    with db() as s:
        assert s.scalar(select(Follow.id).where(Follow.customer_id == world["c"])) == world["fc"]
