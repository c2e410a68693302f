"""Per-corp roaring bitmaps over the dense Customer.id, and rules evaluated as bitmap algebra.

Single bitmaps: universe (every customer of the corp), active (an active follow), followed (any follow,
so "lost" = followed − active exactly), grouped (a member of any customer group), opted_out.
Families (key → BitMap):
  tag[t]         customers with an active follow carrying tag t
  employee[e]    customers with an active follow by employee e (our Employee.id)
  channel[c]     customers with a follow (any status) attributed to channel c
  gender[g], ctype[t]
  group[g]       customers who are members of group_chat g
  sent_day[d]    customers whose last broadcast received (status sent) was on corp-local day d (ordinal)

Conditions without an index (corp name, added date, custom fields, tags on one employee's follow) run
as SQL returning ids, intersected with the universe so a stale engine stays self-consistent.

Freshness across processes: every engine knows the `segment_index_version` it reflects. `engine_for`
reads the corp's current version (one primary-key lookup) and, when it moved, applies the
`segment_change` rows in between by refreshing just those customers (`catch_up`); a gap (pruned
rows), a whole-corp mark or a very long backlog rebuilds instead. Writers only `mark_dirty`
(`siyu.segments.changes`). Customer ids must fit in 32 bits (BitMap).
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import reduce
from typing import Any

from pyroaring import BitMap
from sqlalchemy import ARRAY, BigInteger, ColumnElement, Select, any_, bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from siyu.broadcasts.models import IS_SENT, BroadcastRecipient
from siyu.compliance.models import OptOut
from siyu.contacts.models import Customer, Follow
from siyu.core import db as core_db
from siyu.groups.models import GroupChat, GroupMember
from siyu.segments import changes
from siyu.segments import sql as rule_sql
from siyu.segments.changes import mark_corp_dirty, mark_dirty  # noqa: F401  (re-exported for writers)
from siyu.segments.models import SegmentChange
from siyu.segments.rules import (
    And,
    CondChannel,
    CondCustomerType,
    CondFollowStatus,
    CondGender,
    CondInGroup,
    Condition,
    CondLastBroadcast,
    CondOptedOut,
    CondOwner,
    CondTags,
    Node,
    Not,
    Or,
    Rule,
)
from siyu.tags.models import FollowTag

log = logging.getLogger(__name__)

SINGLES = ("universe", "active", "followed", "grouped", "opted_out")
FAMILIES = ("tag", "employee", "channel", "gender", "ctype", "group", "sent_day")
_CHUNK = 1000  # ids per IN (...) when refreshing a batch
BUILD_RANGE = 2_000_000  # customer ids per build query: bounds the ids held in one answer
# A backlog longer than this is cheaper to rebuild than to replay customer by customer.
CATCH_UP_LIMIT = 200_000


@dataclass(frozen=True)
class Difference:
    """A bitmap whose live content differs from the database: ids only live, ids only in the database."""

    family: str
    key: int | None
    only_live: tuple[int, ...]
    only_db: tuple[int, ...]


@dataclass
class _Fresh:
    """What the database says about one chunk of customers."""

    singles: dict[str, BitMap] = field(default_factory=lambda: {name: BitMap() for name in SINGLES})
    families: dict[str, dict[int, BitMap]] = field(default_factory=lambda: {name: {} for name in FAMILIES})

    def add(self, family: str, key: int, customer_id: int) -> None:
        self.families[family].setdefault(key, BitMap()).add(customer_id)


class BitmapEngine:
    """The bitmaps of one corp. Thread-safe: evaluation and refresh hold the same lock."""

    def __init__(self, corp_id: int) -> None:
        self.corp_id = corp_id
        self.singles: dict[str, BitMap] = {name: BitMap() for name in SINGLES}
        self.families: dict[str, dict[int, BitMap]] = {name: {} for name in FAMILIES}
        self.version = 0  # the segment_index_version this engine reflects (and possibly a little more)
        self.built_at = time.monotonic()
        self.refreshed = 0  # customers refreshed since the build (catch-ups)
        self._lock = threading.RLock()

    @property
    def universe(self) -> BitMap:
        return self.singles["universe"]

    # ---- building -------------------------------------------------------------------------------

    @classmethod
    def build(cls, session: Session, corp_id: int) -> BitmapEngine:
        """Everything from the database (the version is read first, so nothing committed after it is lost).

        Each bitmap arrives aggregated by the database (array_agg / group_concat, one cell per key), a
        range of BUILD_RANGE customer ids at a time: no sort, no row per customer through Python.
        """
        eng = cls(corp_id)
        eng.version = changes.current_version(session, corp_id)
        conn = session.connection()
        for lo, hi in _id_ranges(session, corp_id):
            for name, stmt in _single_queries(session, corp_id, lo, hi).items():
                eng.singles[name].update(_bitmap(conn.execute(stmt).scalar()))
            for name, stmt in _family_queries(session, corp_id, lo, hi).items():
                family = eng.families[name]
                for key, cell in conn.execute(stmt):
                    family.setdefault(_ordinal(key) if name == "sent_day" else key, BitMap()).update(_bitmap(cell))
        return eng

    def refresh(self, session: Session, customer_ids: Iterable[int]) -> None:
        """Recompute these customers' membership in every bitmap from the database (six queries per 1,000)."""
        ids = customer_ids if isinstance(customer_ids, BitMap) else BitMap(customer_ids)
        for chunk in _chunks(ids):
            fresh = _read_chunk(session, self.corp_id, chunk)
            self._apply(BitMap(chunk), fresh)
        self.refreshed += len(ids)

    def _apply(self, removed: BitMap, fresh: _Fresh) -> None:
        with self._lock:
            for name, bm in self.singles.items():
                bm.difference_update(removed)
                bm.update(fresh.singles[name])
            for name, family in self.families.items():
                for key in [k for k, bm in family.items() if bm.intersect(removed)]:
                    family[key].difference_update(removed)
                    if not family[key]:
                        del family[key]
                for key, bm in fresh.families[name].items():
                    family.setdefault(key, BitMap()).update(bm)

    def catch_up(self, session: Session) -> bool:
        """Apply the changes committed since `version`; False when only a rebuild can (gap, whole corp, backlog)."""
        current = changes.current_version(session, self.corp_id)
        if current == self.version:
            return True
        if current < self.version:
            return False
        rows = session.connection().execute(_CHANGES_SINCE, {"corp": self.corp_id, "after": self.version}).all()
        if not rows or rows[0].version != self.version + 1 or len(rows) > CATCH_UP_LIMIT:
            return False
        if any(row.customer_id is None for row in rows):
            return False
        self.refresh(session, BitMap(row.customer_id for row in rows))
        self.version = rows[-1].version  # versions commit in order: everything up to it is applied
        return True

    def check(self, session: Session) -> list[Difference]:
        """Rebuild from the database and list every bitmap that differs from the live one."""
        return self.compare(BitmapEngine.build(session, self.corp_id))

    def compare(self, truth: BitmapEngine) -> list[Difference]:
        out: list[Difference] = []
        with self._lock:
            for name in SINGLES:
                _diff(out, name, None, self.singles[name], truth.singles[name])
            for name in FAMILIES:
                live, db = self.families[name], truth.families[name]
                for key in sorted(set(live) | set(db)):
                    _diff(out, name, key, live.get(key, BitMap()), db.get(key, BitMap()))
        return out

    def size_in_bytes(self) -> int:
        """The serialized size of every bitmap (what the engine holds, give or take Python's overhead)."""
        with self._lock:
            bitmaps = [*self.singles.values(), *(bm for f in self.families.values() for bm in f.values())]
            return sum(len(bm.serialize()) for bm in bitmaps)

    # ---- evaluating -----------------------------------------------------------------------------

    def evaluate(self, session: Session, rule: Rule | Node) -> BitMap:
        """The ids of the corp's customers matching the rule (a new BitMap the caller may keep)."""
        root = rule.root if isinstance(rule, Rule) else rule
        with self._lock:
            return self._node(session, root)

    def count(self, session: Session, rule: Rule | Node) -> int:
        return len(self.evaluate(session, rule))

    def _node(self, session: Session, node: Node) -> BitMap:
        if isinstance(node, And):
            # indexed children first: cheap, and they shrink the result before SQL fallbacks
            items = sorted(node.items, key=lambda item: not self._indexed(item))
            result = self._node(session, items[0])
            for item in items[1:]:
                if not result:
                    break
                result &= self._node(session, item)
            return result
        if isinstance(node, Or):
            return BitMap.union(*(self._node(session, item) for item in node.items)) & self.universe
        if isinstance(node, Not):
            return self.universe - self._node(session, node.item)
        return self._condition(session, node)

    def _indexed(self, node: Node) -> bool:
        if isinstance(node, And | Or):
            return all(self._indexed(item) for item in node.items)
        if isinstance(node, Not):
            return self._indexed(node.item)
        indexed = (CondGender, CondCustomerType, CondChannel, CondOwner, CondFollowStatus, CondInGroup, CondOptedOut)
        return isinstance(node, (*indexed, CondLastBroadcast)) or (isinstance(node, CondTags) and node.employee is None)

    def _condition(self, session: Session, cond: Condition) -> BitMap:
        handler = _HANDLERS.get(type(cond))
        if handler is not None and not (isinstance(cond, CondTags) and cond.employee is not None):
            return handler(self, session, cond)
        return self._sql_ids(session, rule_sql.condition_clause(session, self.corp_id, cond))

    def _tags(self, _session: Session, cond: CondTags) -> BitMap:
        bitmaps = [self.families["tag"].get(t, BitMap()) for t in cond.tag_ids]
        if cond.mode == "all":
            return reduce(lambda a, b: a & b, bitmaps[1:], BitMap(bitmaps[0]))
        union = BitMap.union(*bitmaps) if len(bitmaps) > 1 else BitMap(bitmaps[0])
        return union if cond.mode == "any" else self.universe - union

    def _gender(self, _session: Session, cond: CondGender) -> BitMap:
        return self._union("gender", cond.values)

    def _ctype(self, _session: Session, cond: CondCustomerType) -> BitMap:
        return self._union("ctype", cond.values)

    def _owner(self, session: Session, cond: CondOwner) -> BitMap:
        ids: set[int] = set()
        if cond.employees:
            ids.update(session.scalars(rule_sql.employee_ids_select(self.corp_id, cond.employees)))
        if cond.departments:
            ids |= rule_sql.department_employee_ids(session, self.corp_id, cond.departments)
        return self._union("employee", ids)

    def _channel(self, session: Session, cond: CondChannel) -> BitMap:
        return self._union("channel", session.scalars(rule_sql.channel_ids_select(self.corp_id, cond)).all())

    def _follow_status(self, _session: Session, cond: CondFollowStatus) -> BitMap:
        active = self.singles["active"]
        return BitMap(active) if cond.status == "active" else self.singles["followed"] - active

    def _in_group(self, session: Session, cond: CondInGroup) -> BitMap:
        if not cond.chat_ids:
            return BitMap(self.singles["grouped"])
        chats = select(GroupChat.id).where(GroupChat.corp_id == self.corp_id, GroupChat.chat_id.in_(cond.chat_ids))
        return self._union("group", session.scalars(chats).all())

    def _opted_out(self, _session: Session, cond: CondOptedOut) -> BitMap:
        opted = self.singles["opted_out"]
        return BitMap(opted) if cond.value else self.universe - opted

    def _last_broadcast(self, session: Session, cond: CondLastBroadcast) -> BitMap:
        days = self.families["sent_day"]
        if cond.never:
            return self.universe - BitMap.union(*days.values()) if days else BitMap(self.universe)
        lo, hi = rule_sql.last_broadcast_range(session, self.corp_id, cond)
        low, high = (lo.toordinal() if lo else 0), (hi.toordinal() if hi else date.max.toordinal())
        return self._union("sent_day", [d for d in days if low <= d <= high])

    def _union(self, family: str, keys: Iterable[int]) -> BitMap:
        bitmaps = [self.families[family][k] for k in keys if k in self.families[family]]
        return BitMap.union(*bitmaps) if len(bitmaps) > 1 else BitMap(bitmaps[0]) if bitmaps else BitMap()

    def _sql_ids(self, session: Session, clause: ColumnElement[bool]) -> BitMap:
        stmt = select(_agg(session, Customer.id)).where(Customer.corp_id == self.corp_id, clause)
        return _bitmap(session.connection().execute(stmt).scalar()) & self.universe


