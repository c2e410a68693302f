"""WeComClient over real HTTP against the emulator, with tokens in the real shared stores.

What is patched: only `sleep` (recorded, so back-off is visible and instant) and, for the
HTTP-failure cases the emulator cannot produce, the httpx transport.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from siyu.corp.models import Corp
from siyu.wecom.auth import DatabaseTokenStore, RedisTokenStore, TokenStore
from siyu.wecom.client import WeComClient, client_for_corp
from siyu.wecom.emulator import api as emulator_api
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from siyu.wecom.errors import (
    ApiError,
    CredentialError,
    InvalidRequestError,
    NotFoundError,
    PermissionError_,
    RateLimitError,
    TokenError,
    TransportError,
)
from siyu.wecom.ratelimit import Limit, RateLimiter
from tests.factories import make_corp
from tests.wecom.client_support import CountingTransport

GETTOKEN = "/cgi-bin/gettoken"
FOLLOW_USERS = "externalcontact/get_follow_user_list"


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    """A small corp (fast to build), fresh per test so tokens, limits and injections never leak."""
    with start_emulator(employees=6, customers=40, seed=7) as running:
        yield running


@dataclass
class SleepRecorder:
    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class CeilingRandom(random.Random):
    """Full jitter's worst case: every draw is the ceiling, so the growth is exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass
class Harness:
    emu: RunningEmulator
    corp_id: int
    db: sessionmaker[Session]
    transport: CountingTransport = field(default_factory=CountingTransport)
    sleep: SleepRecorder = field(default_factory=SleepRecorder)

    def client(self, store: TokenStore | None = None, **overrides: Any) -> WeComClient:
        options: dict[str, Any] = {
            "corp_id": self.corp_id,
            "corpid": self.emu.corp.corpid,
            "secret": self.emu.corp.secret,
            "token_store": store or DatabaseTokenStore(self.db),
            "limiter": RateLimiter(),
            "base_url": self.emu.base_url,
            "retry_budget_seconds": 30.0,
            "sleep": self.sleep,
            "rng": random.Random(1),
            "transport": self.transport,
        }
        return WeComClient(**(options | overrides))

    def calls(self, path: str) -> int:
        return self.transport.paths["/cgi-bin/" + path.removeprefix("/cgi-bin/")]


@pytest.fixture
def h(emu: RunningEmulator, db: sessionmaker[Session]) -> Iterator[Harness]:
    corp = make_corp(db, wecom_corpid=emu.corp.corpid, secret=emu.corp.secret, api_base_url=emu.base_url)
    harness = Harness(emu, corp.corp_id, db)
    yield harness
    harness.transport.close()


# --- tokens -----------------------------------------------------------------------------------


def test_two_processes_share_one_token_through_the_database(h: Harness) -> None:
    # given: two clients with their own store instances on one database
    first, second = h.client(DatabaseTokenStore(h.db)), h.client(DatabaseTokenStore(h.db))
    # when
    first.get_follow_user_list()
    second.get_follow_user_list()
    # then
    assert h.calls(GETTOKEN) == 1
    assert h.calls(FOLLOW_USERS) == 2


def test_two_processes_share_one_token_through_redis(h: Harness, redis_url: str) -> None:
    # given
    prefix = f"test:{uuid.uuid4().hex}"
    redis = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    first = h.client(RedisTokenStore(redis, prefix=prefix))
    second = h.client(RedisTokenStore(redis_lib.Redis.from_url(redis_url), prefix=prefix))
    # when
    first.get_follow_user_list()
    second.get_follow_user_list()
    # then
    assert h.calls(GETTOKEN) == 1
    redis.delete(*redis.keys(f"{prefix}:*"))


