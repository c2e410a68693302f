"""`siyu demo`: the emulator, the server and the worker together on SQLite, with a synced demo corp."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from siyu import demo_acquisition, demo_history, demo_logins, demo_reach

console = Console(soft_wrap=True)  # long URLs and tokens stay on one line, even in a pipe
DEMO_EMPLOYEES = 50
DEMO_CUSTOMERS = 20_000
DAY = 86_400


def _prepare_dir(data_dir: Path, reset: bool, reuse: bool) -> dict[str, object]:
    """The demo's own settings (seed, secret key), created once; --reset starts over."""
    meta_path = data_dir / "demo.json"
    if meta_path.exists() and not reset and not reuse and sys.stdin.isatty():
        reset = typer.confirm(f"Demo data exists in {data_dir}. Reset it (no = reuse it)?", default=False)
    if reset and data_dir.exists():
        for child in data_dir.iterdir():
            child.unlink()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not meta_path.exists():
        # The anchor pins the emulated corp's times, so a run on a later day rebuilds the same corp.
        meta = {"seed": secrets.randbelow(10**6), "secret_key": secrets.token_urlsafe(32), "anchor": _today()}
        _save_meta(data_dir, meta)
    return dict(json.loads(meta_path.read_text()))


def _today() -> int:
    return int(time.time()) // DAY * DAY


def _save_meta(data_dir: Path, meta: dict[str, object]) -> None:
    """demo.json holds the demo's secret key and passwords: readable by its owner only."""
    path = data_dir / "demo.json"
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(meta, indent=2, ensure_ascii=False))


