"""The callback endpoint over real HTTP: verify, decrypt, persist, acknowledge — and refuse bad input."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.app import create_app
from siyu.callbacks.models import CallbackInbox
from siyu.core.tasks import configure_queue, huey
from siyu.corp.service import forget_crypt
from siyu.wecom.crypto import envelope_xml
from tests.factories import CorpFixture, make_corp
from tests.server_fixtures import serve_in_thread

EVENT = (
    "<xml><ToUserName><![CDATA[{corpid}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
    "<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
    "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[del_follow_user]]></ChangeType>"
    "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[{ext}]]></ExternalUserID></xml>"
)


@pytest.fixture
def corp(db: sessionmaker[Session]) -> CorpFixture:
    forget_crypt()
    return make_corp(db)


@pytest.fixture
def server(engine: sa.Engine, tmp_path: object) -> Iterator[str]:
    configure_queue()  # the SQLite queue file the engine fixture points at; no consumer runs
    with serve_in_thread(create_app(configure=False)) as url:
        yield url


def post_event(server: str, corp: CorpFixture, xml: str, *, signature: str | None = None) -> httpx.Response:
    env = corp.crypt().seal(xml)
    params = {"msg_signature": signature or env.msg_signature, "timestamp": env.timestamp, "nonce": env.nonce}
    body = envelope_xml(corp.wecom_corpid, env.encrypt)
    return httpx.post(f"{server}/wecom/callback/{corp.corp_id}", params=params, content=body.encode())


def inbox(db: sessionmaker[Session]) -> list[CallbackInbox]:
    with db() as s:
        return list(s.scalars(sa.select(CallbackInbox).order_by(CallbackInbox.id)))


def test_event_is_stored_and_queued_before_success(server: str, corp: CorpFixture, db: sessionmaker[Session]) -> None:
    # given a signed, encrypted event
    xml = EVENT.format(corpid=corp.wecom_corpid, ts=1700000000, ext="wmA")
    # when WeCom posts it
    r = post_event(server, corp, xml)
    # then it is acknowledged, stored as pending and queued — not processed in the request
    assert r.status_code == 200, r.text
    assert r.text == "success"
    rows = inbox(db)
    assert [(row.event, row.change_type, row.status) for row in rows] == [
        ("change_external_contact", "del_follow_user", "pending")
    ]
    assert "wmA" in rows[0].payload
    assert huey.pending_count() == 1


def test_replayed_event_is_stored_once(server: str, corp: CorpFixture, db: sessionmaker[Session]) -> None:
    xml = EVENT.format(corpid=corp.wecom_corpid, ts=1700000000, ext="wmA")
    # when WeCom retries the same event (re-encrypted, new nonce and timestamp)
    for _ in range(3):
        assert post_event(server, corp, xml).status_code == 200
    # then one row and one queued task
    assert len(inbox(db)) == 1
    assert huey.pending_count() == 1


def test_same_second_events_are_all_kept(server: str, corp: CorpFixture, db: sessionmaker[Session]) -> None:
    for ext in ("wmA", "wmB", "wmC"):
        post_event(server, corp, EVENT.format(corpid=corp.wecom_corpid, ts=1700000000, ext=ext))
    assert len(inbox(db)) == 3


def test_url_verification_returns_bare_echostr(server: str, corp: CorpFixture) -> None:
    env = corp.crypt().seal("1288432023552776189")
    params = {
        "msg_signature": env.msg_signature,
        "timestamp": env.timestamp,
        "nonce": env.nonce,
        "echostr": env.encrypt,
    }
    r = httpx.get(f"{server}/wecom/callback/{corp.corp_id}", params=params)
    assert r.status_code == 200, r.text
    assert r.content == b"1288432023552776189"


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    "<xml><ToUserName>&lol2;</ToUserName><Encrypt>abc</Encrypt></xml>"
)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("bad_signature", 401, "callback_signature_invalid"),
        ("not_xml", 400, "callback_malformed"),
        ("dtd", 400, "callback_malformed"),
        ("no_encrypt", 400, "callback_malformed"),
        ("wrong_receiveid", 400, "callback_receiveid_mismatch"),
        ("too_large", 413, "callback_too_large"),
        ("unknown_corp", 404, "not_found"),
    ],
)
def test_bad_input_is_refused_and_nothing_stored(
    server: str, corp: CorpFixture, db: sessionmaker[Session], case: str, status: int, code: str
) -> None:
    # given a request broken in one way
    xml = EVENT.format(corpid=corp.wecom_corpid, ts=1700000000, ext="wmA")
    env = corp.crypt().seal(xml)
    params = {"msg_signature": env.msg_signature, "timestamp": env.timestamp, "nonce": env.nonce}
    body = envelope_xml(corp.wecom_corpid, env.encrypt).encode()
    path = f"/wecom/callback/{corp.corp_id}"
    if case == "bad_signature":
        params["msg_signature"] = "0" * 40
    elif case == "not_xml":
        body = b"<xml><Encrypt>"
    elif case == "dtd":
        body = BILLION_LAUGHS.encode()
    elif case == "no_encrypt":
        body = b"<xml><ToUserName>x</ToUserName></xml>"
    elif case == "wrong_receiveid":
        other = type(corp.crypt())(corp.token, corp.aes_key, "wwSomebodyElse")
        env = other.seal(xml, timestamp=env.timestamp, nonce=env.nonce)
        params["msg_signature"] = env.msg_signature
        body = envelope_xml(corp.wecom_corpid, env.encrypt).encode()
    elif case == "too_large":
        body = b"<xml>" + b"x" * (1024 * 1024 + 1) + b"</xml>"
    elif case == "unknown_corp":
        path = "/wecom/callback/999999"
    # when it is posted
    r = httpx.post(server + path, params=params, content=body)
    # then it gets a clear error and nothing is stored or queued
    assert r.status_code == status, r.text
    assert r.json()["detail"][0]["code"] == code
    assert inbox(db) == []
    assert huey.pending_count() == 0
