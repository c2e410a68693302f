"""Benchmark (f): planning a 1M-recipient broadcast — resolve + policy + chunking — against a plain INSERT.

Loads a synthetic corp into a fresh temp schema with set-based SQL: `--customers` customers (default
1,000,000), `--employees` employees (1,000), one active follow per customer plus a second for 30% (2% of
customers have only an ended follow), 5 paused employees, 1% opted out, and the slots of earlier
broadcasts: 20 enterprise broadcasts on the last 20 days reaching 10% each (1 in 7 of those not sent),
a personal one two days ago (11%), and one planned for today (5%). The corp keeps the default policy
(WeCom's days-in-month, 2 per 7 days of its own, quiet hours 21:00–08:00); the plan runs at 10:00.

Timed, in `--rounds` alternating rounds, each in its own transaction including COMMIT:
  baseline   INSERT INTO broadcast_recipient … SELECT … FROM customer — one row per customer, nothing decided
  snapshot   do_plan of a broadcast whose audience is a snapshot of every customer (bitmap → COPY)
  rule       do_plan of a broadcast whose audience is a segment rule matching every customer (segment engine,
             warm; its one-time build is reported apart)
  personal   a personal broadcast of 200 of one employee's customers in the same corp, twice: its caps read
             through the customer index (what the planner does for a few candidates) and through the
             window's broadcasts whole (what it does for a large audience) — the same outcome, timed apart
Each round's rows are deleted (and the table vacuumed) before the next, untimed, so rounds see the same data.

Checks every plan (any size): candidates = customers; eligible + excluded = candidates; chunk sizes add up
to the eligible and none exceeds 10,000; no pending recipient is opted out, from a paused employee, without
an active follow with its sender, or over one enterprise message today.

    python -m bench.broadcast_plan --pg postgresql+psycopg://postgres@127.0.0.1:5432/test
    python -m bench.broadcast_plan --customers 3000 --rounds 1          # tiny, SQLite
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bench.common import bench_database, machine, peak_rss_mib, print_table, use_database, write_json

GOAL_SECONDS = 10.0
ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=ZONE).astimezone(UTC)
TODAY = date(2026, 12, 3)
ALL_RULE = {"version": 1, "rule": {"or": [{"follow_status": "active"}, {"follow_status": "lost"}]}}


# --- loading -----------------------------------------------------------------------------------------


def _series(engine: sa.Engine) -> str:
    """A FROM item yielding g = 1 … :n on either backend."""
    if engine.dialect.name == "postgresql":
        return "generate_series(1, :n) AS s(g)"
    return "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n) SELECT g FROM s) AS s"


def load(engine: sa.Engine, customers: int, employees: int) -> int:
    json_empty = "'[]'::json" if engine.dialect.name == "postgresql" else "'[]'"
    series = _series(engine)
    p = {"now": NOW, "n": customers}
    with engine.begin() as conn:
        corp_id = _corp(conn)
        p["corp"] = corp_id
        conn.execute(
            sa.text(
                "INSERT INTO employee (corp_id, userid, name, department_ids, main_department, position, gender,"
                f" status, is_follow_user, updated_at) SELECT :corp, 'u' || g, '员工' || g, {json_empty}, 1, '', 0,"
                f" 'active', true, :now FROM {series}"
            ),
            {**p, "n": employees},
        )
        conn.execute(
            sa.text(
                "INSERT INTO customer (corp_id, external_userid, name, type, avatar, gender, unionid, position,"
                " corp_name, corp_full_name, added_at, created_at, updated_at)"
                f" SELECT :corp, 'wm' || g, '客户' || g, 1, '', g % 3, '', '', '', '', :now, :now, :now FROM {series}"
            ),
            p,
        )
    print(f"  {customers:,} customers", file=sys.stderr, flush=True)
    _follows(engine, corp_id, employees, json_empty)
    _compliance_state(engine, corp_id)
    _past_slots(engine, corp_id)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE"))
    return corp_id


def _corp(conn: sa.Connection) -> int:
    conn.execute(
        sa.text(
            "INSERT INTO corp (name, wecom_corpid, agent_id, api_base_url, contact_secret_enc,"
            " callback_token_enc, callback_aes_key_enc, timezone, created_at)"
            " VALUES ('bench', 'wwbench', '', 'http://127.0.0.1:9', 's', 't', 'k', 'Asia/Shanghai', :now)"
        ),
        {"now": NOW},
    )
    return int(conn.execute(sa.text("SELECT max(corp_id) FROM corp")).scalar_one())


def _follows(engine: sa.Engine, corp_id: int, employees: int, json_empty: str) -> None:
    """Everyone follows (c mod E) + 1; 30% also ((7c) mod E) + 1, added later; 2% only an ended follow."""
    columns = (
        "corp_id, employee_id, customer_id, remark, description, remark_corp_name, remark_mobiles, add_way,"
        " oper_userid, state, created_at, status, updated_at"
    )
    first = (
        f"SELECT :corp, c.id % :e + 1, c.id, '', '', '', {json_empty}, 1, '', '', :now,"
        " CASE WHEN c.id % 50 = 0 THEN 'customer_deleted_employee' ELSE 'active' END, :now"
        " FROM customer c WHERE c.corp_id = :corp"
    )
    second = (
        f"SELECT :corp, (c.id * 7 + 3) % :e + 1, c.id, '', '', '', {json_empty}, 1, '', '', :later, 'active', :now"
        " FROM customer c WHERE c.corp_id = :corp AND c.id % 10 IN (1, 2, 3) AND (c.id * 7 + 3) % :e <> c.id % :e"
    )
    with engine.begin() as conn:
        for select in (first, second):
            conn.execute(
                sa.text(f"INSERT INTO follow ({columns}) {select}"),
                {"corp": corp_id, "e": employees, "now": NOW - timedelta(days=400), "later": NOW - timedelta(days=30)},
            )
    print("  follows", file=sys.stderr, flush=True)


def _compliance_state(engine: sa.Engine, corp_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO reach_pause (corp_id, scope, target_id, reason, created_by, created_at, lifted_by)"
                " SELECT :corp, 'employee', id, 'bench', '', :now, '' FROM employee WHERE corp_id = :corp AND id <= 5"
            ),
            {"corp": corp_id, "now": NOW},
        )
        conn.execute(
            sa.text(
                "INSERT INTO opt_out (corp_id, customer_id, source, recorded_by, note, created_at)"
                " SELECT :corp, id, 'import', '', '', :now FROM customer WHERE corp_id = :corp AND id % 100 = 7"
            ),
            {"corp": corp_id, "now": NOW},
        )


def _past_slots(engine: sa.Engine, corp_id: int) -> None:
    """Earlier broadcasts' recipient rows (sent, some not sent), a personal one, and one planned for today."""
    plans = [("customer", TODAY - timedelta(days=k), f"(c.id + {k}) % 10 = 0", "sent") for k in range(1, 21)]
    plans += [
        ("personal", TODAY - timedelta(days=2), "c.id % 9 = 0", "sent"),
        ("customer", TODAY, "c.id % 20 = 3", "planned"),
    ]
    with engine.begin() as conn:
        for kind, day, where, status in plans:
            broadcast_id = _broadcast(conn, corp_id, kind, status, day)
            conn.execute(
                sa.text(
                    "INSERT INTO broadcast_recipient (corp_id, broadcast_id, position, customer_id, send_day, status,"
                    " reason, updated_at) SELECT :corp, :b, c.id, c.id, :day,"
                    f" CASE WHEN :status = 'planned' THEN 'pending' WHEN c.id % 7 = 0 THEN 'not_sent' ELSE 'sent' END,"
                    f" '', :now FROM customer c WHERE c.corp_id = :corp AND {where}"
                ),
                {"corp": corp_id, "b": broadcast_id, "day": day, "status": status, "now": NOW},
            )
    print(f"  {len(plans)} earlier broadcasts' slots", file=sys.stderr, flush=True)


