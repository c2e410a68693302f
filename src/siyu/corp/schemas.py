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


# --- settings: the WeCom connection -------------------------------------------------------------


class ConnectionRead(BaseModel):
    """The corp's WeCom connection as the settings page shows it: secrets are never included."""

    corp_id: int
    name: str
    wecom_corpid: str
    agent_id: str
    api_base_url: str
    timezone: str
    callback_url: str
    contact_secret_set: bool
    callback_token_set: bool
    callback_aes_key_set: bool


class ConnectionUpdate(BaseModel):
    """Fields left out are unchanged. Secrets are write-only."""

    contact_secret: str | None = Field(None, min_length=1, max_length=512)
    callback_token: str | None = Field(None, min_length=1, max_length=32)
    callback_aes_key: str | None = Field(None, min_length=43, max_length=43)
    api_base_url: str | None = Field(None, pattern=r"^https?://[^\s]+$", max_length=255)
    agent_id: str | None = Field(None, pattern=r"^[0-9]{0,32}$")


class CallbackSecretsRead(BaseModel):
    """What to paste into WeCom's callback settings (revealed to admins on request, audited)."""

    callback_url: str
    token: str
    encoding_aes_key: str


class TestConnectionRead(BaseModel):
    ok: bool
    step: str  # gettoken | get_follow_user_list | done
    errcode: int | None = None
    errmsg: str = ""
    follow_users: int | None = None
    seconds: float


class SyncProgressRead(BaseModel):
    run_id: int | None
    status: str  # queued | running | done | failed
    scope: str = ""
    stage: str = ""
    stages_done: list[str] = []
    stages_total: int = 0
    pages: int = 0
    changes: dict[str, dict[str, int]] = {}
    error: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None


# --- the audit log ------------------------------------------------------------------------------


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    actor: str
    action: str
    object_type: str
    object_id: str
    detail: dict[str, object]
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditRead]
    # Pass as ?after= for the next (older) page; None on the last page.
    next_after: int | None