@pytest.mark.parametrize("kill", ["expire_tokens", "revoke_tokens"])
def test_an_expired_or_revoked_token_is_refreshed_once_and_the_call_succeeds(h: Harness, kill: str) -> None:
    # given
    client = h.client()
    old = client.get_token()
    getattr(h.emu, kill)()
    # when
    users = client.get_follow_user_list()
    # then
    assert users == h.emu.state.follow_user_ids()
    assert h.calls(GETTOKEN) == 2
    assert h.calls(FOLLOW_USERS) == 2
    assert client.get_token() != old


@pytest.mark.parametrize("errcode", [40014, 42001, 41001])
def test_a_token_that_stays_bad_raises_after_exactly_one_retry(h: Harness, errcode: int) -> None:
    # given
    client = h.client()
    h.emu.inject_error(FOLLOW_USERS, errcode, times=2)
    # when
    with pytest.raises(TokenError) as raised:
        client.get_follow_user_list()
    # then
    assert raised.value.errcode == errcode
    assert h.calls(FOLLOW_USERS) == 2
    assert h.calls(GETTOKEN) == 2


def test_another_process_refresh_is_not_thrown_away(h: Harness) -> None:
    # given: both processes hold the same token, which WeCom then revokes
    store = DatabaseTokenStore(h.db)
    first, second = h.client(store), h.client(DatabaseTokenStore(h.db))
    first.get_token()
    h.emu.revoke_tokens()
    # when: the first refreshes, and the second fails with the old token afterwards
    first.get_follow_user_list()
    second.get_follow_user_list()
    # then: the second found the first's new token instead of fetching again
    assert h.calls(GETTOKEN) == 2


def test_concurrent_refresh_from_threads_calls_gettoken_once(h: Harness) -> None:
    # given
    clients = [h.client(DatabaseTokenStore(h.db)) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    errors: list[BaseException] = []

    def work(client: WeComClient) -> None:
        barrier.wait()
        try:
            client.get_follow_user_list()
        except BaseException as exc:  # surfaced below: a thread must not swallow it
            errors.append(exc)

    # when
    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # then
    assert errors == []
    assert h.calls(GETTOKEN) == 1
    assert h.calls(FOLLOW_USERS) == len(clients)


@pytest.mark.parametrize(
    ("corpid", "secret", "errcode"),
    [("ww000000000000000000", None, 40013), (None, "wrong-secret", 40001)],
)
def test_bad_credentials_raise_credential_error(
    h: Harness, corpid: str | None, secret: str | None, errcode: int
) -> None:
    # given
    client = h.client(corpid=corpid or h.emu.corp.corpid, secret=secret or h.emu.corp.secret)
    # when
    with pytest.raises(CredentialError) as raised:
        client.get_follow_user_list()
    # then
    assert raised.value.errcode == errcode
    assert h.calls(GETTOKEN) == 1


# --- rate limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("errcode", [45009, 45033, -1])
def test_rate_errcodes_back_off_with_jitter_and_never_refetch_the_token(h: Harness, errcode: int) -> None:
    # given
    client = h.client()
    h.emu.inject_error(FOLLOW_USERS, errcode, times=4)
    # when
    users = client.get_follow_user_list()
    # then
    assert users == h.emu.state.follow_user_ids()
    assert h.calls(GETTOKEN) == 1
    assert h.calls(FOLLOW_USERS) == 5
    ceilings = [0.5, 1.0, 2.0, 4.0]
    assert len(h.sleep.delays) == 4
    assert all(0 <= delay <= ceiling for delay, ceiling in zip(h.sleep.delays, ceilings, strict=True))
    assert len(set(h.sleep.delays)) == 4  # jittered, not a fixed schedule


def test_back_off_grows_exponentially_up_to_the_cap(h: Harness) -> None:
    # given
    client = h.client(rng=CeilingRandom(), retry_budget_seconds=1000)
    h.emu.inject_error(FOLLOW_USERS, 45009, times=8)
    # when
    client.get_follow_user_list()
    # then
    assert h.sleep.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]


