"""The `siyu` command: demo, serve, worker, emulator, sync, db, corp."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from siyu.core.db import session_scope
from siyu.core.errors import DomainError

app = typer.Typer(help="siyu (私域): an open-source SCRM for WeCom.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
corp_app = typer.Typer(help="Connected WeCom corps.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(corp_app, name="corp")
console = Console()


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s %(message)s")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the Alembic migrations to SIYU_DATABASE_URL."""
    from siyu.core.migrate import upgrade

    upgrade(revision=revision)
    console.print("database is at", revision)


@corp_app.command("add")
def corp_add(
    name: Annotated[str, typer.Option(help="Display name")],
    corpid: Annotated[str, typer.Option(help="WeCom corp id (ww…)")],
    secret: Annotated[str, typer.Option(help="Secret of the app allowed to call 客户联系 APIs")],
    token: Annotated[str, typer.Option(help="Callback Token")],
    aes_key: Annotated[str, typer.Option(help="Callback EncodingAESKey (43 chars)")],
    api_base: Annotated[str | None, typer.Option(help="API base URL (default: WeCom)")] = None,
    agent_id: str = "",
) -> None:
    """Connect a WeCom corp."""
    from siyu.core.config import get_settings
    from siyu.corp.actions import do_create_corp

    try:
        with session_scope() as session:
            corp = do_create_corp(
                session,
                name=name,
                wecom_corpid=corpid,
                contact_secret=secret,
                callback_token=token,
                callback_aes_key=aes_key,
                api_base_url=api_base or get_settings().wecom_api_base,
                agent_id=agent_id,
                actor="cli",
            )
            corp_id = corp.corp_id
    except DomainError as exc:
        raise fail(exc.msg) from exc
    base = get_settings().public_base_url.rstrip("/")
    console.print(f"corp {corp_id} connected; callback URL: {base}/wecom/callback/{corp_id}")


@corp_app.command("list")
def corp_list() -> None:
    """List connected corps."""
    from siyu.corp import service

    table = Table("id", "name", "corpid", "api")
    with session_scope() as session:
        for corp in service.list_(session):
            table.add_row(str(corp.corp_id), corp.name, corp.wecom_corpid, corp.api_base_url)
    console.print(table)


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the web server: console, sidebar, REST API and the WeCom callback endpoint."""
    import uvicorn

    uvicorn.run("siyu.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="warning")


@app.command()
def worker(
    workers: Annotated[int, typer.Option(help="Workers (threads, or processes with --processes)")] = 2,
    processes: Annotated[
        bool, typer.Option("--processes", help="One process per worker: uses several cores (callback bursts)")
    ] = False,
) -> None:
    """Run the task-queue worker (callbacks, syncs, periodic jobs)."""
    from siyu.worker import run

    run(workers, processes=processes)


def _mount_optional() -> None:
    try:
        from siyu.sync.cli import sync

        app.command(help="Mirror a corp from WeCom: departments, employees, customers, tags, groups.")(sync)
    except ImportError:  # pragma: no cover - only while the sync module is absent
        pass
    try:
        from siyu.wecom.emulator.cli import emulator_app

        app.add_typer(emulator_app, name="emulator")
    except ImportError:  # pragma: no cover
        pass
    from siyu.accounts.cli import user_app
    from siyu.acquisition.cli import channel_app

    app.add_typer(channel_app, name="channel")
    from siyu.segments.cli import segment_app

    app.add_typer(segment_app, name="segment")
    _mount_broadcasts()

    app.add_typer(user_app, name="user")
    from siyu.sidebar.cli import sidebar_link

    app.command("sidebar-link", help="Print a signed link opening the sidebar as an employee.")(sidebar_link)
    from siyu.demo import demo

    app.command(help="Start the demo: emulator, server and worker with a synced demo corp.")(demo)


def _mount_broadcasts() -> None:
    """One `siyu broadcast` group: create / plan (siyu.broadcasts.cli) and send / status / remind / cancel."""
    from siyu.broadcasts.cli import broadcast_app
    from siyu.broadcasts.send_cli import register

    register(broadcast_app)
    app.add_typer(broadcast_app, name="broadcast")


_mount_optional()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
