"""Console request context: the signed-in actor and their CSRF token, or a redirect to sign in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from siyu.accounts.access import Actor, actor_for
from siyu.accounts.auth import csrf_token_for, optional_user
from siyu.accounts.models import ConsoleUser
from siyu.core.deps import get_session


class SignInRequired(Exception):
    """Raised by console pages without a session; the app turns it into a redirect to /login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


@dataclass(frozen=True, slots=True)
class Console:
    actor: Actor
    user: ConsoleUser
    csrf_token: str


async def console_context(
    request: Request,
    session: Annotated[Session, Depends(get_session, scope="function")],
    user: Annotated[ConsoleUser | None, Depends(optional_user)],
) -> Console:
    if user is None:
        raise SignInRequired(quote(str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")))
    return Console(actor_for(session, user), user, csrf_token_for(user.id, user.session_version))


ConsoleDep = Annotated[Console, Depends(console_context)]
