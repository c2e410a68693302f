"""Segments (客户分群): the saved segments with their counts, and a rule builder whose count and sample follow
the rule as it is edited (htmx posts the rule, debounced); save, snapshot, export.

The builder is a small script (`segments/_builder_js.html`) that keeps the rule as JSON in a hidden input;
everything it offers comes from the page (tags, employees, departments, channels, groups), and the
server validates the rule exactly as the REST API does (errors name the JSON path).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, access_segment_by_id, can, require
from siyu.acquisition import service as acquisition
from siyu.console import filters
from siyu.console.deps import ConsoleDep
from siyu.console.i18n import language_of, translator
from siyu.console.routes import _acquisition as acq
from siyu.console.templating import env, render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode
from siyu.segments import actions, service
from siyu.segments.engine import engine_for
from siyu.segments.rules import RuleError
from siyu.segments.schemas import SegmentCreate, SegmentUpdate

router = APIRouter(include_in_schema=False)
filters.install(env)
SAMPLE = 10
UNKNOWN_LABELS = {
    "tags": "Tags",
    "channels": "Channel codes",
    "channel_groups": "Channel group",
    "employees": "Employees",
    "departments": "Departments",
    "chat_ids": "Groups",
}


def builder_options(session: Session, actor: Actor) -> dict[str, Any]:
    """What the builder offers, as JSON for its script."""
    return {
        "tags": [
            {"id": tag_id, "name": name, "group": group}
            for group, tags in acq.tag_choices(session, actor.corp_id)
            for tag_id, name in tags
        ],
        "employees": [{"id": u, "name": n} for u, n in acq.active_employees(session, actor.corp_id)],
        "departments": [{"id": i, "name": n} for i, n in acq.departments(session, actor.corp_id)],
        "channels": [{"id": c.id, "name": c.name} for c in acquisition.list_channels(session, actor=actor)],
        "channel_groups": [{"id": g.id, "name": g.name} for g in acquisition.list_channel_groups(session, actor=actor)],
        "groups": [{"id": c, "name": n} for c, n in acq.group_chats(session, actor.corp_id)],
    }


def _counts(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Each saved segment with its count now (bitmap algebra: cheap), falling back to the stored one."""
    rows = []
    for seg in service.list_segments(session, actor=actor):
        try:
            now = len(service.customer_ids(session, corp_id=actor.corp_id, rule=seg.rule))
        except RuleError:
            now = seg.last_count
        rows.append({"segment": seg, "count": now})
    return rows


def _list_page(
    request: Request, session: Session, console: ConsoleDep, *, form: dict[str, str] | None = None, error: str = ""
) -> HTMLResponse:
    actor = console.actor
    ctx = {
        "segments": _counts(session, actor),
        "can_write": can(actor, "segment", "write"),
        "options": builder_options(session, actor),
        "form": form or {"name": "", "description": "", "rule": ""},
        "error": error,
        "tz": acq.zone_name(session, actor.corp_id),
    }
    return render(request, "segments/list.html", ctx, actor=actor, csrf_token=console.csrf_token)


