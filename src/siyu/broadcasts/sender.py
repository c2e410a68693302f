"""Sending a planned broadcast: start it, then send each chunk by id — once in effect.

A chunk is one add_msg_template call (≤ 10,000 customers or ≤ 2,000 groups of one sender). It is
sent in three steps, each its own transaction or none:

1. **claim** — pending → sending, attempts + 1, claimed_at; pauses and cancellation are re-checked
   here, so a sender paused since the plan never sends;
2. **call WeCom** — outside any transaction;
3. **record** — msgid, fail_list, status sent; recipients in the fail list become `not_friend`.

A crash between 2 and 3 leaves the chunk `sending` with WeCom holding a task we never recorded.
Whoever finds a chunk `sending` whose claim is older than `STALE_AFTER` (the drain, or the retry a
transport error schedules) first looks for that task in WeCom (get_groupmsg_list_v2 for the sender
since the broadcast was planned, same text, a msgid no chunk has recorded, overlapping recipients)
and adopts it; only when WeCom has none does it send. So no chunk reaches the customers twice.

Moments (add_moment_task) have no such lookup in WeCom's API: the job id is recorded the moment
WeCom answers, and only a crash inside that instant can repeat a Moment (see docs/broadcasts.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor
from siyu.analytics.service import corp_zone
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
from siyu.compliance.policy import is_broadcast_paused, paused_employee_ids
from siyu.contacts.models import Customer, Employee
from siyu.core import audit
from siyu.core.clock import now_utc
from siyu.core.db import session_scope
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp.models import Corp
from siyu.groups.models import GroupChat
from siyu.tags.models import Tag
from siyu.wecom.client import JsonBody, WeComClient, client_for_corp
from siyu.wecom.errors import (
    ApiError,
    CredentialError,
    InvalidRequestError,
    NotFoundError,
    PermissionError_,
    WeComError,
)

log = logging.getLogger(__name__)

# A claim older than this belongs to a worker that died (one WeCom call takes at most ~40 s: the
# client's 30 s retry budget plus its timeout), so the chunk may be resumed.
STALE_AFTER = timedelta(minutes=2)
MAX_ATTACHMENTS = 9
NOBODY_TO_SEND_TO = 41048  # add_msg_template: none of the recipients can receive from this sender
PERMANENT = (InvalidRequestError, NotFoundError, PermissionError_, CredentialError)
# How long a send waits for a Moments job before handing the wait to a later task.
MOMENT_POLLS, MOMENT_POLL_SECONDS = 10, 0.5
OPEN_CHUNK = (ChunkStatus.PENDING, ChunkStatus.SENDING)
UNSENT = (RecipientStatus.PENDING,)
# A chunk's confirm_status once nothing more can change in WeCom (withdraw and remind skip these).
FINAL_CONFIRM = ("confirmed", "cancelled", "expired")


class OnMissing(StrEnum):
    """What a resumed chunk does when WeCom holds no task for it."""

    SEND = "send"
    CANCEL = "cancel"  # the sender was paused or the broadcast cancelled meanwhile
    REQUEUE = "requeue"  # the broadcast is paused: back to pending, sent when it resumes


@dataclass(frozen=True, slots=True)
class ChunkJob:
    """Everything the WeCom step needs, read in the claim transaction (no ORM objects leave it)."""

    chunk_id: int
    corp_id: int
    broadcast_id: int
    kind: str
    sender: str  # the employee's userid ("" for a Moment of several employees)
    targets: tuple[str, ...]  # external_userids, or chat ids for group broadcasts
    text: str
    attachments: tuple[JsonBody, ...]
    allow_select: bool
    since: datetime  # nothing of this broadcast can be in WeCom before this
    resuming: bool = False
    known_msgids: frozenset[str] = frozenset()
    on_missing: OnMissing = OnMissing.SEND
    cancel_reason: str = ""
    moment_jobid: str = ""  # a Moments job already accepted: only wait for it
    user_list: tuple[str, ...] = ()
    tag_list: tuple[str, ...] = ()

    @property
    def chat_type(self) -> str:
        return "group" if self.kind == BroadcastKind.GROUP else "single"


def _label(actor: Actor | str) -> str:
    return actor if isinstance(actor, str) else actor.label


# --- starting --------------------------------------------------------------------------------


def do_start(session: Session, broadcast_id: int, actor: Actor | str, *, now: datetime | None = None) -> Broadcast:
    """A planned broadcast starts sending (or waits for its scheduled time); chunks are enqueued after commit.

    A paused broadcast whose pause was lifted resumes the same way: its pending chunks are enqueued again.
    """
    broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
    if broadcast is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no broadcast {broadcast_id}")
    if broadcast.status not in (BroadcastStatus.PLANNED, BroadcastStatus.SCHEDULED, BroadcastStatus.PAUSED):
        raise DomainError(ErrorCode.CONFLICT, f"broadcast {broadcast_id} is {broadcast.status}; only planned ones send")
    if is_broadcast_paused(session, broadcast.corp_id, broadcast.id):
        raise DomainError(ErrorCode.CONFLICT, f"broadcast {broadcast_id} is paused by the complaint monitor")
    now = now or now_utc()
    _check_send_day(session, broadcast, now)
    if broadcast.scheduled_at is not None and broadcast.scheduled_at > now:
        broadcast.status = BroadcastStatus.SCHEDULED
        _audit(session, broadcast, actor, "broadcast.scheduled", scheduled_at=broadcast.scheduled_at)
        session.flush()
        return broadcast
    chunk_ids = _chunk_ids(session, broadcast.id, ChunkStatus.PENDING)
    broadcast.status = BroadcastStatus.SENDING
    _audit(session, broadcast, actor, "broadcast.started", chunks=len(chunk_ids))
    session.flush()
    settle(session, broadcast)  # nothing to send (every chunk cancelled or none planned) settles at once
    enqueue_after_commit(session, chunk_ids)
    return broadcast


def _check_send_day(session: Session, broadcast: Broadcast, now: datetime) -> None:
    """Cap slots were reserved for `send_day`: sending on a later day would count against the wrong day."""
    corp = session.get(Corp, broadcast.corp_id)
    if broadcast.send_day is None or corp is None:
        return
    today = now.astimezone(corp_zone(corp)).date()
    if broadcast.send_day < today:
        raise DomainError(
            ErrorCode.CONFLICT, f"broadcast {broadcast.id} was planned for {broadcast.send_day}; plan it again"
        )


def _chunk_ids(session: Session, broadcast_id: int, *statuses: str) -> list[int]:
    stmt = select(BroadcastChunk.id).where(
        BroadcastChunk.broadcast_id == broadcast_id, BroadcastChunk.status.in_(statuses)
    )
    return list(session.scalars(stmt.order_by(BroadcastChunk.id)))


def enqueue_after_commit(session: Session, chunk_ids: Sequence[int]) -> None:
    """One queue message per chunk, by id, once the transaction that made them sendable commits."""
    if not chunk_ids:
        return

    def enqueue(_session: Session) -> None:
        from siyu.broadcasts.tasks import send_broadcast_chunk

        for chunk_id in chunk_ids:
            send_broadcast_chunk(chunk_id)

    event.listen(session, "after_commit", enqueue, once=True)


def do_start_due(session: Session, *, now: datetime | None = None) -> list[int]:
    """Scheduled broadcasts whose time has come start sending (the worker runs this every minute)."""
    now = now or now_utc()
    due = list(
        session.scalars(
            select(Broadcast.id).where(Broadcast.status == BroadcastStatus.SCHEDULED, Broadcast.scheduled_at <= now)
        )
    )
    started = []
    for broadcast_id in due:
        try:
            with session.begin_nested():
                do_start(session, broadcast_id, "schedule", now=now)
            started.append(broadcast_id)
        except DomainError as exc:
            _fail_to_start(session, broadcast_id, exc.msg)
    return started


def _fail_to_start(session: Session, broadcast_id: int, reason: str) -> None:
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.status != BroadcastStatus.SCHEDULED:
        return
    if is_broadcast_paused(session, broadcast.corp_id, broadcast.id):
        return  # waits for the pause to be lifted
    broadcast.status, broadcast.block_reason, broadcast.finished_at = BroadcastStatus.FAILED, reason, now_utc()
    _free_slots(session, broadcast.id, RecipientStatus.CANCELLED, "not_started")
    _audit(session, broadcast, "schedule", "broadcast.start_failed", reason=reason)
    session.flush()


# --- one chunk: claim, call WeCom, record -----------------------------------------------------


def send_chunk(chunk_id: int, *, stale_after: timedelta = STALE_AFTER) -> str:
    """Send one chunk; returns what became of it (sent, cancelled, in_flight, paused, …)."""
    with session_scope() as session:
        claimed = do_claim(session, chunk_id=chunk_id, stale_after=stale_after)
    if isinstance(claimed, str):
        return claimed
    try:
        with _client(claimed.corp_id) as client:
            if claimed.kind == BroadcastKind.MOMENT:
                return _deliver_moment(client, claimed)
            return _deliver(client, claimed)
    except WeComError as exc:
        return _after_error(claimed, exc)


def do_claim(session: Session, *, chunk_id: int, stale_after: timedelta = STALE_AFTER) -> ChunkJob | str:
    """Take the chunk for this worker, or say why not (its status, `in_flight`, `paused`)."""
    chunk = session.get(BroadcastChunk, chunk_id)
    if chunk is None:
        return "gone"
    broadcast = session.get(Broadcast, chunk.broadcast_id)
    assert broadcast is not None
    now = now_utc()
    if chunk.status == ChunkStatus.SENDING and chunk.msgid and broadcast.kind == BroadcastKind.MOMENT:
        return _job(session, broadcast, chunk, moment_jobid=chunk.msgid)
    if chunk.status == ChunkStatus.PENDING:
        return _claim_pending(session, broadcast, chunk, now)
    if chunk.status == ChunkStatus.SENDING:
        return _claim_stale(session, broadcast, chunk, now, stale_after)
    return str(chunk.status)


def _claim_pending(session: Session, broadcast: Broadcast, chunk: BroadcastChunk, now: datetime) -> ChunkJob | str:
    if broadcast.status == BroadcastStatus.CANCELLED:
        return _cancel_chunk(session, broadcast, chunk, "broadcast_cancelled")
    if broadcast.status in (BroadcastStatus.PLANNED, BroadcastStatus.SCHEDULED):
        return "not_started"
    if broadcast.status != BroadcastStatus.SENDING:
        return "paused" if broadcast.status == BroadcastStatus.PAUSED else f"broadcast_{broadcast.status}"
    if is_broadcast_paused(session, broadcast.corp_id, broadcast.id) and _pause_broadcast(session, broadcast):
        return "paused"
    if chunk.employee_id is not None and chunk.employee_id in paused_employee_ids(session, broadcast.corp_id):
        return _cancel_chunk(session, broadcast, chunk, "employee_paused")
    claimed = session.execute(
        update(BroadcastChunk)
        .where(BroadcastChunk.id == chunk.id, BroadcastChunk.status == ChunkStatus.PENDING)
        .values(status=ChunkStatus.SENDING, attempts=BroadcastChunk.attempts + 1, claimed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return "taken"
    session.refresh(chunk)
    return _job(session, broadcast, chunk)


def _claim_stale(
    session: Session, broadcast: Broadcast, chunk: BroadcastChunk, now: datetime, stale_after: timedelta
) -> ChunkJob | str:
    """A claim left by a worker that died: take it over (compare-and-set on claimed_at) and resume."""
    if chunk.claimed_at is not None and chunk.claimed_at > now - stale_after:
        return "in_flight"
    taken = session.execute(
        update(BroadcastChunk)
        .where(
            BroadcastChunk.id == chunk.id,
            BroadcastChunk.status == ChunkStatus.SENDING,
            BroadcastChunk.claimed_at == chunk.claimed_at
            if chunk.claimed_at is not None
            else BroadcastChunk.claimed_at.is_(None),
        )
        .values(attempts=BroadcastChunk.attempts + 1, claimed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        return "in_flight"
    session.refresh(chunk)
    on_missing, reason = OnMissing.SEND, ""
    if broadcast.status == BroadcastStatus.CANCELLED:
        on_missing, reason = OnMissing.CANCEL, "broadcast_cancelled"
    elif chunk.employee_id is not None and chunk.employee_id in paused_employee_ids(session, broadcast.corp_id):
        on_missing, reason = OnMissing.CANCEL, "employee_paused"
    elif is_broadcast_paused(session, broadcast.corp_id, broadcast.id):
        on_missing = OnMissing.REQUEUE
    return _job(session, broadcast, chunk, resuming=True, on_missing=on_missing, cancel_reason=reason)


def _job(session: Session, broadcast: Broadcast, chunk: BroadcastChunk, **extra: Any) -> ChunkJob:
    content = broadcast.content or {}
    sender = session.get(Employee, chunk.employee_id) if chunk.employee_id is not None else None
    base: dict[str, Any] = {
        "chunk_id": chunk.id,
        "corp_id": chunk.corp_id,
        "broadcast_id": broadcast.id,
        "kind": broadcast.kind,
        "sender": sender.userid if sender is not None else "",
        "targets": (),
        "text": str(content.get("text") or ""),
        "attachments": tuple(dict(a) for a in list(content.get("attachments") or [])[:MAX_ATTACHMENTS]),
        "allow_select": bool(broadcast.allow_select),
        "since": broadcast.planned_at or broadcast.created_at,
    }
    if broadcast.kind == BroadcastKind.MOMENT:
        base["user_list"] = tuple(_moment_users(session, broadcast, chunk, sender))
        base["tag_list"] = tuple(_moment_tags(session, broadcast))
    else:
        base["targets"] = tuple(recipient_wecom_ids(session, chunk.id, broadcast.kind))
    if extra.get("resuming"):
        base["known_msgids"] = frozenset(_known_msgids(session, broadcast.corp_id, chunk.employee_id))
    return ChunkJob(**base, **extra)


def recipient_wecom_ids(session: Session, chunk_id: int, kind: str, *, statuses: Iterable[str] = UNSENT) -> list[str]:
    """The WeCom ids (external_userid or chat id) of a chunk's recipients in these statuses."""
    if kind == BroadcastKind.GROUP:
        stmt = select(GroupChat.chat_id).join(BroadcastRecipient, BroadcastRecipient.chat_id == GroupChat.id)
    else:
        stmt = select(Customer.external_userid).join(BroadcastRecipient, BroadcastRecipient.customer_id == Customer.id)
    chunk = session.get(BroadcastChunk, chunk_id)
    if chunk is None:
        return []
    stmt = stmt.where(in_chunk(chunk), BroadcastRecipient.status.in_(list(statuses)))
    return list(session.scalars(stmt.order_by(BroadcastRecipient.position)))


