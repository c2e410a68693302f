"""Benchmark (c): the customers list at 1M customers — p50 / p99 server time per filter and actor.

Loads a synthetic corp into a fresh temp schema (PostgreSQL: COPY; SQLite: executemany batches):
`--customers` customers (default 1,000,000), ~1.5 follows each over `--employees` employees in
10 regions × 4 teams, 60 tags in 6 groups with Zipf-like popularity (0–3 per follow), remarks,
remark mobiles, three years of add dates, ~12% ended follows. Then, for an admin, a staff member
(their own ~1,500 follows) and a region leader (~10% of the corp), it calls the real
`siyu.contacts.service.list_` (what `GET /api/customers` runs: the page, its follows and tags)
`--requests` times per case, each in a fresh session, and reports p50 / p99. The baseline, in the
same run on the same data, is the plain `SELECT … FROM customer WHERE corp_id = ? ORDER BY id LIMIT 50`.

In tiny mode (`--customers` ≤ 5,000) every case is also checked against a brute-force answer
computed from the generated data, walking all pages by cursor (each customer exactly once).

    python -m bench.customers_page --pg postgresql+psycopg://postgres@127.0.0.1:5432/test
    python -m bench.customers_page --customers 2000 --requests 3           # tiny, SQLite
    python -m bench.customers_page --pg … --explain                          # plus EXPLAIN ANALYZE
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from bench.common import BenchDatabase, bench_database, machine, percentile, print_table, use_database, write_json

GOAL_P99_MS = 300.0
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红"
STATUSES = ("customer_deleted_employee", "employee_deleted_customer", "transferred")
START = datetime(2023, 1, 1, tzinfo=UTC)
CHUNK = 20_000


@dataclass
class Data:
    """What was generated, kept only in tiny mode (for the brute-force check)."""

    customers: dict[int, str] = field(default_factory=dict)  # id → name
    follows: list[tuple[int, int, int, str, str, datetime, str]] = field(default_factory=list)
    follow_tags: dict[int, set[int]] = field(default_factory=dict)
    team_of: dict[int, int] = field(default_factory=dict)  # employee id → team (WeCom dept id)


@dataclass(frozen=True)
class Shape:
    customers: int
    employees: int
    seed: int

    @property
    def tiny(self) -> bool:
        return self.customers <= 5000


# --- loading -----------------------------------------------------------------------------------


def load(engine: sa.Engine, shape: Shape) -> tuple[int, Data]:
    corp_id = _corp(engine)
    rng = random.Random(shape.seed)
    data = Data()
    _directory(engine, corp_id, shape, data)
    tag_ids, weights = _tags(engine, corp_id)
    follow_id = 0
    for start in range(1, shape.customers + 1, CHUNK):
        ids = range(start, min(start + CHUNK, shape.customers + 1))
        customers, follows, follow_tags = [], [], []
        for customer_id in ids:
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.7 else "")
            mine = []
            staff = rng.sample(range(1, shape.employees + 1), 1 + (rng.random() < 0.5) + (rng.random() < 0.05))
            for employee_id in staff:
                follow_id += 1
                mine.append(_follow(rng, corp_id, follow_id, customer_id, employee_id))
                for tag in {rng.choices(tag_ids, weights)[0] for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))}:
                    follow_tags.append((follow_id, tag, corp_id))
            added = min(f["created_at"] for f in mine)
            customers.append(_customer(corp_id, customer_id, name, added))
            follows += mine
            if shape.tiny:
                data.customers[customer_id] = name
        _insert(engine, "customer", customers)
        _insert(engine, "follow", follows)
        _insert(engine, "follow_tag", [{"follow_id": f, "tag_id": t, "corp_id": c} for f, t, c in follow_tags])
        if shape.tiny:
            _remember(data, follows, follow_tags)
        print(f"  loaded {ids[-1]:,} customers, {follow_id:,} follows", file=sys.stderr, flush=True)
    _reset_sequences(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE"))
    return corp_id, data


def _remember(data: Data, follows: list[dict[str, Any]], follow_tags: list[tuple[int, int, int]]) -> None:
    for f in follows:
        data.follows.append(
            (
                f["id"],
                f["customer_id"],
                f["employee_id"],
                f["remark"],
                f["remark_mobiles"],
                f["created_at"],
                f["status"],
            )
        )
    for f, t, _ in follow_tags:
        data.follow_tags.setdefault(f, set()).add(t)


def _corp(engine: sa.Engine) -> int:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO corp (name, wecom_corpid, agent_id, api_base_url, contact_secret_enc,"
                " callback_token_enc, callback_aes_key_enc, timezone, created_at)"
                " VALUES ('bench', 'wwbench', '', 'http://127.0.0.1:9', 's', 't', 'k', 'Asia/Shanghai', :now)"
            ),
            {"now": datetime.now(UTC)},
        )
        return int(conn.execute(sa.text("SELECT max(corp_id) FROM corp")).scalar_one())


def _directory(engine: sa.Engine, corp_id: int, shape: Shape, data: Data) -> None:
    """Root 1 → regions 2..11 → teams 100..139; employee i in team 100 + i % 40; u0 leads region 2."""
    departments = [{"wecom_id": 1, "name": "总部", "parent_wecom_id": 0, "leaders": []}]
    departments += [
        {"wecom_id": r, "name": f"大区{r}", "parent_wecom_id": 1, "leaders": ["u0"] if r == 2 else []}
        for r in range(2, 12)
    ]
    departments += [
        {"wecom_id": 100 + t, "name": f"小组{t}", "parent_wecom_id": 2 + t // 4, "leaders": []} for t in range(40)
    ]
    for i, d in enumerate(departments):
        d.update(id=i + 1, corp_id=corp_id, order=0)
    employees = [
        {
            "id": i + 1,
            "corp_id": corp_id,
            "userid": f"u{i}",
            "name": f"员工{i}",
            "department_ids": [100 + i % 40],
            "main_department": 100 + i % 40,
            "position": "",
            "gender": 0,
            "status": "active",
            "is_follow_user": True,
            "updated_at": START,
        }
        for i in range(shape.employees)
    ]
    data.team_of = {e["id"]: e["main_department"] for e in employees}
    _insert(engine, "department", departments)
    _insert(engine, "employee", employees)


def _tags(engine: sa.Engine, corp_id: int) -> tuple[list[int], list[float]]:
    groups = [
        {"id": g + 1, "corp_id": corp_id, "wecom_id": f"etG{g}", "name": f"标签组{g}", "order": 0, "created_at": START}
        for g in range(6)
    ]
    tags = [
        {
            "id": t + 1,
            "corp_id": corp_id,
            "group_id": t // 10 + 1,
            "wecom_id": f"etT{t}",
            "name": f"标签{t}",
            "order": 0,
            "created_at": START,
        }
        for t in range(60)
    ]
    _insert(engine, "tag_group", groups)
    _insert(engine, "tag", tags)
    return [t["id"] for t in tags], [1 / (i + 1) for i in range(60)]


def _follow(rng: random.Random, corp_id: int, follow_id: int, customer_id: int, employee_id: int) -> dict[str, Any]:
    created = START + timedelta(seconds=rng.randrange(3 * 365 * 86400))
    ended = rng.random() < 0.12
    return {
        "id": follow_id,
        "corp_id": corp_id,
        "employee_id": employee_id,
        "customer_id": customer_id,
        "remark": (rng.choice(SURNAMES) + rng.choice(("总", "经理", "女士", "老师"))) if rng.random() < 0.3 else "",
        "description": "",
        "remark_corp_name": "",
        "remark_mobiles": f'["13{rng.randrange(10**9):09d}"]' if rng.random() < 0.4 else "[]",
        "add_way": rng.choice((1, 1, 2, 3, 4, 202)),
        "oper_userid": "",
        "state": "",
        "created_at": created,
        "status": rng.choice(STATUSES) if ended else "active",
        "ended_at": created + timedelta(days=rng.randrange(1, 200)) if ended else None,
        "last_seen_run_id": None,
        "updated_at": created,
    }


def _customer(corp_id: int, customer_id: int, name: str, added: datetime) -> dict[str, Any]:
    return {
        "id": customer_id,
        "corp_id": corp_id,
        "external_userid": f"wm{customer_id:012d}",
        "name": name,
        "type": 1,
        "avatar": "",
        "gender": 0,
        "unionid": "",
        "position": "",
        "corp_name": "",
        "corp_full_name": "",
        "external_profile": None,
        "added_at": added,
        "created_at": added,
        "updated_at": added,
    }


def _insert(engine: sa.Engine, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if engine.dialect.name == "postgresql":
        _copy(engine, table, rows)
        return
    from siyu.models import Base

    tbl = Base.metadata.tables[table]
    converted = [{**r, "remark_mobiles": json.loads(r["remark_mobiles"])} if "remark_mobiles" in r else r for r in rows]
    with engine.begin() as conn:
        conn.execute(sa.insert(tbl), converted)


def _copy(engine: sa.Engine, table: str, rows: list[dict[str, Any]]) -> None:
    """COPY … FROM STDIN in text format: the fastest way in (no data here holds tabs or newlines)."""
    columns = list(rows[0])
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join(_cell(row[c]) for c in columns))
        buf.write("\n")
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        quoted = ", ".join(f'"{c}"' for c in columns)
        with cur.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            copy.write(buf.getvalue())
        raw.commit()
    finally:
        raw.close()


def _cell(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _reset_sequences(engine: sa.Engine) -> None:
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        for table in ("customer", "follow", "employee", "department", "tag", "tag_group"):
            conn.execute(
                sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            )


# --- actors and cases --------------------------------------------------------------------------


def actors(engine: sa.Engine, corp_id: int) -> dict[str, Any]:
    """An admin, staff u1 (own follows only) and region leader u0, with scopes from the real actor_for."""
    from siyu.accounts.access import actor_for
    from siyu.accounts.actions import do_create_user
    from siyu.accounts.models import Role
    from siyu.core.db import session_scope

    found = {}
    with session_scope() as session:
        for name, role, userid in (
            ("admin", Role.ADMIN, None),
            ("staff", Role.STAFF, "u1"),
            ("leader", Role.STAFF, "u0"),
        ):
            user = do_create_user(
                session,
                corp_id=corp_id,
                username=f"bench-{name}-{os.getpid()}",
                password="bench-password",
                role=role,
                employee_userid=userid,
            )
            found[name] = actor_for(session, user)
    return found


def cases(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        phone = conn.execute(
            sa.text("SELECT remark_mobiles FROM follow WHERE remark_mobiles::text <> '[]' ORDER BY id LIMIT 1")
            if engine.dialect.name == "postgresql"
            else sa.text("SELECT remark_mobiles FROM follow WHERE remark_mobiles <> '[]' ORDER BY id LIMIT 1")
        ).scalar_one()
    mobile = (phone if isinstance(phone, list) else json.loads(phone))[0]
    return {
        "no filter": {},
        "tag any (popular)": {"tag_ids": [1]},
        "tag any (rare, 3 tags)": {"tag_ids": [58, 59, 60]},
        "tag all (2 tags)": {"tag_ids": [1, 2], "tag_mode": "all"},
        "tag none (2 tags)": {"tag_ids": [1, 2], "tag_mode": "none"},
        "employee": {"employee_ids": [2]},
        "department (region)": {"department_id": 3},
        "search name": {"q": "王伟"},
        "search phone (7 digits)": {"q": mobile[3:10]},
        "added date range (1 month)": {"added_from": "2024-03-01", "added_to": "2024-03-31"},
        "status ended": {"status": "ended"},
        "sort by name": {"sort": "name"},
    }


# --- measuring ---------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], n: int) -> tuple[list[float], Any]:
    fn()  # warm the plan cache and the buffers like a running server
    times, result = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times), result


def list_call(actor: Any, params: dict[str, Any], after: str | None = None) -> Callable[[], Any]:
    from siyu.contacts import service
    from siyu.contacts.schemas import CustomerFilters
    from siyu.core.db import session_scope

    filters = CustomerFilters.model_validate(params)

    def call() -> Any:
        with session_scope() as session:
            return service.list_(session, actor=actor, filters=filters, after=after, limit=50)

    return call


def baseline_call(corp_id: int) -> Callable[[], Any]:
    from siyu.core.db import session_scope

    sql = sa.text("SELECT id, name, avatar, type, added_at FROM customer WHERE corp_id = :c ORDER BY id LIMIT 50")

    def call() -> Any:
        with session_scope() as session:
            return session.execute(sql, {"c": corp_id}).all()

    return call


def walk_all(actor: Any, params: dict[str, Any], limit: int = 97) -> list[int]:
    from siyu.contacts import service
    from siyu.contacts.schemas import CustomerFilters
    from siyu.core.db import session_scope

    filters, after, ids = CustomerFilters.model_validate(params), None, []
    while True:
        with session_scope() as session:
            page = service.list_(session, actor=actor, filters=filters, after=after, limit=limit)
        ids += [c.id for c in page.items]
        after = page.next_cursor
        if after is None:
            return ids


# --- the brute-force check (tiny mode) ---------------------------------------------------------


def expected(data: Data, actor: Any, params: dict[str, Any]) -> list[int]:
    """Which customers a case must return, in id order, computed without SQL."""
    from zoneinfo import ZoneInfo

    scope = actor.scope_employee_ids
    visible = [f for f in data.follows if scope is None or f[2] in scope]
    by_customer: dict[int, list[tuple[Any, ...]]] = {}
    for f in visible:
        by_customer.setdefault(f[1], []).append(f)
    zone = ZoneInfo("Asia/Shanghai")
    teams = _teams(params.get("department_id"))

    def follow_ok(f: tuple[Any, ...]) -> bool:
        if params.get("employee_ids") and f[2] not in params["employee_ids"]:
            return False
        if teams is not None and data.team_of[f[2]] not in teams:
            return False
        if params.get("added_from") and f[5] < datetime.combine(
            date.fromisoformat(params["added_from"]), datetime.min.time(), zone
        ):
            return False
        if params.get("added_to") and f[5] >= datetime.combine(
            date.fromisoformat(params["added_to"]) + timedelta(days=1), datetime.min.time(), zone
        ):
            return False
        return not (params.get("status") == "ended" and f[6] == "active")

    def ok(cid: int) -> bool:
        mine = by_customer.get(cid, [])
        if scope is not None and not mine:
            return False
        follow_filtered = any(k in params for k in ("employee_ids", "department_id", "added_from", "status"))
        if follow_filtered and not any(follow_ok(f) for f in mine):
            return False
        tags = {t for f in mine for t in data.follow_tags.get(f[0], set())}
        wanted = set(params.get("tag_ids", []))
        mode = params.get("tag_mode", "any")
        if wanted and mode == "any" and not tags & wanted:
            return False
        if wanted and mode == "all" and not wanted <= tags:
            return False
        if wanted and mode == "none" and tags & wanted:
            return False
        q = params.get("q")
        if q:
            in_follow = any(q in f[3] or (q.isdigit() and q in f[4]) for f in mine)
            if q not in data.customers[cid] and not in_follow:
                return False
        return True

    return [cid for cid in sorted(data.customers) if ok(cid)]


def _teams(department_id: int | None) -> set[int] | None:
    if department_id is None:
        return None
    if department_id == 1:
        return set(range(100, 140))
    if 2 <= department_id <= 11:
        return {100 + t for t in range(40) if 2 + t // 4 == department_id}
    return {department_id}


# --- main --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    shape = Shape(args.customers, args.employees, args.seed)
    with _database(args) as db:
        use_database(db)
        from siyu.core.db import get_engine

        engine = get_engine()
        t0 = time.perf_counter()
        corp_id, data = load(engine, shape) if not args.schema else (1, Data())
        load_s = time.perf_counter() - t0
        counts = _counts(engine)
        print(f"loaded in {load_s:.0f}s: {counts}", file=sys.stderr)
        who = actors(engine, corp_id)
        result: dict[str, Any] = {"machine": machine(), "backend": db.backend, "counts": counts, "load_s": load_s}
        result["rows"] = _measure(engine, corp_id, who, args)
        if shape.tiny and not args.schema:  # the brute force needs the data this run generated
            result["verified"] = _verify(data, who, cases(engine))
        if args.explain:
            _explain(engine, who, cases(engine))
    return result


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[BenchDatabase]:
    """A fresh temp schema (dropped after), a kept one (--keep, PostgreSQL), or an already loaded one (--schema)."""
    if not args.schema and not (args.keep and args.pg):
        with bench_database(args.pg) as db:
            yield db
        return
    schema = args.schema or f"bench_customers_{os.getpid()}"
    if not args.schema:
        admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        print(f"keeping schema {schema} (re-run with --schema {schema}; drop it when done)", file=sys.stderr)
    sep = "&" if "?" in args.pg else "?"
    url = f"{args.pg}{sep}options=" + quote(f"-csearch_path={schema}")
    db = BenchDatabase(url, f"sqlite:///{Path(tempfile.mkdtemp(prefix='siyu-bench-')) / 'queue.db'}", Path("."))
    if not args.schema:
        from siyu.core.migrate import upgrade

        upgrade(url=url)
    yield db


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one())
            for t in ("customer", "follow", "follow_tag")
        }


def _measure(engine: sa.Engine, corp_id: int, who: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    times, _ = timed(baseline_call(corp_id), args.requests)
    rows.append(_row("baseline: SELECT … ORDER BY id LIMIT 50", "-", times, 50))
    for case, params in cases(engine).items():
        for name, actor in who.items():
            times, page = timed(list_call(actor, params), args.requests)
            rows.append(_row(case, name, times, len(page.items)))
    for name, actor in who.items():
        first = list_call(actor, {})()
        times, page = timed(list_call(actor, {}, first.next_cursor), args.requests)
        rows.append(_row("next page (cursor)", name, times, len(page.items)))
    return rows


def _row(case: str, actor: str, times: list[float], n: int) -> dict[str, Any]:
    return {"case": case, "actor": actor, "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "rows": n}


def _verify(data: Data, who: dict[str, Any], all_cases: dict[str, dict[str, Any]]) -> dict[str, bool]:
    ok = {}
    for case, params in all_cases.items():
        if "sort" in params:
            continue
        for name, actor in who.items():
            got = walk_all(actor, {**params, "sort": "id"})
            ok[f"{case} / {name}"] = got == expected(data, actor, params)
    return ok


def _explain(engine: sa.Engine, who: dict[str, Any], all_cases: dict[str, dict[str, Any]]) -> None:
    from siyu.contacts import service
    from siyu.contacts.schemas import CustomerFilters
    from siyu.core.db import session_scope

    for case, params in all_cases.items():
        for name in ("admin", "staff"):
            with session_scope() as session:
                stmt = service.list_statement(
                    session, actor=who[name], filters=CustomerFilters.model_validate(params), after=None, limit=51
                )
                sql = stmt.compile(engine, compile_kwargs={"literal_binds": True})
                plan = session.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")).scalars().all()
            print(f"\n## {case} / {name}\n" + "\n".join(plan))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--employees", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50, help="timed calls per case and actor")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pg", help="PostgreSQL URL (a temp schema is created and dropped); default SQLite")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of every case (PostgreSQL)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--schema", help="measure an already loaded PostgreSQL schema (no load, not dropped)")
    parser.add_argument("--keep", action="store_true", help="PostgreSQL: keep the loaded schema (re-run with --schema)")
    args = parser.parse_args(argv)
    result = run(args)
    print(f"\n{result['counts']} on {result['backend']}, {args.requests} calls per row, server time in ms\n")
    print_table(
        ["case", "actor", "p50 ms", "p99 ms", "rows"],
        [[r["case"], r["actor"], f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", str(r["rows"])] for r in result["rows"]],
    )
    worst = max(r["p99_ms"] for r in result["rows"])
    print(f"\nworst p99: {worst:.1f} ms (goal < {GOAL_P99_MS:.0f} ms)")
    verified = result.get("verified")
    if verified is not None:
        bad = [k for k, v in verified.items() if not v]
        print(
            f"verified {len(verified) - len(bad)}/{len(verified)} cases against brute force"
            + (f"; WRONG: {bad}" if bad else "")
        )
    write_json(args.json, result)
    return 1 if verified and not all(verified.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
