"""Run the emulator in a background thread: what tests, `siyu demo` and the benchmarks start."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import uvicorn

from siyu.wecom.emulator import mass
from siyu.wecom.emulator.actors import Actors, Delivery
from siyu.wecom.emulator.app import Emulator, create_app
from siyu.wecom.emulator.state import (
    Corp,
    EmulatorState,
    MassSender,
    MassSettings,
    MomentSender,
    Reaction,
    WelcomeDelivery,
    build_state,
)
from siyu.wecom.emulator.traffic import TrafficReport, run_traffic


class ServerThread:
    """A uvicorn server on an already-bound socket, in a daemon thread (port 0 → a free port)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.base_url} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


class RunningEmulator:
    """A live emulator: its URL, state, actors and corp credentials, plus the test hooks."""

    def __init__(self, emulator: Emulator, server: ServerThread) -> None:
        self.emulator = emulator
        self.server = server
        self.base_url: str = server.base_url
        self.state: EmulatorState = emulator.state
        self.actors: Actors = emulator.actors
        self.corp: Corp = emulator.state.corp

    # --- test hooks -------------------------------------------------------------------------

    def set_callback_url(self, url: str | None, *, verify: bool = True) -> None:
        """Save the callback URL, verifying it with WeCom's echostr GET first (as the admin console does)."""
        self.emulator.set_callback_url(url, verify=verify)

    def expire_tokens(self, token: str | None = None) -> int:
        return self.emulator.tokens.expire(token)

    def revoke_tokens(self, token: str | None = None) -> int:
        return self.emulator.tokens.revoke(token)

    def inject_error(self, path: str, errcode: int, times: int = 1, errmsg: str | None = None) -> None:
        """The next `times` calls to path (e.g. "externalcontact/batch/get_by_user") answer errcode."""
        self.emulator.errors.inject(path, errcode, times, errmsg)

    def set_rate_limit(self, per_minute: int | None = None, per_hour: int | None = None) -> None:
        self.emulator.limiter.configure(per_minute, per_hour)

    @property
    def deliveries(self) -> list[Delivery]:
        return list(self.emulator.sender.deliveries)

    @property
    def welcome_deliveries(self) -> list[WelcomeDelivery]:
        """The welcome messages customers received (accepted send_welcome_msg calls)."""
        with self.state.lock:
            return list(self.state.welcome_deliveries)

    def run_traffic(self, **params: Any) -> TrafficReport:
        """`traffic.run_traffic` against this emulator's actors, in the calling thread."""
        return run_traffic(self.actors, **params)

    def configure_mass(self, **settings: Any) -> MassSettings:
        """Change how staff confirm and customers react (fields of MassSettings), e.g. confirm_probability=1."""
        return mass.update_settings(self.state, settings)

    def confirm_mass(self, msgid: str, userid: str, *, decline: bool = False) -> MassSender:
        """The sender sends the mass message now (or declines it)."""
        return mass.confirm(self.state, msgid, userid, decline=decline)

    def confirm_moment(self, moment_id: str, userid: str, *, decline: bool = False) -> MomentSender:
        """The sender publishes the moment now (or declines it)."""
        return mass.confirm_moment(self.state, moment_id, userid, decline=decline)

    def run_mass_due(self) -> dict[str, int]:
        """Apply the confirmations and reactions due now; deletion callbacks are sent before this returns."""
        return self.emulator.mass.run_due()

    def reactions(self, since: int = 0, kinds: Sequence[str] | None = None) -> list[Reaction]:
        """Customers' replies, complaints and deletions after the cursor `since` (a reaction id)."""
        return mass.reactions_since(self.state, since, kinds, limit=1_000_000)[0]

    def wait_for_callbacks(self, timeout: float | None = 30) -> None:
        """Wait for background deliveries (no-op unless started with background_callbacks=True)."""
        self.emulator.sender.wait(timeout)

    # --- lifecycle --------------------------------------------------------------------------

    def stop(self) -> None:
        self.server.stop()
        self.emulator.close()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_emulator(
    *,
    employees: int = 20,
    customers: int = 1000,
    seed: int = 0,
    callback_url: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    rate_limit_per_minute: int | None = None,
    rate_limit_per_hour: int | None = None,
    verify_callback_url: bool = False,
    background_callbacks: bool = False,
    callback_retry_delay: float = 0.2,
    now: int | None = None,
) -> RunningEmulator:
    """Build a corp and serve it on host:port in a background thread.

    callback_url is saved without the echostr check unless verify_callback_url (the receiver is
    often not up yet); use `set_callback_url(url)` later to save it with the check.
    """
    state = build_state(seed=seed, employees=employees, customers=customers, now=now)
    emulator = Emulator(
        state,
        rate_limit_per_minute=rate_limit_per_minute,
        rate_limit_per_hour=rate_limit_per_hour,
        background_callbacks=background_callbacks,
        callback_retry_delay=callback_retry_delay,
    )
    emulator.set_callback_url(callback_url, verify=verify_callback_url)
    server = ServerThread(create_app(emulator), host, port)
    state.public_url = server.base_url  # qr_code links (/scan/...) point at this server
    server.start()
    emulator.start()
    return RunningEmulator(emulator, server)