def _known_msgids(session: Session, corp_id: int, employee_id: int | None) -> set[str]:
    stmt = select(BroadcastChunk.msgid).where(BroadcastChunk.corp_id == corp_id, BroadcastChunk.msgid != "")
    if employee_id is not None:
        stmt = stmt.where(BroadcastChunk.employee_id == employee_id)
    return set(session.scalars(stmt))


def _moment_users(session: Session, broadcast: Broadcast, chunk: BroadcastChunk, sender: Employee | None) -> list[str]:
    """Who publishes the Moment: the chunk's sender, else the employees the plan chose for a recipient (within
    the broadcast's senders when it names them), never one paused since the plan."""
    if sender is not None:
        return [sender.userid]
    planned = select(BroadcastRecipient.employee_id).where(
        in_chunk(chunk), BroadcastRecipient.status == RecipientStatus.PENDING
    )
    ids = {int(i) for i in session.scalars(planned.distinct()) if i is not None}
    if not ids:
        ids = {int(i) for i in broadcast.sender_ids or []}
    elif broadcast.sender_ids:
        ids &= {int(i) for i in broadcast.sender_ids}
    ids -= paused_employee_ids(session, broadcast.corp_id)
    if not ids:
        return []
    stmt = select(Employee.userid).where(Employee.corp_id == broadcast.corp_id, Employee.id.in_(ids))
    return list(session.scalars(stmt.order_by(Employee.id)))


