"""A customer's timeline: recorded by callbacks, syncs and console edits; read newest first, keyset-paged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.accounts.models import Role
from siyu.app import create_app
from siyu.callbacks import service as inbox_service
from siyu.callbacks.tasks import process_one
from siyu.contacts.models import Customer
from siyu.core.tasks import configure_queue
from siyu.corp.service import forget_crypt
from siyu.sync.flows import run_sync
from siyu.timeline.actions import do_record_event
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from tests.console_api_support import add, api_client, customer, employee
from tests.factories import make_corp
from tests.server_fixtures import serve_in_thread
from tests.sync.test_sync_support import corp_for


@dataclass
class Live:
    emu: RunningEmulator
    db: sessionmaker[Session]
    corp_id: int

    def process(self) -> list[str]:
        self.emu.wait_for_callbacks(10)
        with self.db() as s:
            ids = inbox_service.pending_ids(s)
        return [process_one(i) for i in ids]

    def customer_id(self, external_userid: str) -> int:
        with self.db() as s:
            found = s.scalar(sa.select(Customer.id).where(Customer.external_userid == external_userid))
        assert found is not None
        return found

    def a_follow(self) -> tuple[str, str]:
        follow = next(f for f in self.emu.state.follows() if self.emu.state.employees[f.userid].status == 1)
        return follow.userid, follow.external_userid

    def kinds(self, customer_id: int) -> list[str]:
        client = api_client(self.db, self.corp_id, Role.ADMIN)
        r = client.get(f"/api/customers/{customer_id}/timeline", params={"limit": 200})
        assert r.status_code == 200, r.text
        return [e["kind"] for e in r.json()["items"]]


@pytest.fixture
def live(db: sessionmaker[Session]) -> Iterator[Live]:
    forget_crypt()
    configure_queue()
    with start_emulator(employees=4, customers=20, seed=13) as emu:
        corp_id = corp_for(db, emu)
        run_sync(corp_id)
        with serve_in_thread(create_app(configure=False)) as url:
            emu.set_callback_url(f"{url}/wecom/callback/{corp_id}")
            yield Live(emu, db, corp_id)


def test_sync_records_each_follow_added_once_at_its_createtime(live: Live) -> None:
    # given a synced corp
    userid, ext = live.a_follow()
    customer_id = live.customer_id(ext)
    # when it syncs again
    run_sync(live.corp_id)
    # then every follow has exactly one follow_added, dated by WeCom's createtime
    with live.db() as s:
        follows = s.execute(sa.text("SELECT count(*) FROM follow")).scalar_one()
        added = s.execute(sa.text("SELECT count(*) FROM customer_event WHERE kind = 'follow_added'")).scalar_one()
    assert added == follows
    emu_follow = live.emu.state.follow(userid, ext)
    assert emu_follow is not None
    client = api_client(live.db, live.corp_id, Role.ADMIN)
    events = client.get(f"/api/customers/{customer_id}/timeline").json()["items"]
    mine = [e for e in events if e["kind"] == "follow_added" and e["actor"] == "sync"]
    assert datetime.fromtimestamp(emu_follow.createtime, UTC) in {
        datetime.fromisoformat(e["occurred_at"]) for e in mine
    }


def test_callbacks_record_add_remark_tags_end_and_groups(live: Live) -> None:
    # given an employee and a new customer who adds them through a channel code
    userid = live.a_follow()[0]
    added = live.emu.actors.add_customer(userid=userid, state="store_sh_01", name="时间线客户")
    assert live.process() == ["done"]
    ext = added.data["external_userid"]
    customer_id = live.customer_id(ext)
    # when the employee edits the remark and tags, a group forms and the customer leaves, then deletes the employee
    live.emu.actors.edit_remark(userid, ext, remark="王总")
    assert live.process() == ["done"]
    live.emu.actors.tag_customer(userid, ext, add_tags=[next(iter(live.emu.state.tags))])
    assert live.process() == ["done"]
    other = live.a_follow()[1]
    chat = live.emu.actors.create_group(userid, name="时间线群", external_userids=[other])
    assert live.process() == ["done"]
    live.emu.actors.group_add_members(chat.data["chat_id"], [ext])
    assert live.process() == ["done"]
    live.emu.actors.group_remove_members(chat.data["chat_id"], [ext])
    assert live.process() == ["done"]
    live.emu.actors.customer_delete_employee(userid, ext)
    assert live.process() == ["done"]
    # then the timeline tells the story, newest first
    assert live.kinds(customer_id) == [
        "follow_ended",
        "left_group",
        "joined_group",
        "tags_changed",
        "remark_changed",
        "follow_added",
    ]
    client = api_client(live.db, live.corp_id, Role.ADMIN)
    items = client.get(f"/api/customers/{customer_id}/timeline").json()["items"]
    by_kind = {e["kind"]: e for e in items}
    assert by_kind["follow_added"]["detail"]["state"] == "store_sh_01"
    assert by_kind["follow_ended"]["detail"]["cause"] == "customer_deleted_employee"
    assert by_kind["remark_changed"]["detail"]["remark"] == "王总"
    assert by_kind["joined_group"]["detail"]["group_name"] == "时间线群"


def test_timeline_pages_newest_first_and_staff_see_their_scope(db: sessionmaker[Session]) -> None:
    # given a customer followed by two employees, with 7 events
    corp_id = make_corp(db).corp_id
    alice, bob = add(db, employee(corp_id, "alice"), employee(corp_id, "bob"))
    (cid,) = add(db, customer(corp_id, "客户"))
    from siyu.contacts.models import Follow

    add(
        db,
        Follow(corp_id=corp_id, employee_id=alice, customer_id=cid),
        Follow(corp_id=corp_id, employee_id=bob, customer_id=cid),
    )
    base = datetime(2024, 1, 1, tzinfo=UTC)
    with db.begin() as s:
        for i in range(7):
            do_record_event(
                s,
                corp_id=corp_id,
                customer_id=cid,
                kind="remark_changed",
                occurred_at=base + timedelta(hours=i // 2),  # ties: ordered by id within the same instant
                employee_id=alice if i % 2 == 0 else bob,
                detail={"i": i},
            )
    admin = api_client(db, corp_id, Role.ADMIN)
    # when the admin pages through 3 at a time
    seen, before = [], None
    while True:
        r = admin.get(f"/api/customers/{cid}/timeline", params={"limit": 3, **({"before": before} if before else {})})
        assert r.status_code == 200, r.text
        seen += [e["detail"]["i"] for e in r.json()["items"]]
        before = r.json()["next_cursor"]
        if before is None:
            break
    # then every event comes once, newest first
    assert seen == [6, 5, 4, 3, 2, 1, 0]
    # and alice sees only her follow's events
    staff = api_client(db, corp_id, Role.STAFF, employee_userid="alice")
    assert [e["detail"]["i"] for e in staff.get(f"/api/customers/{cid}/timeline").json()["items"]] == [6, 4, 2, 0]
