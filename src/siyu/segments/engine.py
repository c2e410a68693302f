"""Per-corp roaring bitmaps over the dense Customer.id, and rules evaluated as bitmap algebra.

Families (each a dict key → BitMap, built with one streamed query in key, id order):
  universe       every customer of the corp
  active         customers with an active follow
  followed       customers with any follow (so "lost" = followed − active, exactly)
  tag[t]         customers with an active follow carrying tag t
  employee[e]    customers with an active follow by employee e (our Employee.id)
  channel[c]     customers with a follow (any status) attributed to channel c
  gender[g], ctype[t]

Conditions without an index (corp_name, added, in_group, tags on one employee's follow) run as SQL
returning ids, intersected with the universe so a stale engine stays self-consistent. Writers call
`mark_dirty(corp_id, customer_ids)`; `engine_for` refreshes those customers before answering.
Customer ids must fit in 32 bits (BitMap).
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import reduce

from pyroaring import BitMap
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from siyu.contacts.models import Customer, Follow
from siyu.segments import sql as rule_sql
from siyu.segments.rules import (
    And,
    CondChannel,
    CondCustomerType,
    CondFollowStatus,
    CondGender,
    Condition,
    CondOwner,
    CondTags,
    Node,
    Not,
    Or,
    Rule,
)
from siyu.tags.models import FollowTag

FAMILIES = ("tag", "employee", "channel", "gender", "ctype")
_CHUNK = 500  # ids per IN (...) when refreshing a batch
_STREAM = 10_000


@dataclass(frozen=True)
class Difference:
    """A bitmap whose live content differs from the database: ids only live, ids only in the database."""

    family: str
    key: int | None
    only_live: tuple[int, ...]
    only_db: tuple[int, ...]


class BitmapEngine:
    """The bitmaps of one corp. Thread-safe: evaluation and refresh hold the same lock."""

    def __init__(self, corp_id: int) -> None:
        self.corp_id = corp_id
        self.universe = BitMap()
        self.active = BitMap()
        self.followed = BitMap()
        self.families: dict[str, dict[int, BitMap]] = {name: {} for name in FAMILIES}
        self._lock = threading.RLock()

    # ---- building -------------------------------------------------------------------------------

    @classmethod
    def build(cls, session: Session, corp_id: int) -> BitmapEngine:
        eng = cls(corp_id)
        eng.universe = _single(session, select(Customer.id).where(Customer.corp_id == corp_id).order_by(Customer.id))
        follows = select(Follow.customer_id).where(Follow.corp_id == corp_id)
        eng.followed = _single(session, follows.distinct().order_by(Follow.customer_id))
        eng.active = _single(
            session, follows.where(Follow.status == rule_sql.ACTIVE).distinct().order_by(Follow.customer_id)
        )
        for name, stmt in _family_queries(corp_id).items():
            eng.families[name] = _keyed(session, stmt)
        return eng

    def refresh(self, session: Session, customer_ids: Iterable[int]) -> None:
        """Recompute these customers' membership in every bitmap from the database (a few queries per 500)."""
        ids = BitMap(customer_ids)
        for chunk in _chunks(ids):
            self._refresh_chunk(session, chunk)

    def _refresh_chunk(self, session: Session, chunk: list[int]) -> None:
        corp_id = self.corp_id
        stmt_universe = select(Customer.id).where(Customer.corp_id == corp_id, Customer.id.in_(chunk))
        follows = select(Follow.customer_id).where(Follow.corp_id == corp_id, Follow.customer_id.in_(chunk))
        fresh_universe = BitMap(session.scalars(stmt_universe))
        fresh_followed = BitMap(session.scalars(follows))
        fresh_active = BitMap(session.scalars(follows.where(Follow.status == rule_sql.ACTIVE)))
        fresh: dict[str, dict[int, BitMap]] = {}
        for name, stmt in _family_queries(corp_id, chunk).items():
            fresh[name] = _keyed(session, stmt)
        removed = BitMap(chunk)
        with self._lock:
            for bm, new in ((self.universe, fresh_universe), (self.followed, fresh_followed)):
                bm.difference_update(removed)
                bm.update(new)
            self.active.difference_update(removed)
            self.active.update(fresh_active)
            for name, family in self.families.items():
                for key in list(family):
                    family[key].difference_update(removed)
                    if not family[key] and key not in fresh[name]:
                        del family[key]
                for key, bm in fresh[name].items():
                    family.setdefault(key, BitMap()).update(bm)

    def check(self, session: Session) -> list[Difference]:
        """Rebuild from the database and list every bitmap that differs from the live one."""
        db = BitmapEngine.build(session, self.corp_id)
        out: list[Difference] = []
        with self._lock:
            for name in ("universe", "active", "followed"):
                _diff(out, name, None, getattr(self, name), getattr(db, name))
            for name in FAMILIES:
                live, truth = self.families[name], db.families[name]
                for key in sorted(set(live) | set(truth)):
                    _diff(out, name, key, live.get(key, BitMap()), truth.get(key, BitMap()))
        return out

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
        return isinstance(node, CondGender | CondCustomerType | CondChannel | CondOwner | CondFollowStatus) or (
            isinstance(node, CondTags) and node.employee is None
        )

    def _condition(self, session: Session, cond: Condition) -> BitMap:
        if isinstance(cond, CondTags) and cond.employee is None:
            bitmaps = [self.families["tag"].get(t, BitMap()) for t in cond.tag_ids]
            if cond.mode == "all":
                return reduce(lambda a, b: a & b, bitmaps[1:], BitMap(bitmaps[0]))
            union = BitMap.union(*bitmaps) if len(bitmaps) > 1 else BitMap(bitmaps[0])
            return union if cond.mode == "any" else self.universe - union
        if isinstance(cond, CondGender):
            return self._union("gender", cond.values)
        if isinstance(cond, CondCustomerType):
            return self._union("ctype", cond.values)
        if isinstance(cond, CondOwner):
            return self._union("employee", self._owner_employees(session, cond))
        if isinstance(cond, CondChannel):
            channel_ids = session.scalars(rule_sql.channel_ids_select(self.corp_id, cond)).all()
            return self._union("channel", channel_ids)
        if isinstance(cond, CondFollowStatus):
            return BitMap(self.active) if cond.status == "active" else self.followed - self.active
        return self._sql_ids(session, rule_sql.condition_clause(session, self.corp_id, cond))

    def _owner_employees(self, session: Session, cond: CondOwner) -> set[int]:
        ids: set[int] = set()
        if cond.employees:
            ids.update(session.scalars(rule_sql.employee_ids_select(self.corp_id, cond.employees)))
        if cond.departments:
            ids |= rule_sql.department_employee_ids(session, self.corp_id, cond.departments)
        return ids

    def _union(self, family: str, keys: Iterable[int]) -> BitMap:
        bitmaps = [self.families[family][k] for k in keys if k in self.families[family]]
        return BitMap.union(*bitmaps) if len(bitmaps) > 1 else BitMap(bitmaps[0]) if bitmaps else BitMap()

    def _sql_ids(self, session: Session, clause: ColumnElement[bool]) -> BitMap:
        stmt = select(Customer.id).where(Customer.corp_id == self.corp_id, clause).order_by(Customer.id)
        return _single(session, stmt) & self.universe