def _moment_tags(session: Session, broadcast: Broadcast) -> list[str]:
    """Visibility by tag: the WeCom ids of the audience's `tag_ids` (siyu tag ids)."""
    audience: dict[str, Any] = dict(broadcast.audience or {})
    ids = [int(i) for i in audience.get("tag_ids") or []]
    if not ids:
        return []
    stmt = select(Tag.wecom_id).where(Tag.corp_id == broadcast.corp_id, Tag.id.in_(ids))
    return list(session.scalars(stmt.order_by(Tag.id)))


@contextmanager
def _client(corp_id: int) -> Iterator[WeComClient]:
    with session_scope() as session:
        corp = session.get(Corp, corp_id)
        if corp is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no corp {corp_id}")
        client = client_for_corp(corp)
    with client:
        yield client


def _deliver(client: WeComClient, job: ChunkJob) -> str:
    adopted = find_sent(client, job) if job.resuming else None
    if adopted is None and job.on_missing != OnMissing.SEND:
        with session_scope() as session:
            return do_release(session, chunk_id=job.chunk_id, on_missing=job.on_missing, reason=job.cancel_reason)
    if adopted is not None:
        msgid, fail_list = adopted, []
    elif not job.targets:
        with session_scope() as session:
            return do_release(session, chunk_id=job.chunk_id, on_missing=OnMissing.CANCEL, reason="no_recipients")
    else:
        try:
            msgid, fail_list = _add_msg_template(client, job)
        except PERMANENT as exc:  # WeCom refused it: nothing was created, nothing to resume
            with session_scope() as session:
                return do_fail(session, chunk_id=job.chunk_id, exc=exc)
    with session_scope() as session:
        return do_record_sent(session, chunk_id=job.chunk_id, msgid=msgid, fail_list=fail_list, adopted=adopted)


