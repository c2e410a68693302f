"""Shared by the broadcast and Moments console pages: labels, the composer form (read from a post, filled from a
draft, turned into the draft's fields) and refused input as one sentence.

The composer is a plain form; its audience is one of the sources the broadcast's kind allows. A pasted or
uploaded customer list may hold siyu customer ids or WeCom external_userids (a CSV exported from a segment
works as is: its `id` column is read).

Staff compose personal broadcasts only: sent by their own employee to customers they follow themselves. The
broadcast domain enforces it (`actions.NotFollowed`); the form's own shape (a sender, someone chosen, the limit)
is checked here first so each refusal reads in the user's language.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from siyu.acquisition.models import Material
from siyu.acquisition.welcome import _attachment as material_attachment
from siyu.broadcasts.actions import NotFollowed
from siyu.broadcasts.schemas import BroadcastRead
from siyu.console.routes import _acquisition as acq
from siyu.contacts.models import Customer, Employee, EmployeeStatus, Follow, FollowStatus
from siyu.core.errors import DomainError, ErrorCode
from siyu.segments.rules import RULE_VERSION

KIND_LABELS = {
    "customer": "Customer broadcast",
    "group": "Group broadcast",
    "personal": "Personal broadcast",
    "moment": "Moment",
}
STATUS_LABELS = {
    "draft": "Draft",
    "planned": "Planned",
    "scheduled": "Scheduled",
    "sending": "Sending",
    "sent": "Sent to WeCom",
    "finished": "Completed",
    "cancelled": "Cancelled",
    "paused": "Paused",
    "blocked": "Blocked by the content check",
    "failed": "Failed",
}
STATUS_PILLS = {"finished": "ok", "sent": "ok", "sending": "warn", "scheduled": "warn", "paused": "warn"}
STATUS_PILLS |= {"blocked": "bad", "failed": "bad", "cancelled": "bad"}
# Why a recipient is excluded (the planner's reasons) or was not reached (the sender's).
REASON_LABELS = {
    "no_active_follow": "No active follow",
    "group_unavailable": "Group unavailable",
    "opted_out": "Opted out",
    "sender_not_allowed": "Sender not allowed",
    "employee_paused": "Employee paused",
    "platform_cap": "WeCom's receive cap reached",
    "corp_cap": "The corp's frequency cap reached",
    "holdout": "Held out (control group)",
    "not_confirmed": "The employee did not confirm",
    "broadcast_cancelled": "Broadcast cancelled",
    "no_recipients": "Nobody left to send to",
    "not_started": "Not started",
    "invalid_sender": "WeCom refused the employee as a sender",
}
RECIPIENT_LABELS = {
    "excluded": "Excluded",
    "pending": "Waiting",
    "sent": "Sent",
    "not_sent": "Not sent",
    "not_friend": "Not a friend",
    "quota": "Receive quota hit",
    "cancelled": "Cancelled",
}
CHUNK_LABELS = {
    "pending": "Waiting",
    "sending": "Sending",
    "sent": "Accepted by WeCom",
    "failed": "Failed",
    "cancelled": "Cancelled",
}
CONFIRM_LABELS = {
    "unconfirmed": "Not confirmed yet",
    "confirmed": "Confirmed",
    "cancelled": "Withdrawn",
    "expired": "Expired",
}
# The audience sources each kind offers, the first being the default.
SOURCES = {
    "customer": ("segment_id", "rule", "customer_ids", "snapshot_id"),
    "personal": ("customer_ids", "segment_id", "rule", "snapshot_id"),
    "group": ("owner_ids", "chat_ids"),
    "moment": ("tag_ids",),
}
SOURCE_LABELS = {
    "segment_id": "A saved segment",
    "rule": "A rule (JSON)",
    "customer_ids": "A list of customers",
    "snapshot_id": "A frozen snapshot",
    "owner_ids": "Every group of these owners",
    "chat_ids": "Chosen groups",
    "tag_ids": "Customers with these tags",
}
RULE_EXAMPLE = '{"version": 1, "rule": {"follow_status": "active"}}'
LIST_SHOWN = 10  # unknown external_userids named in an error
OWN_CUSTOMERS_SHOWN = 2_000  # a staff member's customers offered as checkboxes (more: paste their ids)


class Refused(ValueError):
    """Input the console refuses with a message of its own (a msgid and its parameters, translated when shown)."""

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(msgid.format(**params))
        self.msgid, self.params = msgid, params


def empty_form(kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": "",
        "source": SOURCES[kind][0],
        "segment_id": "",
        "snapshot_id": "",
        "rule": RULE_EXAMPLE,
        "customer_list": "",
        "customer_upload": "",
        "customer_ids": [],
        "chat_ids": [],
        "owner_ids": [],
        "tag_ids": [],
        "text": "",
        "material_ids": [],
        "extra_attachments": "",
        "sender_ids": [],
        "allow_select": False,
        "scheduled_at": "",
        "holdout_percent": "0",
    }


def read_form(data: FormData, kind: str, upload: str = "") -> dict[str, Any]:
    """The posted composer as the template shows it again (a refused form keeps its input)."""
    source = str(data.get("source") or "")
    return {
        "kind": kind,
        "name": str(data.get("name") or ""),
        "source": source if source in SOURCES[kind] else SOURCES[kind][0],
        "segment_id": str(data.get("segment_id") or ""),
        "snapshot_id": str(data.get("snapshot_id") or ""),
        "rule": str(data.get("rule") or ""),
        "customer_list": str(data.get("customer_list") or ""),
        "customer_upload": upload,
        "customer_ids": [str(v) for v in data.getlist("customer_ids") if str(v).isdigit()],
        "chat_ids": [str(v) for v in data.getlist("chat_ids")],
        "owner_ids": [str(v) for v in data.getlist("owner_ids")],
        "tag_ids": [str(v) for v in data.getlist("tag_ids")],
        "text": str(data.get("text") or ""),
        "material_ids": [str(v) for v in data.getlist("material_ids")],
        "extra_attachments": str(data.get("extra_attachments") or ""),
        "sender_ids": [str(v) for v in data.getlist("sender_ids")],
        "allow_select": data.get("allow_select") in ("1", "on", "true"),
        "scheduled_at": str(data.get("scheduled_at") or ""),
        "holdout_percent": str(data.get("holdout_percent") or "0"),
    }


def form_of(session: Session, corp_id: int, broadcast: BroadcastRead, zone: ZoneInfo) -> dict[str, Any]:
    """The composer filled from a draft; attachments that are no material's stay as they are."""
    audience = broadcast.audience
    source = next((s for s in SOURCES[broadcast.kind] if s in audience), SOURCES[broadcast.kind][0])
    attachments = list(broadcast.content.get("attachments") or [])
    chosen = _materials_of(session, corp_id, attachments)
    extra = [a for a in attachments if a not in [material_attachment(m) for m in chosen]]
    return {
        **empty_form(broadcast.kind),
        "name": broadcast.name,
        "source": source,
        "segment_id": str(audience.get("segment_id") or ""),
        "snapshot_id": str(audience.get("snapshot_id") or ""),
        "rule": json.dumps(audience["rule"], ensure_ascii=False) if "rule" in audience else RULE_EXAMPLE,
        "customer_list": "\n".join(str(i) for i in audience.get("customer_ids") or []),
        "chat_ids": [str(v) for v in audience.get("chat_ids") or []],
        "owner_ids": [str(v) for v in audience.get("owner_ids") or []],
        "tag_ids": [str(v) for v in audience.get("tag_ids") or []],
        "text": str(broadcast.content.get("text") or ""),
        "material_ids": [str(m.id) for m in chosen],
        "extra_attachments": json.dumps(extra, ensure_ascii=False) if extra else "",
        "sender_ids": [str(i) for i in broadcast.sender_ids],
        "allow_select": broadcast.allow_select,
        "scheduled_at": acq.datetime_input(broadcast.scheduled_at, zone),
        "holdout_percent": str(broadcast.holdout_percent),
    }