def _broadcast(conn: sa.Connection, corp_id: int, kind: str, status: str, day: date | None, **extra: Any) -> int:
    from siyu.broadcasts.models import Broadcast

    values = {
        "corp_id": corp_id,
        "kind": kind,
        "name": f"bench-{kind}-{day}",
        "status": status,
        "audience": extra.get("audience", {}),
        "content": {"text": "双十二会员日，全场八折", "attachments": []},
        "sender_ids": extra.get("sender_ids", []),
        "allow_select": False,
        "send_day": day,
        "counts": {},
        "block_reason": "",
        "holdout_percent": 0,
        "created_by": "bench",
        "created_at": NOW,
    }
    return int(conn.execute(sa.insert(Broadcast).values(**values).returning(Broadcast.id)).scalar_one())


# --- the timed cases ----------------------------------------------------------------------------------


@contextmanager
def statement_times(engine: sa.Engine) -> Iterator[dict[str, float]]:
    """Seconds per kind of statement run through SQLAlchemy while inside (COPY is not among them)."""
    spent: dict[str, float] = defaultdict(float)

    def before(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
        spent[_label(statement)] += time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield spent
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)


def _label(statement: str) -> str:
    words = statement.split()
    head = " ".join(words[:3]).lower()
    for known in (
        "plan_sender",
        "plan_capped",
        "broadcast_chunk",
        "broadcast_recipient",
        "plan_candidate",
    ):
        if known in head:
            return f"{words[0].lower()} {known}"
    if words[0].upper() == "DELETE":
        return "delete previous plan"
    if words[0].upper() == "ANALYZE":
        return "analyze scratch tables"
    return "other"


