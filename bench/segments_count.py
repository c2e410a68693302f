"""Benchmark (e): segment count and materialisation — the bitmap engine against plain SQL, same run, same data.

Loads a synthetic corp into a fresh temp PostgreSQL schema (dropped afterwards) with COPY, a chunk of
customers at a time (memory stays flat): `--customers` customers (default 1,000,000; `--customers
10000000` for the 10M run), 1–3 follows each over `--employees` employees (10% ended), `--tags` tags
(default 200) with Zipf-like popularity (tag k is picked with weight 1/k; 0–5 tags per follow),
`--channels` channel codes in 5 groups with the same skew (60% of follows attributed), genders and types.

Then, for one 6-clause rule — tag A and (B or C) and not D, added through channel X, female, with an
active follow — it times, in the same process:
  * count:            the engine (engine_for: version probe + bitmap algebra + channel lookup) vs
                      `siyu.segments.sql` (one SELECT count(*) with EXISTS per condition);
  * materialisation:  all matching ids as a Python array (engine: to_array; SQL: SELECT id … ORDER BY id);
  * (c) churn:        random tag adds/removes committed with mark_dirty (1, 100 and 1,000 changes per commit),
                      then how fast the engine catches up from the change log (customers refreshed per second);
                      afterwards the engine must equal a rebuild and its count must equal SQL's (else exit 1).

    python -m bench.segments_count --pg postgresql+psycopg://postgres@127.0.0.1:5432/test
    python -m bench.segments_count --pg … --customers 10000000 --sql-rounds 3
    python -m bench.segments_count --customers 3000 --rounds 5 --sql-rounds 2     # tiny, SQLite (CI smoke)
"""

from __future__ import annotations

import argparse
import io
import itertools
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.common import bench_database, machine, percentile, print_table, rss_mib, use_database, write_json

CHUNK = 50_000
START = datetime(2023, 1, 1, tzinfo=UTC)
GOAL_P50_MS = {1_000_000: 20.0, 10_000_000: 200.0}


@dataclass(frozen=True)
class Shape:
    customers: int
    employees: int
    tags: int
    channels: int
    seed: int


@dataclass(frozen=True)
class Loaded:
    corp_id: int
    follows: int
    follow_tags: int
    tag_ids: list[int]  # by popularity, most popular first
    channel_ids: list[int]


# --- loading ---------------------------------------------------------------------------------------


def load(engine: sa.Engine, shape: Shape) -> Loaded:
    """Corp, employees, tags and channels through the ORM; customers, follows and follow tags by COPY
    (their secondary indexes dropped meanwhile and rebuilt at the end, as a bulk load does)."""
    corp_id, tag_ids, channel_ids = _small_tables(shape)
    indexes = _drop_indexes(engine, ("customer", "follow", "follow_tag"))
    rng = random.Random(shape.seed)
    tag_weights = list(itertools.accumulate(1 / (k + 1) for k in range(len(tag_ids))))
    channel_weights = list(itertools.accumulate(1 / (k + 1) for k in range(len(channel_ids))))
    follow_id = tagged = 0
    for start in range(1, shape.customers + 1, CHUNK):
        ids = range(start, min(start + CHUNK, shape.customers + 1))
        customers, follows, follow_tags = io.StringIO(), io.StringIO(), io.StringIO()
        for customer_id in ids:
            added = START + timedelta(seconds=rng.randrange(3 * 365 * 86400))
            staff = rng.sample(range(1, shape.employees + 1), 1 + (rng.random() < 0.25) + (rng.random() < 0.05))
            for employee_id in staff:
                follow_id += 1
                channel = rng.choices(channel_ids, cum_weights=channel_weights)[0] if rng.random() < 0.6 else None
                follows.write(_follow_line(rng, corp_id, follow_id, customer_id, employee_id, channel, added))
                picked = set(rng.choices(tag_ids, cum_weights=tag_weights, k=rng.choice((0, 1, 1, 2, 2, 3, 4, 5))))
                for tag_id in picked:
                    follow_tags.write(f"{follow_id}\t{tag_id}\t{corp_id}\n")
                tagged += len(picked)
            customers.write(_customer_line(rng, corp_id, customer_id, added))
        _copy(engine, "customer", CUSTOMER_COLUMNS, customers)
        _copy(engine, "follow", FOLLOW_COLUMNS, follows)
        _copy(engine, "follow_tag", ("follow_id", "tag_id", "corp_id"), follow_tags)
        print(f"  loaded {ids[-1]:,} customers, {follow_id:,} follows, {tagged:,} tags", file=sys.stderr, flush=True)
    _finish(engine, indexes)
    return Loaded(corp_id, follow_id, tagged, tag_ids, channel_ids)


