"""Welcome messages: chosen when the add is processed, sent at once, inside WeCom's 20 s window.

A WelcomeCode works once and only for 20 seconds after WeCom created the event. The callback
task stores a `welcome_send` row (unique per code) in the transaction that applies the add,
and sends it right after commit in the same worker thread — no queue hop. The row is the
outbound effect: a crash before the answer leaves it pending, and the retry either succeeds or
hears 41051 (already delivered). 41096 (another app is delivering) is retried shortly while
the window is open. Nothing is sent after the deadline: the row records why it expired.

Which welcome: the channel's (inside its validity) → the employee's default → the nearest
department's (main department, then up the tree) → the corp's. Variables: {nickname}/{客户昵称}
and {employee}/{员工姓名}.
"""

from __future__ import annotations

import logging
import time as time_module
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.acquisition import codes
from siyu.acquisition.models import (
    Channel,
    CodeStatus,
    GroupCode,
    Material,
    MaterialKind,
    WelcomeScope,
    WelcomeSend,
    WelcomeStatus,
    WelcomeTemplate,
)
from siyu.acquisition.service import channel_for_state
from siyu.callbacks.models import CallbackInbox
from siyu.contacts.models import Customer, Department, Employee
from siyu.core.clock import from_timestamp, now_utc
from siyu.core.db import session_scope
from siyu.corp.models import Corp
from siyu.sync.bulk import insert_ignoring_conflicts
from siyu.wecom.callbacks import ExternalContactEvent, parse_event
from siyu.wecom.client import WeComClient, client_for_corp
from siyu.wecom.errors import ApiError, InvalidRequestError, NotFoundError, PermissionError_, WeComError

log = logging.getLogger(__name__)

WINDOW = timedelta(seconds=20)
# Keep a margin: a call started this close to the deadline may reach WeCom after it.
SEND_MARGIN = timedelta(milliseconds=500)
RETRY_DELAY = 1.0
ALREADY_SENT, BEING_DISTRIBUTED, INVALID_CODE = 41051, 41096, 41050
MEDIA_TTL = timedelta(days=3) - timedelta(hours=1)
PENDING_KEY = "siyu.welcome_ids"


# --- choosing the welcome -----------------------------------------------------------------------


def in_window(channel: Channel, at: datetime) -> bool:
    """Inside the code's validity (and active): its tags and welcome apply."""
    if channel.status not in (CodeStatus.ACTIVE,):
        return False
    return (channel.valid_from is None or channel.valid_from <= at) and (
        channel.valid_until is None or at < channel.valid_until
    )


def _department_chain(session: Session, corp_id: int, employee: Employee) -> list[int]:
    """The employee's main department, then its parents up to the root, then its other departments."""
    parents = dict(
        session.execute(
            select(Department.wecom_id, Department.parent_wecom_id).where(Department.corp_id == corp_id)
        ).all()
    )
    chain: list[int] = []
    current = employee.main_department or (employee.department_ids[0] if employee.department_ids else 0)
    while current and current not in chain:
        chain.append(current)
        current = parents.get(current, 0)
    return chain + [d for d in employee.department_ids if d not in chain]


def choose_welcome(
    session: Session, corp_id: int, *, channel: Channel | None, employee: Employee, at: datetime
) -> tuple[str, dict[str, Any] | None]:
    """(source, content) — content as WelcomeContent's dict — or ("", None) when no welcome applies."""
    if channel is not None and channel.welcome and in_window(channel, at):
        return "channel", dict(channel.welcome)
    templates = {
        (t.scope, t.scope_key): t
        for t in session.scalars(
            select(WelcomeTemplate).where(WelcomeTemplate.corp_id == corp_id, WelcomeTemplate.enabled.is_(True))
        )
    }
    if not templates:
        return "", None
    candidates = [(WelcomeScope.EMPLOYEE, employee.userid)]
    candidates += [(WelcomeScope.DEPARTMENT, str(d)) for d in _department_chain(session, corp_id, employee)]
    candidates.append((WelcomeScope.CORP, ""))
    for scope, key in candidates:
        template = templates.get((scope.value, key))
        if template is not None:
            content = {
                "text": template.text,
                "material_ids": template.material_ids,
                "group_code_id": template.group_code_id,
            }
            return scope.value, content
    return "", None


