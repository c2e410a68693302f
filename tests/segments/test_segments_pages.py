"""The 客户分群 console pages: list with counts, the live preview the builder calls, save, snapshot, delete."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from siyu.segments import engine
from tests.console_api_support import add, console_client, customer, employee, follow, follow_tag, tag, tag_group
from tests.factories import make_corp


@pytest.fixture
def world(db: sessionmaker[Session]) -> dict[str, Any]:
    engine.drop_engine()
    corp = make_corp(db).corp_id
    [emp] = add(db, employee(corp, "zhangsan", "张三"))
    a, b, _c = add(db, customer(corp, "甲"), customer(corp, "乙"), customer(corp, "丙"))
    fa, fb = add(db, follow(corp, emp, a), follow(corp, emp, b))
    [group] = add(db, tag_group(corp, "兴趣"))
    [x] = add(db, tag(corp, group, "X"))
    add(db, follow_tag(corp, fa, x), follow_tag(corp, fb, x))
    return {"corp": corp, "x": x}


def _rule(node: object) -> str:
    return json.dumps({"version": 1, "rule": node})


def test_the_preview_counts_samples_and_explains_errors(db: sessionmaker[Session], world: dict[str, Any]) -> None:
    client = console_client(db, world["corp"], "compliance")
    page = client.get("/segments")
    assert page.status_code == 200
    assert 'data-testid="segment-builder"' in page.text and 'data-testid="segment-form"' not in page.text  # read only
    ok = client.post("/segments/preview", data={"rule": _rule({"tags": {"any": [world["x"]]}})})
    assert 'data-count="2"' in ok.text and "张三" in ok.text
    bad = client.post("/segments/preview", data={"rule": _rule({"tags": {"any": []}})})
    assert 'data-testid="segment-error"' in bad.text and "rule.tags.any" in bad.text
    empty = client.post("/segments/preview", data={"rule": ""})
    assert 'data-testid="segment-empty"' in empty.text


def test_save_snapshot_and_delete_from_the_console(db: sessionmaker[Session], world: dict[str, Any]) -> None:
    client = console_client(db, world["corp"], "operator")
    # when the operator saves the rule under a name
    has_x = _rule({"tags": {"any": [world["x"]]}})
    r = client.post("/segments", data={"name": "有X", "description": "", "rule": has_x})
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    segment_id = int(re.sub(r"\D", "", url))
    # then the list shows it with its count, and its page shows the sample
    listed = client.get("/segments").text
    assert "有X" in listed and re.search(r'data-testid="segment-row-count">2<', listed)
    detail = client.get(url).text
    assert 'data-count="2"' in detail and "张三" in detail
    # when a snapshot is taken, it is listed with its size
    r = client.post(f"/segments/{segment_id}/snapshot", data={"name": "周一"})
    assert r.status_code == 303
    assert re.search(r'data-testid="snapshot-count">2<', client.get(url).text)
    # a duplicate name is refused on the page, with the input kept
    again = client.post("/segments", data={"name": "有X", "description": "", "rule": _rule({"gender": [1]})})
    assert again.status_code == 200 and "already exists" in again.text
    # and deleting it returns to the list
    assert client.post(f"/segments/{segment_id}/delete").status_code == 303
    assert client.get(url).status_code == 404


def test_staff_cannot_open_segments(db: sessionmaker[Session], world: dict[str, Any]) -> None:
    add(db, employee(world["corp"], "lisi"))
    client = console_client(db, world["corp"], "staff", employee_userid="lisi")
    assert client.get("/segments").status_code == 403
