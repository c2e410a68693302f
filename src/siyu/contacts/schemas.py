"""API shapes for customers: the filtered list, the detail with its follows, tag edits, exports, timeline."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from siyu.contacts.models import FollowStatus


class TagMode(StrEnum):
    ANY = "any"  # has at least one of the tags
    ALL = "all"  # has every one of them
    NONE = "none"  # has none of them


class Sort(StrEnum):
    ADDED_DESC = "-added"
    ADDED = "added"
    NAME = "name"
    NAME_DESC = "-name"
    ID = "id"
    ID_DESC = "-id"


# "ended" is any of the ended kinds; the kinds themselves filter exactly.
STATUS_FILTERS = ("active", "ended", *(s.value for s in FollowStatus if s != FollowStatus.ACTIVE))


class CustomerFilters(BaseModel):
    """The customers list's filters, as query parameters (REST and console) and as an export's stored filters.

    Follow-level conditions (employee, department, added dates, status) must hold for one and the
    same follow; tags count on any of the customer's follows the caller may see.
    """

    q: str = Field("", max_length=64, description="Name, follow remark, or remark mobile (digits match anywhere).")
    tag_ids: list[int] = Field(default_factory=list, max_length=50)
    tag_mode: TagMode = TagMode.ANY
    employee_ids: list[int] = Field(default_factory=list, max_length=200)
    department_id: int | None = Field(None, description="WeCom department id; includes sub-departments.")
    added_from: date | None = None
    added_to: date | None = Field(None, description="Inclusive, in the corp's timezone.")
    status: str | None = Field(None, description="active, ended, or one ended kind: " + ", ".join(STATUS_FILTERS[2:]))
    sort: Sort = Sort.ADDED_DESC

    @field_validator("q")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if value not in STATUS_FILTERS:
            raise ValueError(f"unknown status {value!r}; use one of {', '.join(STATUS_FILTERS)}")
        return value


class TagBrief(BaseModel):
    id: int
    name: str
    group_name: str = ""


class FollowBrief(BaseModel):
    id: int
    employee_id: int
    employee_name: str
    remark: str
    remark_mobiles: list[str] = Field(description="Masked (138****0001): personal data.")
    status: str
    created_at: datetime | None


class CustomerRow(BaseModel):
    id: int
    external_userid: str
    name: str
    avatar: str
    type: int
    added_at: datetime
    status: str
    follows: list[FollowBrief]
    tags: list[TagBrief]


class CustomerPage(BaseModel):
    items: list[CustomerRow]
    next_cursor: str | None = Field(None, description="Pass as `after` for the next page; null on the last page.")


class TagSync(BaseModel):
    """The last tag change sent to WeCom for a follow (the outbox row)."""

    outbox_id: int
    status: str
    error: str = ""
    sent_at: datetime | None = None


class FollowRead(BaseModel):
    id: int
    employee_id: int
    employee_userid: str
    employee_name: str
    remark: str
    description: str
    remark_corp_name: str
    remark_mobiles: list[str] = Field(description="Masked (138****0001): personal data.")
    add_way: int
    add_way_label: str
    state: str
    channel_id: int | None = Field(default=None, description="The channel code that brought this follow.")
    channel_name: str | None = None
    created_at: datetime | None
    status: str
    ended_at: datetime | None
    tags: list[TagBrief]
    editable: bool
    tag_sync: TagSync | None = None


class CustomerRead(BaseModel):
    id: int
    external_userid: str
    name: str
    avatar: str
    type: int
    gender: int
    position: str
    corp_name: str
    corp_full_name: str
    added_at: datetime
    status: str
    follows: list[FollowRead]


class FollowTagsUpdate(BaseModel):
    tag_ids: list[int] = Field(max_length=500, description="The follow's complete corp tag set (siyu tag ids).")


class TimelineEventRead(BaseModel):
    id: int
    kind: str
    occurred_at: datetime
    employee_id: int | None
    employee_name: str
    actor: str
    detail: dict[str, Any]


class TimelinePage(BaseModel):
    items: list[TimelineEventRead]
    next_cursor: str | None = None


class ExportRead(BaseModel):
    id: int
    status: str
    total: int | None
    done: int
    percent: int
    error: str
    created_at: datetime
    finished_at: datetime | None
    download_url: str | None