_HANDLERS: dict[type, Callable[[BitmapEngine, Session, Condition], BitMap]] = {
    CondTags: BitmapEngine._tags,  # type: ignore[dict-item]
    CondGender: BitmapEngine._gender,  # type: ignore[dict-item]
    CondCustomerType: BitmapEngine._ctype,  # type: ignore[dict-item]
    CondOwner: BitmapEngine._owner,  # type: ignore[dict-item]
    CondChannel: BitmapEngine._channel,  # type: ignore[dict-item]
    CondFollowStatus: BitmapEngine._follow_status,  # type: ignore[dict-item]
    CondInGroup: BitmapEngine._in_group,  # type: ignore[dict-item]
    CondOptedOut: BitmapEngine._opted_out,  # type: ignore[dict-item]
    CondLastBroadcast: BitmapEngine._last_broadcast,  # type: ignore[dict-item]
}


# ---- queries and building helpers ---------------------------------------------------------------


def _agg(session: Session, column: Any) -> Any:
    """Every value of the column in one cell: array_agg on PostgreSQL, group_concat on SQLite (see _bitmap)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.array_agg(column)
    return func.group_concat(column)


def _bitmap(cell: object) -> BitMap:
    if not cell:
        return BitMap()
    if isinstance(cell, str):
        return BitMap(array("I", map(int, cell.split(","))))
    return BitMap(cell)  # type: ignore[arg-type]


def _id_ranges(session: Session, corp_id: int) -> list[tuple[int, int]]:
    """The corp's customer ids in [lo, hi] ranges of BUILD_RANGE: what one build query aggregates at most."""
    lo, hi = session.execute(
        select(func.min(Customer.id), func.max(Customer.id)).where(Customer.corp_id == corp_id)
    ).one()
    if lo is None:
        return []
    return [(start, min(start + BUILD_RANGE - 1, hi)) for start in range(lo, hi + 1, BUILD_RANGE)]


