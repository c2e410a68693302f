"""The customers-page benchmark still runs: tiny mode, every case checked against brute force (never timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, unavailable

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _pg_url() -> str:
    try:
        with sa.create_engine(PG_URL).connect():
            pass
    except sa.exc.OperationalError as exc:
        unavailable("PostgreSQL at " + PG_URL, exc.orig)
    return PG_URL


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_customers_bench_tiny_mode_is_correct(backend: str, tmp_path: Path) -> None:
    # given a tiny corp (1,500 customers) loaded the way the 1M run loads it
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "bench.customers_page", "--customers", "1500", "--employees", "30"]
    cmd += ["--requests", "2", "--json", str(out)]
    if backend == "postgresql":
        cmd += ["--pg", _pg_url()]
    # when the benchmark runs every case for every actor
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    # then it succeeds, each case returned exactly the brute-force answer across all its pages
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["counts"]["customer"] == 1500
    assert result["verified"] and all(result["verified"].values()), result["verified"]
    cases = {(r["case"], r["actor"]) for r in result["rows"]}
    assert ("no filter", "staff") in cases and ("next page (cursor)", "admin") in cases
    assert len(cases) == 1 + 13 * 3
