"""The task-queue worker, and the schedule: every periodic job is declared here and nowhere else.

Huey keeps time in UTC (siyu.core.tasks); the times below are chosen for the default corp
time zone, Asia/Shanghai (UTC+8).
"""

from __future__ import annotations

import logging

from huey import crontab
from huey.consumer import Consumer

from siyu.acquisition.tasks import drain_welcomes, reconcile_all_corps, rotate_all_corps
from siyu.callbacks.tasks import drain_inbox
from siyu.core.db import dispose_engine
from siyu.core.tasks import configure_queue, huey
from siyu.outbox.tasks import drain_outbox
from siyu.sync.tasks import enqueue_all_corps
from siyu.wecom.client import forget_thread_http

log = logging.getLogger(__name__)


@huey.periodic_task(crontab(hour="19", minute="17"))
def nightly_reconciliation() -> int:
    """03:17 in Shanghai: a full sync of every corp catches whatever callbacks missed."""
    return enqueue_all_corps()


@huey.periodic_task(crontab(hour="19", minute="47"))
def nightly_channel_reconciliation() -> dict[str, int]:
    """03:47 in Shanghai: channel codes against WeCom's list (orphans from lost answers, codes deleted there)."""
    return reconcile_all_corps()


@huey.periodic_task(crontab(minute="*/5"))
def drain_pending() -> dict[str, int]:
    """Every 5 minutes: re-enqueue stored callbacks and outbox rows still pending (a lost queue message)."""
    return {"callbacks": drain_inbox(), "outbox": drain_outbox(), **drain_welcomes()}


@huey.periodic_task(crontab(minute="*"))
def rotate_channel_codes() -> dict[str, int]:
    """Every minute: who serves each channel code (schedules, daily caps and backups, expiry)."""
    return rotate_all_corps()


def load_tasks() -> None:
    """Import every module that declares tasks, so the worker knows them."""
    import siyu.acquisition.tasks
    import siyu.callbacks.tasks
    import siyu.outbox.tasks
    import siyu.sync.tasks  # noqa: F401
    from siyu.outbox.actions import load_senders

    load_senders()


def build_consumer(workers: int = 2, *, processes: bool = False) -> Consumer:
    """The consumer, after re-enqueueing everything a previous run left pending.

    processes=True runs each worker in its own process: Python threads share one core (the GIL),
    and callback processing is CPU-bound, so several cores need several processes (docs/benchmarks.md
    (d)). The parent's database connections and HTTP client are dropped before the fork.
    """
    configure_queue()
    load_tasks()
    drained = drain_pending.call_local()
    if any(drained.values()):
        log.info("re-enqueued work left pending by a previous run: %s", drained)
    if processes:
        dispose_engine()
        forget_thread_http()
    # An idle worker polls at most every 0.25 s (Huey's default backs off to 10 s): a WelcomeCode lives 20 s.
    return huey.create_consumer(
        workers=workers,
        worker_type="process" if processes else "thread",
        periodic=True,
        check_worker_health=True,
        max_delay=0.25,
    )


def run(workers: int = 2, *, processes: bool = False) -> None:
    build_consumer(workers, processes=processes).run()
