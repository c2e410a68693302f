"""Benchmark (b): a full sync of a corp with 100,000 customers, against fetching the same pages alone.

The emulator (`siyu emulator`) runs in its own process, so its CPU is not the sync's. This process
connects a corp to it, then, on one fresh database:

1. baseline — fetch every customer page (get_follow_user_list, then batch/get_by_user over ≤100
   follow users a batch, 100 rows a page) with the client the sync uses, writing nothing;
2. `siyu.sync.flows.run_sync` — every stage (employees, tags, customers, groups), sampling this
   process's RSS on every progress call to show whether memory stays flat;
3. the baseline again, so noise on the machine hits both sides.

The customers stage is timed from the progress callbacks (from the tags stage's report to the last
customers page), so it compares page for page with the baseline; the difference is what the
database side costs. Afterwards siyu must hold exactly the emulator's customers and follows.

    python -m bench.sync_full                          # 100,000 customers, SQLite in a temp dir
    python -m bench.sync_full --customers 10000 --db postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.callback_ingest import process_cpu_seconds
from bench.common import (
    bench_database,
    create_bench_corp,
    free_port,
    machine,
    peak_rss_mib,
    print_table,
    rss_mib,
    use_database,
    write_json,
)

GOAL_RATE = 2000.0


@dataclass(frozen=True)
class Emulator:
    base_url: str
    pid: int
    corp: dict[str, Any]
    counts: dict[str, Any]


@contextmanager
def emulator_process(*, customers: int, employees: int, seed: int) -> Iterator[Emulator]:
    """`siyu emulator` in a child process; yields once it answers, with its credentials and counts."""
    port = free_port()
    cmd = [sys.executable, "-m", "siyu", "emulator", "--port", str(port)]
    cmd += ["--customers", str(customers), "--employees", str(employees), "--seed", str(seed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        counts = _wait_for(base_url, proc)
        corp = httpx.get(f"{base_url}/emulator/corp").json()
        yield Emulator(base_url, proc.pid, corp, counts)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for(base_url: str, proc: subprocess.Popen[bytes], timeout: float = 600.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the emulator exited with {proc.returncode}")
        try:
            return dict(httpx.get(f"{base_url}/emulator/summary", timeout=2).json())
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the emulator did not come up")


# --- the two measured things ---------------------------------------------------------------------


@dataclass
class Phase:
    """Wall time and the CPU of this process and of the emulator over one measured phase."""

    name: str
    seconds: float = 0.0
    cpu_self: float | None = None
    cpu_emulator: float | None = None
    rows: int = 0
    pages: int = 0


@contextmanager
def measured(name: str, emulator_pid: int) -> Iterator[Phase]:
    phase = Phase(name)
    usage, emu, started = (
        resource.getrusage(resource.RUSAGE_SELF),
        process_cpu_seconds(emulator_pid),
        time.perf_counter(),
    )
    yield phase
    phase.seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    phase.cpu_self = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    phase.cpu_emulator = process_cpu_seconds(emulator_pid) - emu


def fetch_customer_pages(corp_id: int, phase: Phase) -> None:
    """The baseline: every page the customers stage reads, through the same client, nothing written."""
    from siyu.core.config import get_settings
    from siyu.core.db import session_scope
    from siyu.corp.models import Corp
    from siyu.wecom.client import client_for_corp

    with session_scope() as session:
        corp = session.get(Corp, corp_id)
        assert corp is not None
        client = client_for_corp(corp)
    size = max(1, min(100, get_settings().sync_batch_size))
    with client:
        userids = sorted(set(client.get_follow_user_list()))
        for batch in (userids[i : i + size] for i in range(0, len(userids), size)):
            cursor = ""
            while True:
                page = client.batch_get_by_user(batch, cursor=cursor, limit=100)
                phase.rows, phase.pages = phase.rows + len(page.external_contact_list), phase.pages + 1
                cursor = page.next_cursor
                if not cursor:
                    break


@dataclass
class Sample:
    at: float
    label: str
    done: int
    rss_mib: float


@dataclass
class SyncProgress:
    """The progress callback: a timestamped RSS sample on every call (one per page)."""

    samples: list[Sample] = field(default_factory=list)

    def __call__(self, done: int, total: int | None, label: str) -> None:
        self.samples.append(Sample(time.perf_counter(), label, done, rss_mib()))

    def customers_stage(self) -> tuple[float, int, int]:
        """(seconds, rows, pages) of the customers stage: from the previous stage's report to its last page."""
        pages = [s for s in self.samples if s.label == "customers"]
        before = [s for s in self.samples if s.at <= pages[0].at and s.label != "customers"]
        start = before[-1].at if before else pages[0].at
        return pages[-1].at - start, pages[-1].done, len(pages)


