"""REST API: corp tag groups and tags — read with counts; create, rename, reorder, delete (sent to WeCom)."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.accounts.access import access_tag_by_id, access_tag_group_by_id, require
from siyu.accounts.auth import ActorDep
from siyu.core.deps import SessionDep
from siyu.tags import service, wecom_sync
from siyu.tags.schemas import OutboxQueued, TagCreate, TagGroupCreate, TagGroupRead, TagRead, TagUpdate

router = APIRouter(prefix="/api", tags=["tags"])


@router.get("/tag-groups", response_model=list[TagGroupRead])
def list_tag_groups(session: SessionDep, actor: ActorDep) -> list[TagGroupRead]:
    return service.list_groups(session, actor=actor)


@router.post("/tag-groups", response_model=TagGroupRead, status_code=201)
def create_tag_group(body: TagGroupCreate, session: SessionDep, actor: ActorDep) -> TagGroupRead:
    require(actor, "tag", "write")
    group, _ = wecom_sync.do_create_group(session, actor, body)
    return service.get_group(session, actor=actor, group=group)


@router.get("/tag-groups/{group_id}", response_model=TagGroupRead)
def get_tag_group(group_id: int, session: SessionDep, actor: ActorDep) -> TagGroupRead:
    group = access_tag_group_by_id(session, actor, group_id)
    return service.get_group(session, actor=actor, group=group)


@router.patch("/tag-groups/{group_id}", response_model=TagGroupRead)
def update_tag_group(group_id: int, body: TagUpdate, session: SessionDep, actor: ActorDep) -> TagGroupRead:
    group = access_tag_group_by_id(session, actor, group_id, write=True)
    wecom_sync.do_update_group(session, actor, group, body)
    return service.get_group(session, actor=actor, group=group)


@router.delete("/tag-groups/{group_id}", response_model=OutboxQueued, status_code=202)
def delete_tag_group(group_id: int, session: SessionDep, actor: ActorDep) -> OutboxQueued:
    group = access_tag_group_by_id(session, actor, group_id, write=True)
    return OutboxQueued(outbox_id=wecom_sync.do_delete_group(session, actor, group).id)


@router.post("/tag-groups/{group_id}/tags", response_model=TagRead, status_code=201)
def add_tag(group_id: int, body: TagCreate, session: SessionDep, actor: ActorDep) -> TagRead:
    group = access_tag_group_by_id(session, actor, group_id, write=True)
    tag, _ = wecom_sync.do_add_tag(session, actor, group, body)
    return service.get_tag(session, actor=actor, tag=tag)


@router.get("/tags", response_model=list[TagRead])
def list_tags(session: SessionDep, actor: ActorDep) -> list[TagRead]:
    return [tag for group in service.list_groups(session, actor=actor) for tag in group.tags]


@router.get("/tags/{tag_id}", response_model=TagRead)
def get_tag(tag_id: int, session: SessionDep, actor: ActorDep) -> TagRead:
    return service.get_tag(session, actor=actor, tag=access_tag_by_id(session, actor, tag_id))


@router.patch("/tags/{tag_id}", response_model=TagRead)
def update_tag(tag_id: int, body: TagUpdate, session: SessionDep, actor: ActorDep) -> TagRead:
    tag = access_tag_by_id(session, actor, tag_id, write=True)
    wecom_sync.do_update_tag(session, actor, tag, body)
    return service.get_tag(session, actor=actor, tag=tag)


@router.delete("/tags/{tag_id}", response_model=OutboxQueued, status_code=202)
def delete_tag(tag_id: int, session: SessionDep, actor: ActorDep) -> OutboxQueued:
    tag = access_tag_by_id(session, actor, tag_id, write=True)
    return OutboxQueued(outbox_id=wecom_sync.do_delete_tag(session, actor, tag).id)
