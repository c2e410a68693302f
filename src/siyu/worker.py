"""The task-queue worker, and SCHEDULE: every periodic job is listed here and nowhere else."""

from __future__ import annotations

import logging

from huey.consumer import Consumer

from siyu.core.tasks import configure_queue, huey

log = logging.getLogger(__name__)


def load_tasks() -> None:
    """Import every module that declares tasks, so the worker knows them."""
    import siyu.callbacks.tasks
    import siyu.sync.tasks  # noqa: F401


# Periodic jobs (declared with @huey.periodic_task next to the work they do):
SCHEDULE = {
    "siyu.callbacks.tasks.drain_inbox_periodically": "every 5 minutes: enqueue callbacks still pending",
    "siyu.sync.tasks.nightly_reconciliation": "03:17 daily: full sync of every corp",
}


def build_consumer(workers: int = 2) -> Consumer:
    configure_queue()
    load_tasks()
    from siyu.callbacks.tasks import drain_inbox

    drained = drain_inbox()
    if drained:
        log.info("re-enqueued %d stored callbacks left pending by a previous run", drained)
    return huey.create_consumer(workers=workers, worker_type="thread", periodic=True, check_worker_health=True)


def run(workers: int = 2) -> None:
    build_consumer(workers).run()
