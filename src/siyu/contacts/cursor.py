"""Opaque keyset cursors: base64url JSON of (what they page, the sort key values). Never OFFSET.

The `kind` (e.g. the customers sort) is inside, so a cursor from one sort cannot silently
page another; a tampered or foreign cursor is a clear 422, not a wrong page.
"""

from __future__ import annotations

import base64
import json

from siyu.core.errors import DomainError, ErrorCode


def encode_cursor(kind: str, *values: str | int) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> list[str | int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise DomainError(ErrorCode.INVALID, "after: not a cursor from this list") from exc
    if not isinstance(data, list) or not data or data[0] != kind:
        raise DomainError(ErrorCode.INVALID, "after: the cursor belongs to another list or sort")
    return list(data[1:])