def run_baseline(engine: sa.Engine, corp_id: int) -> tuple[float, int]:
    with engine.begin() as conn:
        broadcast_id = _broadcast(conn, corp_id, "customer", "planned", TODAY)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO broadcast_recipient (corp_id, broadcast_id, position, customer_id, send_day, status,"
                " reason, updated_at) SELECT :corp, :b, id, id, :day, 'pending', '', :now FROM customer"
                " WHERE corp_id = :corp"
            ),
            {"corp": corp_id, "b": broadcast_id, "day": TODAY, "now": NOW},
        )
    return time.perf_counter() - started, broadcast_id


def run_plan(
    engine: sa.Engine, corp_id: int, audience: dict[str, Any]
) -> tuple[float, int, dict[str, Any], dict[str, float]]:
    from siyu.broadcasts.planner import do_plan
    from siyu.core.db import session_scope

    with engine.begin() as conn:
        broadcast_id = _broadcast(conn, corp_id, "customer", "draft", None, audience=audience)
    with statement_times(engine) as spent:
        started = time.perf_counter()
        with session_scope() as session:
            counts = dict(do_plan(session, broadcast_id, "bench", now=NOW).counts)
        elapsed = time.perf_counter() - started
    return elapsed, broadcast_id, counts, dict(spent)


def run_personal(engine: sa.Engine, corp_id: int, employees: int, *, few: bool) -> tuple[float, dict[str, Any]]:
    """A personal broadcast of 200 of one employee's customers, its caps read through the customer index
    (`few`, what the planner does for up to FEW_CANDIDATES) or through the window's broadcasts whole."""
    from siyu.broadcasts import planner
    from siyu.broadcasts.planner import do_plan
    from siyu.core.db import session_scope

    sender = 10  # not paused (1–5 are); follows every customer c with c mod employees = 9 (see _follows)
    with engine.connect() as conn:
        ids = list(
            conn.execute(
                sa.text("SELECT id FROM customer WHERE corp_id = :c AND id % :e = :r ORDER BY id LIMIT 200"),
                {"c": corp_id, "e": employees, "r": sender - 1},
            ).scalars()
        )
        employee_id = conn.execute(
            sa.text("SELECT id FROM employee WHERE corp_id = :c AND userid = :u"), {"c": corp_id, "u": f"u{sender}"}
        ).scalar_one()
    with engine.begin() as conn:
        audience = {"customer_ids": ids}
        broadcast_id = _broadcast(conn, corp_id, "personal", "draft", None, audience=audience, sender_ids=[employee_id])
    saved = planner.FEW_CANDIDATES
    planner.FEW_CANDIDATES = saved if few else 0
    try:
        started = time.perf_counter()
        with session_scope() as session:
            counts = dict(do_plan(session, broadcast_id, "bench", now=NOW).counts)
        elapsed = time.perf_counter() - started
    finally:
        planner.FEW_CANDIDATES = saved
    drop_broadcast(engine, broadcast_id)
    return elapsed, counts


def snapshot_of_everyone(engine: sa.Engine, corp_id: int) -> int:
    from pyroaring import BitMap

    from siyu.segments.models import SegmentSnapshot

    with engine.begin() as conn:
        ids = BitMap(conn.execute(sa.text("SELECT id FROM customer WHERE corp_id = :c"), {"c": corp_id}).scalars())
        row = {"corp_id": corp_id, "name": "everyone", "rule": ALL_RULE, "rule_version": 1, "members": ids.serialize()}
        row |= {"member_count": len(ids), "created_by": "bench", "created_at": NOW}
        return int(conn.execute(sa.insert(SegmentSnapshot).values(**row).returning(SegmentSnapshot.id)).scalar_one())


