"""Customer CSV exports on the task queue: keyset batches, progress in the database, bounded memory."""

from __future__ import annotations

import csv
import logging
import secrets
from collections.abc import Iterable
from pathlib import Path

from siyu.accounts.access import Actor, actor_for
from siyu.accounts.models import ConsoleUser
from siyu.contacts import service
from siyu.contacts.models import CustomerExport, ExportStatus
from siyu.contacts.schemas import CustomerFilters, CustomerRow
from siyu.core.clock import now_utc
from siyu.core.config import get_settings
from siyu.core.db import session_scope
from siyu.core.tasks import huey

log = logging.getLogger(__name__)
BATCH = 1000
COLUMNS = ("id", "external_userid", "name", "type", "added_at", "status", "follows", "mobiles", "tags")


@huey.task(retries=2, retry_delay=10)
def export_customers(export_id: int) -> str:
    return run_export(export_id)


def export_path(file_name: str) -> Path:
    return get_settings().resolved_export_dir() / file_name


def run_export(export_id: int) -> str:
    """Write the export's CSV; idempotent: a finished export is left alone, a restarted one starts over."""
    started = _start(export_id)
    if started is None:
        return "gone"
    actor, filters, path = started
    try:
        _write(export_id, actor, filters, path)
    except Exception as exc:
        log.exception("customer export %s failed", export_id)
        path.unlink(missing_ok=True)
        with session_scope() as session:
            export = session.get(CustomerExport, export_id)
            if export is not None:
                export.status, export.error, export.finished_at = ExportStatus.FAILED, str(exc)[:2000], now_utc()
        return ExportStatus.FAILED
    return ExportStatus.DONE


def _start(export_id: int) -> tuple[Actor, CustomerFilters, Path] | None:
    with session_scope() as session:
        export = session.get(CustomerExport, export_id)
        user = session.get(ConsoleUser, export.user_id) if export is not None else None
        if export is None or user is None or export.status in (ExportStatus.DONE, ExportStatus.FAILED):
            return None
        actor = actor_for(session, user)
        filters = CustomerFilters.model_validate(export.filters)
        export.status, export.done, export.error = ExportStatus.RUNNING, 0, ""
        export.total = service.count_(session, actor=actor, filters=filters)
        export.file_name = export.file_name or f"customers-{export.id}-{secrets.token_hex(8)}.csv"
        path = export_path(export.file_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return actor, filters, path


def _write(export_id: int, actor: Actor, filters: CustomerFilters, path: Path) -> None:
    partial = path.with_suffix(".part")
    after: str | None = None
    # utf-8-sig: Excel, the usual destination, reads Chinese correctly only with the BOM.
    with partial.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        while True:
            with session_scope() as session:
                rows, after = service.page_rows(session, actor=actor, filters=filters, after=after, limit=BATCH)
                writer.writerows(csv_rows(rows))
                export = session.get(CustomerExport, export_id)
                if export is None:
                    raise RuntimeError("the export was deleted while it ran")
                export.done += len(rows)
                if after is None:
                    fh.flush()
                    partial.replace(path)
                    export.status, export.finished_at = ExportStatus.DONE, now_utc()
                    return


def csv_rows(rows: Iterable[CustomerRow]) -> Iterable[list[str | int]]:
    """One line per customer. Mobiles stay masked as on screen: a CSV leaves siyu's access control
    (mailed, copied to laptops), so it must not become a bulk copy of customers' phone numbers."""
    for row in rows:
        yield [
            row.id,
            row.external_userid,
            row.name,
            row.type,
            row.added_at.isoformat(),
            row.status,
            "; ".join(f"{f.employee_name}:{f.remark}" if f.remark else f.employee_name for f in row.follows),
            "; ".join(m for f in row.follows for m in f.remark_mobiles),
            "; ".join(t.name for t in row.tags),
        ]
