"""REST API: live segment counts (the rule language is in siyu.segments.rules)."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.accounts.access import require
from siyu.accounts.auth import ActorDep
from siyu.core.deps import SessionDep
from siyu.segments import live
from siyu.segments.schemas import CountRead, CountRequest

router = APIRouter(prefix="/api", tags=["segments"])


@router.post("/segments/count", response_model=CountRead)
def count_segment(body: CountRequest, session: SessionDep, actor: ActorDep) -> CountRead:
    """How many of the corp's customers a rule matches, with a sample; 422 names the rule's first error by path."""
    require(actor, "segment", "read")
    return live.count(session, corp_id=actor.corp_id, rule=body.rule, sample=body.sample)
