"""The shared access-token stores: the same contract on SQLite, PostgreSQL and Redis.

Two store instances on one backend stand for two processes; the contract is what lets them share
one token without throwing away each other's refreshes or stampeding gettoken.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from siyu.core import db as core_db
from siyu.core.config import get_settings
from siyu.wecom.auth import (
    SAFETY_MARGIN,
    CachedToken,
    DatabaseTokenStore,
    RedisTokenStore,
    TokenStore,
    obtain_token,
    token_store_from_settings,
)
from tests.factories import make_corp

APP = "contact"
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


StoreFactory = Callable[[FakeClock], TokenStore]


class StoreContract:
    """Every TokenStore behaves like this; subclasses provide `make_store` and `corp_id`."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def store(self, make_store: StoreFactory, clock: FakeClock) -> TokenStore:
        return make_store(clock)

    def test_a_stored_token_is_read_back_by_another_process(
        self, make_store: StoreFactory, clock: FakeClock, corp_id: int
    ) -> None:
        # given
        writer, reader = make_store(clock), make_store(clock)
        # when
        writer.put(corp_id, APP, "tok-1", T0 + timedelta(hours=2))
        # then
        cached = reader.get(corp_id, APP)
        assert cached is not None and cached.access_token == "tok-1"
        assert abs(cached.expires_at - (T0 + timedelta(hours=2))) < timedelta(seconds=2)

    def test_nothing_stored_reads_none(self, store: TokenStore, corp_id: int) -> None:
        assert store.get(corp_id, APP) is None

    def test_an_expired_token_reads_none(self, store: TokenStore, clock: FakeClock, corp_id: int) -> None:
        # given
        store.put(corp_id, APP, "tok-1", T0 + timedelta(seconds=60))
        # when
        clock.advance(seconds=61)
        # then
        assert store.get(corp_id, APP) is None

    def test_put_replaces_the_token(self, store: TokenStore, corp_id: int) -> None:
        store.put(corp_id, APP, "tok-1", T0 + timedelta(hours=2))
        store.put(corp_id, APP, "tok-2", T0 + timedelta(hours=2))
        assert _token(store, corp_id) == "tok-2"

    def test_invalidate_drops_the_token_that_failed(self, store: TokenStore, corp_id: int) -> None:
        store.put(corp_id, APP, "tok-1", T0 + timedelta(hours=2))
        store.invalidate(corp_id, APP, "tok-1")
        assert store.get(corp_id, APP) is None

    def test_invalidate_keeps_a_token_another_process_already_refreshed(self, store: TokenStore, corp_id: int) -> None:
        # given: tok-1 failed here while another process had already stored tok-2
        store.put(corp_id, APP, "tok-2", T0 + timedelta(hours=2))
        # when
        store.invalidate(corp_id, APP, "tok-1")
        # then
        assert _token(store, corp_id) == "tok-2"

    def test_apps_have_separate_tokens(self, store: TokenStore, corp_id: int) -> None:
        store.put(corp_id, "contact", "tok-contact", T0 + timedelta(hours=2))
        store.put(corp_id, "agent", "tok-agent", T0 + timedelta(hours=2))
        store.invalidate(corp_id, "contact", "tok-contact")
        assert store.get(corp_id, "contact") is None
        assert _token(store, corp_id, "agent") == "tok-agent"

    def test_only_one_process_holds_the_refresh_lease(
        self, make_store: StoreFactory, clock: FakeClock, corp_id: int
    ) -> None:
        # given
        first, second = make_store(clock), make_store(clock)
        # when
        lease = first.try_lock(corp_id, APP)
        # then
        assert lease is not None
        assert second.try_lock(corp_id, APP) is None
        first.unlock(corp_id, APP, lease)
        assert second.try_lock(corp_id, APP) is not None

    def test_unlock_after_put_keeps_the_new_token(self, store: TokenStore, corp_id: int) -> None:
        # given
        lease = store.try_lock(corp_id, APP)
        assert lease is not None
        store.put(corp_id, APP, "tok-1", T0 + timedelta(hours=2))
        # when
        store.unlock(corp_id, APP, lease)
        # then
        assert _token(store, corp_id) == "tok-1"

    def test_unlock_with_a_stale_lease_does_not_release_the_current_holder(
        self, make_store: StoreFactory, clock: FakeClock, corp_id: int
    ) -> None:
        # given
        first, second = make_store(clock), make_store(clock)
        stale = first.try_lock(corp_id, APP)
        assert stale is not None
        self.expire_lease(clock)
        current = second.try_lock(corp_id, APP)
        assert current is not None
        # when
        first.unlock(corp_id, APP, stale)
        # then
        assert first.try_lock(corp_id, APP) is None

    def test_the_lease_of_a_dead_holder_expires(self, make_store: StoreFactory, clock: FakeClock, corp_id: int) -> None:
        # given
        first, second = make_store(clock), make_store(clock)
        assert first.try_lock(corp_id, APP) is not None
        # when
        self.expire_lease(clock)
        # then
        assert second.try_lock(corp_id, APP) is not None

    def test_concurrent_refresh_calls_gettoken_once(self, make_store: StoreFactory, corp_id: int) -> None:
        # given: eight "processes", each with its own store, all finding no token
        calls: list[int] = []

        def gettoken() -> tuple[str, int]:
            calls.append(1)
            time.sleep(0.1)  # shorter than the Redis tests' 300 ms lease
            return "tok-shared", 7200

        stores = [make_store(FakeClock(datetime.now(UTC))) for _ in range(8)]
        barrier = threading.Barrier(len(stores))
        results: list[str] = []

        def worker(store: TokenStore) -> None:
            barrier.wait()
            results.append(obtain_token(store, corp_id, APP, gettoken, poll_seconds=0.01))

        # when
        threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        # then
        assert len(calls) == 1
        assert results == ["tok-shared"] * len(stores)

    def expire_lease(self, clock: FakeClock) -> None:
        clock.advance(minutes=5)


