"""Group codes (群活码): one QR code rotating over up to five customer groups, optionally creating more when
they fill up; the list with joins and QR downloads, and create / edit / delete (sent to WeCom)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from siyu.accounts.access import access_group_code_by_id, can, require
from siyu.acquisition import actions, service
from siyu.acquisition.schemas import MAX_JOIN_WAY_CHATS, GroupCodeRead, GroupCodeWrite
from siyu.console.deps import ConsoleDep
from siyu.console.i18n import language_of, translator
from siyu.console.routes import _acquisition as acq
from siyu.console.templating import render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError

router = APIRouter(include_in_schema=False)


def empty_form() -> dict[str, Any]:
    return {
        "name": "",
        "chat_ids": [],
        "auto_create_room": True,
        "room_base_name": "",
        "room_base_id": "1",
        "tag_ids": [],
        "welcome_text": "",
        "remark": "",
    }


def form_of(code: GroupCodeRead) -> dict[str, Any]:
    return {
        "name": code.name,
        "chat_ids": list(code.chat_ids),
        "auto_create_room": code.auto_create_room,
        "room_base_name": code.room_base_name,
        "room_base_id": str(code.room_base_id),
        "tag_ids": [str(t) for t in code.tag_ids],
        "welcome_text": code.welcome_text,
        "remark": code.remark,
    }


def read_form(data: FormData) -> dict[str, Any]:
    return {
        "name": str(data.get("name") or ""),
        "chat_ids": [str(v) for v in data.getlist("chat_ids")],
        "auto_create_room": data.get("auto_create_room") in ("1", "on", "true"),
        "room_base_name": str(data.get("room_base_name") or ""),
        "room_base_id": str(data.get("room_base_id") or "1"),
        "tag_ids": [str(v) for v in data.getlist("tag_ids")],
        "welcome_text": str(data.get("welcome_text") or ""),
        "remark": str(data.get("remark") or ""),
    }


def _body(form: dict[str, Any]) -> GroupCodeWrite:
    return GroupCodeWrite(
        name=form["name"],
        chat_ids=form["chat_ids"],
        auto_create_room=form["auto_create_room"],
        room_base_name=form["room_base_name"],
        room_base_id=acq.optional_int(form["room_base_id"], "room_base_id") or 1,
        tag_ids=acq.ints(form["tag_ids"]),
        welcome_text=form["welcome_text"],
        remark=form["remark"],
    )


def _page(
    request: Request,
    session: Session,
    console: ConsoleDep,
    *,
    form: dict[str, Any] | None = None,
    error: str = "",
    edit_id: int | None = None,
    edit_form: dict[str, Any] | None = None,
) -> HTMLResponse:
    actor = console.actor
    codes = service.list_group_codes(session, actor=actor)
    forms = {c.id: form_of(c) for c in codes}
    if edit_id is not None and edit_form is not None:
        forms[edit_id] = edit_form
    ctx = {
        "codes": codes,
        "forms": forms,
        "form": form or empty_form(),
        "error": error if edit_id is None else "",
        "edit_id": edit_id,
        "edit_error": error if edit_id is not None else "",
        "can_write": can(actor, "channel", "write"),
        "chats": acq.group_chats(session, actor.corp_id),
        "tag_choices": acq.tag_choices(session, actor.corp_id),
        "max_chats": MAX_JOIN_WAY_CHATS,
        "syncing": any(c.syncing for c in codes),
        "status_labels": acq.STATUS_LABELS,
    }
    return render(request, "group_codes/list.html", ctx, actor=actor, csrf_token=console.csrf_token)


@router.get("/group-codes", response_class=HTMLResponse)
def group_codes_page(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    require(console.actor, "channel", "read")
    return _page(request, session, console)


@router.post("/group-codes", response_class=HTMLResponse)
async def create_group_code(request: Request, session: SessionDep, console: ConsoleDep) -> Response:
    t = translator(language_of(request))
    form = read_form(await request.form())
    try:
        require(console.actor, "channel", "write")
        actions.do_create_group_code(session, console.actor, _body(form))
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        return _page(request, session, console, form=form, error=acq.error_text(t, exc))
    return RedirectResponse("/group-codes", status_code=303)


@router.post("/group-codes/{code_id}/edit", response_class=HTMLResponse)
async def edit_group_code(request: Request, session: SessionDep, console: ConsoleDep, code_id: int) -> Response:
    t = translator(language_of(request))
    form = read_form(await request.form())
    try:
        code = access_group_code_by_id(session, console.actor, code_id, write=True)
        actions.do_update_group_code(session, console.actor, code, _body(form))
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        return _page(request, session, console, error=acq.error_text(t, exc), edit_id=code_id, edit_form=form)
    return RedirectResponse("/group-codes", status_code=303)


@router.post("/group-codes/{code_id}/delete", response_class=HTMLResponse)
def delete_group_code(request: Request, session: SessionDep, console: ConsoleDep, code_id: int) -> Response:
    t = translator(language_of(request))
    try:
        code = access_group_code_by_id(session, console.actor, code_id, write=True)
        actions.do_delete_group_code(session, console.actor, code)
    except DomainError as exc:
        session.rollback()
        return _page(request, session, console, error=acq.error_text(t, exc))
    return RedirectResponse("/group-codes", status_code=303)
