"""The sidebar (侧边栏): a phone-sized page in WeCom's chat toolbar for the customer in the chat.

How the employee gets in (see docs/sidebar.md):
* production: the toolbar opens `/sidebar?corp=<id>`; without a sidebar session that redirects to
  WeCom OAuth, which comes back to `/sidebar/oauth?code=…`; siyu asks WeCom who the code belongs
  to (auth/getuserinfo) and starts a sidebar session. The page then asks the JS-SDK
  (`wx.agentConfig` + `getCurExternalContact`) which customer the chat is with.
* demo and offline: a signed link `/sidebar?t=…` (`siyu sidebar-link`) names corp, employee and
  customer, and starts the same session.

The session is its own cookie, honoured only here; the actor is the employee's staff scope
(siyu.sidebar.service explains why never more).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.accounts.access import can
from siyu.console.i18n import language_of, translator
from siyu.console.templating import render
from siyu.core.config import get_settings
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp.models import Corp
from siyu.sidebar import actions, jssdk, links, service
from siyu.sidebar.service import SidebarActor
from siyu.wecom.client import client_for_corp
from siyu.wecom.errors import WeComError

router = APIRouter(include_in_schema=False)
COOKIE_PATH = "/sidebar"

# Timeline kinds as people read them; unknown kinds show their name.
EVENT_LABELS = {
    "follow_added": "Added by {employee}",
    "follow_ended": "No longer followed by {employee}",
    "remark_changed": "{employee} changed the remark to {remark}",
    "tags_changed": "{employee} tagged: +{added} −{removed}",
    "joined_group": "Joined the group {group}",
    "left_group": "Left the group {group}",
}
MESSAGES = {
    "expired": ("Link expired", "This sidebar link has expired. Make a new one with `siyu sidebar-link`."),
    "invalid": ("Link not valid", "This sidebar link is not valid."),
    "signed_out": ("Open from WeCom", "Open the sidebar from a chat in WeCom."),
    "not_found": ("Customer not available", "This customer is not among the customers you may see."),
    "employee": ("No access", "Your WeCom account may not use the sidebar. Ask your administrator."),
    "wecom": ("WeCom did not answer", "WeCom could not confirm who you are. Close the sidebar and open it again."),
}


def _message(request: Request, reason: str, status_code: int) -> HTMLResponse:
    title, text = MESSAGES[reason]
    ctx = {"title": title, "text": text, "reason": reason, "employee_name": ""}
    return render(request, "sidebar/message.html", ctx, status_code=status_code)


def _start_session(response: Response, request: Request, corp_id: int, employee_id: int) -> Response:
    value = links.session_cookie_value(links.SidebarSession(corp_id, employee_id))
    response.set_cookie(
        links.SESSION_COOKIE,
        value,
        max_age=links.SESSION_MAX_AGE,
        path=COOKIE_PATH,
        httponly=True,
        # WeCom's toolbar page is top-level and same-site; Lax keeps other sites' POSTs out.
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def _sidebar_actor(request: Request, session: Session) -> tuple[SidebarActor, links.SidebarSession] | None:
    found = links.read_session_cookie(request.cookies.get(links.SESSION_COOKIE))
    if found is None:
        return None
    try:
        return service.actor_for_employee(session, corp_id=found.corp_id, employee_id=found.employee_id), found
    except DomainError:
        return None


async def _sidebar_actor_for_post(
    request: Request, session: Session
) -> tuple[SidebarActor, links.SidebarSession] | None:
    """`_sidebar_actor` for a posted form, once its CSRF token (header or form field) is checked."""
    signed_in = _sidebar_actor(request, session)
    if signed_in is not None:
        form = await request.form()
        links.check_csrf(signed_in[1], request.headers.get("x-csrf-token") or str(form.get("csrf_token", "")))
    return signed_in


@router.get("/sidebar", response_class=HTMLResponse)
def sidebar(request: Request, session: SessionDep, t: str = "", corp: int | None = None) -> Response:
    if t:
        return _open_link(request, session, t)
    if _sidebar_actor(request, session) is not None:
        return render(request, "sidebar/shell.html", {"employee_name": ""})
    target = session.get(Corp, corp) if corp is not None else None
    if target is None:
        return _message(request, "signed_out", 401)
    redirect_uri = f"{get_settings().public_base_url.rstrip('/')}/sidebar/oauth"
    url = jssdk.oauth_url(target, redirect_uri=redirect_uri, state=links.make_oauth_state(target.corp_id))
    return RedirectResponse(url, status_code=302)


def _open_link(request: Request, session: Session, token: str) -> Response:
    try:
        link = links.read_link_token(token)
    except DomainError as exc:
        return _message(request, "expired" if "expired" in exc.msg else "invalid", 401)
    employee = service.employee_by_userid(session, corp_id=link.corp_id, userid=link.employee_userid)
    if employee is None:
        return _message(request, "employee", 403)
    try:
        service.actor_for_employee(session, corp_id=link.corp_id, employee_id=employee.id)
    except DomainError:
        return _message(request, "employee", 403)
    # Redirect so the token leaves the address bar and a reload keeps working after it expires.
    response = RedirectResponse(f"/sidebar/c/{quote(link.external_userid, safe='')}", status_code=303)
    return _start_session(response, request, link.corp_id, employee.id)


@router.get("/sidebar/oauth", response_class=HTMLResponse)
def oauth_return(request: Request, session: SessionDep, code: str = "", state: str = "") -> Response:
    try:
        corp = session.get(Corp, links.read_oauth_state(state))
    except DomainError:
        corp = None
    if corp is None or not code:
        return _message(request, "invalid", 401)
    try:
        with client_for_corp(corp) as client:
            userid = client.get_user_info(code)
    except WeComError:
        return _message(request, "wecom", 502)
    employee = service.employee_by_userid(session, corp_id=corp.corp_id, userid=userid)
    if employee is None:
        return _message(request, "employee", 403)
    try:
        service.actor_for_employee(session, corp_id=corp.corp_id, employee_id=employee.id)
    except DomainError:
        return _message(request, "employee", 403)
    return _start_session(RedirectResponse("/sidebar", status_code=303), request, corp.corp_id, employee.id)


@router.get("/sidebar/jsapi")
def jsapi_config(request: Request, session: SessionDep, url: str) -> Response:
    """Signatures for wx.config and wx.agentConfig on the page at `url` (sidebar session only)."""
    signed_in = _sidebar_actor(request, session)
    if signed_in is None:
        raise DomainError(ErrorCode.UNAUTHORIZED, "open the sidebar from WeCom first")
    corp = session.get(Corp, signed_in[0].corp_id)
    assert corp is not None
    try:
        return JSONResponse(asdict(jssdk.js_config(corp, url)))
    except WeComError as exc:
        raise DomainError(ErrorCode.WECOM_UNAVAILABLE, f"WeCom refused a JS-SDK ticket: {exc}") from exc


@router.get("/sidebar/c/{external_userid}", response_class=HTMLResponse)
def customer(request: Request, session: SessionDep, external_userid: str) -> Response:
    signed_in = _sidebar_actor(request, session)
    if signed_in is None:
        return _message(request, "signed_out", 401)
    actor, sidebar_session = signed_in
    try:
        card = service.get_card(session, actor, external_userid=external_userid)
    except DomainError:
        return _message(request, "not_found", 404)
    ctx = {"card": card, **_page_context(request, session, actor, sidebar_session)}
    return render(request, "sidebar/customer.html", ctx, csrf_token=ctx["csrf_token"])


def _page_context(
    request: Request, session: Session, actor: SidebarActor, sidebar_session: links.SidebarSession
) -> dict[str, Any]:
    return {
        "employee_name": service.employee_name(session, employee_id=sidebar_session.employee_id),
        "catalogue": service.tag_catalogue(session, corp_id=actor.corp_id),
        "can_edit_tags": can(actor, "customer", "write"),
        "csrf_token": links.csrf_token(sidebar_session),
        "event_text": _event_text(translator(language_of(request))),
    }


def _event_text(gettext: Callable[..., str]) -> Callable[[service.TimelineItem], str]:
    def text(item: service.TimelineItem) -> str:
        label = EVENT_LABELS.get(item.kind)
        if label is None:
            return item.kind
        detail = item.detail
        names = {
            "employee": item.employee_name or gettext("an employee"),
            "added": ", ".join(str(t) for t in _list(detail.get("added"))) or "—",
            "removed": ", ".join(str(t) for t in _list(detail.get("removed"))) or "—",
            "remark": str(detail.get("remark") or "—"),
            "group": str(detail.get("group_name") or ""),
        }
        return gettext(label, **names)

    return text


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


@router.post("/sidebar/follows/{follow_id}/tags", response_class=HTMLResponse)
async def save_tags(request: Request, session: SessionDep, follow_id: int) -> Response:
    signed_in = await _sidebar_actor_for_post(request, session)
    if signed_in is None:
        return _message(request, "signed_out", 401)
    actor, sidebar_session = signed_in
    form = await request.form()
    tag_ids = sorted({int(v) for v in form.getlist("tag_id") if str(v).isdigit()})
    error = ""
    try:
        actions.do_set_tags(session, actor, follow_id=follow_id, tag_ids=tag_ids)
        session.commit()  # commit before rendering: the outbox sends mark_tag after commit
    except DomainError as exc:
        session.rollback()
        if exc.code == ErrorCode.NOT_FOUND:
            return _message(request, "not_found", 404)
        error = exc.msg
    follow_view = service.follow_view(session, actor, follow_id=follow_id)
    ctx = {"follow": follow_view, "saved": not error, "error": error}
    ctx |= _page_context(request, session, actor, sidebar_session)
    return render(request, "sidebar/_follow.html", ctx, csrf_token=ctx["csrf_token"])
