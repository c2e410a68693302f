"""Pytest fixtures for the WeCom emulator, loaded by conftest.py as a plugin.

`emulator` is a small seeded corp served over real HTTP; `emulator_factory` starts others with
custom sizes, rate limits or callback URLs; `callback_receiver` is a tiny HTTP server that answers
WeCom's echostr check and records (and can refuse) the callbacks the emulator POSTs.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from siyu.wecom.crypto import MsgCrypt
from siyu.wecom.emulator.server import RunningEmulator, ServerThread, start_emulator

SMALL_CORP: dict[str, Any] = {"employees": 8, "customers": 300, "seed": 7}
_HTTP = httpx.Client(timeout=10)


@dataclass
class ReceivedCallback:
    query: dict[str, str]
    body: bytes
    status: int


@dataclass
class CallbackReceiver:
    """Records every POST; `fail_next` answers that many POSTs with HTTP 500 first."""

    url: str = ""
    crypt: MsgCrypt | None = None
    fail_next: int = 0
    received: list[ReceivedCallback] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def use_corp(self, emulator: RunningEmulator) -> None:
        corp = emulator.corp
        self.crypt = MsgCrypt(corp.token, corp.encoding_aes_key, corp.corpid)

    async def verify(self, request: Request) -> Response:
        q = request.query_params
        if self.crypt is None:
            return PlainTextResponse("no corp configured", status_code=400)
        plain = self.crypt.verify_url(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
        return PlainTextResponse(plain)

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            status = 500 if self.fail_next > 0 else 200
            self.fail_next = max(0, self.fail_next - 1)
            self.received.append(ReceivedCallback(dict(request.query_params), body, status))
        return Response(b"", status_code=status)

    def delivered(self) -> list[ReceivedCallback]:
        return [r for r in self.received if r.status == 200]

    def decrypt(self, callback: ReceivedCallback) -> ET.Element:
        """Check the signature and decrypt one callback, as siyu's endpoint must; returns the event XML."""
        assert self.crypt is not None, "call use_corp(emulator) first"
        encrypt = ET.fromstring(callback.body).findtext("Encrypt") or ""
        q = callback.query
        return ET.fromstring(self.crypt.decrypt_envelope(q["msg_signature"], q["timestamp"], q["nonce"], encrypt))

    def events(self) -> list[ET.Element]:
        return [self.decrypt(c) for c in self.delivered()]


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    """A seeded 8-employee / 300-customer corp, fresh for each test."""
    with start_emulator(**SMALL_CORP, callback_retry_delay=0.01) as running:
        yield running


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., RunningEmulator]]:
    """start_emulator(**kwargs) with the small corp as defaults; everything started is stopped after."""
    started: list[RunningEmulator] = []

    def start(**kwargs: Any) -> RunningEmulator:
        running = start_emulator(**{**SMALL_CORP, "callback_retry_delay": 0.01, **kwargs})
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def _callback_receiver_server() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    app = Starlette(
        routes=[
            Route("/callback", receiver.verify, methods=["GET"]),
            Route("/callback", receiver.receive, methods=["POST"]),
        ]
    )
    server = ServerThread(app)
    server.start()
    receiver.url = f"{server.base_url}/callback"
    yield receiver
    server.stop()


@pytest.fixture
def callback_receiver(_callback_receiver_server: CallbackReceiver) -> CallbackReceiver:
    """One receiver server for the session, emptied for each test."""
    receiver = _callback_receiver_server
    with receiver.lock:
        receiver.crypt, receiver.fail_next, receiver.received = None, 0, []
    return receiver


def access_token(emulator: RunningEmulator) -> str:
    """A valid access_token for the emulator's corp, fetched over HTTP."""
    params = {"corpid": emulator.corp.corpid, "corpsecret": emulator.corp.secret}
    data = _HTTP.get(f"{emulator.base_url}/cgi-bin/gettoken", params=params).json()
    assert data["errcode"] == 0, data
    return str(data["access_token"])
