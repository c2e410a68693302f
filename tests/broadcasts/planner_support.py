"""Shared by the planner tests (no tests here): a corp in Asia/Shanghai with employees, customers, follows,
past slots, pauses, opt-outs and policy settings, and helpers to plan and read a plan back."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.accounts.access import Actor
from siyu.accounts.models import Role
from siyu.broadcasts.models import (
    CHUNK_OF_RECIPIENT,
    Broadcast,
    BroadcastChunk,
    BroadcastRecipient,
    BroadcastStatus,
    in_chunk,
)
from siyu.broadcasts.planner import do_plan
from siyu.compliance.models import OptOut, ReachPause, ReachPolicy
from siyu.contacts.models import Customer, Employee, Follow
from siyu.groups.models import GroupChat
from siyu.segments import engine
from tests.factories import make_corp

SHANGHAI = ZoneInfo("Asia/Shanghai")
TEXT = "双十二会员日，全场八折"
_seq = itertools.count(1)


def local(y: int, m: int, d: int, h: int, mi: int = 0) -> datetime:
    """A Shanghai wall-clock time as an aware UTC datetime."""
    return datetime(y, m, d, h, mi, tzinfo=SHANGHAI).astimezone(UTC)


NOW = local(2026, 12, 3, 10)  # a Thursday morning, outside the default quiet hours (21:00–08:00)
TODAY = date(2026, 12, 3)


@dataclass
class World:
    db: sessionmaker[Session]
    corp_id: int
    employees: dict[str, int] = field(default_factory=dict)

    @property
    def admin(self) -> Actor:
        return Actor(1, self.corp_id, "planner-admin", Role.ADMIN, None, None)

    # --- people ------------------------------------------------------------------------------

    def employee(self, userid: str, *, status: str = "active") -> int:
        with self.db.begin() as s:
            emp = Employee(corp_id=self.corp_id, userid=userid, name=userid, department_ids=[1], status=status)
            s.add(emp)
            s.flush()
            self.employees[userid] = emp.id
        return self.employees[userid]

    def customers(self, n: int, *, follower: str | None = None, added: datetime | None = None) -> list[int]:
        """n new customers (bulk insert), each actively followed by `follower` when given."""
        tag = next(_seq)
        with self.db.begin() as s:
            s.execute(
                sa.insert(Customer),
                [
                    {"corp_id": self.corp_id, "external_userid": f"wm{tag}x{i}", "name": f"客户{tag}-{i}"}
                    for i in range(n)
                ],
            )
            ids = list(
                s.scalars(
                    sa.select(Customer.id)
                    .where(Customer.corp_id == self.corp_id, Customer.external_userid.like(f"wm{tag}x%"))
                    .order_by(Customer.id)
                )
            )
        if follower is not None:
            self.follows(follower, ids, created_at=added)
        return ids

    def follows(
        self, employee: str, customer_ids: Sequence[int], *, created_at: datetime | None = None, status: str = "active"
    ) -> None:
        rows = [
            {
                "corp_id": self.corp_id,
                "employee_id": self.employees[employee],
                "customer_id": c,
                "created_at": created_at,
                "status": status,
            }
            for c in customer_ids
        ]
        with self.db.begin() as s:
            s.execute(sa.insert(Follow), rows)

    def groups(self, n: int, *, owner: str, status: str = "active") -> list[int]:
        tag = next(_seq)
        with self.db.begin() as s:
            s.execute(
                sa.insert(GroupChat),
                [
                    {"corp_id": self.corp_id, "chat_id": f"wr{tag}x{i}", "owner_userid": owner, "status": status}
                    for i in range(n)
                ],
            )
            return list(
                s.scalars(
                    sa.select(GroupChat.id)
                    .where(GroupChat.corp_id == self.corp_id, GroupChat.chat_id.like(f"wr{tag}x%"))
                    .order_by(GroupChat.id)
                )
            )

    def chat_ids(self, group_ids: Sequence[int]) -> list[str]:
        with self.db() as s:
            return list(s.scalars(sa.select(GroupChat.chat_id).where(GroupChat.id.in_(group_ids))))

    # --- compliance state --------------------------------------------------------------------

    def pause(self, employee: str) -> None:
        with self.db.begin() as s:
            s.add(ReachPause(corp_id=self.corp_id, scope="employee", target_id=self.employees[employee], reason="test"))

    def opt_out(self, customer_id: int) -> None:
        with self.db.begin() as s:
            s.add(OptOut(corp_id=self.corp_id, customer_id=customer_id, source="employee"))

    def policy(self, **values: Any) -> None:
        """A reach_policy row: the defaults' values (2 per 7 days, quiet 21:00–08:00) unless given."""
        row = {"corp_caps": [{"count": 2, "days": 7}], "quiet_start": "21:00", "quiet_end": "08:00", **values}
        with self.db.begin() as s:
            s.merge(ReachPolicy(corp_id=self.corp_id, **row))

    def slot(self, customer_id: int, day: date, *, kind: str = "customer", status: str = "sent") -> None:
        """A past broadcast of `kind` that took (status sent / pending) or tried (other statuses) a slot on day."""
        with self.db.begin() as s:
            past = Broadcast(corp_id=self.corp_id, kind=kind, name="past", status=BroadcastStatus.SENT, send_day=day)
            s.add(past)
            s.flush()
            s.add(
                BroadcastRecipient(
                    corp_id=self.corp_id,
                    broadcast_id=past.id,
                    position=1,
                    customer_id=customer_id,
                    send_day=day,
                    status=status,
                )
            )

    # --- broadcasts --------------------------------------------------------------------------

    def broadcast(
        self,
        *,
        kind: str = "customer",
        audience: dict[str, Any] | None = None,
        customers: Sequence[int] = (),
        senders: Sequence[str] = (),
        text: str = TEXT,
        holdout: int = 0,
        scheduled_at: datetime | None = None,
    ) -> int:
        with self.db.begin() as s:
            b = Broadcast(
                corp_id=self.corp_id,
                kind=kind,
                name=f"群发{next(_seq)}",
                audience=audience if audience is not None else {"customer_ids": list(customers)},
                content={"text": text, "attachments": []},
                sender_ids=[self.employees[u] for u in senders],
                holdout_percent=holdout,
                scheduled_at=scheduled_at,
                counts={},
                created_by="test",
            )
            s.add(b)
            s.flush()
            return b.id

    def plan(self, broadcast_id: int, *, now: datetime = NOW) -> Broadcast:
        with self.db.begin() as s:
            return do_plan(s, broadcast_id, "test", now=now)

    def outcome(self, broadcast_id: int) -> dict[int, str]:
        """customer (or group_chat) id → "pending" or the exclusion reason."""
        r = BroadcastRecipient
        with self.db() as s:
            rows = s.execute(
                sa.select(r.customer_id, r.chat_id, r.status, r.reason).where(r.broadcast_id == broadcast_id)
            )
            return {(c if c is not None else g): (reason or status) for c, g, status, reason in rows}

    def senders_of(self, broadcast_id: int) -> dict[int, int | None]:
        r = BroadcastRecipient
        with self.db() as s:
            rows = s.execute(sa.select(r.customer_id, r.employee_id).where(r.broadcast_id == broadcast_id))
            return {customer_id: employee_id for customer_id, employee_id in rows}

    def chunk_sizes(self, broadcast_id: int) -> dict[int | None, list[int]]:
        """sender → its chunks' sizes in chunk_no order, checked against the recipient rows in their ranges:
        every row of a chunk's range is pending (and the chunk's sender's), and every pending row is in one."""
        r = BroadcastRecipient
        with self.db() as s:
            chunks = s.scalars(
                sa.select(BroadcastChunk)
                .where(BroadcastChunk.broadcast_id == broadcast_id)
                .order_by(BroadcastChunk.employee_id, BroadcastChunk.chunk_no)
            ).all()
            out: dict[int | None, list[int]] = {}
            for chunk in chunks:
                rows = s.execute(sa.select(r.status, r.employee_id).where(in_chunk(chunk))).all()
                assert len(rows) == chunk.size == chunk.last_position - chunk.first_position + 1
                assert {status for status, _ in rows} == {"pending"}
                if chunk.employee_id is not None:
                    assert {employee for _, employee in rows} == {chunk.employee_id}
                out.setdefault(chunk.employee_id, []).append(chunk.size)
            in_some_chunk = sa.select(BroadcastChunk.id).where(CHUNK_OF_RECIPIENT).exists()
            unchunked = s.scalar(
                sa.select(sa.func.count()).where(r.broadcast_id == broadcast_id, r.status == "pending", ~in_some_chunk)
            )
            assert unchunked == 0
            positions = list(
                s.scalars(sa.select(r.position).where(r.broadcast_id == broadcast_id).order_by(r.position))
            )
            assert positions == list(range(1, len(positions) + 1))
        return out

    def get(self, broadcast_id: int) -> Broadcast:
        with self.db() as s:
            found = s.get(Broadcast, broadcast_id)
            assert found is not None
            return found


def make_world(db: sessionmaker[Session], *employees: str) -> World:
    engine.drop_engine()  # corp ids repeat across tests: never answer from another test's bitmaps
    world = World(db, make_corp(db).corp_id)
    for userid in employees or ("zhang", "li", "wang"):
        world.employee(userid)
    return world