def run_full_sync(corp_id: int, phase: Phase, progress: SyncProgress) -> Any:
    from siyu.sync.flows import run_sync

    progress(0, None, "start")
    summary = run_sync(corp_id, progress=progress)
    phase.pages = summary.pages
    return summary


# --- the report ----------------------------------------------------------------------------------


def memory_rows(progress: SyncProgress, follows: int) -> list[list[str]]:
    """RSS when the sync starts, at 10 / 50 / 100 % of the customer rows, at the end, and the highest."""
    samples = progress.samples
    rows = [["start of sync", f"{samples[0].rss_mib:.0f}"]]
    customers = [s for s in samples if s.label == "customers"]
    for pct in (10, 50, 100):
        hit = next((s for s in customers if s.done >= follows * pct / 100), customers[-1] if customers else None)
        if hit is not None:
            rows.append([f"customers {pct}% ({hit.done:,} rows)", f"{hit.rss_mib:.0f}"])
    rows.append(["end of sync", f"{samples[-1].rss_mib:.0f}"])
    rows.append(["highest sample", f"{max(s.rss_mib for s in samples):.0f}"])
    return rows


def quarter_rows(progress: SyncProgress) -> list[list[str]]:
    """Rows/s in each quarter of the customers stage: flat if a page costs the same at the end as at the start."""
    pages = [s for s in progress.samples if s.label == "customers"]
    if len(pages) < 8:
        return []
    rows, cuts = [], [round(len(pages) * q / 4) for q in range(5)]
    for q in range(4):
        first, last = pages[max(cuts[q] - 1, 0)], pages[cuts[q + 1] - 1]
        done = last.done - (first.done if cuts[q] else 0)
        span = last.at - (first.at if cuts[q] else progress.samples[progress.samples.index(pages[0]) - 1].at)
        rows.append([f"Q{q + 1}", f"{done:,}", f"{done / span:,.0f}" if span else "–"])
    return rows


def phase_row(p: Phase, customers: int) -> list[str]:
    return [
        p.name, f"{p.rows:,}", f"{p.pages:,}", f"{p.seconds:.1f}", f"{customers / p.seconds:,.0f}",
        f"{p.rows / p.seconds:,.0f}", _cpu(p.cpu_self), _cpu(p.cpu_emulator),
    ]  # fmt: skip


def _cpu(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.1f}"


def verify(corp_id: int, counts: dict[str, Any]) -> dict[str, int]:
    import sqlalchemy as sa

    from siyu.contacts.models import Customer, Follow, FollowStatus
    from siyu.core.db import session_scope

    with session_scope() as session:
        customers = session.scalar(sa.select(sa.func.count()).where(Customer.corp_id == corp_id))
        follows = session.scalar(
            sa.select(sa.func.count()).where(Follow.corp_id == corp_id, Follow.status == FollowStatus.ACTIVE)
        )
    got = {"customers": int(customers or 0), "follows": int(follows or 0)}
    want = {"customers": int(counts["customers"]), "follows": int(counts["follows"])}
    print(f"\nsiyu holds {got}; the emulator has {want}")
    return {**{f"{k}_synced": v for k, v in got.items()}, **{f"{k}_expected": v for k, v in want.items()}}


def print_pg_scans() -> None:
    """PostgreSQL only: sequential vs index scans per table during the run (a growing scan shows here)."""
    import sqlalchemy as sa

    from siyu.core.db import session_scope

    query = sa.text(
        "SELECT relname, seq_scan, seq_tup_read, idx_scan, n_live_tup FROM pg_stat_user_tables "
        "WHERE schemaname = current_schema() AND n_live_tup > 0 ORDER BY seq_tup_read DESC"
    )
    with session_scope() as session:
        rows = [[str(v) if i == 0 else f"{v or 0:,}" for i, v in enumerate(r)] for r in session.execute(query)]
    print("\nPostgreSQL table scans over the whole run (pg_stat_user_tables):")
    print_table(["table", "seq scans", "rows read by seq scans", "index scans", "live rows"], rows)