def warm_engine(corp_id: int) -> tuple[float, int]:
    from siyu.core.db import session_scope
    from siyu.segments import service

    started = time.perf_counter()
    with session_scope() as session:
        n = len(service.customer_ids(session, corp_id=corp_id, rule=ALL_RULE))
    return time.perf_counter() - started, n


def drop_broadcast(engine: sa.Engine, broadcast_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM broadcast_recipient WHERE broadcast_id = :b"), {"b": broadcast_id})
        conn.execute(sa.text("DELETE FROM broadcast_chunk WHERE broadcast_id = :b"), {"b": broadcast_id})
        conn.execute(sa.text("DELETE FROM broadcast WHERE id = :b"), {"b": broadcast_id})
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE broadcast_recipient"))
            conn.execute(sa.text("VACUUM ANALYZE broadcast_chunk"))


# --- checks -------------------------------------------------------------------------------------------


def check_plan(engine: sa.Engine, corp_id: int, broadcast_id: int, counts: dict[str, Any], customers: int) -> list[str]:
    """What must hold for any plan of this data; returns the problems (empty = correct)."""
    problems = []
    if counts["candidates"] != customers:
        problems.append(f"candidates {counts['candidates']} != customers {customers}")
    if counts["eligible"] + sum(counts["excluded"].values()) != counts["candidates"]:
        problems.append("eligible + excluded != candidates")
    queries = {
        "chunk sizes add up to eligible": (
            "SELECT COALESCE(SUM(size), 0) - :eligible FROM broadcast_chunk WHERE broadcast_id = :b"
        ),
        "no chunk above 10,000": "SELECT COUNT(*) FROM broadcast_chunk WHERE broadcast_id = :b AND size > 10000",
        # with the sizes adding up to the eligible and no overlap, this also puts every pending row in a chunk
        "every chunk's range is its sender's pending rows": (
            "SELECT COUNT(*) FROM broadcast_chunk c WHERE c.broadcast_id = :b"
            " AND (c.last_position - c.first_position + 1 <> c.size OR c.size <> (SELECT COUNT(*)"
            " FROM broadcast_recipient r WHERE r.broadcast_id = c.broadcast_id"
            " AND r.position BETWEEN c.first_position AND c.last_position"
            " AND r.status = 'pending' AND r.employee_id = c.employee_id))"
        ),
        "chunk ranges overlap": (
            "SELECT COUNT(*) FROM (SELECT first_position, LAG(last_position) OVER (ORDER BY first_position) AS prev"
            " FROM broadcast_chunk WHERE broadcast_id = :b) AS c WHERE c.first_position <= c.prev"
        ),
        "nobody opted out is pending": (
            "SELECT COUNT(*) FROM broadcast_recipient r JOIN opt_out o ON o.customer_id = r.customer_id"
            " WHERE r.broadcast_id = :b AND r.status = 'pending'"
        ),
        "no paused sender": (
            "SELECT COUNT(*) FROM broadcast_recipient r JOIN reach_pause p ON p.target_id = r.employee_id"
            " AND p.scope = 'employee' WHERE r.broadcast_id = :b AND r.status = 'pending'"
        ),
        "every sender follows its customer": (
            "SELECT COUNT(*) FROM broadcast_recipient r WHERE r.broadcast_id = :b AND r.status = 'pending'"
            " AND NOT EXISTS (SELECT 1 FROM follow f WHERE f.customer_id = r.customer_id"
            " AND f.employee_id = r.employee_id AND f.status = 'active')"
        ),
        "at most one enterprise message today": (
            "SELECT COUNT(*) FROM (SELECT r.customer_id FROM broadcast_recipient r JOIN broadcast b"
            " ON b.id = r.broadcast_id WHERE r.corp_id = :corp AND r.send_day = :day AND b.kind = 'customer'"
            " AND r.status IN ('pending', 'sent') GROUP BY r.customer_id HAVING COUNT(*) > 1) AS twice"
        ),
    }
    with engine.connect() as conn:
        for what, sql in queries.items():
            bad = conn.execute(
                sa.text(sql), {"b": broadcast_id, "eligible": counts["eligible"], "corp": corp_id, "day": TODAY}
            ).scalar_one()
            if bad:
                problems.append(f"{what}: {bad}")
    return problems


# --- main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", help="PostgreSQL URL (a temp schema is created); default: SQLite in a temp dir")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--employees", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    with bench_database(args.pg) as db:
        use_database(db)
        from siyu.core.db import get_engine

        engine = get_engine()
        started = time.perf_counter()
        corp_id = load(engine, args.customers, args.employees)
        load_seconds = time.perf_counter() - started
        snapshot_id = snapshot_of_everyone(engine, corp_id)
        engine_build, matched = warm_engine(corp_id)
        result = rounds(engine, corp_id, snapshot_id, args)
        result |= {
            "backend": db.backend,
            "customers": args.customers,
            "employees": args.employees,
            "load_seconds": round(load_seconds, 1),
            "engine_build_seconds": round(engine_build, 2),
            "rule_matches": matched,
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "machine": machine(),
        }
    report(result)
    write_json(args.json, result)
    return 1 if result["problems"] else 0


def rounds(engine: sa.Engine, corp_id: int, snapshot_id: int, args: argparse.Namespace) -> dict[str, Any]:
    times: dict[str, list[float]] = {"baseline": [], "snapshot": [], "rule": []}
    small: dict[str, list[float]] = {"personal 200, caps by customer": [], "personal 200, caps by window": []}
    small_counts: dict[str, Any] = {}
    breakdown: dict[str, float] = {}
    problems: list[str] = []
    counts: dict[str, Any] = {}
    for n in range(args.rounds):
        seconds, bid = run_baseline(engine, corp_id)
        times["baseline"].append(seconds)
        drop_broadcast(engine, bid)
        for case, audience in (("snapshot", {"snapshot_id": snapshot_id}), ("rule", {"rule": ALL_RULE})):
            seconds, bid, counts, spent = run_plan(engine, corp_id, audience)
            times[case].append(seconds)
            problems += [f"{case}: {p}" for p in check_plan(engine, corp_id, bid, counts, args.customers)]
            if case == "snapshot":
                breakdown = spent | {"total": seconds}
            drop_broadcast(engine, bid)
        for case, few in (("personal 200, caps by customer", True), ("personal 200, caps by window", False)):
            seconds, found = run_personal(engine, corp_id, args.employees, few=few)
            small[case].append(seconds)
            if small_counts and found != small_counts:
                problems.append(f"{case}: {found} differs from the other path's {small_counts}")
            small_counts = found
        print(f"  round {n + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), file=sys.stderr)
    result = {"seconds": times, "small": small, "small_counts": small_counts, "breakdown": breakdown}
    return result | {"counts": counts, "problems": problems}


def report(result: dict[str, Any]) -> None:
    print(f"\n{result['backend']}: {result['customers']:,} customers, {result['employees']:,} employees")
    print(
        f"load {result['load_seconds']} s; segment engine build (once per process) {result['engine_build_seconds']} s"
    )
    rows = []
    baseline = min(result["seconds"]["baseline"])
    for case, values in result["seconds"].items():
        best = min(values)
        rows.append([case, " / ".join(f"{v:.2f}" for v in values), f"{best:.2f}", f"{best / baseline:.1f}×"])
    print_table(["case", "rounds (s)", "best (s)", "vs baseline"], rows)
    print("\na personal broadcast of 200 customers in the same corp (the planner takes the first path):")
    rows = [
        [case, " / ".join(f"{v * 1000:.0f}" for v in values), f"{min(values) * 1000:.0f}"]
        for case, values in result["small"].items()
    ]
    print_table(["case", "rounds (ms)", "best (ms)"], rows)
    small = result["small_counts"]
    print(f"eligible {small.get('eligible')}, excluded {small.get('excluded')}")
    counts = result["counts"]
    eligible, chunks = counts.get("eligible", 0), counts.get("chunks", 0)
    print(f"\neligible {eligible:,}, chunks {chunks:,}, excluded {counts.get('excluded')}")
    spent = result["breakdown"]
    if spent:
        total = spent.pop("total")
        rows = [[k, f"{v:.2f}"] for k, v in sorted(spent.items(), key=lambda kv: -kv[1])]
        rows.append(["COPY, Python and commit (the rest)", f"{total - sum(spent.values()):.2f}"])
        print("\nsnapshot plan, last round, by statement:")
        print_table(["statement", "seconds"], rows)
    print(
        f"\npeak RSS {result['peak_rss_mib']} MiB; goal < {GOAL_SECONDS:.0f} s: "
        + ("met" if min(result["seconds"]["snapshot"]) < GOAL_SECONDS else "NOT met")
    )
    for problem in result["problems"]:
        print(f"PROBLEM: {problem}")


if __name__ == "__main__":
    sys.exit(main())
