"""Console users (admins only) and every user's own API tokens (/account/tokens)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from siyu.accounts import actions, service
from siyu.accounts.access import access_api_token_by_id, access_user_by_id, require
from siyu.accounts.models import Role
from siyu.console import filters
from siyu.console.deps import Console, ConsoleDep
from siyu.console.templating import env, render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode

router = APIRouter(include_in_schema=False)
filters.install(env)
PAGE = 50

# What the form says for each error code (the DomainError message is English, for the API).
FORM_ERRORS = {
    ErrorCode.CONFLICT: "That username is already taken.",
    ErrorCode.INVALID: "Check the form: passwords need at least 8 characters, and staff need a linked employee.",
}


def _users_page(
    request: Request, session: SessionDep, console: Console, *, after: int | None = None, **extra: object
) -> HTMLResponse:
    actor = console.actor
    require(actor, "user", "read")
    users = service.list_users(session, corp_id=actor.corp_id, after=after, limit=PAGE + 1)
    users, more = users[:PAGE], len(users) > PAGE
    names = service.employee_names(
        session, corp_id=actor.corp_id, employee_ids={u.employee_id for u in users if u.employee_id}
    )
    context = {
        "users": users,
        "employee_names": names,
        "employees": service.employee_choices(session, corp_id=actor.corp_id),
        "roles": list(Role),
        "next_after": users[-1].id if more else None,
        "form": {},
        "error": "",
        "notice": request.query_params.get("notice", ""),
        **extra,
    }
    status = 422 if extra.get("error") else 200
    return render(request, "users/list.html", context, actor=actor, csrf_token=console.csrf_token, status_code=status)


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, session: SessionDep, console: ConsoleDep, after: int | None = None) -> Response:
    return _users_page(request, session, console, after=after)


@router.post("/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    role: Annotated[Role, Form()],
    display_name: Annotated[str, Form()] = "",
    employee_id: Annotated[str, Form()] = "",
) -> Response:
    require(console.actor, "user", "write")
    try:
        actions.do_create_user(
            session,
            corp_id=console.actor.corp_id,
            username=username,
            password=password,
            role=role,
            display_name=display_name,
            employee_id=int(employee_id) if employee_id.isdigit() else None,
            actor=console.actor.label,
        )
    except DomainError as exc:
        session.rollback()
        form = {"username": username, "display_name": display_name, "role": role, "employee_id": employee_id}
        return _users_page(request, session, console, form=form, error=FORM_ERRORS.get(exc.code, exc.msg))
    return RedirectResponse("/users?notice=created", status_code=303)


@router.post("/users/{user_id}/active")
def set_active(user_id: int, session: SessionDep, console: ConsoleDep, active: Annotated[bool, Form()]) -> Response:
    """Deactivate (ends their sessions and stops their API tokens) or reactivate a user."""
    user = access_user_by_id(session, console.actor, user_id, write=True)
    actions.do_update_user(
        session,
        user=user,
        changes={"is_active": active},
        actor=console.actor.label,
        actor_user_id=console.actor.user_id,
    )
    return RedirectResponse(f"/users?notice={'reactivated' if active else 'deactivated'}", status_code=303)


@router.post("/users/{user_id}/password", response_class=HTMLResponse)
def reset_password(
    request: Request, user_id: int, session: SessionDep, console: ConsoleDep, password: Annotated[str, Form()]
) -> Response:
    """Set a new password; every session of that user ends."""
    user = access_user_by_id(session, console.actor, user_id, write=True)
    try:
        actions.do_update_user(session, user=user, changes={"password": password}, actor=console.actor.label)
    except DomainError as exc:
        session.rollback()
        return _users_page(request, session, console, error=FORM_ERRORS.get(exc.code, exc.msg))
    return RedirectResponse("/users?notice=password", status_code=303)


# --- the signed-in user's own API tokens -----------------------------------------------------


def _tokens_page(request: Request, session: SessionDep, console: Console, **extra: object) -> HTMLResponse:
    require(console.actor, "api_token", "read")
    context = {"tokens": service.list_tokens(session, user_id=console.actor.user_id), "new_token": "", **extra}
    return render(request, "users/tokens.html", context, actor=console.actor, csrf_token=console.csrf_token)


@router.get("/account/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, session: SessionDep, console: ConsoleDep) -> Response:
    return _tokens_page(request, session, console)


@router.post("/account/tokens", response_class=HTMLResponse)
def create_token(request: Request, session: SessionDep, console: ConsoleDep, name: Annotated[str, Form()]) -> Response:
    """Shows the new token on this response only; siyu keeps just its hash."""
    require(console.actor, "api_token", "write")
    name = name.strip() or "token"
    _row, raw = actions.do_create_api_token(session, user=console.user, name=name)
    response = _tokens_page(request, session, console, new_token=raw)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(token_id: int, session: SessionDep, console: ConsoleDep) -> Response:
    token = access_api_token_by_id(session, console.actor, token_id, write=True)
    if token.revoked_at is None:
        actions.do_revoke_api_token(session, token=token, actor=console.actor.label)
    return RedirectResponse("/account/tokens", status_code=303)
