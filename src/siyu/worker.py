"""The task-queue worker, and the schedule: every periodic job is declared here and nowhere else.

Huey keeps time in UTC (siyu.core.tasks); the times below are chosen for the default corp
time zone, Asia/Shanghai (UTC+8).
"""

from __future__ import annotations

import logging

from huey import crontab
from huey.consumer import Consumer

from siyu.acquisition.tasks import drain_welcomes, reconcile_all_corps, rotate_all_corps
from siyu.broadcasts.tasks import drain_broadcasts
from siyu.broadcasts.tasks import every_minute as broadcasts_every_minute
from siyu.callbacks.tasks import drain_inbox
from siyu.compliance.tasks import evaluate_all_corps
from siyu.core.db import dispose_engine, get_sessionmaker
from siyu.core.tasks import configure_queue, huey
from siyu.outbox.tasks import drain_outbox
from siyu.segments.engine import enable_background_refresh
from siyu.segments.tasks import check_all_corps, refresh_and_prune
from siyu.sync.tasks import enqueue_all_corps
from siyu.wecom.client import forget_thread_http

log = logging.getLogger(__name__)


@huey.periodic_task(crontab(hour="19", minute="17"))
def nightly_reconciliation() -> int:
    """03:17 in Shanghai: a full sync of every corp catches whatever callbacks missed."""
    return enqueue_all_corps()


@huey.periodic_task(crontab(hour="18", minute="57"))
def nightly_segment_index_check() -> dict[str, int]:
    """02:57 in Shanghai (before the nightly sync): segment indexes against SQL, logged and repaired if off."""
    return check_all_corps()


@huey.periodic_task(crontab(minute="*"))
def segment_index_upkeep() -> dict[str, int]:
    """Every minute: catch segment indexes up (a thread also does every 5 s) and prune the change log."""
    return refresh_and_prune()


@huey.periodic_task(crontab(hour="19", minute="47"))
def nightly_channel_reconciliation() -> dict[str, int]:
    """03:47 in Shanghai: channel codes against WeCom's list (orphans from lost answers, codes deleted there)."""
    return reconcile_all_corps()


@huey.periodic_task(crontab(minute="*/5"))
def drain_pending() -> dict[str, int]:
    """Every 5 minutes: re-enqueue stored callbacks and outbox rows still pending (a lost queue message)."""
    return {"callbacks": drain_inbox(), "outbox": drain_outbox(), **drain_welcomes(), **drain_broadcasts()}


@huey.periodic_task(crontab(minute="*"))
def rotate_channel_codes() -> dict[str, int]:
    """Every minute: who serves each channel code (schedules, daily caps and backups, expiry)."""
    return rotate_all_corps()


@huey.periodic_task(crontab(minute="*/5"))
def complaint_monitor() -> dict[str, int]:
    """Every 5 minutes: deletions whose message results arrived late become signals; every sender is judged
    (it also runs right after each signal is recorded)."""
    return evaluate_all_corps()


@huey.periodic_task(crontab(minute="*"))
def broadcasts_due() -> dict[str, int]:
    """Every minute: start scheduled broadcasts that are due; poll results of sent ones (backing off with age)."""
    return broadcasts_every_minute()


def load_tasks() -> None:
    """Import every module that declares tasks, so the worker knows them."""
    import siyu.acquisition.tasks
    import siyu.broadcasts.tasks
    import siyu.callbacks.tasks
    import siyu.compliance.tasks
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
    consumer = build_consumer(workers, processes=processes)
    # each process keeps the segment indexes it loads caught up (started lazily, after any fork)
    enable_background_refresh(get_sessionmaker())
    consumer.run()
