"""The broadcast and Moments console pages: list, composer with the content check, the plan (excluded by reason,
per sender, blocked content, excluded recipients), sending, progress and results, remind and cancel — rendered
and posted over HTTP on both databases, with the queue in memory (nothing talks to WeCom)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

import siyu.console
from siyu.acquisition.models import Material
from siyu.analytics.service import corp_zone
from siyu.broadcasts import results, sender
from siyu.broadcasts.models import Broadcast, BroadcastChunk
from siyu.compliance.policy import DEFAULT_POLICY
from siyu.contacts.models import Customer
from siyu.core.clock import now_utc
from siyu.core.tasks import configure_queue
from siyu.corp.models import Corp
from siyu.outbox.models import WeComOutbox
from tests import console_api_support as sup
from tests.broadcasts.planner_support import World, make_world
from tests.console_api_support import console_client

LOCALE = Path(siyu.console.__file__).parent / "locale" / "zh_CN" / "LC_MESSAGES"


@pytest.fixture(autouse=True)
def _queue() -> None:
    configure_queue("memory://")  # chunks and polls stay queued: nothing talks to WeCom


@pytest.fixture
def world(db: sessionmaker[Session]) -> World:
    w = make_world(db, "zhang", "li")
    w.policy(quiet_start="", quiet_end="")  # pages plan "now": keep the wall clock out of it
    return w


def _today(world: World) -> date:
    with world.db() as s:
        corp = s.get(Corp, world.corp_id)
        assert corp is not None
        return now_utc().astimezone(corp_zone(corp)).date()


def _audience(world: World) -> dict[str, list[int]]:
    """zhang's 4 customers (one opted out, one already reached today) and li's 2."""
    zhang = world.customers(4, follower="zhang")
    li = world.customers(2, follower="li")
    world.opt_out(zhang[0])
    world.slot(zhang[1], _today(world))
    return {"zhang": zhang, "li": li}


def _compose(client: TestClient, **fields: object) -> str:
    """Post the composer (Plan); returns where it went."""
    data = {
        "kind": "customer",
        "name": "双十二预热",
        "source": "rule",
        "text": "双十二会员日，全场八折",
        "action": "plan",
    }
    r = client.post("/broadcasts", data={**data, **fields})
    assert r.status_code == 303, r.text
    return r.headers["location"]


def _owners_rule(*userids: str) -> str:
    return json.dumps({"version": 1, "rule": {"owner": {"employees": list(userids)}}})


def _id(location: str) -> int:
    found = re.search(r"/broadcasts/(\d+)", location)
    assert found, location
    return int(found.group(1))


# --- pages render ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/broadcasts", 'data-testid="broadcast-table"'),
        ("/moments", 'data-testid="new-moment"'),
        ("/broadcasts/new", 'data-testid="source-segment_id"'),
        ("/broadcasts/new?kind=personal", 'data-testid="source-customer_ids"'),
        ("/broadcasts/new?kind=group", 'name="owner_ids"'),
        ("/broadcasts/new?kind=moment", 'name="tag_ids"'),
        ("/moments/new", 'name="tag_ids"'),
    ],
)
def test_pages_render_in_chinese_for_an_operator(
    db: sessionmaker[Session], world: World, path: str, marker: str
) -> None:
    # given
    client = console_client(db, world.corp_id, "operator")
    # when
    r = client.get(path)
    # then
    assert r.status_code == 200, r.text
    assert marker in r.text
    assert 'href="/broadcasts"' in r.text and "群发" in r.text and "朋友圈" in r.text


def test_a_segment_page_link_preselects_the_segment_as_the_audience(db: sessionmaker[Session], world: World) -> None:
    # given a saved segment
    from siyu.segments.actions import do_create_segment
    from siyu.segments.schemas import SegmentCreate

    with db.begin() as session:
        body = SegmentCreate(name="高价值会员", rule=json.loads(_owners_rule("zhang")))
        segment_id = do_create_segment(session, world.admin, body).id
    client = console_client(db, world.corp_id, "operator")
    # when the composer opens from the segment's "broadcast to this segment" link
    page = client.get(f"/broadcasts/new?segment_id={segment_id}").text
    # then the saved segment is the chosen audience; without the link nothing is preselected
    assert re.search(r'value="segment_id"\s+checked', page)
    assert re.search(rf'<option value="{segment_id}"\s+selected', page)
    plain = client.get("/broadcasts/new").text
    assert not re.search(rf'<option value="{segment_id}"\s+selected', plain)
    assert client.get("/broadcasts/new?segment_id=abc").status_code == 200


def test_english_on_request(db: sessionmaker[Session], world: World) -> None:
    # given a planned broadcast, and an operator who chose English
    _audience(world)
    client = console_client(db, world.corp_id, "operator")
    location = _compose(client, rule=_owners_rule("zhang", "li"))
    client.cookies.set("siyu_lang", "en")
    # when / then
    page = client.get(location).text
    assert "Confirm and send" in page and "Excluded, by reason" in page and "Opted out" in page
    assert "确认发送" not in page


def test_compliance_reads_the_list_but_cannot_compose(db: sessionmaker[Session], world: World) -> None:
    # given
    client = console_client(db, world.corp_id, "compliance")
    # when / then
    assert client.get("/broadcasts").status_code == 200
    assert 'data-testid="new-broadcast"' not in client.get("/broadcasts").text
    assert client.get("/broadcasts/new").status_code == 403
    assert client.post("/broadcasts", data={"name": "x", "text": "y", "source": "rule"}).status_code == 422


# --- staff: personal broadcasts to their own customers --------------------------------------------------


def _personal(client: TestClient, sender_id: int, customer_ids: list[int], **fields: object) -> httpx.Response:
    data: dict[str, object] = {
        "kind": "personal",
        "name": "老客回访",
        "source": "customer_ids",
        "customer_ids": [str(i) for i in customer_ids],
        "sender_ids": [str(sender_id)],
        "text": "周末到店有小礼物",
        "action": "plan",
    }
    return client.post("/broadcasts", data={**data, **fields})


def test_staff_compose_plan_and_send_a_personal_broadcast_to_their_customers(
    db: sessionmaker[Session], world: World
) -> None:
    # given zhang's 3 customers, and zhang signed in as staff
    mine = world.customers(3, follower="zhang")
    zhang = world.employees["zhang"]
    client = console_client(db, world.corp_id, "staff", employee_userid="zhang")
    # when zhang opens the nav and the composer
    home = client.get("/").text
    composer = client.get("/broadcasts/new")
    # then 群发 is in the nav, and the composer is personal only: their customers as checkboxes, no sender picker
    assert 'href="/broadcasts"' in home and 'href="/moments"' not in home
    assert composer.status_code == 200, composer.text
    page = composer.text
    assert page.count('data-testid="own-customer"') == 3 and "个人群发" in page
    assert 'data-testid="broadcast-senders"' not in page and 'data-testid="broadcast-sender"' in page
    assert 'data-testid="source-segment_id"' not in page and 'data-testid="source-rule"' not in page
    # when zhang plans to two of them and sends
    r = _personal(client, zhang, mine[:2])
    assert r.status_code == 303, r.text
    bid = _id(r.headers["location"])
    plan = client.get(f"/broadcasts/{bid}/plan").text
    edit = client.get(f"/broadcasts/{bid}/edit").text
    sent = client.post(f"/broadcasts/{bid}/send")
    # then the plan has both, with the send button, and sending starts
    assert re.search(r'data-testid="plan-eligible">\s*2\s*<', plan), plan
    assert 'data-testid="broadcast-send"' in plan
    assert edit.count('checked data-testid="own-customer"') == 2 and 'data-testid="broadcast-plan"' in edit
    assert sent.status_code == 303 and sent.headers["location"] == f"/broadcasts/{bid}?notice=started"
    with db() as s:
        broadcast = s.get(Broadcast, bid)
        assert broadcast is not None and broadcast.status == "sending" and broadcast.sender_ids == [zhang]
    # and the results page offers cancel; it is in zhang's list
    assert 'data-testid="broadcast-cancel"' in client.get(f"/broadcasts/{bid}").text
    assert f'data-broadcast-id="{bid}"' in client.get("/broadcasts").text
    assert client.post(f"/broadcasts/{bid}/cancel").headers["location"] == f"/broadcasts/{bid}?notice=cancelled"


LIMIT = DEFAULT_POLICY.personal_max_recipients


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("another_employees_customer", "个人群发只能发给你自己的客户；以下客户不是你的："),
        ("over_the_limit", f"个人群发最多发给 {LIMIT} 位客户；你选择了 {LIMIT + 1} 位。"),
        ("another_sender", "你发起的个人群发只能由你本人发送，不能选择其他发送人。"),
        ("nobody", "请至少选择一位你的客户。"),
    ],
)
def test_staff_personal_broadcast_refused(db: sessionmaker[Session], world: World, case: str, message: str) -> None:
    # given zhang's customers (one more than a personal broadcast may reach, when that is the case) and li's one
    mine = world.customers(LIMIT + 1 if case == "over_the_limit" else 2, follower="zhang")
    theirs = world.customers(1, follower="li")
    zhang, li = world.employees["zhang"], world.employees["li"]
    client = console_client(db, world.corp_id, "staff", employee_userid="zhang")
    sender_id, customers = {
        "another_employees_customer": (zhang, [mine[0], theirs[0]]),
        "over_the_limit": (zhang, mine),
        "another_sender": (li, mine[:1]),
        "nobody": (zhang, []),
    }[case]
    # when
    r = _personal(client, sender_id, customers)
    # then the composer comes back with the reason, and nothing is saved
    assert r.status_code == 422, r.text
    assert message in r.text
    if case == "another_employees_customer":
        assert f"不是你的：{theirs[0]}" in r.text
    with db() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Broadcast)) == 0


def test_staff_may_start_personal_broadcasts_only(db: sessionmaker[Session], world: World) -> None:
    # given
    mine = world.customers(1, follower="zhang")
    client = console_client(db, world.corp_id, "staff", employee_userid="zhang")
    # when / then any other kind is forbidden, on the page and on post
    assert client.get("/broadcasts/new?kind=customer").status_code == 403
    assert client.get("/moments/new").status_code == 403
    customer = _personal(client, world.employees["zhang"], mine, kind="customer")
    assert customer.status_code == 403
    assert client.get("/moments").status_code == 403


def test_staff_see_only_their_own_personal_broadcasts(db: sessionmaker[Session], world: World) -> None:
    # given an operator's broadcast, li's personal one, and zhang's
    world.customers(1, follower="li")
    zhang_customers = world.customers(1, follower="zhang")
    operator = console_client(db, world.corp_id, "operator")
    theirs = _id(_compose(operator, rule=_owners_rule("zhang")))
    li = console_client(db, world.corp_id, "staff", employee_userid="li")
    li_customers = world.customers(1, follower="li")
    li_bid = _id(_personal(li, world.employees["li"], li_customers).headers["location"])
    zhang = console_client(db, world.corp_id, "staff", employee_userid="zhang")
    mine = _id(_personal(zhang, world.employees["zhang"], zhang_customers).headers["location"])
    # when zhang looks at the list
    listed = zhang.get("/broadcasts")
    # then only their own shows, with the new personal broadcast button; the others are not found
    assert listed.status_code == 200
    assert re.findall(r'data-broadcast-id="(\d+)"', listed.text) == [str(mine)]
    assert 'data-testid="new-personal-broadcast"' in listed.text and 'data-testid="new-broadcast"' not in listed.text
    for other in (theirs, li_bid):
        assert zhang.get(f"/broadcasts/{other}/plan").status_code == 404
        assert zhang.post(f"/broadcasts/{other}/send").status_code == 404
    # and the operator still sees and may send every one
    everything = operator.get("/broadcasts").text
    assert all(f'data-broadcast-id="{b}"' in everything for b in (theirs, li_bid, mine))
    assert 'data-testid="broadcast-send"' in operator.get(f"/broadcasts/{mine}/plan").text


# --- compose and plan -----------------------------------------------------------------------------------


def test_compose_to_a_rule_and_see_the_plan_with_exclusions_by_reason(db: sessionmaker[Session], world: World) -> None:
    # given zhang's and li's customers, one opted out and one already reached today
    people = _audience(world)
    client = console_client(db, world.corp_id, "operator")
    # when an operator composes a broadcast to a rule and presses Plan
    location = _compose(client, rule=_owners_rule("zhang", "li"))
    # then the plan page shows who gets it and who is excluded and why
    assert location.endswith("/plan")
    page = client.get(location).text
    assert re.search(r'data-testid="plan-eligible">4<', page)
    assert re.search(r'data-testid="plan-excluded">2<', page)
    assert 'data-testid="excluded-row" data-reason="opted_out"' in page
    assert 'data-testid="excluded-row" data-reason="platform_cap"' in page
    assert "已退订" in page and "已达企业微信接收上限" in page  # reasons in Chinese
    assert page.count('data-testid="sender-row"') == 2
    assert 'id="excluded-data"' in page and "/static/vendor/echarts.min.js" in page
    assert 'data-testid="broadcast-send"' in page
    # and the excluded recipients page by reason
    bid = _id(location)
    part = client.get(f"/broadcasts/{bid}/recipients", params={"status": "excluded", "reason": "opted_out"}).text
    assert part.count('data-testid="recipient-row"') == 1
    assert f'data-customer-id="{people["zhang"][0]}"' in part


def test_excluded_recipients_page_by_keyset(
    db: sessionmaker[Session], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a plan that excludes 5 opted-out customers, shown 2 at a time
    from siyu.console.routes import broadcasts as pages

    monkeypatch.setattr(pages, "RECIPIENTS_PAGE", 2)
    ids = world.customers(5, follower="zhang")
    for customer_id in ids:
        world.opt_out(customer_id)
    client = console_client(db, world.corp_id, "operator")
    bid = _id(_compose(client, rule=_owners_rule("zhang")))
    # when the pages are followed by their cursors
    seen: list[str] = []
    url = f"/broadcasts/{bid}/recipients?status=excluded&page_url=/broadcasts/{bid}/plan"
    for _ in range(5):
        part = client.get(url).text
        seen += re.findall(r'data-customer-id="(\d+)"', part)
        more = re.search(r'hx-get="([^"]+)"[^>]*data-testid="recipients-next"', part)
        if not more:
            break
        url = more.group(1).replace("&amp;", "&")
    # then every excluded customer shows once, in order
    assert seen == [str(i) for i in ids]


def test_blocked_content_shows_the_findings_highlighted(db: sessionmaker[Session], world: World) -> None:
    # given
    world.customers(2, follower="zhang")
    client = console_client(db, world.corp_id, "operator")
    # when the text carries a sensitive word and induced sharing
    location = _compose(client, rule=_owners_rule("zhang"), text="全网最低价，转发朋友圈领取红包")
    # then the plan is blocked, showing what matched, with no Send button
    page = client.get(location).text
    assert 'data-testid="plan-blocked"' in page
    assert '<mark class="finding sensitive_word"' in page and "最低价" in page
    assert 'data-kind="induced_sharing"' in page
    assert 'data-testid="broadcast-send"' not in page and 'data-testid="broadcast-edit"' in page


def test_the_live_content_check_highlights_findings(db: sessionmaker[Session], world: World) -> None:
    client = console_client(db, world.corp_id, "operator")
    r = client.post("/broadcasts/check", data={"text": "加微信领取，见 http://evil.example/x"})
    assert r.status_code == 200
    assert 'data-findings="2"' in r.text
    assert '<mark class="finding sensitive_word"' in r.text and '<mark class="finding link"' in r.text
    clean = client.post("/broadcasts/check", data={"text": "周末会员日，欢迎到店"})
    assert 'data-testid="check-clean"' in clean.text


def test_a_refused_draft_keeps_its_input(db: sessionmaker[Session], world: World) -> None:
    client = console_client(db, world.corp_id, "operator")
    r = client.post(
        "/broadcasts",
        data={"kind": "customer", "name": "坏规则", "source": "rule", "rule": "{not json", "text": "你好"},
    )
    assert r.status_code == 422
    assert 'data-testid="broadcast-error"' in r.text and "rule: not valid JSON" in r.text
    assert "{not json" in r.text and 'value="坏规则"' in r.text
    with db() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Broadcast)) == 0


def test_a_plan_refused_keeps_the_saved_draft(db: sessionmaker[Session], world: World) -> None:
    # given a personal broadcast whose rule reaches more customers than a personal broadcast may (200)
    world.customers(201, follower="zhang")
    client = console_client(db, world.corp_id, "operator")
    data = {"kind": "personal", "name": "个人", "source": "rule", "rule": _owners_rule("zhang"), "text": "你好"}
    # when it is planned
    r = client.post("/broadcasts", data={**data, "sender_ids": [str(world.employees["zhang"])], "action": "plan"})
    # then the composer says why, and the draft is kept to edit
    assert r.status_code == 422
    assert 'data-testid="broadcast-error"' in r.text and "at most 200" in r.text
    with db() as s:
        (draft,) = s.scalars(sa.select(Broadcast)).all()
        assert draft.status == "draft"
    assert f'action="/broadcasts/{draft.id}/edit"' in r.text


def test_a_customer_list_by_upload_and_external_userid(db: sessionmaker[Session], world: World) -> None:
    # given three customers; the upload is a segment export (header with an id column), the paste external ids
    ids = world.customers(3, follower="zhang")
    with db() as s:
        external = s.scalar(sa.select(Customer.external_userid).where(Customer.id == ids[2]))
    csv_text = f"id,external_userid,name\n{ids[0]},x,a\n{ids[1]},y,b\n"
    client = console_client(db, world.corp_id, "operator")
    # when
    r = client.post(
        "/broadcasts",
        data={"kind": "customer", "name": "名单", "source": "customer_ids", "customer_list": external, "text": "你好"},
        files={"customer_file": ("list.csv", csv_text.encode(), "text/csv")},
    )
    # then the draft holds all three
    assert r.status_code == 303, r.text
    with db() as s:
        draft = s.get(Broadcast, _id(r.headers["location"]))
        assert draft is not None and sorted(draft.audience["customer_ids"]) == sorted(ids)
    # and an unknown external_userid is named
    bad = client.post(
        "/broadcasts",
        data={"kind": "customer", "name": "名单", "source": "customer_ids", "customer_list": "wmNOPE", "text": "你好"},
    )
    assert bad.status_code == 422 and "wmNOPE" in bad.text


def test_audience_count(db: sessionmaker[Session], world: World) -> None:
    world.customers(3, follower="zhang")
    client = console_client(db, world.corp_id, "operator")
    r = client.post(
        "/broadcasts/audience-count", data={"kind": "customer", "source": "rule", "rule": _owners_rule("zhang")}
    )
    assert 'data-count="3"' in r.text
    bad = client.post("/broadcasts/audience-count", data={"kind": "customer", "source": "rule", "rule": "[]"})
    assert 'data-testid="audience-count-error"' in bad.text


def test_edit_a_draft_with_materials(db: sessionmaker[Session], world: World) -> None:
    # given a draft with a link material attached
    ids = world.customers(2, follower="zhang")
    with db.begin() as s:
        link = Material(corp_id=world.corp_id, kind="link", title="会员日", url="https://shop.example/vip")
        s.add(link)
        s.flush()
        link_id = link.id
    client = console_client(db, world.corp_id, "operator")
    data = {
        "kind": "customer",
        "name": "带链接",
        "source": "customer_ids",
        "customer_list": str(ids[0]),
        "text": "你好",
    }
    r = client.post("/broadcasts", data={**data, "material_ids": [str(link_id)], "action": "save"})
    assert r.status_code == 303 and r.headers["location"].endswith("/edit?notice=saved")
    bid = _id(r.headers["location"])
    # when the draft is opened, it shows its material chosen; an edit changes the name only
    page = client.get(r.headers["location"]).text
    assert f'name="material_ids" value="{link_id}" checked' in page and "草稿已保存" in page
    r = client.post(
        f"/broadcasts/{bid}/edit",
        data={**data, "name": "改名", "customer_list": str(ids[1]), "material_ids": [str(link_id)], "action": "save"},
    )
    # then
    assert r.status_code == 303
    with db() as s:
        draft = s.get(Broadcast, bid)
        assert draft is not None
        assert (draft.name, draft.audience, len(draft.content["attachments"])) == (
            "改名",
            {"customer_ids": [ids[1]]},
            1,
        )
    assert client.get(f"/broadcasts/{bid}").headers["location"] == f"/broadcasts/{bid}/edit"


# --- send, progress, results, remind, cancel --------------------------------------------------------------


def _sent_and_confirmed(db: sessionmaker[Session], bid: int, *, confirm: bool) -> None:
    """What the worker records when WeCom accepts each chunk and (optionally) its sender confirms."""
    with db.begin() as s:
        chunks = s.scalars(sa.select(BroadcastChunk).where(BroadcastChunk.broadcast_id == bid)).all()
        for chunk in chunks:
            sender.do_claim(s, chunk_id=chunk.id)
            sender.do_record_sent(s, chunk_id=chunk.id, msgid=f"msg-{chunk.id}", fail_list=[])
            if confirm:
                targets = sender.recipient_wecom_ids(s, chunk.id, "customer")
                rows = [{"external_userid": t, "status": 1} for t in targets]
                results.do_apply_results(s, chunk_id=chunk.id, kind="customer", confirmed=True, rows=rows)
        results.do_summarize(s, bid)


def test_send_then_watch_progress_and_results(db: sessionmaker[Session], world: World) -> None:
    # given a planned broadcast: 4 eligible from zhang and li
    _audience(world)
    client = console_client(db, world.corp_id, "operator")
    bid = _id(_compose(client, rule=_owners_rule("zhang", "li")))
    # when the operator confirms the plan
    r = client.post(f"/broadcasts/{bid}/send")
    # then it is sending, and the page polls its progress
    assert r.status_code == 303 and r.headers["location"] == f"/broadcasts/{bid}?notice=started"
    page = client.get(r.headers["location"]).text
    assert 'data-status="sending"' in page and 'data-live="1"' in page
    assert 'data-accepted="0" data-total="2"' in page and 'data-testid="broadcast-notice"' in page
    # when WeCom accepts both chunks and the employees confirm
    _sent_and_confirmed(db, bid, confirm=True)
    # then the polled part shows the results
    part = client.get(f"/broadcasts/{bid}/progress").text
    assert 'data-accepted="2" data-total="2"' in part
    assert re.search(r'data-testid="count-sent">4<', part)
    assert part.count('data-testid="employee-row"') == 2 and 'data-testid="confirmation-rate">100.0%<' in part
    listed = client.get("/broadcasts").text
    assert re.search(r'data-testid="row-sent">4<', listed)
    sent_rows = client.get(f"/broadcasts/{bid}/recipients", params={"status": "sent"}).text
    assert sent_rows.count('data-testid="recipient-row"') == 4


def test_remind_fetch_and_cancel(db: sessionmaker[Session], world: World) -> None:
    # given a sent broadcast nobody has confirmed yet
    world.customers(2, follower="zhang")
    client = console_client(db, world.corp_id, "operator")
    bid = _id(_compose(client, rule=_owners_rule("zhang")))
    assert client.post(f"/broadcasts/{bid}/send").status_code == 303
    _sent_and_confirmed(db, bid, confirm=False)
    assert 'data-testid="remind"' in client.get(f"/broadcasts/{bid}").text
    # when the operator reminds, asks for the results and cancels
    reminded = client.post(f"/broadcasts/{bid}/remind")
    fetched = client.post(f"/broadcasts/{bid}/refresh")
    cancelled = client.post(f"/broadcasts/{bid}/cancel")
    # then one reminder and one cancel go through the outbox; the page says so
    assert reminded.headers["location"] == f"/broadcasts/{bid}?reminded=1&at_limit=0"
    assert "已为 1 个未确认的任务发送提醒" in client.get(reminded.headers["location"]).text
    assert fetched.headers["location"] == f"/broadcasts/{bid}?notice=fetching"
    assert cancelled.headers["location"] == f"/broadcasts/{bid}?notice=cancelled"
    with db() as s:
        kinds = sorted(s.scalars(sa.select(WeComOutbox.kind).where(WeComOutbox.corp_id == world.corp_id)))
        assert len(kinds) == 2 and kinds[0] != kinds[1]
        broadcast = s.get(Broadcast, bid)
        assert broadcast is not None and broadcast.status == "cancelled"
    # and cancelling twice is refused on the page, not with an error page
    again = client.post(f"/broadcasts/{bid}/cancel")
    assert again.status_code == 422 and 'data-testid="broadcast-error"' in again.text


def test_a_send_time_in_quiet_hours_moves_and_waits(db: sessionmaker[Session], world: World) -> None:
    # given the default quiet hours (21:00–08:00) and a broadcast for 03:00 tomorrow
    world.policy(quiet_start="21:00", quiet_end="08:00")
    world.customers(2, follower="zhang")
    tomorrow = _today(world) + timedelta(days=1)
    client = console_client(db, world.corp_id, "operator")
    location = _compose(client, rule=_owners_rule("zhang"), scheduled_at=f"{tomorrow}T03:00")
    # when the plan is shown and confirmed
    page = client.get(location).text
    sent = client.post(f"/broadcasts/{_id(location)}/send")
    # then the plan says the time moved to the end of the quiet hours, and the broadcast waits for it
    assert 'data-testid="plan-moved"' in page and f"{tomorrow} 08:00" in page
    assert sent.headers["location"].endswith("?notice=scheduled")
    waiting = client.get(sent.headers["location"]).text
    assert 'data-status="scheduled"' in waiting and f"{tomorrow} 08:00" in waiting


def test_replan_and_cancel_a_plan(db: sessionmaker[Session], world: World) -> None:
    ids = world.customers(3, follower="zhang")
    client = console_client(db, world.corp_id, "operator")
    bid = _id(_compose(client, rule=_owners_rule("zhang")))
    world.opt_out(ids[0])
    assert client.post(f"/broadcasts/{bid}/plan").headers["location"] == f"/broadcasts/{bid}/plan"
    assert re.search(r'data-testid="plan-eligible">2<', client.get(f"/broadcasts/{bid}/plan").text)
    assert client.post(f"/broadcasts/{bid}/cancel").status_code == 303
    assert 'data-status="cancelled"' in client.get(f"/broadcasts/{bid}").text


def test_a_moment_from_compose_to_its_job(db: sessionmaker[Session], world: World) -> None:
    # given two customers of zhang
    world.customers(2, follower="zhang")
    client = console_client(db, world.corp_id, "operator")
    # when a Moment for every customer of zhang is composed, planned and sent
    r = client.post(
        "/broadcasts",
        data={
            "kind": "moment", "name": "新品朋友圈", "source": "tag_ids", "text": "新品上市",
            "sender_ids": [str(world.employees["zhang"])], "action": "plan",
        },
    )  # fmt: skip
    assert r.status_code == 303, r.text
    bid = _id(r.headers["location"])
    assert re.search(r'data-testid="plan-eligible">2<', client.get(r.headers["location"]).text)
    assert client.post(f"/broadcasts/{bid}/send").status_code == 303
    # then its page shows the Moments job and the publish table, and the Moments list has it
    page = client.get(f"/broadcasts/{bid}").text
    assert 'data-testid="moment-job"' in page and 'data-testid="moment-publish"' in page
    assert 'data-testid="remind"' not in page
    assert f'data-broadcast-id="{bid}"' in client.get("/moments").text
    # when WeCom creates the Moment and zhang publishes it
    with db.begin() as s:
        (chunk_id,) = s.scalars(sa.select(BroadcastChunk.id).where(BroadcastChunk.broadcast_id == bid))
        sender.do_claim(s, chunk_id=chunk_id)
        sender.do_record_moment_job(s, chunk_id=chunk_id, jobid="job-1")
        results.do_record_moment_result(s, chunk_id=chunk_id, result={"moment_id": "moment-1"})
        results.do_apply_moment_publish(s, chunk_id=chunk_id, rows=[{"userid": "zhang", "publish_status": 1}])
        results.do_summarize(s, bid)
    # then the job shows the Moment created, zhang published, and both customers can see it
    part = client.get(f"/broadcasts/{bid}/progress").text
    assert 'data-testid="moment-job-row" data-status="sent"' in part and "moment-1" in part and "朋友圈已创建" in part
    assert 'data-testid="publish-row" data-userid="zhang" data-published="1"' in part
    assert re.search(r'data-testid="count-sent">2<', part)


def test_moment_tags_and_group_owners_reach_the_draft(db: sessionmaker[Session], world: World) -> None:
    (group_pk,) = sup.add(db, sup.tag_group(world.corp_id, "等级"))
    (tag_id,) = sup.add(db, sup.tag(world.corp_id, group_pk, "VIP"))
    world.groups(2, owner="zhang")
    client = console_client(db, world.corp_id, "operator")
    moment = client.post(
        "/broadcasts",
        data={"kind": "moment", "name": "m", "source": "tag_ids", "tag_ids": [str(tag_id)], "text": "t"},
    )
    group = client.post(
        "/broadcasts",
        data={"kind": "group", "name": "g", "source": "owner_ids", "owner_ids": [str(world.employees["zhang"])]}
        | {"text": "群公告"},
    )
    with db() as s:
        assert s.get(Broadcast, _id(moment.headers["location"])).audience == {"tag_ids": [tag_id]}  # type: ignore[union-attr]
        assert s.get(Broadcast, _id(group.headers["location"])).audience == {"owner_ids": [world.employees["zhang"]]}  # type: ignore[union-attr]


# --- Chinese ------------------------------------------------------------------------------------------------


def _zh() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(LOCALE.glob("*.po")):
        with path.open("rb") as fh:
            found |= {m.id: str(m.string) for m in read_po(fh, locale="zh_Hans_CN") if m.id and m.string}
    return found


def test_every_label_chosen_in_python_has_chinese() -> None:
    from siyu.console.routes import _broadcasts as bc
    from siyu.console.routes import broadcasts as pages

    labels = [bc.KIND_LABELS, bc.STATUS_LABELS, bc.REASON_LABELS, bc.RECIPIENT_LABELS, bc.CHUNK_LABELS]
    labels += [bc.CONFIRM_LABELS, bc.SOURCE_LABELS, pages.NOTICES]
    msgids = {v for table in labels for v in table.values()}
    msgids |= {"Segment: {name}", "Snapshot #{id}", "{n} customers", "{n} groups", "Groups of {n} owners"}
    msgids |= {"Customers with {n} tags", "Every customer of the senders", "Your role may not change broadcasts."}
    msgids |= {"Not done: {detail}"}
    msgids |= {
        "Your user is not linked to a WeCom employee, so you cannot send personal broadcasts.",
        "A personal broadcast you start is sent by you; you cannot choose another sender.",
        "Choose at least one of your customers.",
        "A personal broadcast reaches at most {n} customers; you chose {m}.",
        "Only your own customers can get your personal broadcast; not yours: {ids}",
    }
    missing = sorted(m for m in msgids if m not in _zh())
    assert not missing, missing
