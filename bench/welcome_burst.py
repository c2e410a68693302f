"""Benchmark: a burst of 联系我 scans — from each callback's receipt to send_welcome_msg accepted.

Issue 4 item 8: 10,000 scans in one minute from the emulator's traffic generator; every welcome
must be accepted inside WeCom's 20 s window and no add may be lost. Separate processes:

* `siyu emulator` (100 employees, a few thousand customers): the traffic generator and WeCom. It
  delivers each callback synchronously from the traffic thread, so a slow receiver slows the scans.
* `siyu serve` and `siyu worker --workers N`, on a fresh bench database, corp synced, ~8 channels
  (different employees, one with a tag, all with a welcome using {nickname}/{employee}), created
  through `do_create_channel` and put in WeCom by the running worker's outbox.
* the baseline, same run, same emulator and codes: a bare receiver (uvicorn, one process) that
  verifies and decrypts each callback (MsgCrypt), answers, and calls send_welcome_msg through a
  WeComClient on N threads — no database, no queue. Its receipt → accepted latency is the lower
  bound on this machine.

Then the burst at siyu: wait until the generator is done, every inbox row is processed and no
welcome is pending; latency is `welcome_send.sent_at − received_at` (the inbox receipt). Lost adds:
scans reported by the generator == add events in the inbox == follows attributed to the channels ==
welcomes siyu recorded (sent or not). Exits 1 if they differ. The window goal: every welcome
sent, accepted by the emulator, inside its 20 s (reported as met/MISS; `all_sent` in the JSON).
A burst the receiver slows below the pace is stopped after --max-burst-seconds (default 300).

    python -m bench.welcome_burst                                  # 10,000 scans in a minute, SQLite
    python -m bench.welcome_burst --db postgresql+psycopg://postgres@127.0.0.1:5432/test
    python -m bench.welcome_burst --scans 30 --per-minute 600 --employees 10 --customers 50   # smoke
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.callback_ingest import process_cpu_seconds
from bench.common import (
    BenchDatabase,
    bench_database,
    create_bench_corp,
    free_port,
    machine,
    percentile,
    print_table,
    use_database,
    write_json,
)
from bench.sync_full import Emulator, emulator_process

REPO = Path(__file__).resolve().parents[1]
WINDOW_S = 20.0
WELCOME_TEXT = "{nickname}您好，我是{employee}，欢迎光临"
BARE_ENV = "SIYU_BENCH_BARE"


# --- the baseline: a bare receiver ----------------------------------------------------------------


class MemoryTokens:
    """An in-process access-token store for the bare receiver (siyu's own store is a database table)."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[int, str], Any] = {}
        self._lock = threading.Lock()

    def get(self, corp_id: int, app: str) -> Any:
        from siyu.core.clock import now_utc

        cached = self._tokens.get((corp_id, app))
        return cached if cached is not None and cached.expires_at > now_utc() else None

    def put(self, corp_id: int, app: str, token: str, expires_at: Any) -> None:
        from siyu.wecom.auth import CachedToken

        self._tokens[(corp_id, app)] = CachedToken(token, expires_at)

    def invalidate(self, corp_id: int, app: str, token: str) -> None:
        cached = self._tokens.get((corp_id, app))
        if cached is not None and cached.access_token == token:
            del self._tokens[(corp_id, app)]

    def try_lock(self, corp_id: int, app: str) -> str | None:
        return "bare" if self._lock.acquire(blocking=False) else None

    def unlock(self, corp_id: int, app: str, lease: str) -> None:
        if self._lock.locked():
            self._lock.release()


def bare_app() -> Any:
    """uvicorn factory for the bare receiver: decrypt, answer, send the welcome on a thread pool.

    Configured from SIYU_BENCH_BARE = "token|aes_key|corpid|secret|api_base|threads". Each
    worker thread keeps one WeComClient (one keep-alive connection). GET /bench/results returns
    [receipt, accepted, error] per welcome, in epoch seconds.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from siyu.wecom.callbacks import ExternalContactEvent, parse_event
    from siyu.wecom.client import WeComClient
    from siyu.wecom.crypto import MsgCrypt

    token, aes_key, corpid, secret, api_base, threads = os.environ[BARE_ENV].split("|")
    tokens = MemoryTokens()
    crypt = MsgCrypt(token, aes_key, corpid)
    pool = ThreadPoolExecutor(max_workers=int(threads), thread_name_prefix="bare-send")
    local = threading.local()
    results: list[tuple[float, float, str]] = []

    def send(code: str, nickname: str, receipt: float) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = WeComClient(
                corp_id=0, corpid=corpid, secret=secret, base_url=api_base, token_store=tokens
            )
        error = ""
        try:
            client.send_welcome_msg(code, text=f"{nickname}您好，欢迎光临", attachments=[])
        except Exception as exc:  # recorded, never lost in the pool
            error = f"{type(exc).__name__}: {exc}"
        results.append((receipt, time.time(), error))

    async def callback(request: Request) -> PlainTextResponse:
        receipt = time.time()
        q = request.query_params
        if request.method == "GET":
            return PlainTextResponse(crypt.verify_url(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"]))
        body = await request.body()
        encrypt = body.split(b"<Encrypt><![CDATA[", 1)[1].split(b"]]>", 1)[0].decode()
        event = parse_event(crypt.decrypt_envelope(q["msg_signature"], q["timestamp"], q["nonce"], encrypt))
        if isinstance(event, ExternalContactEvent) and event.welcome_code:
            pool.submit(send, event.welcome_code, event.external_user_id[-6:], receipt)
        return PlainTextResponse("success")

    async def get_results(request: Request) -> JSONResponse:
        return JSONResponse({"results": list(results)})

    return Starlette(
        routes=[
            Route("/bare/callback", callback, methods=["GET", "POST"]),
            Route("/bench/results", get_results, methods=["GET"]),
            Route("/healthz", lambda r: PlainTextResponse("ok"), methods=["GET"]),
        ]
    )


# --- child processes -------------------------------------------------------------------------------


@contextmanager
def child(cmd: list[str], env: dict[str, str], cwd: Path, health: str | None) -> Iterator[subprocess.Popen[bytes]]:
    """A child process (waited for at `health` if given), stopped with SIGINT at the end."""
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=cwd)
    try:
        if health:
            _wait_http(health, proc)
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def siyu_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "siyu", *args]


# --- setting up siyu --------------------------------------------------------------------------------


def create_channels(corp_id: int, count: int, per_channel: int) -> list[int]:
    """`count` channels over different employees, the first with a tag, all with a welcome text."""
    import sqlalchemy as sa

    from siyu.accounts.access import Actor
    from siyu.accounts.models import Role
    from siyu.acquisition.actions import do_create_channel
    from siyu.acquisition.schemas import ChannelWrite
    from siyu.contacts.models import Employee, EmployeeStatus
    from siyu.core.db import session_scope
    from siyu.tags.models import Tag

    admin = Actor(1, corp_id, "bench", Role.ADMIN, None, None)
    with session_scope() as session:
        userids = list(
            session.scalars(
                sa.select(Employee.userid)
                .where(Employee.corp_id == corp_id, Employee.status == EmployeeStatus.ACTIVE)
                .order_by(Employee.userid)
            )
        )
        tag_id = session.scalar(sa.select(Tag.id).where(Tag.corp_id == corp_id).order_by(Tag.id).limit(1))
    per_channel = max(1, min(per_channel, len(userids) // count or 1))
    ids = []
    for n in range(count):
        served = userids[n * per_channel : (n + 1) * per_channel] or userids[:1]
        body = {
            "name": f"门店{n + 1:02d}",
            "userids": served,
            "tag_ids": [tag_id] if n == 0 and tag_id else [],
            "welcome": {"text": WELCOME_TEXT + f"门店{n + 1:02d}"},
        }
        with session_scope() as session:
            ids.append(do_create_channel(session, admin, ChannelWrite.model_validate(body)).id)
    return ids


def wait_for_config_ids(channel_ids: list[int], timeout: float = 120.0) -> list[str]:
    """The running worker sends the outbox: wait until every channel has its WeCom config_id."""
    import sqlalchemy as sa

    from siyu.acquisition.models import Channel
    from siyu.core.db import session_scope

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            rows = session.execute(
                sa.select(Channel.config_id, Channel.sync_error).where(Channel.id.in_(channel_ids))
            ).all()
        if all(r.config_id for r in rows):
            return [str(r.config_id) for r in rows]
        time.sleep(0.2)
    raise RuntimeError(f"channels without a config_id after {timeout:.0f}s: {rows}")


# --- driving the burst ------------------------------------------------------------------------------


def emu_post(emu: Emulator, path: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
    r = httpx.post(f"{emu.base_url}{path}", json=body, timeout=60)
    if r.status_code != expect:
        raise RuntimeError(f"POST {path}: HTTP {r.status_code} {r.text[:300]}")
    return dict(r.json())


def welcome_codes_delivered(emu: Emulator) -> list[str]:
    items = httpx.get(f"{emu.base_url}/emulator/welcome_deliveries", timeout=60).json()["welcome_deliveries"]
    return [d["code"] for d in items]


def burst(
    emu: Emulator, config_ids: list[str], scans: int, per_minute: float, seed: int, max_seconds: float
) -> dict[str, Any]:
    """Reset the emulator's rate-limit buckets (full, WeCom's defaults), run the generator, wait for it.

    The emulator delivers each callback before the next scan, so a slow receiver slows the burst:
    after `max_seconds` the run is stopped (status "stopped"; the scans made so far count).
    """
    emu_post(emu, "/emulator/rate_limit", {})
    run = emu_post(
        emu,
        "/emulator/traffic",
        {"scans": scans, "per_minute": per_minute, "config_ids": config_ids, "seed": seed},
        expect=202,
    )
    url, deadline = f"{emu.base_url}/emulator/traffic/{run['id']}", time.monotonic() + max_seconds
    while True:
        time.sleep(0.5)
        if time.monotonic() > deadline:
            httpx.delete(url, timeout=60)
        got = httpx.get(url, timeout=60).json()
        if got["status"] != "running":
            return dict(got)


def scan_rate(report: dict[str, Any]) -> tuple[float, float]:
    """(seconds from the first scan to the last, scans per minute over that span)."""
    times = report["scan_times"]
    if len(times) < 2:
        return 0.0, 0.0
    span = times[-1] - times[0]
    return span, (len(times) - 1) / span * 60 if span else 0.0


@dataclass
class Backlog:
    """Samples of pending inbox rows and pending welcomes while the burst runs (every `every` s)."""

    corp_id: int
    every: float = 0.5
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> tuple[int, int]:
        import sqlalchemy as sa

        from siyu.acquisition.models import WelcomeSend, WelcomeStatus
        from siyu.callbacks.models import CallbackInbox, InboxStatus
        from siyu.core.db import session_scope

        with session_scope() as session:
            inbox = session.scalar(
                sa.select(sa.func.count()).where(
                    CallbackInbox.corp_id == self.corp_id, CallbackInbox.status == InboxStatus.PENDING
                )
            )
            welcomes = session.scalar(
                sa.select(sa.func.count()).where(
                    WelcomeSend.corp_id == self.corp_id, WelcomeSend.status == WelcomeStatus.PENDING
                )
            )
        return int(inbox or 0), int(welcomes or 0)

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.is_set():
            try:
                inbox, welcomes = self.sample()
            except Exception:  # a locked SQLite read: skip this sample
                inbox, welcomes = -1, -1
            self.samples.append((time.monotonic() - started, inbox, welcomes))
            self.stop.wait(self.every)

    @contextmanager
    def running(self) -> Iterator[Backlog]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(10)

    def peak(self) -> tuple[int, float]:
        good = [s for s in self.samples if s[1] >= 0]
        if not good:
            return 0, 0.0
        at, inbox, _ = max(good, key=lambda s: s[1])
        return inbox, at


def inbox_counts(corp_id: int) -> tuple[int, int]:
    """(add events stored, of which still pending)."""
    import sqlalchemy as sa

    from siyu.callbacks.models import CallbackInbox
    from siyu.core.db import session_scope

    with session_scope() as session:
        rows = session.execute(
            sa.select(CallbackInbox.status, sa.func.count())
            .where(CallbackInbox.corp_id == corp_id, CallbackInbox.change_type == "add_external_contact")
            .group_by(CallbackInbox.status)
        ).all()
    counts = dict(rows)
    return sum(counts.values()), int(counts.get("pending", 0))


def wait_until_processed(corp_id: int, backlog: Backlog, expected: int, timeout: float) -> float:
    """Until every expected add is stored and processed and no welcome is pending; returns seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        stored, pending = inbox_counts(corp_id)
        _, welcomes = backlog.sample()
        if stored >= expected and pending == 0 and welcomes == 0:
            break
        time.sleep(0.5)
    return time.monotonic() - started


