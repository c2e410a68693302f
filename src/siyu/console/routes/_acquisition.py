"""Shared by the acquisition console pages (channels, group codes, welcome, materials): choices for the
forms, form-value parsing, and turning domain and validation errors into a sentence for the page."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics.service import corp_zone
from siyu.console import filters
from siyu.contacts import service as contacts
from siyu.contacts.models import Employee, EmployeeStatus
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp.models import Corp
from siyu.groups.models import GroupChat, GroupStatus

# Backend messages the pages show often, as msgids (the rest are shown as the backend wrote them).
KNOWN_ERRORS = {
    "choose at least one employee or department to serve the code": (
        "Choose at least one employee or department to serve the code."
    ),
    "valid_until must be after valid_from": "The end of the validity must be after its start.",
    "a daily cap needs employees (caps count adds per employee)": "A daily cap needs employees.",
    "a welcome needs text or at least one attachment": "A welcome needs text or at least one attachment.",
    "auto-created groups need a base name (room_base_name)": "Auto-created groups need a base name.",
    "must not be empty": "The name must not be empty.",
}
MATERIAL_KINDS = {"image": "Image", "link": "Link", "miniprogram": "Mini-program"}
SEND_STATUS_LABELS = {
    "pending": "Sending",
    "sent": "Sent",
    "already_sent": "Already welcomed",
    "expired": "Window missed",
    "failed": "Failed",
    "none": "No welcome set",
}
SOURCE_LABELS = {
    "channel": "Channel welcome",
    "employee": "Employee default",
    "department": "Department default",
    "corp": "Corp default",
}
STATUS_LABELS = {"active": "Code active", "expired": "Code expired", "deleted": "Code deleted"}


def zone_name(session: Session, corp_id: int) -> str:
    corp = session.get(Corp, corp_id)
    return corp.timezone if corp is not None and corp.timezone else filters.DEFAULT_ZONE


def zone_of(session: Session, corp_id: int) -> ZoneInfo:
    corp = session.get(Corp, corp_id)
    return corp_zone(corp) if corp is not None else ZoneInfo(filters.DEFAULT_ZONE)


def active_employees(session: Session, corp_id: int) -> list[tuple[str, str]]:
    """(userid, name) of the employees a code may serve on."""
    rows = session.execute(
        select(Employee.userid, Employee.name)
        .where(Employee.corp_id == corp_id, Employee.status == EmployeeStatus.ACTIVE)
        .order_by(Employee.name, Employee.userid)
        .limit(2000)
    )
    return [(userid, name or userid) for userid, name in rows]


def employee_names(session: Session, corp_id: int, userids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(userids))
    if not wanted:
        return {}
    rows = session.execute(
        select(Employee.userid, Employee.name).where(Employee.corp_id == corp_id, Employee.userid.in_(wanted))
    )
    return {userid: name or userid for userid, name in rows}


def departments(session: Session, corp_id: int) -> list[tuple[int, str]]:
    return contacts.department_choices(session, corp_id=corp_id)


def tag_choices(session: Session, corp_id: int) -> list[tuple[str, list[tuple[int, str]]]]:
    return [(g.name, [(t.id, t.name) for t in tags]) for g, tags in contacts.tag_groups(session, corp_id=corp_id)]


def group_chats(session: Session, corp_id: int) -> list[tuple[str, str]]:
    rows = session.execute(
        select(GroupChat.chat_id, GroupChat.name)
        .where(GroupChat.corp_id == corp_id, GroupChat.status == GroupStatus.ACTIVE)
        .order_by(GroupChat.name, GroupChat.chat_id)
        .limit(2000)
    )
    return [(chat_id, name or chat_id) for chat_id, name in rows]


def ints(values: Iterable[object]) -> list[int]:
    return [int(str(v)) for v in values if str(v).strip().isdigit()]


def optional_int(value: object, field: str) -> int | None:
    text = str(value or "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"{field}: enter a whole number")
    return int(text)


def local_datetime(value: object, zone: ZoneInfo, field: str) -> datetime | None:
    """A `datetime-local` input (corp time) as an aware datetime; blank is None."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{field}: enter a date and time") from exc
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed


def datetime_input(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%dT%H:%M") if value else ""


def _known(t: Callable[..., str], message: str) -> str:
    msgid = KNOWN_ERRORS.get(message.strip())
    return t(msgid) if msgid else message


def error_text(t: Callable[..., str], exc: Exception) -> str:
    """One readable sentence for a refused form: the validation messages, or the domain error."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            loc = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int))
            text = _known(t, msg)
            parts.append(f"{loc}: {text}" if loc and text == msg else text)
        return t("Not saved: {detail}", detail="; ".join(parts))
    if isinstance(exc, DomainError):
        if exc.code == ErrorCode.FORBIDDEN:
            return t("Your role may not change acquisition settings.")
        if exc.code == ErrorCode.NOT_FOUND:
            return t("That item no longer exists.")
        return t("Not saved: {detail}", detail=_known(t, exc.msg))
    return t("Not saved: {detail}", detail=_known(t, str(exc)))
