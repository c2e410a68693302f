"""Request dependencies: the database session, which is the transaction boundary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from siyu.core.db import session_scope


def get_session() -> Iterator[Session]:
    """Commit when the request succeeds, roll back when it raises.

    Scoped to the path function: the commit happens before the response is sent, so a client that
    follows a redirect (or reads right after a 2xx) sees the change, and a failed commit is an error
    answer, never a success that was not stored. Streaming responses read with their own sessions.
    """
    with session_scope() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
