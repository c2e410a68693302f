"""Writes from the sidebar: the same actions as the console, with the sidebar's staff actor."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, access_follow
from siyu.contacts.actions import TagChange, do_set_follow_tags


def do_set_tags(session: Session, actor: Actor, *, follow_id: int, tag_ids: Sequence[int]) -> TagChange:
    """Set one follow's tags (written to WeCom with mark_tag through the outbox), like the customer page does."""
    follow = access_follow(session, actor, follow_id, write=True)
    return do_set_follow_tags(
        session, actor=actor, customer_id=follow.customer_id, follow_id=follow.id, tag_ids=tag_ids
    )
