"""What stands in front of every emulated API call: tokens, rate limits and injected errors.

Each of these is a test seam as well as a behaviour: tokens can be expired or revoked early, the
rate limits can be lowered until 45009 is easy to reach, and any errcode can be queued for the next
N calls to a path so a client's retry logic can be exercised deterministically.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from siyu.wecom.emulator.state import EmulatorError

TOKEN_TTL = 7200
DEFAULT_PER_MINUTE = 10_000
DEFAULT_PER_HOUR = 150_000


def normalize_path(path: str) -> str:
    """'/cgi-bin/externalcontact/list' and 'externalcontact/list' name the same API."""
    return path.strip("/").removeprefix("cgi-bin/")


@dataclass(slots=True)
class TokenInfo:
    corpid: str
    expires_at: float
    revoked: bool = False


class TokenStore:
    """Opaque access tokens: the same one while valid (as WeCom), 42001 once expired, 40014 once revoked."""

    def __init__(self, clock: Callable[[], float] = time.time, ttl: int = TOKEN_TTL) -> None:
        self.clock, self.ttl = clock, ttl
        self._tokens: dict[str, TokenInfo] = {}
        self._current: dict[str, str] = {}
        self._lock = threading.Lock()

    def issue(self, corpid: str) -> tuple[str, int]:
        """The corp's valid token and its remaining lifetime, minting a new one when needed."""
        with self._lock:
            now = self.clock()
            token = self._current.get(corpid)
            info = self._tokens.get(token) if token else None
            if info is None or info.revoked or info.expires_at <= now:
                token = secrets.token_urlsafe(96)
                info = TokenInfo(corpid, now + self.ttl)
                self._tokens[token], self._current[corpid] = info, token
            return token, int(info.expires_at - now)

    def check(self, token: str | None) -> str:
        """The corpid a token belongs to, or the errcode WeCom gives for it."""
        if not token:
            raise EmulatorError(41001, "access_token missing")
        info = self._tokens.get(token)
        if info is None or info.revoked:
            raise EmulatorError(40014, f"invalid access_token: {token[:16]}…")
        if info.expires_at <= self.clock():
            raise EmulatorError(42001, "access_token expired")
        return info.corpid

    def expire(self, token: str | None = None) -> int:
        """Make a token (default: every token) expired now; returns how many changed."""
        return self._update(token, lambda info: setattr(info, "expires_at", self.clock() - 1))

    def revoke(self, token: str | None = None) -> int:
        """Revoke a token (default: every token), as WeCom may do before expiry."""
        return self._update(token, lambda info: setattr(info, "revoked", True))

    def _update(self, token: str | None, change: Callable[[TokenInfo], None]) -> int:
        with self._lock:
            infos = [self._tokens[token]] if token in self._tokens else [] if token else list(self._tokens.values())
            for info in infos:
                change(info)
            return len(infos)


class TokenBucket:
    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, capacity: int, window_seconds: float, now: float) -> None:
        self.capacity = capacity
        self.rate = capacity / window_seconds
        self.level = float(capacity)
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now


class RateLimiter:
    """Per (corp, path) token buckets for the minute and the hour limits (reference §5 defaults)."""

    def __init__(
        self,
        per_minute: int | None = None,
        per_hour: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.configure(per_minute, per_hour)

    def configure(self, per_minute: int | None = None, per_hour: int | None = None) -> None:
        """Set the limits (None → WeCom's default) and start every bucket full."""
        self.per_minute = per_minute or DEFAULT_PER_MINUTE
        self.per_hour = per_hour or DEFAULT_PER_HOUR
        self._buckets: dict[tuple[str, str], tuple[TokenBucket, TokenBucket]] = {}
        self._lock = threading.Lock()

    def allow(self, corpid: str, path: str) -> bool:
        with self._lock:
            now = self.clock()
            buckets = self._buckets.get((corpid, path))
            if buckets is None:
                buckets = (TokenBucket(self.per_minute, 60, now), TokenBucket(self.per_hour, 3600, now))
                self._buckets[(corpid, path)] = buckets
            for bucket in buckets:
                bucket.refill(now)
            if any(bucket.level < 1 for bucket in buckets):
                return False
            for bucket in buckets:
                bucket.level -= 1
            return True


@dataclass(slots=True)
class InjectedError:
    errcode: int
    errmsg: str | None
    remaining: int


class ErrorInjector:
    """Queue an errcode for the next N calls to a path (e.g. -1 system busy, 45033, 40014)."""

    def __init__(self) -> None:
        self._queue: dict[str, deque[InjectedError]] = {}
        self._lock = threading.Lock()

    def inject(self, path: str, errcode: int, times: int = 1, errmsg: str | None = None) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._queue.setdefault(normalize_path(path), deque()).append(InjectedError(errcode, errmsg, times))

    def take(self, path: str) -> InjectedError | None:
        with self._lock:
            queue = self._queue.get(path)
            if not queue:
                return None
            head = queue[0]
            head.remaining -= 1
            if head.remaining <= 0:
                queue.popleft()
            return head

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def pending(self) -> dict[str, list[tuple[int, int]]]:
        with self._lock:
            return {p: [(e.errcode, e.remaining) for e in q] for p, q in self._queue.items() if q}
