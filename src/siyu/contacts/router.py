"""REST API: customers — the filtered list, one customer, tag edits (to WeCom), timeline, CSV exports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from siyu.accounts.access import access_customer_by_id
from siyu.accounts.auth import ActorDep
from siyu.contacts import service
from siyu.contacts.actions import do_set_follow_tags, do_start_export
from siyu.contacts.models import ExportStatus
from siyu.contacts.schemas import (
    CustomerFilters,
    CustomerPage,
    CustomerRead,
    ExportRead,
    FollowRead,
    FollowTagsUpdate,
    TimelineEventRead,
    TimelinePage,
)
from siyu.contacts.tasks import export_path
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode
from siyu.timeline import service as timeline

router = APIRouter(prefix="/api", tags=["customers"])


@router.get("/customers", response_model=CustomerPage)
def list_customers(
    session: SessionDep,
    actor: ActorDep,
    filters: Annotated[CustomerFilters, Query()],
    after: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> CustomerPage:
    return service.list_(session, actor=actor, filters=filters, after=after, limit=limit)


@router.post("/customers/exports", response_model=ExportRead, status_code=202)
def start_export(filters: CustomerFilters, session: SessionDep, actor: ActorDep) -> ExportRead:
    export = do_start_export(session, actor=actor, filters=filters.model_dump(mode="json"))
    return service.export_read(export, download_url=_download_url(export.id))


@router.get("/customers/exports/{export_id}", response_model=ExportRead)
def get_export(export_id: int, session: SessionDep, actor: ActorDep) -> ExportRead:
    export = service.get_export(session, actor=actor, export_id=export_id)
    return service.export_read(export, download_url=_download_url(export.id))


@router.get("/customers/exports/{export_id}/download", response_class=FileResponse)
def download_export(export_id: int, session: SessionDep, actor: ActorDep) -> FileResponse:
    export = service.get_export(session, actor=actor, export_id=export_id)
    return export_file(export.status, export.file_name, export.created_at.strftime("%Y%m%d-%H%M"))


def export_file(status: str, file_name: str, stamp: str) -> FileResponse:
    path = export_path(file_name) if file_name else None
    if status != ExportStatus.DONE or path is None or not path.exists():
        raise DomainError(ErrorCode.CONFLICT, "the export is not ready (or its file was removed)")
    return FileResponse(path, media_type="text/csv; charset=utf-8", filename=f"customers-{stamp}.csv")


def _download_url(export_id: int) -> str:
    return f"/api/customers/exports/{export_id}/download"


@router.get("/customers/{customer_id}", response_model=CustomerRead)
def get_customer(customer_id: int, session: SessionDep, actor: ActorDep) -> CustomerRead:
    return service.get(session, actor=actor, customer_id=customer_id)


@router.put("/customers/{customer_id}/follows/{follow_id}/tags", response_model=FollowRead)
def set_follow_tags(
    customer_id: int, follow_id: int, body: FollowTagsUpdate, session: SessionDep, actor: ActorDep
) -> FollowRead:
    """Replace the follow's corp tags; the change is sent to WeCom (mark_tag) after commit."""
    do_set_follow_tags(session, actor=actor, customer_id=customer_id, follow_id=follow_id, tag_ids=body.tag_ids)
    customer = service.get(session, actor=actor, customer_id=customer_id)
    return next(f for f in customer.follows if f.id == follow_id)


@router.get("/customers/{customer_id}/timeline", response_model=TimelinePage)
def get_timeline(
    customer_id: int,
    session: SessionDep,
    actor: ActorDep,
    before: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=timeline.MAX_LIMIT)] = 20,
) -> TimelinePage:
    access_customer_by_id(session, actor, customer_id)
    entries, next_cursor = timeline.list_(session, actor=actor, customer_id=customer_id, before=before, limit=limit)
    return TimelinePage(items=[timeline_read(e) for e in entries], next_cursor=next_cursor)


def timeline_read(entry: timeline.TimelineEntry) -> TimelineEventRead:
    e = entry.event
    return TimelineEventRead(
        id=e.id,
        kind=e.kind,
        occurred_at=e.occurred_at,
        employee_id=e.employee_id,
        employee_name=entry.employee_name,
        actor=e.actor,
        detail=dict(e.detail or {}),
    )
