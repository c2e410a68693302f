"""`siyu segment count`: how many customers a rule matches, from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from siyu.core.db import session_scope
from siyu.core.errors import DomainError
from siyu.corp import service as corp_service
from siyu.segments import live

segment_app = typer.Typer(help="Segments: count customers by a rule.", no_args_is_help=True)
console = Console()


@segment_app.command("count")
def count(
    rule: Annotated[str, typer.Option(help="The rule: a JSON file, '-' for standard input, or the JSON itself")],
    corp: Annotated[str | None, typer.Option(help="Corp id or WeCom corpid (default: the only corp)")] = None,
    sample: Annotated[int, typer.Option(help="Show this many matching customers")] = 10,
) -> None:
    """Count the corp's customers matching a rule ({"version": 1, "rule": {...}})."""
    text = sys.stdin.read() if rule == "-" else (Path(rule).read_text() if Path(rule).is_file() else rule)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        console.print(f"[red]error:[/red] the rule is not JSON: {exc}")
        raise typer.Exit(2) from exc
    try:
        with session_scope() as session:
            target = corp_service.resolve(session, ref=corp)
            found = live.count(session, corp_id=target.corp_id, rule=data, sample=sample)
    except DomainError as exc:
        console.print(f"[red]error:[/red] {exc.msg}")
        raise typer.Exit(1) from exc
    console.print(f"[bold]{found.count:,}[/bold] customers")
    for customer in found.sample:
        console.print(f"  {customer.id}  {customer.name}")
    for kind, ids in found.unknown_ids.items():
        console.print(f"[yellow]not in this corp[/yellow] ({kind}): {', '.join(map(str, ids))}")
