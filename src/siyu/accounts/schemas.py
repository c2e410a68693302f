"""API shapes for console users and API tokens. Password hashes and token hashes never leave the server."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from siyu.accounts.actions import MIN_PASSWORD
from siyu.accounts.models import Role


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=MIN_PASSWORD, max_length=256)
    role: Role
    display_name: str = Field("", max_length=128)
    # Required for staff: their data scope is the customers this employee follows.
    employee_id: int | None = None


class UserUpdate(BaseModel):
    """Only the fields sent are changed. A new password (or deactivation) ends the user's sessions."""

    display_name: str | None = Field(None, max_length=128)
    role: Role | None = None
    employee_id: int | None = None
    is_active: bool | None = None
    password: str | None = Field(None, min_length=MIN_PASSWORD, max_length=256)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    corp_id: int
    username: str
    display_name: str
    role: Role
    employee_id: int | None
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime


class UserPage(BaseModel):
    items: list[UserRead]
    next_after: int | None = Field(None, description="Pass as ?after= for the next page; null on the last page.")


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenRead):
    token: str = Field(description="The token itself. Shown only in this response; siyu keeps only a hash.")
