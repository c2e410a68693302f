"""What the benchmarks share: a throwaway migrated database, the siyu environment, a corp, stats, output."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

BENCH_SECRET_KEY = "bench-secret-key-not-for-production-0123456789"


@dataclass(frozen=True)
class BenchDatabase:
    """A fresh, migrated database and a queue file, both private to one benchmark run."""

    url: str
    queue_url: str
    workdir: Path

    @property
    def backend(self) -> str:
        return "postgresql" if self.url.startswith("postgresql") else "sqlite"

    def env(self) -> dict[str, str]:
        """The SIYU_* variables that point a siyu process (this one or a child) at this database."""
        return {
            "SIYU_DATABASE_URL": self.url,
            "SIYU_QUEUE_URL": self.queue_url,
            "SIYU_SECRET_KEY": BENCH_SECRET_KEY,
            "SIYU_ENV": "production",
        }


@contextmanager
def bench_database(pg_url: str | None = None, *, pg_options: str = "", keep: bool = False) -> Iterator[BenchDatabase]:
    """SQLite in a temp dir, or a temp schema on `pg_url` (plus libpq `pg_options`); migrated; then removed."""
    workdir = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    queue_url = f"sqlite:///{workdir / 'queue.db'}"
    try:
        if pg_url is None:
            db = BenchDatabase(f"sqlite:///{workdir / 'siyu.db'}", queue_url, workdir)
            _migrate(db)
            yield db
        else:
            with _pg_schema(pg_url, pg_options) as url:
                db = BenchDatabase(url, queue_url, workdir)
                _migrate(db)
                yield db
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _pg_schema(pg_url: str, pg_options: str = "") -> Iterator[str]:
    schema = f"bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{sep}options=" + quote(f"-csearch_path={schema} {pg_options}".strip())
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _migrate(db: BenchDatabase) -> None:
    from siyu.core.migrate import upgrade

    upgrade(url=db.url)


def use_database(db: BenchDatabase) -> None:
    """Point this process's siyu (settings, engine, queue) at the bench database."""
    from siyu.core import db as core_db
    from siyu.core import secrets

    os.environ.update(db.env())
    core_db.reset_caches()
    secrets._fernet.cache_clear()


def create_bench_corp(*, wecom_corpid: str, secret: str, token: str, aes_key: str, api_base_url: str) -> int:
    """Connect one corp the way the console does; returns siyu's corp_id."""
    from siyu.core.db import session_scope
    from siyu.corp.actions import do_create_corp

    with session_scope() as session:
        corp = do_create_corp(
            session,
            name="bench",
            wecom_corpid=wecom_corpid,
            contact_secret=secret,
            callback_token=token,
            callback_aes_key=aes_key,
            api_base_url=api_base_url,
        )
        return corp.corp_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def rss_mib(pid: int | str = "self") -> float:
    """Current resident set size (VmRSS) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib(pid: int | str = "self") -> float:
    """Peak resident set size (VmHWM) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> dict[str, str]:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor(),
    )
    mem_kib = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in ln)
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A Markdown table, so the output pastes straight into docs/benchmarks.md."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False))
