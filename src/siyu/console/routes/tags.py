"""Tags (企业标签): groups and their tags with counts; create, rename, reorder, delete — sent to WeCom.

Forms post with htmx and get the refreshed list back (plain posts are redirected to /tags);
while anything is still being created in WeCom the list polls itself until it settles.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from siyu.accounts.access import access_tag_by_id, access_tag_group_by_id, can, require
from siyu.console.deps import Console, ConsoleDep
from siyu.console.i18n import language_of, translator
from siyu.console.templating import render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode
from siyu.tags import service, wecom_sync
from siyu.tags.schemas import TagCreate, TagGroupCreate, TagUpdate

router = APIRouter(include_in_schema=False)
_SPLIT = re.compile(r"[\n,，、;；]+")


def _context(request: Request, session: SessionDep, console: Console, error: str = "") -> dict[str, object]:
    groups = service.list_groups(session, actor=console.actor)
    return {
        "groups": groups,
        "syncing": any(g.syncing or any(t.syncing for t in g.tags) for g in groups),
        "can_write": can(console.actor, "tag", "write"),
        "error": error,
    }


@router.get("/tags", response_class=HTMLResponse)
def tags_page(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    require(console.actor, "tag", "read")
    ctx = _context(request, session, console)
    return render(request, "tags/page.html", ctx, actor=console.actor, csrf_token=console.csrf_token)


@router.get("/tags/list", response_class=HTMLResponse)
def tags_list(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    require(console.actor, "tag", "read")
    ctx = _context(request, session, console)
    return render(request, "tags/_groups.html", ctx, actor=console.actor, csrf_token=console.csrf_token)


def _apply(request: Request, session: SessionDep, console: Console, change: Callable[[], object]) -> Response:
    """Run one edit; answer htmx with the refreshed list (errors shown in it, nothing written)."""
    _ = translator(language_of(request))
    error = ""
    try:
        change()
    except ValidationError:
        session.rollback()
        error = _("Names must be 1 to 30 characters, and a new group needs at least one tag.")
    except DomainError as exc:
        session.rollback()
        error = _error_text(_, exc)
    if request.headers.get("hx-request") != "true" and not error:
        return RedirectResponse("/tags", status_code=303)
    ctx = _context(request, session, console, error)
    return render(request, "tags/_groups.html", ctx, actor=console.actor, csrf_token=console.csrf_token)


def _error_text(_: Callable[..., str], exc: DomainError) -> str:
    if exc.code == ErrorCode.FORBIDDEN:
        return _("Your role may not change tags.")
    if exc.code == ErrorCode.NOT_FOUND:
        return _("That tag no longer exists.")
    if exc.code == ErrorCode.CONFLICT:
        return _("Not saved: {detail}", detail=exc.msg)
    return exc.msg


def _names(text: str) -> list[TagCreate]:
    return [TagCreate(name=n) for n in (p.strip() for p in _SPLIT.split(text)) if n]


def _order(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


@router.post("/tags/groups", response_class=HTMLResponse)
def create_group(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    name: Annotated[str, Form()] = "",
    tags: Annotated[str, Form()] = "",
    order: Annotated[str, Form()] = "",
) -> Response:
    def change() -> None:
        require(console.actor, "tag", "write")
        body = TagGroupCreate(name=name, order=_order(order) or 0, tags=_names(tags))
        wecom_sync.do_create_group(session, console.actor, body)

    return _apply(request, session, console, change)


@router.post("/tags/groups/{group_id}/tags", response_class=HTMLResponse)
def add_tag(
    request: Request, session: SessionDep, console: ConsoleDep, group_id: int, name: Annotated[str, Form()] = ""
) -> Response:
    def change() -> None:
        group = access_tag_group_by_id(session, console.actor, group_id, write=True)
        wecom_sync.do_add_tag(session, console.actor, group, TagCreate(name=name))

    return _apply(request, session, console, change)


@router.post("/tags/groups/{group_id}/edit", response_class=HTMLResponse)
def edit_group(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    group_id: int,
    name: Annotated[str, Form()] = "",
    order: Annotated[str, Form()] = "",
) -> Response:
    def change() -> None:
        group = access_tag_group_by_id(session, console.actor, group_id, write=True)
        wecom_sync.do_update_group(session, console.actor, group, TagUpdate(name=name or None, order=_order(order)))

    return _apply(request, session, console, change)


@router.post("/tags/groups/{group_id}/delete", response_class=HTMLResponse)
def delete_group(request: Request, session: SessionDep, console: ConsoleDep, group_id: int) -> Response:
    def change() -> None:
        wecom_sync.do_delete_group(
            session, console.actor, access_tag_group_by_id(session, console.actor, group_id, write=True)
        )

    return _apply(request, session, console, change)


@router.post("/tags/{tag_id}/edit", response_class=HTMLResponse)
def edit_tag(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    tag_id: int,
    name: Annotated[str, Form()] = "",
    order: Annotated[str, Form()] = "",
) -> Response:
    def change() -> None:
        tag = access_tag_by_id(session, console.actor, tag_id, write=True)
        wecom_sync.do_update_tag(session, console.actor, tag, TagUpdate(name=name or None, order=_order(order)))

    return _apply(request, session, console, change)


@router.post("/tags/{tag_id}/delete", response_class=HTMLResponse)
def delete_tag(request: Request, session: SessionDep, console: ConsoleDep, tag_id: int) -> Response:
    def change() -> None:
        wecom_sync.do_delete_tag(session, console.actor, access_tag_by_id(session, console.actor, tag_id, write=True))

    return _apply(request, session, console, change)
