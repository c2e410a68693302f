"""Benchmark (a): WeCom callback ingest against a bare endpoint on the same server, in the same run.

The server is the real `siyu.app.create_app()` under uvicorn (one worker, as `siyu serve` runs it) in
its own process, plus one route added here, `POST /bench/bare/{corp_id}`, which reads the body and
answers "success". One asyncio load generator (raw HTTP/1.1 keep-alive sockets, fixed concurrency)
drives both endpoints with the same bytes, alternating bare and callback rounds so the machine's
noise hits both. Every callback is a distinct event, so each one is verified, decrypted, inserted
into the inbox, committed and enqueued; afterwards the inbox and the queue must hold exactly the
number of callbacks acknowledged, or the run fails.

    python -m bench.callback_ingest                      # SQLite in a temp dir
    python -m bench.callback_ingest --db postgresql+psycopg://postgres@127.0.0.1:5432/test
    python -m bench.callback_ingest --profile-server /tmp/ingest.txt   # + a py-spy'd extra round
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

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

REPO = Path(__file__).resolve().parents[1]
CORPID = "wwbench00000000001"
EVENT = (
    "<xml><ToUserName><![CDATA[{corpid}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
    "<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
    "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
    "<UserID><![CDATA[staff{staff:03d}]]></UserID><ExternalUserID><![CDATA[wmbench{n:09d}]]></ExternalUserID>"
    "<State><![CDATA[bench]]></State><WelcomeCode><![CDATA[WELCOMECODE{n:09d}]]></WelcomeCode></xml>"
)
GOAL_RATE, GOAL_P99_MS, GOAL_RATIO = 1000.0, 50.0, 0.30


def bench_app() -> FastAPI:
    """The uvicorn factory run in the server process: the real app plus the bench's own routes.

    /bench/bare reads the body and answers (the baseline). With --stages, /bench/decrypt splits the
    callback's work: the corp lookup, signature, decryption and parsing (the router's `open_event`),
    but no database write and no enqueue.
    """
    from siyu.app import create_app

    app = create_app()

    @app.post("/bench/bare/{corp_id}", response_class=PlainTextResponse)
    async def bare(corp_id: int, request: Request) -> PlainTextResponse:
        await request.body()
        return PlainTextResponse("success")

    @app.post("/bench/decrypt/{corp_id}", response_class=PlainTextResponse)
    async def decrypt(corp_id: int, request: Request) -> PlainTextResponse:
        body, q = await request.body(), request.query_params
        _decrypt_only(corp_id, body, q["msg_signature"], q["timestamp"], q["nonce"])
        return PlainTextResponse("success")

    return app


def _decrypt_only(corp_id: int, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
    from siyu.callbacks.router import open_event

    return open_event(corp_id, body, msg_signature, timestamp, nonce).dedupe_key


# --- the load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    query: str
    body: bytes

    def request(self, path: str, host: str) -> bytes:
        head = (
            f"POST {path}?{self.query} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(self.body)}\r\n\r\n"
        )
        return head.encode() + self.body


def seal_events(count: int, *, token: str, aes_key: str) -> list[Payload]:
    """`count` distinct events (different ExternalUserIDs), sealed as WeCom sends them."""
    from siyu.wecom.crypto import MsgCrypt, envelope_xml

    crypt = MsgCrypt(token, aes_key, CORPID)
    ts = int(time.time())
    payloads = []
    for n in range(count):
        env = crypt.seal(EVENT.format(corpid=CORPID, ts=ts, staff=n % 200, n=n))
        query = f"msg_signature={env.msg_signature}&timestamp={env.timestamp}&nonce={env.nonce}"
        payloads.append(Payload(query, envelope_xml(CORPID, env.encrypt).encode()))
    return payloads


@dataclass
class RoundResult:
    endpoint: str
    label: str
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    server_cpu: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def _connection(port: int, requests: Iterator[bytes], deadline: float, result: RoundResult) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            request = next(requests, None)
            if request is None:
                return
            started = time.perf_counter()
            writer.write(request)
            status, body = await _read_response(reader)
            if status == 200 and body == b"success":
                result.latencies.append(time.perf_counter() - started)
            else:
                result.errors[f"{status} {body[:120]!r}"] += 1
    finally:
        writer.close()


async def run_round(
    port: int, requests: Iterator[bytes], *, concurrency: int, seconds: float, result: RoundResult, server_pid: int
) -> RoundResult:
    """Keep `concurrency` connections busy for `seconds` (or until `requests` runs out)."""
    cpu0, started = process_cpu_seconds(server_pid), time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_connection(port, requests, deadline, result) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.server_cpu = (process_cpu_seconds(server_pid) - cpu0) / result.seconds
    return result


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the server ----------------------------------------------------------------------------------


@contextmanager
def serve(db: BenchDatabase, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """uvicorn with one worker in a child process, configured the way `siyu serve` is."""
    cmd = [sys.executable, "-m", "uvicorn", "bench.callback_ingest:bench_app", "--factory"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning"]
    cmd += ["--app-dir", str(REPO)]
    proc = subprocess.Popen(cmd, env={**os.environ, **db.env()}, cwd=db.workdir)
    try:
        _wait_until_up(port, proc)
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the server did not come up")


@contextmanager
def py_spy(pid: int, out: str | None) -> Iterator[None]:
    """Sample the server with py-spy (raw collapsed stacks) while the block runs."""
    exe = shutil.which("py-spy") if out else None
    if out and exe is None:
        print("py-spy not found on PATH; no profile taken", file=sys.stderr)
    if exe is None or out is None:
        yield
        return
    spy = subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--nonblocking",
            "--idle",
            "--threads",
            "--format",
            "raw",
            "-o",
            out,
        ]
    )
    time.sleep(1.0)  # let it attach before the load starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Plan:
    port: int
    corp_id: int
    concurrency: int
    seconds: float
    rounds: int
    warmup: int
    server_pid: int
    endpoints: tuple[str, ...] = ("bare", "callback")


PATHS = {
    "bare": "/bench/bare",
    "decrypt": "/bench/decrypt",
    "callback": "/wecom/callback",
}
STAGES = ("bare", "decrypt", "callback")
STORING = ("callback",)  # the endpoints that insert, and so need events never sent before


def _sources(plan: Plan, payloads: list[Payload]) -> dict[str, Iterator[bytes]]:
    """Per endpoint, the requests to send: storing ones share one stream of distinct events."""
    host = f"127.0.0.1:{plan.port}"
    fresh = iter(payloads)
    sources: dict[str, Iterator[bytes]] = {}
    for name in plan.endpoints:
        path = f"{PATHS[name]}/{plan.corp_id}"
        if name in STORING:
            sources[name] = map(partial(Payload.request, path=path, host=host), fresh)
        else:
            sources[name] = itertools.cycle([p.request(path, host) for p in payloads[:2000]])
    return sources


async def drive(plan: Plan, payloads: list[Payload], profile: str | None) -> list[RoundResult]:
    """Warm every endpoint up, then rotate through them round by round; an optional profiled round last."""
    sources = _sources(plan, payloads)
    schedule = [(name, "warm-up", itertools.islice(sources[name], plan.warmup), 3600.0) for name in plan.endpoints]
    for n in range(1, plan.rounds + 1):
        schedule += [(name, str(n), sources[name], plan.seconds) for name in plan.endpoints]
    results = []
    for endpoint, label, requests, seconds in schedule:
        results.append(await _round(plan, endpoint, label, requests, seconds))
    if profile:
        with py_spy(plan.server_pid, profile):
            results.append(await _round(plan, "callback", "profiled", sources["callback"], plan.seconds))
    return results


async def _round(plan: Plan, endpoint: str, label: str, requests: Iterator[bytes], seconds: float) -> RoundResult:
    result = RoundResult(endpoint, label)
    await run_round(
        plan.port, requests, concurrency=plan.concurrency, seconds=seconds, result=result, server_pid=plan.server_pid
    )
    return result


def summarise(results: Sequence[RoundResult], endpoint: str) -> dict[str, float]:
    measured = [r for r in results if r.endpoint == endpoint and r.label.isdigit()]
    latencies = sorted(lat for r in measured for lat in r.latencies)
    seconds = sum(r.seconds for r in measured)
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "rate": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "server_cpu": sum(r.server_cpu * r.seconds for r in measured) / seconds if seconds else 0.0,
    }


def report(results: Sequence[RoundResult]) -> dict[str, dict[str, float]]:
    rows = []
    for r in results:
        lat = sorted(r.latencies)
        rows.append(
            [r.endpoint, r.label, str(r.ok), f"{r.seconds:.2f}", f"{r.rate:,.0f}", f"{percentile(lat, 50) * 1000:.1f}",
             f"{percentile(lat, 99) * 1000:.1f}", f"{r.server_cpu:.0%}", str(sum(r.errors.values()))]
        )  # fmt: skip
    print_table(["endpoint", "round", "requests", "s", "rate/s", "p50 ms", "p99 ms", "server CPU", "errors"], rows)
    summary = {name: summarise(results, name) for name in dict.fromkeys(r.endpoint for r in results)}
    print()
    print_table(
        ["endpoint (measured rounds)", "requests", "rate/s", "p50 ms", "p99 ms", "server CPU"],
        [
            [name, f"{s['requests']:,}", f"{s['rate']:,.0f}", f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}",
             f"{s['server_cpu']:.0%}"]
            for name, s in summary.items()
        ],
    )  # fmt: skip
    return summary


def goals(summary: dict[str, dict[str, float]]) -> dict[str, bool]:
    cb, bare = summary["callback"], summary["bare"]
    ratio = cb["rate"] / bare["rate"] if bare["rate"] else 0.0
    print(f"\ncallback / bare rate: {ratio:.1%}")
    checks = {
        f"callback rate >= {GOAL_RATE:,.0f}/s": cb["rate"] >= GOAL_RATE,
        f"callback p99 < {GOAL_P99_MS:.0f} ms": cb["p99_ms"] < GOAL_P99_MS,
        f"callback rate >= {GOAL_RATIO:.0%} of bare": ratio >= GOAL_RATIO,
    }
    for name, ok in checks.items():
        print(f"  {'met ' if ok else 'MISS'}  {name}")
    return checks


def verify(db: BenchDatabase, corp_id: int, results: Sequence[RoundResult]) -> dict[str, int]:
    """The inbox and the queue must hold exactly the callbacks acknowledged: the work was real."""
    import sqlalchemy as sa

    from siyu.callbacks.models import CallbackInbox
    from siyu.core.db import session_scope
    from siyu.core.tasks import storage_for

    acknowledged = sum(r.ok for r in results if r.endpoint == "callback")
    stored = sum(r.ok for r in results if r.endpoint in STORING)
    with session_scope() as session:
        rows, keys = session.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(CallbackInbox.dedupe_key))).where(
                CallbackInbox.corp_id == corp_id
            )
        ).one()
    queued = _queued_event_ids(storage_for(db.queue_url))
    errors = sum(sum(r.errors.values()) for r in results)
    counts = {"acknowledged": acknowledged, "stored": stored, "inbox_rows": rows, "distinct_keys": keys}
    print(
        f"\ncallbacks acknowledged {acknowledged:,}; inbox rows {rows:,} ({keys:,} distinct); "
        f"inbox ids in queued tasks {queued:,}"
    )
    return {**counts, "queued": queued, "errors": errors}


def _queued_event_ids(storage: Any) -> int:
    """How many inbox ids the queued processing messages carry (one per group commit, many ids each).

    Adds with a WelcomeCode also queue a welcome-first message each (acquisition.tasks.welcome_first);
    those are not processing and are not counted here.
    """
    from huey.serializer import Serializer

    serializer, total = Serializer(), 0
    for data in storage.enqueued_items():
        message = serializer.deserialize(data)
        if not message.name.endswith(("process_callbacks", "process_callback")):
            continue
        total += len(message.args[0]) if message.args and isinstance(message.args[0], list) else 1
    return total


def correct(counts: dict[str, int]) -> bool:
    """No failed request; one inbox row per stored event; every acknowledged callback's id is queued."""
    stored_ok = counts["stored"] == counts["inbox_rows"] == counts["distinct_keys"]
    return counts["errors"] == 0 and stored_ok and counts["queued"] == counts["acknowledged"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", help="PostgreSQL URL (a temp schema is used and dropped); default: temp SQLite")
    p.add_argument("--concurrency", type=int, default=16, help="keep-alive connections (default 16)")
    p.add_argument("--seconds", type=float, default=5.0, help="length of each measured round (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="bare/callback round pairs (default 3)")
    p.add_argument("--warmup", type=int, default=500, help="warm-up requests per endpoint (default 500)")
    p.add_argument("--events", type=int, default=30_000, help="distinct sealed events to prepare (default 30000)")
    p.add_argument("--stages", action="store_true", help="also time the decrypt-only route")
    p.add_argument("--profile-server", metavar="FILE", help="add a callback round sampled by py-spy into FILE")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print("machine:", machine())
    from siyu.wecom.crypto import generate_encoding_aes_key, generate_token

    token, aes_key = generate_token(), generate_encoding_aes_key()
    with bench_database(args.db) as db:
        use_database(db)
        corp_id = create_bench_corp(
            wecom_corpid=CORPID, secret="bench", token=token, aes_key=aes_key, api_base_url="http://127.0.0.1:9"
        )
        started = time.perf_counter()
        payloads = seal_events(args.events, token=token, aes_key=aes_key)
        print(f"backend {db.backend}; sealed {len(payloads):,} distinct events in {time.perf_counter() - started:.1f}s")
        port = free_port()
        with serve(db, port) as proc:
            endpoints = STAGES if args.stages else ("bare", "callback")
            plan = Plan(port, corp_id, args.concurrency, args.seconds, args.rounds, args.warmup, proc.pid, endpoints)
            results = asyncio.run(drive(plan, payloads, args.profile_server))
        summary = report(results)
        checks = goals(summary)
        counts = verify(db, corp_id, results)
        if args.profile_server:
            print_profile(args.profile_server)
    write_json(args.json, {"backend": db.backend, "summary": summary, "goals": checks, "counts": counts})
    ok = correct(counts)
    if not ok:
        print("FAILED: the inbox/queue do not match what was acknowledged, or requests failed", file=sys.stderr)
    return 0 if ok else 1


# --- the profile ---------------------------------------------------------------------------------

LOOP_SPOTS = {
    "handling requests (all of the ASGI app)": "run_asgi (uvicorn/protocols/http/",
    "  of which open_event (verify, decrypt, parse)": "open_event (siyu/callbacks/router.py",
    "    of which verify signature + decrypt": "decrypt_envelope (siyu/wecom/crypto.py",
    "    of which parse event XML": "parse_event (siyu/wecom/callbacks.py",
    "    of which dedupe key": "dedupe_key (siyu/wecom/callbacks.py",
}
INGEST_SPOTS = {
    "INSERT (do_store_event)": "do_store_event (siyu/callbacks/actions.py",
    "Huey enqueue (one per batch)": "_enqueue (siyu/callbacks/writer.py",
    "  of which building the statement's cache key": "_generate_cache_key (sqlalchemy/sql/cache_key.py",
    "  of which opening a new DB connection": "Pool._create_connection (sqlalchemy/pool/base.py",
    "COMMIT": "Session.commit (sqlalchemy/orm/session.py",
}


def _tally(path: str) -> tuple[Counter[str], Counter[str]]:
    """Wall-clock samples of the event-loop thread and of the inbox writer thread, by hot spot."""
    loop, ingest = Counter[str](), Counter[str]()
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        if "Server.run (uvicorn/server.py" in stack:
            tally, spots = loop, LOOP_SPOTS
        elif "_write (siyu/callbacks/writer.py" in stack:
            tally, spots = ingest, INGEST_SPOTS
        else:
            continue
        tally["total"] += int(count)
        for name, marker in spots.items():
            tally[name] += int(count) * (marker in stack)
    return loop, ingest


def print_profile(path: str) -> None:
    """Where the server's wall-clock time goes during the profiled callback round (py-spy --idle)."""
    if not Path(path).exists():
        return
    loop, ingest = _tally(path)
    print(f"\nserver profile, wall clock (py-spy raw stacks in {path}):")
    print(f"  event-loop thread ({loop['total']:,} samples):")
    for name in LOOP_SPOTS:
        print(f"    {loop[name] / max(loop['total'], 1):6.1%}  {name}")
    print(f"  inbox writer thread, writing ({ingest['total']:,} samples):")
    for name in INGEST_SPOTS:
        print(f"    {ingest[name] / max(ingest['total'], 1):6.1%}  {name}")


if __name__ == "__main__":
    sys.exit(main())
