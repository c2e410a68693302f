"""`siyu channel …`: channel codes from the command line — list, QR images, funnels, rotation, reconcile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from siyu.accounts.access import Actor, access_channel_by_id
from siyu.accounts.models import Role
from siyu.acquisition import qr, service
from siyu.core.db import session_scope
from siyu.core.errors import DomainError
from siyu.corp import service as corp_service

channel_app = typer.Typer(
    help="Channel codes (渠道活码): list, QR images, funnels, rotation, reconcile.", no_args_is_help=True
)
console = Console()
CorpOption = Annotated[str | None, typer.Option(help="Corp id or WeCom corpid (default: the only corp)")]


def _operator(corp_id: int) -> Actor:
    """The CLI acts as the operator of the machine: the whole corp, audited as `cli`."""
    return Actor(0, corp_id, "cli", Role.ADMIN, None, None)


def _fail(exc: DomainError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc.msg}")
    return typer.Exit(1)


@channel_app.command("list")
def list_channels(corp: CorpOption = None, deleted: bool = typer.Option(False, help="Include deleted codes")) -> None:
    """Every channel code with who serves it now, its follows and today's adds."""
    try:
        with session_scope() as session:
            target = corp_service.resolve(session, ref=corp)
            rows = service.list_channels(session, actor=_operator(target.corp_id), include_deleted=deleted)
    except DomainError as exc:
        raise _fail(exc) from exc
    table = Table("id", "name", "group", "status", "serving now", "follows", "today", "cap", "state")
    for r in rows:
        status = "syncing" if r.syncing else (f"{r.status} (!)" if r.sync_error else r.status)
        table.add_row(
            str(r.id),
            r.name,
            r.group_name or "",
            status,
            ", ".join(r.live_userids),
            str(r.follows),
            str(r.adds_today),
            str(r.daily_cap or ""),
            r.state,
        )
    console.print(table)


@channel_app.command("qr")
def qr_image(
    channel_id: Annotated[int, typer.Argument(help="The channel's id (see `siyu channel list`)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the image; .svg or .png")],
    corp: CorpOption = None,
) -> None:
    """Write a channel code's QR image (PNG or SVG, by the file's extension)."""
    if out.suffix.lower() not in (".png", ".svg"):
        console.print("[red]error:[/red] --out must end in .png or .svg")
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            target = corp_service.resolve(session, ref=corp)
            channel = access_channel_by_id(session, _operator(target.corp_id), channel_id)
            data = qr.svg(channel.qr_url) if out.suffix.lower() == ".svg" else qr.png(channel.qr_url)
    except DomainError as exc:
        raise _fail(exc) from exc
    out.write_bytes(data)
    console.print(f"{out} ({len(data)} bytes) — {channel.name}: {channel.qr_url}")


@channel_app.command("funnel")
def funnel(
    corp: CorpOption = None,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (default: 30 days ago)")] = None,
    end: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD (default: today)")] = None,
    by_group: Annotated[bool, typer.Option("--by-group", help="One row per channel group")] = False,
    csv: Annotated[Path | None, typer.Option(help="Also write the comparison as CSV here")] = None,
) -> None:
    """New, lost and net follows per channel over a date range, with 1/7/30-day deletion rates."""
    from siyu.analytics import funnel as funnels

    try:
        with session_scope() as session:
            target = corp_service.resolve(session, ref=corp)
            actor = _operator(target.corp_id)
            rng = funnels.parse_range(start, end, funnels.zone_of(session, actor))
            data = funnels.compare_channels(session, actor=actor, rng=rng, by="group" if by_group else "channel")
    except DomainError as exc:
        raise _fail(exc) from exc
    table = Table("group" if by_group else "channel", "new", "lost", "net", "deleted ≤1d", "≤7d", "≤30d")
    for row in data.rows:
        rates = [f"{w.deleted_rate:.1%}" if w.deleted_rate is not None else "—" for w in row.retention]
        table.add_row(
            row.group_name if by_group else row.channel_name, str(row.new), str(row.lost), str(row.net), *rates
        )
    console.print(f"{data.start} … {data.end} ({data.timezone})")
    console.print(table)
    if csv is not None:
        csv.write_text(funnels.comparison_csv(data), encoding="utf-8")  # the text starts with a BOM already
        console.print(f"wrote {csv}")


@channel_app.command("rotate")
def rotate() -> None:
    """Apply schedules, daily caps and expiry now (the worker does this every minute)."""
    from siyu.acquisition.tasks import rotate_all_corps

    console.print(rotate_all_corps())


@channel_app.command("reconcile")
def reconcile() -> None:
    """Compare the codes with WeCom's list now (the worker does this nightly)."""
    from siyu.acquisition.tasks import reconcile_all_corps

    console.print(reconcile_all_corps())
