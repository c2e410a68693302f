"""API shapes for segment counts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CountRequest(BaseModel):
    rule: dict[str, Any] = Field(description='{"version": 1, "rule": {...}} — see docs/segments.md')
    sample: int = Field(default=20, ge=0, le=200)


class SampleCustomer(BaseModel):
    id: int
    name: str


class CountRead(BaseModel):
    count: int
    sample: list[SampleCustomer]
    # Ids the rule names that the corp does not have (they match nobody), by kind.
    unknown_ids: dict[str, list[int | str]]
    # How old the index that answered is, in seconds (it is rebuilt at most every FRESH_SECONDS).
    index_age_seconds: float