def _token(store: TokenStore, corp_id: int, app: str = APP) -> str | None:
    cached = store.get(corp_id, app)
    return cached.access_token if cached else None


class TestDatabaseTokenStore(StoreContract):
    @pytest.fixture
    def corp_id(self, db: sessionmaker[Session]) -> int:
        return make_corp(db).corp_id

    @pytest.fixture
    def make_store(self, db: sessionmaker[Session]) -> StoreFactory:
        return lambda clock: DatabaseTokenStore(db, clock=clock)

    def test_uses_siyu_sessionmaker_by_default(self, db: sessionmaker[Session], corp_id: int) -> None:
        # given: no factory passed: the store follows siyu.core.db's engine
        store = DatabaseTokenStore()
        # when
        store.put(corp_id, APP, "tok-1", datetime.now(UTC) + timedelta(hours=1))
        # then
        assert _token(DatabaseTokenStore(core_db.get_sessionmaker()), corp_id) == "tok-1"


class TestRedisTokenStore(StoreContract):
    @pytest.fixture
    def prefix(self, redis_url: str) -> Iterator[str]:
        prefix = f"test:{uuid.uuid4().hex}"
        yield prefix
        client = redis_lib.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)

    @pytest.fixture
    def corp_id(self) -> int:
        return 7

    @pytest.fixture
    def make_store(self, redis_url: str, prefix: str) -> StoreFactory:
        client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
        return lambda clock: RedisTokenStore(client, prefix=prefix, lease=timedelta(milliseconds=300), clock=clock)

    def expire_lease(self, clock: FakeClock) -> None:
        time.sleep(0.4)  # Redis expires the lease key on its own clock

    def test_an_expired_token_reads_none(self, store: TokenStore, clock: FakeClock, corp_id: int) -> None:
        # Redis's TTL, not our clock, ends the token: give it a short real lifetime.
        store.put(corp_id, APP, "tok-1", clock() + timedelta(milliseconds=200))
        time.sleep(0.3)
        assert store.get(corp_id, APP) is None

    def test_the_key_expires_with_the_token(self, store: TokenStore, redis_url: str, prefix: str) -> None:
        store.put(7, APP, "tok-1", T0 + timedelta(hours=2))
        ttl = redis_lib.Redis.from_url(redis_url).pttl(f"{prefix}:token:7:{APP}")
        assert 7_100_000 < ttl <= 7_200_000

    def test_bytes_clients_work_too(self, redis_url: str, prefix: str) -> None:
        store = RedisTokenStore(redis_lib.Redis.from_url(redis_url), prefix=prefix)
        store.put(7, APP, "tok-1", datetime.now(UTC) + timedelta(hours=1))
        assert _token(store, 7) == "tok-1"
        store.invalidate(7, APP, "tok-1")
        assert store.get(7, APP) is None


def test_a_fetched_token_expires_early_by_the_safety_margin(db: sessionmaker[Session]) -> None:
    # given
    corp_id, clock = make_corp(db).corp_id, FakeClock(datetime.now(UTC))
    store = DatabaseTokenStore(db, clock=clock)
    # when
    token = obtain_token(store, corp_id, APP, lambda: ("tok-1", 7200), clock=clock)
    # then
    cached = store.get(corp_id, APP)
    assert token == "tok-1" and cached is not None
    assert cached.expires_at == clock.now + timedelta(seconds=7200) - SAFETY_MARGIN


def test_a_stuck_lease_holder_delays_others_only_for_the_bounded_wait(db: sessionmaker[Session]) -> None:
    # given: another process took the lease and hangs
    corp_id = make_corp(db).corp_id
    store = DatabaseTokenStore(db)
    assert store.try_lock(corp_id, APP) is not None
    # when
    started = time.monotonic()
    token = obtain_token(store, corp_id, APP, lambda: ("tok-1", 7200), wait_seconds=0.3, poll_seconds=0.02)
    # then
    assert token == "tok-1"
    assert 0.25 < time.monotonic() - started < 5


def test_tokens_stay_out_of_repr() -> None:
    assert "secret-token" not in repr(CachedToken("secret-token", T0))


@pytest.mark.parametrize(
    ("configured", "expected"), [("redis://127.0.0.1:6379/15", RedisTokenStore), (None, DatabaseTokenStore)]
)
def test_settings_choose_the_store(
    monkeypatch: pytest.MonkeyPatch, configured: str | None, expected: type[TokenStore]
) -> None:
    # given
    if configured:
        monkeypatch.setenv("SIYU_REDIS_URL", configured)
    else:
        monkeypatch.delenv("SIYU_REDIS_URL", raising=False)
    get_settings.cache_clear()
    # when
    store = token_store_from_settings()
    # then
    assert isinstance(store, expected)
    get_settings.cache_clear()
