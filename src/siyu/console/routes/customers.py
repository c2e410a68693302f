"""Customers: the filtered list (htmx partial updates), CSV export with progress, the detail page with
per-follow tag editing (written to WeCom through the outbox) and the timeline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData, QueryParams

from siyu.accounts.access import access_customer_by_id, can
from siyu.console.deps import ConsoleDep
from siyu.console.templating import render
from siyu.contacts import service
from siyu.contacts.actions import do_set_follow_tags, do_start_export
from siyu.contacts.models import ExportStatus, FollowStatus
from siyu.contacts.router import export_file
from siyu.contacts.schemas import STATUS_FILTERS, CustomerFilters, CustomerRead, Sort, TagMode
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError
from siyu.timeline import service as timeline

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
# Distinct msgids (not "Active"): other pages translate that word differently.
STATUS_LABELS = {
    FollowStatus.ACTIVE.value: "Following",
    FollowStatus.CUSTOMER_DELETED_EMPLOYEE.value: "Customer deleted employee",
    FollowStatus.EMPLOYEE_DELETED_CUSTOMER.value: "Employee deleted customer",
    FollowStatus.TRANSFERRED.value: "Transferred",
    FollowStatus.REMOVED.value: "Removed from WeCom",
    "ended": "Ended (any cause)",
    "none": "No follow",
}
SORT_LABELS = {
    Sort.ADDED_DESC: "Newest added",
    Sort.ADDED: "Oldest added",
    Sort.NAME: "Name A→Z",
    Sort.NAME_DESC: "Name Z→A",
    Sort.ID: "ID ascending",
    Sort.ID_DESC: "ID descending",
}
TAG_MODE_LABELS = {TagMode.ANY: "Any of the tags", TagMode.ALL: "All of the tags", TagMode.NONE: "None of the tags"}
CUSTOMER_TYPES = {1: "WeChat user", 2: "WeCom user"}
EVENT_LABELS = {
    "follow_added": "Follow added",
    "follow_ended": "Follow ended",
    "remark_changed": "Remark changed",
    "tags_changed": "Tags changed",
    "joined_group": "Joined a group",
    "left_group": "Left a group",
}
SYNC_LABELS = {"pending": "Sending to WeCom", "sent": "Saved in WeCom", "failed": "WeCom refused"}


def _labels() -> dict[str, Any]:
    return {
        "status_labels": STATUS_LABELS,
        "sort_labels": {str(k): v for k, v in SORT_LABELS.items()},
        "tag_mode_labels": {str(k): v for k, v in TAG_MODE_LABELS.items()},
        "customer_types": CUSTOMER_TYPES,
        "event_labels": EVENT_LABELS,
        "sync_labels": SYNC_LABELS,
        "add_ways": service.ADD_WAYS,
    }


def filters_from(params: QueryParams | FormData) -> tuple[CustomerFilters, str]:
    """Filters from a console form or URL: blanks mean 'any'; a bad value gives the defaults and a message."""
    data = {
        "q": str(params.get("q") or ""),
        "tag_ids": _ints(params.getlist("tag_ids")),
        "tag_mode": params.get("tag_mode") or TagMode.ANY,
        "employee_ids": _ints([*params.getlist("employee_ids"), *params.getlist("employee")]),
        "department_id": _ints([params.get("department_id") or ""])[:1] or [None],
        "added_from": params.get("added_from") or None,
        "added_to": params.get("added_to") or None,
        "status": params.get("status") or None,
        "sort": params.get("sort") or Sort.ADDED_DESC,
    }
    data["department_id"] = data["department_id"][0]
    try:
        return CustomerFilters.model_validate(data), ""
    except ValidationError as exc:
        first = exc.errors()[0]
        return CustomerFilters(), f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def _ints(values: list[Any]) -> list[int]:
    return [int(v) for v in values if str(v).strip().isdigit()]


def _partial(request: Request) -> bool:
    """htmx swaps only the results; a history restore (back button) needs the whole page."""
    return bool(request.headers.get("hx-request")) and not request.headers.get("hx-history-restore-request")


@router.get("/customers", response_class=HTMLResponse)
def customers_page(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    filters, error = filters_from(request.query_params)
    after = request.query_params.get("after") or None
    try:
        page = service.list_(session, actor=console.actor, filters=filters, after=after, limit=PAGE_SIZE)
    except DomainError as exc:
        page, error = service.list_(session, actor=console.actor, filters=filters, limit=PAGE_SIZE), exc.msg
    context = {
        "page": page,
        "filters": filters,
        "error": error,
        "query": _query_without_after(request.query_params),
        "first_page": after is not None,
        **_labels(),
    }
    if _partial(request):
        return render(request, "customers/_results.html", context, actor=console.actor)
    context |= {
        "tag_groups": service.tag_groups(session, corp_id=console.actor.corp_id),
        "employees": service.employee_choices(session, actor=console.actor),
        "departments": service.department_choices(session, corp_id=console.actor.corp_id),
        "status_filters": STATUS_FILTERS,
    }
    return render(request, "customers/list.html", context, actor=console.actor, csrf_token=console.csrf_token)


def _query_without_after(params: QueryParams) -> str:
    from urllib.parse import urlencode

    return urlencode([(k, v) for k, v in params.multi_items() if k != "after" and v != ""])


# --- export -----------------------------------------------------------------------------------


@router.post("/customers/exports", response_class=HTMLResponse)
async def start_export(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    filters, _ = filters_from(await request.form())
    export = do_start_export(session, actor=console.actor, filters=filters.model_dump(mode="json"))
    session.commit()  # the task (inline in a one-process setup) must see the row
    session.refresh(export)
    return _export_status(request, session, console, export.id)


@router.get("/customers/exports/{export_id}", response_class=HTMLResponse)
def export_status(export_id: int, request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    return _export_status(request, session, console, export_id)


def _export_status(request: Request, session: SessionDep, console: ConsoleDep, export_id: int) -> HTMLResponse:
    export = service.get_export(session, actor=console.actor, export_id=export_id)
    read = service.export_read(export, download_url=f"/customers/exports/{export.id}/download")
    return render(request, "customers/_export.html", {"export": read, "done": ExportStatus.DONE}, actor=console.actor)


@router.get("/customers/exports/{export_id}/download")
def download_export(export_id: int, session: SessionDep, console: ConsoleDep) -> Response:
    export = service.get_export(session, actor=console.actor, export_id=export_id)
    return export_file(export.status, export.file_name, export.created_at.strftime("%Y%m%d-%H%M"))


# --- detail -----------------------------------------------------------------------------------


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
def customer_page(customer_id: int, request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    customer = service.get(session, actor=console.actor, customer_id=customer_id)
    entries, next_cursor = timeline.list_(session, actor=console.actor, customer_id=customer_id, limit=20)
    context = {
        "customer": customer,
        "tag_groups": service.tag_groups(session, corp_id=console.actor.corp_id),
        "can_edit": can(console.actor, "customer", "write"),
        "entries": entries,
        "next_cursor": next_cursor,
        **_labels(),
    }
    return render(request, "customers/detail.html", context, actor=console.actor, csrf_token=console.csrf_token)


@router.put("/customers/{customer_id}/follows/{follow_id}/tags", response_class=HTMLResponse)
async def save_follow_tags(
    customer_id: int, follow_id: int, request: Request, session: SessionDep, console: ConsoleDep
) -> HTMLResponse:
    form = await request.form()
    error = ""
    try:
        do_set_follow_tags(
            session,
            actor=console.actor,
            customer_id=customer_id,
            follow_id=follow_id,
            tag_ids=_ints(form.getlist("tag_ids")),
        )
    except DomainError as exc:
        session.rollback()
        error = exc.msg
    return _follow_card(request, session, console, customer_id, follow_id, error=error, saved=not error)


@router.get("/customers/{customer_id}/follows/{follow_id}", response_class=HTMLResponse)
def follow_card(
    customer_id: int, follow_id: int, request: Request, session: SessionDep, console: ConsoleDep
) -> HTMLResponse:
    return _follow_card(request, session, console, customer_id, follow_id)


def _follow_card(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    customer_id: int,
    follow_id: int,
    *,
    error: str = "",
    saved: bool = False,
) -> HTMLResponse:
    customer: CustomerRead = service.get(session, actor=console.actor, customer_id=customer_id)
    follow = next((f for f in customer.follows if f.id == follow_id), None)
    if follow is None:
        raise DomainError(service.ErrorCode.NOT_FOUND, f"no follow {follow_id}")
    context = {
        "customer": customer,
        "f": follow,
        "tag_groups": service.tag_groups(session, corp_id=console.actor.corp_id),
        "can_edit": can(console.actor, "customer", "write"),
        "error": error,
        "saved": saved,
        **_labels(),
    }
    return render(request, "customers/_follow.html", context, actor=console.actor, csrf_token=console.csrf_token)


@router.get("/customers/{customer_id}/timeline", response_class=HTMLResponse)
def timeline_more(
    customer_id: int, request: Request, session: SessionDep, console: ConsoleDep, before: str | None = None
) -> HTMLResponse:
    access_customer_by_id(session, console.actor, customer_id)
    entries, next_cursor = timeline.list_(session, actor=console.actor, customer_id=customer_id, before=before)
    context = {"customer_id": customer_id, "entries": entries, "next_cursor": next_cursor, **_labels()}
    return render(request, "customers/_timeline.html", context, actor=console.actor)
