"""Fixtures of the broadcast tests: `live` (an emulator corp synced into siyu; see test_sender_support)."""

from tests.broadcasts.test_sender_support import live

__all__ = ["live"]
