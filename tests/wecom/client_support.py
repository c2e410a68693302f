"""Shared by the WeCom client tests (no tests here): an in-memory token store, a transport that counts
requests per path, and the real client pointed at an emulator."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import datetime
from typing import Any

import httpx

from siyu.core.clock import now_utc
from siyu.wecom.auth import CachedToken
from siyu.wecom.client import WeComClient
from siyu.wecom.emulator.server import RunningEmulator
from siyu.wecom.ratelimit import RateLimiter


class MemoryTokenStore:
    """The TokenStore protocol in a dict: these tests are about the calls, not token sharing."""

    def __init__(self) -> None:
        self.tokens: dict[tuple[int, str], CachedToken] = {}

    def get(self, corp_id: int, app: str) -> CachedToken | None:
        cached = self.tokens.get((corp_id, app))
        return cached if cached and cached.expires_at > now_utc() else None

    def put(self, corp_id: int, app: str, token: str, expires_at: datetime) -> None:
        self.tokens[(corp_id, app)] = CachedToken(token, expires_at)

    def invalidate(self, corp_id: int, app: str, token: str) -> None:
        if (cached := self.tokens.get((corp_id, app))) and cached.access_token == token:
            del self.tokens[(corp_id, app)]

    def try_lock(self, corp_id: int, app: str) -> str | None:
        return "lease"

    def unlock(self, corp_id: int, app: str, lease: str) -> None:
        return None


class CountingTransport(httpx.BaseTransport):
    """Real HTTP, counting requests per path: how the tests see every gettoken."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.paths: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.paths[request.url.path] += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def emulator_client(emu: RunningEmulator, transport: httpx.BaseTransport, **options: Any) -> WeComClient:
    """The real client over HTTP against the emulator's corp: tokens in memory, no sleeping between retries."""
    return WeComClient(
        corp_id=1,
        corpid=emu.corp.corpid,
        secret=emu.corp.secret,
        token_store=MemoryTokenStore(),
        limiter=RateLimiter(),
        base_url=emu.base_url,
        sleep=lambda seconds: None,
        rng=random.Random(1),
        transport=transport,
        **options,
    )
