"""API shapes for channel codes, channel groups, materials, welcome messages and group codes."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, Field, field_validator, model_validator

from siyu.acquisition.models import ChannelKind, MaterialKind, WelcomeScope

MAX_CODE_USERS = 100  # WeCom: user + party members of one Contact Me config
MAX_ATTACHMENTS = 9  # send_welcome_msg
MAX_WELCOME_BYTES = 4000
MAX_GROUP_WELCOME_BYTES = 3000
MAX_JOIN_WAY_CHATS = 5
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def _name(value: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters")
    return value


class ChannelGroupWrite(BaseModel):
    name: str
    kind: ChannelKind = ChannelKind.OTHER

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _name(value, 64)


class ChannelGroupRead(BaseModel):
    id: int
    name: str
    kind: str
    channels: int


class ScheduleSlot(BaseModel):
    """Who serves the code on these ISO weekdays (1 = Monday) between start and end, corp time."""

    weekdays: list[int] = Field(min_length=1)
    start: str
    end: str
    userids: list[str] = Field(min_length=1, max_length=MAX_CODE_USERS)

    @field_validator("weekdays")
    @classmethod
    def _check_days(cls, value: list[int]) -> list[int]:
        if any(d < 1 or d > 7 for d in value):
            raise ValueError("weekdays are 1 (Monday) … 7 (Sunday)")
        return sorted(set(value))

    @field_validator("start", "end")
    @classmethod
    def _check_time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("times are HH:MM (00:00 … 24:00)")
        return value

    @model_validator(mode="after")
    def _check_order(self) -> ScheduleSlot:
        if self.start == self.end:
            raise ValueError("a slot's start and end must differ (an overnight slot has end < start)")
        return self


class WelcomeContent(BaseModel):
    """The welcome: text with {nickname} / {employee} (or {客户昵称} / {员工姓名}), materials, a group invitation."""

    text: str = ""
    material_ids: list[int] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    group_code_id: int | None = None

    @field_validator("text")
    @classmethod
    def _check_text(cls, value: str) -> str:
        if len(value.encode()) > MAX_WELCOME_BYTES:
            raise ValueError(f"text must be at most {MAX_WELCOME_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _check_content(self) -> WelcomeContent:
        attachments = len(self.material_ids) + (1 if self.group_code_id else 0)
        if attachments > MAX_ATTACHMENTS:
            raise ValueError(f"at most {MAX_ATTACHMENTS} attachments, the group invitation included")
        if not self.text.strip() and not attachments:
            raise ValueError("a welcome needs text or at least one attachment")
        return self


class ChannelWrite(BaseModel):
    """Create (every field) or update (PATCH: only the fields sent)."""

    name: str
    group_id: int | None = None
    userids: list[str] = Field(default_factory=list, max_length=MAX_CODE_USERS)
    party_ids: list[int] = Field(default_factory=list, max_length=MAX_CODE_USERS)
    backup_userids: list[str] = Field(default_factory=list, max_length=MAX_CODE_USERS)
    daily_cap: int | None = Field(default=None, ge=1, le=100_000)
    schedule: list[ScheduleSlot] = Field(default_factory=list, max_length=50)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    tag_ids: list[int] = Field(default_factory=list, max_length=100)
    welcome: WelcomeContent | None = None
    skip_verify: bool = True
    remark: str = Field(default="", max_length=30)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _name(value, 64)

    @model_validator(mode="after")
    def _check(self) -> ChannelWrite:
        if not (self.userids or self.party_ids or self.schedule):
            raise ValueError("choose at least one employee or department to serve the code")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.daily_cap and not (self.userids or self.schedule):
            raise ValueError("a daily cap needs employees (caps count adds per employee)")
        return self


class ChannelPatch(BaseModel):
    name: str | None = None
    group_id: int | None = None
    userids: list[str] | None = Field(default=None, max_length=MAX_CODE_USERS)
    party_ids: list[int] | None = Field(default=None, max_length=MAX_CODE_USERS)
    backup_userids: list[str] | None = Field(default=None, max_length=MAX_CODE_USERS)
    daily_cap: int | None = Field(default=None, ge=1, le=100_000)
    schedule: list[ScheduleSlot] | None = Field(default=None, max_length=50)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    tag_ids: list[int] | None = Field(default=None, max_length=100)
    welcome: WelcomeContent | None = None
    skip_verify: bool | None = None
    remark: str | None = Field(default=None, max_length=30)


class ChannelRead(BaseModel):
    id: int
    name: str
    group_id: int | None
    group_name: str | None
    state: str
    remark: str
    skip_verify: bool
    userids: list[str]
    party_ids: list[int]
    backup_userids: list[str]
    daily_cap: int | None
    schedule: list[ScheduleSlot]
    valid_from: datetime | None
    valid_until: datetime | None
    tag_ids: list[int]
    welcome: WelcomeContent | None
    status: str
    config_id: str
    qr_url: str
    live_userids: list[str]
    syncing: bool  # the code is still being created or changed in WeCom
    sync_error: str
    follows: int  # follows ever attributed to the code
    adds_today: int
    created_at: datetime


class MaterialWrite(BaseModel):
    kind: MaterialKind
    title: str = Field(default="", max_length=128)
    url: str = Field(default="", max_length=1024)
    pic_url: str = Field(default="", max_length=1024)
    description: str = Field(default="", max_length=512)
    appid: str = Field(default="", max_length=64)
    page: str = Field(default="", max_length=255)

    @model_validator(mode="after")
    def _check(self) -> MaterialWrite:
        if self.kind == MaterialKind.LINK and not (self.title.strip() and self.url.startswith(("http://", "https://"))):
            raise ValueError("a link needs a title and an http(s) url")
        if self.kind == MaterialKind.MINIPROGRAM and not (self.title.strip() and self.appid and self.page):
            raise ValueError("a mini-program needs a title, an appid and a page (and a cover image upload)")
        if self.kind == MaterialKind.IMAGE and self.pic_url and not self.pic_url.startswith(("http://", "https://")):
            raise ValueError("pic_url must be an http(s) url")
        return self


class MaterialRead(BaseModel):
    id: int
    kind: str
    title: str
    url: str
    pic_url: str
    description: str
    appid: str
    page: str
    has_image: bool
    created_at: datetime


class WelcomeTemplateWrite(BaseModel):
    scope: WelcomeScope
    scope_key: str = Field(default="", max_length=64)
    content: WelcomeContent
    enabled: bool = True

    @model_validator(mode="after")
    def _check(self) -> WelcomeTemplateWrite:
        if self.scope == WelcomeScope.CORP:
            self.scope_key = ""
        elif not self.scope_key:
            raise ValueError("scope_key is the employee's userid or the department's id")
        elif self.scope == WelcomeScope.DEPARTMENT and not self.scope_key.isdigit():
            raise ValueError("a department scope_key is the department's numeric id")
        return self


class WelcomeTemplateRead(BaseModel):
    id: int
    scope: str
    scope_key: str
    scope_name: str
    content: WelcomeContent
    enabled: bool
    updated_at: datetime


class WelcomeSendRead(BaseModel):
    id: int
    channel_id: int | None
    channel_name: str | None
    employee_name: str | None
    customer_id: int | None
    customer_name: str | None
    source: str
    status: str
    reason: str
    attempts: int
    received_at: datetime
    sent_at: datetime | None
    latency_ms: int | None  # event → send_welcome_msg accepted


class GroupCodeWrite(BaseModel):
    name: str
    chat_ids: list[str] = Field(min_length=1, max_length=MAX_JOIN_WAY_CHATS)
    auto_create_room: bool = True
    room_base_name: str = Field(default="", max_length=40)
    room_base_id: int = Field(default=1, ge=1)
    tag_ids: list[int] = Field(default_factory=list, max_length=100)
    welcome_text: str = ""
    remark: str = Field(default="", max_length=30)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _name(value, 64)

    @field_validator("welcome_text")
    @classmethod
    def _check_welcome(cls, value: str) -> str:
        if len(value.encode()) > MAX_GROUP_WELCOME_BYTES:
            raise ValueError(f"the group welcome must be at most {MAX_GROUP_WELCOME_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _check(self) -> GroupCodeWrite:
        if self.auto_create_room and not self.room_base_name.strip():
            raise ValueError("auto-created groups need a base name (room_base_name)")
        return self


class GroupCodeRead(BaseModel):
    id: int
    name: str
    state: str
    remark: str
    chat_ids: list[str]
    chat_names: list[str]
    auto_create_room: bool
    room_base_name: str
    room_base_id: int
    tag_ids: list[int]
    welcome_text: str
    status: str
    config_id: str
    qr_url: str
    syncing: bool
    sync_error: str
    joins: int
    created_at: datetime
