"""The WeCom access token, shared by every process of a deployment.

WeCom hands out one token per (corp, app secret) and throttles gettoken itself, so a token must
not live in one process's memory: web workers, task workers and the CLI all read it from one
`TokenStore` — the database (`wecom_token` table) or Redis when `SIYU_REDIS_URL` is set.

Three rules come from the way WeCom and other SCRMs fail (reference/wecom-api.md §0.5, peers §3.2):

* A token is treated as expired `SAFETY_MARGIN` before WeCom says, so a call never carries a
  token that dies in flight.
* A rejected token is dropped with **compare-and-delete** (`invalidate(corp_id, app, token)`):
  when another process has already replaced it, its fresh token survives.
* Only one process runs gettoken at a time (`try_lock` / `unlock`, a lease that expires by itself
  if its holder dies); the others wait a bounded time and re-read.

Tokens and secrets are never logged.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Delete, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from siyu.core.clock import now_utc
from siyu.core.config import get_settings
from siyu.core.db import get_sessionmaker, session_scope
from siyu.corp.models import WeComToken

log = logging.getLogger(__name__)

SAFETY_MARGIN = timedelta(minutes=5)
LEASE = timedelta(seconds=30)
# How long a process trusts the token it last read from the shared table before reading it again.
RECHECK = timedelta(seconds=30)


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"CachedToken(access_token=<hidden>, expires_at={self.expires_at.isoformat()})"


class TokenStore(Protocol):
    """Where the token of each (corp, app) lives, visible to every process."""

    def get(self, corp_id: int, app: str) -> CachedToken | None:
        """The stored token, or None when there is none or it has expired."""

    def put(self, corp_id: int, app: str, token: str, expires_at: datetime) -> None:
        """Store a token obtained from gettoken (replacing any other)."""

    def invalidate(self, corp_id: int, app: str, token: str) -> None:
        """Drop the token only if it is still `token` (the one WeCom just rejected)."""

    def try_lock(self, corp_id: int, app: str) -> str | None:
        """Take the right to call gettoken: a lease id, or None when another process holds it."""

    def unlock(self, corp_id: int, app: str, lease: str) -> None:
        """Give the lease back (a no-op when it has expired or `put` already consumed it)."""


def expiry_for(expires_in: int, now: datetime) -> datetime:
    """When to stop using a token WeCom says lives `expires_in` seconds (early, by the safety margin)."""
    margin = min(SAFETY_MARGIN, timedelta(seconds=expires_in / 2))
    return now + timedelta(seconds=expires_in) - margin


def obtain_token(
    store: TokenStore,
    corp_id: int,
    app: str,
    fetch: Callable[[], tuple[str, int]],
    *,
    wait_seconds: float = 10.0,
    poll_seconds: float = 0.05,
    clock: Callable[[], datetime] = now_utc,
) -> str:
    """The current token, running `fetch` (gettoken → (token, expires_in)) only when none is stored.

    When another process is already fetching, wait up to `wait_seconds` for its result; past that,
    fetch anyway — a second gettoken is better than a stuck worker.
    """
    deadline = time.monotonic() + wait_seconds
    while (cached := store.get(corp_id, app)) is None:
        lease = store.try_lock(corp_id, app)
        if lease is not None or time.monotonic() >= deadline:
            return _fetch_and_store(store, corp_id, app, fetch, lease, clock)
        time.sleep(poll_seconds)
    return cached.access_token


def _fetch_and_store(
    store: TokenStore,
    corp_id: int,
    app: str,
    fetch: Callable[[], tuple[str, int]],
    lease: str | None,
    clock: Callable[[], datetime],
) -> str:
    try:
        # Another process may have stored a token between our read and our lock.
        cached = store.get(corp_id, app)
        if cached is not None:
            return cached.access_token
        token, expires_in = fetch()
        store.put(corp_id, app, token, expiry_for(expires_in, clock()))
        log.info("wecom token refreshed for corp %s app %s (valid %ss)", corp_id, app, expires_in)
        return token
    finally:
        if lease is not None:
            store.unlock(corp_id, app, lease)


class DatabaseTokenStore:
    """Tokens in the `wecom_token` table, each operation its own short transaction.

    The refresh lease lives in the same row: an empty `access_token` whose `expires_at` is the
    lease's end. It is taken with an insert-if-absent or a `generation` compare-and-set, which
    behave the same on SQLite and PostgreSQL and hold no lock during the gettoken request.
    """

    def __init__(
        self,
        factory: sessionmaker[Session] | None = None,
        *,
        lease: timedelta = LEASE,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._factory = factory
        self._lease = lease
        self._clock = clock
        # What this process last read, and when: a hot worker asks for the token on every call.
        self._seen: dict[tuple[int, str], tuple[CachedToken, datetime]] = {}

    def _scope(self) -> AbstractContextManager[Session]:
        return session_scope(self._factory or get_sessionmaker())

    def get(self, corp_id: int, app: str) -> CachedToken | None:
        """The shared token; re-read from the table at most every RECHECK (a token another process
        invalidated fails its next call with 40014, which invalidates it here too)."""
        now = self._clock()
        seen = self._seen.get((corp_id, app))
        if seen is not None and now < seen[1] + RECHECK and seen[0].expires_at > now:
            return seen[0]
        with self._scope() as session:
            row = session.get(WeComToken, (corp_id, app))
            if row is None or not row.access_token or row.expires_at <= now:
                self._seen.pop((corp_id, app), None)
                return None
            token = CachedToken(row.access_token, row.expires_at)
        self._seen[(corp_id, app)] = (token, now)
        return token

    def put(self, corp_id: int, app: str, token: str, expires_at: datetime) -> None:
        self._seen.pop((corp_id, app), None)
        with self._scope() as session:
            insert = _insert_for(session).values(
                corp_id=corp_id, app=app, access_token=token, expires_at=expires_at, generation=1
            )
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=["corp_id", "app"],
                    set_={
                        "access_token": token,
                        "expires_at": expires_at,
                        "generation": WeComToken.generation + 1,
                    },
                )
            )

    def invalidate(self, corp_id: int, app: str, token: str) -> None:
        self._seen.pop((corp_id, app), None)
        with self._scope() as session:
            session.execute(_delete_row(corp_id, app).where(WeComToken.access_token == token))

    def try_lock(self, corp_id: int, app: str) -> str | None:
        # RETURNING says whether a row was claimed (psycopg reports rowcount -1 here).
        # Write first, read after: on SQLite a transaction that reads before it writes can fail
        # with "database is locked" instead of waiting for the other writer.
        with self._scope() as session:
            if self._claim_new(session, corp_id, app):
                return "1"
            return self._claim_expired(session, corp_id, app)

    def _claim_new(self, session: Session, corp_id: int, app: str) -> bool:
        insert = _insert_for(session).values(
            corp_id=corp_id, app=app, access_token="", expires_at=self._clock() + self._lease, generation=1
        )
        claimed = insert.on_conflict_do_nothing(index_elements=["corp_id", "app"]).returning(WeComToken.generation)
        return session.execute(claimed).first() is not None

    def _claim_expired(self, session: Session, corp_id: int, app: str) -> str | None:
        """Turn an expired token, or a lease whose holder died, into our lease."""
        now = self._clock()
        generation = session.execute(
            update(WeComToken)
            .where(_row(corp_id, app), WeComToken.expires_at <= now)
            .values(access_token="", expires_at=now + self._lease, generation=WeComToken.generation + 1)
            .returning(WeComToken.generation)
        ).scalar()
        # None: a live token, or another process's live lease
        return None if generation is None else str(generation)

    def unlock(self, corp_id: int, app: str, lease: str) -> None:
        with self._scope() as session:
            session.execute(
                _delete_row(corp_id, app).where(WeComToken.access_token == "", WeComToken.generation == int(lease))
            )


def _insert_for(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(WeComToken)


def _row(corp_id: int, app: str) -> ColumnElement[bool]:
    return (WeComToken.corp_id == corp_id) & (WeComToken.app == app)


def _delete_row(corp_id: int, app: str) -> Delete:
    return delete(WeComToken).where(_row(corp_id, app))


# KEYS[1] is deleted only while it still holds ARGV[1]: the atomic compare-and-delete.
_COMPARE_AND_DELETE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class RedisTokenStore:
    """Tokens in Redis: one key per (corp, app) whose TTL is the token's expiry, a `SET NX PX` lease."""

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "siyu:wecom",
        lease: timedelta = LEASE,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._lease_ms = int(lease.total_seconds() * 1000)
        self._clock = clock
        self._compare_and_delete = redis.register_script(_COMPARE_AND_DELETE)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "siyu:wecom") -> RedisTokenStore:
        import redis

        return cls(redis.Redis.from_url(url, decode_responses=True), prefix=prefix)

    def _key(self, corp_id: int, app: str) -> str:
        return f"{self._prefix}:token:{corp_id}:{app}"

    def _lock_key(self, corp_id: int, app: str) -> str:
        return f"{self._prefix}:token-lock:{corp_id}:{app}"

    def get(self, corp_id: int, app: str) -> CachedToken | None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(self._key(corp_id, app))
        pipe.pttl(self._key(corp_id, app))
        value, ttl_ms = pipe.execute()
        if value is None or ttl_ms <= 0:
            return None
        token = value.decode() if isinstance(value, bytes) else str(value)
        return CachedToken(token, self._clock() + timedelta(milliseconds=ttl_ms))

    def put(self, corp_id: int, app: str, token: str, expires_at: datetime) -> None:
        ttl_ms = int((expires_at - self._clock()).total_seconds() * 1000)
        if ttl_ms <= 0:
            return
        self._redis.set(self._key(corp_id, app), token, px=ttl_ms)

    def invalidate(self, corp_id: int, app: str, token: str) -> None:
        self._compare_and_delete(keys=[self._key(corp_id, app)], args=[token])

    def try_lock(self, corp_id: int, app: str) -> str | None:
        lease = uuid.uuid4().hex
        taken = self._redis.set(self._lock_key(corp_id, app), lease, nx=True, px=self._lease_ms)
        return lease if taken else None

    def unlock(self, corp_id: int, app: str, lease: str) -> None:
        self._compare_and_delete(keys=[self._lock_key(corp_id, app)], args=[lease])


def token_store_from_settings() -> TokenStore:
    """Redis when `SIYU_REDIS_URL` is set (several machines), otherwise the database."""
    redis_url = get_settings().redis_url
    if redis_url:
        return RedisTokenStore.from_url(redis_url)
    return DatabaseTokenStore()