def _small_tables(shape: Shape) -> tuple[int, list[int], list[int]]:
    from siyu.acquisition.models import Channel, ChannelGroup
    from siyu.contacts.models import Employee
    from siyu.core.db import session_scope
    from siyu.corp.models import Corp
    from siyu.tags.models import Tag, TagGroup

    with session_scope() as s:
        corp = Corp(
            name="bench",
            wecom_corpid="wwbenchsegments",
            api_base_url="http://127.0.0.1:9",
            contact_secret_enc="s",
            callback_token_enc="t",
            callback_aes_key_enc="k",
        )
        s.add(corp)
        s.flush()
        corp_id = corp.corp_id
        s.add_all(Employee(corp_id=corp_id, userid=f"u{i}", name=f"员工{i}") for i in range(shape.employees))
        groups = [TagGroup(corp_id=corp_id, wecom_id=f"etG{g}", name=f"标签组{g}") for g in range(10)]
        cgroups = [ChannelGroup(corp_id=corp_id, name=f"门店组{g}") for g in range(5)]
        s.add_all([*groups, *cgroups])
        s.flush()
        tags = [
            Tag(corp_id=corp_id, group_id=groups[t % 10].id, wecom_id=f"etT{t}", name=f"标签{t}")
            for t in range(shape.tags)
        ]
        channels = [
            Channel(corp_id=corp_id, name=f"渠道{c}", state=f"ch_bench{c}", group_id=cgroups[c % 5].id)
            for c in range(shape.channels)
        ]
        s.add_all([*tags, *channels])
        s.flush()
        return corp_id, [t.id for t in tags], [c.id for c in channels]


CUSTOMER_COLUMNS = [
    "id",
    "corp_id",
    "external_userid",
    "name",
    "type",
    "avatar",
    "gender",
    "unionid",
    "position",
    "corp_name",
    "corp_full_name",
    "added_at",
    "created_at",
    "updated_at",
]
FOLLOW_COLUMNS = [
    "id",
    "corp_id",
    "employee_id",
    "customer_id",
    "remark",
    "description",
    "remark_corp_name",
    "remark_mobiles",
    "add_way",
    "oper_userid",
    "state",
    "channel_id",
    "created_at",
    "status",
    "ended_at",
    "updated_at",
]


def _customer_line(rng: random.Random, corp_id: int, customer_id: int, added: datetime) -> str:
    gender = rng.choices((0, 1, 2), (2, 5, 5))[0]
    ctype = 2 if rng.random() < 0.05 else 1
    at = added.isoformat()
    name = f"客户{customer_id}"
    return f"{customer_id}\t{corp_id}\twm{customer_id:012d}\t{name}\t{ctype}\t\t{gender}\t\t\t\t\t{at}\t{at}\t{at}\n"


def _follow_line(
    rng: random.Random,
    corp_id: int,
    follow_id: int,
    customer_id: int,
    employee_id: int,
    channel: int | None,
    at: datetime,
) -> str:
    ended = rng.random() < 0.1
    status = "customer_deleted_employee" if ended else "active"
    ended_at = (at + timedelta(days=30)).isoformat() if ended else "\\N"
    channel_cell = str(channel) if channel is not None else "\\N"
    return (
        f"{follow_id}\t{corp_id}\t{employee_id}\t{customer_id}\t\t\t\t[]\t1\t\t\t{channel_cell}\t{at.isoformat()}"
        f"\t{status}\t{ended_at}\t{at.isoformat()}\n"
    )