# --- results ------------------------------------------------------------------------------------------


def latency_stats(latencies: Sequence[float]) -> dict[str, float]:
    s = sorted(latencies)
    return {
        "count": len(s),
        "p50_s": percentile(s, 50),
        "p90_s": percentile(s, 90),
        "p99_s": percentile(s, 99),
        "max_s": s[-1] if s else float("nan"),
        "within_20s": sum(1 for v in s if v <= WINDOW_S),
    }


def bare_results(port: int) -> tuple[dict[str, float], Counter[str]]:
    rows = httpx.get(f"http://127.0.0.1:{port}/bench/results", timeout=60).json()["results"]
    ok = [accepted - receipt for receipt, accepted, error in rows if not error]
    return latency_stats(ok), Counter(error.split(":", 1)[0] for _, _, error in rows if error)


def siyu_results(corp_id: int, channel_ids: list[int], delivered: set[str]) -> dict[str, Any]:
    """Latency, statuses and the counts that must agree, all from siyu's database."""
    import sqlalchemy as sa

    from siyu.acquisition.models import WelcomeSend
    from siyu.callbacks.models import CallbackInbox
    from siyu.contacts.models import Follow
    from siyu.core.db import session_scope

    with session_scope() as session:
        sends = session.execute(
            sa.select(
                WelcomeSend.welcome_code,
                WelcomeSend.status,
                WelcomeSend.reason,
                WelcomeSend.received_at,
                WelcomeSend.sent_at,
                WelcomeSend.deadline_at,
            ).where(WelcomeSend.corp_id == corp_id)
        ).all()
        follows = session.scalar(
            sa.select(sa.func.count()).where(Follow.corp_id == corp_id, Follow.channel_id.in_(channel_ids))
        )
        stages = session.execute(
            sa.select(CallbackInbox.received_at, CallbackInbox.processed_at).where(
                CallbackInbox.corp_id == corp_id, CallbackInbox.change_type == "add_external_contact"
            )
        ).all()
    sent = [r for r in sends if r.status == "sent" and r.sent_at is not None]
    latencies = [(r.sent_at - r.received_at).total_seconds() for r in sent]
    in_window = sum(1 for r in sent if r.sent_at <= r.deadline_at)
    processed = [(r.processed_at - r.received_at).total_seconds() for r in stages if r.processed_at]
    by_code = {r.welcome_code: r for r in sends}
    send_step = [
        (by_code[c].sent_at - p).total_seconds()
        for c, p in _processed_by_code(corp_id)
        if c in by_code and by_code[c].sent_at is not None
    ]
    return {
        "latency": latency_stats(latencies),
        "receipt_to_processed": latency_stats(processed),
        "processed_to_sent": latency_stats(send_step),
        "statuses": dict(Counter(r.status for r in sends)),
        "reasons": dict(Counter(f"{r.status}: {r.reason[:120]}" for r in sends if r.status != "sent")),
        "sent_in_window": in_window,
        "welcome_rows": len(sends),
        "follows_attributed": int(follows or 0),
        "emulator_accepted": sum(1 for r in sends if r.welcome_code in delivered),
    }


