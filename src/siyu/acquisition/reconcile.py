"""Nightly: siyu's channel codes against WeCom's list (list_contact_way).

Two things can drift. An add_contact_way whose answer was lost (a crash or a timeout after WeCom
created the code) is retried, leaving an orphan config in WeCom that carries one of our states:
it is deleted through the outbox. A code deleted in WeCom by someone else no longer serves its
customers: the channel is marked with a sync error the console shows. Only configs that carry
one of siyu's states are ever touched, so codes made by other tools are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.acquisition.models import Channel, CodeStatus
from siyu.acquisition.outbox import DEL_CONTACT_WAY
from siyu.acquisition.rotation import audit_channel
from siyu.core.clock import now_utc
from siyu.outbox.actions import do_enqueue
from siyu.wecom.client import WeComClient
from siyu.wecom.errors import NotFoundError

ACTOR = "siyu:reconcile"
MISSING_IN_WECOM = "the code no longer exists in WeCom (deleted outside siyu): delete this channel and create a new one"


@dataclass(slots=True)
class Reconciled:
    listed: int = 0
    orphans: list[str] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)


def do_reconcile_contact_ways(session: Session, corp_id: int, client: WeComClient) -> Reconciled:
    result = Reconciled()
    oldest = session.scalar(select(func.min(Channel.created_at)).where(Channel.corp_id == corp_id))
    if oldest is None:
        return result
    start, end = oldest - timedelta(days=1), now_utc() + timedelta(minutes=5)
    listed = set(client.iter_contact_way_ids(int(start.timestamp()), int(end.timestamp())))
    result.listed = len(listed)
    channels = list(session.scalars(select(Channel).where(Channel.corp_id == corp_id)))
    known = {c.config_id for c in channels if c.config_id}
    by_state = {c.state: c for c in channels}
    for config_id in sorted(listed - known):
        try:
            way = client.get_contact_way(config_id)
        except NotFoundError:
            continue
        channel = by_state.get(way.state)
        if channel is None:
            continue  # not one of ours
        payload = {"channel_id": channel.id, "config_id": config_id}
        outbox = do_enqueue(session, corp_id=corp_id, kind=DEL_CONTACT_WAY, payload=payload, created_by=ACTOR)
        audit_channel(session, channel, "channel.orphan_deleted", actor=ACTOR, config_id=config_id, outbox_id=outbox.id)
        result.orphans.append(config_id)
    for channel in channels:
        if channel.status == CodeStatus.ACTIVE and channel.config_id and channel.config_id not in listed:
            if channel.sync_error != MISSING_IN_WECOM:
                channel.sync_error = MISSING_IN_WECOM
                audit_channel(session, channel, "channel.missing_in_wecom", actor=ACTOR, config_id=channel.config_id)
            result.missing.append(channel.id)
    session.flush()
    return result
