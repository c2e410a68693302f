"""Scan traffic for 联系我 codes: N simulated customers spread over time, some of whom delete the employee later.

`run_traffic` paces scans evenly at `per_minute` (0 = as fast as possible), picks each code by weight
with its own seeded generator (the employee a scan reaches is still chosen by the emulator's rng),
and, with probability `churn` (one value, or one per config), has the customer delete the employee
(del_follow_user) `churn_after` seconds later. `TrafficRun` runs it on a background thread for the
control plane (POST /emulator/traffic) and `siyu emulator traffic`.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from siyu.wecom.emulator.actors import Actors
from siyu.wecom.emulator.state import EmulatorError

RunStatus = Literal["running", "done", "failed", "stopped"]


@dataclass
class TrafficReport:
    """What a traffic run did so far; safe to read (`to_json`) while the run is going."""

    planned: int
    scans: int = 0
    errors: int = 0
    churned: int = 0
    per_config: Counter[str] = field(default_factory=Counter)
    per_employee: Counter[str] = field(default_factory=Counter)
    churned_per_config: Counter[str] = field(default_factory=Counter)
    scan_times: list[float] = field(default_factory=list)
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_scan(self, config_id: str, userid: str, at: float) -> None:
        with self.lock:
            self.scans += 1
            self.per_config[config_id] += 1
            self.per_employee[userid] += 1
            self.scan_times.append(at)

    def record_error(self, message: str) -> None:
        with self.lock:
            self.errors += 1
            self.last_error = message

    def record_churn(self, config_id: str) -> None:
        with self.lock:
            self.churned += 1
            self.churned_per_config[config_id] += 1

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "planned": self.planned,
                "scans": self.scans,
                "errors": self.errors,
                "last_error": self.last_error,
                "churned": self.churned,
                "per_config": dict(self.per_config),
                "per_employee": dict(self.per_employee),
                "churned_per_config": dict(self.churned_per_config),
                "scan_times": list(self.scan_times),
            }


@dataclass(order=True)
class _Churn:
    due: float
    order: int
    config_id: str = field(compare=False)
    userid: str = field(compare=False)
    external_userid: str = field(compare=False)


def _weights(config_ids: Sequence[str] | Mapping[str, float]) -> tuple[list[str], list[float]]:
    weights = dict(config_ids) if isinstance(config_ids, Mapping) else dict.fromkeys(config_ids, 1.0)
    weights = {k: float(v) for k, v in weights.items() if float(v) > 0}
    if not weights:
        raise ValueError("traffic needs at least one config_id with a positive weight")
    return list(weights), list(weights.values())


class _Traffic:
    """One run's loop state: pacing, the churn queue and the report."""

    def __init__(
        self,
        actors: Actors,
        churn: float | Mapping[str, float],
        churn_after: float,
        rng: random.Random,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        stop: threading.Event,
        report: TrafficReport,
    ) -> None:
        self.actors, self.churn, self.churn_after = actors, churn, churn_after
        self.rng, self.clock, self.sleep, self.stop, self.report = rng, clock, sleep, stop, report
        self.pending: list[_Churn] = []
        self._order = itertools.count()

    def churn_rate(self, config_id: str) -> float:
        return self.churn.get(config_id, 0.0) if isinstance(self.churn, Mapping) else self.churn

    def scan(self, config_id: str) -> None:
        try:
            result = self.actors.scan_contact_way(config_id)
        except EmulatorError as exc:
            self.report.record_error(f"{config_id}: {exc.message}")
            return
        userid, external_userid = result.data["userid"], result.data["external_userid"]
        self.report.record_scan(config_id, userid, time.time())
        if self.rng.random() < self.churn_rate(config_id):
            due = self.clock() + self.churn_after
            heapq.heappush(self.pending, _Churn(due, next(self._order), config_id, userid, external_userid))
        self.churn_due()

    def churn_due(self) -> None:
        while self.pending and self.pending[0].due <= self.clock():
            item = heapq.heappop(self.pending)
            try:
                self.actors.customer_delete_employee(item.userid, item.external_userid)
            except EmulatorError as exc:  # already gone (deleted some other way)
                self.report.record_error(f"churn {item.external_userid}: {exc.message}")
                continue
            self.report.record_churn(item.config_id)

    def wait_until(self, moment: float) -> None:
        """Sleep until `moment`, waking for churns that fall due on the way."""
        while not self.stop.is_set():
            now = self.clock()
            if now >= moment:
                return
            wake = min(moment, self.pending[0].due) if self.pending else moment
            self.sleep(max(0.0, wake - now))
            self.churn_due()


def run_traffic(
    actors: Actors,
    *,
    config_ids: Sequence[str] | Mapping[str, float],
    scans: int,
    per_minute: float,
    churn: float | Mapping[str, float] = 0.0,
    churn_after: float = 0.0,
    seed: int = 0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
    report: TrafficReport | None = None,
) -> TrafficReport:
    """Perform `scans` scans at `per_minute` (0: no pacing) over the weighted codes, then the pending churns."""
    ids, weights = _weights(config_ids)
    report = report or TrafficReport(planned=scans)
    traffic = _Traffic(actors, churn, churn_after, random.Random(seed), clock, sleep, stop or threading.Event(), report)
    interval = 60.0 / per_minute if per_minute > 0 else 0.0
    start = clock()
    for i in range(scans):
        traffic.wait_until(start + i * interval)
        if traffic.stop.is_set():
            break
        traffic.scan(traffic.rng.choices(ids, weights)[0])
    if traffic.pending:
        traffic.wait_until(max(c.due for c in traffic.pending))
        traffic.churn_due()
    return report


class TrafficRun:
    """A run on a daemon thread, for the control plane: status, live report, stop."""

    def __init__(self, run_id: int, actors: Actors, params: dict[str, Any]) -> None:
        self.id, self.params = run_id, params
        self.report = TrafficReport(planned=int(params["scans"]))
        self.status: RunStatus = "running"
        self.error = ""
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(actors,), daemon=True, name=f"emulator-traffic-{run_id}")

    def start(self) -> TrafficRun:
        self.thread.start()
        return self

    def _run(self, actors: Actors) -> None:
        try:
            run_traffic(actors, **self.params, sleep=self._sleep, stop=self.stop_event, report=self.report)
        except Exception as exc:  # reported on GET /emulator/traffic, never lost in a thread
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
            return
        self.status = "stopped" if self.stop_event.is_set() else "done"

    def _sleep(self, seconds: float) -> None:
        """Sleep that a stop request cuts short."""
        self.stop_event.wait(seconds)

    def stop(self) -> None:
        self.stop_event.set()

    def to_json(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if k != "config_ids"}
        config_ids = self.params["config_ids"]
        weights = dict(config_ids) if isinstance(config_ids, Mapping) else dict.fromkeys(config_ids, 1.0)
        return {
            "id": self.id,
            "status": self.status,
            "error": self.error,
            "params": {**params, "config_ids": weights},
            "report": self.report.to_json(),
        }