def _single_queries(session: Session, corp_id: int, lo: int, hi: int) -> dict[str, Select[tuple[Any]]]:
    """One cell of ids per single bitmap, for the customers with ids in [lo, hi]."""
    follows = [Follow.corp_id == corp_id, Follow.customer_id.between(lo, hi)]
    return {
        "universe": select(_agg(session, Customer.id)).where(Customer.corp_id == corp_id, Customer.id.between(lo, hi)),
        "followed": select(_agg(session, Follow.customer_id)).where(*follows),
        "active": select(_agg(session, Follow.customer_id)).where(*follows, Follow.status == rule_sql.ACTIVE),
        "grouped": select(_agg(session, GroupMember.customer_id)).where(
            GroupMember.corp_id == corp_id, GroupMember.customer_id.between(lo, hi)
        ),
        "opted_out": select(_agg(session, OptOut.customer_id)).where(
            OptOut.corp_id == corp_id, OptOut.customer_id.between(lo, hi)
        ),
    }


def _family_queries(session: Session, corp_id: int, lo: int, hi: int) -> dict[str, Select[tuple[Any, Any]]]:
    """(key, cell of ids) per key of each family, for the customers with ids in [lo, hi]."""
    active = [Follow.corp_id == corp_id, Follow.status == rule_sql.ACTIVE, Follow.customer_id.between(lo, hi)]
    customers = [Customer.corp_id == corp_id, Customer.id.between(lo, hi)]
    members = [GroupMember.corp_id == corp_id, GroupMember.customer_id.between(lo, hi)]
    days = _sent_days(corp_id, between=(lo, hi)).subquery()
    return {
        "tag": select(FollowTag.tag_id, _agg(session, Follow.customer_id))
        .join(Follow, Follow.id == FollowTag.follow_id)
        .where(*active)
        .group_by(FollowTag.tag_id),
        "employee": select(Follow.employee_id, _agg(session, Follow.customer_id))
        .where(*active)
        .group_by(Follow.employee_id),
        "channel": select(Follow.channel_id, _agg(session, Follow.customer_id))
        .where(Follow.corp_id == corp_id, Follow.channel_id.is_not(None), Follow.customer_id.between(lo, hi))
        .group_by(Follow.channel_id),
        "gender": select(Customer.gender, _agg(session, Customer.id)).where(*customers).group_by(Customer.gender),
        "ctype": select(Customer.type, _agg(session, Customer.id)).where(*customers).group_by(Customer.type),
        "group": select(GroupMember.group_chat_id, _agg(session, GroupMember.customer_id))
        .where(*members)
        .group_by(GroupMember.group_chat_id),
        "sent_day": select(days.c.day, _agg(session, days.c.customer_id)).group_by(days.c.day),
    }


