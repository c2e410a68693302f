"""Broadcast work on the task queue: one message per chunk, results polling, scheduled starts, the drain.

The database is the truth: a lost queue message only delays a chunk until the next drain, and a
message delivered twice finds the chunk already claimed (`sender.do_claim`).
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from siyu.broadcasts import results, sender
from siyu.broadcasts.models import Broadcast, BroadcastChunk, BroadcastStatus, ChunkStatus
from siyu.core.clock import now_utc
from siyu.core.db import session_scope
from siyu.core.tasks import huey

log = logging.getLogger(__name__)


@huey.task()
def send_broadcast_chunk(chunk_id: int) -> str:
    return sender.send_chunk(chunk_id)


@huey.task()
def poll_broadcast_results(broadcast_id: int) -> bool:
    """True when the broadcast's results are final."""
    return bool(results.poll_broadcast(broadcast_id).get("final"))


def start_due_broadcasts() -> list[int]:
    """Scheduled broadcasts whose time has come (each starts in its own savepoint; failures are recorded)."""
    with session_scope() as session:
        return sender.do_start_due(session)


def poll_due_results() -> int:
    """Enqueue a results poll for every broadcast due one; young ones get a second poll 30 s later."""
    with session_scope() as session:
        due = results.due_for_poll(session)
    for broadcast_id, interval in due:
        poll_broadcast_results(broadcast_id)
        if interval <= 30:
            poll_broadcast_results.schedule((broadcast_id,), delay=interval)
    return len(due)


def drain_broadcasts() -> dict[str, int]:
    """Chunks a lost message or a dead worker left behind: pending chunks of sending broadcasts, and
    claims older than `STALE_AFTER` (resumed by looking in WeCom first). Broadcasts with nothing left
    to send are settled."""
    stale_before = now_utc() - sender.STALE_AFTER
    with session_scope() as session:
        pending = list(
            session.scalars(
                select(BroadcastChunk.id)
                .join(Broadcast, Broadcast.id == BroadcastChunk.broadcast_id)
                .where(Broadcast.status == BroadcastStatus.SENDING, BroadcastChunk.status == ChunkStatus.PENDING)
                .order_by(BroadcastChunk.id)
            )
        )
        stale = list(
            session.scalars(
                select(BroadcastChunk.id)
                .where(BroadcastChunk.status == ChunkStatus.SENDING, BroadcastChunk.claimed_at < stale_before)
                .order_by(BroadcastChunk.id)
            )
        )
        for broadcast in session.scalars(select(Broadcast).where(Broadcast.status == BroadcastStatus.SENDING)):
            sender.settle(session, broadcast)
    for chunk_id in pending + stale:
        send_broadcast_chunk(chunk_id)
    return {"broadcast_chunks": len(pending), "stale_chunks": len(stale)}


def every_minute() -> dict[str, int]:
    started = start_due_broadcasts()
    return {"started": len(started), "polled": poll_due_results()}
