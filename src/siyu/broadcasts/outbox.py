"""Reminders and cancellations of WeCom mass-message tasks, as outbox rows (sent by id, after commit).

`remind_groupmsg_send` nudges a sender who has not confirmed (WeCom allows 3 per task in 24 h; the
count is kept by `results.reminders_since`); `cancel_groupmsg_send` withdraws a task a sender has not
sent yet. The after-steps record the reminder's time and ask the results poller to look once more
after a withdrawal, in case the sender confirmed just before it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from siyu.broadcasts.models import BroadcastChunk
from siyu.core.clock import now_utc
from siyu.outbox.actions import register_sender
from siyu.wecom.client import WeComClient

REMIND_KIND = "broadcast_remind"
CANCEL_KIND = "broadcast_cancel"


def _send_remind(client: WeComClient, payload: dict[str, Any]) -> None:
    client.remind_groupmsg_send(str(payload["msgid"]))


def _after_remind(session: Session, corp_id: int, payload: dict[str, Any], _result: dict[str, Any] | None) -> None:
    chunk = session.get(BroadcastChunk, int(payload["chunk_id"]))
    if chunk is not None and chunk.corp_id == corp_id:
        chunk.reminded_at = now_utc()
        session.flush()


def _send_cancel(client: WeComClient, payload: dict[str, Any]) -> None:
    client.cancel_groupmsg_send(str(payload["msgid"]))


def _after_cancel(session: Session, corp_id: int, payload: dict[str, Any], _result: dict[str, Any] | None) -> None:
    chunk = session.get(BroadcastChunk, int(payload["chunk_id"]))
    if chunk is not None and chunk.corp_id == corp_id:
        chunk.results_at = None  # poll once more: whatever the sender confirmed before the cancel was sent
        session.flush()


register_sender(REMIND_KIND, _send_remind, _after_remind)
register_sender(CANCEL_KIND, _send_cancel, _after_cancel)