def compose(session: Session, corp_id: int, content: dict[str, Any], *, nickname: str, employee: str) -> dict[str, Any]:
    """The send_welcome_msg body (without the code): variables filled in, materials as attachment specs.

    Image and mini-program attachments name a material (`material_id`): its media id is resolved at
    send time, because WeCom media ids expire after 3 days.
    """
    message: dict[str, Any] = {}
    text = codes.render_text(str(content.get("text") or ""), nickname=nickname, employee=employee).strip()
    if text:
        message["text"] = {"content": text}
    attachments: list[dict[str, Any]] = []
    ids = [int(i) for i in content.get("material_ids") or []]
    materials = {
        m.id: m for m in session.scalars(select(Material).where(Material.corp_id == corp_id, Material.id.in_(ids)))
    }
    for material_id in ids:
        material = materials.get(material_id)
        if material is not None:
            attachments.append(_attachment(material))
    group_code_id = content.get("group_code_id")
    if group_code_id:
        code = session.get(GroupCode, int(group_code_id))
        if code is not None and code.corp_id == corp_id and code.status == CodeStatus.ACTIVE and code.qr_url:
            attachments.append({"msgtype": "image", "image": {"pic_url": code.qr_url}})
    if attachments:
        message["attachments"] = attachments
    return message


def _attachment(material: Material) -> dict[str, Any]:
    if material.kind == MaterialKind.LINK:
        link = {"title": material.title, "url": material.url, "desc": material.description, "picurl": material.pic_url}
        return {"msgtype": "link", "link": {k: v for k, v in link.items() if v}}
    if material.kind == MaterialKind.MINIPROGRAM:
        return {
            "msgtype": "miniprogram",
            "miniprogram": {"title": material.title, "appid": material.appid, "page": material.page},
            "material_id": material.id,
        }
    if material.image_data:
        return {"msgtype": "image", "image": {}, "material_id": material.id}
    return {"msgtype": "image", "image": {"pic_url": material.pic_url}}


# --- preparing (in the callback transaction) ------------------------------------------------------


def do_prepare(
    session: Session,
    *,
    corp_id: int,
    welcome_code: str,
    channel: Channel | None,
    employee: Employee,
    customer_id: int | None,
    nickname: str,
    event_at: datetime | None,
    received_at: datetime | None,
) -> int | None:
    """Store the welcome for one WelcomeCode (once: a repeated event finds the row) and mark it for sending.

    The welcome-first lane stores it before the customer is mirrored (customer_id None); the full
    apply then finds the row and fills the customer in.
    """
    received = received_at or now_utc()
    opened = min(event_at, received) if event_at else received
    source, content = choose_welcome(session, corp_id, channel=channel, employee=employee, at=received)
    message = compose(session, corp_id, content, nickname=nickname, employee=employee.name) if content else None
    row = {
        "corp_id": corp_id,
        "welcome_code": welcome_code,
        "employee_id": employee.id,
        "customer_id": customer_id,
        "channel_id": channel.id if channel else None,
        "source": source,
        "message": message or None,
        "status": WelcomeStatus.PENDING if message else WelcomeStatus.NONE,
        "reason": "" if message else "no welcome configured for this employee or channel",
        "attempts": 0,
        "event_at": event_at,
        "received_at": received,
        "deadline_at": opened + WINDOW,
    }
    session.execute(insert_ignoring_conflicts(session, WelcomeSend.__table__), row)
    if customer_id is not None:  # (rowcount is no guide: psycopg reports -1 for INSERT … ON CONFLICT)
        session.execute(
            update(WelcomeSend)
            .where(
                WelcomeSend.corp_id == corp_id,
                WelcomeSend.welcome_code == welcome_code,
                WelcomeSend.customer_id.is_(None),
            )
            .values(customer_id=customer_id)
        )
    welcome_id = session.scalar(
        select(WelcomeSend.id).where(
            WelcomeSend.corp_id == corp_id,
            WelcomeSend.welcome_code == welcome_code,
            WelcomeSend.status == WelcomeStatus.PENDING,
        )
    )
    if welcome_id is not None:
        session.info.setdefault(PENDING_KEY, []).append(welcome_id)
    return welcome_id


_welcoming: dict[str, Any] = {"at": 0.0, "corps": frozenset()}
WELCOMING_TTL = 10.0  # seconds; a code created since then gets the full apply's send until the next read


