"""Set-based writes shared by the mirror actions: a constant number of statements per batch.

WeCom is the source of truth for departments, employees, customers, follows, tags and groups;
siyu keeps a mirror. Both the full sync and the callback processor write that mirror through
these helpers, so both get the same two guarantees: a batch costs a fixed number of queries
whatever its size (no N+1), and a row whose WeCom copy did not change is not written at all —
which is what lets a second sync report 0 changes and keep every `updated_at`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, Table, bindparam, delete, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from siyu.core.clock import now_utc
from siyu.core.counts import Counts

Key = tuple[Any, ...]
Row = dict[str, Any]
# What a write changed, per object type ("customers", "follows", ...).
Changes = dict[str, Counts]

# Stay well below SQLite's and PostgreSQL's bind-parameter limits for IN lists.
IN_CHUNK = 1000


@dataclass(slots=True)
class Upserted:
    counts: Counts = field(default_factory=Counts)
    # Database id of every desired row, by key.
    ids: dict[Key, int] = field(default_factory=dict)
    # Rows in the selected scope (same first key value) that were not desired: for set replacement.
    extra_ids: list[int] = field(default_factory=list)
    # Ids of the rows this call inserted or rewrote (unchanged rows are not here).
    written_ids: list[int] = field(default_factory=list)


def total(changes: Mapping[str, Counts]) -> Counts:
    out = Counts()
    for counts in changes.values():
        out += counts
    return out


def add_changes(into: Changes, more: Mapping[str, Counts]) -> Changes:
    for name, counts in more.items():
        into.setdefault(name, Counts())
        into[name] += counts
    return into


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def insert_ignoring_conflicts(session: Session, table: Table) -> Insert:
    """INSERT that skips rows a concurrent writer (callback vs sync) inserted first."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return insert(table)


def upsert_rows(
    session: Session,
    table: Table,
    *,
    corp_id: int,
    key: Sequence[str],
    rows: Iterable[Row],
    corp_filter: bool = True,
) -> Upserted:
    """Insert missing rows and rewrite changed ones; untouched rows cost no write.

    `rows` all carry the same columns: the key columns plus the mirrored fields compared for
    changes. Existing rows are read by the first key column only (one IN list), so a page of
    groups reads all their members in one query. corp_filter=False when that first column is a
    global id (customer_id, group_chat_id) that already implies the corp: adding corp_id makes
    SQLite pick the (corp_id, …) index and scan every follow of the corp on every page.
    """
    desired = {tuple(row[k] for k in key): row for row in rows}
    if not desired:
        return Upserted()
    fields = [c for c in next(iter(desired.values())) if c not in key]
    existing = _select_existing(session, table, corp_id if corp_filter else None, key, fields, desired)
    result = Upserted(extra_ids=[r["id"] for k, r in existing.items() if k not in desired])
    changed = [
        {"_id": existing[k]["id"], **row} for k, row in desired.items() if k in existing and _differs(existing[k], row)
    ]
    _update_by_id(session, table, changed)
    result.counts.updated = len(changed)
    result.written_ids = [row["_id"] for row in changed]
    result.ids = {k: r["id"] for k, r in existing.items() if k in desired}
    new_rows = [{"corp_id": corp_id, **row} for k, row in desired.items() if k not in existing]
    inserted = _insert_returning_keys(session, table, key, new_rows)
    result.counts.added = len(inserted)
    result.ids.update(inserted)
    result.written_ids.extend(inserted.values())
    if len(result.ids) < len(desired):
        missing = [k for k in desired if k not in result.ids]
        result.ids.update(_ids_for(session, table, corp_id if corp_filter else None, key, missing))
    return result


def _differs(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return any(current[name] != value for name, value in desired.items() if name in current)


def _select_existing(
    session: Session,
    table: Table,
    corp_id: int | None,
    key: Sequence[str],
    fields: Sequence[str],
    desired: Mapping[Key, Row],
) -> dict[Key, Row]:
    columns = [table.c.id, *(table.c[k] for k in key), *(table.c[f] for f in fields)]
    first_values = sorted({k[0] for k in desired})
    found: dict[Key, Row] = {}
    for part in chunks(first_values):
        stmt = _in_scope(select(*columns), table, corp_id).where(table.c[key[0]].in_(part))
        for row in session.execute(stmt).mappings():
            found[tuple(row[k] for k in key)] = dict(row)
    return found


def _in_scope(stmt: Select[Any], table: Table, corp_id: int | None) -> Select[Any]:
    return stmt if corp_id is None else stmt.where(table.c.corp_id == corp_id)


def _ids_for(
    session: Session, table: Table, corp_id: int | None, key: Sequence[str], wanted: Sequence[Key]
) -> dict[Key, int]:
    wanted_set = set(wanted)
    found: dict[Key, int] = {}
    for part in chunks(sorted({k[0] for k in wanted})):
        columns = select(table.c.id, *(table.c[k] for k in key))
        stmt = _in_scope(columns, table, corp_id).where(table.c[key[0]].in_(part))
        for row in session.execute(stmt):
            k = tuple(row[1:])
            if k in wanted_set:
                found[k] = row[0]
    return found


def _insert_returning_keys(session: Session, table: Table, key: Sequence[str], rows: list[Row]) -> dict[Key, int]:
    if not rows:
        return {}
    stmt = insert_ignoring_conflicts(session, table).returning(table.c.id, *(table.c[k] for k in key))
    return {tuple(r[1:]): r[0] for r in session.execute(stmt, rows)}


def _update_by_id(session: Session, table: Table, rows: list[Row]) -> None:
    if not rows:
        return
    if "updated_at" in table.c:
        now = now_utc()
        rows = [{**row, "updated_at": now} for row in rows]
    session.execute(update(table).where(table.c.id == bindparam("_id")), rows)


def delete_ids(session: Session, table: Table, ids: Sequence[int]) -> int:
    for part in chunks(list(ids)):
        session.execute(delete(table).where(table.c.id.in_(part)))
    return len(ids)


def mark_seen(session: Session, table: Table, ids: Iterable[int], run_id: int | None) -> None:
    """Stamp rows with the sync run that saw them, without counting as a change (updated_at kept)."""
    if run_id is None:
        return
    stale = or_(table.c.last_seen_run_id.is_(None), table.c.last_seen_run_id != run_id)
    for part in chunks(sorted(set(ids))):
        session.execute(
            update(table)
            .where(table.c.id.in_(part), stale)
            .values(last_seen_run_id=run_id, updated_at=table.c.updated_at)
        )


def refresh_planner_stats(session: Session, tables: Sequence[Table]) -> None:
    """ANALYZE on PostgreSQL, so a table a sync is filling from empty keeps using its indexes.

    Until autovacuum catches up, the planner believes a fresh table is tiny and picks a sequential
    (or corp_id-prefix) scan for every page's lookup: that made a first sync of 20,000 customers
    ~5x slower. SQLite's planner does not need it.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in tables:
        session.execute(text(f'ANALYZE "{table.name}"'))