# ---- queries and building helpers ---------------------------------------------------------------


def _family_queries(corp_id: int, customer_ids: list[int] | None = None) -> dict[str, Select[tuple[int, int]]]:
    """(key, customer id) pairs per family, distinct and in key, id order; limited to customer_ids if given."""
    f_active = [Follow.corp_id == corp_id, Follow.status == rule_sql.ACTIVE]
    f_any = [Follow.corp_id == corp_id, Follow.channel_id.is_not(None)]
    c_where = [Customer.corp_id == corp_id]
    if customer_ids is not None:
        f_active.append(Follow.customer_id.in_(customer_ids))
        f_any.append(Follow.customer_id.in_(customer_ids))
        c_where.append(Customer.id.in_(customer_ids))
    tag = (
        select(FollowTag.tag_id, Follow.customer_id)
        .join(Follow, Follow.id == FollowTag.follow_id)
        .where(*f_active)
        .distinct()
        .order_by(FollowTag.tag_id, Follow.customer_id)
    )
    employee = (
        select(Follow.employee_id, Follow.customer_id).where(*f_active).order_by(Follow.employee_id, Follow.customer_id)
    )
    channel = (
        select(Follow.channel_id, Follow.customer_id)
        .where(*f_any)
        .distinct()
        .order_by(Follow.channel_id, Follow.customer_id)
    )
    gender = select(Customer.gender, Customer.id).where(*c_where).order_by(Customer.gender, Customer.id)
    ctype = select(Customer.type, Customer.id).where(*c_where).order_by(Customer.type, Customer.id)
    return {"tag": tag, "employee": employee, "channel": channel, "gender": gender, "ctype": ctype}  # type: ignore[dict-item]


