"""Broadcasts (群发): the list, the composer (new / edit a draft) with a live content check, the plan (eligible,
excluded by reason, per sender, quiet-hours move, blocked content, the excluded recipients) with Send /
Re-plan / Cancel, and the progress and results page (chunks accepted, confirmation per employee, what each
recipient got; remind, cancel, fetch results). Moments use the same pages (their list is `moments.py`).

Everything changes through the broadcast domain's actions (`actions`, `planner`, `sender`, `results`);
the pages only read its services. Forms are plain posts; a refused one renders the page again with the
message and the input kept. The results part refreshes itself (htmx) while the broadcast is under way.

Staff see only the personal broadcasts they started, and compose only those: from themselves, to their own
customers (ticked in a list, or pasted), at most the reach policy's limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from siyu.accounts.access import (
    Actor,
    access_broadcast_by_id,
    access_segment_by_id,
    access_snapshot_by_id,
    can,
    can_broadcast,
    can_write_broadcast,
    personal_only,
    require,
)
from siyu.acquisition import service as acquisition
from siyu.broadcasts import actions, planner, results, sender, service
from siyu.broadcasts.models import Broadcast, BroadcastKind, BroadcastStatus
from siyu.broadcasts.schemas import (
    MAX_ATTACHMENTS,
    MAX_HOLDOUT_PERCENT,
    BroadcastCreate,
    BroadcastRead,
    BroadcastUpdate,
)
from siyu.compliance.content import check_content
from siyu.compliance.policy import load_policy
from siyu.console import filters
from siyu.console.deps import ConsoleDep
from siyu.console.i18n import language_of, translator
from siyu.console.routes import _acquisition as acq
from siyu.console.routes import _broadcasts as bc
from siyu.console.routes.compliance import FINDING_LABELS, highlight
from siyu.console.templating import env, render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode
from siyu.segments import live
from siyu.segments import service as segments

router = APIRouter(include_in_schema=False)
filters.install(env)
PAGE = 50
RECIPIENTS_PAGE = 50
UPLOAD_LIMIT = 5_000_000  # bytes of an uploaded customer list
# While in one of these (and not final) the results part of the page refreshes itself.
UNDER_WAY = (BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING, BroadcastStatus.SENT, BroadcastStatus.PAUSED)
PLAN_PAGE = (BroadcastStatus.PLANNED, BroadcastStatus.BLOCKED)
NOTICES = {
    "started": "Sending started: each employee gets a task in WeCom to confirm.",
    "scheduled": "Scheduled: it starts sending at the planned time.",
    "cancelled": "Cancelled: nothing more goes out; tasks not yet confirmed are withdrawn.",
    "fetching": "Fetching the results from WeCom…",
    "saved": "Draft saved.",
}


def see_other(session: Session, url: str) -> RedirectResponse:
    """Commit, then redirect. FastAPI ends the session dependency (and so commits) only after the response is
    sent, and a browser follows a 303 at once: without this it could read the page before the change."""
    session.commit()
    return RedirectResponse(url, status_code=303)


def _t(request: Request) -> Callable[..., str]:
    return translator(language_of(request))


def _kind(value: object) -> str:
    return str(value) if str(value) in bc.SOURCES else BroadcastKind.CUSTOMER.value


def _require_broadcasts(actor: Actor, action: str = "read") -> None:
    if not can_broadcast(actor, action):
        raise DomainError(ErrorCode.FORBIDDEN, f"your role ({actor.role}) may not {action} broadcast")


def _staff_kind(actor: Actor, value: object) -> str:
    """Staff start personal broadcasts only: 403 for any other kind they ask for."""
    if value not in (None, "", BroadcastKind.PERSONAL.value):
        raise DomainError(ErrorCode.FORBIDDEN, f"your role ({actor.role}) may only start personal broadcasts")
    return BroadcastKind.PERSONAL.value


# --- the list --------------------------------------------------------------------------------------


def describe_audience(audience: dict[str, Any], segment_names: dict[int, str]) -> tuple[str, dict[str, Any]]:
    """The audience as (msgid, parameters) for the list."""
    if "segment_id" in audience:
        segment_id = int(audience["segment_id"])
        return "Segment: {name}", {"name": segment_names.get(segment_id, f"#{segment_id}")}
    if "snapshot_id" in audience:
        return "Snapshot #{id}", {"id": audience["snapshot_id"]}
    if "rule" in audience:
        return "A rule (JSON)", {}
    if "customer_ids" in audience:
        return "{n} customers", {"n": len(audience["customer_ids"] or [])}
    if "chat_ids" in audience:
        return "{n} groups", {"n": len(audience["chat_ids"] or [])}
    if "owner_ids" in audience:
        return "Groups of {n} owners", {"n": len(audience["owner_ids"] or [])}
    if audience.get("tag_ids"):
        return "Customers with {n} tags", {"n": len(audience["tag_ids"])}
    return "Every customer of the senders", {}


def _segment_names(session: Session, actor: Actor) -> dict[int, str]:
    if not can(actor, "segment", "read"):
        return {}
    return {s.id: s.name for s in segments.list_segments(session, actor=actor)}


def list_page(
    request: Request, session: Session, console: ConsoleDep, *, kind: str, status: str, after: str, moments: bool
) -> HTMLResponse:
    actor = console.actor
    if moments:
        require(actor, "broadcast", "read")
    _require_broadcasts(actor)
    kind = kind if kind in bc.KIND_LABELS else ""
    status = status if status in bc.STATUS_LABELS else ""
    found = service.list_(
        session, actor=actor, kind=kind or None, status=status or None, after=after or None, limit=PAGE
    )
    names = _segment_names(session, actor)
    rows = [
        {
            "b": b,
            "audience": describe_audience(b.audience, names),
            "eligible": b.counts.get("eligible"),
            "sent": (b.counts.get("results") or {}).get("sent"),
        }
        for b in found.items
    ]
    ctx = {
        "rows": rows,
        "next_cursor": found.next_cursor,
        "kind": kind,
        "status": status,
        "moments": moments,
        "can_write": can_broadcast(actor, "write"),
        "personal_only": personal_only(actor),
        "tz": acq.zone_name(session, actor.corp_id),
        **_labels(),
    }
    return render(request, "broadcasts/list.html", ctx, actor=actor, csrf_token=console.csrf_token)


def _labels() -> dict[str, Any]:
    return {
        "kind_labels": bc.KIND_LABELS,
        "status_labels": bc.STATUS_LABELS,
        "status_pills": bc.STATUS_PILLS,
        "reason_labels": bc.REASON_LABELS,
        "recipient_labels": bc.RECIPIENT_LABELS,
        "chunk_labels": bc.CHUNK_LABELS,
        "confirm_labels": bc.CONFIRM_LABELS,
    }


@router.get("/broadcasts", response_class=HTMLResponse)
def broadcasts_page(
    request: Request, session: SessionDep, console: ConsoleDep, kind: str = "", status: str = "", after: str = ""
) -> HTMLResponse:
    return list_page(request, session, console, kind=kind, status=status, after=after, moments=False)


# --- the composer ----------------------------------------------------------------------------------


def composer(
    request: Request,
    session: Session,
    console: ConsoleDep,
    *,
    form: dict[str, Any],
    broadcast: BroadcastRead | None = None,
    error: str = "",
    notice: str = "",
) -> HTMLResponse:
    actor = console.actor
    policy = load_policy(session, actor.corp_id)
    editable = broadcast is None or broadcast.status in actions.EDITABLE
    writable = can_write_broadcast(actor, broadcast) if broadcast else can_broadcast(actor, "write")
    staff = personal_only(actor)
    ctx = {
        "form": form,
        "b": broadcast,
        "error": error,
        "notice": notice,
        "can_write": writable and editable,
        "editable": editable,
        "personal_only": staff,
        "own_customers": bc.own_customers(session, actor.corp_id, actor.employee_id) if staff else [],
        "own_shown": bc.OWN_CUSTOMERS_SHOWN,
        "sender_name": _own_name(session, actor) if staff else "",
        "sources": ("customer_ids",) if staff else bc.SOURCES[form["kind"]],
        "source_labels": bc.SOURCE_LABELS,
        "segments": segments.list_segments(session, actor=actor) if can(actor, "segment", "read") else [],
        "snapshots": segments.list_snapshots(session, actor=actor) if can(actor, "segment", "read") else [],
        "employees": bc.employees(session, actor.corp_id),
        "group_chats": acq.group_chats(session, actor.corp_id),
        "tag_choices": acq.tag_choices(session, actor.corp_id),
        "materials": acquisition.list_materials(session, actor=actor),
        "material_kinds": acq.MATERIAL_KINDS,
        "moments_eligible": policy.moments_eligible,
        "personal_max": policy.personal_max_recipients,
        "max_attachments": MAX_ATTACHMENTS,
        "max_holdout": MAX_HOLDOUT_PERCENT,
        "tz": acq.zone_name(session, actor.corp_id),
        **_labels(),
    }
    status = 422 if error else 200
    return render(
        request, "broadcasts/compose.html", ctx, actor=actor, csrf_token=console.csrf_token, status_code=status
    )


def _own_name(session: Session, actor: Actor) -> str:
    if actor.employee_id is None:
        return ""
    return bc.employee_names(session, actor.corp_id, [actor.employee_id]).get(actor.employee_id, "")


@router.get("/broadcasts/new", response_class=HTMLResponse)
def new_broadcast_page(
    request: Request, session: SessionDep, console: ConsoleDep, kind: str = "", segment_id: str = ""
) -> HTMLResponse:
    """The empty composer; `segment_id` (from a segment's page) preselects that saved segment as the audience.
    Staff get the personal composer, sent by themselves."""
    actor = console.actor
    if personal_only(actor):
        form = bc.empty_form(_staff_kind(actor, kind))
        form["sender_ids"] = [str(actor.employee_id)] if actor.employee_id is not None else []
    else:
        require(actor, "broadcast", "write")
        form = bc.empty_form(_kind(kind))
        if segment_id.isdigit() and "segment_id" in bc.SOURCES[form["kind"]]:
            form |= {"source": "segment_id", "segment_id": segment_id}
    return composer(request, session, console, form=form)


async def _upload(data: FormData) -> str:
    """The text of an uploaded customer list (UTF-8, a BOM allowed), or ""."""
    upload = data.get("customer_file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return ""
    raw = await upload.read(UPLOAD_LIMIT + 1)
    if len(raw) > UPLOAD_LIMIT:
        raise ValueError("customer_file: at most 5 MB; use a segment for larger audiences")
    return raw.decode("utf-8-sig", errors="replace")


@router.post("/broadcasts", response_class=HTMLResponse)
async def create_broadcast(request: Request, session: SessionDep, console: ConsoleDep) -> Response:
    data = await request.form()
    staff = personal_only(console.actor)
    kind = _staff_kind(console.actor, data.get("kind")) if staff else _kind(data.get("kind"))
    form = bc.read_form(data, kind)
    try:
        if not staff:
            require(console.actor, "broadcast", "write")
        form = bc.read_form(data, kind, await _upload(data))
        fields = _draft_fields(session, console.actor, form)
        body = BroadcastCreate.model_validate({"kind": kind, **fields})
        broadcast = actions.do_create_broadcast(session, console.actor, body)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        return composer(request, session, console, form=form, error=bc.error_text(_t(request), exc))
    return _after_save(request, session, console, broadcast, form, plan=data.get("action") == "plan")


def _draft_fields(session: Session, actor: Actor, form: dict[str, Any]) -> dict[str, Any]:
    """The form as the draft's fields; for staff only when it is their own personal broadcast (else Refused)."""
    zone = acq.zone_of(session, actor.corp_id)
    if not personal_only(actor):
        return bc.draft_data(session, actor.corp_id, form, zone)
    form = form | {"source": "customer_ids"}  # staff reach the customers they ticked or pasted, nothing else
    if not (form["customer_ids"] or form["customer_list"].strip() or form["customer_upload"].strip()):
        raise bc.Refused("Choose at least one of your customers.")
    fields = bc.draft_data(session, actor.corp_id, form, zone)
    limit = load_policy(session, actor.corp_id).personal_max_recipients
    bc.check_own_personal(actor.employee_id, fields, limit)
    return fields


def _after_save(
    request: Request, session: Session, console: ConsoleDep, broadcast: Broadcast, form: dict[str, Any], *, plan: bool
) -> Response:
    """Saved: back to the draft, or (Plan) on to the plan. A plan refused keeps the saved draft and says why."""
    if not plan:
        return see_other(session, f"/broadcasts/{broadcast.id}/edit?notice=saved")
    try:
        with session.begin_nested():
            planner.do_plan(session, broadcast.id, console.actor)
    except DomainError as exc:
        session.refresh(broadcast)
        error = bc.error_text(_t(request), exc)
        return composer(request, session, console, form=form, broadcast=service.get(broadcast), error=error)
    return see_other(session, f"/broadcasts/{broadcast.id}/plan")


@router.get("/broadcasts/{broadcast_id}/edit", response_class=HTMLResponse)
def edit_broadcast_page(
    request: Request, session: SessionDep, console: ConsoleDep, broadcast_id: int, notice: str = ""
) -> HTMLResponse:
    actor = console.actor
    read = service.get(access_broadcast_by_id(session, actor, broadcast_id))
    form = bc.form_of(session, actor.corp_id, read, acq.zone_of(session, actor.corp_id))
    if personal_only(actor):
        form = bc.split_own(form, bc.own_customers(session, actor.corp_id, actor.employee_id))
    return composer(request, session, console, form=form, broadcast=read, notice=NOTICES.get(notice, ""))


@router.post("/broadcasts/{broadcast_id}/edit", response_class=HTMLResponse)
async def edit_broadcast(request: Request, session: SessionDep, console: ConsoleDep, broadcast_id: int) -> Response:
    actor = console.actor
    data = await request.form()
    form = bc.read_form(data, access_broadcast_by_id(session, actor, broadcast_id).kind)
    try:
        broadcast = access_broadcast_by_id(session, actor, broadcast_id, write=True)
        form = bc.read_form(data, broadcast.kind, await _upload(data))
        fields = _draft_fields(session, actor, form)
        actions.do_update_broadcast(session, actor, broadcast, BroadcastUpdate.model_validate(fields))
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        read = service.get(access_broadcast_by_id(session, actor, broadcast_id))
        return composer(request, session, console, form=form, broadcast=read, error=bc.error_text(_t(request), exc))
    return _after_save(request, session, console, broadcast, form, plan=data.get("action") == "plan")


# --- live checks while composing ------------------------------------------------------------------


@router.post("/broadcasts/check", response_class=HTMLResponse)
async def check_broadcast_content(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    """What the corp's content check finds in the text and the chosen attachments (htmx partial)."""
    actor = console.actor
    _require_broadcasts(actor)
    data = await request.form()
    text = str(data.get("text") or "")[:20_000]
    form = {"material_ids": data.getlist("material_ids"), "extra_attachments": str(data.get("extra_attachments") or "")}
    try:
        attachments = bc.attachments_of(session, actor.corp_id, form)
    except ValueError:
        attachments = []
    findings = check_content(load_policy(session, actor.corp_id), text, attachments)
    ctx = {"text": text, "findings": findings, "runs": highlight(text, findings), "finding_labels": FINDING_LABELS}
    return render(request, "compliance/_check.html", ctx, actor=actor)


@router.post("/broadcasts/audience-count", response_class=HTMLResponse)
async def count_audience(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    """How many customers the chosen audience holds before any exclusion (htmx partial)."""
    actor = console.actor
    _require_broadcasts(actor)
    data = await request.form()
    ctx: dict[str, Any] = {"count": None, "error": ""}
    try:
        form = bc.read_form(data, _kind(data.get("kind")), await _upload(data))
        ctx["count"] = _audience_size(session, actor, bc.audience_of(session, actor.corp_id, form))
    except (DomainError, ValueError) as exc:
        ctx["error"] = bc.error_text(_t(request), exc)
    return render(request, "broadcasts/_count.html", ctx, actor=actor)


def _audience_size(session: Session, actor: Actor, audience: dict[str, Any]) -> int | None:
    """Customers in a rule, segment, snapshot or list; None for audiences only the plan resolves (groups, tags)."""
    if "rule" in audience:
        return live.count(session, corp_id=actor.corp_id, rule=audience["rule"], sample=0).count
    if "segment_id" in audience:
        segment = access_segment_by_id(session, actor, int(audience["segment_id"]))
        return live.count(session, corp_id=actor.corp_id, rule=segment.rule, sample=0).count
    if "snapshot_id" in audience:
        return access_snapshot_by_id(session, actor, int(audience["snapshot_id"])).member_count
    if "customer_ids" in audience:
        return len(audience["customer_ids"])
    return None


# --- one broadcast: the plan -------------------------------------------------------------------------


def _recipients(
    session: Session, broadcast: Broadcast, *, status: str, reason: str, after: str, page_url: str
) -> dict[str, Any]:
    """One keyset page of the broadcast's recipients (filtered by status and reason) for `_recipients.html`."""
    status = status if status in bc.RECIPIENT_LABELS else ""
    reason = reason if reason in bc.REASON_LABELS else ""
    page = service.list_recipients(
        session,
        broadcast=broadcast,
        status=status or None,
        reason=reason or None,
        after=after or None,
        limit=RECIPIENTS_PAGE,
    )
    reasons = service.count_excluded(session, broadcast_id=broadcast.id) if status == "excluded" else {}
    return {"page": page, "status": status, "reason": reason, "after": after, "page_url": page_url, "reasons": reasons}


def _bars(t: Callable[..., str], counts: dict[str, int], labels: dict[str, str]) -> dict[str, Any]:
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    return {"labels": [t(labels.get(k, k)) for k, _ in ordered], "values": [v for _, v in ordered], "unit": ""}


def plan_page(
    request: Request,
    session: Session,
    console: ConsoleDep,
    broadcast: Broadcast,
    *,
    reason: str = "",
    after: str = "",
    error: str = "",
) -> HTMLResponse:
    actor = console.actor
    plan = service.plan_summary(session, broadcast=broadcast)
    text = str((broadcast.content or {}).get("text") or "")
    writable = can_write_broadcast(actor, broadcast)
    ctx = {
        "b": service.get(broadcast),
        "plan": plan,
        "excluded_total": sum(plan.excluded.values()),
        "chart": _bars(_t(request), plan.excluded, bc.REASON_LABELS),
        "runs": highlight(text, plan.findings),  # schemas.Finding has the fields highlight reads
        "text": text,
        "findings": plan.findings,
        "finding_labels": FINDING_LABELS,
        "recipients": _recipients(
            session,
            broadcast,
            status="excluded",
            reason=reason,
            after=after,
            page_url=f"/broadcasts/{broadcast.id}/plan",
        ),
        "can_send": writable and broadcast.status == BroadcastStatus.PLANNED and plan.eligible > 0,
        "can_replan": writable and broadcast.status in planner.REPLANNABLE,
        "can_edit": writable and broadcast.status in actions.EDITABLE,
        "can_cancel": writable and broadcast.status in sender.CANCELLABLE,
        "error": error,
        "tz": acq.zone_name(session, actor.corp_id),
        **_labels(),
    }
    return render(
        request,
        "broadcasts/plan.html",
        ctx,
        actor=actor,
        csrf_token=console.csrf_token,
        status_code=422 if error else 200,
    )


@router.get("/broadcasts/{broadcast_id}/plan", response_class=HTMLResponse)
def broadcast_plan(
    request: Request, session: SessionDep, console: ConsoleDep, broadcast_id: int, reason: str = "", after: str = ""
) -> HTMLResponse:
    broadcast = access_broadcast_by_id(session, console.actor, broadcast_id)
    return plan_page(request, session, console, broadcast, reason=reason, after=after)


@router.post("/broadcasts/{broadcast_id}/plan", response_class=HTMLResponse)
def replan_broadcast(request: Request, session: SessionDep, console: ConsoleDep, broadcast_id: int) -> Response:
    """Plan again with today's opt-outs, pauses and caps (the previous plan's slots are freed first)."""
    try:
        access_broadcast_by_id(session, console.actor, broadcast_id, write=True)
        planner.do_plan(session, broadcast_id, console.actor)
    except DomainError as exc:
        session.rollback()
        broadcast = access_broadcast_by_id(session, console.actor, broadcast_id)
        return plan_page(request, session, console, broadcast, error=bc.error_text(_t(request), exc))
    return see_other(session, f"/broadcasts/{broadcast_id}/plan")


@router.get("/broadcasts/{broadcast_id}/recipients", response_class=HTMLResponse)
def broadcast_recipients(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    broadcast_id: int,
    status: str = "",
    reason: str = "",
    after: str = "",
    page_url: str = "",
) -> HTMLResponse:
    """One page of recipients (htmx partial of the plan and results pages)."""
    broadcast = access_broadcast_by_id(session, console.actor, broadcast_id)
    own = f"/broadcasts/{broadcast_id}"
    url = page_url if page_url in (own, f"{own}/plan") else own
    ctx = {
        "b": service.get(broadcast),
        "recipients": _recipients(session, broadcast, status=status, reason=reason, after=after, page_url=url),
        **_labels(),
    }
    return render(request, "broadcasts/_recipients.html", ctx, actor=console.actor)


# --- one broadcast: sending, progress and results ------------------------------------------------------


def _progress(request: Request, session: Session, console: ConsoleDep, broadcast: Broadcast) -> dict[str, Any]:
    """What the results part (`_progress.html`) shows: chunks accepted, recipients per outcome, each employee's
    confirmation. The results page and the part's own refresh both render it."""
    actor = console.actor
    found = results.results_of(session, broadcast)
    accepted = sum(1 for c in found.chunks if c.status == "sent")
    names = bc.employee_names(session, broadcast.corp_id, (c.employee_id for c in found.chunks if c.employee_id))
    published = dict(results.stored_results(broadcast).get("published") or {})
    employees = [e for e in found.employees if e.tasks]
    chart = {
        "labels": [e.name or e.userid for e in employees],
        "values": [round((e.rate or 0) * 100, 1) for e in employees],
        "unit": "%",
    }
    return {
        "b": service.get(broadcast),
        "res": found,
        "accepted": accepted,
        "percent": round(100 * accepted / len(found.chunks)) if found.chunks else 0,
        "sender_names": names,
        "published": sorted(published.items()),
        "publisher_names": acq.employee_names(session, broadcast.corp_id, published),
        "employee_chart": chart,
        "outcome_chart": _bars(
            _t(request), {k: v for k, v in found.counts.items() if k != "excluded"}, bc.RECIPIENT_LABELS
        ),
        "live": broadcast.status in UNDER_WAY and broadcast.finished_at is None,
        "can_refresh": broadcast.status in results.POLLED and broadcast.finished_at is None,
        "can_remind": broadcast.kind != BroadcastKind.MOMENT
        and broadcast.status in (BroadcastStatus.SENDING, BroadcastStatus.SENT)
        and any(c.confirm_status == "unconfirmed" and c.msgid for c in found.chunks),
        "can_cancel": broadcast.status in sender.CANCELLABLE,
        "can_write": can_write_broadcast(actor, broadcast),
        "tz": acq.zone_name(session, actor.corp_id),
        **_labels(),
    }


def results_page(
    request: Request,
    session: Session,
    console: ConsoleDep,
    broadcast: Broadcast,
    *,
    status: str = "",
    after: str = "",
    notice: str = "",
    error: str = "",
) -> HTMLResponse:
    actor = console.actor
    ctx = {
        **_progress(request, session, console, broadcast),
        "recipients": _recipients(
            session, broadcast, status=status, reason="", after=after, page_url=f"/broadcasts/{broadcast.id}"
        ),
        "notice": notice,
        "error": error,
    }
    code = 422 if error else 200
    return render(request, "broadcasts/results.html", ctx, actor=actor, csrf_token=console.csrf_token, status_code=code)


@router.get("/broadcasts/{broadcast_id}", response_class=HTMLResponse)
def broadcast_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    broadcast_id: int,
    status: str = "",
    after: str = "",
    notice: str = "",
    reminded: int = -1,
    at_limit: int = 0,
) -> Response:
    """A draft opens in the composer, a plan on the plan page; anything sent (or on its way) shows its results."""
    broadcast = access_broadcast_by_id(session, console.actor, broadcast_id)
    if broadcast.status == BroadcastStatus.DRAFT:
        return RedirectResponse(f"/broadcasts/{broadcast_id}/edit", status_code=303)
    if broadcast.status in PLAN_PAGE:
        return RedirectResponse(f"/broadcasts/{broadcast_id}/plan", status_code=303)
    t = _t(request)
    text = t(NOTICES[notice]) if notice in NOTICES else ""
    if reminded >= 0:
        text = t("Reminders queued for {n} unconfirmed tasks ({m} already had 3 today).", n=reminded, m=at_limit)
    return results_page(request, session, console, broadcast, status=status, after=after, notice=text)


@router.get("/broadcasts/{broadcast_id}/progress", response_class=HTMLResponse)
def broadcast_progress(request: Request, session: SessionDep, console: ConsoleDep, broadcast_id: int) -> HTMLResponse:
    """The results part alone: polled while the broadcast is under way."""
    broadcast = access_broadcast_by_id(session, console.actor, broadcast_id)
    ctx = _progress(request, session, console, broadcast)
    return render(request, "broadcasts/_progress.html", ctx, actor=console.actor, csrf_token=console.csrf_token)


def _refused(request: Request, session: Session, console: ConsoleDep, broadcast_id: int, exc: DomainError) -> Response:
    session.rollback()
    broadcast = access_broadcast_by_id(session, console.actor, broadcast_id)
    error = bc.error_text(_t(request), exc)
    if broadcast.status in PLAN_PAGE or broadcast.status == BroadcastStatus.DRAFT:
        return plan_page(request, session, console, broadcast, error=error)
    return results_page(request, session, console, broadcast, error=error)


@router.post("/broadcasts/{broadcast_id}/send", response_class=HTMLResponse)
def send_broadcast(request: Request, session: SessionDep, console: ConsoleDep, broadcast_id: int) -> Response:
    """确认发送: the plan starts sending (or waits for its time); each chunk goes out after commit."""
    try:
        access_broadcast_by_id(session, console.actor, broadcast_id, write=True)
        broadcast = sender.do_start(session, broadcast_id, console.actor)
    except DomainError as exc:
        return _refused(request, session, console, broadcast_id, exc)
    notice = "scheduled" if broadcast.status == BroadcastStatus.SCHEDULED else "started"
    return see_other(session, f"/broadcasts/{broadcast_id}?notice={notice}")


@router.post("/broadcasts/{broadcast_id}/cancel", response_class=HTMLResponse)
def cancel_broadcast(request: Request, session: SessionDep, console: ConsoleDep, broadcast_id: int) -> Response:
    try:
        access_broadcast_by_id(session, console.actor, broadcast_id, write=True)
        sender.do_cancel(session, broadcast_id, console.actor)
    except DomainError as exc:
        return _refused(request, session, console, broadcast_id, exc)
    return see_other(session, f"/broadcasts/{broadcast_id}?notice=cancelled")


@router.post("/broadcasts/{broadcast_id}/remind", response_class=HTMLResponse)
def remind_broadcast(request: Request, session: SessionDep, console: ConsoleDep, broadcast_id: int) -> Response:
    """Remind every employee who has not confirmed their task yet (WeCom: 3 reminders per task a day)."""
    try:
        access_broadcast_by_id(session, console.actor, broadcast_id, write=True)
        done = results.do_remind(session, broadcast_id, console.actor)
    except DomainError as exc:
        return _refused(request, session, console, broadcast_id, exc)
    query = f"reminded={done['reminded']}&at_limit={done['at_limit']}"
    return see_other(session, f"/broadcasts/{broadcast_id}?{query}")


@router.post("/broadcasts/{broadcast_id}/refresh", response_class=HTMLResponse)
def refresh_results(session: SessionDep, console: ConsoleDep, broadcast_id: int) -> Response:
    """Ask the worker to fetch the results from WeCom now (it also does so on its own, less often as they age)."""
    broadcast = access_broadcast_by_id(session, console.actor, broadcast_id)
    if broadcast.status in results.POLLED and broadcast.finished_at is None:
        _poll_after_commit(session, broadcast_id)
    return see_other(session, f"/broadcasts/{broadcast_id}?notice=fetching")


def _poll_after_commit(session: Session, broadcast_id: int) -> None:
    def enqueue(_session: Session) -> None:
        from siyu.broadcasts.tasks import poll_broadcast_results

        poll_broadcast_results(broadcast_id)

    event.listen(session, "after_commit", enqueue, once=True)
