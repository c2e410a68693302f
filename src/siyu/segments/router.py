"""REST API: live counts, saved segments, snapshots and CSV exports (the rule language is in siyu.segments.rules)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pyroaring import BitMap

from siyu.accounts.access import Actor, access_segment_by_id, access_snapshot_by_id, require
from siyu.accounts.auth import ActorDep
from siyu.core.config import Environment, get_settings
from siyu.core.db import get_sessionmaker
from siyu.core.deps import SessionDep
from siyu.segments import actions, engine, export, live, service
from siyu.segments.schemas import (
    CountRead,
    CountRequest,
    MemberPage,
    RuleSnapshotCreate,
    SegmentCreate,
    SegmentPage,
    SegmentRead,
    SegmentUpdate,
    SnapshotCreate,
    SnapshotPage,
    SnapshotRead,
)


@asynccontextmanager
async def _refresher(_app: Any) -> AsyncIterator[None]:
    """While the server runs, a thread keeps this process's segment indexes caught up (see engine).

    Not under SIYU_ENV=test: test processes swap databases under one registry, and counts are exact
    without the thread anyway (every count catches up first).
    """
    started = get_settings().env != Environment.TEST
    if started:
        engine.enable_background_refresh(get_sessionmaker())
    yield
    if started:
        engine.disable_background_refresh()


router = APIRouter(prefix="/api", tags=["segments"], lifespan=_refresher)


@router.post("/segments/count", response_model=CountRead)
def count_segment(body: CountRequest, session: SessionDep, actor: ActorDep) -> CountRead:
    """How many of the corp's customers a rule matches, with a sample; 422 names the rule's first error by path."""
    require(actor, "segment", "read")
    return live.count(session, corp_id=actor.corp_id, rule=body.rule, sample=body.sample, actor=actor)


@router.get("/segments", response_model=SegmentPage)
def list_segments(session: SessionDep, actor: ActorDep) -> SegmentPage:
    """The corp's saved segments by name, with the count each had when last saved, snapshotted or recounted."""
    return SegmentPage(items=service.list_segments(session, actor=actor))


@router.post("/segments", response_model=SegmentRead, status_code=201)
def create_segment(body: SegmentCreate, session: SessionDep, actor: ActorDep) -> SegmentRead:
    """Save a rule under a name (unique in the corp: 409 otherwise); 422 names the rule's first error by path."""
    segment = actions.do_create_segment(session, actor, body)
    return service.segment_read(session, segment)


@router.get("/segments/{segment_id}", response_model=SegmentRead)
def get_segment(segment_id: int, session: SessionDep, actor: ActorDep) -> SegmentRead:
    return service.segment_read(session, access_segment_by_id(session, actor, segment_id))


@router.patch("/segments/{segment_id}", response_model=SegmentRead)
def update_segment(segment_id: int, body: SegmentUpdate, session: SessionDep, actor: ActorDep) -> SegmentRead:
    segment = access_segment_by_id(session, actor, segment_id, write=True)
    return service.segment_read(session, actions.do_update_segment(session, actor, segment, body))


@router.delete("/segments/{segment_id}", status_code=204)
def delete_segment(segment_id: int, session: SessionDep, actor: ActorDep) -> Response:
    """The segment goes; its snapshots stay, detached from it."""
    actions.do_delete_segment(session, actor, access_segment_by_id(session, actor, segment_id, write=True))
    return Response(status_code=204)


@router.post("/segments/{segment_id}/count", response_model=CountRead)
def count_saved_segment(
    segment_id: int, session: SessionDep, actor: ActorDep, sample: int = Query(20, ge=0, le=200)
) -> CountRead:
    """Count a saved segment now (kept as its last_count), with a sample of who matches."""
    segment = access_segment_by_id(session, actor, segment_id)
    actions.do_recount(session, actor, segment)
    return live.count(session, corp_id=actor.corp_id, rule=segment.rule, sample=sample, actor=actor)


