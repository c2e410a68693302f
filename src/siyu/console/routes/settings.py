"""Settings: the WeCom connection (admins change it, operators read it), callback values to paste
into WeCom, a connection test, and "sync now" with live progress (htmx polling every second)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from siyu.accounts.access import can, require
from siyu.console import filters
from siyu.console.deps import Console, ConsoleDep
from siyu.console.i18n import language_of, translator
from siyu.console.templating import env, render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp import actions, service
from siyu.corp.models import Corp
from siyu.corp.router import callback_url, connection_read, update_connection
from siyu.corp.schemas import ConnectionUpdate

router = APIRouter(include_in_schema=False)
filters.install(env)
STAGE_LABELS = {"employees": "Employees", "tags": "Tags", "customers": "Customers", "groups": "Groups"}


def _corp(session: SessionDep, console: Console, action: str = "read") -> Corp:
    require(console.actor, "corp", action)
    corp = session.get(Corp, console.actor.corp_id)
    if corp is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no corp")
    return corp


def _page(request: Request, console: Console, template: str, ctx: dict[str, Any]) -> HTMLResponse:
    ctx = {"stage_labels": STAGE_LABELS, "can_write": can(console.actor, "corp", "write"), **ctx}
    ctx.setdefault("can_sync", can(console.actor, "sync", "write"))
    return render(request, template, ctx, actor=console.actor, csrf_token=console.csrf_token)


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    corp = _corp(session, console)
    progress = service.get_sync_progress(session, corp_id=corp.corp_id)
    ctx = {"conn": connection_read(corp), "progress": progress, "since": 0, "tz": corp.timezone, "message": ""}
    return _page(request, console, "settings/page.html", ctx)


@router.post("/settings/connection", response_class=HTMLResponse)
def save_connection(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    contact_secret: Annotated[str, Form()] = "",
    callback_token: Annotated[str, Form()] = "",
    callback_aes_key: Annotated[str, Form()] = "",
    api_base_url: Annotated[str, Form()] = "",
    agent_id: Annotated[str, Form()] = "",
) -> Response:
    _ = translator(language_of(request))
    corp = _corp(session, console, "write")
    given = {
        "contact_secret": contact_secret.strip(),
        "callback_token": callback_token.strip(),
        "callback_aes_key": callback_aes_key.strip(),
        "api_base_url": api_base_url.strip(),
        "agent_id": agent_id.strip(),
    }
    # Empty secret fields mean "keep"; unchanged plain fields are not sent either.
    given = {k: v for k, v in given.items() if v and v != getattr(corp, k, None)}
    message, ok = _("Saved."), True
    try:
        update_connection(session, console.actor, corp, ConnectionUpdate(**given))
    except ValidationError as exc:
        session.rollback()
        message, ok = _("Not saved: {detail}", detail=_first_error(exc)), False
    except DomainError as exc:
        session.rollback()
        message, ok = _("Not saved: {detail}", detail=exc.msg), False
    if request.headers.get("hx-request") != "true" and ok:
        return RedirectResponse("/settings", status_code=303)
    session.refresh(corp)
    ctx = {"conn": connection_read(corp), "message": message, "ok": ok}
    return _page(request, console, "settings/_connection.html", ctx)


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}"


@router.post("/settings/reveal", response_class=HTMLResponse)
def reveal(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    corp = _corp(session, console, "write")
    token, key = actions.do_reveal_callback_secrets(session, corp, actor=console.actor.label)
    ctx = {"callback_url": callback_url(corp), "token": token, "aes_key": key}
    return _page(request, console, "settings/_secrets.html", ctx)


@router.post("/settings/test", response_class=HTMLResponse)
def test_connection(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    result = service.test_connection(_corp(session, console))
    return _page(request, console, "settings/_test.html", {"result": result})


@router.post("/settings/sync", response_class=HTMLResponse)
def sync_now(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    from siyu.sync.tasks import sync_corp

    require(console.actor, "sync", "write")
    corp = _corp(session, console)
    since = service.last_sync_run_id(session, corp_id=corp.corp_id)
    session.commit()  # the sync (inline when the queue is immediate) must not wait on this transaction
    sync_corp(corp.corp_id)
    progress = service.get_sync_progress(session, corp_id=corp.corp_id, since_run_id=since)
    return _page(
        request, console, "settings/_progress.html", {"progress": progress, "since": since, "tz": corp.timezone}
    )


@router.get("/settings/sync-progress", response_class=HTMLResponse)
def sync_progress(request: Request, session: SessionDep, console: ConsoleDep, since: int = 0) -> HTMLResponse:
    corp = _corp(session, console)
    progress = service.get_sync_progress(session, corp_id=corp.corp_id, since_run_id=since)
    return _page(
        request, console, "settings/_progress.html", {"progress": progress, "since": since, "tz": corp.timezone}
    )
