"""API shapes for broadcasts: the draft, its plan summary and its frozen recipients."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from siyu.broadcasts.models import BroadcastKind

MAX_ATTACHMENTS = 9  # add_msg_template
MAX_TEXT_BYTES = 4000  # add_msg_template text.content
MAX_MOMENT_TEXT_CHARS = 2000  # add_moment_task text.content
MAX_HOLDOUT_PERCENT = 50
MAX_LIST = 100_000  # explicit customer / chat lists in one draft (larger audiences: a segment or snapshot)
ATTACHMENT_TYPES = ("image", "link", "miniprogram", "video", "file")
MOMENT_ATTACHMENT_TYPES = ("image", "video", "link")
CUSTOMER_AUDIENCES = ("rule", "segment_id", "snapshot_id", "customer_ids")
GROUP_AUDIENCES = ("chat_ids", "owner_ids")
MOMENT_AUDIENCES = ("tag_ids",)
AUDIENCES = (*CUSTOMER_AUDIENCES, *GROUP_AUDIENCES, *MOMENT_AUDIENCES)
AUDIENCES_BY_KIND = {
    BroadcastKind.CUSTOMER: CUSTOMER_AUDIENCES,
    BroadcastKind.PERSONAL: CUSTOMER_AUDIENCES,
    BroadcastKind.GROUP: GROUP_AUDIENCES,
    BroadcastKind.MOMENT: MOMENT_AUDIENCES,
}


class Audience(BaseModel):
    """Exactly one of: a segment rule, a saved segment, a snapshot, a customer list (customer and personal
    broadcasts); WeCom chat ids, or the owners whose groups all get it (group broadcasts); the tags whose
    customers see a Moment ([] = every customer of its senders; WeCom shows Moments by employee and tag)."""

    rule: dict[str, Any] | None = Field(default=None, description='{"version": 1, "rule": {...}} (docs/segments.md)')
    segment_id: int | None = None
    snapshot_id: int | None = None
    customer_ids: list[int] | None = Field(default=None, max_length=MAX_LIST)
    chat_ids: list[str] | None = Field(default=None, max_length=MAX_LIST, description="WeCom chat ids (wr…)")
    owner_ids: list[int] | None = Field(default=None, max_length=10_000, description="employee ids: their groups")
    tag_ids: list[int] | None = Field(default=None, max_length=1_000, description="Moments: visible to these tags")

    @model_validator(mode="after")
    def _exactly_one(self) -> Audience:
        given = [name for name in AUDIENCES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(AUDIENCES)}")
        for name in ("customer_ids", "chat_ids", "owner_ids"):
            if getattr(self, name) == []:
                raise ValueError(f"{name} must not be empty")
        return self

    @property
    def source(self) -> str:
        return next(name for name in AUDIENCES if getattr(self, name) is not None)


class Content(BaseModel):
    """What is sent: text and up to 9 attachments in WeCom's shape ({"msgtype": "image", "image": {...}})."""

    text: str = ""
    attachments: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)

    @field_validator("attachments")
    @classmethod
    def _check_attachments(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, item in enumerate(value):
            kind = item.get("msgtype")
            if kind not in ATTACHMENT_TYPES:
                raise ValueError(f"attachments[{i}].msgtype must be one of {', '.join(ATTACHMENT_TYPES)}")
            if not isinstance(item.get(kind), dict) and not isinstance(item.get("material_id"), int):
                raise ValueError(f'attachments[{i}] needs a "{kind}" object or a material_id')
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Content:
        if not self.text.strip() and not self.attachments:
            raise ValueError("give a text or at least one attachment")
        if len(self.text.encode()) > MAX_TEXT_BYTES:
            raise ValueError(f"text must be at most {MAX_TEXT_BYTES} bytes")
        return self


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must carry a time zone (e.g. 2026-12-03T09:00:00+08:00)")
    return value


class BroadcastCreate(BaseModel):
    kind: BroadcastKind = BroadcastKind.CUSTOMER
    name: str = Field(min_length=1, max_length=128)
    audience: Audience
    content: Content
    sender_ids: list[int] = Field(default_factory=list, description="employee ids allowed to send; [] = anyone")
    allow_select: bool = False
    scheduled_at: datetime | None = Field(default=None, description="UTC; none = as soon as it is sent")
    holdout_percent: int = Field(default=0, ge=0, le=MAX_HOLDOUT_PERCENT)

    @field_validator("scheduled_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _aware(value)


class BroadcastUpdate(BaseModel):
    """Applied with exclude_unset: only the fields given change."""

    name: str | None = Field(default=None, min_length=1, max_length=128)
    audience: Audience | None = None
    content: Content | None = None
    sender_ids: list[int] | None = None
    allow_select: bool | None = None
    scheduled_at: datetime | None = None
    holdout_percent: int | None = Field(default=None, ge=0, le=MAX_HOLDOUT_PERCENT)

    @field_validator("scheduled_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _aware(value)


class BroadcastRead(BaseModel):
    id: int
    kind: str
    name: str
    status: str
    audience: dict[str, Any]
    segment_id: int | None
    snapshot_id: int | None
    rule_version: int | None
    content: dict[str, Any]
    sender_ids: list[int]
    allow_select: bool
    scheduled_at: datetime | None
    send_day: date | None
    holdout_percent: int
    counts: dict[str, Any]
    block_reason: str
    created_by: str
    created_at: datetime
    planned_at: datetime | None
    sent_at: datetime | None
    finished_at: datetime | None


class BroadcastPage(BaseModel):
    items: list[BroadcastRead]
    next_cursor: str | None


class Finding(BaseModel):
    """A content check that failed: what kind, the matched text and where it is in the text."""

    kind: str
    matched: str
    start: int
    end: int


class SenderCount(BaseModel):
    employee_id: int | None
    userid: str
    name: str
    eligible: int
    chunks: int


class ScheduleMove(BaseModel):
    """The send time fell in the corp's quiet hours and was moved to their end."""

    requested: datetime
    moved_to: datetime
    quiet_hours: str  # "21:00–08:00" corp-local


class PlanSummary(BaseModel):
    broadcast_id: int
    status: str
    candidates: int
    eligible: int
    excluded: dict[str, int]  # reason → recipients
    senders: list[SenderCount]
    chunks: int
    send_day: date | None
    scheduled_at: datetime | None
    moved: ScheduleMove | None
    findings: list[Finding]
    block_reason: str


class RecipientRead(BaseModel):
    position: int  # in the plan: eligible first, per sender, then the excluded by reason
    customer_id: int | None
    customer_name: str | None
    chat_id: int | None
    chat_name: str | None
    employee_id: int | None
    employee_userid: str | None
    chunk_id: int | None
    send_day: date | None
    status: str
    reason: str


class RecipientPage(BaseModel):
    items: list[RecipientRead]
    next_cursor: str | None
