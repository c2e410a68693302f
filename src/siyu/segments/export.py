"""CSV of a segment's or a snapshot's customers, a batch at a time (for the REST download and the CLI)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from pyroaring import BitMap

from siyu.core.db import session_scope
from siyu.segments import service


def csv_chunks(corp_id: int, ids: BitMap) -> Iterator[bytes]:
    """The CSV in UTF-8, one batch of customers per chunk, each read in its own short transaction,
    so memory stays flat at any size (the ids themselves are a compressed bitmap)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")  # the BOM: Excel, the usual destination, reads Chinese correctly only with it
    writer.writerow(service.CSV_COLUMNS)
    after: int | None = None
    while True:
        batch, after = service.page_of(ids, after=after, limit=service.CSV_BATCH)
        if batch:
            with session_scope() as session:
                writer.writerows(service.csv_rows(session, corp_id=corp_id, customer_ids=batch))
        yield buf.getvalue().encode("utf-8")
        buf.seek(0)
        buf.truncate()
        if after is None:
            return