@router.get("/segments/{segment_id}/snapshots", response_model=SnapshotPage)
def list_segment_snapshots(segment_id: int, session: SessionDep, actor: ActorDep) -> SnapshotPage:
    segment = access_segment_by_id(session, actor, segment_id)
    return SnapshotPage(items=service.list_snapshots(session, actor=actor, segment_id=segment.id))


@router.post("/segments/{segment_id}/snapshots", response_model=SnapshotRead, status_code=201)
def snapshot_segment(segment_id: int, body: SnapshotCreate, session: SessionDep, actor: ActorDep) -> SnapshotRead:
    """Freeze who matches the segment now (membership, rule and rule version)."""
    segment = access_segment_by_id(session, actor, segment_id, write=True)
    return service.snapshot_read(actions.do_snapshot(session, actor, segment=segment, name=body.name))


@router.get("/segments/{segment_id}/export.csv")
def export_segment(segment_id: int, session: SessionDep, actor: ActorDep) -> StreamingResponse:
    """Who matches the segment now, as CSV (UTF-8 with BOM for Excel; mobiles masked), streamed."""
    segment = access_segment_by_id(session, actor, segment_id)
    ids = service.customer_ids(session, corp_id=actor.corp_id, rule=segment.rule)
    actions.do_record_export(session, actor, object_type="segment", object_id=segment.id, rows=len(ids))
    return _csv_response(actor, ids, f"segment-{segment.id}.csv")


@router.post("/segment-snapshots", response_model=SnapshotRead, status_code=201)
def snapshot_rule(body: RuleSnapshotCreate, session: SessionDep, actor: ActorDep) -> SnapshotRead:
    """Freeze who matches a rule that is not saved as a segment."""
    return service.snapshot_read(actions.do_snapshot(session, actor, rule=body.rule, name=body.name))


@router.get("/segment-snapshots", response_model=SnapshotPage)
def list_snapshots(session: SessionDep, actor: ActorDep) -> SnapshotPage:
    """The corp's snapshots, newest first (the latest 500)."""
    return SnapshotPage(items=service.list_snapshots(session, actor=actor))


@router.get("/segment-snapshots/{snapshot_id}", response_model=SnapshotRead)
def get_snapshot(snapshot_id: int, session: SessionDep, actor: ActorDep) -> SnapshotRead:
    return service.snapshot_read(access_snapshot_by_id(session, actor, snapshot_id))


@router.get("/segment-snapshots/{snapshot_id}/members", response_model=MemberPage)
def snapshot_members(
    snapshot_id: int,
    session: SessionDep,
    actor: ActorDep,
    after: int | None = Query(None, description="The last id of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
) -> MemberPage:
    """The frozen members in id order, keyset-paged (customers deleted since are left out)."""
    members = service.snapshot_members(access_snapshot_by_id(session, actor, snapshot_id))
    ids, cursor = service.page_of(members, after=after, limit=limit)
    items = service.sample_customers(session, corp_id=actor.corp_id, customer_ids=ids, actor=actor)
    return MemberPage(items=items, next_cursor=cursor)


@router.get("/segment-snapshots/{snapshot_id}/export.csv")
def export_snapshot(snapshot_id: int, session: SessionDep, actor: ActorDep) -> StreamingResponse:
    """The frozen members as CSV (UTF-8 with BOM; mobiles masked), streamed."""
    snapshot = access_snapshot_by_id(session, actor, snapshot_id)
    ids = service.snapshot_members(snapshot)
    actions.do_record_export(session, actor, object_type="segment_snapshot", object_id=snapshot.id, rows=len(ids))
    return _csv_response(actor, ids, f"segment-snapshot-{snapshot.id}.csv")


def _csv_response(actor: Actor, ids: BitMap, filename: str) -> StreamingResponse:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(
        export.csv_chunks(actor.corp_id, ids), media_type="text/csv; charset=utf-8", headers=headers
    )
