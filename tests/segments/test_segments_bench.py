"""bench/segments_count.py still runs: a tiny SQLite load, asserting what it measured is right (never how fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_segment_benchmark_agrees_with_sql_after_churn(tmp_path: Path) -> None:
    # given a tiny corp
    out = tmp_path / "segments.json"
    args = ["--customers", "2000", "--employees", "50", "--rounds", "3", "--sql-rounds", "1", "--churn-commits", "8"]
    # when the benchmark loads it, counts, materialises and churns tags
    proc = subprocess.run(
        [sys.executable, "-m", "bench.segments_count", *args, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # then the engine equals SQL before and after the churn, and every change was applied incrementally
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["matches"] == result["sql_count"]
    assert result["verify"]["bitmaps_differing"] == 0
    assert result["verify"]["engine_count"] == result["verify"]["sql_count"]
    assert [c["commits"] for c in result["churn"]] == [8, 2, 1]
    assert all(c["customers_refreshed"] > 0 for c in result["churn"])