def corps_with_welcomes() -> frozenset[int]:
    """Corps that may owe a welcome (an active channel code or an enabled default welcome), re-read every
    WELCOMING_TTL seconds: the inbox writer queues the welcome-first lane only for those."""
    now = time_module.monotonic()
    if now - float(_welcoming["at"]) < WELCOMING_TTL:
        return frozenset(_welcoming["corps"])
    with session_scope() as session:
        channels = select(Channel.corp_id).where(Channel.status == CodeStatus.ACTIVE)
        templates = select(WelcomeTemplate.corp_id).where(WelcomeTemplate.enabled.is_(True))
        corps = frozenset(session.scalars(channels.union(templates)))
    _welcoming.update(at=now, corps=corps)
    return corps


def forget_welcoming() -> None:
    _welcoming.update(at=0.0, corps=frozenset())


def send_first(inbox_id: int) -> str:
    """The welcome-first lane: send an add's welcome before the add is applied.

    Under a burst the full apply (mirror, timeline, tags, attribution) queues up behind other
    events, but the WelcomeCode dies 20 s after the event. This task runs at a higher priority
    than event processing and does only what the welcome needs: the customer's nickname (one
    get_external_contact), the channel by state, the welcome row, the send. It reads the inbox
    row without claiming it; the full apply later finds the welcome row and leaves it be.
    """
    with session_scope() as session:
        stored = session.get(CallbackInbox, inbox_id)
        if stored is None:
            return "gone"
        event = parse_event(stored.payload.encode())
        if not isinstance(event, ExternalContactEvent) or not event.welcome_code:
            return "none"
        code_taken = session.scalar(
            select(WelcomeSend.id).where(
                WelcomeSend.corp_id == stored.corp_id, WelcomeSend.welcome_code == event.welcome_code
            )
        )
        employee = session.scalar(
            select(Employee).where(Employee.corp_id == stored.corp_id, Employee.userid == event.user_id)
        )
        if code_taken is not None or employee is None:
            return "later"  # already handled, or an employee the mirror does not know yet: the full apply decides
        corp = session.get(Corp, stored.corp_id)
        assert corp is not None
        client = client_for_corp(corp)
        try:
            nickname = client.get_external_contact(event.external_user_id).external_contact.name
        except WeComError as exc:
            client.close()
            log.info("welcome-first for inbox %s left to the full apply: %s", inbox_id, exc)
            return "later"
        customer_id = session.scalar(
            select(Customer.id).where(
                Customer.corp_id == stored.corp_id, Customer.external_userid == event.external_user_id
            )
        )
        channel = channel_for_state(session, stored.corp_id, event.state)
        do_prepare(
            session,
            corp_id=stored.corp_id,
            welcome_code=event.welcome_code,
            channel=channel,
            employee=employee,
            customer_id=customer_id,
            nickname=nickname,
            event_at=from_timestamp(event.create_time),
            received_at=stored.received_at,
        )
        ids = prepared_ids(session)
    with client:
        return next(iter(send_now(ids, client=client).values()), "none")


def prepared_ids(session: Session) -> list[int]:
    return list(session.info.get(PENDING_KEY, []))


# --- sending ------------------------------------------------------------------------------------


def _finish(session: Session, row: WelcomeSend, status: WelcomeStatus, reason: str = "") -> str:
    row.status, row.reason = status, reason[:2000]
    if status in (WelcomeStatus.SENT, WelcomeStatus.ALREADY_SENT):
        row.sent_at = now_utc()
    session.flush()
    return status


def _media_for(session: Session, client: WeComClient, material_id: int) -> str:
    material = session.get(Material, material_id)
    if material is None or not material.image_data:
        raise LookupError(f"material {material_id} has no image")
    now = now_utc()
    if material.media_id and material.media_expires_at and material.media_expires_at > now:
        return material.media_id
    extension = "png" if material.image_type == "image/png" else "jpg"
    media_id, _created = client.upload_image(
        f"material-{material.id}.{extension}", material.image_data, material.image_type
    )
    material.media_id, material.media_expires_at = media_id, now + MEDIA_TTL
    session.flush()
    return media_id