def _materials_of(session: Session, corp_id: int, attachments: list[dict[str, Any]]) -> list[Material]:
    """The corp's materials whose attachment is in the draft (an image by its material_id, a link by its card)."""
    if not attachments:
        return []
    ids = {int(a["material_id"]) for a in attachments if isinstance(a.get("material_id"), int)}
    links = [a for a in attachments if a.get("msgtype") == "link"]
    urls = {str((a.get("link") or {}).get("url") or "") for a in links}
    stmt = select(Material).where(
        Material.corp_id == corp_id, Material.id.in_(sorted(ids)) | Material.url.in_(sorted(urls))
    )
    found = [m for m in session.scalars(stmt.order_by(Material.id)) if material_attachment(m) in attachments]
    return sorted(found, key=lambda m: attachments.index(material_attachment(m)))[: len(attachments)]


# --- the form as the draft's fields -----------------------------------------------------------------


def draft_data(session: Session, corp_id: int, form: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """The form as BroadcastCreate / BroadcastUpdate input (without the kind).

    Raises ValueError for input that cannot be read: JSON, numbers, dates, unknown customers."""
    kind = form["kind"]
    holdout = 0 if kind == "moment" else acq.optional_int(form["holdout_percent"], "holdout_percent") or 0
    return {
        "name": form["name"].strip(),
        "audience": audience_of(session, corp_id, form),
        "content": {"text": form["text"], "attachments": attachments_of(session, corp_id, form)},
        "sender_ids": acq.ints(form["sender_ids"]),
        "allow_select": form["allow_select"] and kind in ("customer", "group"),
        "scheduled_at": acq.local_datetime(form["scheduled_at"], zone, "scheduled_at"),
        "holdout_percent": holdout,
    }


def audience_of(session: Session, corp_id: int, form: dict[str, Any]) -> dict[str, Any]:
    source = form["source"]
    if source in ("segment_id", "snapshot_id"):
        chosen = acq.optional_int(form[source], source)
        if chosen is None:
            raise ValueError(f"{source}: choose one")
        return {source: chosen}
    if source == "rule":
        return {"rule": read_rule(form["rule"])}
    if source == "customer_ids":
        chosen = [int(v) for v in form.get("customer_ids") or []]
        texts = (form["customer_list"], form["customer_upload"])
        listed = customer_list(session, corp_id, *texts) if any(t.strip() for t in texts) or not chosen else []
        return {"customer_ids": list(dict.fromkeys(chosen + listed))}
    if source == "owner_ids":
        return {"owner_ids": acq.ints(form["owner_ids"])}
    if source == "tag_ids":
        return {"tag_ids": acq.ints(form["tag_ids"])}
    return {"chat_ids": list(form["chat_ids"])}


def read_rule(text: str) -> dict[str, Any]:
    """A segment rule from the textarea: {"version": 1, "rule": {...}}, or a bare node (the version is added)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"rule: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ValueError('rule: a JSON object, e.g. {"version": 1, "rule": {"tags": {"any": [1]}}}')
    return value if "rule" in value else {"version": RULE_VERSION, "rule": value}


def customer_list(session: Session, corp_id: int, *texts: str) -> list[int]:
    """Customer ids from pasted and uploaded text: ids or external_userids, one per line or separated by commas;
    a CSV with an `id` (or `external_userid`) column in its header is read by that column."""
    tokens = [token for text in texts for token in _list_tokens(text)]
    ids = [int(t) for t in tokens if t.isdigit()]
    external = [t for t in tokens if not t.isdigit()]
    if external:
        found = _customers_by_external_id(session, corp_id, external)
        missing = [t for t in dict.fromkeys(external) if t not in found]
        if missing:
            shown = ", ".join(missing[:LIST_SHOWN]) + (" …" if len(missing) > LIST_SHOWN else "")
            raise ValueError(f"customer_ids: no customer in this corp has the external_userid {shown}")
        ids += [found[t] for t in external]
    if not ids:
        raise ValueError("customer_ids: paste or upload at least one customer id or external_userid")
    return list(dict.fromkeys(ids))


def _list_tokens(text: str) -> list[str]:
    rows = [row for row in csv.reader(io.StringIO(text.replace("，", ",").replace(";", ","))) if any(row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    for column in ("id", "external_userid"):
        if column in header:
            at = header.index(column)
            return [row[at].strip() for row in rows[1:] if len(row) > at and row[at].strip()]
    return [token for row in rows for cell in row for token in cell.split() if token]


def _customers_by_external_id(session: Session, corp_id: int, external: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    wanted = sorted(set(external))
    for start in range(0, len(wanted), 5_000):
        batch = wanted[start : start + 5_000]
        rows = session.execute(
            select(Customer.external_userid, Customer.id).where(
                Customer.corp_id == corp_id, Customer.external_userid.in_(batch)
            )
        )
        found.update({str(e): int(i) for e, i in rows})
    return found


def attachments_of(session: Session, corp_id: int, form: dict[str, Any]) -> list[dict[str, Any]]:
    """The chosen materials as WeCom attachments (in the order chosen), then those kept from the draft."""
    ids = acq.ints(form["material_ids"])
    materials = {
        m.id: m for m in session.scalars(select(Material).where(Material.corp_id == corp_id, Material.id.in_(ids)))
    }
    chosen = [material_attachment(materials[i]) for i in dict.fromkeys(ids) if i in materials]
    kept: list[dict[str, Any]] = []
    if form["extra_attachments"].strip():
        try:
            loaded = json.loads(form["extra_attachments"])
        except ValueError as exc:
            raise ValueError("attachments: the kept attachments are not readable; open the draft again") from exc
        kept = [a for a in loaded if isinstance(a, dict)] if isinstance(loaded, list) else []
    return chosen + kept


# --- choices the composer offers ---------------------------------------------------------------------


def employees(session: Session, corp_id: int) -> list[tuple[int, str]]:
    """(id, name) of the active employees who may send."""
    rows = session.execute(
        select(Employee.id, Employee.name, Employee.userid)
        .where(Employee.corp_id == corp_id, Employee.status == EmployeeStatus.ACTIVE)
        .order_by(Employee.name, Employee.userid)
        .limit(2000)
    )
    return [(employee_id, name or userid) for employee_id, name, userid in rows]


def employee_names(session: Session, corp_id: int, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = session.execute(
        select(Employee.id, Employee.name, Employee.userid).where(Employee.corp_id == corp_id, Employee.id.in_(wanted))
    )
    return {employee_id: name or userid for employee_id, name, userid in rows}


# --- staff: personal broadcasts to their own customers ----------------------------------------------


def own_customers(session: Session, corp_id: int, employee_id: int | None) -> list[tuple[int, str]]:
    """(id, name) of the customers this employee follows (active follows), by name; the first few thousand."""
    if employee_id is None:
        return []
    rows = session.execute(
        select(Customer.id, Customer.name, Follow.remark, Customer.external_userid)
        .join(Follow, Follow.customer_id == Customer.id)
        .where(Follow.corp_id == corp_id, Follow.employee_id == employee_id, Follow.status == FollowStatus.ACTIVE)
        .order_by(Customer.name, Customer.id)
        .limit(OWN_CUSTOMERS_SHOWN)
    )
    return [(i, " · ".join(dict.fromkeys(p for p in (remark, name) if p)) or ext) for i, name, remark, ext in rows]


def check_own_personal(employee_id: int | None, fields: dict[str, Any], limit: int) -> None:
    """A staff member's personal broadcast: sent by themselves, to at most `limit` customers (that they follow
    them is the domain's check, `actions.NotFollowed`, shown by `error_text`)."""
    if employee_id is None:
        raise Refused("Your user is not linked to a WeCom employee, so you cannot send personal broadcasts.")
    if fields["sender_ids"] != [employee_id]:
        raise Refused("A personal broadcast you start is sent by you; you cannot choose another sender.")
    wanted = list(fields["audience"].get("customer_ids") or [])
    if not wanted:
        raise Refused("Choose at least one of your customers.")
    if len(wanted) > limit:
        raise Refused("A personal broadcast reaches at most {n} customers; you chose {m}.", n=limit, m=len(wanted))


def split_own(form: dict[str, Any], own: Sequence[tuple[int, str]]) -> dict[str, Any]:
    """A draft's customer list shown to staff: the customers offered as checkboxes ticked, the rest left pasted."""
    offered = {str(i) for i, _ in own}
    listed = [t for t in form["customer_list"].split() if t]
    ticked = [t for t in listed if t in offered]
    return form | {"customer_ids": ticked, "customer_list": "\n".join(t for t in listed if t not in offered)}


# --- refused input -----------------------------------------------------------------------------------


def error_text(t: Callable[..., str], exc: Exception) -> str:
    """One readable sentence for a refused form or action: the validation messages, or the domain error."""
    if isinstance(exc, Refused):
        return t(exc.msgid, **exc.params)
    if isinstance(exc, NotFollowed):
        others = exc.customer_ids
        shown = ", ".join(map(str, others[:LIST_SHOWN])) + (" …" if len(others) > LIST_SHOWN else "")
        return t("Only your own customers can get your personal broadcast; not yours: {ids}", ids=shown)
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            loc = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int))
            parts.append(f"{loc}: {msg}" if loc else msg)
        return t("Not saved: {detail}", detail="; ".join(parts))
    if isinstance(exc, DomainError):
        if exc.code == ErrorCode.FORBIDDEN:
            return t("Your role may not change broadcasts.")
        if exc.code == ErrorCode.NOT_FOUND:
            return t("That item no longer exists.")
        return t("Not done: {detail}", detail=exc.msg)
    return t("Not saved: {detail}", detail=str(exc))
