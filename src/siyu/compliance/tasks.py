"""Compliance work on the task queue: the periodic complaint-monitor pass over every corp that broadcasts."""

from __future__ import annotations

import logging

from sqlalchemy import select

from siyu.broadcasts.models import BroadcastChunk
from siyu.compliance import monitor
from siyu.core.db import session_scope
from siyu.core.tasks import huey

log = logging.getLogger(__name__)


def evaluate_corp_now(corp_id: int) -> dict[str, int]:
    """Deletions confirmed late become signals, then every employee and broadcast is judged; one transaction."""
    with session_scope() as session:
        signals = monitor.do_sweep_deletions(session, corp_id)
        verdicts = monitor.do_evaluate(session, corp_id)
    return {
        "signals": signals,
        "warned": sum(v.action == "warned" for v in verdicts),
        "paused": sum(v.action == "paused" for v in verdicts),
    }


@huey.task()
def evaluate_corp(corp_id: int) -> dict[str, int]:
    return evaluate_corp_now(corp_id)


def evaluate_all_corps() -> dict[str, int]:
    """Every corp that has sent a broadcast; a failing corp is logged and the others still run."""
    with session_scope() as session:
        corp_ids = list(session.scalars(select(BroadcastChunk.corp_id).distinct()))
    totals = {"corps": len(corp_ids), "signals": 0, "warned": 0, "paused": 0}
    for corp_id in corp_ids:
        try:
            result = evaluate_corp_now(corp_id)
        except Exception:
            log.exception("the complaint monitor failed for corp %s", corp_id)
            continue
        for key, value in result.items():
            totals[key] += value
    return totals