@pytest.mark.parametrize("errcode", [45009, 45033, -1])
def test_an_exhausted_budget_raises_rate_limit_error(h: Harness, errcode: int) -> None:
    # given
    client = h.client(retry_budget_seconds=5.0, rng=CeilingRandom())
    h.emu.inject_error(FOLLOW_USERS, errcode, times=100)
    # when
    with pytest.raises(RateLimitError) as raised:
        client.get_follow_user_list()
    # then
    assert raised.value.errcode == errcode
    assert sum(h.sleep.delays) == pytest.approx(5.0)
    assert h.calls(GETTOKEN) == 1


def test_the_emulator_rate_limit_is_backed_off_without_new_tokens(h: Harness) -> None:
    # given: WeCom allows 3 calls a minute and the client may wait 10 s
    client = h.client(retry_budget_seconds=10.0)
    client.get_token()
    h.emu.set_rate_limit(per_minute=3)
    for _ in range(3):
        client.get_follow_user_list()
    # when
    with pytest.raises(RateLimitError):
        client.get_follow_user_list()
    # then
    assert h.sleep.delays and sum(h.sleep.delays) <= 10.0
    assert h.calls(GETTOKEN) == 1


def test_the_client_side_limiter_waits_for_a_free_slot() -> None:
    # given: 2 calls a minute, a clock that the recorded sleep moves
    now = [1000.0]
    limiter = RateLimiter([Limit(2, 60.0)], clock=lambda: now[0])
    # when
    admitted = [limiter.try_acquire(1, "p") for _ in range(3)]
    # then
    assert admitted[:2] == [0.0, 0.0]
    assert 59.0 <= admitted[2] <= 62.0
    now[0] += admitted[2]
    assert limiter.try_acquire(1, "p") == 0.0
    assert limiter.try_acquire(2, "p") == 0.0 and limiter.try_acquire(1, "q") == 0.0


def test_the_client_side_limiter_sleeps_within_the_budget(h: Harness) -> None:
    # given
    now = [0.0]
    limiter = RateLimiter([Limit(2, 60.0)], clock=lambda: now[0])

    def sleep(seconds: float) -> None:
        h.sleep(seconds)
        now[0] += seconds

    client = h.client(limiter=limiter, sleep=sleep, retry_budget_seconds=120)
    # when: the third call to one path finds both of its slots taken
    for _ in range(3):
        client.get_follow_user_list()
    # then
    assert len(h.sleep.delays) == 1 and 59.0 <= h.sleep.delays[0] <= 62.0
    assert h.calls(FOLLOW_USERS) == 3


def test_the_client_side_limiter_gives_up_when_the_budget_is_spent(h: Harness) -> None:
    limiter = RateLimiter([Limit(1, 60.0)], clock=lambda: 0.0)
    client = h.client(limiter=limiter, retry_budget_seconds=5.0)
    client.get_follow_user_list()
    with pytest.raises(RateLimitError):
        client.get_follow_user_list()
    assert h.calls(FOLLOW_USERS) == 1


# --- errcodes and transport -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errcode", "expected"),
    [
        (84061, NotFoundError),
        (40096, NotFoundError),
        (60111, NotFoundError),
        (40058, InvalidRequestError),
        (41009, InvalidRequestError),
        (48002, PermissionError_),
        (60011, PermissionError_),
        (40001, CredentialError),
        (12345, ApiError),
    ],
)
def test_other_errcodes_map_to_typed_exceptions(h: Harness, errcode: int, expected: type[ApiError]) -> None:
    # given
    client = h.client()
    h.emu.inject_error(FOLLOW_USERS, errcode)
    # when
    with pytest.raises(expected) as raised:
        client.get_follow_user_list()
    # then
    assert type(raised.value) is expected
    assert raised.value.errcode == errcode and raised.value.path.endswith(FOLLOW_USERS)
    assert h.calls(FOLLOW_USERS) == 1 and h.sleep.delays == []


