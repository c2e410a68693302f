"""Request dependencies: the database session (the transaction boundary) and API authentication."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header
from sqlalchemy.orm import Session

from siyu.core.config import get_settings
from siyu.core.db import session_scope
from siyu.core.errors import DomainError, ErrorCode


def get_session() -> Iterator[Session]:
    """Commit when the request succeeds, roll back when it raises."""
    with session_scope() as session:
        yield session


def admin_api_token() -> str:
    """The operator's API token until per-user tokens land: derived from the secret key, never stored."""
    key = get_settings().resolved_secret_key().encode()
    return hmac.new(key, b"siyu-admin-api-token", hashlib.sha256).hexdigest()[:40]


def require_api_token(authorization: Annotated[str | None, Header()] = None) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), admin_api_token()):
        raise DomainError(ErrorCode.UNAUTHORIZED, "a valid 'Authorization: Bearer <token>' header is required")


SessionDep = Annotated[Session, Depends(get_session)]
