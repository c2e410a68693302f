"""REST API: opt-outs, complaints, pauses, the reach policy, content checks and the harassment budget."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from siyu.accounts.access import Actor, access_customer_by_id, access_pause_by_id, require
from siyu.accounts.auth import ActorDep
from siyu.compliance import actions, monitor, service
from siyu.compliance.content import check_content
from siyu.compliance.policy import load_policy
from siyu.compliance.schemas import (
    ComplaintCreate,
    ContentCheckRead,
    ContentCheckRequest,
    FindingRead,
    OptOutPage,
    OptOutState,
    OptOutWrite,
    PauseRead,
    PolicyRead,
    PolicyWrite,
    SignalRead,
)
from siyu.core.deps import SessionDep
from siyu.core.errors import error_body

router = APIRouter(prefix="/api", tags=["compliance"])


# --- opt-out ----------------------------------------------------------------------------------------


def _opt_out_state(session: SessionDep, actor: Actor, customer_id: int) -> OptOutState:
    found = service.get_opt_out(session, corp_id=actor.corp_id, customer_id=customer_id)
    return OptOutState(customer_id=customer_id, opted_out=found is not None, opt_out=found)


@router.post("/customers/{customer_id}/opt-out", response_model=OptOutState)
def opt_out(customer_id: int, session: SessionDep, actor: ActorDep, body: OptOutWrite | None = None) -> OptOutState:
    """Exclude the customer from every broadcast (退订). Idempotent: the first record is kept."""
    require(actor, "opt_out", "write")
    access_customer_by_id(session, actor, customer_id)
    note = body.note if body is not None else ""
    actions.do_opt_out(session, actor.corp_id, customer_id, "api", actor.label, note)
    return _opt_out_state(session, actor, customer_id)


@router.delete("/customers/{customer_id}/opt-out", response_model=OptOutState)
def opt_in(customer_id: int, session: SessionDep, actor: ActorDep) -> OptOutState:
    """The customer wants broadcasts again. Idempotent."""
    require(actor, "opt_out", "write")
    access_customer_by_id(session, actor, customer_id)
    actions.do_opt_in(session, actor.corp_id, customer_id, actor.label)
    return _opt_out_state(session, actor, customer_id)


@router.get("/compliance/opt-outs", response_model=OptOutPage)
def list_opt_outs(
    session: SessionDep,
    actor: ActorDep,
    after: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> OptOutPage:
    return service.list_opt_outs(session, actor=actor, after=after, limit=limit)


# --- complaints, signals, pauses ------------------------------------------------------------------------


@router.post("/compliance/complaints", response_model=SignalRead, status_code=201)
def record_complaint(body: ComplaintCreate, session: SessionDep, actor: ActorDep) -> SignalRead:
    """An explicit complaint; attributed to the given (else the last) broadcast and its sender, then judged."""
    require(actor, "complaint", "write")
    access_customer_by_id(session, actor, body.customer_id)
    signal = actions.do_record_complaint(session, actor, body)
    return service.signal_reads(session, [signal])[0]


@router.get("/compliance/signals", response_model=list[SignalRead])
def list_signals(
    session: SessionDep, actor: ActorDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[SignalRead]:
    return service.recent_signals(session, actor=actor, limit=limit)


@router.get("/compliance/pauses", response_model=list[PauseRead])
def list_pauses(session: SessionDep, actor: ActorDep, active: bool | None = None) -> list[PauseRead]:
    return service.list_pauses(session, actor=actor, active=active)


@router.post("/compliance/pauses/{pause_id}/lift", response_model=PauseRead)
def lift_pause(pause_id: int, session: SessionDep, actor: ActorDep) -> PauseRead:
    """Let the employee or broadcast send again; the monitor judges it afresh from now. Idempotent."""
    pause = actions.do_lift_pause(session, actor, access_pause_by_id(session, actor, pause_id, write=True))
    return service.pause_reads(session, [pause])[0]


@router.post("/compliance/evaluate", response_model=list[dict[str, Any]])
def evaluate(session: SessionDep, actor: ActorDep) -> list[dict[str, Any]]:
    """Run the complaint monitor for the corp now (it also runs after every signal and every 5 minutes)."""
    require(actor, "compliance", "write")
    monitor.do_sweep_deletions(session, actor.corp_id)
    return [
        {
            "scope": v.scope,
            "target_id": v.target_id,
            "messages": v.messages,
            "signals": v.signals,
            "rate_per_10k": v.rate_per_10k,
            "status": v.status,
            "action": v.action,
        }
        for v in monitor.do_evaluate(session, actor.corp_id)
    ]


# --- policy, content checks, budget ---------------------------------------------------------------


@router.get("/compliance/policy", response_model=PolicyRead)
def get_policy(session: SessionDep, actor: ActorDep) -> PolicyRead:
    return service.get_policy(session, actor=actor)


def policy_errors(errors: Sequence[Any]) -> list[str]:
    """Every problem as 'where: what' (the console shows the same list)."""
    out = []
    for e in errors:
        where = ".".join(str(p) for p in e["loc"] if p != "body") or "policy"
        out.append(f"{where}: {str(e['msg']).removeprefix('Value error, ')}")
    return out


class AllErrorsRoute(APIRoute):
    """A 422 that lists every invalid field (the app's default names the first only): a policy form has many."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                detail = [error_body("invalid", msg)["detail"][0] for msg in policy_errors(exc.errors())]
                return JSONResponse({"detail": detail}, status_code=422)

        return route


policy_router = APIRouter(tags=["compliance"], route_class=AllErrorsRoute)  # under router's /api


@policy_router.put("/compliance/policy", response_model=PolicyRead)
def put_policy(body: PolicyWrite, session: SessionDep, actor: ActorDep) -> PolicyRead:
    """Replace the corp's reach policy (caps, quiet hours, words, link allowlist, complaint thresholds).
    422 lists every invalid field, each as {code, msg}."""
    require(actor, "compliance", "write")
    actions.do_update_policy(session, actor, body)
    return service.get_policy(session, actor=actor)


@router.post("/compliance/content-check", response_model=ContentCheckRead)
def content_check(body: ContentCheckRequest, session: SessionDep, actor: ActorDep) -> ContentCheckRead:
    """What the content check finds in a message (sensitive words, links, induced sharing), with positions."""
    require(actor, "compliance", "read")
    findings = check_content(load_policy(session, actor.corp_id), body.text, body.attachments)
    return ContentCheckRead(
        ok=not findings, findings=[FindingRead.model_validate(f, from_attributes=True) for f in findings]
    )


@router.get("/compliance/budget")
def get_budget(session: SessionDep, actor: ActorDep) -> service.BudgetRead:
    """The harassment budget: per employee, broadcast and the corp, signals per 10,000 messages vs thresholds."""
    return service.budget(session, actor=actor)


router.include_router(policy_router)
