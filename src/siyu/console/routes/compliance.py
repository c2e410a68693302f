"""Compliance pages: the reach policy (合规策略) with a content check box, and the harassment budget (骚扰预算)
with pauses (and their lift button) and the recent complaint signals.

Forms are plain posts: a saved policy redirects; a refused one renders the page again with every problem
and the input kept. The content check answers an htmx post with the text, findings highlighted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from siyu.accounts.access import access_pause_by_id, can, require
from siyu.compliance import actions, monitor, service
from siyu.compliance.content import Finding, check_content
from siyu.compliance.models import PlatformCap
from siyu.compliance.policy import load_policy
from siyu.compliance.router import policy_errors
from siyu.compliance.schemas import BudgetRow, PolicyRead, PolicyWrite
from siyu.console.deps import ConsoleDep
from siyu.console.templating import render
from siyu.core.deps import SessionDep

router = APIRouter(include_in_schema=False)
CAP_SLOTS = 3  # corp cap rows offered by the form
PLATFORM_CAP_LABELS = {
    PlatformCap.DAYS_IN_MONTH.value: "1 per day, as many per month as the month has days (current WeCom rule)",
    PlatformCap.WEEKLY_7.value: "1 per day, 7 per rolling week",
    PlatformCap.DAILY_1.value: "1 per day",
    PlatformCap.MONTHLY_4.value: "4 per calendar month (the old WeCom rule)",
}
FINDING_LABELS = {
    "sensitive_word": "Sensitive word",
    "link": "Link outside the allowlist",
    "induced_sharing": "Induced sharing",
}
SIGNAL_LABELS = {
    "complaint": "Complaint",
    "deleted_after_message": "Deleted the employee after a message",
    "opted_out_after_message": "Opted out after a message",
}
STATUS_LABELS = {"ok": "Within budget", "warning": "Warning", "paused": "Paused", "insufficient": "Too few messages"}
SCOPE_LABELS = {"employee": "Employee", "broadcast": "Broadcast", "corp": "Corp"}


# --- the policy -----------------------------------------------------------------------------------


def form_of(policy: PolicyRead) -> dict[str, Any]:
    """The form's values (strings, as the inputs hold them) from the saved policy."""
    caps = [{"count": str(c.count), "days": str(c.days)} for c in policy.corp_caps]
    caps += [{"count": "", "days": ""}] * max(0, CAP_SLOTS - len(caps))
    t = policy.thresholds
    return {
        "platform_cap": policy.platform_cap.value,
        "corp_caps": caps,
        "quiet_start": policy.quiet_start,
        "quiet_end": policy.quiet_end,
        "sensitive_words": "\n".join(policy.sensitive_words),
        "link_allowlist": "\n".join(policy.link_allowlist),
        "warn_per_10k": f"{t.warn_per_10k:g}",
        "pause_per_10k": f"{t.pause_per_10k:g}",
        "min_messages": str(t.min_messages),
        "window_days": str(t.window_days),
        "delete_within_hours": str(t.delete_within_hours),
        "moments_eligible": policy.moments_eligible,
    }


def read_form(data: FormData) -> dict[str, Any]:
    slots = max(CAP_SLOTS, len(data.getlist("cap_count")))
    counts, days = data.getlist("cap_count"), data.getlist("cap_days")
    caps = [
        {"count": str(counts[i]) if i < len(counts) else "", "days": str(days[i]) if i < len(days) else ""}
        for i in range(slots)
    ]
    text = {k: str(data.get(k) or "") for k in ("platform_cap", "quiet_start", "quiet_end", "sensitive_words")}
    numbers = ("link_allowlist", "warn_per_10k", "pause_per_10k", "min_messages", "window_days", "delete_within_hours")
    return {
        **text,
        **{k: str(data.get(k) or "") for k in numbers},
        "corp_caps": caps,
        "moments_eligible": data.get("moments_eligible") in ("1", "on", "true"),
    }


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace(",", "\n").replace("，", "\n").splitlines() if line.strip()]


def policy_data(form: dict[str, Any]) -> dict[str, Any]:
    """The form as PolicyWrite input; blank cap rows are dropped, numbers are left for pydantic to check."""
    return {
        "platform_cap": form["platform_cap"],
        "corp_caps": [c for c in form["corp_caps"] if c["count"].strip() or c["days"].strip()],
        "quiet_start": form["quiet_start"],
        "quiet_end": form["quiet_end"],
        "sensitive_words": [w.strip() for w in form["sensitive_words"].splitlines() if w.strip()],
        "link_allowlist": _lines(form["link_allowlist"]),
        "thresholds": {
            k: form[k] for k in ("warn_per_10k", "pause_per_10k", "min_messages", "window_days", "delete_within_hours")
        },
        "moments_eligible": form["moments_eligible"],
    }


