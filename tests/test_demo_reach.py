"""The demo's reaction feed: emulator complaints and TD replies become siyu complaint signals and opt-outs."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from siyu.broadcasts.models import Broadcast, BroadcastChunk, BroadcastRecipient, RecipientStatus
from siyu.compliance.models import ComplaintSignal, OptOut, SignalKind
from siyu.contacts.models import Customer
from siyu.core.clock import now_utc
from siyu.demo_reach import record
from siyu.wecom.emulator.state import Reaction
from tests.console_api_support import add, customer, employee
from tests.factories import make_corp


def test_complaints_are_attributed_to_the_broadcast_and_td_replies_opt_out(db: sessionmaker[Session]) -> None:
    corp_id = make_corp(db).corp_id
    emp_id, cust_id, other_id = add(
        db, employee(corp_id, "zhangsan"), customer(corp_id, "王芳"), customer(corp_id, "李雷")
    )
    with db.begin() as session:
        wang, li = (session.get(Customer, i).external_userid for i in (cust_id, other_id))  # type: ignore[union-attr]
        broadcast = Broadcast(corp_id=corp_id, name="双十二预告", status="sent")
        session.add(broadcast)
        session.flush()
        chunk = BroadcastChunk(
            corp_id=corp_id,
            broadcast_id=broadcast.id,
            employee_id=emp_id,
            chunk_no=1,
            msgid="msgA",
            first_position=1,
            last_position=2,
        )
        session.add(chunk)
        session.flush()
        sent_at = now_utc() - timedelta(hours=1)
        for position, cid in enumerate((cust_id, other_id), start=1):
            session.add(
                BroadcastRecipient(
                    corp_id=corp_id,
                    broadcast_id=broadcast.id,
                    position=position,
                    customer_id=cid,
                    employee_id=emp_id,
                    send_day=sent_at.date(),
                    status=RecipientStatus.SENT,
                    updated_at=sent_at,
                )
            )
        broadcast_id = broadcast.id
    now = int(time.time())
    reactions = [
        Reaction(id=1, kind="complaint", external_userid=wang, userid="zhangsan", msgid="msgA", at=now),
        Reaction(id=2, kind="reply", external_userid=li, userid="zhangsan", msgid="msgA", at=now, text="TD"),
        Reaction(id=3, kind="reply", external_userid=wang, userid="zhangsan", msgid="msgA", at=now, text="好的谢谢"),
        Reaction(id=4, kind="complaint", external_userid="wm_unknown", userid="zhangsan", msgid="msgA", at=now),
    ]

    assert record(corp_id, reactions) == 2

    with db() as session:
        complaint = session.scalars(select(ComplaintSignal).where(ComplaintSignal.kind == SignalKind.COMPLAINT)).one()
        assert (complaint.customer_id, complaint.employee_id, complaint.broadcast_id) == (cust_id, emp_id, broadcast_id)
        opt_out = session.scalars(select(OptOut)).one()
        assert (opt_out.customer_id, opt_out.source) == (other_id, "reply")
