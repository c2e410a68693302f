"""Counts for people: the engine kept fresh enough, names for the sample, rule errors as domain errors.

Until every writer marks the customers it changes (`engine.mark_dirty`), the index is rebuilt when it
is older than FRESH_SECONDS, so a count is never more than that behind the database.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.contacts.models import Customer
from siyu.core.errors import DomainError, ErrorCode
from siyu.segments import engine, service
from siyu.segments.rules import RuleError
from siyu.segments.schemas import CountRead, SampleCustomer

FRESH_SECONDS = 60.0
_built: dict[int, float] = {}


def _fresh(corp_id: int) -> float:
    """Drop the corp's index when it is too old; returns its age in seconds after this call."""
    now = time.monotonic()
    built = _built.get(corp_id)
    if built is None or now - built > FRESH_SECONDS:
        engine.drop_engine(corp_id)
        _built[corp_id] = now
        return 0.0
    return now - built


def count(session: Session, *, corp_id: int, rule: Mapping[str, Any] | str, sample: int = 20) -> CountRead:
    age = _fresh(corp_id)
    try:
        found = service.count(session, corp_id=corp_id, rule=rule, sample=sample)
    except RuleError as exc:
        raise DomainError(ErrorCode.INVALID, str(exc)) from exc
    names = dict(
        session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(found.sample_customer_ids))).all()
    )
    return CountRead(
        count=found.count,
        sample=[SampleCustomer(id=i, name=names.get(i, "")) for i in found.sample_customer_ids],
        unknown_ids=found.unknown_ids,
        index_age_seconds=round(age, 1),
    )
