"""Acquisition work on the task queue: the per-minute code rotation, and welcomes left pending."""

from __future__ import annotations

import logging

from sqlalchemy import select

from siyu.acquisition import reconcile, rotation, welcome
from siyu.acquisition.models import Channel, CodeStatus
from siyu.core.db import session_scope
from siyu.core.tasks import huey
from siyu.corp.models import Corp
from siyu.wecom.client import client_for_corp
from siyu.wecom.errors import WeComError

log = logging.getLogger(__name__)


# Above event processing (priority 0): a WelcomeCode lives 20 s, a backlog of events can be longer.
WELCOME_PRIORITY = 100


@huey.task(priority=WELCOME_PRIORITY)
def welcome_first(inbox_ids: list[int]) -> list[str]:
    return [welcome.send_first(inbox_id) for inbox_id in inbox_ids]


@huey.task(priority=WELCOME_PRIORITY)
def send_welcome(welcome_id: int) -> str:
    return welcome.send_now([welcome_id]).get(welcome_id, "gone")


def rotate_all_corps() -> dict[str, int]:
    """Schedules, caps and expiry for every corp with active codes; one transaction per corp."""
    with session_scope() as session:
        corp_ids = list(session.scalars(select(Channel.corp_id).where(Channel.status == CodeStatus.ACTIVE).distinct()))
    changed = expired = 0
    for corp_id in corp_ids:
        with session_scope() as session:
            result = rotation.do_rotate_corp(session, corp_id)
        changed, expired = changed + len(result.changed), expired + len(result.expired)
    return {"corps": len(corp_ids), "changed": changed, "expired": expired}


def drain_welcomes() -> dict[str, int]:
    """Welcomes still pending after a crash: expire the overdue, send the rest while their window is open."""
    with session_scope() as session:
        expired = welcome.do_expire_overdue(session)
        pending = welcome.pending_ids(session)
    for welcome_id in pending:
        send_welcome(welcome_id)
    return {"expired": expired, "sent": len(pending)}


def reconcile_all_corps() -> dict[str, int]:
    """Every corp with channel codes against WeCom's list of Contact Me configs."""
    with session_scope() as session:
        corp_ids = list(session.scalars(select(Channel.corp_id).distinct()))
    orphans = missing = 0
    for corp_id in corp_ids:
        try:
            with session_scope() as session:
                corp = session.get(Corp, corp_id)
                if corp is None:
                    continue
                with client_for_corp(corp) as client:
                    result = reconcile.do_reconcile_contact_ways(session, corp_id, client)
        except WeComError:
            log.exception("reconciling the channel codes of corp %s failed", corp_id)
            continue
        orphans, missing = orphans + len(result.orphans), missing + len(result.missing)
    return {"corps": len(corp_ids), "orphans": orphans, "missing": missing}
