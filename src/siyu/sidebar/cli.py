"""`siyu sidebar-link`: a signed link that opens the sidebar as an employee, for a customer (demo, offline)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from siyu.core.db import session_scope
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp import service as corp_service
from siyu.sidebar import links, service

console = Console()


def make_link(*, corp_id: int, employee: str, customer: str, base_url: str | None = None) -> str:
    """Checks that the employee exists, then signs the link (the customer is checked when it is opened)."""
    with session_scope() as session:
        if service.employee_by_userid(session, corp_id=corp_id, userid=employee) is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no employee {employee} in corp {corp_id}")
    return links.link_url(links.SidebarLink(corp_id, employee, customer), base_url)


def sidebar_link(
    employee: Annotated[str, typer.Option(help="The employee's WeCom userid")],
    customer: Annotated[str, typer.Option(help="The customer's external_userid")],
    corp: Annotated[str | None, typer.Option(help="Corp id or WeCom corpid (default: the only corp)")] = None,
    base_url: Annotated[str | None, typer.Option(help="siyu's address (default: SIYU_PUBLIC_BASE_URL)")] = None,
) -> None:
    """Print a sidebar link valid for 30 minutes: whoever opens it acts as that employee."""
    try:
        with session_scope() as session:
            corp_id = corp_service.resolve(session, ref=corp).corp_id
        url = make_link(corp_id=corp_id, employee=employee, customer=customer, base_url=base_url)
    except DomainError as exc:
        console.print(f"[red]error:[/red] {exc.msg}")
        raise typer.Exit(2) from exc
    typer.echo(url)
