"""Shared by the flow tests that drive an emulator corp synced into siyu (no tests here)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from siyu.accounts.access import Actor
from siyu.accounts.models import Role
from siyu.outbox import actions as outbox_actions
from siyu.outbox.tasks import send_one
from siyu.wecom.emulator.server import RunningEmulator


@dataclass
class LiveCorp:
    """The emulator, the database and the corp's id in siyu; each flow's tests add their own steps."""

    emu: RunningEmulator
    db: sessionmaker[Session]
    corp_id: int

    @property
    def admin(self) -> Actor:
        return Actor(1, self.corp_id, "operator", Role.ADMIN, None, None)

    def send_outbox(self) -> list[str]:
        """The outbox worker: send until nothing is pending (a sent row may enqueue more)."""
        sent: list[str] = []
        while True:
            with self.db() as s:
                pending = outbox_actions.pending_ids(s)
            if not pending:
                return sent
            sent += [send_one(i) for i in pending]
