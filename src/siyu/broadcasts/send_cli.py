"""`siyu broadcast send|status|remind|cancel`: sending a planned broadcast and following its results.

The commands join the `siyu broadcast` group of `siyu.broadcasts.cli` (create, plan): `register` adds
them to that typer app. The worker does the sending; `send --wait` follows it until WeCom has accepted
every chunk.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from siyu.accounts.access import Actor, access_broadcast_by_id
from siyu.accounts.models import Role
from siyu.broadcasts import results, sender
from siyu.broadcasts.models import BroadcastChunk, ChunkStatus
from siyu.core.db import session_scope
from siyu.core.errors import DomainError
from siyu.core.tasks import configure_queue
from siyu.corp import service as corp_service

console = Console()
CorpOption = Annotated[str | None, typer.Option(help="Corp id or WeCom corpid (default: the only corp)")]
BroadcastArg = Annotated[int, typer.Argument(help="The broadcast's id")]
OPEN = (ChunkStatus.PENDING, ChunkStatus.SENDING)


def _operator(corp_id: int) -> Actor:
    """The CLI acts as the operator of the machine: the whole corp, audited as `cli`."""
    return Actor(0, corp_id, "cli", Role.ADMIN, None, None)


def _fail(exc: DomainError) -> typer.Exit:
    """Bad input (an unknown id, a broadcast in the wrong state) exits 2, like `create` and `plan`."""
    console.print(f"[red]error:[/red] {exc.msg}")
    return typer.Exit(2)


def _chunk_counts(broadcast_id: int) -> dict[str, int]:
    with session_scope() as session:
        rows = session.execute(
            select(BroadcastChunk.status, func.count())
            .where(BroadcastChunk.broadcast_id == broadcast_id)
            .group_by(BroadcastChunk.status)
        )
        return {str(status): int(n) for status, n in rows}


def send(
    broadcast_id: BroadcastArg,
    corp: CorpOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until WeCom accepted every chunk")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many seconds")] = 600.0,
) -> None:
    """Start a planned broadcast (the worker sends its chunks); scheduled ones wait for their time."""
    configure_queue()
    try:
        with session_scope() as session:
            actor = _operator(corp_service.resolve(session, ref=corp).corp_id)
            access_broadcast_by_id(session, actor, broadcast_id, write=True)
            broadcast = sender.do_start(session, broadcast_id, actor)
            status, scheduled_at = broadcast.status, broadcast.scheduled_at
    except DomainError as exc:
        raise _fail(exc) from exc
    if scheduled_at is not None and status == "scheduled":
        console.print(f"broadcast {broadcast_id} is scheduled for {scheduled_at.isoformat()}")
        return
    console.print(f"broadcast {broadcast_id}: {status}")
    if wait:
        _wait(broadcast_id, timeout)


def _wait(broadcast_id: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        counts = _chunk_counts(broadcast_id)
        total, open_ = sum(counts.values()), sum(counts.get(s, 0) for s in OPEN)
        line = f"{total - open_}/{total} chunks done ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"
        if line != last:
            console.print(line)
            last = line
        if not open_:
            return
        if time.monotonic() > deadline:
            console.print("[red]error:[/red] timed out; is `siyu worker` running?")
            raise typer.Exit(1)
        time.sleep(1)


def status(
    broadcast_id: BroadcastArg,
    corp: CorpOption = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Ask WeCom for the latest results first")] = False,
) -> None:
    """A broadcast's status, recipients per outcome, each sender's confirmation and each chunk."""
    try:
        with session_scope() as session:
            actor = _operator(corp_service.resolve(session, ref=corp).corp_id)
            access_broadcast_by_id(session, actor, broadcast_id)
        if refresh:
            results.poll_broadcast(broadcast_id)
        with session_scope() as session:
            read = results.results_of(session, access_broadcast_by_id(session, actor, broadcast_id))
    except DomainError as exc:
        raise _fail(exc) from exc
    final = " (final)" if read.final else ""
    console.print(f"broadcast {broadcast_id} ({read.kind}): [bold]{read.status}[/bold]{final}")
    console.print("recipients: " + (", ".join(f"{k} {v}" for k, v in sorted(read.counts.items())) or "none"))
    if read.excluded:
        console.print("excluded: " + ", ".join(f"{k} {v}" for k, v in sorted(read.excluded.items())))
    if read.confirmation_rate is not None:
        console.print(f"senders who confirmed: {read.confirmation_rate:.0%}")
    table = Table("employee", "tasks", "confirmed", "recipients", "sent")
    for e in read.employees:
        table.add_row(e.userid or "—", str(e.tasks), str(e.confirmed), str(e.recipients), str(e.sent))
    console.print(table)
    chunks = Table("chunk", "employee", "size", "status", "confirm", "attempts", "msgid")
    for c in read.chunks:
        chunks.add_row(
            str(c.id), str(c.employee_id or "—"), str(c.size), c.status, c.confirm_status, str(c.attempts), c.msgid
        )
    console.print(chunks)


def remind(broadcast_id: BroadcastArg, corp: CorpOption = None) -> None:
    """Remind every sender who has not confirmed (WeCom allows 3 reminders per task in 24 h)."""
    configure_queue()
    try:
        with session_scope() as session:
            actor = _operator(corp_service.resolve(session, ref=corp).corp_id)
            access_broadcast_by_id(session, actor, broadcast_id, write=True)
            done = results.do_remind(session, broadcast_id, actor)
    except DomainError as exc:
        raise _fail(exc) from exc
    console.print(f"reminded {done['reminded']} senders; {done['at_limit']} already reminded 3 times today")


def cancel(broadcast_id: BroadcastArg, corp: CorpOption = None) -> None:
    """Cancel: unsent chunks never go out, WeCom tasks not yet confirmed are withdrawn."""
    configure_queue()
    try:
        with session_scope() as session:
            actor = _operator(corp_service.resolve(session, ref=corp).corp_id)
            access_broadcast_by_id(session, actor, broadcast_id, write=True)
            sender.do_cancel(session, broadcast_id, actor)
    except DomainError as exc:
        raise _fail(exc) from exc
    console.print(f"broadcast {broadcast_id} cancelled")


def register(app: typer.Typer) -> None:
    """Add send, status, remind and cancel to the `siyu broadcast` group."""
    app.command("send")(send)
    app.command("status")(status)
    app.command("remind")(remind)
    app.command("cancel")(cancel)
