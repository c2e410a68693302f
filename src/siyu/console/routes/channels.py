"""Channel codes (渠道活码): the list with channel groups, the new-channel form, one channel's detail (QR code,
who serves it now, edit, delete, recent welcomes) and a printable poster.

Forms are plain posts (they work without JavaScript): a saved change redirects, a refused one renders the
page again with the message and the input kept. QR images come from the REST API (session cookie auth).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from siyu.accounts.access import Actor, access_channel_by_id, access_channel_group_by_id, can, require
from siyu.acquisition import actions, qr, service
from siyu.acquisition.models import ChannelKind
from siyu.acquisition.schemas import ChannelGroupWrite, ChannelPatch, ChannelRead, ChannelWrite
from siyu.console import filters
from siyu.console.deps import ConsoleDep
from siyu.console.i18n import language_of, translator
from siyu.console.routes import _acquisition as acq
from siyu.console.templating import env, render
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError

router = APIRouter(include_in_schema=False)
filters.install(env)
SLOTS = 3  # schedule rows offered by the form
WEEKDAYS = [(1, "Mon"), (2, "Tue"), (3, "Wed"), (4, "Thu"), (5, "Fri"), (6, "Sat"), (7, "Sun")]
KIND_LABELS = {
    ChannelKind.STORE.value: "Store",
    ChannelKind.POSTER.value: "Poster",
    ChannelKind.PACKAGE.value: "Package insert",
    ChannelKind.OFFICIAL_ACCOUNT.value: "Official account",
    ChannelKind.LIVE.value: "Live stream",
    ChannelKind.ADS.value: "Ads",
    ChannelKind.OTHER.value: "Other",
}


def empty_form() -> dict[str, Any]:
    return {
        "name": "",
        "group_id": "",
        "userids": [],
        "party_ids": [],
        "backup_userids": [],
        "daily_cap": "",
        "slots": [{"weekdays": [], "start": "09:00", "end": "18:00", "userids": []} for _ in range(SLOTS)],
        "valid_from": "",
        "valid_until": "",
        "tag_ids": [],
        "skip_verify": True,
        "remark": "",
        "welcome_text": "",
        "material_ids": [],
        "group_code_id": "",
    }


def form_of(channel: ChannelRead, zone: ZoneInfo) -> dict[str, Any]:
    """The edit form filled from a channel (values as the inputs hold them: strings)."""
    welcome = channel.welcome
    slots = [
        {"weekdays": [str(d) for d in s.weekdays], "start": s.start, "end": s.end, "userids": list(s.userids)}
        for s in channel.schedule
    ]
    slots += empty_form()["slots"][: max(0, SLOTS - len(slots))]
    return {
        "name": channel.name,
        "group_id": str(channel.group_id or ""),
        "userids": list(channel.userids),
        "party_ids": [str(p) for p in channel.party_ids],
        "backup_userids": list(channel.backup_userids),
        "daily_cap": str(channel.daily_cap or ""),
        "slots": slots,
        "valid_from": acq.datetime_input(channel.valid_from, zone),
        "valid_until": acq.datetime_input(channel.valid_until, zone),
        "tag_ids": [str(t) for t in channel.tag_ids],
        "skip_verify": channel.skip_verify,
        "remark": channel.remark,
        "welcome_text": welcome.text if welcome else "",
        "material_ids": [str(m) for m in welcome.material_ids] if welcome else [],
        "group_code_id": str(welcome.group_code_id or "") if welcome else "",
    }


def read_form(data: FormData) -> dict[str, Any]:
    """The posted form as the template shows it again (so a refused form keeps its input)."""
    slots = [
        {
            "weekdays": [str(v) for v in data.getlist(f"slot{i}_weekdays")],
            "start": str(data.get(f"slot{i}_start") or ""),
            "end": str(data.get(f"slot{i}_end") or ""),
            "userids": [str(v) for v in data.getlist(f"slot{i}_userids")],
        }
        for i in range(SLOTS)
    ]
    return {
        "name": str(data.get("name") or ""),
        "group_id": str(data.get("group_id") or ""),
        "userids": [str(v) for v in data.getlist("userids")],
        "party_ids": [str(v) for v in data.getlist("party_ids")],
        "backup_userids": [str(v) for v in data.getlist("backup_userids")],
        "daily_cap": str(data.get("daily_cap") or ""),
        "slots": slots,
        "valid_from": str(data.get("valid_from") or ""),
        "valid_until": str(data.get("valid_until") or ""),
        "tag_ids": [str(v) for v in data.getlist("tag_ids")],
        "skip_verify": data.get("skip_verify") in ("1", "on", "true"),
        "remark": str(data.get("remark") or ""),
        "welcome_text": str(data.get("welcome_text") or ""),
        "material_ids": [str(v) for v in data.getlist("material_ids")],
        "group_code_id": str(data.get("group_code_id") or ""),
    }


def channel_data(form: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """The form as ChannelWrite / ChannelPatch input. Raises ValueError for unreadable numbers and dates."""
    schedule = [
        {"weekdays": acq.ints(s["weekdays"]), "start": s["start"], "end": s["end"], "userids": s["userids"]}
        for s in form["slots"]
        if s["weekdays"] or s["userids"]
    ]
    text = form["welcome_text"]
    materials = acq.ints(form["material_ids"])
    group_code_id = acq.optional_int(form["group_code_id"], "group_code_id")
    welcome = (
        {"text": text, "material_ids": materials, "group_code_id": group_code_id}
        if text.strip() or materials or group_code_id
        else None
    )
    return {
        "name": form["name"],
        "group_id": acq.optional_int(form["group_id"], "group_id"),
        "userids": form["userids"],
        "party_ids": acq.ints(form["party_ids"]),
        "backup_userids": form["backup_userids"],
        "daily_cap": acq.optional_int(form["daily_cap"], "daily_cap"),
        "schedule": schedule,
        "valid_from": acq.local_datetime(form["valid_from"], zone, "valid_from"),
        "valid_until": acq.local_datetime(form["valid_until"], zone, "valid_until"),
        "tag_ids": acq.ints(form["tag_ids"]),
        "welcome": welcome,
        "skip_verify": form["skip_verify"],
        "remark": form["remark"],
    }


def form_choices(session: Session, actor: Actor) -> dict[str, Any]:
    """What the channel form offers: employees, departments, tags, materials, group codes, channel groups."""
    return {
        "employees": acq.active_employees(session, actor.corp_id),
        "departments": acq.departments(session, actor.corp_id),
        "tag_choices": acq.tag_choices(session, actor.corp_id),
        "materials": service.list_materials(session, actor=actor),
        "group_codes": service.list_group_codes(session, actor=actor),
        "channel_groups": service.list_channel_groups(session, actor=actor),
        "weekdays": WEEKDAYS,
        "material_kinds": acq.MATERIAL_KINDS,
    }


def _list_context(session: Session, actor: Actor, group_id: int | None) -> dict[str, Any]:
    channels = service.list_channels(session, actor=actor, group_id=group_id)
    names = acq.employee_names(session, actor.corp_id, (u for c in channels for u in c.live_userids))
    return {
        "channels": channels,
        "names": names,
        "group_id": group_id,
        "syncing": any(c.syncing for c in channels),
        "status_labels": acq.STATUS_LABELS,
    }


def _page(
    request: Request,
    session: Session,
    console: ConsoleDep,
    *,
    group_id: int | None = None,
    form: dict[str, Any] | None = None,
    error: str = "",
    group_error: str = "",
) -> HTMLResponse:
    actor = console.actor
    ctx = {
        **_list_context(session, actor, group_id),
        **form_choices(session, actor),
        "can_write": can(actor, "channel", "write"),
        "form": form or empty_form(),
        "error": error,
        "group_error": group_error,
        "kind_labels": KIND_LABELS,
    }
    return render(request, "channels/list.html", ctx, actor=actor, csrf_token=console.csrf_token)


def _group_filter(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@router.get("/channels", response_class=HTMLResponse)
def channels_page(request: Request, session: SessionDep, console: ConsoleDep, group_id: str = "") -> HTMLResponse:
    require(console.actor, "channel", "read")
    return _page(request, session, console, group_id=_group_filter(group_id))


@router.get("/channels/list", response_class=HTMLResponse)
def channels_list(request: Request, session: SessionDep, console: ConsoleDep, group_id: str = "") -> HTMLResponse:
    """The table alone: polled while a code is still being created in WeCom."""
    require(console.actor, "channel", "read")
    ctx = _list_context(session, console.actor, _group_filter(group_id))
    return render(request, "channels/_table.html", ctx, actor=console.actor, csrf_token=console.csrf_token)


@router.post("/channels", response_class=HTMLResponse)
async def create_channel(request: Request, session: SessionDep, console: ConsoleDep) -> Response:
    t = translator(language_of(request))
    form = read_form(await request.form())
    try:
        require(console.actor, "channel", "write")
        body = ChannelWrite.model_validate(channel_data(form, acq.zone_of(session, console.actor.corp_id)))
        channel = actions.do_create_channel(session, console.actor, body)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        return _page(request, session, console, form=form, error=acq.error_text(t, exc))
    return RedirectResponse(f"/channels/{channel.id}", status_code=303)


# --- channel groups -----------------------------------------------------------------------------


async def _group_change(request: Request, session: Session, console: ConsoleDep, group_id: int | None) -> Response:
    t = translator(language_of(request))
    data = await request.form()
    try:
        if data.get("delete"):
            group = access_channel_group_by_id(session, console.actor, group_id or 0, write=True)
            actions.do_delete_channel_group(session, console.actor, group)
        else:
            body = ChannelGroupWrite(name=str(data.get("name") or ""), kind=str(data.get("kind") or "other"))
            if group_id is None:
                require(console.actor, "channel", "write")
                actions.do_create_channel_group(session, console.actor, body)
            else:
                group = access_channel_group_by_id(session, console.actor, group_id, write=True)
                actions.do_update_channel_group(session, console.actor, group, body)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        return _page(request, session, console, group_error=acq.error_text(t, exc))
    return RedirectResponse("/channels", status_code=303)


@router.post("/channel-groups", response_class=HTMLResponse)
async def create_channel_group(request: Request, session: SessionDep, console: ConsoleDep) -> Response:
    return await _group_change(request, session, console, None)


@router.post("/channel-groups/{group_id}", response_class=HTMLResponse)
async def change_channel_group(request: Request, session: SessionDep, console: ConsoleDep, group_id: int) -> Response:
    """Rename (name, kind) or, with `delete`, delete the group (its channels stay, ungrouped)."""
    return await _group_change(request, session, console, group_id)


# --- one channel --------------------------------------------------------------------------------


def _detail(
    request: Request,
    session: Session,
    console: ConsoleDep,
    channel_id: int,
    *,
    form: dict[str, Any] | None = None,
    error: str = "",
) -> HTMLResponse:
    actor = console.actor
    channel = service.get_channel(session, channel=access_channel_by_id(session, actor, channel_id))
    scheduled = [u for s in channel.schedule for u in s.userids]
    names = acq.employee_names(
        session, actor.corp_id, [*channel.userids, *channel.live_userids, *channel.backup_userids, *scheduled]
    )
    zone = acq.zone_of(session, actor.corp_id)
    ctx = {
        "channel": channel,
        "names": names,
        "sends": service.list_welcome_sends(session, actor=actor, channel_id=channel.id, limit=20),
        "can_write": can(actor, "channel", "write") and channel.status not in ("deleted", "expired"),
        "form": form or form_of(channel, zone),
        "error": error,
        "tz": acq.zone_name(session, actor.corp_id),
        "status_labels": acq.STATUS_LABELS,
        "weekday_labels": dict(WEEKDAYS),
        "send_status_labels": acq.SEND_STATUS_LABELS,
        "source_labels": acq.SOURCE_LABELS,
        **form_choices(session, actor),
    }
    return render(request, "channels/detail.html", ctx, actor=actor, csrf_token=console.csrf_token)


@router.get("/channels/{channel_id}", response_class=HTMLResponse)
def channel_page(request: Request, session: SessionDep, console: ConsoleDep, channel_id: int) -> HTMLResponse:
    return _detail(request, session, console, channel_id)


@router.post("/channels/{channel_id}/edit", response_class=HTMLResponse)
async def edit_channel(request: Request, session: SessionDep, console: ConsoleDep, channel_id: int) -> Response:
    t = translator(language_of(request))
    form = read_form(await request.form())
    try:
        channel = access_channel_by_id(session, console.actor, channel_id, write=True)
        patch = ChannelPatch.model_validate(channel_data(form, acq.zone_of(session, console.actor.corp_id)))
        actions.do_update_channel(session, console.actor, channel, patch)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        return _detail(request, session, console, channel_id, form=form, error=acq.error_text(t, exc))
    return RedirectResponse(f"/channels/{channel_id}", status_code=303)


@router.post("/channels/{channel_id}/delete", response_class=HTMLResponse)
def delete_channel(request: Request, session: SessionDep, console: ConsoleDep, channel_id: int) -> Response:
    t = translator(language_of(request))
    try:
        channel = access_channel_by_id(session, console.actor, channel_id, write=True)
        actions.do_delete_channel(session, console.actor, channel)
    except DomainError as exc:
        session.rollback()
        return _detail(request, session, console, channel_id, error=acq.error_text(t, exc))
    return RedirectResponse("/channels", status_code=303)


@router.get("/channels/{channel_id}/poster", response_class=HTMLResponse)
def channel_poster(
    request: Request, session: SessionDep, console: ConsoleDep, channel_id: int, size: str = "a4"
) -> HTMLResponse:
    """A printable page: the channel's name, a large QR code and a call to action; no navigation."""
    channel = access_channel_by_id(session, console.actor, channel_id)
    ctx = {
        "channel": channel,
        "qr_svg": qr.svg_inline(channel.qr_url, scale=12) if channel.qr_url else "",
        "size": "a5" if size == "a5" else "a4",
    }
    return render(request, "channels/poster.html", ctx, actor=console.actor, csrf_token=console.csrf_token)