def _processed_by_code(corp_id: int) -> list[tuple[str, Any]]:
    """(WelcomeCode, when its inbox row was marked done) — the code read from the stored payload."""
    import sqlalchemy as sa

    from siyu.callbacks.models import CallbackInbox
    from siyu.core.db import session_scope

    with session_scope() as session:
        rows = session.execute(
            sa.select(CallbackInbox.payload, CallbackInbox.processed_at).where(
                CallbackInbox.corp_id == corp_id, CallbackInbox.change_type == "add_external_contact"
            )
        ).all()
    out = []
    for payload, processed_at in rows:
        if processed_at is None or "<WelcomeCode><![CDATA[" not in payload:
            continue
        out.append((payload.split("<WelcomeCode><![CDATA[", 1)[1].split("]]>", 1)[0], processed_at))
    return out


def fmt_s(v: float) -> str:
    return f"{v:.3f}" if v == v else "–"


def latency_row(name: str, scans: int, rate: float, stats: dict[str, float], extra: str) -> list[str]:
    return [
        name, f"{scans:,}", f"{rate:,.0f}", f"{stats['count']:,}", fmt_s(stats["p50_s"]), fmt_s(stats["p90_s"]),
        fmt_s(stats["p99_s"]), fmt_s(stats["max_s"]), f"{stats['within_20s']:,}", extra,
    ]  # fmt: skip


