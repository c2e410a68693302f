"""Telling the segment indexes what changed: `mark_dirty` from every writer, published at commit.

Writers call `mark_dirty(session, corp_id, customer_ids)` with the ids they already hold (or
`mark_corp_dirty` after a set-based write whose rows they did not read). Nothing is written then:
the ids collect in `session.info`, and right before the transaction commits they are published in
it — the corp's `segment_index_version` row is bumped (`UPDATE … RETURNING`) and one
`segment_change` row per customer carries the new number. A rollback publishes nothing.

Why a version row and not an in-process set: the server, the worker and every `--processes` child
each hold their own indexes, and a change is made in one of them. The version row serialises the
writers of a corp only for the instant between publish and commit, which makes the numbers commit
in order; a reader that has applied everything up to N reads the rows numbered > N and is exact.
See `engine.BitmapEngine.catch_up`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyroaring import BitMap
from sqlalchemy import bindparam, event, select, update
from sqlalchemy.orm import Session, SessionTransaction

from siyu.segments.models import SegmentChange, SegmentIndexVersion
from siyu.sync.bulk import insert_ignoring_conflicts

CHANGE = SegmentChange.__table__
_PENDING = "siyu.segments.pending"
# Past this many customers in one commit, one whole-corp row is cheaper for everyone than the ids.
WHOLE_CORP_AFTER = 50_000
_INSERT_CHUNK = 5_000


class _WholeCorp:
    """Marker: every customer of the corp may have changed."""


WHOLE_CORP = _WholeCorp()
Pending = dict[int, BitMap | _WholeCorp]


def mark_dirty(session: Session, corp_id: int, customer_ids: Iterable[int | None]) -> None:
    """These customers' rows changed in this transaction (None entries are skipped). Costs no query."""
    pending = _pending(session)
    current = pending.setdefault(corp_id, BitMap())
    if isinstance(current, BitMap):
        current.update(i for i in customer_ids if i is not None)


def mark_corp_dirty(session: Session, corp_id: int) -> None:
    """Any of the corp's customers may have changed (a set-based write): every index rebuilds."""
    pending = _pending(session)
    pending[corp_id] = WHOLE_CORP


def _pending(session: Session) -> Pending:
    if _PENDING not in session.info:
        session.connection()  # marks belong to a transaction: begin it, so its rollback forgets them
    pending: Pending = session.info.setdefault(_PENDING, {})
    return pending


def pending_marks(session: Session) -> Pending:
    return dict(session.info.get(_PENDING, {}))


def publish(session: Session) -> dict[int, int]:
    """Write this transaction's marks now (commit does it by itself); returns corp → new version."""
    pending: Pending = session.info.pop(_PENDING, {})
    published: dict[int, int] = {}
    for corp_id in sorted(pending):  # one lock order for every writer: no deadlock between two corps
        marks = pending[corp_id]
        if isinstance(marks, BitMap) and not marks:
            continue
        version = _bump(session, corp_id)
        _insert_changes(session, corp_id, version, marks)
        published[corp_id] = version
    return published


def _bump(session: Session, corp_id: int) -> int:
    stmt = (
        update(SegmentIndexVersion)
        .where(SegmentIndexVersion.corp_id == corp_id)
        .values(version=SegmentIndexVersion.version + 1)
        .returning(SegmentIndexVersion.version)
        .execution_options(synchronize_session=False)
    )
    version = session.execute(stmt).scalar()
    if version is None:
        first = {"corp_id": corp_id, "version": 0}
        session.execute(insert_ignoring_conflicts(session, SegmentIndexVersion.__table__), first)
        version = session.execute(stmt).scalar_one()
    return int(version)


def _insert_changes(session: Session, corp_id: int, version: int, marks: BitMap | _WholeCorp) -> None:
    if isinstance(marks, _WholeCorp) or len(marks) > WHOLE_CORP_AFTER:
        session.execute(CHANGE.insert(), [{"corp_id": corp_id, "version": version, "customer_id": None}])
        return
    ids = marks.to_array()
    for start in range(0, len(ids), _INSERT_CHUNK):
        rows = [{"corp_id": corp_id, "version": version, "customer_id": i} for i in ids[start : start + _INSERT_CHUNK]]
        session.execute(CHANGE.insert(), rows)


_VERSION = select(SegmentIndexVersion.__table__.c.version).where(
    SegmentIndexVersion.__table__.c.corp_id == bindparam("corp")
)


def current_version(session: Session, corp_id: int) -> int:
    """The corp's committed change number (one primary-key lookup, run before every count)."""
    return int(session.connection().execute(_VERSION, {"corp": corp_id}).scalar() or 0)


@event.listens_for(Session, "before_commit")
def _publish_before_commit(session: Session) -> None:
    if session.info.get(_PENDING):
        publish(session)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, previous_transaction: SessionTransaction) -> Any:
    # Only the outermost rollback undoes the writes; a savepoint's leaves the rest of the transaction.
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