def _sent_days(corp_id: int, *, between: tuple[int, int]) -> Select[tuple[int, date]]:
    """(customer id, last corp-local day a broadcast reached them), for customer ids in the range."""
    stmt = select(BroadcastRecipient.customer_id, func.max(BroadcastRecipient.send_day).label("day")).where(
        BroadcastRecipient.corp_id == corp_id,
        IS_SENT,
        BroadcastRecipient.customer_id.between(*between),
        BroadcastRecipient.send_day.is_not(None),
    )
    return stmt.group_by(BroadcastRecipient.customer_id)  # type: ignore[return-value]


def _chunk_statements(postgresql: bool) -> dict[str, Select[Any]]:
    """The six per-chunk reads, built once: a refresh of a few customers is at most six round trips.

    On PostgreSQL the ids travel as one array (`= ANY(:ids)`): a thousand separate parameters cost
    more to parse and plan than the lookups themselves.
    """
    corp = bindparam("corp")
    c, f, ft, gm = Customer.__table__.c, Follow.__table__.c, FollowTag.__table__.c, GroupMember.__table__.c
    oo, br = OptOut.__table__.c, BroadcastRecipient.__table__.c

    def among(column: Any, name: str = "ids") -> ColumnElement[bool]:
        if postgresql:
            return column == any_(bindparam(name, type_=ARRAY(BigInteger)))
        return column.in_(bindparam(name, expanding=True))

    sent = [br.corp_id == corp, IS_SENT, br.send_day.is_not(None), among(br.customer_id)]
    return {
        "customers": select(c.id, c.gender, c.type).where(c.corp_id == corp, among(c.id)),
        "follows": select(f.id, f.customer_id, f.employee_id, f.channel_id, f.status).where(
            f.corp_id == corp, among(f.customer_id)
        ),
        # by the follows just read (primary-key lookups): a join lets PostgreSQL scan all of follow_tag
        "tags": select(ft.follow_id, ft.tag_id).where(among(ft.follow_id, "follow_ids")),
        "members": select(gm.group_chat_id, gm.customer_id).where(gm.corp_id == corp, among(gm.customer_id)),
        "opted_out": select(oo.customer_id).where(oo.corp_id == corp, among(oo.customer_id)),
        "sent_days": select(br.customer_id, func.max(br.send_day)).where(*sent).group_by(br.customer_id),
    }


