"""Hand-built data for the compliance tests: a corp with employees, customers and sent broadcasts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from siyu.broadcasts.models import Broadcast, BroadcastChunk, BroadcastRecipient
from siyu.compliance.models import ReachPolicy
from siyu.core.clock import now_utc
from tests import console_api_support as sup
from tests.factories import make_corp

_chunk_no = itertools.count(1)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Shop:
    corp_id: int
    alice: int  # employee ids
    bob: int
    customers: list[int]  # each followed by alice and bob


def shop(db: sessionmaker[Session], customers: int = 4, *, wecom_corpid: str = "ww0123456789abcdef") -> Shop:
    corp_id = make_corp(db, wecom_corpid=wecom_corpid).corp_id
    sup.add(db, sup.department(corp_id, 1, "总部"))
    alice, bob = sup.add(db, sup.employee(corp_id, "alice", "王小丽"), sup.employee(corp_id, "bob", "李大明"))
    ids = sup.add(db, *(sup.customer(corp_id, f"客户{i}") for i in range(customers)))
    sup.add(db, *(sup.follow(corp_id, e, c) for c in ids for e in (alice, bob)))
    return Shop(corp_id, alice, bob, ids)


def broadcast(
    db: sessionmaker[Session],
    corp_id: int,
    *,
    sender: int,
    customers: list[int],
    sent_at: datetime | None = None,
    status: str = "sent",
    name: str = "周末活动",
    kind: str = "customer",
) -> int:
    """A broadcast of one chunk from `sender`, accepted by WeCom at sent_at, each recipient in `status`."""
    sent_at = sent_at or now_utc() - timedelta(minutes=10)
    with db.begin() as s:
        b = Broadcast(
            corp_id=corp_id,
            name=name,
            kind=kind,
            status="sent",
            content={"text": "新品"},
            sent_at=sent_at,
            send_day=sent_at.astimezone(SHANGHAI).date(),
        )
        s.add(b)
        s.flush()
        chunk = BroadcastChunk(
            corp_id=corp_id,
            broadcast_id=b.id,
            employee_id=sender,
            chunk_no=next(_chunk_no),
            size=len(customers),
            first_position=1,
            last_position=len(customers),
            status="sent",
            sent_at=sent_at,
        )
        s.add(chunk)
        s.flush()
        s.add_all(
            BroadcastRecipient(
                corp_id=corp_id,
                broadcast_id=b.id,
                position=n,
                customer_id=c,
                employee_id=sender,
                send_day=sent_at.astimezone(SHANGHAI).date(),  # the corp-local day, as the planner writes it
                status=status,
            )
            for n, c in enumerate(customers, start=1)
        )
        return b.id


def set_policy(
    db: sessionmaker[Session], corp_id: int, corp_caps: list[dict[str, int]] | None = None, **thresholds: float
) -> None:
    """Small thresholds for small data: warn at 500, pause at 1,000 per 10,000, verdicts from 10 messages."""
    values = {"warn_per_10k": 500, "pause_per_10k": 1000, "min_messages": 10, "window_days": 7}
    with db.begin() as s:
        s.merge(ReachPolicy(corp_id=corp_id, complaint_thresholds=values | thresholds, corp_caps=corp_caps or []))
