"""How tag changes reach WeCom from the outbox: mark_tag (a follow's corp tags).

Registered at import; `siyu.contacts.actions` imports this module (it enqueues mark_tag), and
so does every process that sends outbox rows (the worker imports the mirror actions).
mark_tag is idempotent in WeCom (adding a present tag or removing an absent one is a no-op),
so re-sending a row after a lost answer does no harm.
"""

from __future__ import annotations

from typing import Any

from siyu.outbox.actions import register_sender
from siyu.wecom.client import WeComClient

MARK_TAG = "mark_tag"


def send_mark_tag(client: WeComClient, payload: dict[str, Any]) -> dict[str, Any] | None:
    client.mark_tag(
        str(payload["userid"]),
        str(payload["external_userid"]),
        add=[str(t) for t in payload.get("add", [])],
        remove=[str(t) for t in payload.get("remove", [])],
    )
    return None


register_sender(MARK_TAG, send_mark_tag)
