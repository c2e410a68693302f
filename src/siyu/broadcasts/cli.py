"""`siyu broadcast create|plan`: a draft from the command line, and its plan (who gets it, who not, why).

`send`, `status`, `remind` and `cancel` join this group from `siyu.broadcasts.send_cli`. Bad input —
an unknown id, a rule that does not parse, content that is not allowed — exits with code 2 and says why.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from siyu.accounts.access import Actor, access_broadcast_by_id
from siyu.accounts.models import Role
from siyu.broadcasts import actions, planner, service
from siyu.broadcasts.models import BroadcastKind
from siyu.broadcasts.schemas import BroadcastCreate, PlanSummary
from siyu.contacts.models import Employee
from siyu.core.db import session_scope
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp import service as corp_service

broadcast_app = typer.Typer(help="Broadcasts: create, plan, send, follow the results.", no_args_is_help=True)
console = Console()
CorpOption = Annotated[str | None, typer.Option(help="Corp id or WeCom corpid (default: the only corp)")]


def _operator(corp_id: int) -> Actor:
    """The CLI acts as the operator of the machine: the whole corp, audited as `cli`."""
    return Actor(0, corp_id, "cli", Role.ADMIN, None, None)


def _bad(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _json_arg(value: str, what: str) -> Any:
    """JSON given inline, as a file path, or '-' for standard input."""
    text = sys.stdin.read() if value == "-" else (Path(value).read_text() if Path(value).is_file() else value)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(f"{what} is not JSON: {exc}") from exc


def _ints(value: str | None, what: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise _bad(f"{what}: comma-separated ids") from exc


def _employee_ids(session: Any, corp_id: int, value: str | None) -> list[int]:
    """Employees named by siyu id or WeCom userid."""
    out: list[int] = []
    for token in (t.strip() for t in (value or "").split(",") if t.strip()):
        if token.isdigit():
            out.append(int(token))
            continue
        found = session.scalar(select(Employee.id).where(Employee.corp_id == corp_id, Employee.userid == token))
        if found is None:
            raise DomainError(ErrorCode.INVALID, f"no employee {token!r} in this corp")
        out.append(int(found))
    return out


def _audience(
    rule: str | None,
    segment: int | None,
    snapshot: int | None,
    customers: str | None,
    chats: str | None,
    tags: str | None,
) -> dict[str, Any]:
    given: dict[str, Any] = {}
    if rule is not None:
        given["rule"] = _json_arg(rule, "--rule")
    if segment is not None:
        given["segment_id"] = segment
    if snapshot is not None:
        given["snapshot_id"] = snapshot
    if customers is not None:
        given["customer_ids"] = _ints(customers, "--customers")
    if chats is not None:
        given["chat_ids"] = [c.strip() for c in chats.split(",") if c.strip()]
    if tags is not None:
        given["tag_ids"] = _ints(tags, "--tags")
    return given


@broadcast_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="What the broadcast is called in siyu")],
    text: Annotated[str, typer.Option(help="The message text")] = "",
    kind: Annotated[BroadcastKind, typer.Option(help="customer, group, personal or moment")] = BroadcastKind.CUSTOMER,
    rule: Annotated[str | None, typer.Option(help="Audience: a segment rule (JSON, a file, or '-')")] = None,
    segment: Annotated[int | None, typer.Option(help="Audience: a saved segment's id")] = None,
    snapshot: Annotated[int | None, typer.Option(help="Audience: a snapshot's id")] = None,
    customers: Annotated[str | None, typer.Option(help="Audience: customer ids, comma-separated")] = None,
    chats: Annotated[str | None, typer.Option(help="Group broadcasts: WeCom chat ids, comma-separated")] = None,
    owners: Annotated[str | None, typer.Option(help="Group broadcasts: every group of these employees")] = None,
    tags: Annotated[str | None, typer.Option(help="Moments: visible to customers with these tags ('' = all)")] = None,
    senders: Annotated[str | None, typer.Option(help="Only these employees send (ids or userids)")] = None,
    attachments: Annotated[str | None, typer.Option(help="Attachments: a JSON list, a file, or '-'")] = None,
    schedule: Annotated[str | None, typer.Option(help="Send at (ISO 8601 with a zone); default: when sent")] = None,
    holdout: Annotated[int, typer.Option(help="Hold out this percent of the audience (to measure lift)")] = 0,
    allow_select: Annotated[bool, typer.Option(help="Let senders change the recipients in WeCom")] = False,
    plan: Annotated[bool, typer.Option("--plan", help="Plan it right away")] = False,
    corp: CorpOption = None,
) -> None:
    """Create a broadcast draft (and with --plan, plan it)."""
    try:
        with session_scope() as session:
            target = corp_service.resolve(session, ref=corp)
            actor = _operator(target.corp_id)
            audience = _audience(rule, segment, snapshot, customers, chats, tags)
            if owners is not None:
                audience["owner_ids"] = _employee_ids(session, target.corp_id, owners)
            body = BroadcastCreate(
                kind=kind,
                name=name,
                audience=audience,  # type: ignore[arg-type]
                content={"text": text, "attachments": _json_arg(attachments, "--attachments") if attachments else []},  # type: ignore[arg-type]
                sender_ids=_employee_ids(session, target.corp_id, senders),
                allow_select=allow_select,
                scheduled_at=datetime.fromisoformat(schedule) if schedule else None,
                holdout_percent=holdout,
            )
            broadcast = actions.do_create_broadcast(session, actor, body)
            broadcast_id = broadcast.id
            summary = (
                service.plan_summary(session, broadcast=planner.do_plan(session, broadcast_id, actor)) if plan else None
            )
    except ValidationError as exc:
        raise _bad("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc
    except (DomainError, ValueError) as exc:
        raise _bad(exc.msg if isinstance(exc, DomainError) else str(exc)) from exc
    console.print(f"broadcast {broadcast_id} created (draft)")
    if summary is not None:
        _print_summary(summary)


@broadcast_app.command("plan")
def plan_command(
    broadcast_id: Annotated[int, typer.Argument(help="The broadcast's id")],
    corp: CorpOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Plan (or re-plan) a broadcast: eligible recipients per sender, excluded ones by reason, chunks."""
    try:
        with session_scope() as session:
            target = corp_service.resolve(session, ref=corp)
            actor = _operator(target.corp_id)
            access_broadcast_by_id(session, actor, broadcast_id, write=True)
            summary = service.plan_summary(session, broadcast=planner.do_plan(session, broadcast_id, actor))
    except DomainError as exc:
        raise _bad(exc.msg) from exc
    if as_json:
        typer.echo(summary.model_dump_json(indent=2))
        return
    _print_summary(summary)


def _print_summary(summary: PlanSummary) -> None:
    if summary.status == "blocked":
        console.print(f"[red]blocked[/red]: {summary.block_reason}")
        return
    console.print(
        f"broadcast {summary.broadcast_id} {summary.status}: candidates {summary.candidates:,}, "
        f"eligible {summary.eligible:,}, chunks {summary.chunks:,}, send day {summary.send_day}"
    )
    if summary.moved is not None:
        console.print(
            f"[yellow]moved out of quiet hours[/yellow] ({summary.moved.quiet_hours}): "
            f"{summary.moved.requested:%Y-%m-%d %H:%M} → {summary.moved.moved_to:%Y-%m-%d %H:%M} UTC"
        )
    if summary.excluded:
        table = Table("excluded because", "recipients")
        for reason, n in summary.excluded.items():
            table.add_row(reason, f"{n:,}")
        console.print(table)
    if summary.senders:
        table = Table("sender", "name", "eligible", "chunks")
        for s in summary.senders:
            table.add_row(s.userid or str(s.employee_id), s.name, f"{s.eligible:,}", str(s.chunks))
        console.print(table)