def _add_msg_template(client: WeComClient, job: ChunkJob) -> tuple[str, list[str]]:
    with session_scope() as session:
        attachments = wire_attachments(session, client, job.attachments)
    group = job.kind == BroadcastKind.GROUP
    return client.add_msg_template(
        chat_type=job.chat_type,
        sender=job.sender,
        external_userids=() if group else job.targets,
        chat_ids=job.targets if group else (),
        text=job.text or None,
        attachments=attachments,
        allow_select=job.allow_select,
    )


def wire_attachments(session: Session, client: WeComClient, attachments: Sequence[JsonBody]) -> list[JsonBody]:
    """Attachments naming a material get a fresh media id (WeCom's expire after 3 days)."""
    from siyu.acquisition.welcome import _wire_attachments

    return _wire_attachments(session, client, [dict(a) for a in attachments][:MAX_ATTACHMENTS])


def find_sent(client: WeComClient, job: ChunkJob) -> str | None:
    """The msgid of the task an earlier attempt created in WeCom for this chunk, if there is one.

    Candidates: the sender's tasks since the broadcast was planned, with the same text and a msgid no
    chunk has recorded. One sender's chunks share the text, and another chunk's lost task may be the
    only candidate, so a candidate is ours only if its recipients overlap this chunk's (the chunks of a
    broadcast never share a recipient).
    """
    candidates = [
        str(item["msgid"])
        for item in client.iter_groupmsg_list(
            chat_type=job.chat_type,
            start_time=int(job.since.timestamp()) - 1,
            end_time=int(now_utc().timestamp()) + 1,
            creator=job.sender or None,
        )
        if str(item.get("msgid", "")) not in job.known_msgids
        and _text_of(item) == job.text
        and item.get("creator") in (None, job.sender)
    ]
    targets = set(job.targets)
    overlaps = {msgid: len(_task_recipients(client, msgid, job.sender) & targets) for msgid in candidates}
    best = max(candidates, key=lambda m: overlaps[m], default=None)
    return best if best is not None and overlaps[best] > 0 else None