def _policy_page(
    request: Request,
    session: Session,
    console: ConsoleDep,
    *,
    form: dict[str, Any] | None = None,
    errors: list[str] | None = None,
    saved: bool = False,
) -> HTMLResponse:
    policy = service.get_policy(session, actor=console.actor)
    ctx = {
        "policy": policy,
        "form": form or form_of(policy),
        "errors": errors or [],
        "saved": saved,
        "can_write": can(console.actor, "compliance", "write"),
        "platform_cap_labels": PLATFORM_CAP_LABELS,
    }
    status = 422 if errors else 200
    return render(
        request, "compliance/policy.html", ctx, actor=console.actor, csrf_token=console.csrf_token, status_code=status
    )


@router.get("/compliance/policy", response_class=HTMLResponse)
def policy_page(request: Request, session: SessionDep, console: ConsoleDep, saved: str = "") -> HTMLResponse:
    require(console.actor, "compliance", "read")
    return _policy_page(request, session, console, saved=saved == "1")


@router.post("/compliance/policy", response_class=HTMLResponse)
async def save_policy(request: Request, session: SessionDep, console: ConsoleDep) -> Response:
    require(console.actor, "compliance", "write")
    form = read_form(await request.form())
    try:
        body = PolicyWrite.model_validate(policy_data(form))
    except ValidationError as exc:
        return _policy_page(request, session, console, form=form, errors=policy_errors(exc.errors()))
    actions.do_update_policy(session, console.actor, body)
    return RedirectResponse("/compliance/policy?saved=1", status_code=303)


def highlight(text: str, findings: list[Finding]) -> list[tuple[str, str]]:
    """The text as (piece, kind) runs; kind "" for clean text. Where findings overlap, the first one wins."""
    runs: list[tuple[str, str]] = []
    at = 0
    for f in sorted((f for f in findings if f.start >= 0), key=lambda f: (f.start, -f.end)):
        if f.start < at:
            continue
        if f.start > at:
            runs.append((text[at : f.start], ""))
        runs.append((text[f.start : f.end], f.kind))
        at = f.end
    if at < len(text):
        runs.append((text[at:], ""))
    return runs


@router.post("/compliance/policy/check", response_class=HTMLResponse)
async def check_text(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    """What the saved policy's content check finds in the text (htmx partial)."""
    require(console.actor, "compliance", "read")
    text = str((await request.form()).get("text") or "")[:20_000]
    findings = check_content(load_policy(session, console.actor.corp_id), text)
    ctx = {"text": text, "findings": findings, "runs": highlight(text, findings), "finding_labels": FINDING_LABELS}
    return render(request, "compliance/_check.html", ctx, actor=console.actor)


# --- the harassment budget ------------------------------------------------------------------------


def _gauge(row: BudgetRow) -> dict[str, Any]:
    return {"name": row.name, "rate": row.rate_per_10k or 0, "messages": row.messages, "status": row.status}


@router.get("/compliance/budget", response_class=HTMLResponse)
def budget_page(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    require(console.actor, "compliance", "read")
    data = service.budget(session, actor=console.actor)
    chart = {
        "warn": data.warn_per_10k,
        "pause": data.pause_per_10k,
        "corp": data.corp.rate_per_10k or 0,
        "employees": [_gauge(r) for r in data.employees[:20]],
    }
    ctx = {
        "data": data,
        "chart": chart,
        "can_write": can(console.actor, "compliance", "write"),
        "signal_labels": SIGNAL_LABELS,
        "status_labels": STATUS_LABELS,
        "scope_labels": SCOPE_LABELS,
        "platform_cap_labels": PLATFORM_CAP_LABELS,
    }
    return render(request, "compliance/budget.html", ctx, actor=console.actor, csrf_token=console.csrf_token)


@router.post("/compliance/pauses/{pause_id}/lift", response_class=HTMLResponse)
def lift_pause(session: SessionDep, console: ConsoleDep, pause_id: int) -> Response:
    actions.do_lift_pause(session, console.actor, access_pause_by_id(session, console.actor, pause_id, write=True))
    return RedirectResponse("/compliance/budget", status_code=303)


@router.post("/compliance/evaluate", response_class=HTMLResponse)
def evaluate_now(session: SessionDep, console: ConsoleDep) -> Response:
    """Run the complaint monitor now (it also runs after every signal and every 5 minutes)."""
    require(console.actor, "compliance", "write")
    monitor.do_sweep_deletions(session, console.actor.corp_id)
    monitor.do_evaluate(session, console.actor.corp_id)
    return RedirectResponse("/compliance/budget", status_code=303)
