"""Reading channel codes, groups, materials, welcome templates and welcome sends for the API and console.

Counts come from one GROUP BY per list (follows per channel, today's adds, joins per group
code), never a query per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, require
from siyu.acquisition.models import (
    Channel,
    ChannelGroup,
    CodeStatus,
    GroupCode,
    GroupCodeJoin,
    Material,
    WelcomeSend,
    WelcomeTemplate,
)
from siyu.acquisition.schemas import (
    ChannelGroupRead,
    ChannelRead,
    GroupCodeRead,
    MaterialRead,
    WelcomeContent,
    WelcomeSendRead,
    WelcomeTemplateRead,
)
from siyu.analytics.service import corp_zone, day_start_utc
from siyu.contacts.models import Customer, Department, Employee, Follow
from siyu.core.clock import now_utc
from siyu.corp.models import Corp
from siyu.groups.models import GroupChat

WELCOME_PAGE = 100


def _today_start(session: Session, corp_id: int) -> datetime:
    corp = session.get(Corp, corp_id)
    assert corp is not None
    zone = corp_zone(corp)
    return day_start_utc(now_utc().astimezone(zone).date(), zone)


def _channel_counts(session: Session, corp_id: int, ids: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
    if not ids:
        return {}, {}
    since = _today_start(session, corp_id)
    rows = session.execute(
        select(
            Follow.channel_id,
            func.count(),
            func.sum(case((Follow.created_at >= since, 1), else_=0)),
        )
        .where(Follow.channel_id.in_(sorted(ids)))
        .group_by(Follow.channel_id)
    ).all()
    return {r[0]: r[1] for r in rows}, {r[0]: int(r[2] or 0) for r in rows}


def _channel_read(
    channel: Channel, group_names: dict[int, str], follows: dict[int, int], today: dict[int, int]
) -> ChannelRead:
    return ChannelRead(
        id=channel.id,
        name=channel.name,
        group_id=channel.group_id,
        group_name=group_names.get(channel.group_id) if channel.group_id else None,
        state=channel.state,
        remark=channel.remark,
        skip_verify=channel.skip_verify,
        userids=channel.userids,
        party_ids=channel.party_ids,
        backup_userids=channel.backup_userids,
        daily_cap=channel.daily_cap,
        schedule=channel.schedule,  # type: ignore[arg-type]
        valid_from=channel.valid_from,
        valid_until=channel.valid_until,
        tag_ids=channel.tag_ids,
        welcome=WelcomeContent.model_validate(channel.welcome) if channel.welcome else None,
        status=channel.status,
        config_id=channel.config_id,
        qr_url=channel.qr_url,
        live_userids=channel.live_userids,
        syncing=not channel.config_id and channel.status == CodeStatus.ACTIVE,
        sync_error=channel.sync_error,
        follows=follows.get(channel.id, 0),
        adds_today=today.get(channel.id, 0),
        created_at=channel.created_at,
    )


def _group_names(session: Session, corp_id: int) -> dict[int, str]:
    return dict(
        session.execute(select(ChannelGroup.id, ChannelGroup.name).where(ChannelGroup.corp_id == corp_id)).all()
    )


def list_channels(
    session: Session, *, actor: Actor, group_id: int | None = None, include_deleted: bool = False
) -> list[ChannelRead]:
    require(actor, "channel", "read")
    stmt = select(Channel).where(Channel.corp_id == actor.corp_id).order_by(Channel.id.desc())
    if group_id is not None:
        stmt = stmt.where(Channel.group_id == group_id)
    if not include_deleted:
        stmt = stmt.where(Channel.status != CodeStatus.DELETED)
    channels = list(session.scalars(stmt))
    follows, today = _channel_counts(session, actor.corp_id, [c.id for c in channels])
    names = _group_names(session, actor.corp_id)
    return [_channel_read(c, names, follows, today) for c in channels]


def get_channel(session: Session, *, channel: Channel) -> ChannelRead:
    follows, today = _channel_counts(session, channel.corp_id, [channel.id])
    return _channel_read(channel, _group_names(session, channel.corp_id), follows, today)


def list_channel_groups(session: Session, *, actor: Actor) -> list[ChannelGroupRead]:
    require(actor, "channel", "read")
    counts = dict(
        session.execute(
            select(Channel.group_id, func.count())
            .where(Channel.corp_id == actor.corp_id, Channel.status != CodeStatus.DELETED)
            .group_by(Channel.group_id)
        ).all()
    )
    groups = session.scalars(
        select(ChannelGroup).where(ChannelGroup.corp_id == actor.corp_id).order_by(ChannelGroup.name)
    )
    return [ChannelGroupRead(id=g.id, name=g.name, kind=g.kind, channels=counts.get(g.id, 0)) for g in groups]


def material_read(material: Material) -> MaterialRead:
    return MaterialRead(
        id=material.id,
        kind=material.kind,
        title=material.title,
        url=material.url,
        pic_url=material.pic_url,
        description=material.description,
        appid=material.appid,
        page=material.page,
        has_image=material.image_data is not None,
        created_at=material.created_at,
    )


def list_materials(session: Session, *, actor: Actor) -> list[MaterialRead]:
    require(actor, "channel", "read")
    # image_data stays unloaded: lists never carry the bytes.
    rows = session.scalars(select(Material).where(Material.corp_id == actor.corp_id).order_by(Material.id.desc()))
    return [material_read(m) for m in rows]


def _scope_names(session: Session, corp_id: int, templates: Sequence[WelcomeTemplate]) -> dict[tuple[str, str], str]:
    userids = [t.scope_key for t in templates if t.scope == "employee"]
    depts = [int(t.scope_key) for t in templates if t.scope == "department" and t.scope_key.isdigit()]
    names: dict[tuple[str, str], str] = {}
    if userids:
        for userid, name in session.execute(
            select(Employee.userid, Employee.name).where(Employee.corp_id == corp_id, Employee.userid.in_(userids))
        ):
            names[("employee", userid)] = name
    if depts:
        for wecom_id, name in session.execute(
            select(Department.wecom_id, Department.name).where(
                Department.corp_id == corp_id, Department.wecom_id.in_(depts)
            )
        ):
            names[("department", str(wecom_id))] = name
    return names


def welcome_template_read(session: Session, template: WelcomeTemplate) -> WelcomeTemplateRead:
    return list_welcome_templates_of(session, template.corp_id, [template])[0]


def list_welcome_templates_of(
    session: Session, corp_id: int, templates: Sequence[WelcomeTemplate]
) -> list[WelcomeTemplateRead]:
    names = _scope_names(session, corp_id, templates)
    return [
        WelcomeTemplateRead(
            id=t.id,
            scope=t.scope,
            scope_key=t.scope_key,
            scope_name=names.get((t.scope, t.scope_key), t.scope_key),
            content=WelcomeContent.model_construct(
                text=t.text, material_ids=list(t.material_ids), group_code_id=t.group_code_id
            ),
            enabled=t.enabled,
            updated_at=t.updated_at,
        )
        for t in templates
    ]


def list_welcome_templates(session: Session, *, actor: Actor) -> list[WelcomeTemplateRead]:
    require(actor, "channel", "read")
    order = {"corp": 0, "department": 1, "employee": 2}
    templates = sorted(
        session.scalars(select(WelcomeTemplate).where(WelcomeTemplate.corp_id == actor.corp_id)),
        key=lambda t: (order.get(t.scope, 9), t.scope_key),
    )
    return list_welcome_templates_of(session, actor.corp_id, templates)


def list_welcome_sends(
    session: Session,
    *,
    actor: Actor,
    channel_id: int | None = None,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = WELCOME_PAGE,
) -> list[WelcomeSendRead]:
    """Newest first, keyset by id; staff see the welcomes of the employees in their scope."""
    require(actor, "channel", "read")
    stmt = (
        select(WelcomeSend, Channel.name, Employee.name, Customer.name)
        .outerjoin(Channel, Channel.id == WelcomeSend.channel_id)
        .outerjoin(Employee, Employee.id == WelcomeSend.employee_id)
        .outerjoin(Customer, Customer.id == WelcomeSend.customer_id)
        .where(WelcomeSend.corp_id == actor.corp_id)
        .order_by(WelcomeSend.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    if actor.scope_employee_ids is not None:
        stmt = stmt.where(WelcomeSend.employee_id.in_(sorted(actor.scope_employee_ids)))
    if channel_id is not None:
        stmt = stmt.where(WelcomeSend.channel_id == channel_id)
    if status:
        stmt = stmt.where(WelcomeSend.status == status)
    if before_id is not None:
        stmt = stmt.where(WelcomeSend.id < before_id)
    return [
        WelcomeSendRead(
            id=w.id,
            channel_id=w.channel_id,
            channel_name=channel_name,
            employee_name=employee_name,
            customer_id=w.customer_id,
            customer_name=customer_name,
            source=w.source,
            status=w.status,
            reason=w.reason,
            attempts=w.attempts,
            received_at=w.received_at,
            sent_at=w.sent_at,
            latency_ms=_latency_ms(w),
        )
        for w, channel_name, employee_name, customer_name in session.execute(stmt)
    ]


def _latency_ms(row: WelcomeSend) -> int | None:
    if row.sent_at is None:
        return None
    opened = row.event_at or row.received_at
    return max(0, int((row.sent_at - opened).total_seconds() * 1000))


def _group_code_read(code: GroupCode, joins: dict[int, int], chat_names: dict[str, str]) -> GroupCodeRead:
    return GroupCodeRead(
        id=code.id,
        name=code.name,
        state=code.state,
        remark=code.remark,
        chat_ids=code.chat_ids,
        chat_names=[chat_names.get(c, c) for c in code.chat_ids],
        auto_create_room=code.auto_create_room,
        room_base_name=code.room_base_name,
        room_base_id=code.room_base_id,
        tag_ids=code.tag_ids,
        welcome_text=code.welcome_text,
        status=code.status,
        config_id=code.config_id,
        qr_url=code.qr_url,
        syncing=not code.config_id and code.status == CodeStatus.ACTIVE,
        sync_error=code.sync_error,
        joins=joins.get(code.id, 0),
        created_at=code.created_at,
    )


def _group_code_context(
    session: Session, corp_id: int, codes: Sequence[GroupCode]
) -> tuple[dict[int, int], dict[str, str]]:
    ids = [c.id for c in codes]
    joins = (
        dict(
            session.execute(
                select(GroupCodeJoin.group_code_id, func.count())
                .where(GroupCodeJoin.group_code_id.in_(ids))
                .group_by(GroupCodeJoin.group_code_id)
            ).all()
        )
        if ids
        else {}
    )
    chats = sorted({c for code in codes for c in code.chat_ids})
    names = (
        dict(
            session.execute(
                select(GroupChat.chat_id, GroupChat.name).where(
                    GroupChat.corp_id == corp_id, GroupChat.chat_id.in_(chats)
                )
            ).all()
        )
        if chats
        else {}
    )
    return joins, names


def list_group_codes(session: Session, *, actor: Actor) -> list[GroupCodeRead]:
    require(actor, "channel", "read")
    codes = list(
        session.scalars(
            select(GroupCode)
            .where(GroupCode.corp_id == actor.corp_id, GroupCode.status != CodeStatus.DELETED)
            .order_by(GroupCode.id.desc())
        )
    )
    joins, names = _group_code_context(session, actor.corp_id, codes)
    return [_group_code_read(c, joins, names) for c in codes]


def get_group_code(session: Session, *, code: GroupCode) -> GroupCodeRead:
    joins, names = _group_code_context(session, code.corp_id, [code])
    return _group_code_read(code, joins, names)


def channel_for_state(session: Session, corp_id: int, state: str) -> Channel | None:
    """The channel a WeCom `state` names (None for adds without one, or another tool's state)."""
    if not state:
        return None
    return session.scalar(select(Channel).where(Channel.corp_id == corp_id, Channel.state == state))


def channel_of_follows(session: Session, follow_ids: Sequence[int]) -> dict[int, str]:
    """Channel names of some follows (customer detail, sidebar)."""
    if not follow_ids:
        return {}
    return dict(
        session.execute(
            select(Follow.id, Channel.name)
            .join(Channel, Channel.id == Follow.channel_id)
            .where(Follow.id.in_(follow_ids))
        ).all()
    )
