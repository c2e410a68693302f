"""`siyu user …`: console users and their API tokens."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from siyu.accounts import service
from siyu.accounts.actions import do_create_api_token, do_create_user, do_update_user
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
        user = _user(session, username)
        _row, raw = do_create_api_token(session, user=user, name=name)
    print(raw)


@user_app.command("list")
def list_users(
    corp: Annotated[str | None, typer.Option(help="Corp id or WeCom corpid (default: the only corp)")] = None,
) -> None:
    """List the corp's console users."""
    try:
        with session_scope() as session:
            target = corp_service.resolve(session, ref=corp)
            table = Table("id", "username", "name", "role", "employee", "active", "last sign-in")
            after: int | None = None
            while page := service.list_users(session, corp_id=target.corp_id, after=after, limit=service.MAX_PAGE):
                linked = {u.employee_id for u in page if u.employee_id}
                names = service.employee_names(session, corp_id=target.corp_id, employee_ids=linked)
                for u in page:
                    table.add_row(*_user_row(u, names))
                after = page[-1].id
    except DomainError as exc:
        console.print(f"[red]error:[/red] {exc.msg}")
        raise typer.Exit(2) from exc
    console.print(table)


@user_app.command("set-password")
def set_password(
    username: Annotated[str, typer.Argument(help="Whose password")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters")
    ] = "",
) -> None:
    """Set a user's password (and unlock them); their sessions end."""
    try:
        with session_scope() as session:
            user = _user(session, username)
            do_update_user(session, user=user, changes={"password": password}, actor="cli")
    except DomainError as exc:
        console.print(f"[red]error:[/red] {exc.msg}")
        raise typer.Exit(2) from exc
    console.print(f"password of {username} changed; their sessions have ended")


def _user_row(user: ConsoleUser, employee_names: dict[int, str]) -> tuple[str, ...]:
    last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
    employee = employee_names.get(user.employee_id, "") if user.employee_id else ""
    active = "yes" if user.is_active else "no"
    return (str(user.id), user.username, user.display_name, user.role, employee, active, last)


def _user(session: Session, username: str) -> ConsoleUser:
    user = service.get_by_username(session, username=username)
    if user is None:
        console.print(f"[red]error:[/red] no user {username}")
        raise typer.Exit(2)
    return user
