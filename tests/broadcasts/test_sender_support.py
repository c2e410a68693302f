"""Shared by the sender tests (no tests here): an emulator corp synced into siyu, and planned broadcasts.

`planned(...)` stores a broadcast the way the planner leaves it — status planned, one pending
recipient row per customer (or group chat) with its sender, chunk and send day, and the chunks —
so the sender is tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.analytics.service import corp_zone
from siyu.broadcasts import results, sender
from siyu.broadcasts.actions import do_create_broadcast
from siyu.broadcasts.models import (
    Broadcast,
    BroadcastChunk,
    BroadcastKind,
    BroadcastRecipient,
    BroadcastStatus,
    ChunkStatus,
)
from siyu.broadcasts.planner import do_plan
from siyu.broadcasts.schemas import BroadcastCreate
from siyu.compliance.models import ReachPolicy
from siyu.contacts.models import Customer, Employee, Follow, FollowStatus
from siyu.core.clock import now_utc
from siyu.core.tasks import configure_queue
from siyu.corp.models import Corp
from siyu.groups.models import GroupChat
from siyu.sync.flows import run_sync
from siyu.wecom.emulator.server import start_emulator
from siyu.wecom.emulator.state import MassTask
from tests.live_corp import LiveCorp
from tests.sync.test_sync_support import corp_for

TEXT = "双十二会员日，全场八折"


class Live(LiveCorp):
    # --- the corp ---------------------------------------------------------------------------

    def employee(self, userid: str) -> int:
        with self.db() as s:
            found = s.scalar(sa.select(Employee.id).where(Employee.corp_id == self.corp_id, Employee.userid == userid))
        assert found is not None
        return int(found)

    def senders(self, n: int, *, customers: int) -> list[tuple[str, list[int]]]:
        """n employees with at least `customers` active follows each: (userid, their customer ids)."""
        with self.db() as s:
            rows = s.execute(
                sa.select(Employee.userid, Follow.customer_id)
                .join(Follow, Follow.employee_id == Employee.id)
                .where(Employee.corp_id == self.corp_id, Follow.status == FollowStatus.ACTIVE)
                .order_by(Employee.id, Follow.customer_id)
            ).all()
        by_user: dict[str, list[int]] = {}
        for userid, customer_id in rows:
            by_user.setdefault(userid, []).append(customer_id)
        chosen = [(u, ids) for u, ids in by_user.items() if len(ids) >= customers][:n]
        assert len(chosen) == n, "the emulator corp has too few employees with that many customers"
        return chosen

    def not_followed_by(self, userid: str, *, besides: Sequence[int] = ()) -> int:
        """A customer of the corp the employee does not follow (and not one of `besides`)."""
        with self.db() as s:
            theirs = sa.select(Follow.customer_id).where(Follow.employee_id == self.employee(userid))
            found = s.scalar(
                sa.select(Customer.id)
                .where(Customer.corp_id == self.corp_id, Customer.id.not_in(theirs), Customer.id.not_in(besides))
                .limit(1)
            )
        assert found is not None
        return int(found)

    def external_userid(self, customer_id: int) -> str:
        with self.db() as s:
            return str(s.scalar(sa.select(Customer.external_userid).where(Customer.id == customer_id)))

    def groups_of(self, userid: str) -> list[int]:
        with self.db() as s:
            return list(
                s.scalars(
                    sa.select(GroupChat.id)
                    .where(GroupChat.corp_id == self.corp_id, GroupChat.owner_userid == userid)
                    .order_by(GroupChat.id)
                )
            )

    # --- broadcasts -------------------------------------------------------------------------

    def planned(
        self,
        chunks: Sequence[tuple[str, Sequence[int]]],
        *,
        kind: str = BroadcastKind.CUSTOMER,
        text: str = TEXT,
        audience: dict[str, Any] | None = None,
        scheduled_at: datetime | None = None,
        allow_select: bool = False,
        created_by: str = "test",
        attachments: Sequence[dict[str, Any]] = (),
    ) -> int:
        """A planned broadcast: one chunk per (sender userid, recipient ids) in order, numbered per sender;
        its slots on the corp-local day it goes out, as the planner takes them."""
        with self.db.begin() as s:
            corp = s.get_one(Corp, self.corp_id)
            day = (scheduled_at or now_utc()).astimezone(corp_zone(corp)).date()
            broadcast = Broadcast(
                corp_id=self.corp_id,
                kind=kind,
                name="会员日",
                status=BroadcastStatus.PLANNED,
                audience=audience or {"customer_ids": []},
                content={"text": text, "attachments": list(attachments)},
                allow_select=allow_select,
                scheduled_at=scheduled_at,
                send_day=day,
                planned_at=now_utc() - timedelta(seconds=2),
                created_by=created_by,
            )
            s.add(broadcast)
            s.flush()
            numbers: dict[str, int] = {}
            position = 0
            for userid, ids in chunks:
                employee_id = self.employee(userid)
                numbers[userid] = numbers.get(userid, 0) + 1
                chunk = BroadcastChunk(
                    corp_id=self.corp_id,
                    broadcast_id=broadcast.id,
                    employee_id=employee_id,
                    chunk_no=numbers[userid],
                    size=len(ids),
                    first_position=position + 1,
                    last_position=position + len(ids),
                )
                s.add(chunk)
                column = "chat_id" if kind == BroadcastKind.GROUP else "customer_id"
                s.add_all(
                    BroadcastRecipient(
                        corp_id=self.corp_id,
                        broadcast_id=broadcast.id,
                        position=position + n,
                        employee_id=employee_id,
                        send_day=day,
                        **{column: rid},
                    )
                    for n, rid in enumerate(ids, start=1)
                )
                position += len(ids)
            return broadcast.id

    def plan(self, **fields: Any) -> int:
        """A broadcast created and planned by the planner (quiet hours off, so it is never moved)."""
        with self.db.begin() as s:
            if s.get(ReachPolicy, self.corp_id) is None:
                s.add(ReachPolicy(corp_id=self.corp_id, quiet_start="", quiet_end=""))
        body = BroadcastCreate.model_validate({"name": "会员日", "content": {"text": TEXT}, **fields})
        with self.db.begin() as s:
            broadcast = do_create_broadcast(s, self.admin, body)
            planned = do_plan(s, broadcast.id, self.admin)
            assert planned.status == BroadcastStatus.PLANNED, planned.block_reason
            return planned.id

    def start(self, broadcast_id: int) -> Broadcast:
        with self.db.begin() as s:
            return sender.do_start(s, broadcast_id, self.admin)

    def chunk_ids(self, broadcast_id: int) -> list[int]:
        with self.db() as s:
            stmt = sa.select(BroadcastChunk.id).where(BroadcastChunk.broadcast_id == broadcast_id)
            return list(s.scalars(stmt.order_by(BroadcastChunk.id)))

    def send_all(self, broadcast_id: int) -> list[str]:
        """The worker: send every chunk of the broadcast, in order."""
        return [sender.send_chunk(chunk_id) for chunk_id in self.chunk_ids(broadcast_id)]

    def poll(self, broadcast_id: int, *, now: datetime | None = None) -> dict[str, Any]:
        return results.poll_broadcast(broadcast_id, now=now)

    def broadcast(self, broadcast_id: int) -> Broadcast:
        with self.db() as s:
            found = s.get(Broadcast, broadcast_id)
            assert found is not None
            s.expunge(found)
            return found

    def chunks(self, broadcast_id: int) -> list[BroadcastChunk]:
        with self.db() as s:
            rows = list(
                s.scalars(
                    sa.select(BroadcastChunk)
                    .where(BroadcastChunk.broadcast_id == broadcast_id)
                    .order_by(BroadcastChunk.id)
                )
            )
            s.expunge_all()
            return rows

    def statuses(self, broadcast_id: int) -> dict[int, tuple[str, str]]:
        """customer (or chat) id → (status, reason)."""
        with self.db() as s:
            rows = s.execute(
                sa.select(
                    sa.func.coalesce(BroadcastRecipient.customer_id, BroadcastRecipient.chat_id),
                    BroadcastRecipient.status,
                    BroadcastRecipient.reason,
                ).where(BroadcastRecipient.broadcast_id == broadcast_id)
            ).all()
        return {int(rid): (status, reason) for rid, status, reason in rows}

    # --- the emulator -----------------------------------------------------------------------

    def tasks(self, text: str = TEXT) -> list[MassTask]:
        with self.emu.state.lock:
            return [t for t in self.emu.state.mass_tasks.values() if t.text == text]

    def task(self, msgid: str) -> MassTask:
        return self.emu.state.mass_tasks[msgid]

    def confirm_all(self, broadcast_id: int) -> None:
        for chunk in self.chunks(broadcast_id):
            if chunk.msgid and chunk.status == ChunkStatus.SENT:
                (userid,) = self.task(chunk.msgid).senders
                self.emu.confirm_mass(chunk.msgid, userid)


@pytest.fixture
def live(db: sessionmaker[Session]) -> Iterator[Live]:
    configure_queue()
    with start_emulator(employees=6, customers=60, seed=11) as emu:
        # senders act only when told (emu.confirm_mass), customers do not react: the tests decide
        emu.configure_mass(confirm_probability=0.0, moment_job_seconds=0.0)
        corp_id = corp_for(db, emu)
        run_sync(corp_id)
        yield Live(emu, db, corp_id)
