"""API shapes for segment counts, saved segments and snapshots."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

RULE_DOC = '{"version": 1, "rule": {...}} — see docs/segments.md'


class CountRequest(BaseModel):
    rule: dict[str, Any] = Field(description=RULE_DOC)
    sample: int = Field(default=20, ge=0, le=200)


class SampleCustomer(BaseModel):
    id: int
    name: str
    # Names of the employees with an active follow of the customer (first few).
    owners: list[str] = Field(default_factory=list)


class CountRead(BaseModel):
    count: int
    sample: list[SampleCustomer]
    # Ids the rule names that the corp does not have (they match nobody), by kind.
    unknown_ids: dict[str, list[int | str]]
    # The change number the index reflected (segment_index_version): every change committed before it counted.
    index_version: int = 0
    # Seconds since this process built the index from the database (since then it is kept current change by change).
    index_age_seconds: float = 0.0


class SegmentCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=2000)
    rule: dict[str, Any] = Field(description=RULE_DOC)


class SegmentUpdate(BaseModel):
    """Only the fields given change."""

    name: str | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=2000)
    rule: dict[str, Any] | None = Field(default=None, description=RULE_DOC)


class SegmentRead(BaseModel):
    id: int
    name: str
    description: str
    rule: dict[str, Any]
    rule_version: int
    # The count when the segment was last saved or snapshotted (POST …/count refreshes it).
    last_count: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    snapshots: int = 0


class SegmentPage(BaseModel):
    items: list[SegmentRead]


class SnapshotCreate(BaseModel):
    name: str = Field(default="", max_length=128)


class RuleSnapshotCreate(BaseModel):
    """A snapshot of a rule that is not saved as a segment."""

    name: str = Field(default="", max_length=128)
    rule: dict[str, Any] = Field(description=RULE_DOC)


class SnapshotRead(BaseModel):
    id: int
    segment_id: int | None
    name: str
    rule: dict[str, Any]
    rule_version: int
    member_count: int
    created_by: str
    created_at: datetime


class SnapshotPage(BaseModel):
    items: list[SnapshotRead]


class MemberPage(BaseModel):
    items: list[SampleCustomer]
    next_cursor: int | None = Field(None, description="Pass as `after` for the next page; null on the last page.")