# --- the run --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scans", type=int, default=10_000, help="scans in the burst at siyu (default 10000)")
    p.add_argument("--per-minute", type=float, default=10_000, help="generator pace (default 10000/min)")
    p.add_argument("--baseline-scans", type=int, help="scans in the bare-receiver burst (default: --scans)")
    p.add_argument("--workers", type=int, default=2, help="siyu worker threads, and the bare sender's (default 2)")
    p.add_argument("--processes", action="store_true", help="siyu worker --processes: one process per worker")
    p.add_argument("--channels", type=int, default=8, help="channels to create (default 8)")
    p.add_argument("--employees", type=int, default=100, help="employees in the emulated corp (default 100)")
    p.add_argument("--customers", type=int, default=2000, help="customers in the emulated corp (default 2000)")
    p.add_argument("--seed", type=int, default=1, help="emulator and generator seed (default 1)")
    p.add_argument(
        "--max-burst-seconds", type=float, default=300, help="stop a burst the receiver slows down after this (300)"
    )
    p.add_argument("--timeout", type=float, default=600, help="max seconds to wait for siyu to drain (default 600)")
    p.add_argument("--db", help="PostgreSQL URL (a temp schema is used and dropped); default: temp SQLite")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print("machine:", machine())
    baseline_scans = args.scans if args.baseline_scans is None else args.baseline_scans
    with (
        bench_database(args.db) as db,
        emulator_process(customers=args.customers, employees=args.employees, seed=args.seed) as emu,
    ):
        print(f"backend {db.backend}; emulator {emu.counts}")
        result = run(args, db, emu, baseline_scans)
    write_json(args.json, result)
    if not result["zero_lost"]:
        print("FAILED: adds were lost (the counts above differ)", file=sys.stderr)
    return 0 if result["zero_lost"] else 1