def _environment(data_dir: Path, meta: dict[str, object], port: int) -> dict[str, str]:
    env = {
        "SIYU_ENV": "development",
        "SIYU_DATABASE_URL": f"sqlite:///{data_dir / 'siyu.db'}",
        "SIYU_QUEUE_URL": f"sqlite:///{data_dir / 'queue.db'}",
        "SIYU_SECRET_KEY": str(meta["secret_key"]),
        "SIYU_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    os.environ.update(env)
    from siyu.core.db import reset_caches

    reset_caches()
    return {**os.environ, **env}


def _connect_corp(emulator_url: str, corp: object) -> int:
    """Create the demo corp, or point the existing one at this emulator run."""
    from siyu.core.db import session_scope
    from siyu.corp import service
    from siyu.corp.actions import do_create_corp, do_update_corp_connection
    from siyu.corp.service import forget_crypt

    with session_scope() as session:
        existing = [c for c in service.list_(session) if c.wecom_corpid == corp.corpid]  # type: ignore[attr-defined]
        if existing:
            do_update_corp_connection(
                session,
                existing[0],
                contact_secret=corp.secret,  # type: ignore[attr-defined]
                callback_token=corp.token,  # type: ignore[attr-defined]
                callback_aes_key=corp.encoding_aes_key,  # type: ignore[attr-defined]
                api_base_url=emulator_url,
                actor="demo",
            )
            forget_crypt()
            return existing[0].corp_id
        created = do_create_corp(
            session,
            name=getattr(corp, "corp_name", "演示企业"),
            wecom_corpid=corp.corpid,  # type: ignore[attr-defined]
            contact_secret=corp.secret,  # type: ignore[attr-defined]
            callback_token=corp.token,  # type: ignore[attr-defined]
            callback_aes_key=corp.encoding_aes_key,  # type: ignore[attr-defined]
            agent_id=str(getattr(corp, "agent_id", "")),
            api_base_url=emulator_url,
            actor="demo",
        )
        return created.corp_id


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def demo(
    reset: Annotated[bool, typer.Option("--reset", help="Start from fresh demo data")] = False,
    reuse: Annotated[bool, typer.Option("--reuse", help="Keep the last run's demo data without asking")] = False,
    port: Annotated[int, typer.Option(help="Server port")] = 8000,
    emulator_port: Annotated[int, typer.Option(help="Emulator port")] = 8010,
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its data")] = Path(".siyu-demo"),
    customers: Annotated[int, typer.Option(help="Customers in the demo corp")] = DEMO_CUSTOMERS,
    employees: Annotated[int, typer.Option(help="Employees in the demo corp")] = DEMO_EMPLOYEES,
    exit_after_sync: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Start the emulator, the server and the worker with a synced demo corp; Ctrl-C stops everything."""
    from siyu.core.migrate import upgrade
    from siyu.sync.flows import run_sync
    from siyu.wecom.emulator.server import start_emulator

    data_dir = data_dir.resolve()
    meta = _prepare_dir(data_dir, reset, reuse)
    env = _environment(data_dir, meta, port)
    upgrade()
    console.print(f"[bold]siyu demo[/bold] — data in {data_dir}")
    started = time.monotonic()
    procs: list[subprocess.Popen[bytes]] = []
    seed, anchor = int(str(meta["seed"])), int(str(meta.get("anchor") or _today()))
    emulator = start_emulator(employees=employees, customers=customers, seed=seed, port=emulator_port, now=anchor)
    try:
        corp_id = _connect_corp(emulator.base_url, emulator.corp)
        siyu = [sys.executable, "-m", "siyu"]
        procs.append(subprocess.Popen([*siyu, "serve", "--port", str(port)], env=env))
        procs.append(subprocess.Popen([*siyu, "worker"], env=env))
        _wait_http(f"http://127.0.0.1:{port}/healthz", procs[0])
        history = demo_history.plan(seed, anchor, customers)
        if meta.get("history"):
            demo_history.replay(emulator, history, seed)  # the emulator forgets; siyu remembers
        if meta.get("acquisition"):
            demo_acquisition.replay(emulator, corp_id, seed, dict(meta["acquisition"]), customers)  # type: ignore[call-overload]
        emulator.set_callback_url(f"http://127.0.0.1:{port}/wecom/callback/{corp_id}")
        _sync_with_progress(run_sync, corp_id)
        if not meta.get("history"):
            demo_history.seed(emulator, history, seed, corp_id)
            meta["history"] = len(history)
            _save_meta(data_dir, meta)
        if not meta.get("acquisition"):
            meta["acquisition"] = demo_acquisition.seed(emulator, corp_id, seed, customers)
            _save_meta(data_dir, meta)
        else:
            demo_acquisition.reconnect(corp_id)
        demo_reach.seed(emulator, corp_id)
        if not meta.get("reach"):
            meta["reach"] = demo_reach.seed_history(corp_id, seed)
            _save_meta(data_dir, meta)
        logins = demo_logins.ensure(meta, corp_id, emulator)
        _save_meta(data_dir, meta)
        console.print(f"ready in {time.monotonic() - started:.0f} s")
        _print_welcome(port, emulator.base_url, corp_id, logins)
        if exit_after_sync:
            return
        feed = demo_reach.ReactionFeed(emulator, corp_id)
        while all(p.poll() is None for p in procs):
            time.sleep(1.0)
            try:
                feed.step()
            except Exception as exc:  # the demo keeps running; the next step retries from the same cursor
                console.print(f"[yellow]reaction feed: {exc}[/yellow]")
        console.print("[red]a demo process exited; stopping[/red]")
    except KeyboardInterrupt:
        console.print("\nstopping …")
    finally:
        _stop(procs)
        emulator.stop()


def _sync_with_progress(run_sync: object, corp_id: int) -> None:
    """The same progress bar and summary table as `siyu sync`."""
    from siyu.sync.cli import print_summary, progress_bar

    with progress_bar() as on_progress:
        summary = run_sync(corp_id, progress=on_progress)  # type: ignore[operator]
    print_summary(summary)


def _print_welcome(port: int, emulator_url: str, corp_id: int, logins: demo_logins.Logins) -> None:
    base = f"http://127.0.0.1:{port}"
    rows = "\n".join(f"  {u.username:<12} {u.password:<18} {u.role:<11} {u.note}" for u in logins.users)
    console.print(
        f"""
[green]siyu is running[/green]
  console     {base}/   (sign in with a login below)
  REST API    {base}/docs   (admin's API token: {logins.api_token})
  emulator    {emulator_url}   (an offline WeCom; its callbacks reach the server)
  corp        {corp_id}

Logins (kept in demo.json, so a reused demo prints the same):
  username     password           role
{rows}

The sidebar, as WeCom's chat toolbar opens it (valid 30 minutes; a phone-sized window looks right):
  {logins.sidebar_link}
  a fresh one: siyu sidebar-link --employee {logins.sidebar_employee} --customer {logins.sidebar_customer}

Make something happen in the emulator and watch it arrive:
  siyu emulator act add_customer --url {emulator_url}
  open a channel code's URL (console → 渠道活码 → a code) and press "scan", or a burst of scans:
  siyu emulator traffic --url {emulator_url} --scans 200 --per-minute 600 --churn 0.1

Ctrl-C stops everything."""
    )
