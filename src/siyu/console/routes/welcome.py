"""Welcome messages (欢迎语): the default welcomes of the corp, departments and employees (used when a channel
sets none), and the welcome log — what became of each add's welcome, with latency and reason."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from siyu.accounts.access import access_welcome_template_by_id, can, require
from siyu.acquisition import actions, service
from siyu.acquisition.models import WelcomeScope
from siyu.acquisition.schemas import WelcomeTemplateRead, WelcomeTemplateWrite
from siyu.console import filters
from siyu.console.deps import ConsoleDep
from siyu.console.i18n import language_of, translator
from siyu.console.routes import _acquisition as acq
from siyu.console.templating import env, render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError

router = APIRouter(include_in_schema=False)
filters.install(env)
SCOPE_LABELS = {
    WelcomeScope.CORP.value: "Whole corp",
    WelcomeScope.DEPARTMENT.value: "Department",
    WelcomeScope.EMPLOYEE.value: "Employee",
}


def empty_form() -> dict[str, Any]:
    return {"scope": "corp", "scope_key": "", "text": "", "material_ids": [], "group_code_id": "", "enabled": True}


def form_of(template: WelcomeTemplateRead) -> dict[str, Any]:
    return {
        "scope": template.scope,
        "scope_key": template.scope_key,
        "text": template.content.text,
        "material_ids": [str(m) for m in template.content.material_ids],
        "group_code_id": str(template.content.group_code_id or ""),
        "enabled": template.enabled,
    }


def read_form(data: FormData) -> dict[str, Any]:
    scope = str(data.get("scope") or "corp")
    key_field = {"department": "department_key", "employee": "employee_key"}.get(scope)
    return {
        "scope": scope,
        "scope_key": str(data.get(key_field) or "") if key_field else "",
        "text": str(data.get("text") or ""),
        "material_ids": [str(v) for v in data.getlist("material_ids")],
        "group_code_id": str(data.get("group_code_id") or ""),
        "enabled": data.get("enabled") in ("1", "on", "true"),
    }


def _body(form: dict[str, Any]) -> WelcomeTemplateWrite:
    return WelcomeTemplateWrite.model_validate(
        {
            "scope": form["scope"],
            "scope_key": form["scope_key"],
            "content": {
                "text": form["text"],
                "material_ids": acq.ints(form["material_ids"]),
                "group_code_id": acq.optional_int(form["group_code_id"], "group_code_id"),
            },
            "enabled": form["enabled"],
        }
    )


def _page(
    request: Request,
    session: Session,
    console: ConsoleDep,
    *,
    status: str = "",
    form: dict[str, Any] | None = None,
    error: str = "",
    edit: int | None = None,
) -> HTMLResponse:
    actor = console.actor
    templates = service.list_welcome_templates(session, actor=actor)
    materials = service.list_materials(session, actor=actor)
    group_codes = service.list_group_codes(session, actor=actor)
    if form is None:
        editing = next((t for t in templates if t.id == edit), None)
        form = form_of(editing) if editing else empty_form()
    status = status if status in acq.SEND_STATUS_LABELS else ""
    ctx = {
        "templates": templates,
        "material_names": {m.id: m.title or str(m.id) for m in materials},
        "group_code_names": {g.id: g.name for g in group_codes},
        "materials": materials,
        "group_codes": group_codes,
        "material_kinds": acq.MATERIAL_KINDS,
        "employees": acq.active_employees(session, actor.corp_id),
        "departments": acq.departments(session, actor.corp_id),
        "scope_labels": SCOPE_LABELS,
        "form": form,
        "error": error,
        "can_write": can(actor, "channel", "write"),
        "sends": service.list_welcome_sends(session, actor=actor, status=status or None, limit=100),
        "status": status,
        "send_status_labels": acq.SEND_STATUS_LABELS,
        "source_labels": acq.SOURCE_LABELS,
        "tz": acq.zone_name(session, actor.corp_id),
    }
    return render(request, "welcome/page.html", ctx, actor=actor, csrf_token=console.csrf_token)


@router.get("/welcome", response_class=HTMLResponse)
def welcome_page(
    request: Request, session: SessionDep, console: ConsoleDep, status: str = "", edit: str = ""
) -> HTMLResponse:
    require(console.actor, "channel", "read")
    return _page(request, session, console, status=status, edit=int(edit) if edit.isdigit() else None)


@router.post("/welcome", response_class=HTMLResponse)
async def put_welcome(request: Request, session: SessionDep, console: ConsoleDep) -> Response:
    """Create or replace the default welcome of the chosen scope."""
    t = translator(language_of(request))
    form = read_form(await request.form())
    try:
        require(console.actor, "channel", "write")
        actions.do_put_welcome_template(session, console.actor, _body(form))
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        return _page(request, session, console, form=form, error=acq.error_text(t, exc))
    return RedirectResponse("/welcome", status_code=303)


@router.post("/welcome/{template_id}/delete", response_class=HTMLResponse)
def delete_welcome(request: Request, session: SessionDep, console: ConsoleDep, template_id: int) -> Response:
    t = translator(language_of(request))
    try:
        template = access_welcome_template_by_id(session, console.actor, template_id, write=True)
        actions.do_delete_welcome_template(session, console.actor, template)
    except DomainError as exc:
        session.rollback()
        return _page(request, session, console, error=acq.error_text(t, exc))
    return RedirectResponse("/welcome", status_code=303)
