"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from siyu.models import Base
from tests.conftest import insert_bare_corp


def test_migrations_match_models(engine: Engine) -> None:
    # given a database built only by the Alembic migrations
    with engine.connect() as conn:
        # when it is compared with the ORM models
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # then nothing differs
    assert diff == []


def test_every_table_carries_corp_id() -> None:
    missing = [t.name for t in Base.metadata.sorted_tables if "corp_id" not in t.columns]
    assert missing == []


def test_customer_ids_are_dense(engine: Engine) -> None:
    # given a corp
    with engine.begin() as conn:
        corp_id = insert_bare_corp(conn)
        # when customers are inserted
        for i in range(5):
            conn.execute(
                sa.text(
                    "INSERT INTO customer (corp_id, external_userid, name, type, avatar, gender, unionid,"
                    " position, corp_name, corp_full_name, created_at, updated_at)"
                    " VALUES (:c, :e, '', 1, '', 0, '', '', '', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"c": corp_id, "e": f"wm{i}"},
            )
        ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM customer ORDER BY id"))]
    # then their ids are consecutive integers
    assert ids == list(range(ids[0], ids[0] + 5))
