"""Counts for people: rule errors as domain errors, and a sample with names and owners.

The index behind a count is exact: `engine_for` applies every change committed before the call
(see `siyu.segments.changes`), so nothing here is rebuilt on a timer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from siyu.accounts.access import Actor
from siyu.core.errors import DomainError, ErrorCode
from siyu.segments import service
from siyu.segments.engine import engine_for
from siyu.segments.rules import RuleError
from siyu.segments.schemas import CountRead


def count(
    session: Session, *, corp_id: int, rule: Mapping[str, Any] | str, sample: int = 20, actor: Actor | None = None
) -> CountRead:
    """The count and a sample (scoped to the actor when given: only customers they may see are named)."""
    try:
        found = service.count(session, corp_id=corp_id, rule=rule, sample=sample)
    except RuleError as exc:
        raise DomainError(ErrorCode.INVALID, str(exc)) from exc
    eng = engine_for(session, corp_id)
    return CountRead(
        count=found.count,
        sample=service.sample_customers(session, corp_id=corp_id, customer_ids=found.sample_customer_ids, actor=actor),
        unknown_ids=found.unknown_ids,
        index_version=eng.version,
        index_age_seconds=round(time.monotonic() - eng.built_at, 1),
    )