def _text_of(item: JsonBody) -> str:
    text = item.get("text")
    if isinstance(text, dict):
        return str(text.get("content") or "")
    return str(text or "")


def _task_recipients(client: WeComClient, msgid: str, userid: str) -> set[str]:
    return {
        str(row.get("external_userid") or row.get("chat_id") or "")
        for row in client.iter_groupmsg_send_result(msgid, userid)
    }


def do_record_sent(
    session: Session, *, chunk_id: int, msgid: str, fail_list: Sequence[str], adopted: str | None = None
) -> str:
    """WeCom accepted the chunk: keep its msgid; recipients it refused at once are not friends of the sender."""
    chunk = session.get(BroadcastChunk, chunk_id)
    assert chunk is not None
    broadcast = session.get(Broadcast, chunk.broadcast_id, with_for_update=True)
    assert broadcast is not None
    session.refresh(chunk, with_for_update=True)
    if chunk.status != ChunkStatus.SENDING:
        return str(chunk.status)
    now = now_utc()
    chunk.status, chunk.msgid, chunk.fail_list = ChunkStatus.SENT, msgid, list(fail_list)
    chunk.sent_at, chunk.error, chunk.confirm_status = now, "", "unconfirmed"
    if fail_list:
        _set_by_wecom_id(session, chunk, broadcast.kind, fail_list, RecipientStatus.NOT_FRIEND, "fail_list")
    _audit(
        session,
        broadcast,
        "worker",
        "broadcast.chunk_sent",
        chunk_id=chunk.id,
        msgid=msgid,
        failed=len(fail_list),
        adopted=adopted is not None,
    )
    if broadcast.status == BroadcastStatus.CANCELLED:
        withdraw_chunk(session, broadcast, chunk, "broadcast_cancelled")
    elif _sender_paused(session, broadcast, chunk):
        withdraw_chunk(session, broadcast, chunk, "employee_paused")
    settle(session, broadcast)
    session.flush()
    return str(chunk.status)


