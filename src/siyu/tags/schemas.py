"""API shapes for corp tag groups and tags (企业标签)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

# WeCom's limit on tag and tag-group names.
MAX_NAME = 30


def _clean_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("name must not be empty")
    if len(value) > MAX_NAME:
        raise ValueError(f"name must be at most {MAX_NAME} characters")
    return value


class TagRead(BaseModel):
    id: int
    group_id: int
    wecom_id: str | None  # None while the tag is being created in WeCom
    name: str
    order: int
    customers: int  # tagged follows in the reader's scope
    syncing: bool


class TagGroupRead(BaseModel):
    id: int
    wecom_id: str | None
    name: str
    order: int
    syncing: bool
    tags: list[TagRead]


class TagCreate(BaseModel):
    name: str
    order: int = Field(0, ge=0, le=2**31 - 1)

    _name = field_validator("name")(_clean_name)


class TagGroupCreate(BaseModel):
    name: str
    order: int = Field(0, ge=0, le=2**31 - 1)
    # WeCom creates a group together with its first tags; a group without tags cannot exist.
    tags: list[TagCreate] = Field(min_length=1, max_length=100)

    _name = field_validator("name")(_clean_name)


class TagUpdate(BaseModel):
    """Rename and/or reorder a tag or a tag group (fields left out are unchanged)."""

    name: str | None = None
    order: int | None = Field(None, ge=0, le=2**31 - 1)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return None if value is None else _clean_name(value)


class OutboxQueued(BaseModel):
    outbox_id: int