_CHUNK_SQL = {True: _chunk_statements(postgresql=True), False: _chunk_statements(postgresql=False)}
_CHANGES_SINCE = (
    select(SegmentChange.__table__.c.version, SegmentChange.__table__.c.customer_id)
    .where(
        SegmentChange.__table__.c.corp_id == bindparam("corp"), SegmentChange.__table__.c.version > bindparam("after")
    )
    .order_by(SegmentChange.__table__.c.version)
    .limit(CATCH_UP_LIMIT + 1)
)


def _read_chunk(session: Session, corp_id: int, chunk: list[int]) -> _Fresh:
    fresh = _Fresh()
    s, add = fresh.singles, fresh.add
    conn = session.connection()
    params = {"corp": corp_id, "ids": chunk}
    statements = _CHUNK_SQL[conn.dialect.name == "postgresql"]

    def rows(name: str) -> Any:
        return conn.execute(statements[name], params)

    for customer_id, gender, ctype in rows("customers"):
        s["universe"].add(customer_id)
        add("gender", gender, customer_id)
        add("ctype", ctype, customer_id)
    active_follows: dict[int, int] = {}
    for follow_id, customer_id, employee_id, channel_id, status in rows("follows"):
        s["followed"].add(customer_id)
        if status == rule_sql.ACTIVE:
            s["active"].add(customer_id)
            add("employee", employee_id, customer_id)
            active_follows[follow_id] = customer_id
        if channel_id is not None:
            add("channel", channel_id, customer_id)
    if active_follows:
        tags = conn.execute(statements["tags"], {"follow_ids": list(active_follows)})
        for follow_id, tag_id in tags:
            add("tag", tag_id, active_follows[follow_id])
    for chat_pk, customer_id in rows("members"):
        s["grouped"].add(customer_id)
        add("group", chat_pk, customer_id)
    s["opted_out"].update(customer_id for (customer_id,) in rows("opted_out"))
    for customer_id, day in rows("sent_days"):
        add("sent_day", _ordinal(day), customer_id)
    return fresh


