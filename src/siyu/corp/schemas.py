"""API shapes for corps, their sync runs and their callback inbox."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class CorpCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    wecom_corpid: str = Field(min_length=1, max_length=64)
    contact_secret: str = Field(min_length=1)
    callback_token: str = Field(min_length=1, max_length=32)
    callback_aes_key: str = Field(min_length=43, max_length=43)
    agent_id: str = ""
    api_base_url: str | None = None


class CorpRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    corp_id: int
    name: str
    wecom_corpid: str
    agent_id: str
    api_base_url: str
    timezone: str
    callback_url: str = ""


class SyncRequest(BaseModel):
    only: str | None = Field(None, pattern="^(employees|customers|tags|groups)$")


class SyncRunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    scope: str
    status: str
    stats: dict[str, object]
    error: str
    started_at: datetime
    finished_at: datetime | None


class InboxRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event: str
    change_type: str
    status: str
    attempts: int
    error: str
    received_at: datetime
    processed_at: datetime | None