def _sender_paused(session: Session, broadcast: Broadcast, chunk: BroadcastChunk) -> bool:
    return chunk.employee_id is not None and chunk.employee_id in paused_employee_ids(session, broadcast.corp_id)


def do_release(session: Session, *, chunk_id: int, on_missing: OnMissing, reason: str) -> str:
    """A claimed chunk WeCom never received goes back to pending (broadcast paused) or is cancelled."""
    chunk = session.get(BroadcastChunk, chunk_id, with_for_update=True)
    assert chunk is not None
    broadcast = session.get(Broadcast, chunk.broadcast_id)
    assert broadcast is not None
    if chunk.status != ChunkStatus.SENDING:
        return str(chunk.status)
    if on_missing == OnMissing.REQUEUE:
        chunk.status = ChunkStatus.PENDING
        _pause_broadcast(session, broadcast, recheck=False)
        session.flush()
        return "paused"
    return _cancel_chunk(session, broadcast, chunk, reason)


def _cancel_chunk(session: Session, broadcast: Broadcast, chunk: BroadcastChunk, reason: str) -> str:
    chunk.status, chunk.error = ChunkStatus.CANCELLED, reason
    cancelled = _set_chunk_recipients(session, chunk.id, UNSENT, RecipientStatus.CANCELLED, reason)
    _audit(session, broadcast, "worker", "broadcast.chunk_cancelled", chunk_id=chunk.id, reason=reason, n=cancelled)
    session.flush()
    settle(session, broadcast)
    return str(ChunkStatus.CANCELLED)


def _pause_broadcast(session: Session, broadcast: Broadcast, *, recheck: bool = True) -> bool:
    """The broadcast stops (status paused) while a pause holds it; False when none does any longer.

    The broadcast's row is locked first, as lifting a pause locks it (`compliance.actions`): a lift that
    committed meanwhile is seen by the re-check, and one still running waits and then finds it paused —
    so a broadcast never stays paused by a pause already lifted."""
    session.refresh(broadcast, with_for_update=True)
    if recheck and not is_broadcast_paused(session, broadcast.corp_id, broadcast.id):
        return False
    if broadcast.status == BroadcastStatus.SENDING:
        broadcast.status = BroadcastStatus.PAUSED
        _audit(session, broadcast, "worker", "broadcast.paused", reason="complaint monitor pause")
        session.flush()
    return True


def _after_error(job: ChunkJob, exc: WeComError) -> str:
    """The call may have reached WeCom (a lost answer, a timeout): the chunk stays `sending` and resumes
    after `STALE_AFTER`, looking for its task in WeCom before sending again."""
    detail = f"{exc.errcode}: {exc.errmsg}" if isinstance(exc, ApiError) else str(exc)
    with session_scope() as session:
        chunk = session.get(BroadcastChunk, job.chunk_id, with_for_update=True)
        if chunk is None or chunk.status != ChunkStatus.SENDING:
            return "gone" if chunk is None else str(chunk.status)
        chunk.error = detail[:2000]
    log.warning("broadcast chunk %s: %s; resuming after %s", job.chunk_id, detail, STALE_AFTER)
    from siyu.broadcasts.tasks import send_broadcast_chunk

    send_broadcast_chunk.schedule((job.chunk_id,), delay=STALE_AFTER.total_seconds() + 5)
    return "retry"


def do_fail(session: Session, *, chunk_id: int, exc: WeComError) -> str:
    """WeCom refused the chunk: nobody in it gets the message, so their cap slots are freed."""
    chunk = session.get(BroadcastChunk, chunk_id, with_for_update=True)
    assert chunk is not None
    if chunk.status != ChunkStatus.SENDING:
        return str(chunk.status)
    errcode = exc.errcode if isinstance(exc, ApiError) else 0
    chunk.status = ChunkStatus.FAILED
    chunk.error = (f"{errcode}: {exc.errmsg}" if isinstance(exc, ApiError) else str(exc))[:2000]
    status = RecipientStatus.NOT_FRIEND if errcode == NOBODY_TO_SEND_TO else RecipientStatus.NOT_SENT
    _set_chunk_recipients(session, chunk.id, UNSENT, status, f"wecom_{errcode}")
    broadcast = session.get(Broadcast, chunk.broadcast_id)
    assert broadcast is not None
    _audit(session, broadcast, "worker", "broadcast.chunk_failed", chunk_id=chunk.id, error=chunk.error)
    session.flush()
    settle(session, broadcast)
    return str(ChunkStatus.FAILED)