def _copy(engine: sa.Engine, table: str, columns: Sequence[str], buf: io.StringIO) -> None:
    """COPY … FROM STDIN (PostgreSQL); on SQLite (tiny smoke runs) the same lines through executemany."""
    if engine.dialect.name != "postgresql":
        _sqlite_insert(engine, table, columns, buf.getvalue())
        return
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        quoted = ", ".join(f'"{c}"' for c in columns)
        with cur.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            copy.write(buf.getvalue())
        raw.commit()
    finally:
        raw.close()


def _sqlite_insert(engine: sa.Engine, table: str, columns: Sequence[str], text: str) -> None:
    rows = []
    for line in text.splitlines():
        values: list[Any] = [None if v == "\\N" else v for v in line.split("\t")]
        rows.append(dict(zip(columns, values, strict=True)))
    if not rows:
        return
    placeholders = ", ".join(f":{c}" for c in columns)
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"), rows)


def _drop_indexes(engine: sa.Engine, tables: Sequence[str]) -> list[str]:
    """Drop the tables' plain indexes (not primary keys or unique constraints); returns their definitions."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.begin() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema()"
                " AND i.tablename = ANY(:tables) AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
                " WHERE c.conname = i.indexname AND c.connamespace = to_regnamespace(current_schema()))"
            ),
            {"tables": list(tables)},
        ).all()
        for name, _ in rows:
            conn.execute(sa.text(f'DROP INDEX "{name}"'))
    return [definition for _, definition in rows]


def _finish(engine: sa.Engine, indexes: Sequence[str] = ()) -> None:
    if engine.dialect.name != "postgresql":
        return
    t0 = time.perf_counter()
    for definition in indexes:  # one transaction each: a deadlock with someone's ANALYZE retries just that one
        _with_retry(engine, definition)
    print(f"  rebuilt {len(indexes)} indexes in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    with engine.begin() as conn:
        for table in ("customer", "follow"):
            conn.execute(
                sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            )
    _with_retry(engine, "ANALYZE customer, follow, follow_tag, tag, channel, employee")  # only this schema's


def _with_retry(engine: sa.Engine, statement: str, attempts: int = 5) -> None:
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(statement))
            return
        except sa.exc.OperationalError as exc:
            if "deadlock" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(1 + attempt)


# --- the rule and the measurements ------------------------------------------------------------------


def six_clause_rule(loaded: Loaded) -> dict[str, Any]:
    """tag A and (B or C) and not D, added through channel X, female, with an active follow."""
    t = loaded.tag_ids
    return {
        "version": 1,
        "rule": {
            "and": [
                {"tags": {"any": [t[0]]}},
                {"or": [{"tags": {"any": [t[4]]}}, {"tags": {"any": [t[9]]}}]},
                {"not": {"tags": {"any": [t[2]]}}},
                {"channel": {"channels": [loaded.channel_ids[0]]}},
                {"gender": [2]},
                {"follow_status": "active"},
            ]
        },
    }


def timed(fn: Callable[[], object], rounds: int) -> tuple[list[float], object]:
    """Milliseconds of each call (sorted), and the last result."""
    out: list[float] = []
    result: object = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        out.append((time.perf_counter() - t0) * 1000)
    return sorted(out), result


def measure(loaded: Loaded, rule_json: dict[str, Any], rounds: int, sql_rounds: int) -> dict[str, Any]:
    from siyu.core.db import get_sessionmaker
    from siyu.segments import engine, sql
    from siyu.segments.rules import parse_rule

    factory = get_sessionmaker()
    rule = parse_rule(rule_json)
    corp_id = loaded.corp_id
    rss_before = rss_mib()
    with factory() as s:
        t0 = time.perf_counter()
        eng = engine.engine_for(s, corp_id)
        build_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "build_s": round(build_s, 2),
        "index_mib": round(eng.size_in_bytes() / 2**20, 1),
        "rss_growth_mib": round(rss_mib() - rss_before, 1),
    }
    with factory() as s:
        engine_ms, ids = timed(lambda: engine.engine_for(s, corp_id).evaluate(s, rule), rounds)
        engine_ids_ms, array_ids = timed(lambda: engine.engine_for(s, corp_id).evaluate(s, rule).to_array(), rounds)
        sql_ms, sql_count = timed(lambda: sql.count(s, corp_id=corp_id, rule=rule), sql_rounds)
        stmt = sql.customer_ids_select(s, corp_id=corp_id, rule=rule)
        sql_ids_ms, sql_ids = timed(lambda: s.scalars(stmt).all(), sql_rounds)
    assert isinstance(sql_ids, list) and list(array_ids) == sql_ids, "engine ids differ from SQL ids"  # type: ignore[call-overload]
    out |= {
        "matches": len(ids),  # type: ignore[arg-type]
        "sql_count": sql_count,
        "count": {"engine": _stats(engine_ms), "sql": _stats(sql_ms)},
        "ids": {"engine": _stats(engine_ids_ms), "sql": _stats(sql_ids_ms)},
    }
    out["count_speedup_p50"] = round(out["count"]["sql"]["p50_ms"] / out["count"]["engine"]["p50_ms"], 1)
    out["ids_speedup_p50"] = round(out["ids"]["sql"]["p50_ms"] / out["ids"]["engine"]["p50_ms"], 1)
    return out


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 50), 2), "p99_ms": round(percentile(values, 99), 2), "n": len(values)}


# --- (c) incremental updates under tag churn ---------------------------------------------------------


def churn(loaded: Loaded, plan: Sequence[tuple[int, int]], seed: int) -> list[dict[str, Any]]:
    """For (changes per commit, commits): random tag toggles on active follows, then the engine's catch-up."""
    from siyu.core.db import get_sessionmaker
    from siyu.segments import engine

    factory = get_sessionmaker()
    rng = random.Random(seed)
    wanted = sorted(set(rng.sample(range(1, loaded.follows + 1), min(loaded.follows, 20_000))))
    with factory() as s:  # a random sample of follows, not all of them: 10M would not fit comfortably
        follows = [
            tuple(row)
            for part in range(0, len(wanted), 1000)
            for row in s.execute(
                sa.text(
                    "SELECT id, customer_id FROM follow WHERE corp_id = :c AND status = 'active' AND id IN :ids"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"c": loaded.corp_id, "ids": wanted[part : part + 1000]},
            )
        ]
    rows = []
    for per_commit, commits in plan:
        write_s = catch_up_s = 0.0
        customers = 0
        for _ in range(commits):
            batch = [rng.choice(follows) for _ in range(per_commit)]
            write_s += _toggle_tags(factory, loaded, rng, batch)
            with factory() as s:
                eng = engine.loaded_engine(loaded.corp_id)
                assert eng is not None
                before = eng.refreshed
                t0 = time.perf_counter()
                assert engine.engine_for(s, loaded.corp_id) is eng, "rebuilt instead of caught up"
                catch_up_s += time.perf_counter() - t0
                customers += eng.refreshed - before
        rows.append(
            {
                "changes_per_commit": per_commit,
                "commits": commits,
                "customers_refreshed": customers,
                "write_commit_ms": round(write_s / commits * 1000, 2),
                "catch_up_ms": round(catch_up_s / commits * 1000, 2),
                "updates_per_s": round(customers / catch_up_s) if catch_up_s else 0,
            }
        )
    return rows


