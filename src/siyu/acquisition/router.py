"""REST API: channel codes (渠道活码) and their groups, QR images, materials, default welcomes,
the welcome log, and group codes (群活码). Changes reach WeCom through the outbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from siyu.accounts.access import (
    access_channel_by_id,
    access_channel_group_by_id,
    access_group_code_by_id,
    access_material_by_id,
    access_welcome_template_by_id,
    require,
)
from siyu.accounts.auth import ActorDep
from siyu.acquisition import actions, qr, service
from siyu.acquisition.models import MaterialKind
from siyu.acquisition.schemas import (
    ChannelGroupRead,
    ChannelGroupWrite,
    ChannelPatch,
    ChannelRead,
    ChannelWrite,
    GroupCodeRead,
    GroupCodeWrite,
    MaterialRead,
    MaterialWrite,
    WelcomeSendRead,
    WelcomeTemplateRead,
    WelcomeTemplateWrite,
)
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode

router = APIRouter(prefix="/api", tags=["acquisition"])


# --- channel groups -----------------------------------------------------------------------------


@router.get("/channel-groups", response_model=list[ChannelGroupRead])
def list_channel_groups(session: SessionDep, actor: ActorDep) -> list[ChannelGroupRead]:
    return service.list_channel_groups(session, actor=actor)


@router.post("/channel-groups", response_model=ChannelGroupRead, status_code=201)
def create_channel_group(body: ChannelGroupWrite, session: SessionDep, actor: ActorDep) -> ChannelGroupRead:
    require(actor, "channel", "write")
    group = actions.do_create_channel_group(session, actor, body)
    return ChannelGroupRead(id=group.id, name=group.name, kind=group.kind, channels=0)


@router.put("/channel-groups/{group_id}", response_model=ChannelGroupRead)
def update_channel_group(
    group_id: int, body: ChannelGroupWrite, session: SessionDep, actor: ActorDep
) -> ChannelGroupRead:
    group = access_channel_group_by_id(session, actor, group_id, write=True)
    actions.do_update_channel_group(session, actor, group, body)
    return next(g for g in service.list_channel_groups(session, actor=actor) if g.id == group.id)


@router.delete("/channel-groups/{group_id}", status_code=204)
def delete_channel_group(group_id: int, session: SessionDep, actor: ActorDep) -> Response:
    actions.do_delete_channel_group(session, actor, access_channel_group_by_id(session, actor, group_id, write=True))
    return Response(status_code=204)


# --- channel codes ------------------------------------------------------------------------------


@router.get("/channels", response_model=list[ChannelRead])
def list_channels(
    session: SessionDep, actor: ActorDep, group_id: int | None = None, include_deleted: bool = False
) -> list[ChannelRead]:
    return service.list_channels(session, actor=actor, group_id=group_id, include_deleted=include_deleted)


@router.post("/channels", response_model=ChannelRead, status_code=201)
def create_channel(body: ChannelWrite, session: SessionDep, actor: ActorDep) -> ChannelRead:
    require(actor, "channel", "write")
    return service.get_channel(session, channel=actions.do_create_channel(session, actor, body))


@router.get("/channels/{channel_id}", response_model=ChannelRead)
def get_channel(channel_id: int, session: SessionDep, actor: ActorDep) -> ChannelRead:
    return service.get_channel(session, channel=access_channel_by_id(session, actor, channel_id))


@router.patch("/channels/{channel_id}", response_model=ChannelRead)
def update_channel(channel_id: int, body: ChannelPatch, session: SessionDep, actor: ActorDep) -> ChannelRead:
    channel = access_channel_by_id(session, actor, channel_id, write=True)
    return service.get_channel(session, channel=actions.do_update_channel(session, actor, channel, body))


@router.delete("/channels/{channel_id}", status_code=204)
def delete_channel(channel_id: int, session: SessionDep, actor: ActorDep) -> Response:
    actions.do_delete_channel(session, actor, access_channel_by_id(session, actor, channel_id, write=True))
    return Response(status_code=204)


def _download(content: bytes, media_type: str, name: str) -> Response:
    return Response(content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/channels/{channel_id}/qr.png", response_class=Response)
def channel_qr_png(channel_id: int, session: SessionDep, actor: ActorDep) -> Response:
    channel = access_channel_by_id(session, actor, channel_id)
    return _download(qr.png(channel.qr_url), "image/png", f"channel-{channel.id}.png")


@router.get("/channels/{channel_id}/qr.svg", response_class=Response)
def channel_qr_svg(channel_id: int, session: SessionDep, actor: ActorDep) -> Response:
    channel = access_channel_by_id(session, actor, channel_id)
    return _download(qr.svg(channel.qr_url), "image/svg+xml", f"channel-{channel.id}.svg")


# --- welcome messages ---------------------------------------------------------------------------


@router.get("/welcome-templates", response_model=list[WelcomeTemplateRead])
def list_welcome_templates(session: SessionDep, actor: ActorDep) -> list[WelcomeTemplateRead]:
    return service.list_welcome_templates(session, actor=actor)


@router.put("/welcome-templates", response_model=WelcomeTemplateRead)
def put_welcome_template(body: WelcomeTemplateWrite, session: SessionDep, actor: ActorDep) -> WelcomeTemplateRead:
    """Create or replace the default welcome of one scope (employee userid, department id, or the corp)."""
    require(actor, "channel", "write")
    return service.welcome_template_read(session, actions.do_put_welcome_template(session, actor, body))


@router.delete("/welcome-templates/{template_id}", status_code=204)
def delete_welcome_template(template_id: int, session: SessionDep, actor: ActorDep) -> Response:
    template = access_welcome_template_by_id(session, actor, template_id, write=True)
    actions.do_delete_welcome_template(session, actor, template)
    return Response(status_code=204)


@router.get("/welcome-sends", response_model=list[WelcomeSendRead])
def list_welcome_sends(
    session: SessionDep,
    actor: ActorDep,
    channel_id: int | None = None,
    status: str | None = None,
    before_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[WelcomeSendRead]:
    """What became of each WelcomeCode: sent (with latency), already sent, expired or failed, and why."""
    return service.list_welcome_sends(
        session, actor=actor, channel_id=channel_id, status=status, before_id=before_id, limit=limit
    )


# --- materials ----------------------------------------------------------------------------------


@router.get("/materials", response_model=list[MaterialRead])
def list_materials(session: SessionDep, actor: ActorDep) -> list[MaterialRead]:
    return service.list_materials(session, actor=actor)


@router.post("/materials", response_model=MaterialRead, status_code=201)
async def create_material(
    session: SessionDep,
    actor: ActorDep,
    kind: Annotated[MaterialKind, Form()],
    title: Annotated[str, Form()] = "",
    url: Annotated[str, Form()] = "",
    pic_url: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    appid: Annotated[str, Form()] = "",
    page: Annotated[str, Form()] = "",
    image: Annotated[UploadFile | None, File()] = None,
) -> MaterialRead:
    """A welcome attachment (multipart form): a link, an image (upload or URL) or a mini-program (with cover)."""
    require(actor, "channel", "write")
    try:
        body = MaterialWrite(
            kind=kind, title=title, url=url, pic_url=pic_url, description=description, appid=appid, page=page
        )
    except ValueError as exc:
        raise DomainError(ErrorCode.INVALID, str(exc)) from exc
    upload = None
    if image is not None and image.filename:
        data = await image.read(actions.MAX_IMAGE_BYTES + 1)
        upload = (data, image.content_type or "")
    return service.material_read(actions.do_create_material(session, actor, body, upload))


@router.get("/materials/{material_id}/image", response_class=Response)
def material_image(material_id: int, session: SessionDep, actor: ActorDep) -> Response:
    material = access_material_by_id(session, actor, material_id)
    if not material.image_data:
        raise DomainError(ErrorCode.NOT_FOUND, f"material {material_id} has no uploaded image")
    return Response(material.image_data, media_type=material.image_type)


@router.delete("/materials/{material_id}", status_code=204)
def delete_material(material_id: int, session: SessionDep, actor: ActorDep) -> Response:
    actions.do_delete_material(session, actor, access_material_by_id(session, actor, material_id, write=True))
    return Response(status_code=204)


# --- group codes --------------------------------------------------------------------------------


@router.get("/group-codes", response_model=list[GroupCodeRead])
def list_group_codes(session: SessionDep, actor: ActorDep) -> list[GroupCodeRead]:
    return service.list_group_codes(session, actor=actor)


@router.post("/group-codes", response_model=GroupCodeRead, status_code=201)
def create_group_code(body: GroupCodeWrite, session: SessionDep, actor: ActorDep) -> GroupCodeRead:
    require(actor, "channel", "write")
    return service.get_group_code(session, code=actions.do_create_group_code(session, actor, body))


@router.get("/group-codes/{code_id}", response_model=GroupCodeRead)
def get_group_code(code_id: int, session: SessionDep, actor: ActorDep) -> GroupCodeRead:
    return service.get_group_code(session, code=access_group_code_by_id(session, actor, code_id))


@router.put("/group-codes/{code_id}", response_model=GroupCodeRead)
def update_group_code(code_id: int, body: GroupCodeWrite, session: SessionDep, actor: ActorDep) -> GroupCodeRead:
    code = access_group_code_by_id(session, actor, code_id, write=True)
    return service.get_group_code(session, code=actions.do_update_group_code(session, actor, code, body))


@router.delete("/group-codes/{code_id}", status_code=204)
def delete_group_code(code_id: int, session: SessionDep, actor: ActorDep) -> Response:
    actions.do_delete_group_code(session, actor, access_group_code_by_id(session, actor, code_id, write=True))
    return Response(status_code=204)


@router.get("/group-codes/{code_id}/qr.png", response_class=Response)
def group_code_qr_png(code_id: int, session: SessionDep, actor: ActorDep) -> Response:
    code = access_group_code_by_id(session, actor, code_id)
    return _download(qr.png(code.qr_url), "image/png", f"group-code-{code.id}.png")


@router.get("/group-codes/{code_id}/qr.svg", response_class=Response)
def group_code_qr_svg(code_id: int, session: SessionDep, actor: ActorDep) -> Response:
    code = access_group_code_by_id(session, actor, code_id)
    return _download(qr.svg(code.qr_url), "image/svg+xml", f"group-code-{code.id}.svg")