def report(phases: list[Phase], progress: SyncProgress, emu: Emulator, summary: Any) -> dict[str, Any]:
    customers, follows = int(emu.counts["customers"]), int(emu.counts["follows"])
    stage_s, stage_rows, stage_pages = progress.customers_stage()
    fetch = min((p for p in phases if p.name.startswith("baseline")), key=lambda p: p.seconds)
    stage = Phase("sync: customers stage", stage_s, rows=stage_rows, pages=stage_pages)
    heads = ["phase", "rows", "pages", "s", "customers/s", "rows/s", "CPU s (sync proc)", "CPU s (emulator)"]
    print_table(heads, [phase_row(p, customers) for p in [*phases, stage]])
    db_share = 1 - fetch.seconds / stage_s if stage_s else 0.0
    print(f"\ncustomers stage vs fastest baseline fetch: {stage_s:.1f}s vs {fetch.seconds:.1f}s "
          f"— the database side is {db_share:.0%} of the stage")  # fmt: skip
    print("\ncustomers stage, by quarter of its rows:")
    print_table(["quarter", "rows", "rows/s"], quarter_rows(progress))
    print("\nRSS of the sync process (MiB):")
    mem = memory_rows(progress, follows)
    print_table(["when", "RSS MiB"], mem)
    rate = customers / stage_s if stage_s else 0.0
    print(f"\n{'met ' if rate >= GOAL_RATE else 'MISS'}  customers stage >= {GOAL_RATE:,.0f} customers/s ({rate:,.0f})")
    print("\nsync summary:", {name: counts.as_dict() for name, counts in summary.rows()})
    return {
        "customers_per_s": rate,
        "stage_seconds": stage_s,
        "baseline_seconds": fetch.seconds,
        "sync_seconds": next(p.seconds for p in phases if p.name.startswith("sync")),
        "memory_mib": dict(mem),
        "peak_rss_mib": peak_rss_mib(),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=100_000, help="customers in the emulated corp (default 100000)")
    p.add_argument("--employees", type=int, default=200, help="employees in the emulated corp (default 200)")
    p.add_argument("--seed", type=int, default=1, help="emulator seed (default 1)")
    p.add_argument("--db", help="PostgreSQL URL (a temp schema is used and dropped); default: temp SQLite")
    p.add_argument("--pg-options", default="", help='extra libpq options, e.g. "-c plan_cache_mode=force_custom_plan"')
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print("machine:", machine())
    with bench_database(args.db, pg_options=args.pg_options) as db, emulator_process(
        customers=args.customers, employees=args.employees, seed=args.seed
    ) as emu:  # fmt: skip
        print(f"backend {db.backend}; emulator {emu.counts}")
        use_database(db)
        corp_id = create_bench_corp(
            wecom_corpid=emu.corp["corpid"], secret=emu.corp["secret"], token=emu.corp["token"],
            aes_key=emu.corp["encoding_aes_key"], api_base_url=emu.base_url,
        )  # fmt: skip
        phases, progress = [], SyncProgress()
        with measured("baseline: fetch pages (1)", emu.pid) as phase:
            fetch_customer_pages(corp_id, phase)
        phases.append(phase)
        with measured("sync: run_sync (all stages)", emu.pid) as phase:
            summary = run_full_sync(corp_id, phase, progress)
        phase.rows = progress.customers_stage()[1]
        phases.append(phase)
        with measured("baseline: fetch pages (2)", emu.pid) as phase:
            fetch_customer_pages(corp_id, phase)
        phases.append(phase)
        results = report(phases, progress, emu, summary)
        counts = verify(corp_id, emu.counts)
        if db.backend == "postgresql":
            print_pg_scans()
    write_json(args.json, {"backend": db.backend, "results": results, "counts": counts})
    ok = (
        counts["customers_synced"] == counts["customers_expected"]
        and counts["follows_synced"] == counts["follows_expected"]
    )
    if not ok:
        print("FAILED: siyu does not hold what the emulator has", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