def _stream(session: Session, stmt: Select[tuple[int, ...]]) -> Iterator[tuple[int, ...]]:
    result = session.execute(stmt.execution_options(yield_per=_STREAM))
    for partition in result.partitions():
        yield from partition  # type: ignore[misc]


def _single(session: Session, stmt: Select[tuple[int]]) -> BitMap:
    """A BitMap from a query of ids in ascending order (built from a sorted array, not id by id)."""
    ids = array("I")
    for (customer_id,) in _stream(session, stmt):  # type: ignore[arg-type]
        ids.append(customer_id)
    return BitMap(ids)


def _keyed(session: Session, stmt: Select[tuple[int, int]]) -> dict[int, BitMap]:
    """{key: BitMap} from (key, id) rows in key, id order."""
    out: dict[int, BitMap] = {}
    current: int | None = None
    ids = array("I")
    for key, customer_id in _stream(session, stmt):  # type: ignore[arg-type,misc]
        if key != current:
            if current is not None:
                out[current] = BitMap(ids)
            current, ids = key, array("I")
        ids.append(customer_id)
    if current is not None:
        out[current] = BitMap(ids)
    return out


def _chunks(ids: BitMap) -> Iterator[list[int]]:
    values = ids.to_array() if ids else array("I")
    for start in range(0, len(values), _CHUNK):
        yield list(values[start : start + _CHUNK])


def _diff(out: list[Difference], family: str, key: int | None, live: BitMap, truth: BitMap) -> None:
    if live != truth:
        out.append(Difference(family, key, tuple(live - truth), tuple(truth - live)))


# ---- process-wide registry ----------------------------------------------------------------------

_registry: dict[int, BitmapEngine] = {}
_dirty: dict[int, BitMap] = {}
_building: set[int] = set()
_registry_lock = threading.Lock()


def engine_for(session: Session, corp_id: int) -> BitmapEngine:
    """The corp's engine, built on first use, with any customers marked dirty refreshed first."""
    with _registry_lock:
        eng = _registry.get(corp_id)
        pending = _dirty.pop(corp_id, None)
        if eng is None:
            _building.add(corp_id)
    if eng is None:
        try:
            built = BitmapEngine.build(session, corp_id)
        finally:
            with _registry_lock:
                _building.discard(corp_id)
        with _registry_lock:
            eng = _registry.setdefault(corp_id, built)
            # changes marked while building may or may not be in the build: refresh them
            pending = _dirty.pop(corp_id, None)
    if pending:
        eng.refresh(session, pending)
    return eng


def mark_dirty(corp_id: int, customer_ids: Iterable[int]) -> None:
    """Note customers whose rows changed; cheap, call it from any writer (after commit is best)."""
    with _registry_lock:
        if corp_id in _registry or corp_id in _building:
            _dirty.setdefault(corp_id, BitMap()).update(customer_ids)


def refresh_dirty(session: Session) -> int:
    """Refresh every marked customer in the built engines; returns how many were refreshed."""
    with _registry_lock:
        pending = dict(_dirty)
        _dirty.clear()
    done = 0
    for corp_id, ids in pending.items():
        eng = _registry.get(corp_id)
        if eng is not None:
            eng.refresh(session, ids)
            done += len(ids)
    return done


def drop_engine(corp_id: int | None = None) -> None:
    """Forget one corp's engine (or all): the next use rebuilds from the database."""
    with _registry_lock:
        if corp_id is None:
            _registry.clear()
            _dirty.clear()
        else:
            _registry.pop(corp_id, None)
            _dirty.pop(corp_id, None)
