"""Every callback flows from an emulator action, over real HTTP and real crypto, into the database.

The emulator's actors change its corp and POST the encrypted event to siyu's server; the server
stores it; the processing task re-fetches through the API and applies it. After each add / edit /
tag / group / contact event the database mirrors the emulator exactly, row by row.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.app import create_app
from siyu.callbacks import service as inbox_service
from siyu.callbacks.tasks import process_one
from siyu.core.tasks import configure_queue
from siyu.corp.service import forget_crypt
from siyu.sync.flows import run_sync
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from tests.server_fixtures import serve_in_thread
from tests.sync.test_sync_support import assert_mirrors, corp_for


@dataclass
class Live:
    emu: RunningEmulator
    db: sessionmaker[Session]
    corp_id: int

    def process(self) -> list[str]:
        """What the worker does: apply every pending event; returns their final statuses."""
        self.emu.wait_for_callbacks(10)
        with self.db() as s:
            ids = inbox_service.pending_ids(s)
        return [process_one(i) for i in ids]

    def scalar(self, sql: str, **params: object) -> object:
        with self.db() as s:
            return s.execute(sa.text(sql), {"c": self.corp_id, **params}).scalar()

    def follow_status(self, userid: str, external_userid: str) -> tuple[str, bool]:
        with self.db() as s:
            row = s.execute(
                sa.text(
                    "SELECT f.status, f.ended_at FROM follow f JOIN employee e ON e.id = f.employee_id"
                    " JOIN customer c ON c.id = f.customer_id WHERE e.userid = :u AND c.external_userid = :x"
                ),
                {"u": userid, "x": external_userid},
            ).one()
        return row[0], row[1] is not None

    def a_follow(self) -> tuple[str, str]:
        follow = next(f for f in self.emu.state.follows() if self.emu.state.employees[f.userid].status == 1)
        return follow.userid, follow.external_userid

    def assert_mirrors(self) -> None:
        assert_mirrors(self.db, self.corp_id, self.emu.state)


@pytest.fixture
def live(db: sessionmaker[Session]) -> Iterator[Live]:
    forget_crypt()
    configure_queue()
    with start_emulator(employees=6, customers=40, seed=11) as emu:
        corp_id = corp_for(db, emu)
        run_sync(corp_id)
        with serve_in_thread(create_app(configure=False)) as url:
            emu.set_callback_url(f"{url}/wecom/callback/{corp_id}")  # runs WeCom's echostr check
            yield Live(emu, db, corp_id)


def test_customer_adds_employee_with_state(live: Live) -> None:
    # given an active employee
    userid = live.a_follow()[0]
    # when a new customer adds them through a channel code
    result = live.emu.actors.add_customer(userid=userid, state="store_sh_01", name="新客户")
    # then the event is applied and the mirror is exact
    assert live.process() == ["done"]
    ext = result.data["external_userid"]
    assert live.scalar("SELECT name FROM customer WHERE external_userid = :x", x=ext) == "新客户"
    assert live.follow_status(userid, ext) == ("active", False)
    live.assert_mirrors()


def test_half_add_is_applied(live: Live) -> None:
    live.emu.actors.add_customer(half=True)
    assert live.process() == ["done"]
    live.assert_mirrors()


@pytest.mark.parametrize(
    ("action", "source", "status"),
    [
        ("customer_delete_employee", None, "customer_deleted_employee"),
        ("employee_delete_customer", "", "employee_deleted_customer"),
        ("employee_delete_customer", "DELETE_BY_TRANSFER", "transferred"),
    ],
)
def test_deletions_end_the_follow_with_their_cause(live: Live, action: str, source: str | None, status: str) -> None:
    userid, ext = live.a_follow()
    kwargs = {} if source is None else {"source": source}
    getattr(live.emu.actors, action)(userid, ext, **kwargs)
    assert live.process() == ["done"]
    assert live.follow_status(userid, ext) == (status, True)


def test_remark_edit_and_tagging_in_the_client(live: Live) -> None:
    userid, ext = live.a_follow()
    live.emu.actors.edit_remark(userid, ext, remark="王总", description="年底采购")
    tag_id = next(iter(live.emu.state.tags))
    live.emu.actors.tag_customer(userid, ext, add_tags=[tag_id])
    # two edits in one second are byte-identical notifications; one re-fetch applies both
    assert set(live.process()) == {"done"}
    live.assert_mirrors()


def test_tag_changes(live: Live) -> None:
    created = live.emu.actors.create_tag_group("会员等级", ["金卡", "银卡", "铜卡"])
    assert live.process() == ["done"]
    live.assert_mirrors()
    group_id = created.data["group_id"]
    tag_ids = list(live.emu.state.tag_groups[group_id].tag_ids)
    live.emu.actors.update_tag(tag_ids[0], name="黑金卡")
    live.emu.actors.update_tag_group(group_id, name="会员层级")
    live.emu.actors.create_tag(group_id, "钻石卡")
    live.emu.actors.shuffle_tags(group_id)
    live.emu.actors.delete_tag(tag_ids[1])
    assert live.process() == ["done"] * 5
    live.assert_mirrors()
    live.emu.actors.delete_tag_group(group_id)
    assert live.process() == ["done"]
    live.assert_mirrors()


def test_group_lifecycle(live: Live) -> None:
    owner, ext = live.a_follow()
    created = live.emu.actors.create_group(owner, name="VIP 群", external_userids=[ext])
    assert live.process() == ["done"]
    live.assert_mirrors()
    chat_id = created.data["chat_id"]
    other = next(c for c in live.emu.state.customers if c != ext)
    live.emu.actors.group_add_members(chat_id, [other], join_scene=3)
    live.emu.actors.group_remove_members(chat_id, [ext])
    live.emu.actors.group_rename(chat_id, "VIP 客户群")
    live.emu.actors.group_change_notice(chat_id, "欢迎")
    assert live.process() == ["done"] * 4
    live.assert_mirrors()
    live.emu.actors.group_dismiss(chat_id)
    assert live.process() == ["done"]
    assert live.scalar("SELECT status FROM group_chat WHERE chat_id = :x", x=chat_id) == "dismissed"


def test_employee_resigns_and_departments_change(live: Live) -> None:
    userid = live.a_follow()[0]
    live.emu.actors.resign_employee(userid)
    dept = live.emu.actors.create_department("华南大区")
    assert live.process() == ["done", "done"]
    assert live.scalar("SELECT status FROM employee WHERE userid = :u", u=userid) == "resigned"
    dept_id = dept.data["id"]
    live.emu.actors.update_department(dept_id, name="华南区")
    assert live.process() == ["done"]
    assert live.scalar("SELECT name FROM department WHERE wecom_id = :d", d=dept_id) == "华南区"
    live.emu.actors.delete_department(dept_id)
    assert live.process() == ["done"]
    assert live.scalar("SELECT count(*) FROM department WHERE wecom_id = :d", d=dept_id) == 0


def test_transfer_fail_is_audited(live: Live) -> None:
    userid, ext = live.a_follow()
    live.emu.actors.transfer_fail(userid, ext, reason="customer_limit_exceed")
    assert live.process() == ["done"]
    assert live.scalar("SELECT count(*) FROM audit_log WHERE action = 'follow.transfer_fail'") == 1


def test_replayed_delivery_is_applied_once(live: Live) -> None:
    # given an event WeCom delivers, then retries (our server answered too slowly, say)
    result = live.emu.actors.add_customer()
    live.emu.wait_for_callbacks(10)
    delivery = result.delivery
    assert delivery is not None
    live.emu.emulator.sender.send(delivery.xml, delivery.event, delivery.change_type)
    # when the worker runs
    statuses = live.process()
    # then it was stored and applied once
    assert statuses == ["done"]
    assert live.scalar("SELECT count(*) FROM callback_inbox") == 1
    assert live.scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'callback.%'") == 1


def test_identical_event_after_processing_is_processed_again(live: Live) -> None:
    # given an edit notification that was processed
    userid, ext = live.a_follow()
    live.emu.actors.edit_remark(userid, ext, remark="第一次")
    assert live.process() == ["done"]
    # when the employee edits again and WeCom sends a byte-identical notification
    live.emu.state.update_follow(userid, ext, remark="第二次")
    delivery = live.emu.deliveries[-1]
    live.emu.emulator.sender.send(delivery.xml, delivery.event, delivery.change_type)
    # then it is re-opened and processed, and the second change is not lost
    assert live.process() == ["done"]
    live.assert_mirrors()


def test_processing_twice_changes_nothing(live: Live) -> None:
    live.emu.actors.add_customer()
    live.emu.wait_for_callbacks(10)
    with live.db() as s:
        (inbox_id,) = inbox_service.pending_ids(s)
    assert process_one(inbox_id) == "done"
    assert process_one(inbox_id) == "gone"
    assert live.scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'callback.%'") == 1


def test_late_deletion_does_not_end_a_newer_follow(live: Live) -> None:
    # given a customer who deleted the employee and then added them again
    userid, ext = live.a_follow()
    live.emu.actors.customer_delete_employee(userid, ext)
    live.emu.wait_for_callbacks(10)
    stale = live.emu.deliveries[-1]
    assert live.process() == ["done"]
    live.emu.state.now = lambda: int(time.time()) + 60  # type: ignore[method-assign]
    live.emu.actors.add_customer(userid=userid, external_userid=ext)
    assert live.process() == ["done"]
    # when the old deletion is delivered again, late
    live.emu.emulator.sender.send(stale.xml, stale.event, stale.change_type)
    # then it is stored and skipped; the new follow stays active
    assert live.process() == ["skipped"]
    assert live.follow_status(userid, ext)[0] == "active"
