"""Staying under WeCom's frequency limits: a client-side limiter and the back-off policy.

WeCom counts calls per corp per API (10,000/min and 150,000/hour since 2023/08/28) and, once a
limit is hit, blocks that API for as long as the window (60 s, 60 min). Being blocked is far
costlier than waiting a little, so every call first asks `RateLimiter` for a slot.

The limiter is **in-process**: each worker counts only its own calls. What guards the corp across
processes and machines is the server's answer: 45009 / 45033 / -1 make the client back off with
exponential delays and full jitter (`Backoff`), which spreads the retries of many processes apart
instead of letting them hit WeCom in lock-step.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limit:
    """At most `calls` per sliding window of `seconds`."""

    calls: int
    seconds: float


WECOM_DEFAULT_LIMITS: tuple[Limit, ...] = (Limit(10_000, 60.0), Limit(150_000, 3600.0))

_SLOTS = 60


class _Window:
    """Counts calls over a sliding window, in `_SLOTS` sub-intervals.

    An exact log of 150,000 timestamps per API would cost megabytes; counting per slot is
    constant-size. Summing `_SLOTS + 1` slots covers at least the whole window, so the
    approximation only ever errs on the side of waiting.
    """

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self.slot_seconds = limit.seconds / _SLOTS
        self.counts: dict[int, int] = {}

    def wait_for(self, now: float) -> float:
        """Seconds until one more call fits (0.0 when it fits now)."""
        current = math.floor(now / self.slot_seconds)
        self.counts = {slot: n for slot, n in self.counts.items() if slot >= current - _SLOTS}
        if sum(self.counts.values()) < self.limit.calls:
            return 0.0
        oldest = min(self.counts)
        return max((oldest + _SLOTS + 1) * self.slot_seconds - now, self.slot_seconds / 10)

    def record(self, now: float) -> None:
        current = math.floor(now / self.slot_seconds)
        self.counts[current] = self.counts.get(current, 0) + 1


class RateLimiter:
    """Per (corp, API path) call budget for this process; thread-safe."""

    def __init__(
        self, limits: Sequence[Limit] = WECOM_DEFAULT_LIMITS, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = tuple(limits)
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[int, str], list[_Window]] = {}

    def try_acquire(self, corp_id: int, path: str) -> float:
        """Take a slot and return 0.0, or take nothing and return the seconds to wait before asking again."""
        with self._lock:
            now = self._clock()
            windows = self._windows.setdefault((corp_id, path), [_Window(limit) for limit in self._limits])
            wait = max(window.wait_for(now) for window in windows)
            if wait == 0.0:
                for window in windows:
                    window.record(now)
            return wait


@dataclass
class Backoff:
    """Exponential back-off with full jitter, bounded by a total time budget for one call.

    Full jitter (a delay drawn uniformly from [0, ceiling]) is what keeps many processes that were
    limited at the same moment from retrying at the same moment. The budget counts the larger of
    the time slept and the wall time elapsed, so an injected no-op `sleep` still runs it down.
    """

    budget_seconds: float
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    base_seconds: float = 0.5
    cap_seconds: float = 20.0
    clock: Callable[[], float] = time.monotonic
    attempt: int = 0
    slept: float = 0.0
    started: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def ceiling(self, attempt: int) -> float:
        """The largest delay the `attempt`-th back-off (0-based) may draw."""
        return min(self.cap_seconds, self.base_seconds * 2.0**attempt)

    def remaining(self) -> float:
        return self.budget_seconds - max(self.slept, self.clock() - self.started)

    def next_delay(self) -> float:
        delay = self.rng.uniform(0.0, self.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def pause(self, seconds: float) -> bool:
        """Sleep `seconds` (cut to what is left of the budget); False when the budget is spent."""
        remaining = self.remaining()
        if remaining <= 0:
            return False
        delay = min(seconds, remaining)
        self.sleep(delay)
        self.slept += delay
        return True
