"""What became of a sent broadcast: who confirmed, what each recipient got — polled until final.

WeCom answers per task (msgid) which senders confirmed (get_groupmsg_task) and, per (msgid, sender),
each recipient's outcome (get_groupmsg_send_result: 0 not sent, 1 sent, 2 not a friend, 3 the
receive quota was hit). The worker polls broadcasts that are sending or sent about every 30 s at
first, backing off as they age, until every sender confirmed or was withdrawn, or three days passed
(what is unconfirmed then is recorded as not sent). Recipient rows change set-based: one UPDATE per
outcome over the ids, never a round trip per row. Recipients left not_sent or quota free their cap
slot (`SLOT_STATUSES` holds only pending and sent).

Moments: get_moment_task_result until the job is done (status 3) gives the moment id and what WeCom
refused; get_moment_task then tells per employee whether they published it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor
from siyu.broadcasts import sender
from siyu.broadcasts.models import (
    Broadcast,
    BroadcastChunk,
    BroadcastKind,
    BroadcastRecipient,
    BroadcastStatus,
    ChunkStatus,
    RecipientStatus,
    in_chunk,
)
from siyu.compliance import monitor
from siyu.contacts.models import Customer, Employee
from siyu.core.clock import now_utc
from siyu.core.db import session_scope
from siyu.core.errors import DomainError, ErrorCode
from siyu.groups.models import GroupChat
from siyu.outbox.models import WeComOutbox
from siyu.segments.changes import mark_dirty
from siyu.wecom.client import JsonBody, WeComClient
from siyu.wecom.errors import ApiError, WeComError

log = logging.getLogger(__name__)

SEND_RESULT_STATUS = {
    0: RecipientStatus.NOT_SENT,
    1: RecipientStatus.SENT,
    2: RecipientStatus.NOT_FRIEND,
    3: RecipientStatus.QUOTA,
}
GROUPMSG_TASK_SENT = 2
MOMENT_JOB_DONE = 3
FINAL_AFTER = timedelta(days=3)
REMINDS_PER_DAY = 3
POLLED = (BroadcastStatus.SENDING, BroadcastStatus.SENT, BroadcastStatus.PAUSED, BroadcastStatus.CANCELLED)
UPDATE_BATCH = 5_000
# (age of the broadcast, seconds between polls): young broadcasts are polled twice a minute.
POLL_INTERVALS = ((timedelta(hours=1), 30), (timedelta(hours=6), 120), (timedelta(days=1), 600))
SLOWEST_POLL = 1800


@dataclass(frozen=True, slots=True)
class ChunkRef:
    id: int
    kind: str
    status: str
    msgid: str
    sender: str
    confirm_status: str


# --- set-based recipient updates ---------------------------------------------------------------


def recipient_ids_by_wecom_id(session: Session, chunk_id: int, kind: str, wecom_ids: Iterable[str]) -> list[int]:
    """The positions of the chunk's recipients with these WeCom ids."""
    wanted = set(wecom_ids)
    mapping = wecom_id_map(session, chunk_id, kind)
    return [position for wid, position in mapping.items() if wid in wanted]


def wecom_id_map(session: Session, chunk_id: int, kind: str) -> dict[str, int]:
    """external_userid (or chat id) → recipient position, for one chunk (≤ 10,000 rows, one range of the key)."""
    chunk = session.get(BroadcastChunk, chunk_id)
    if chunk is None:
        return {}
    r = BroadcastRecipient
    if kind == BroadcastKind.GROUP:
        stmt = select(GroupChat.chat_id, r.position).join(GroupChat, GroupChat.id == r.chat_id)
    else:
        stmt = select(Customer.external_userid, r.position).join(Customer, Customer.id == r.customer_id)
    return {key: int(position) for key, position in session.execute(stmt.where(in_chunk(chunk)))}


