"""`siyu segment count|list|save|snapshot|export`: segments from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, access_segment_by_id, access_snapshot_by_id
from siyu.accounts.models import Role
from siyu.core.db import session_scope
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp import service as corp_service
from siyu.segments import actions, export, live, service
from siyu.segments.models import Segment
from siyu.segments.schemas import SegmentCreate, SegmentUpdate

segment_app = typer.Typer(help="Segments: count, save, snapshot and export customers by a rule.", no_args_is_help=True)
console = Console()
CorpOption = Annotated[str | None, typer.Option(help="Corp id or WeCom corpid (default: the only corp)")]
RuleOption = Annotated[str, typer.Option(help="The rule: a JSON file, '-' for standard input, or the JSON itself")]


def _operator(corp_id: int) -> Actor:
    """The CLI acts as the operator of the machine: the whole corp, audited as `cli`."""
    return Actor(0, corp_id, "cli", Role.ADMIN, None, None)


def _read_rule(rule: str) -> dict[str, Any]:
    text = sys.stdin.read() if rule == "-" else (Path(rule).read_text() if Path(rule).is_file() else rule)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        console.print(f"[red]error:[/red] the rule is not JSON: {exc}")
        raise typer.Exit(2) from exc
    return data if isinstance(data, dict) else {"rule": data}


def _fail(exc: DomainError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc.msg}")
    return typer.Exit(1)


def _segment(session: Session, actor: Actor, ref: str) -> Segment:
    """A segment by id or by name."""
    if ref.isdigit():
        return access_segment_by_id(session, actor, int(ref))
    found = session.scalar(select(Segment.id).where(Segment.corp_id == actor.corp_id, Segment.name == ref))
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no segment {ref!r}")
    return access_segment_by_id(session, actor, found)


@segment_app.command("count")
def count(
    rule: RuleOption, corp: CorpOption = None, sample: Annotated[int, typer.Option(help="Show this many")] = 10
) -> None:
    """Count the corp's customers matching a rule ({"version": 1, "rule": {...}})."""
    data = _read_rule(rule)
    try:
        with session_scope() as session:
            target = corp_service.resolve(session, ref=corp)
            found = live.count(session, corp_id=target.corp_id, rule=data, sample=sample)
    except DomainError as exc:
        raise _fail(exc) from exc
    console.print(f"[bold]{found.count:,}[/bold] customers")
    for customer in found.sample:
        console.print(f"  {customer.id}  {customer.name}  {', '.join(customer.owners)}")
    for kind, ids in found.unknown_ids.items():
        console.print(f"[yellow]not in this corp[/yellow] ({kind}): {', '.join(map(str, ids))}")


@segment_app.command("list")
def list_segments(corp: CorpOption = None) -> None:
    """The saved segments with the count each had when last saved, snapshotted or recounted."""
    try:
        with session_scope() as session:
            target = corp_service.resolve(session, ref=corp)
            rows = service.list_segments(session, actor=_operator(target.corp_id))
    except DomainError as exc:
        raise _fail(exc) from exc
    table = Table("id", "name", "count", "snapshots", "updated", "description")
    for r in rows:
        count_text = "" if r.last_count is None else f"{r.last_count:,}"
        table.add_row(str(r.id), r.name, count_text, str(r.snapshots), f"{r.updated_at:%Y-%m-%d %H:%M}", r.description)
    console.print(table)


@segment_app.command("save")
def save(
    name: Annotated[str, typer.Option(help="The segment's name (unique in the corp)")],
    rule: RuleOption,
    description: Annotated[str | None, typer.Option(help="What the segment is for")] = None,
    corp: CorpOption = None,
) -> None:
    """Save a rule as a segment; a segment of that name gets the new rule."""
    data = _read_rule(rule)
    try:
        with session_scope() as session:
            actor = _operator(corp_service.resolve(session, ref=corp).corp_id)
            taken = session.scalar(select(Segment.id).where(Segment.corp_id == actor.corp_id, Segment.name == name))
            if taken is None:
                body = SegmentCreate(name=name, description=description or "", rule=data)
                segment = actions.do_create_segment(session, actor, body)
            else:
                update = SegmentUpdate(rule=data, description=description)
                segment = actions.do_update_segment(session, actor, access_segment_by_id(session, actor, taken), update)
            shown = (segment.id, segment.name, segment.last_count or 0, "saved" if taken is None else "updated")
    except DomainError as exc:
        raise _fail(exc) from exc
    console.print(f"segment {shown[0]} {shown[1]!r} {shown[3]}: [bold]{shown[2]:,}[/bold] customers")


@segment_app.command("snapshot")
def snapshot(
    segment: Annotated[str, typer.Option(help="The segment's id or name")],
    name: Annotated[str, typer.Option(help="The snapshot's name (default: the segment's)")] = "",
    corp: CorpOption = None,
) -> None:
    """Freeze who matches the segment now (membership, rule and rule version)."""
    try:
        with session_scope() as session:
            actor = _operator(corp_service.resolve(session, ref=corp).corp_id)
            snap = actions.do_snapshot(session, actor, segment=_segment(session, actor, segment), name=name)
            shown = (snap.id, snap.name, snap.member_count, len(snap.members))
    except DomainError as exc:
        raise _fail(exc) from exc
    console.print(f"snapshot {shown[0]} {shown[1]!r}: [bold]{shown[2]:,}[/bold] customers ({shown[3]:,} bytes)")


@segment_app.command("export")
def export_csv(
    out: Annotated[Path, typer.Option(help="The CSV file to write (UTF-8 with BOM; mobiles masked)")],
    segment: Annotated[str | None, typer.Option(help="A segment's id or name: who matches now")] = None,
    snapshot: Annotated[int | None, typer.Option(help="A snapshot's id: its frozen members")] = None,
    corp: CorpOption = None,
) -> None:
    """Write a segment's current members or a snapshot's frozen members as CSV."""
    if (segment is None) == (snapshot is None):
        console.print("[red]error:[/red] give exactly one of --segment and --snapshot")
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            actor = _operator(corp_service.resolve(session, ref=corp).corp_id)
            if snapshot is not None:
                snap = access_snapshot_by_id(session, actor, snapshot)
                ids, kind, object_id = service.snapshot_members(snap), "segment_snapshot", snap.id
            else:
                seg = _segment(session, actor, segment or "")
                ids = service.customer_ids(session, corp_id=actor.corp_id, rule=seg.rule)
                kind, object_id = "segment", seg.id
            actions.do_record_export(session, actor, object_type=kind, object_id=object_id, rows=len(ids))
    except DomainError as exc:
        raise _fail(exc) from exc
    with out.open("wb") as fh:
        for chunk in export.csv_chunks(actor.corp_id, ids):
            fh.write(chunk)
    console.print(f"wrote {len(ids):,} customers to {out}")
