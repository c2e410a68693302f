"""Migration 0009 renumbers existing recipient rows by chunk and gives each chunk its range — and back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from siyu.broadcasts.models import Broadcast
from siyu.core import db as core_db
from siyu.core.clock import now_utc
from siyu.core.migrate import alembic_config
from tests.conftest import fresh_pg_schema, insert_bare_corp

BEFORE = "0008"


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """An empty database of its own (not the shared test schema), to migrate step by step."""
    with ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else stack.enter_context(fresh_pg_schema("m"))
        )
        engine = core_db.make_engine(url)
        stack.callback(engine.dispose)
        yield url, engine


def _migrate(url: str, engine: Engine, revision: str, *, down: bool = False) -> None:
    from alembic import command

    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def _old_plan(engine: Engine) -> dict[str, int]:
    """A broadcast planned before 0009: two chunks (of employees 7 and 8) and an excluded customer."""
    with engine.begin() as conn:
        corp = insert_bare_corp(conn)
        values = {"corp_id": corp, "name": "old", "status": "planned", "created_at": now_utc()}
        broadcast = conn.execute(sa.insert(Broadcast.__table__).values(**values).returning(Broadcast.id)).scalar_one()
        chunks = {}
        for employee in (8, 7):  # chunk ids in this order: employee 8's chunk comes first
            chunks[employee] = conn.execute(
                sa.text(
                    "INSERT INTO broadcast_chunk (corp_id, broadcast_id, employee_id, chunk_no, size, status,"
                    " attempts, msgid, fail_list, confirm_status, error)"
                    " VALUES (:c, :b, :e, 0, 2, 'pending', 0, '', '[]', '', '')"
                    " RETURNING id"
                ),
                {"c": corp, "b": broadcast, "e": employee},
            ).scalar_one()
        rows = [(9, None, None, "excluded", "opted_out"), (5, 7, chunks[7], "pending", "")]
        rows += [(3, 7, chunks[7], "pending", ""), (4, 8, chunks[8], "pending", ""), (6, 8, chunks[8], "sent", "")]
        for customer, employee, chunk, status, reason in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO broadcast_recipient (corp_id, broadcast_id, customer_id, employee_id, chunk_id,"
                    " send_day, status, reason, updated_at) VALUES (:c, :b, :cu, :e, :ch, NULL, :s, :r, :t)"
                ),
                {"c": corp, "b": broadcast, "cu": customer, "e": employee, "ch": chunk, "s": status, "r": reason}
                | {"t": now_utc()},
            )
    return {"broadcast": broadcast, "chunk7": chunks[7], "chunk8": chunks[8]}


def test_existing_plans_are_renumbered_by_chunk_and_back(fresh: tuple[str, Engine]) -> None:
    url, engine = fresh
    # given a plan written under 0008
    _migrate(url, engine, BEFORE)
    ids = _old_plan(engine)
    # when the database is upgraded
    _migrate(url, engine, "head")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT position, customer_id, status FROM broadcast_recipient ORDER BY position")
        ).all()
        ranges = {
            employee: (first, last)
            for employee, first, last in conn.execute(
                sa.text("SELECT employee_id, first_position, last_position FROM broadcast_chunk")
            )
        }
    # then the rows are numbered chunk by chunk (in chunk order), by customer within one, the unchunked last
    assert [(p, c) for p, c, _ in rows] == [(1, 4), (2, 6), (3, 3), (4, 5), (5, 9)]
    # and each chunk's range holds exactly its rows
    assert ranges == {8: (1, 2), 7: (3, 4)}
    # when it is downgraded again
    _migrate(url, engine, BEFORE, down=True)
    with engine.connect() as conn:
        back = dict(conn.execute(sa.text("SELECT customer_id, chunk_id FROM broadcast_recipient")).all())
    # then every row points at its chunk again
    assert back == {4: ids["chunk8"], 6: ids["chunk8"], 3: ids["chunk7"], 5: ids["chunk7"], 9: None}
