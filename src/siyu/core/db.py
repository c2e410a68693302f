"""Engine, sessions and the transaction boundary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, event
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from siyu.core.config import get_settings

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so it autoincrements) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use siyu.core.clock")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


_state: dict[str, Any] = {}
# Called whenever siyu is pointed at another database: caches of its rows (the segment indexes) forget them.
_on_switch: list[Callable[[], None]] = []


def on_database_switch(forget: Callable[[], None]) -> None:
    """Register a cache to clear when `use_engine` / `reset_caches` point siyu at another database."""
    _on_switch.append(forget)


def _switched() -> None:
    for forget in _on_switch:
        forget()


def get_engine() -> Engine:
    engine = _state.get("engine")
    if engine is None:
        engine = _state["engine"] = make_engine(get_settings().database_url)
    return engine


def get_sessionmaker() -> sessionmaker[Session]:
    factory = _state.get("factory")
    if factory is None:
        factory = _state["factory"] = sessionmaker(bind=get_engine(), expire_on_commit=False)
    return factory


def use_engine(engine: Engine) -> None:
    """Point siyu at an existing engine (tests, the demo); the caller owns and disposes it."""
    _state.clear()
    _state.update(engine=engine, borrowed=True)
    _switched()


@contextmanager
def session_scope(factory: sessionmaker[Session] | None = None) -> Iterator[Session]:
    """The transaction boundary: commit on success, roll back on error. Services only flush()."""
    session = (factory or get_sessionmaker())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engine() -> None:
    """Close the pooled connections (before a fork: children must open their own); the engine stays."""
    engine = _state.get("engine")
    if engine is not None:
        engine.dispose(close=not _state.get("borrowed"))


def reset_caches() -> None:
    """Forget the cached settings, engine and sessionmaker (tests, the demo switching databases)."""
    engine = _state.get("engine")
    if engine is not None and not _state.get("borrowed"):
        engine.dispose()
    _state.clear()
    get_settings.cache_clear()
    _switched()