def _toggle_tags(factory: Any, loaded: Loaded, rng: random.Random, batch: Iterable[Sequence[int]]) -> float:
    """One commit: each (follow, customer) gains or loses a random popular tag; marked like a writer would."""
    from siyu.segments.changes import mark_dirty

    t0 = time.perf_counter()
    with factory.begin() as s:
        adds, removes, touched = [], [], set()
        for follow_id, customer_id in batch:
            tag_id = loaded.tag_ids[min(int(rng.paretovariate(1.0)) - 1, len(loaded.tag_ids) - 1)]
            (adds if rng.random() < 0.5 else removes).append({"f": follow_id, "t": tag_id, "c": loaded.corp_id})
            touched.add(customer_id)
        if removes:
            s.execute(sa.text("DELETE FROM follow_tag WHERE follow_id = :f AND tag_id = :t"), removes)
        if adds:
            insert = "INSERT INTO follow_tag (follow_id, tag_id, corp_id) VALUES (:f, :t, :c) ON CONFLICT DO NOTHING"
            s.execute(sa.text(insert), adds)
        mark_dirty(s, loaded.corp_id, touched)
    return time.perf_counter() - t0


def verify(loaded: Loaded, rule_json: dict[str, Any]) -> dict[str, Any]:
    from siyu.core.db import get_sessionmaker
    from siyu.segments import engine, service

    with get_sessionmaker()() as s:
        eng = engine.engine_for(s, loaded.corp_id)
        differences = eng.check(s)
        count = len(eng.evaluate(s, service.parse(rule_json)))
        sql_count = service.sql_count(s, corp_id=loaded.corp_id, rule=rule_json)
    return {"bitmaps_differing": len(differences), "engine_count": count, "sql_count": sql_count}