def set_recipients(session: Session, broadcast_id: int, positions: Sequence[int], status: str, reason: str = "") -> int:
    """One UPDATE per batch of the broadcast's positions; rows already in `status` are left alone."""
    changed, now = 0, now_utc()
    r = BroadcastRecipient
    for start in range(0, len(positions), UPDATE_BATCH):
        batch = list(positions[start : start + UPDATE_BATCH])
        result = session.execute(
            update(r)
            .where(r.broadcast_id == broadcast_id, r.position.in_(batch), r.status != status)
            .values(status=status, reason=reason, updated_at=now)
            .returning(r.corp_id, r.customer_id)
            .execution_options(synchronize_session=False)
        )
        rows = result.all()
        changed += len(rows)
        _mark_received(session, status, rows)
    return changed


def _mark_received(session: Session, status: str, rows: Sequence[Any]) -> None:
    """Customers a broadcast just reached: their "last broadcast received" changed (segment indexes)."""
    if status != RecipientStatus.SENT:
        return
    for corp_id in {corp_id for corp_id, _ in rows}:
        mark_dirty(session, corp_id, (customer_id for c, customer_id in rows if c == corp_id))


# --- polling -----------------------------------------------------------------------------------


def poll_broadcast(broadcast_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    """Ask WeCom about every chunk not final yet, record what it says, then the broadcast's counts."""
    with session_scope() as session:
        broadcast = session.get(Broadcast, broadcast_id)
        if broadcast is None or broadcast.finished_at is not None or broadcast.status not in POLLED:
            return {}
        corp_id, kind = broadcast.corp_id, broadcast.kind
        refs = _chunks_to_poll(session, broadcast)
    if refs:
        with sender._client(corp_id) as client:
            for ref in refs:
                try:
                    _poll_chunk(client, ref, kind)
                except WeComError as exc:  # e.g. 41063 while WeCom still dispatches the task: next poll
                    log.warning("polling results of broadcast chunk %s: %s", ref.id, exc)
    with session_scope() as session:
        if refs:  # deletions that came before these results could not be attributed then
            monitor.do_sweep_deletions(session, corp_id, broadcast_id=broadcast_id)
        return do_summarize(session, broadcast_id, now=now)


def _chunks_to_poll(session: Session, broadcast: Broadcast) -> list[ChunkRef]:
    rows = session.execute(
        select(BroadcastChunk, Employee.userid)
        .outerjoin(Employee, Employee.id == BroadcastChunk.employee_id)
        .where(BroadcastChunk.broadcast_id == broadcast.id, BroadcastChunk.msgid != "")
        .order_by(BroadcastChunk.id)
    ).all()
    refs = []
    for chunk, userid in rows:
        moment_job = broadcast.kind == BroadcastKind.MOMENT and chunk.status == ChunkStatus.SENDING
        open_ = chunk.status == ChunkStatus.SENT and chunk.confirm_status == "unconfirmed"
        withdrawn = chunk.confirm_status == "cancelled" and chunk.results_at is None
        if moment_job or open_ or withdrawn:
            refs.append(
                ChunkRef(chunk.id, broadcast.kind, chunk.status, chunk.msgid, userid or "", chunk.confirm_status)
            )
    return refs


def _poll_chunk(client: WeComClient, ref: ChunkRef, kind: str) -> None:
    if kind == BroadcastKind.MOMENT:
        if ref.status == ChunkStatus.SENDING:
            await_moment_job(client, ref.id, ref.msgid, polls=1)
            return
        rows = client.get_moment_task(ref.msgid)
        with session_scope() as session:
            do_apply_moment_publish(session, chunk_id=ref.id, rows=rows)
        return
    tasks = [t for t in client.iter_groupmsg_task(ref.msgid) if not ref.sender or t.get("userid") == ref.sender]
    confirmed = any(int(t.get("status", 0)) == GROUPMSG_TASK_SENT for t in tasks)
    rows = list(client.iter_groupmsg_send_result(ref.msgid, ref.sender)) if confirmed else []
    with session_scope() as session:
        do_apply_results(session, chunk_id=ref.id, kind=kind, confirmed=confirmed, rows=rows)


def do_apply_results(
    session: Session, *, chunk_id: int, kind: str, confirmed: bool, rows: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """The sender confirmed: each recipient takes WeCom's outcome, one UPDATE per outcome."""
    chunk = session.get(BroadcastChunk, chunk_id, with_for_update=True)
    if chunk is None:
        return {}
    chunk.results_at = now_utc()
    if not confirmed:
        session.flush()
        return {}
    mapping = wecom_id_map(session, chunk_id, kind)
    by_status: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        rid = mapping.get(str(row.get("external_userid") or row.get("chat_id") or ""))
        status = SEND_RESULT_STATUS.get(int(row.get("status", 0)))
        if rid is not None and status is not None:
            by_status[status].append(rid)
    changed = {status: set_recipients(session, chunk.broadcast_id, ids, status) for status, ids in by_status.items()}
    chunk.confirm_status = "confirmed"
    session.flush()
    return changed


def await_moment_job(client: WeComClient, chunk_id: int, jobid: str, *, polls: int, interval: float = 0.5) -> str:
    """Wait (briefly) for WeCom to finish a Moments job; the results poller keeps asking after that."""
    for attempt in range(polls):
        answer = client.get_moment_task_result(jobid)
        if int(answer.get("status", 0)) == MOMENT_JOB_DONE:
            with session_scope() as session:
                return do_record_moment_result(session, chunk_id=chunk_id, result=answer.get("result") or {})
        if attempt + 1 < polls:
            time.sleep(interval)
    return "waiting"


def do_record_moment_result(session: Session, *, chunk_id: int, result: Mapping[str, Any]) -> str:
    """The Moments job is done: keep the moment id; employees WeCom refused as senders get nothing sent."""
    chunk = session.get(BroadcastChunk, chunk_id, with_for_update=True)
    assert chunk is not None
    if chunk.status != ChunkStatus.SENDING:
        return str(chunk.status)
    errcode = int(result.get("errcode") or 0)
    moment_id = str(result.get("moment_id") or "")
    if errcode or not moment_id:
        failure = ApiError(errcode, str(result.get("errmsg") or "the Moments job created no moment"))
        return sender.do_fail(session, chunk_id=chunk_id, exc=failure)
    invalid_users = _listed(result.get("invalid_sender_list"), "user_list")
    invalid_tags = _listed(result.get("invalid_external_contact_list"), "tag_list")
    chunk.status, chunk.msgid, chunk.sent_at = ChunkStatus.SENT, moment_id, now_utc()
    chunk.fail_list = [f"user:{u}" for u in invalid_users] + [f"tag:{t}" for t in invalid_tags]
    chunk.confirm_status, chunk.error = "unconfirmed", ""
    if invalid_users:
        _set_by_employee(session, chunk, invalid_users, RecipientStatus.NOT_SENT, "invalid_sender")
    broadcast = session.get(Broadcast, chunk.broadcast_id, with_for_update=True)
    assert broadcast is not None
    sender._audit(
        session, broadcast, "worker", "broadcast.moment_created", chunk_id=chunk.id, moment_id=moment_id,
        invalid_senders=invalid_users, invalid_tags=invalid_tags,
    )  # fmt: skip
    session.flush()
    sender.settle(session, broadcast)
    return str(ChunkStatus.SENT)


def _listed(value: object, key: str) -> list[str]:
    """WeCom nests these lists ({"user_list": [...]}); accept a plain list too."""
    if isinstance(value, Mapping):
        value = value.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


def do_apply_moment_publish(session: Session, *, chunk_id: int, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per employee, whether they published the Moment: their recipients are then sent."""
    chunk = session.get(BroadcastChunk, chunk_id, with_for_update=True)
    if chunk is None:
        return []
    published = [str(r["userid"]) for r in rows if int(r.get("publish_status", 0)) == 1]
    _set_by_employee(session, chunk, published, RecipientStatus.SENT, "")
    chunk.results_at = now_utc()
    if rows and len(published) == len(rows):
        chunk.confirm_status = "confirmed"
    broadcast = session.get(Broadcast, chunk.broadcast_id, with_for_update=True)
    assert broadcast is not None
    results = stored_results(broadcast)
    results["published"] = {
        **dict(results.get("published") or {}),
        **{str(r["userid"]): int(r.get("publish_status", 0)) for r in rows},
    }
    broadcast.counts = {**(broadcast.counts or {}), "results": results}
    session.flush()
    return published


def _set_by_employee(session: Session, chunk: BroadcastChunk, userids: Sequence[str], status: str, reason: str) -> int:
    if not userids:
        return 0
    employee_ids = list(
        session.scalars(select(Employee.id).where(Employee.corp_id == chunk.corp_id, Employee.userid.in_(userids)))
    )
    stmt = update(BroadcastRecipient).where(in_chunk(chunk), BroadcastRecipient.status == RecipientStatus.PENDING)
    if chunk.employee_id is not None:
        if chunk.employee_id not in employee_ids:
            return 0
    else:
        stmt = stmt.where(BroadcastRecipient.employee_id.in_(employee_ids))
    result = session.execute(
        stmt.values(status=status, reason=reason, updated_at=now_utc())
        .returning(BroadcastRecipient.corp_id, BroadcastRecipient.customer_id)
        .execution_options(synchronize_session=False)
    )
    rows = result.all()
    _mark_received(session, status, rows)
    return len(rows)


# --- counts and the end of polling ---------------------------------------------------------------


def stored_results(broadcast: Broadcast) -> dict[str, Any]:
    """What the last poll wrote into `broadcast.counts["results"]` (the planner's counts sit beside it)."""
    counts: dict[str, Any] = dict(broadcast.counts or {})
    return dict(counts.get("results") or {})


def do_summarize(session: Session, broadcast_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    """Write the results into `broadcast.counts["results"]`; when final, expire what is left and finish."""
    broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
    if broadcast is None:
        return {}
    now = now or now_utc()
    chunks = list(session.scalars(select(BroadcastChunk).where(BroadcastChunk.broadcast_id == broadcast_id)))
    final = _is_final(broadcast, chunks, now)
    if final:
        _expire_unconfirmed(session, chunks)
    previous = stored_results(broadcast)
    results = {**_tally(session, broadcast, chunks), "final": final, "polled_at": now.isoformat()}
    if "published" in previous:
        results["published"] = previous["published"]
    broadcast.counts = {**(broadcast.counts or {}), "results": results}
    if final:
        broadcast.finished_at = now
        if broadcast.status == BroadcastStatus.SENT:
            broadcast.status = BroadcastStatus.FINISHED
        summary = {k: results[k] for k in ("sent", "not_sent", "not_friend", "quota", "confirmation_rate")}
        sender._audit(session, broadcast, "worker", "broadcast.results_final", **summary)
    session.flush()
    return results


def _first_sent(broadcast: Broadcast, chunks: Sequence[BroadcastChunk]) -> datetime | None:
    times = [c.sent_at for c in chunks if c.sent_at is not None]
    return min(times) if times else broadcast.sent_at


def _is_final(broadcast: Broadcast, chunks: Sequence[BroadcastChunk], now: datetime) -> bool:
    if broadcast.status not in (BroadcastStatus.SENT, BroadcastStatus.CANCELLED):
        return False
    if any(c.status in sender.OPEN_CHUNK for c in chunks):
        return False
    first = _first_sent(broadcast, chunks)
    if first is None or now - first >= FINAL_AFTER:
        return True
    return all(_chunk_final(c) for c in chunks if c.msgid)


def _chunk_final(chunk: BroadcastChunk) -> bool:
    if chunk.confirm_status == "cancelled":
        return chunk.results_at is not None
    return chunk.confirm_status in ("confirmed", "expired") or chunk.status != ChunkStatus.SENT


def _expire_unconfirmed(session: Session, chunks: Sequence[BroadcastChunk]) -> None:
    """Three days on, what no sender confirmed will not be sent: those recipients free their slots."""
    for chunk in chunks:
        if chunk.status == ChunkStatus.SENT and chunk.confirm_status == "unconfirmed":
            chunk.confirm_status = "expired"
        sender._set_chunk_recipients(session, chunk.id, sender.UNSENT, RecipientStatus.NOT_SENT, "not_confirmed")


def _tally(session: Session, broadcast: Broadcast, chunks: Sequence[BroadcastChunk]) -> dict[str, Any]:
    statuses = _counts_by(session, broadcast.id, BroadcastRecipient.status)
    employees = employee_confirmations(session, broadcast, chunks)
    senders = len(employees)
    confirmed = sum(1 for e in employees if e.confirmed == e.tasks and e.tasks)
    tally: dict[str, Any] = {s.value: int(statuses.get(s, 0)) for s in RecipientStatus if s != RecipientStatus.EXCLUDED}
    tally |= {
        "senders": senders,
        "confirmed_senders": confirmed,
        "confirmation_rate": round(confirmed / senders, 4) if senders else None,
        "chunks": dict(Counter(str(c.status) for c in chunks)),
    }
    return tally


def _counts_by(
    session: Session, broadcast_id: int, column: ColumnElement[str], *where: ColumnElement[bool]
) -> dict[str, int]:
    """The broadcast's recipients counted by one column (status, reason), one GROUP BY."""
    stmt = select(column, func.count()).where(BroadcastRecipient.broadcast_id == broadcast_id, *where).group_by(column)
    return {str(key): int(n) for key, n in session.execute(stmt)}


# --- reading -------------------------------------------------------------------------------------


class EmployeeConfirmation(BaseModel):
    employee_id: int | None
    userid: str
    name: str
    tasks: int  # WeCom tasks (chunks) this employee was asked to confirm, or 1 for a Moment
    confirmed: int
    rate: float | None
    recipients: int
    sent: int


class ChunkRead(BaseModel):
    id: int
    employee_id: int | None
    chunk_no: int
    size: int
    status: str
    attempts: int
    msgid: str
    confirm_status: str
    failed: int
    error: str
    sent_at: datetime | None
    results_at: datetime | None
    reminded_at: datetime | None


class ResultsRead(BaseModel):
    broadcast_id: int
    kind: str
    status: str
    final: bool
    counts: dict[str, int]  # recipients per status (excluded ones by the planner's reasons in `excluded`)
    excluded: dict[str, int]
    confirmation_rate: float | None  # senders who confirmed every task / senders
    employees: list[EmployeeConfirmation]
    chunks: list[ChunkRead]
    sent_at: datetime | None
    finished_at: datetime | None


def employee_confirmations(
    session: Session, broadcast: Broadcast, chunks: Sequence[BroadcastChunk] | None = None
) -> list[EmployeeConfirmation]:
    """Per sender: tasks WeCom gave them, how many they confirmed (published, for Moments), what reached whom."""
    if chunks is None:
        chunks = list(session.scalars(select(BroadcastChunk).where(BroadcastChunk.broadcast_id == broadcast.id)))
    per_recipient: dict[int | None, Counter[str]] = defaultdict(Counter)
    for employee_id, status, n in session.execute(
        select(BroadcastRecipient.employee_id, BroadcastRecipient.status, func.count())
        .where(BroadcastRecipient.broadcast_id == broadcast.id, BroadcastRecipient.status != RecipientStatus.EXCLUDED)
        .group_by(BroadcastRecipient.employee_id, BroadcastRecipient.status)
    ):
        per_recipient[employee_id][status] += int(n)
    tasks: dict[int | None, list[int]] = defaultdict(lambda: [0, 0])
    published: dict[str, int] = stored_results(broadcast).get("published") or {}
    names = _employees(session, broadcast.corp_id, {c.employee_id for c in chunks} | set(per_recipient))
    by_userid = {userid: eid for eid, (userid, _name) in names.items()}
    for chunk in chunks:
        if not chunk.msgid or chunk.status not in (ChunkStatus.SENT, ChunkStatus.CANCELLED):
            continue
        if broadcast.kind == BroadcastKind.MOMENT and chunk.employee_id is None:
            for userid, status in published.items():
                tasks[by_userid.get(userid)][0] += 1
                tasks[by_userid.get(userid)][1] += int(status == 1)
            continue
        tasks[chunk.employee_id][0] += 1
        tasks[chunk.employee_id][1] += int(chunk.confirm_status == "confirmed")
    out = []
    for employee_id in sorted(set(tasks) | set(per_recipient), key=lambda e: (e is None, e or 0)):
        total, done = tasks.get(employee_id, [0, 0])
        userid, name = names.get(employee_id, ("", "")) if employee_id is not None else ("", "")
        counts = per_recipient.get(employee_id, Counter())
        out.append(
            EmployeeConfirmation(
                employee_id=employee_id,
                userid=userid,
                name=name,
                tasks=total,
                confirmed=done,
                rate=round(done / total, 4) if total else None,
                recipients=sum(counts.values()),
                sent=counts.get(RecipientStatus.SENT, 0),
            )
        )
    return [e for e in out if e.tasks or e.recipients]


def _employees(session: Session, corp_id: int, ids: Iterable[int | None]) -> dict[int, tuple[str, str]]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = session.execute(
        select(Employee.id, Employee.userid, Employee.name).where(Employee.corp_id == corp_id, Employee.id.in_(wanted))
    )
    return {eid: (userid, name) for eid, userid, name in rows}


def results_of(session: Session, broadcast: Broadcast) -> ResultsRead:
    chunks = list(
        session.scalars(
            select(BroadcastChunk)
            .where(BroadcastChunk.broadcast_id == broadcast.id)
            .order_by(BroadcastChunk.employee_id, BroadcastChunk.chunk_no)
        )
    )
    counts = _counts_by(session, broadcast.id, BroadcastRecipient.status)
    excluded = _counts_by(
        session, broadcast.id, BroadcastRecipient.reason, BroadcastRecipient.status == RecipientStatus.EXCLUDED
    )
    employees = employee_confirmations(session, broadcast, chunks)
    with_tasks = [e for e in employees if e.tasks]
    confirmed = sum(1 for e in with_tasks if e.confirmed == e.tasks)
    return ResultsRead(
        broadcast_id=broadcast.id,
        kind=broadcast.kind,
        status=broadcast.status,
        final=broadcast.finished_at is not None,
        counts=counts,
        excluded=excluded,
        confirmation_rate=round(confirmed / len(with_tasks), 4) if with_tasks else None,
        employees=employees,
        chunks=[_chunk_read(c) for c in chunks],
        sent_at=broadcast.sent_at,
        finished_at=broadcast.finished_at,
    )


def _chunk_read(chunk: BroadcastChunk) -> ChunkRead:
    return ChunkRead(
        id=chunk.id,
        employee_id=chunk.employee_id,
        chunk_no=chunk.chunk_no,
        size=chunk.size,
        status=chunk.status,
        attempts=chunk.attempts,
        msgid=chunk.msgid,
        confirm_status=chunk.confirm_status,
        failed=len(chunk.fail_list or []),
        error=chunk.error,
        sent_at=chunk.sent_at,
        results_at=chunk.results_at,
        reminded_at=chunk.reminded_at,
    )


# --- which broadcasts to poll now ----------------------------------------------------------------


def due_for_poll(session: Session, *, now: datetime | None = None) -> list[tuple[int, int]]:
    """(broadcast id, seconds until the next poll after this one) for every broadcast due now."""
    now = now or now_utc()
    first = (
        select(BroadcastChunk.broadcast_id, func.min(BroadcastChunk.sent_at).label("first_sent"))
        .where(BroadcastChunk.msgid != "")
        .group_by(BroadcastChunk.broadcast_id)
        .subquery()
    )
    rows = session.execute(
        select(Broadcast.id, Broadcast.counts, Broadcast.sent_at, first.c.first_sent)
        .join(first, first.c.broadcast_id == Broadcast.id)
        .where(Broadcast.status.in_(POLLED), Broadcast.finished_at.is_(None))
    ).all()
    due = []
    for broadcast_id, counts, sent_at, first_chunk in rows:
        interval = poll_interval(now - (first_chunk or sent_at or now))
        polled = ((counts or {}).get("results") or {}).get("polled_at")
        if polled is None or (now - datetime.fromisoformat(polled)).total_seconds() >= interval - 1:
            due.append((int(broadcast_id), interval))
    return due


def poll_interval(age: timedelta) -> int:
    for limit, seconds in POLL_INTERVALS:
        if age < limit:
            return seconds
    return SLOWEST_POLL


# --- remind --------------------------------------------------------------------------------------


def do_remind(session: Session, broadcast_id: int, actor: Actor | str) -> dict[str, int]:
    """Remind every sender who has not confirmed (remind_groupmsg_send, by the outbox), at most 3 times a day."""
    from siyu.broadcasts.outbox import REMIND_KIND
    from siyu.outbox.actions import do_enqueue

    broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
    if broadcast is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no broadcast {broadcast_id}")
    if broadcast.kind == BroadcastKind.MOMENT:
        raise DomainError(ErrorCode.CONFLICT, "WeCom has no reminder for Moments")
    if broadcast.status not in (BroadcastStatus.SENDING, BroadcastStatus.SENT):
        raise DomainError(ErrorCode.CONFLICT, f"broadcast {broadcast_id} is {broadcast.status}; nothing to remind")
    chunks = session.scalars(
        select(BroadcastChunk).where(
            BroadcastChunk.broadcast_id == broadcast.id,
            BroadcastChunk.status == ChunkStatus.SENT,
            BroadcastChunk.confirm_status == "unconfirmed",
            BroadcastChunk.msgid != "",
        )
    ).all()
    recent = reminders_since(session, broadcast.corp_id, now_utc() - timedelta(days=1))
    reminded = at_limit = 0
    label = sender._label(actor)
    for chunk in chunks:
        if recent[chunk.id] >= REMINDS_PER_DAY:
            at_limit += 1
            continue
        payload = {"broadcast_id": broadcast.id, "chunk_id": chunk.id, "msgid": chunk.msgid}
        do_enqueue(session, corp_id=broadcast.corp_id, kind=REMIND_KIND, payload=payload, created_by=label)
        reminded += 1
    sender._audit(session, broadcast, actor, "broadcast.reminded", reminded=reminded, at_limit=at_limit)
    session.flush()
    return {"reminded": reminded, "at_limit": at_limit}


def reminders_since(session: Session, corp_id: int, since: datetime) -> Counter[int]:
    """Reminders queued per chunk since `since` (WeCom allows 3 per task in 24 h)."""
    from siyu.broadcasts.outbox import REMIND_KIND

    payloads: Iterable[JsonBody] = session.scalars(
        select(WeComOutbox.payload).where(
            WeComOutbox.corp_id == corp_id, WeComOutbox.kind == REMIND_KIND, WeComOutbox.created_at >= since
        )
    )
    return Counter(int(p.get("chunk_id", 0)) for p in payloads)