# --- Moments ---------------------------------------------------------------------------------


def _deliver_moment(client: WeComClient, job: ChunkJob) -> str:
    """Create the Moments job (once: its id is recorded at once), then wait for WeCom to finish it."""
    jobid = job.moment_jobid
    if not jobid and job.on_missing != OnMissing.SEND:
        with session_scope() as session:
            return do_release(session, chunk_id=job.chunk_id, on_missing=job.on_missing, reason=job.cancel_reason)
    if not jobid:
        with session_scope() as session:
            attachments = wire_attachments(session, client, job.attachments)
        try:
            jobid = client.add_moment_task(
                text=job.text or None, attachments=attachments, user_list=job.user_list, tag_list=job.tag_list
            )
        except PERMANENT as exc:
            with session_scope() as session:
                return do_fail(session, chunk_id=job.chunk_id, exc=exc)
        with session_scope() as session:
            do_record_moment_job(session, chunk_id=job.chunk_id, jobid=jobid)
    from siyu.broadcasts.results import await_moment_job

    return await_moment_job(client, job.chunk_id, jobid, polls=MOMENT_POLLS, interval=MOMENT_POLL_SECONDS)


def do_record_moment_job(session: Session, *, chunk_id: int, jobid: str) -> None:
    chunk = session.get(BroadcastChunk, chunk_id, with_for_update=True)
    assert chunk is not None
    chunk.msgid = jobid
    broadcast = session.get(Broadcast, chunk.broadcast_id)
    assert broadcast is not None
    _audit(session, broadcast, "worker", "broadcast.moment_job", chunk_id=chunk.id, jobid=jobid)
    session.flush()


# --- cancel ----------------------------------------------------------------------------------


CANCELLABLE = (
    BroadcastStatus.PLANNED,
    BroadcastStatus.SCHEDULED,
    BroadcastStatus.SENDING,
    BroadcastStatus.SENT,
    BroadcastStatus.PAUSED,
)


def do_cancel(session: Session, broadcast_id: int, actor: Actor | str) -> Broadcast:
    """Stop a broadcast: WeCom tasks already created are cancelled (through the outbox), pending chunks
    never go out, and every recipient not yet sent to is cancelled (their cap slots are freed)."""
    broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
    if broadcast is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no broadcast {broadcast_id}")
    if broadcast.status not in CANCELLABLE:
        raise DomainError(ErrorCode.CONFLICT, f"broadcast {broadcast_id} is {broadcast.status}; it cannot be cancelled")
    was_sending = broadcast.status in (BroadcastStatus.SENDING, BroadcastStatus.SENT, BroadcastStatus.PAUSED)
    broadcast.status = BroadcastStatus.CANCELLED
    pending = session.scalars(
        select(BroadcastChunk).where(
            BroadcastChunk.broadcast_id == broadcast.id, BroadcastChunk.status == ChunkStatus.PENDING
        )
    ).all()
    for chunk in pending:
        chunk.status, chunk.error = ChunkStatus.CANCELLED, "broadcast_cancelled"
    withdrawn = 0
    for chunk in session.scalars(
        select(BroadcastChunk).where(
            BroadcastChunk.broadcast_id == broadcast.id,
            BroadcastChunk.status == ChunkStatus.SENT,
            BroadcastChunk.msgid != "",
        )
    ):
        withdrawn += withdraw_chunk(session, broadcast, chunk, "broadcast_cancelled", label=_label(actor))
    freed = _free_slots(session, broadcast.id, RecipientStatus.CANCELLED, "broadcast_cancelled", chunks_open=True)
    if not was_sending or not _has_wecom_tasks(session, broadcast.id):
        broadcast.finished_at = now_utc()  # nothing in WeCom to poll results of
    _audit(
        session, broadcast, actor, "broadcast.cancelled", chunks_cancelled=len(pending), withdrawn=withdrawn, n=freed
    )
    session.flush()
    return broadcast


