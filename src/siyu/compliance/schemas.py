"""API shapes for the reach policy, opt-outs, complaints, pauses, content checks and the harassment budget."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from siyu.compliance.models import PlatformCap
from siyu.compliance.policy import ComplaintThresholds, CorpCap, Policy

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_HOST_SUFFIX = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_WORDS = 2000
MAX_WORD_CHARS = 64
MAX_HOSTS = 500
MAX_CORP_CAPS = 10


class CorpCapModel(BaseModel):
    count: int = Field(ge=1, le=100, description="at most this many broadcasts reach one customer …")
    days: int = Field(ge=1, le=366, description="… within this many calendar days (corp time zone)")


class ThresholdsModel(BaseModel):
    warn_per_10k: float = Field(ge=0, le=10_000, description="signals per 10,000 messages: warn in the audit log")
    pause_per_10k: float = Field(gt=0, le=10_000, description="signals per 10,000 messages: pause the sender")
    min_messages: int = Field(ge=1, le=10_000_000, description="no verdict on fewer messages sent in the window")
    window_days: int = Field(ge=1, le=90)
    delete_within_hours: int = Field(ge=1, le=720, description="a deletion this soon after a message is a signal")

    @model_validator(mode="after")
    def _warn_before_pause(self) -> ThresholdsModel:
        if self.warn_per_10k > self.pause_per_10k:
            raise ValueError("warn_per_10k must not be above pause_per_10k")
        return self


class PolicyWrite(BaseModel):
    """The whole policy (PUT replaces it); every value is checked and every problem reported."""

    platform_cap: PlatformCap
    corp_caps: list[CorpCapModel] = Field(max_length=MAX_CORP_CAPS)
    quiet_start: str = Field(description='corp-local "HH:MM"; "" with quiet_end "" = no quiet hours')
    quiet_end: str
    sensitive_words: list[str] = Field(max_length=MAX_WORDS)
    link_allowlist: list[str] = Field(max_length=MAX_HOSTS, description="host suffixes, e.g. example.com")
    thresholds: ThresholdsModel
    moments_eligible: bool

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _check_time(cls, value: str) -> str:
        value = value.strip()
        if value and not _HHMM.match(value):
            raise ValueError("must be HH:MM (00:00 … 23:59) or empty")
        return value

    @field_validator("sensitive_words")
    @classmethod
    def _check_words(cls, value: list[str]) -> list[str]:
        words = list(dict.fromkeys(w.strip() for w in value if w.strip()))
        too_long = [w for w in words if len(w) > MAX_WORD_CHARS]
        if too_long:
            raise ValueError(f"words must be at most {MAX_WORD_CHARS} characters: {too_long[0][:20]}…")
        return words

    @field_validator("link_allowlist")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        hosts = list(dict.fromkeys(h.strip().lower().removeprefix("*.").strip(".") for h in value if h.strip()))
        bad = [h for h in hosts if not _HOST_SUFFIX.match(h)]
        if bad:
            raise ValueError(f"not a host name (write example.com, without https:// or a path): {bad[0]}")
        return hosts

    @model_validator(mode="after")
    def _quiet_pair(self) -> PolicyWrite:
        if bool(self.quiet_start) != bool(self.quiet_end):
            raise ValueError("quiet_start and quiet_end are both set or both empty")
        if self.quiet_start and self.quiet_start == self.quiet_end:
            raise ValueError("quiet_start and quiet_end must differ")
        return self


class PolicyRead(PolicyWrite):
    default_sensitive_words: list[str]
    updated_by: str = ""
    updated_at: datetime | None = None

    @staticmethod
    def of(policy: Policy, *, defaults: tuple[str, ...], updated_by: str, updated_at: datetime | None) -> PolicyRead:
        t = policy.thresholds
        return PolicyRead(
            platform_cap=policy.platform_cap,
            corp_caps=[CorpCapModel(count=c.count, days=c.days) for c in policy.corp_caps],
            quiet_start=policy.quiet_start,
            quiet_end=policy.quiet_end,
            sensitive_words=list(policy.sensitive_words),
            link_allowlist=list(policy.link_allowlist),
            thresholds=ThresholdsModel(
                warn_per_10k=t.warn_per_10k,
                pause_per_10k=t.pause_per_10k,
                min_messages=t.min_messages,
                window_days=t.window_days,
                delete_within_hours=t.delete_within_hours,
            ),
            moments_eligible=policy.moments_eligible,
            default_sensitive_words=list(defaults),
            updated_by=updated_by,
            updated_at=updated_at,
        )


def policy_of(body: PolicyWrite) -> Policy:
    return Policy(
        platform_cap=body.platform_cap,
        corp_caps=tuple(CorpCap(count=c.count, days=c.days) for c in body.corp_caps),
        quiet_start=body.quiet_start,
        quiet_end=body.quiet_end,
        sensitive_words=tuple(body.sensitive_words),
        link_allowlist=tuple(body.link_allowlist),
        thresholds=ComplaintThresholds(**body.thresholds.model_dump()),
        moments_eligible=body.moments_eligible,
    )


# --- opt-outs -------------------------------------------------------------------------------------


class OptOutWrite(BaseModel):
    note: str = Field(default="", max_length=500)


class OptOutRead(BaseModel):
    customer_id: int
    customer_name: str
    source: str
    recorded_by: str
    note: str
    broadcast_id: int | None
    created_at: datetime


class OptOutPage(BaseModel):
    items: list[OptOutRead]
    next_cursor: str | None


class OptOutState(BaseModel):
    customer_id: int
    opted_out: bool
    opt_out: OptOutRead | None = None


# --- complaints, signals, pauses ------------------------------------------------------------------


class ComplaintCreate(BaseModel):
    customer_id: int
    employee_id: int | None = None
    broadcast_id: int | None = None
    detail: str = Field(default="", max_length=2000)


class SignalRead(BaseModel):
    id: int
    kind: str
    customer_id: int | None
    customer_name: str
    employee_id: int | None
    employee_name: str
    broadcast_id: int | None
    broadcast_name: str
    detail: str
    occurred_at: datetime


class PauseRead(BaseModel):
    id: int
    scope: str
    target_id: int
    target_name: str
    reason: str
    rate_per_10k: int | None
    created_by: str
    created_at: datetime
    lifted_at: datetime | None
    lifted_by: str


# --- content checks -------------------------------------------------------------------------------


class ContentCheckRequest(BaseModel):
    text: str = Field(default="", max_length=20_000)
    attachments: list[dict[str, object]] = Field(default_factory=list, max_length=9)


class FindingRead(BaseModel):
    kind: Literal["sensitive_word", "link", "induced_sharing"]
    matched: str
    start: int
    end: int
    detail: str


class ContentCheckRead(BaseModel):
    ok: bool
    findings: list[FindingRead]


# --- the harassment budget ------------------------------------------------------------------------

BudgetStatus = Literal["ok", "warning", "paused", "insufficient"]


class BudgetRow(BaseModel):
    """One employee's, broadcast's or the corp's use of its complaint budget in the window."""

    scope: Literal["employee", "broadcast", "corp"]
    target_id: int
    name: str
    messages: int
    signals: dict[str, int]  # by kind
    signals_total: int
    rate_per_10k: float | None  # None before the first message
    status: BudgetStatus
    budget_used: float | None  # rate / pause threshold (1.0 = the pause line)
    pause_id: int | None = None
    since: datetime  # the window start (or the last lift, when later)


class CapUsage(BaseModel):
    label: str  # the planner's name for the rule, e.g. "1 per day", "2 per 7 days"
    kind: Literal["platform", "corp"]
    limit: int  # slots in the window
    days: int  # rolling calendar days; 0 = the calendar month
    customers_at_cap: int


class BudgetRead(BaseModel):
    window_days: int
    since: datetime
    warn_per_10k: float
    pause_per_10k: float
    min_messages: int
    corp: BudgetRow
    employees: list[BudgetRow]
    broadcasts: list[BudgetRow]
    caps: list[CapUsage]
    customers_reached_this_month: int
    pauses: list[PauseRead]
    recent_signals: list[SignalRead]