def _ordinal(day: date | str) -> int:
    return (day if isinstance(day, date) else date.fromisoformat(str(day))).toordinal()


def _chunks(ids: BitMap) -> Iterator[list[int]]:
    values = ids.to_array() if ids else array("I")
    for start in range(0, len(values), _CHUNK):
        yield list(values[start : start + _CHUNK])


def _diff(out: list[Difference], family: str, key: int | None, live: BitMap, truth: BitMap) -> None:
    if live != truth:
        out.append(Difference(family, key, tuple(live - truth), tuple(truth - live)))


# ---- process-wide registry ----------------------------------------------------------------------

_registry: dict[int, BitmapEngine] = {}
_corp_locks: dict[int, threading.Lock] = {}
_registry_lock = threading.Lock()


def _lock_for(corp_id: int) -> threading.Lock:
    with _registry_lock:
        return _corp_locks.setdefault(corp_id, threading.Lock())


def engine_for(session: Session, corp_id: int) -> BitmapEngine:
    """The corp's engine, caught up with every change committed before this call (built on first use)."""
    with _lock_for(corp_id):
        eng = _registry.get(corp_id)
        if eng is not None and eng.catch_up(session):
            return eng
        if eng is not None:
            log.info("segment index of corp %s rebuilds (whole-corp change, gap or long backlog)", corp_id)
        eng = BitmapEngine.build(session, corp_id)
        with _registry_lock:
            _registry[corp_id] = eng
    if _refresher.enabled:
        _refresher.start()
    return eng


def loaded_corps() -> list[int]:
    with _registry_lock:
        return sorted(_registry)


def loaded_engine(corp_id: int) -> BitmapEngine | None:
    with _registry_lock:
        return _registry.get(corp_id)


def replace_engine(eng: BitmapEngine) -> None:
    with _registry_lock:
        _registry[eng.corp_id] = eng


def drop_engine(corp_id: int | None = None) -> None:
    """Forget one corp's engine (or all): the next use rebuilds from the database."""
    with _registry_lock:
        if corp_id is None:
            _registry.clear()
        else:
            _registry.pop(corp_id, None)


# Another database's corp 1 is not this one's: a process pointed elsewhere (tests, the demo) starts afresh.
core_db.on_database_switch(drop_engine)


def refresh_loaded(factory: sessionmaker[Session]) -> dict[str, int]:
    """Catch every loaded engine up (one transaction per corp): corps seen, rebuilt, customers refreshed."""
    out = {"corps": 0, "rebuilt": 0, "customers": 0}
    for corp_id in loaded_corps():
        if _refresher.stopping():
            break
        before = loaded_engine(corp_id)
        start = before.refreshed if before is not None else 0
        with factory() as session:
            eng = engine_for(session, corp_id)
        out["corps"] += 1
        if eng is before:
            out["customers"] += eng.refreshed - start
        else:
            out["rebuilt"] += 1
    return out


class _Refresher:
    """A daemon thread per process that keeps its loaded engines caught up every few seconds.

    Counts are exact without it (engine_for catches up first); it keeps that catch-up short, so
    a count right after a burst of changes (a sync page, a campaign's results) stays fast.
    """

    def __init__(self) -> None:
        self.enabled = False
        self.interval = 5.0
        self.factory: sessionmaker[Session] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def enable(self, factory: sessionmaker[Session], interval: float = 5.0) -> None:
        self.enabled, self.factory, self.interval = True, factory, interval
        if loaded_corps():
            self.start()

    def start(self) -> None:
        with _registry_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="segment-refresher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self.enabled = False
        self._stop.set()

    def stopping(self) -> bool:
        return self._stop.is_set() and threading.current_thread() is self._thread

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.factory is None:
                continue
            try:
                refresh_loaded(self.factory)
            except Exception:  # a bad moment (database restarting) must not end the thread
                log.exception("refreshing the segment indexes failed")


_refresher = _Refresher()


def enable_background_refresh(factory: sessionmaker[Session], interval: float = 5.0) -> None:
    """Start keeping this process's engines caught up every `interval` seconds (server and worker)."""
    _refresher.enable(factory, interval)


def disable_background_refresh() -> None:
    _refresher.stop()