@router.get("/segments", response_class=HTMLResponse)
def segments_page(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    require(console.actor, "segment", "read")
    return _list_page(request, session, console)


@router.post("/segments/preview", response_class=HTMLResponse)
async def preview(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    """The builder's live answer: count, a sample with owners, ids the corp lacks — or the rule's first error."""
    require(console.actor, "segment", "read")
    t = translator(language_of(request))
    raw = str((await request.form()).get("rule") or "")
    ctx: dict[str, Any] = {"unknown_labels": UNKNOWN_LABELS}
    if not raw.strip():
        ctx["empty"] = True
    else:
        try:
            ctx |= _evaluate(session, console.actor, json.loads(raw))
        except (RuleError, ValueError) as exc:
            ctx["error"] = t("This rule is not complete yet: {detail}", detail=str(exc))
    return render(request, "segments/_preview.html", ctx, actor=console.actor, csrf_token=console.csrf_token)


def _evaluate(session: Session, actor: Actor, rule: object) -> dict[str, Any]:
    found = service.count(session, corp_id=actor.corp_id, rule=rule, sample=SAMPLE)  # type: ignore[arg-type]
    sample = service.sample_customers(
        session, corp_id=actor.corp_id, customer_ids=found.sample_customer_ids, actor=actor
    )
    return {"count": found.count, "sample": sample, "unknown": found.unknown_ids}


def _form(data: Any) -> dict[str, str]:
    return {k: str(data.get(k) or "") for k in ("name", "description", "rule")}


def _rule_of(form: dict[str, str]) -> dict[str, Any]:
    try:
        rule = json.loads(form["rule"] or "null")
    except ValueError as exc:
        raise DomainError(ErrorCode.INVALID, f"rule: not JSON ({exc})") from exc
    if not isinstance(rule, dict):
        raise DomainError(ErrorCode.INVALID, "rule: add at least one condition")
    return rule


@router.post("/segments", response_class=HTMLResponse)
async def create_segment(request: Request, session: SessionDep, console: ConsoleDep) -> Response:
    t = translator(language_of(request))
    form = _form(await request.form())
    try:
        require(console.actor, "segment", "write")
        body = SegmentCreate(name=form["name"], description=form["description"], rule=_rule_of(form))
        segment = actions.do_create_segment(session, console.actor, body)
    except (DomainError, ValidationError) as exc:
        session.rollback()
        return _list_page(request, session, console, form=form, error=acq.error_text(t, exc))
    return RedirectResponse(f"/segments/{segment.id}", status_code=303)


def _detail(
    request: Request,
    session: Session,
    console: ConsoleDep,
    segment_id: int,
    *,
    form: dict[str, str] | None = None,
    error: str = "",
) -> HTMLResponse:
    actor = console.actor
    segment = access_segment_by_id(session, actor, segment_id)
    ctx = {
        "segment": segment,
        "snapshots": service.list_snapshots(session, actor=actor, segment_id=segment.id),
        "can_write": can(actor, "segment", "write"),
        "can_broadcast": can(actor, "broadcast", "write"),
        "options": builder_options(session, actor),
        "form": form or {"name": segment.name, "description": segment.description, "rule": json.dumps(segment.rule)},
        "error": error,
        "tz": acq.zone_name(session, actor.corp_id),
        "index_version": engine_for(session, actor.corp_id).version,
        "unknown_labels": UNKNOWN_LABELS,
        **_evaluate(session, actor, segment.rule),
    }
    return render(request, "segments/detail.html", ctx, actor=actor, csrf_token=console.csrf_token)


@router.get("/segments/{segment_id}", response_class=HTMLResponse)
def segment_page(request: Request, session: SessionDep, console: ConsoleDep, segment_id: int) -> HTMLResponse:
    return _detail(request, session, console, segment_id)


@router.post("/segments/{segment_id}/edit", response_class=HTMLResponse)
async def edit_segment(request: Request, session: SessionDep, console: ConsoleDep, segment_id: int) -> Response:
    t = translator(language_of(request))
    form = _form(await request.form())
    try:
        segment = access_segment_by_id(session, console.actor, segment_id, write=True)
        body = SegmentUpdate(name=form["name"], description=form["description"], rule=_rule_of(form))
        actions.do_update_segment(session, console.actor, segment, body)
    except (DomainError, ValidationError) as exc:
        session.rollback()
        return _detail(request, session, console, segment_id, form=form, error=acq.error_text(t, exc))
    return RedirectResponse(f"/segments/{segment_id}", status_code=303)


@router.post("/segments/{segment_id}/snapshot", response_class=HTMLResponse)
async def snapshot_segment(request: Request, session: SessionDep, console: ConsoleDep, segment_id: int) -> Response:
    t = translator(language_of(request))
    name = str((await request.form()).get("name") or "")
    try:
        segment = access_segment_by_id(session, console.actor, segment_id, write=True)
        actions.do_snapshot(session, console.actor, segment=segment, name=name)
    except DomainError as exc:
        session.rollback()
        return _detail(request, session, console, segment_id, error=acq.error_text(t, exc))
    return RedirectResponse(f"/segments/{segment_id}#snapshots", status_code=303)


@router.post("/segments/{segment_id}/delete", response_class=HTMLResponse)
def delete_segment(request: Request, session: SessionDep, console: ConsoleDep, segment_id: int) -> Response:
    t = translator(language_of(request))
    try:
        actions.do_delete_segment(
            session, console.actor, access_segment_by_id(session, console.actor, segment_id, write=True)
        )
    except DomainError as exc:
        session.rollback()
        return _detail(request, session, console, segment_id, error=acq.error_text(t, exc))
    return RedirectResponse("/segments", status_code=303)
