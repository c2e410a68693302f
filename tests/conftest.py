"""Shared fixtures: real SQLite and PostgreSQL databases, Redis, and the WeCom emulator.

Under CI=true a missing PostgreSQL or Redis fails the run; elsewhere those tests skip with a reason.
Each pytest process gets its own PostgreSQL schema, so parallel runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from siyu.core import db as core_db
from siyu.core.migrate import upgrade
from siyu.models import Base

pytest_plugins = ["tests.emulator_fixtures"] if (Path(__file__).parent / "emulator_fixtures.py").exists() else []

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("SIYU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SIYU_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def unavailable(what: str, why: object) -> None:
    message = f"{what} is not reachable ({why})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


@contextmanager
def fresh_pg_schema(prefix: str) -> Iterator[str]:
    """A PostgreSQL schema of its own, dropped afterwards: the URL that works in it."""
    schema = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        unavailable("PostgreSQL at " + PG_URL, exc.orig)
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    with fresh_pg_schema("t") as url:
        yield url


def insert_bare_corp(conn: sa.Connection) -> int:
    """A corp row with placeholder secrets, in plain SQL (for schemas the models may not match)."""
    conn.execute(
        sa.text(
            "INSERT INTO corp (name, wecom_corpid, agent_id, api_base_url, contact_secret_enc,"
            " callback_token_enc, callback_aes_key_enc, timezone, created_at)"
            " VALUES ('c', 'ww1', '', 'http://x', 's', 't', 'k', 'Asia/Shanghai', CURRENT_TIMESTAMP)"
        )
    )
    return int(conn.execute(sa.text("SELECT max(corp_id) FROM corp")).scalar_one())


def _migrated_engine(url: str) -> Engine:
    engine = core_db.make_engine(url)
    upgrade(url=url, engine=engine)
    return engine


@pytest.fixture(scope="session")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = _migrated_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'siyu.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_engine(pg_schema_url: str) -> Iterator[Engine]:
    engine = _migrated_engine(pg_schema_url)
    yield engine
    engine.dispose()


def _truncate(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(sa.text(f"DELETE FROM {name}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database on each backend; siyu's own engine/settings point at it."""
    eng: Engine = request.getfixturevalue(f"{'sqlite' if request.param == 'sqlite' else 'pg'}_engine")
    _truncate(eng)
    monkeypatch.setenv("SIYU_DATABASE_URL", eng.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SIYU_ENV", "test")
    monkeypatch.setenv("SIYU_SECRET_KEY", "test-secret-key-not-for-production")
    monkeypatch.setenv("SIYU_QUEUE_URL", f"sqlite:///{tmp_path / 'queue.db'}")
    core_db.reset_caches()
    core_db.use_engine(eng)
    yield eng
    core_db.reset_caches()


@pytest.fixture
def db(engine: Engine) -> sessionmaker[Session]:
    """A session factory on the test database (each backend)."""
    return core_db.get_sessionmaker()


@pytest.fixture
def session(db: sessionmaker[Session]) -> Iterator[Session]:
    with db() as s:
        yield s


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        unavailable("Redis at " + REDIS_URL, exc)
    return REDIS_URL
