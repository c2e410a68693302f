"""The opt-out (退订) card on the customer page and in the sidebar: who opted the customer out, when, why —
and the button to record or undo it. Both load as htmx partials, so the pages they sit on stay unaware of them.

Anyone may record an opt-out for a customer they can see (staff: the customers they follow); the sidebar acts
as the employee's staff scope, with the sidebar's own session and CSRF token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, access_customer_by_id, can, require
from siyu.compliance import actions, service
from siyu.console.deps import ConsoleDep
from siyu.console.routes.sidebar import _message, _sidebar_actor, _sidebar_actor_for_post
from siyu.console.templating import render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode
from siyu.sidebar import links

router = APIRouter(include_in_schema=False)
SOURCE_LABELS = {
    "employee": "an employee",
    "sidebar": "the sidebar",
    "console": "the console",
    "api": "the API",
    "reply": "the customer's reply",
    "import": "an import",
}


def _card(session: Session, actor: Actor, customer_id: int, *, saved: str = "") -> dict[str, Any]:
    access_customer_by_id(session, actor, customer_id)
    return {
        "customer_id": customer_id,
        "opt_out": service.get_opt_out(session, corp_id=actor.corp_id, customer_id=customer_id),
        "can_change": can(actor, "opt_out", "write"),
        "source_labels": SOURCE_LABELS,
        "saved": saved,
    }


async def _change(request: Request, session: Session, actor: Actor, customer_id: int, source: str) -> str:
    """Record or undo the opt-out the posted form asks for; returns what was done."""
    require(actor, "opt_out", "write")
    access_customer_by_id(session, actor, customer_id)
    form = await request.form()
    note = str(form.get("note") or "").strip()[:500]
    if form.get("action") == "opt_in":
        actions.do_opt_in(session, actor.corp_id, customer_id, actor.label, note)
        return "opted_in"
    actions.do_opt_out(session, actor.corp_id, customer_id, source, actor.label, note)
    return "opted_out"


# --- the console's customer page ------------------------------------------------------------------


@router.get("/compliance/customers/{customer_id}/opt-out", response_class=HTMLResponse)
def opt_out_card(request: Request, session: SessionDep, console: ConsoleDep, customer_id: int) -> HTMLResponse:
    ctx = {**_card(session, console.actor, customer_id), "action_url": f"/compliance/customers/{customer_id}/opt-out"}
    return render(request, "compliance/_opt_out.html", ctx, actor=console.actor, csrf_token=console.csrf_token)


@router.post("/compliance/customers/{customer_id}/opt-out", response_class=HTMLResponse)
async def change_opt_out(request: Request, session: SessionDep, console: ConsoleDep, customer_id: int) -> HTMLResponse:
    done = await _change(request, session, console.actor, customer_id, "console")
    ctx = {
        **_card(session, console.actor, customer_id, saved=done),
        "action_url": f"/compliance/customers/{customer_id}/opt-out",
    }
    return render(request, "compliance/_opt_out.html", ctx, actor=console.actor, csrf_token=console.csrf_token)


# --- the sidebar ----------------------------------------------------------------------------------


@router.get("/sidebar/opt-out/{customer_id}", response_class=HTMLResponse)
def sidebar_opt_out_card(request: Request, session: SessionDep, customer_id: int) -> HTMLResponse:
    signed_in = _sidebar_actor(request, session)
    if signed_in is None:
        return _message(request, "signed_out", 401)
    actor, sidebar_session = signed_in
    try:
        ctx = _card(session, actor, customer_id)
    except DomainError:
        return _message(request, "not_found", 404)
    ctx["action_url"] = f"/sidebar/opt-out/{customer_id}"
    return render(request, "compliance/_opt_out.html", ctx, csrf_token=links.csrf_token(sidebar_session))


@router.post("/sidebar/opt-out/{customer_id}", response_class=HTMLResponse)
async def sidebar_change_opt_out(request: Request, session: SessionDep, customer_id: int) -> HTMLResponse:
    signed_in = await _sidebar_actor_for_post(request, session)
    if signed_in is None:
        return _message(request, "signed_out", 401)
    actor, sidebar_session = signed_in
    try:
        done = await _change(request, session, actor, customer_id, "sidebar")
        ctx = _card(session, actor, customer_id, saved=done)
    except DomainError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return _message(request, "not_found", 404)
        raise
    ctx["action_url"] = f"/sidebar/opt-out/{customer_id}"
    return render(request, "compliance/_opt_out.html", ctx, csrf_token=links.csrf_token(sidebar_session))
