"""The complaint monitor: deletion signals attributed to the broadcast and employee, rates, warn / pause / lift."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from siyu.broadcasts.models import BroadcastRecipient
from siyu.callbacks.handlers import on_external_contact
from siyu.compliance import monitor
from siyu.compliance.models import ComplaintSignal, ReachPause
from siyu.compliance.policy import paused_employee_ids
from siyu.contacts.models import Customer, Employee, Follow, FollowStatus
from siyu.core.clock import now_utc
from siyu.corp.models import AuditLog
from siyu.wecom.callbacks import ExternalContactEvent
from tests.compliance.support import broadcast, set_policy, shop


def _delete_event(session: Session, employee_id: int, customer_id: int, hours_ago: float = 0) -> ExternalContactEvent:
    userid = session.get(Employee, employee_id).userid  # type: ignore[union-attr]
    external = session.get(Customer, customer_id).external_userid  # type: ignore[union-attr]
    return ExternalContactEvent(
        to_user_name="ww",
        create_time=int((now_utc() - timedelta(hours=hours_ago)).timestamp()),
        event="change_external_contact",
        change_type="del_follow_user",
        raw="",
        user_id=userid,
        external_user_id=external,
    )


def _signals(session: Session) -> list[tuple[str, int | None, int | None, int | None]]:
    rows = session.execute(
        select(
            ComplaintSignal.kind, ComplaintSignal.customer_id, ComplaintSignal.employee_id, ComplaintSignal.broadcast_id
        ).order_by(ComplaintSignal.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_a_deletion_within_48_hours_of_a_message_is_a_signal_for_that_broadcast_and_employee(
    db: sessionmaker[Session],
) -> None:
    # given alice sent two broadcasts to customer 0 (the later one 3 h ago) and bob sent one 1 h ago
    w = shop(db)
    c = w.customers[0]
    broadcast(db, w.corp_id, sender=w.alice, customers=[c], sent_at=now_utc() - timedelta(hours=30))
    later = broadcast(db, w.corp_id, sender=w.alice, customers=[c], sent_at=now_utc() - timedelta(hours=3))
    broadcast(db, w.corp_id, sender=w.bob, customers=[c], sent_at=now_utc() - timedelta(hours=1))

    # when the customer deletes alice (the del_follow_user callback), and the event is processed twice
    with db.begin() as s:
        on_external_contact(s, w.corp_id, None, _delete_event(s, w.alice, c))  # type: ignore[arg-type]
    with db.begin() as s:
        on_external_contact(s, w.corp_id, None, _delete_event(s, w.alice, c))  # type: ignore[arg-type]

    # then one signal, against alice's latest broadcast (not bob's)
    with db() as s:
        assert _signals(s) == [("deleted_after_message", c, w.alice, later)]
        assert s.scalar(select(Follow.status).where(Follow.employee_id == w.alice, Follow.customer_id == c)) == (
            FollowStatus.CUSTOMER_DELETED_EMPLOYEE
        )


@pytest.mark.parametrize(
    ("sent_hours_ago", "status", "expected"),
    [
        (47, "sent", 1),
        (49, "sent", 0),  # outside the 48 h
        (2, "not_friend", 0),  # never delivered
        (2, "pending", 0),  # results not in yet (the sweep catches it later)
    ],
)
def test_only_a_delivered_message_within_the_window_counts(
    db: sessionmaker[Session], sent_hours_ago: int, status: str, expected: int
) -> None:
    # given
    w = shop(db)
    c = w.customers[0]
    sent_at = now_utc() - timedelta(hours=sent_hours_ago)
    broadcast(db, w.corp_id, sender=w.alice, customers=[c], sent_at=sent_at, status=status)

    # when
    with db.begin() as s:
        on_external_contact(s, w.corp_id, None, _delete_event(s, w.alice, c))  # type: ignore[arg-type]

    # then
    with db() as s:
        assert len(_signals(s)) == expected


def test_the_sweep_attributes_a_deletion_whose_message_result_arrived_later(db: sessionmaker[Session]) -> None:
    # given the customer deleted alice while her broadcast's results were still pending
    w = shop(db)
    c = w.customers[1]
    b = broadcast(db, w.corp_id, sender=w.alice, customers=[c], status="pending")
    with db.begin() as s:
        on_external_contact(s, w.corp_id, None, _delete_event(s, w.alice, c))  # type: ignore[arg-type]
        assert _signals(s) == []

    # when the results come in (sent) and the monitor sweeps, twice
    with db.begin() as s:
        s.execute(update(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == b).values(status="sent"))
        first = monitor.do_sweep_deletions(s, w.corp_id, broadcast_id=b)
    with db.begin() as s:
        second = monitor.do_sweep_deletions(s, w.corp_id)

    # then one signal
    assert (first, second) == (1, 0)
    with db() as s:
        assert _signals(s) == [("deleted_after_message", c, w.alice, b)]


def _complain(db: sessionmaker[Session], corp_id: int, customer_id: int, employee_id: int, broadcast_id: int) -> None:
    with db.begin() as s:
        monitor.do_record_signal(
            s,
            corp_id,
            kind=monitor.SignalKind.COMPLAINT,
            customer_id=customer_id,
            attribution=monitor.Attribution(employee_id, broadcast_id),
            detail="投诉",
        )


def _audit(session: Session, action: str) -> list[tuple[str, str, dict[str, object]]]:
    rows = session.execute(
        select(AuditLog.object_type, AuditLog.object_id, AuditLog.detail)
        .where(AuditLog.action == action)
        .order_by(AuditLog.id)
    )
    return [(t, i, json.loads(d)) for t, i, d in rows]


def test_no_verdict_below_min_messages(db: sessionmaker[Session]) -> None:
    # given 5 messages (min is 10) and 3 complaints — an enormous rate, on too little evidence
    w = shop(db, customers=5)
    set_policy(db, w.corp_id)
    b = broadcast(db, w.corp_id, sender=w.alice, customers=w.customers)
    for c in w.customers[:3]:
        _complain(db, w.corp_id, c, w.alice, b)

    # when
    with db.begin() as s:
        verdicts = {(v.scope, v.target_id): v for v in monitor.do_evaluate(s, w.corp_id)}

    # then
    assert verdicts[("employee", w.alice)].status == "insufficient"
    assert verdicts[("employee", w.alice)].rate_per_10k == pytest.approx(6000)
    with db() as s:
        assert s.scalar(select(func.count()).select_from(ReachPause)) == 0
        assert _audit(s, "compliance.warn") == []


def test_warn_then_pause_the_employee_once_then_lift(db: sessionmaker[Session]) -> None:
    # given alice sent 20 messages; warn at 500 per 10,000 (1 signal), pause at 1,000 (2 signals)
    w = shop(db, customers=20)
    set_policy(db, w.corp_id)
    b = broadcast(db, w.corp_id, sender=w.alice, customers=w.customers)

    # when one complaint arrives (the monitor runs right after each signal)
    _complain(db, w.corp_id, w.customers[0], w.alice, b)

    # then a warning in the audit log for alice and her broadcast; no pause
    with db() as s:
        warned = {(t, i) for t, i, _ in _audit(s, "compliance.warn")}
        assert warned == {("employee", str(w.alice)), ("broadcast", str(b))}
        assert paused_employee_ids(s, w.corp_id) == set()

    # when a second complaint arrives, and the monitor runs again
    _complain(db, w.corp_id, w.customers[1], w.alice, b)
    with db.begin() as s:
        monitor.do_evaluate(s, w.corp_id)

    # then alice and the broadcast are paused once, with the numbers in the audit log; the full pass warns
    # about the corp (which is never paused), and nothing is warned twice
    with db() as s:
        pauses = s.execute(select(ReachPause.scope, ReachPause.target_id, ReachPause.rate_per_10k)).all()
        assert sorted(pauses) == sorted([("employee", w.alice, 1000), ("broadcast", b, 1000)])
        assert paused_employee_ids(s, w.corp_id) == {w.alice}
        [(_, _, detail), _] = _audit(s, "compliance.pause")
        assert detail["messages"] == 20 and detail["signals"] == {"complaint": 2}
        assert len(_audit(s, "compliance.warn")) == 3

    # when a person lifts alice's pause
    with db.begin() as s:
        pause = s.scalar(select(ReachPause).where(ReachPause.scope == "employee"))
        assert pause is not None
        pause.lifted_at, pause.lifted_by = now_utc(), "user:1:admin"
    with db.begin() as s:
        after_lift = {(v.scope, v.target_id): v for v in monitor.do_evaluate(s, w.corp_id)}

    # then she is not paused again for the same signals: she is judged from the lift, on no messages yet
    assert after_lift[("employee", w.alice)].status == "insufficient"
    with db() as s:
        assert paused_employee_ids(s, w.corp_id) == set()
        assert s.scalar(select(func.count()).select_from(ReachPause)) == 2


def test_a_broadcast_whose_own_rate_crosses_is_paused_while_its_sender_is_not(db: sessionmaker[Session]) -> None:
    # given alice sent 180 quiet messages and a 20-message broadcast that drew 2 complaints
    w = shop(db, customers=200)
    set_policy(db, w.corp_id)
    broadcast(db, w.corp_id, sender=w.alice, customers=w.customers[:180], name="安静的")
    noisy = broadcast(db, w.corp_id, sender=w.alice, customers=w.customers[180:], name="吵闹的")

    # when
    for c in w.customers[180:182]:
        _complain(db, w.corp_id, c, w.alice, noisy)

    # then the broadcast (1,000 per 10,000) is paused; alice (100 per 10,000) is not even warned
    with db() as s:
        assert s.execute(select(ReachPause.scope, ReachPause.target_id)).all() == [("broadcast", noisy)]
        warned = {(t, i) for t, i, _ in _audit(s, "compliance.warn")}
        assert ("employee", str(w.alice)) not in warned