def _wire_attachments(session: Session, client: WeComClient, attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    wired = []
    for spec in attachments:
        spec = {k: (dict(v) if isinstance(v, dict) else v) for k, v in spec.items()}
        material_id = spec.pop("material_id", None)
        if material_id is not None:
            try:
                media_id = _media_for(session, client, int(material_id))
            except LookupError:
                continue  # the material was deleted since: send the rest
            if spec["msgtype"] == "image":
                spec["image"] = {"media_id": media_id}
            else:
                spec["miniprogram"]["pic_media_id"] = media_id
        wired.append(spec)
    return wired


def send_one(welcome_id: int, *, client: WeComClient | None = None) -> str:
    """Send one stored welcome if its window is open; returns its status (or 'retry' / 'gone')."""
    with session_scope() as session:
        claimed = session.execute(
            update(WelcomeSend)
            .where(WelcomeSend.id == welcome_id, WelcomeSend.status == WelcomeStatus.PENDING)
            .values(attempts=WelcomeSend.attempts + 1)
        ).rowcount
        if claimed != 1:
            return "gone"
        row = session.get(WelcomeSend, welcome_id)
        assert row is not None
        if now_utc() + SEND_MARGIN >= row.deadline_at:
            return _finish(session, row, WelcomeStatus.EXPIRED, _late_reason(row))
        message = dict(row.message or {})
        try:
            if client is None:
                corp = session.get(Corp, row.corp_id)
                assert corp is not None
                with client_for_corp(corp) as own:
                    return _deliver(session, own, row, message)
            return _deliver(session, client, row, message)
        except WeComError as exc:
            return _failed(session, row, exc)


def _late_reason(row: WelcomeSend) -> str:
    return (
        "the 20 s window closed before siyu could send (queue backlog or the worker was down); "
        f"attempts: {row.attempts}"
    )


def _deliver(session: Session, client: WeComClient, row: WelcomeSend, message: dict[str, Any]) -> str:
    attachments = _wire_attachments(session, client, list(message.get("attachments") or []))
    text = (message.get("text") or {}).get("content")
    if not text and not attachments:
        return _finish(session, row, WelcomeStatus.NONE, "every attachment of the welcome was deleted")
    client.send_welcome_msg(row.welcome_code, text=text, attachments=attachments)
    return _finish(session, row, WelcomeStatus.SENT)


def _failed(session: Session, row: WelcomeSend, exc: WeComError) -> str:
    errcode = exc.errcode if isinstance(exc, ApiError) else None
    detail = f"{errcode}: {exc.errmsg}" if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
    if errcode == ALREADY_SENT:
        return _finish(
            session, row, WelcomeStatus.ALREADY_SENT, "WeCom: a welcome already reached the customer (41051)"
        )
    if errcode == INVALID_CODE:
        return _finish(session, row, WelcomeStatus.EXPIRED, f"WeCom refused the code as invalid or expired ({detail})")
    retryable = errcode == BEING_DISTRIBUTED or not isinstance(
        exc, InvalidRequestError | NotFoundError | PermissionError_
    )
    if retryable and now_utc() + timedelta(seconds=RETRY_DELAY) + SEND_MARGIN < row.deadline_at:
        row.reason = detail[:2000]
        session.flush()
        return "retry"
    if retryable:
        return _finish(session, row, WelcomeStatus.EXPIRED, f"{detail}; the window closed before a retry")
    return _finish(session, row, WelcomeStatus.FAILED, detail)


def send_now(welcome_ids: list[int], *, client: WeComClient | None = None) -> dict[int, str]:
    """Send right after the callback transaction committed; retries wait briefly while the window is open."""
    results: dict[int, str] = {}
    for welcome_id in welcome_ids:
        status = _send_logged(welcome_id, client)
        while status == "retry":
            time_module.sleep(RETRY_DELAY)
            status = _send_logged(welcome_id, client)
        results[welcome_id] = status
    return results


def _send_logged(welcome_id: int, client: WeComClient | None) -> str:
    try:
        return send_one(welcome_id, client=client)
    except Exception:
        log.exception("welcome %s could not be sent", welcome_id)
        return "error"


def do_expire_overdue(session: Session, *, now: datetime | None = None) -> int:
    """Pending welcomes past their deadline (the worker was down): recorded as expired, never sent."""
    now = now or now_utc()
    return session.execute(
        update(WelcomeSend)
        .where(WelcomeSend.status == WelcomeStatus.PENDING, WelcomeSend.deadline_at <= now)
        .values(status=WelcomeStatus.EXPIRED, reason="the 20 s window closed while siyu was not processing events")
    ).rowcount


def pending_ids(session: Session, *, after_id: int = 0, limit: int = 1000) -> list[int]:
    stmt = (
        select(WelcomeSend.id)
        .where(WelcomeSend.status == WelcomeStatus.PENDING, WelcomeSend.id > after_id)
        .order_by(WelcomeSend.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))
