"""bench.broadcast_plan still runs, in a tiny mode, and every plan it makes is correct (never how fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import run_bench

pytestmark = pytest.mark.slow


def test_broadcast_plan_bench_plans_correctly(tmp_path: Path) -> None:
    # given a tiny synthetic corp on SQLite
    # when the benchmark plans its broadcasts
    result = run_bench(
        "bench.broadcast_plan", "--customers", "2000", "--employees", "50", "--rounds", "1", out=tmp_path / "bp.json"
    )
    # then every plan passed the invariants, and every exclusion reason of the data occurred
    assert result["problems"] == []
    counts = result["counts"]
    assert isinstance(counts, dict)
    assert counts["candidates"] == 2000
    assert set(counts["excluded"]) == {"corp_cap", "employee_paused", "no_active_follow", "opted_out", "platform_cap"}