def withdraw_chunk(
    session: Session, broadcast: Broadcast, chunk: BroadcastChunk, reason: str, *, label: str = "worker"
) -> int:
    """Cancel a chunk's task in WeCom (cancel_groupmsg_send, by the outbox) and its unsent recipients here."""
    from siyu.broadcasts.outbox import CANCEL_KIND
    from siyu.outbox.actions import do_enqueue

    if broadcast.kind == BroadcastKind.MOMENT or not chunk.msgid or chunk.confirm_status in FINAL_CONFIRM:
        return 0
    payload = {"broadcast_id": broadcast.id, "chunk_id": chunk.id, "msgid": chunk.msgid}
    do_enqueue(session, corp_id=broadcast.corp_id, kind=CANCEL_KIND, payload=payload, created_by=label)
    chunk.confirm_status = "cancelled"
    if chunk.status == ChunkStatus.SENT and reason == "employee_paused":
        chunk.status = ChunkStatus.CANCELLED
    _set_chunk_recipients(session, chunk.id, UNSENT, RecipientStatus.CANCELLED, reason)
    return 1


def _has_wecom_tasks(session: Session, broadcast_id: int) -> bool:
    """Whether any chunk reached WeCom (or may have: one still in flight)."""
    in_wecom = (BroadcastChunk.msgid != "") | (BroadcastChunk.status == ChunkStatus.SENDING)
    stmt = select(func.count()).where(BroadcastChunk.broadcast_id == broadcast_id, in_wecom)
    return bool(session.scalar(stmt))


def _free_slots(session: Session, broadcast_id: int, status: str, reason: str, *, chunks_open: bool = False) -> int:
    """Recipients still pending (optionally only those of chunks not sending) take `status`."""
    stmt = update(BroadcastRecipient).where(
        BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.status == RecipientStatus.PENDING
    )
    if chunks_open:
        # a chunk in flight is settled when its send is recorded (withdrawn there, since the broadcast is cancelled)
        # (a handful of ranges at most: one per chunk a worker holds right now)
        in_flight = session.execute(
            select(BroadcastChunk.first_position, BroadcastChunk.last_position).where(
                BroadcastChunk.broadcast_id == broadcast_id, BroadcastChunk.status == ChunkStatus.SENDING
            )
        )
        for first, last in in_flight:
            stmt = stmt.where(~BroadcastRecipient.position.between(first, last))
    result = session.execute(
        stmt.values(status=status, reason=reason, updated_at=now_utc()).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


# --- shared ----------------------------------------------------------------------------------


def settle(session: Session, broadcast: Broadcast) -> None:
    """When no chunk is left to send: sent (results to come), failed, or finished (nothing went out)."""
    if broadcast.status not in (BroadcastStatus.SENDING, BroadcastStatus.PAUSED):
        return
    by_status = dict(
        session.execute(
            select(BroadcastChunk.status, func.count())
            .where(BroadcastChunk.broadcast_id == broadcast.id)
            .group_by(BroadcastChunk.status)
        ).all()
    )
    if any(by_status.get(s) for s in OPEN_CHUNK):
        return
    now = now_utc()
    if by_status.get(ChunkStatus.SENT):
        broadcast.status, broadcast.sent_at = BroadcastStatus.SENT, now
    elif by_status.get(ChunkStatus.FAILED):
        broadcast.status, broadcast.finished_at = BroadcastStatus.FAILED, now
    else:
        broadcast.status, broadcast.finished_at = BroadcastStatus.FINISHED, now
    _audit(session, broadcast, "worker", f"broadcast.{broadcast.status}", chunks=by_status)
    session.flush()


def _set_chunk_recipients(session: Session, chunk_id: int, current: Iterable[str], status: str, reason: str) -> int:
    chunk = session.get(BroadcastChunk, chunk_id)
    if chunk is None:
        return 0
    result = session.execute(
        update(BroadcastRecipient)
        .where(in_chunk(chunk), BroadcastRecipient.status.in_(list(current)))
        .values(status=status, reason=reason, updated_at=now_utc())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


def _set_by_wecom_id(
    session: Session, chunk: BroadcastChunk, kind: str, wecom_ids: Sequence[str], status: str, reason: str
) -> int:
    from siyu.broadcasts.results import recipient_ids_by_wecom_id, set_recipients

    positions = recipient_ids_by_wecom_id(session, chunk.id, kind, wecom_ids)
    return set_recipients(session, chunk.broadcast_id, positions, status, reason)


def _audit(session: Session, broadcast: Broadcast, actor: Actor | str, action: str, **detail: Any) -> None:
    audit.record(
        session,
        corp_id=broadcast.corp_id,
        actor=_label(actor),
        action=action,
        object_type="broadcast",
        object_id=broadcast.id,
        detail=detail,
    )
