"""REST API: customer groups (客户群) with member counts, and one group with its members."""

from __future__ import annotations

from fastapi import APIRouter, Query

from siyu.accounts.access import access_group_by_id
from siyu.accounts.auth import ActorDep
from siyu.core.deps import SessionDep
from siyu.groups import service
from siyu.groups.models import GroupStatus
from siyu.groups.schemas import GroupChatDetail, GroupChatPage

router = APIRouter(prefix="/api", tags=["groups"])


@router.get("/groups", response_model=GroupChatPage)
def list_groups(
    session: SessionDep,
    actor: ActorDep,
    status: GroupStatus | None = Query(None),
    owner: str | None = Query(None, max_length=64, description="owner's userid"),
    q: str | None = Query(None, max_length=64, description="name contains"),
    after: int | None = Query(None, description="the next_after of the previous page"),
    limit: int = Query(50, ge=1, le=service.MAX_LIMIT),
) -> GroupChatPage:
    return service.list_(session, actor=actor, status=status, owner=owner, q=q, after=after, limit=limit)


@router.get("/groups/{group_id}", response_model=GroupChatDetail)
def get_group(group_id: int, session: SessionDep, actor: ActorDep) -> GroupChatDetail:
    chat = access_group_by_id(session, actor, group_id)
    return service.get_detail(session, actor=actor, chat=chat)
