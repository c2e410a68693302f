"""Segment index upkeep on the task queue: catch-up and pruning of the change log, the nightly check.

Declared as periodic jobs in `siyu.worker` (every minute / 18:57 UTC).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.contacts.models import Customer
from siyu.core.clock import now_utc
from siyu.core.db import get_sessionmaker, session_scope
from siyu.segments import engine
from siyu.segments.changes import current_version, mark_corp_dirty
from siyu.segments.models import SegmentChange

log = logging.getLogger(__name__)

# A process whose index is further behind than this rebuilds it (its rows are gone); see engine.catch_up.
KEEP_CHANGES = timedelta(hours=6)


def refresh_and_prune() -> dict[str, int]:
    """Catch this process's engines up, then delete change rows older than KEEP_CHANGES (one statement)."""
    refreshed = engine.refresh_loaded(get_sessionmaker())
    with session_scope() as session:
        result = session.execute(delete(SegmentChange).where(SegmentChange.created_at < now_utc() - KEEP_CHANGES))
        pruned = max(int(getattr(result, "rowcount", 0) or 0), 0)
    return {**refreshed, "pruned": pruned}


def check_all_corps() -> dict[str, int]:
    """Every corp's incrementally kept index against a rebuild from SQL; log and repair what differs.

    A corp whose index this process does not hold yet is built and kept, so tomorrow's check compares
    a day of incremental updates. A mismatch means some writer changed rows without `mark_dirty`:
    the differences are logged, this process takes the rebuilt index, and the corp is marked whole
    so every other process rebuilds too.
    """
    out = {"corps": 0, "checked": 0, "mismatched": 0, "built": 0, "busy": 0}
    with session_scope() as session:
        corp_ids = list(session.scalars(select(Customer.corp_id).distinct()))
    for corp_id in corp_ids:
        out["corps"] += 1
        held = engine.loaded_engine(corp_id)
        with session_scope() as session:
            result = _check_corp(session, corp_id, held)
        out[result] += 1
    return out


def _check_corp(session: Session, corp_id: int, held: engine.BitmapEngine | None) -> str:
    """checked / mismatched / built / busy (changes kept committing while the truth was rebuilt)."""
    for _attempt in range(3):
        live = engine.engine_for(session, corp_id)
        if held is None or live is not held:
            return "built"
        truth = engine.BitmapEngine.build(session, corp_id)
        if truth.version != live.version or current_version(session, corp_id) != truth.version:
            continue  # a change landed in between: the two would differ by it
        differences = live.compare(truth)
        if not differences:
            return "checked"
        _report(corp_id, differences)
        engine.replace_engine(truth)
        mark_corp_dirty(session, corp_id)
        return "mismatched"
    return "busy"


def _report(corp_id: int, differences: list[engine.Difference]) -> None:
    shown = [
        f"{d.family}[{d.key}]: {len(d.only_live)} only in the index {list(d.only_live[:5])}, "
        f"{len(d.only_db)} only in the database {list(d.only_db[:5])}"
        for d in differences[:20]
    ]
    log.warning(
        "segment index of corp %s differed from the database in %d bitmaps (repaired): %s",
        corp_id,
        len(differences),
        "; ".join(shown),
    )
