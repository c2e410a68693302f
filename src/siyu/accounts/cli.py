"""`siyu user …`: console users and their API tokens."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import select

from siyu.accounts.actions import do_create_api_token, do_create_user
from siyu.accounts.models import ConsoleUser, Role
from siyu.core.db import session_scope
from siyu.core.errors import DomainError
from siyu.corp import service as corp_service

user_app = typer.Typer(help="Console users and API tokens.", no_args_is_help=True)
console = Console()


@user_app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="Sign-in name")],
    role: Annotated[Role, typer.Option(help="admin, operator, staff or compliance")],
    corp: Annotated[str | None, typer.Option(help="Corp id or WeCom corpid (default: the only corp)")] = None,
    employee: Annotated[str | None, typer.Option(help="The employee's WeCom userid (required for staff)")] = None,
    display_name: Annotated[str, typer.Option(help="Shown in the console")] = "",
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters")
    ] = "",
) -> None:
    """Create a console user."""
    try:
        with session_scope() as session:
            target = corp_service.resolve(session, ref=corp)
            user = do_create_user(
                session,
                corp_id=target.corp_id,
                username=username,
                password=password,
                role=role,
                display_name=display_name,
                employee_userid=employee,
                actor="cli",
            )
            console.print(f"user {user.username} ({user.role}) created in corp {target.corp_id}")
    except DomainError as exc:
        console.print(f"[red]error:[/red] {exc.msg}")
        raise typer.Exit(2) from exc


@user_app.command("token")
def token(
    username: Annotated[str, typer.Argument(help="Whose token (it acts with their role and scope)")],
    name: Annotated[str, typer.Option(help="What the token is for")] = "cli",
) -> None:
    """Create a REST API token; it is printed once."""
    with session_scope() as session:
        user = session.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
        if user is None:
            console.print(f"[red]error:[/red] no user {username}")
            raise typer.Exit(2)
        _row, raw = do_create_api_token(session, user=user, name=name)
    print(raw)
