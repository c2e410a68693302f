"""Materials (素材): the welcome attachments — links, images (upload or URL) and mini-programs (with an uploaded
cover). Multipart form posts; images are PNG or JPEG of at most 2 MB."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from siyu.accounts.access import access_material_by_id, can, require
from siyu.acquisition import actions, service
from siyu.acquisition.schemas import MaterialWrite
from siyu.console import filters
from siyu.console.deps import ConsoleDep
from siyu.console.i18n import language_of, translator
from siyu.console.routes import _acquisition as acq
from siyu.console.templating import env, render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError

router = APIRouter(include_in_schema=False)
filters.install(env)
FIELDS = ("kind", "title", "url", "pic_url", "description", "appid", "page")


def _page(
    request: Request, session: Session, console: ConsoleDep, *, form: dict[str, Any] | None = None, error: str = ""
) -> HTMLResponse:
    actor = console.actor
    ctx = {
        "materials": service.list_materials(session, actor=actor),
        "material_kinds": acq.MATERIAL_KINDS,
        "form": form or {"kind": "link", **{f: "" for f in FIELDS[1:]}},
        "error": error,
        "can_write": can(actor, "channel", "write"),
        "max_mb": actions.MAX_IMAGE_BYTES // (1024 * 1024),
        "tz": acq.zone_name(session, actor.corp_id),
    }
    return render(request, "materials/page.html", ctx, actor=actor, csrf_token=console.csrf_token)


@router.get("/materials", response_class=HTMLResponse)
def materials_page(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    require(console.actor, "channel", "read")
    return _page(request, session, console)


@router.post("/materials", response_class=HTMLResponse)
async def create_material(request: Request, session: SessionDep, console: ConsoleDep) -> Response:
    t = translator(language_of(request))
    data = await request.form()
    form = {f: str(data.get(f) or "") for f in FIELDS}
    try:
        require(console.actor, "channel", "write")
        body = MaterialWrite.model_validate(form)
        image = data.get("image")
        upload = None
        if isinstance(image, UploadFile) and image.filename:
            upload = (await image.read(actions.MAX_IMAGE_BYTES + 1), image.content_type or "")
        actions.do_create_material(session, console.actor, body, upload)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        return _page(request, session, console, form=form, error=acq.error_text(t, exc))
    return RedirectResponse("/materials", status_code=303)


@router.post("/materials/{material_id}/delete", response_class=HTMLResponse)
def delete_material(request: Request, session: SessionDep, console: ConsoleDep, material_id: int) -> Response:
    t = translator(language_of(request))
    try:
        material = access_material_by_id(session, console.actor, material_id, write=True)
        actions.do_delete_material(session, console.actor, material)
    except DomainError as exc:
        session.rollback()
        return _page(request, session, console, error=acq.error_text(t, exc))
    return RedirectResponse("/materials", status_code=303)
