"""The benchmarks still run: each in a tiny mode, asserting what they did (never how fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run_bench(module: str, *args: str, out: Path) -> dict[str, object]:
    cmd = [sys.executable, "-m", module, *args, "--json", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(json.loads(out.read_text()))


def test_callback_ingest_stores_every_event_once(tmp_path: Path) -> None:
    # given 200 distinct sealed events, all stages on, one short round each
    args = ["--events", "200", "--warmup", "20", "--rounds", "1", "--seconds", "0.3", "--concurrency", "4"]
    # when the benchmark drives them at the server
    result = run_bench("bench.callback_ingest", *args, "--stages", out=tmp_path / "ingest.json")
    # then every acknowledged callback is one inbox row and one queued task, and nothing failed
    counts = result["counts"]
    assert isinstance(counts, dict)
    assert counts["errors"] == 0
    assert counts["acknowledged"] > 0
    assert counts["inbox_rows"] == counts["distinct_keys"] == counts["stored"]
    assert counts["queued"] == counts["acknowledged"]


def test_full_sync_mirrors_every_customer(tmp_path: Path) -> None:
    # given an emulated corp of 500 customers
    # when the benchmark fetches its pages and syncs it
    result = run_bench("bench.sync_full", "--customers", "500", "--employees", "20", out=tmp_path / "sync.json")
    # then siyu holds exactly the emulator's customers and follows
    counts = result["counts"]
    assert isinstance(counts, dict)
    assert counts["customers_synced"] == counts["customers_expected"] == 500
    assert counts["follows_synced"] == counts["follows_expected"]


def test_welcome_burst_loses_no_add_and_sends_every_welcome(tmp_path: Path) -> None:
    # given a small corp, three channels with welcomes, siyu's server and worker, and the bare receiver
    args = ["--scans", "30", "--per-minute", "600", "--employees", "10", "--customers", "50", "--channels", "3"]
    # when the traffic generator bursts 30 scans at the bare receiver and then at siyu
    result = run_bench("bench.welcome_burst", *args, out=tmp_path / "welcome.json")
    # then every scan is one stored add, one attributed follow and one welcome accepted inside the window
    counts = result["counts"]
    assert isinstance(counts, dict)
    assert set(counts.values()) == {30}
    assert result["zero_lost"] is True
    assert result["all_sent"] is True
    siyu = result["siyu"]
    assert isinstance(siyu, dict)
    assert siyu["statuses"] == {"sent": 30}