def run(args: argparse.Namespace, db: BenchDatabase, emu: Emulator, baseline_scans: int) -> dict[str, Any]:
    from siyu.core.tasks import configure_queue
    from siyu.sync.flows import run_sync

    use_database(db)
    configure_queue()
    corp = emu.corp
    corp_id = create_bench_corp(
        wecom_corpid=corp["corpid"], secret=corp["secret"], token=corp["token"],
        aes_key=corp["encoding_aes_key"], api_base_url=emu.base_url,
    )  # fmt: skip
    run_sync(corp_id)
    siyu_port, bare_port = free_port(), free_port()
    serve_cmd = siyu_cmd("serve", "--port", str(siyu_port))
    worker_cmd = siyu_cmd("worker", "--workers", str(args.workers), *(["--processes"] if args.processes else []))
    bare_env = {BARE_ENV: "|".join([corp["token"], corp["encoding_aes_key"], corp["corpid"], corp["secret"],
                                    emu.base_url, str(args.workers)])}  # fmt: skip
    bare_cmd = [sys.executable, "-m", "uvicorn", "bench.welcome_burst:bare_app", "--factory", "--host", "127.0.0.1"]
    bare_cmd += ["--port", str(bare_port), "--log-level", "warning", "--no-access-log", "--app-dir", str(REPO)]
    with (
        child(serve_cmd, db.env(), db.workdir, f"http://127.0.0.1:{siyu_port}/healthz") as server,
        child(worker_cmd, db.env(), db.workdir, None) as worker,
    ):
        channel_ids = create_channels(corp_id, args.channels, per_channel=3)
        config_ids = wait_for_config_ids(channel_ids)
        print(f"{len(config_ids)} channels in WeCom: {config_ids}")

        # 1. the baseline: the same generator at the bare receiver
        with child(bare_cmd, {**db.env(), **bare_env}, db.workdir, f"http://127.0.0.1:{bare_port}/healthz"):
            emu_post(emu, "/emulator/callback", {"url": f"http://127.0.0.1:{bare_port}/bare/callback"})
            bare_run = burst(emu, config_ids, baseline_scans, args.per_minute, args.seed, args.max_burst_seconds)
            bare_report = bare_run["report"]
            deadline = time.monotonic() + 60
            while True:  # the sends of the last scans
                bare_stats, bare_errors = bare_results(bare_port)
                if bare_stats["count"] + sum(bare_errors.values()) >= bare_report["scans"]:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the bare receiver sent {bare_stats['count']} of {bare_report['scans']}")
                time.sleep(0.5)
        bare_span, bare_rate = scan_rate(bare_report)
        before = set(welcome_codes_delivered(emu))

        # 2. siyu
        emu_post(emu, "/emulator/callback", {"url": f"http://127.0.0.1:{siyu_port}/wecom/callback/{corp_id}"})
        backlog = Backlog(corp_id)
        cpu0 = {name: process_cpu_seconds(p.pid) for name, p in (("serve", server), ("worker", worker))}
        cpu0["emulator"] = process_cpu_seconds(emu.pid)
        started = time.monotonic()
        with backlog.running():
            siyu_run = burst(emu, config_ids, args.scans, args.per_minute, args.seed + 1, args.max_burst_seconds)
            burst_s = time.monotonic() - started
            drained = wait_until_processed(corp_id, backlog, siyu_run["report"]["scans"], args.timeout)
        total_s = time.monotonic() - started
        cpu = {name: process_cpu_seconds(p.pid) - cpu0[name] for name, p in (("serve", server), ("worker", worker))}
        cpu["emulator"] = process_cpu_seconds(emu.pid) - cpu0["emulator"]
        report = siyu_run["report"]
        delivered = set(welcome_codes_delivered(emu)) - before
        stored, pending = inbox_counts(corp_id)
        got = siyu_results(corp_id, channel_ids, delivered)
    span, rate = scan_rate(report)
    peak, peak_at = backlog.peak()
    load = os.getloadavg()

    print(f"\nbaseline burst ({bare_run['status']}): {bare_report['scans']:,} of {baseline_scans:,} scans in "
          f"{bare_span:.1f}s; siyu burst ({siyu_run['status']}): {report['scans']:,} of {args.scans:,} "
          f"scans in {span:.1f}s (generator errors {report['errors']}); siyu drained {drained:.1f}s after the "
          f"generator finished ({total_s:.1f}s in all); load average {load[0]:.1f}")  # fmt: skip
    print()
    heads = ["receiver", "scans", "scans/min", "welcomes sent", "p50 s", "p90 s", "p99 s", "max s", "≤ 20 s", "notes"]
    print_table(
        heads,
        [
            latency_row("bare (decrypt + send, no DB/queue)", bare_report["scans"], bare_rate, bare_stats,
                        ", ".join(f"{k} ×{v}" for k, v in bare_errors.items()) or "no errors"),
            latency_row("siyu (serve + worker)", report["scans"], rate, got["latency"],
                        f"in window {got['sent_in_window']:,}; backlog peak {peak:,} at {peak_at:.0f}s"),
        ],
    )  # fmt: skip
    print("\nsiyu, per stage (seconds):")
    print_table(
        ["stage", "count", "p50", "p90", "p99", "max"],
        [
            [name, f"{s['count']:,}", fmt_s(s["p50_s"]), fmt_s(s["p90_s"]), fmt_s(s["p99_s"]), fmt_s(s["max_s"])]
            for name, s in (
                ("receipt → inbox row done (queue wait + apply)", got["receipt_to_processed"]),
                ("inbox row done → welcome accepted", got["processed_to_sent"]),
                ("receipt → welcome accepted", got["latency"]),
            )
        ],
    )
    counts = {
        "scans (generator)": report["scans"],
        "add events in the inbox": stored,
        "follows attributed to the channels": got["follows_attributed"],
        "welcome_send rows": got["welcome_rows"],
        "welcomes accepted by the emulator": got["emulator_accepted"],
    }
    print("\nlost adds check:")
    print_table(["what", "count"], [[k, f"{v:,}"] for k, v in counts.items()])
    print(f"\nwelcome statuses: {got['statuses']}")
    for reason, n in got["reasons"].items():
        print(f"  {n:,} × {reason}")
    print("CPU seconds during the siyu burst + drain: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
    adds = [v for k, v in counts.items() if k != "welcomes accepted by the emulator"]
    zero_lost = len(set(adds)) == 1 and report["errors"] == 0 and pending == 0
    sent = got["statuses"].get("sent", 0)
    all_sent = got["sent_in_window"] == got["emulator_accepted"] == sent == report["scans"]
    print(
        f"\n{'met ' if zero_lost else 'MISS'}  zero lost adds (scans = inbox adds = attributed follows = welcome rows)"
    )
    print(f"{'met ' if all_sent else 'MISS'}  every welcome accepted inside the 20 s window")
    return {
        "backend": db.backend,
        "machine": machine(),
        "params": {k: v for k, v in vars(args).items() if k != "json"} | {"baseline_scans": baseline_scans},
        "baseline": {
            "status": bare_run["status"],
            "scans": bare_report["scans"],
            "seconds": bare_span,
            "per_minute": bare_rate,
            "latency": bare_stats,
            "errors": dict(bare_errors),
        },
        "siyu": {
            "status": siyu_run["status"],
            "scans": report["scans"],
            "generator_errors": report["errors"],
            "seconds": span,
            "per_minute": rate,
            "burst_wall_s": burst_s,
            "drain_after_burst_s": drained,
            **got,
            "backlog_peak": peak,
            "backlog_peak_at_s": peak_at,
            "backlog_samples": backlog.samples,
            "cpu_s": cpu,
        },
        "counts": counts,
        "zero_lost": zero_lost,
        "all_sent": all_sent,
        "ok": zero_lost and all_sent,
    }


if __name__ == "__main__":
    sys.exit(main())
