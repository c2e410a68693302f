"""`siyu sync`: mirror one corp from WeCom now, with a progress bar and a summary table.

Mounted by siyu.cli as `siyu sync [--corp C] [--only employees|customers|tags|groups]`.
Exit codes: 0 done, 1 the sync failed (WeCom error, another run busy — run it again to
resume), 2 bad input (unknown scope, no corp / unknown corp / several corps and no --corp).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from siyu.core.db import session_scope
from siyu.sync.flows import SCOPES, SyncBusy, SyncError, SyncSummary, run_sync
from siyu.sync.flows import Progress as ProgressCallback
from siyu.sync.service import match_corps
from siyu.wecom.errors import WeComError

console = Console()
err_console = Console(stderr=True)


def sync(
    corp: Annotated[
        str | None, typer.Option(help="WeCom corpid (ww…) or siyu's numeric corp id; default: the only corp.")
    ] = None,
    only: Annotated[
        str | None, typer.Option(help=f"Sync just one part: {', '.join(SCOPES)}. Default: everything.")
    ] = None,
) -> None:
    """Mirror a corp from WeCom; an interrupted sync resumes where it stopped."""
    if only is not None and only not in SCOPES:
        raise _fail(f"--only must be one of {', '.join(SCOPES)} (got {only!r})", 2)
    corp_id = _resolve_corp(corp)
    try:
        with progress_bar() as on_progress:
            summary = run_sync(corp_id, only=only, progress=on_progress)
    except SyncBusy as exc:
        raise _fail(str(exc), 1) from exc
    except (SyncError, WeComError) as exc:
        raise _fail(f"sync failed: {exc}. Run `siyu sync` again to resume from the last page.", 1) from exc
    print_summary(summary)


def _fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _resolve_corp(ref: str | None) -> int:
    """--corp by wecom corpid or numeric id; without it, the only connected corp."""
    with session_scope() as session:
        corps = [(c.corp_id, c.wecom_corpid, c.name) for c in match_corps(session, ref=ref)]
    if len(corps) == 1:
        return corps[0][0]
    if not corps:
        hint = f"no corp matches --corp {ref!r}" if ref else "no corp is connected yet (add one with `siyu corp add`)"
        raise _fail(hint, 2)
    listing = ", ".join(f"{corp_id} ({corpid}, {name})" for corp_id, corpid, name in corps)
    raise _fail(f"several corps are connected; choose one with --corp: {listing}", 2)


@contextmanager
def progress_bar() -> Iterator[ProgressCallback]:
    """A rich progress bar with one line per stage; totals may be unknown (customers are paged)."""
    columns = (SpinnerColumn(), TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err_console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def on_progress(done: int, total: int | None, label: str) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        yield on_progress


def print_summary(summary: SyncSummary) -> None:
    table = Table(title=f"sync run {summary.run_id} ({summary.scope}{', resumed' if summary.resumed else ''})")
    for column in ("object", "added", "updated", "removed"):
        table.add_column(column, justify="left" if column == "object" else "right")
    for name, counts in summary.rows():
        table.add_row(name, str(counts.added), str(counts.updated), str(counts.removed))
    console.print(table)
    console.print(f"{summary.pages} pages in {summary.seconds:.1f}s; {summary.total.changed} rows changed.")