@pytest.mark.parametrize(("errcode", "expected"), [(40013, CredentialError), (45009, RateLimitError)])
def test_gettoken_errcodes_map_too(h: Harness, errcode: int, expected: type[ApiError]) -> None:
    client = h.client(retry_budget_seconds=0)
    h.emu.inject_error("gettoken", errcode, times=5)
    with pytest.raises(expected):
        client.get_token()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_transport_error_when_nothing_listens(h: Harness) -> None:
    client = h.client(base_url=f"http://127.0.0.1:{_free_port()}", transport=None)
    with pytest.raises(TransportError):
        client.get_token()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(502, text="bad gateway"),
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
    ],
)
def test_transport_error_on_answers_that_are_not_wecom_json(h: Harness, response: httpx.Response) -> None:
    client = h.client(transport=httpx.MockTransport(lambda request: response))
    with pytest.raises(TransportError):
        client.get_token()


def test_secrets_and_tokens_stay_out_of_logs(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    # given
    caplog.set_level(logging.DEBUG)
    client = h.client()
    h.emu.inject_error(FOLLOW_USERS, 42001)
    # when
    client.get_follow_user_list()
    token = client.get_token()
    # then
    assert "gettoken" in caplog.text  # httpx did log the requests …
    assert h.emu.corp.secret not in caplog.text  # … without the secret
    assert token not in caplog.text
    assert h.emu.corp.secret not in repr(client)


# --- the typed API ----------------------------------------------------------------------------


def test_departments_and_users(h: Harness) -> None:
    client = h.client()
    departments = client.list_departments()
    users = client.list_users()
    assert {d.id for d in departments} == set(h.emu.state.departments)
    assert {u.userid for u in users} == {u for u, e in h.emu.state.employees.items() if e.status != 5}
    assert client.get_user(users[0].userid) == users[0]
    assert {d.id for d in client.list_departments(1)} == set(h.emu.state.subdepartments(1))


def test_batch_get_by_user_pages_return_every_follow_exactly_once(h: Harness) -> None:
    # given
    client = h.client()
    userids = client.get_follow_user_list()
    # when
    seen: list[tuple[str, str]] = []
    cursor = ""
    while True:
        page = client.batch_get_by_user(userids, cursor=cursor, limit=7)
        seen += [(row.follow_info.userid, row.external_contact.external_userid) for row in page.external_contact_list]
        cursor = page.next_cursor
        if not cursor:
            break
    # then
    expected = [(f.userid, f.external_userid) for f in h.emu.state.follows()]
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(set(seen))


def test_list_external_contacts_matches_the_follows(h: Harness) -> None:
    client = h.client()
    for userid in client.get_follow_user_list():
        expected = [f.external_userid for f in h.emu.state.follows() if f.userid == userid]
        assert client.list_external_contacts(userid) == expected


def test_an_employee_without_customers_has_an_empty_list(h: Harness) -> None:
    client = h.client()
    h.emu.inject_error("externalcontact/list", 84061)
    assert client.list_external_contacts("anyone") == []


def test_get_external_contact_follows_every_page(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: the emulator pages follow_user by 1 instead of 500
    monkeypatch.setattr(emulator_api, "GET_FOLLOW_PAGE", 1)
    external_userid, follows = max(h.emu.state.customer_follows.items(), key=lambda item: len(item[1]))
    assert len(follows) >= 2
    # when
    detail = h.client().get_external_contact(external_userid)
    # then
    assert detail.external_contact.external_userid == external_userid
    assert sorted(f.userid for f in detail.follow_user) == sorted(follows)
    assert h.calls("externalcontact/get") == len(follows)


@pytest.mark.parametrize(
    ("userids", "limit"), [([f"u{i}" for i in range(101)], 100), (["u1"], 0), (["u1"], 101), ([], 10)]
)
def test_batch_get_by_user_rejects_bad_arguments_before_calling(h: Harness, userids: list[str], limit: int) -> None:
    with pytest.raises(ValueError):
        h.client().batch_get_by_user(userids, limit=limit)
    assert sum(h.transport.paths.values()) == 0


def test_remark_round_trip(h: Harness) -> None:
    # given
    client = h.client()
    follow = next(h.emu.state.follows())
    # when
    client.remark(follow.userid, follow.external_userid, remark="老王", remark_mobiles=["13800000001"])
    # then
    detail = client.get_external_contact(follow.external_userid)
    mine = next(f for f in detail.follow_user if f.userid == follow.userid)
    assert (mine.remark, mine.remark_mobiles) == ("老王", ["13800000001"])


def test_calls_with_nothing_to_change_are_not_sent(h: Harness) -> None:
    client = h.client()
    client.remark("u", "wm1")
    client.mark_tag("u", "wm1")
    client.del_corp_tag()
    assert sum(h.transport.paths.values()) == 0


def test_corp_tag_life_cycle(h: Harness) -> None:
    # given
    client = h.client()
    follow = next(h.emu.state.follows())
    # when: create, rename, put on a follow
    group = client.add_corp_tag(group_name="siyu 测试分组", order=3, tags=[("VIP", 2), ("普通", 1)])
    vip = next(tag for tag in group.tag if tag.name == "VIP")
    client.edit_corp_tag(vip.id, name="SVIP")
    client.mark_tag(follow.userid, follow.external_userid, add=[vip.id])
    # then
    listed = client.get_corp_tag_list(group_ids=[group.group_id])
    assert {t.name for t in listed[0].tag} == {"SVIP", "普通"}
    detail = client.get_external_contact(follow.external_userid)
    mine = next(f for f in detail.follow_user if f.userid == follow.userid)
    assert vip.id in mine.corp_tag_ids()
    # when: delete the group
    client.del_corp_tag(group_ids=[group.group_id])
    # then
    assert all(g.group_id != group.group_id for g in client.get_corp_tag_list())


def test_add_corp_tag_needs_tags_and_a_group(h: Harness) -> None:
    client = h.client()
    with pytest.raises(ValueError):
        client.add_corp_tag(group_name="g", tags=[])
    with pytest.raises(ValueError):
        client.add_corp_tag(tags=[("t", 1)])


def test_group_chat_pages_return_every_chat_exactly_once(h: Harness) -> None:
    # given
    client = h.client()
    # when
    seen: list[str] = []
    cursor = ""
    while True:
        page = client.list_group_chats(cursor=cursor, limit=2)
        seen += [ref.chat_id for ref in page.group_chat_list]
        cursor = page.next_cursor
        if not cursor:
            break
    # then
    assert seen == [g.chat_id for g in h.emu.state.group_list()]
    detail = client.get_group_chat(seen[0])
    assert detail.chat_id == seen[0] and detail.member_list


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"limit": 1001}, {"owner_userids": [f"u{i}" for i in range(101)]}])
def test_list_group_chats_rejects_bad_arguments(h: Harness, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        h.client().list_group_chats(**kwargs)


def test_client_for_corp_uses_the_stored_corp(h: Harness) -> None:
    # given
    with h.db() as session:
        corp = session.get(Corp, h.corp_id)
        assert corp is not None
    transport_client = httpx.Client(transport=h.transport)
    # when
    with client_for_corp(corp, token_store=DatabaseTokenStore(h.db), http=transport_client) as client:
        users = client.get_follow_user_list()
    # then: the secret was decrypted and the emulator's URL used; the lent http client stays open
    assert users == h.emu.state.follow_user_ids()
    assert not transport_client.is_closed
    transport_client.close()


def test_the_client_is_a_context_manager_that_closes_its_pool(h: Harness) -> None:
    with h.client() as client:
        client.get_token()
    assert client._http.is_closed