# --- main ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    shape = Shape(args.customers, args.employees, args.tags, args.channels, args.seed)
    with bench_database(args.pg) as db:
        use_database(db)
        from siyu.core.db import get_engine

        t0 = time.perf_counter()
        loaded = load(get_engine(), shape)
        load_s = time.perf_counter() - t0
        rule = six_clause_rule(loaded)
        measured = measure(loaded, rule, args.rounds, args.sql_rounds)
        plan = [
            (1, args.churn_commits),
            (100, max(1, args.churn_commits // 4)),
            (1000, max(1, args.churn_commits // 20)),
        ]
        churned = churn(loaded, plan, args.seed)
        checked = verify(loaded, rule)
    return {
        "machine": machine(),
        "backend": db.backend,
        "shape": shape.__dict__,
        "loaded": {"follows": loaded.follows, "follow_tags": loaded.follow_tags, "load_s": round(load_s, 1)},
        "rule": rule,
        **measured,
        "churn": churned,
        "verify": checked,
        "counts": {"customers": shape.customers, "matches": measured["matches"]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--employees", type=int, default=2000)
    parser.add_argument("--tags", type=int, default=200)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200, help="timed engine calls per measure")
    parser.add_argument("--sql-rounds", type=int, default=10, help="timed SQL calls per measure")
    parser.add_argument("--churn-commits", type=int, default=200, help="commits of 1 change (÷4 of 100, ÷20 of 1,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg", help="PostgreSQL URL (a temp schema is created and dropped); default SQLite")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    result = run(args)
    _report(result)
    write_json(args.json, result)
    v = result["verify"]
    return 0 if v["bitmaps_differing"] == 0 and v["engine_count"] == v["sql_count"] else 1


def _report(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(
        f"\n{r['shape']['customers']:,} customers, {r['loaded']['follows']:,} follows, "
        f"{r['loaded']['follow_tags']:,} follow tags on {r['backend']} (loaded in {r['loaded']['load_s']} s)"
    )
    print(f"{m['cpus']} CPUs {m['cpu']}, {m['ram']}, Python {m['python']}, {m['date']}")
    print(
        f"engine build {r['build_s']} s, bitmaps {r['index_mib']} MiB serialized,"
        f" process RSS +{r['rss_growth_mib']} MiB"
    )
    print(f"rule matches {r['matches']:,} customers (SQL: {r['sql_count']:,})\n")
    rows = []
    for what in ("count", "ids"):
        for side in ("engine", "sql"):
            s = r[what][side]
            rows.append([what, side, f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", str(s["n"])])
    print_table(["operation", "evaluator", "p50 ms", "p99 ms", "calls"], rows)
    print(f"\nspeed-up at p50: count {r['count_speedup_p50']}×, ids {r['ids_speedup_p50']}×\n")
    print_table(
        ["changes/commit", "commits", "customers refreshed", "write+commit ms", "catch-up ms", "updates/s"],
        [
            [
                str(c["changes_per_commit"]),
                str(c["commits"]),
                str(c["customers_refreshed"]),
                str(c["write_commit_ms"]),
                str(c["catch_up_ms"]),
                f"{c['updates_per_s']:,}",
            ]
            for c in r["churn"]
        ],
    )
    v = r["verify"]
    print(
        f"\nafter churn: {v['bitmaps_differing']} bitmaps differ from a rebuild; count {v['engine_count']:,} "
        f"(SQL {v['sql_count']:,})"
    )


if __name__ == "__main__":
    sys.exit(main())
