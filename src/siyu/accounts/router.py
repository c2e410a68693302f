"""REST API: console users (admins only) and each user's own API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response

from siyu.accounts import actions, service
from siyu.accounts.access import access_api_token_by_id, access_user_by_id, require
from siyu.accounts.auth import ActorDep
from siyu.accounts.models import ConsoleUser
from siyu.accounts.schemas import TokenCreate, TokenCreated, TokenRead, UserCreate, UserPage, UserRead, UserUpdate
from siyu.core.deps import SessionDep
from siyu.core.errors import DomainError, ErrorCode

router = APIRouter(prefix="/api", tags=["users"])


@router.get("/users", response_model=UserPage)
def list_users(session: SessionDep, actor: ActorDep, after: int | None = None, limit: int = 50) -> UserPage:
    require(actor, "user", "read")
    limit = max(1, min(limit, service.MAX_PAGE))
    users = service.list_users(session, corp_id=actor.corp_id, after=after, limit=limit + 1)
    page, more = users[:limit], len(users) > limit
    return UserPage(items=[UserRead.model_validate(u) for u in page], next_after=page[-1].id if more else None)


@router.post("/users", response_model=UserRead, status_code=201)
def create_user(body: UserCreate, session: SessionDep, actor: ActorDep) -> ConsoleUser:
    require(actor, "user", "write")
    return actions.do_create_user(
        session,
        corp_id=actor.corp_id,
        username=body.username,
        password=body.password,
        role=body.role,
        display_name=body.display_name,
        employee_id=body.employee_id,
        actor=actor.label,
    )


@router.get("/users/{user_id}", response_model=UserRead)
def get_user(user_id: int, session: SessionDep, actor: ActorDep) -> ConsoleUser:
    return access_user_by_id(session, actor, user_id)


@router.patch("/users/{user_id}", response_model=UserRead)
def update_user(user_id: int, body: UserUpdate, session: SessionDep, actor: ActorDep) -> ConsoleUser:
    user = access_user_by_id(session, actor, user_id, write=True)
    changes = body.model_dump(exclude_unset=True)
    return actions.do_update_user(session, user=user, changes=changes, actor=actor.label, actor_user_id=actor.user_id)


@router.get("/tokens", response_model=list[TokenRead])
def list_tokens(session: SessionDep, actor: ActorDep) -> list[object]:
    require(actor, "api_token", "read")
    return list(service.list_tokens(session, user_id=actor.user_id))


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(body: TokenCreate, session: SessionDep, actor: ActorDep) -> TokenCreated:
    require(actor, "api_token", "write")
    user = session.get(ConsoleUser, actor.user_id)
    if user is None:  # deleted between authentication and here
        raise DomainError(ErrorCode.UNAUTHORIZED, "your user no longer exists")
    row, raw = actions.do_create_api_token(session, user=user, name=body.name)
    return TokenCreated.model_validate({**TokenRead.model_validate(row).model_dump(), "token": raw})


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: int, session: SessionDep, actor: ActorDep) -> Response:
    token = access_api_token_by_id(session, actor, token_id, write=True)
    if token.revoked_at is None:
        actions.do_revoke_api_token(session, token=token, actor=actor.label)
    return Response(status_code=204)
