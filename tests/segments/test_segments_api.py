"""POST /api/segments/count and `siyu segment count`: the rule in, the count and a sample out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from siyu.cli import app
from siyu.segments import engine
from tests.console_api_support import add, api_client, customer, employee, follow, follow_tag, tag, tag_group
from tests.factories import make_corp


@pytest.fixture
def world(db: sessionmaker[Session]) -> dict[str, int]:
    """Three customers of one employee: A has tags X and Y, B has X, C has none; another corp has X too."""
    engine.drop_engine()
    corp = make_corp(db).corp_id
    [emp] = add(db, employee(corp, "zhangsan"))
    a, b, c = add(db, customer(corp, "甲"), customer(corp, "乙"), customer(corp, "丙"))
    fa, fb, _ = add(db, follow(corp, emp, a), follow(corp, emp, b), follow(corp, emp, c))
    [group] = add(db, tag_group(corp, "兴趣"))
    x, y = add(db, tag(corp, group, "X"), tag(corp, group, "Y"))
    add(db, follow_tag(corp, fa, x), follow_tag(corp, fa, y), follow_tag(corp, fb, x))
    other = make_corp(db, wecom_corpid="wwother").corp_id
    [oemp] = add(db, employee(other, "lisi"))
    [oc] = add(db, customer(other, "别家"))
    [of] = add(db, follow(other, oemp, oc))
    add(db, follow_tag(other, of, x))
    return {"corp": corp, "a": a, "b": b, "c": c, "x": x, "y": y}


def _rule(node: object) -> dict[str, object]:
    return {"version": 1, "rule": node}


def test_count_and_sample(db: sessionmaker[Session], world: dict[str, int]) -> None:
    client = api_client(db, world["corp"], "operator")
    body = {"rule": _rule({"and": [{"tags": {"any": [world["x"]]}}, {"not": {"tags": {"any": [world["y"]]}}}]})}
    r = client.post("/api/segments/count", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["count"] == 1 and data["sample"] == [{"id": world["b"], "name": "乙", "owners": ["zhangsan"]}]
    assert data["unknown_ids"] == {}


def test_all_of_two_tags_and_unknown_ids(db: sessionmaker[Session], world: dict[str, int]) -> None:
    client = api_client(db, world["corp"], "admin")
    r = client.post("/api/segments/count", json={"rule": _rule({"tags": {"all": [world["x"], world["y"], 999999]}})})
    assert r.status_code == 200
    assert r.json()["count"] == 0 and r.json()["unknown_ids"] == {"tags": [999999]}
    r = client.post("/api/segments/count", json={"rule": _rule({"tags": {"all": [world["x"], world["y"]]}})})
    assert r.json()["count"] == 1 and r.json()["sample"][0]["id"] == world["a"]


def test_a_bad_rule_is_a_422_naming_where(db: sessionmaker[Session], world: dict[str, int]) -> None:
    client = api_client(db, world["corp"], "admin")
    r = client.post("/api/segments/count", json={"rule": _rule({"and": [{"tags": {"any": []}}]})})
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"].startswith("rule.and[0].tags")


def test_staff_may_not_count(db: sessionmaker[Session], world: dict[str, int]) -> None:
    client = api_client(db, world["corp"], "staff", employee_userid="zhangsan")
    assert client.post("/api/segments/count", json={"rule": _rule({"gender": [1]})}).status_code == 403


def test_cli_counts_a_rule_file_and_refuses_bad_ones(world: dict[str, int], tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "rule.json"
    path.write_text(json.dumps(_rule({"tags": {"any": [world["x"]]}})))
    result = runner.invoke(app, ["segment", "count", "--rule", str(path), "--corp", str(world["corp"])])
    assert result.exit_code == 0, result.output
    assert "2 customers" in result.output and "甲" in result.output
    bad = runner.invoke(app, ["segment", "count", "--rule", '{"version": 2, "rule": {}}', "--corp", str(world["corp"])])
    assert bad.exit_code == 1 and "version" in bad.output
    not_json = runner.invoke(app, ["segment", "count", "--rule", "{nope", "--corp", str(world["corp"])])
    assert not_json.exit_code == 2
