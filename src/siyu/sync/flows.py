"""The full sync: make siyu's mirror equal WeCom, resumably, page by page.

Stages run in order — employees (departments, members, who may have customers), tags,
customers (batch/get_by_user over the follow users), groups (groupchat/list + get) — so a
follow can point at its employee and tags, and a group member at its customer.

Each page is one transaction that applies the page *and* advances `sync_run.checkpoint`;
a crash therefore loses at most the page in flight, and the next `run_sync` for the corp and
scope picks the failed (or dead: stale heartbeat) run up at its checkpoint. Whatever a pass
did not see is removed set-based once the pass is complete: follows seen by the run carry its
id (`last_seen_run_id`), the rest become `removed`; unlisted groups are dismissed; unlisted
departments and tags are deleted; unlisted employees are resigned. Memory stays bounded: one
page of customers at a time, plus the list of follow userids.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from siyu.acquisition.intake import do_attribute_corp
from siyu.contacts.actions import (
    do_end_unseen_follows,
    do_sync_departments,
    do_sync_employees,
    do_upsert_contact_page,
)
from siyu.contacts.models import Customer, Follow
from siyu.core import audit
from siyu.core.clock import now_utc
from siyu.core.config import get_settings
from siyu.core.counts import Counts
from siyu.core.db import session_scope
from siyu.corp.models import Corp
from siyu.groups.actions import do_dismiss_unlisted_group_chats, do_upsert_group_chats
from siyu.groups.models import GroupChat, GroupMember
from siyu.sync.bulk import Changes, add_changes, refresh_planner_stats, total
from siyu.sync.models import SyncRun, SyncStatus
from siyu.sync.service import get_live_run, get_resumable_run
from siyu.tags.actions import do_sync_corp_tags_by_type
from siyu.tags.models import FollowTag
from siyu.timeline.models import CustomerEvent
from siyu.wecom import payloads
from siyu.wecom.errors import NotFoundError

log = logging.getLogger(__name__)

SCOPES = ("employees", "tags", "customers", "groups")
ALL = "all"
# Object types in the summary, in display order.
OBJECT_TYPES = (
    "departments",
    "employees",
    "tag_groups",
    "tags",
    "customers",
    "follows",
    "follow_tags",
    "group_chats",
    "group_members",
)
# Tables a sync fills from empty, whose planner statistics it refreshes as they grow.
CONTACT_TABLES: tuple[Table, ...] = (
    Customer.__table__,
    Follow.__table__,
    FollowTag.__table__,
    CustomerEvent.__table__,
)
GROUP_TABLES: tuple[Table, ...] = (GroupChat.__table__, GroupMember.__table__)
CONTACT_PAGE_LIMIT = 100
GROUP_PAGE_LIMIT = 100

Progress = Callable[[int, int | None, str], None]


class SyncError(Exception):
    """A sync could not start (bad scope, unknown corp, another run going)."""


class SyncBusy(SyncError):
    """Another live sync run holds this corp."""


class SyncSource(Protocol):
    """What the sync reads from WeCom: `WeComClient` (real or emulator), or a test double."""

    def list_departments(self) -> list[payloads.Department]: ...
    def list_users(self, department_id: int = 1, fetch_child: bool = True) -> list[payloads.User]: ...
    def get_follow_user_list(self) -> list[str]: ...
    def batch_get_by_user(self, userids: Sequence[str], cursor: str = "", limit: int = 100) -> payloads.ContactPage: ...
    def get_corp_tag_list(self) -> list[payloads.CorpTagGroup]: ...
    def list_group_chats(self, *, cursor: str = "", limit: int = 1000) -> payloads.GroupChatPage: ...
    def get_group_chat(self, chat_id: str) -> payloads.GroupChatDetail: ...


@dataclass
class SyncSummary:
    run_id: int
    corp_id: int
    scope: str
    changes: Changes
    pages: int
    resumed: bool
    seconds: float

    @property
    def total(self) -> Counts:
        return total(self.changes)

    def rows(self) -> list[tuple[str, Counts]]:
        """(object type, counts) for every type this scope touches, in display order."""
        return [(name, self.changes[name]) for name in OBJECT_TYPES if name in self.changes]


@dataclass
class _Run:
    """One sync run in progress: the row's state mirrored in memory, written back with every page."""

    corp_id: int
    run_id: int
    started_at: datetime
    source: SyncSource
    progress: Progress
    checkpoint: dict[str, Any] = field(default_factory=dict)
    changes: Changes = field(default_factory=dict)
    pages: int = 0

    def done(self, stage: str) -> bool:
        return stage in self.checkpoint.get("done", [])

    def commit_page(self, session: Session, changes: Changes, *, stage: str, state: Any = None, pages: int = 1) -> None:
        """Advance the checkpoint in the page's own transaction (the caller's session_scope commits)."""
        checkpoint = dict(self.checkpoint)
        if state is None:
            checkpoint["done"] = [*checkpoint.get("done", []), stage]
            checkpoint.pop(stage, None)
        else:
            checkpoint[stage] = state
        merged = add_changes({k: Counts(**v.as_dict()) for k, v in self.changes.items()}, changes)
        stats = {"pages": self.pages + pages, "changes": {k: v.as_dict() for k, v in merged.items()}}
        session.execute(
            update(SyncRun)
            .where(SyncRun.id == self.run_id)
            .values(checkpoint=checkpoint, stats=stats, heartbeat_at=now_utc())
        )
        session.flush()
        self.checkpoint, self.changes, self.pages = checkpoint, merged, self.pages + pages


def run_sync(
    corp_id: int,
    *,
    only: str | None = None,
    client: SyncSource | None = None,
    progress: Progress | None = None,
) -> SyncSummary:
    """Mirror WeCom into siyu for one corp (every scope, or `only` one), resuming an unfinished run.

    Raises SyncError for a bad scope or unknown corp and SyncBusy when another run is live.
    WeCom errors propagate after the run is marked failed, so the next call resumes it.
    """
    scope = _check_scope(only)
    source, owned = (client, False) if client is not None else (_client_for(corp_id), True)
    try:
        return _run_claimed(corp_id, scope, source, progress or _no_progress)
    finally:
        if owned:
            source.close()  # type: ignore[attr-defined]


def _run_claimed(corp_id: int, scope: str, source: SyncSource, progress: Progress) -> SyncSummary:
    clock = time.perf_counter()
    run, resumed = _claim_run(corp_id, scope, source, progress)
    try:
        for stage in SCOPES if scope == ALL else (scope,):
            if not run.done(stage):
                STAGES[stage](run)
        _finish(run, scope)
    except BaseException as exc:
        _fail(run.run_id, exc)
        raise
    return _summary(run, scope, resumed, time.perf_counter() - clock)


def _no_progress(done: int, total: int | None, label: str) -> None:
    return None


def _check_scope(only: str | None) -> str:
    if only is None:
        return ALL
    if only not in SCOPES:
        raise SyncError(f"unknown scope {only!r}: choose one of {', '.join(SCOPES)}")
    return only


def _client_for(corp_id: int) -> Any:
    from siyu.wecom.client import client_for_corp

    with session_scope() as session:
        corp = session.get(Corp, corp_id)
        if corp is None:
            raise SyncError(f"no corp with id {corp_id}")
        return client_for_corp(corp)


def _claim_run(corp_id: int, scope: str, source: SyncSource, progress: Progress) -> tuple[_Run, bool]:
    """Resume this scope's unfinished run or open a new one; refuse while another run is live."""
    with session_scope() as session:
        corp = session.scalars(select(Corp).where(Corp.corp_id == corp_id).with_for_update()).first()
        if corp is None:
            raise SyncError(f"no corp with id {corp_id}")
        live = get_live_run(session, corp_id=corp_id)
        if live is not None:
            raise SyncBusy(f"sync run {live.id} ({live.scope}) is still running for corp {corp_id}")
        row = get_resumable_run(session, corp_id=corp_id, scope=scope)
        resumed = row is not None
        if row is None:
            row = SyncRun(corp_id=corp_id, scope=scope, checkpoint={}, stats={}, started_at=now_utc())
            session.add(row)
        row.status, row.heartbeat_at, row.error = SyncStatus.RUNNING, now_utc(), ""
        session.flush()
        stats = row.stats or {}
        run = _Run(
            corp_id=corp_id,
            run_id=row.id,
            started_at=row.started_at,
            source=source,
            progress=progress,
            checkpoint=dict(row.checkpoint or {}),
            changes={k: Counts(**v) for k, v in dict(stats.get("changes", {})).items()},
            pages=int(stats.get("pages", 0)),
        )
        return run, resumed


def _finish(run: _Run, scope: str) -> None:
    with session_scope() as session:
        session.execute(
            update(SyncRun)
            .where(SyncRun.id == run.run_id)
            .values(status=SyncStatus.DONE, finished_at=now_utc(), heartbeat_at=now_utc())
        )
        audit.record(
            session,
            corp_id=run.corp_id,
            actor="sync",
            action="sync.finished",
            object_type="sync_run",
            object_id=run.run_id,
            detail={"scope": scope, "pages": run.pages, "changes": {k: v.as_dict() for k, v in run.changes.items()}},
        )


def _fail(run_id: int, exc: BaseException) -> None:
    """Record the failure so the next run resumes; never mask the original error."""
    try:
        with session_scope() as session:
            session.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id)
                .values(status=SyncStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], heartbeat_at=now_utc())
            )
    except Exception:
        log.exception("could not mark sync run %s failed", run_id)


def _summary(run: _Run, scope: str, resumed: bool, seconds: float) -> SyncSummary:
    changes = dict(run.changes)
    for stage in SCOPES if scope == ALL else (scope,):
        for name in STAGE_TYPES[stage]:
            changes.setdefault(name, Counts())
    return SyncSummary(run.run_id, run.corp_id, scope, changes, run.pages, resumed, seconds)


# --- stages ------------------------------------------------------------------------------------


def _sync_employees(run: _Run) -> None:
    """Departments, members and follow users: small lists, one transaction."""
    departments = run.source.list_departments()
    users = _users_under_roots(run.source, departments)
    follow_userids = run.source.get_follow_user_list()
    with session_scope() as session:
        changes = {
            "departments": do_sync_departments(session, run.corp_id, departments),
            "employees": do_sync_employees(session, run.corp_id, users, follow_userids=follow_userids),
        }
        run.commit_page(session, changes, stage="employees")
    run.progress(len(users), len(users), "employees")


def _users_under_roots(source: SyncSource, departments: Sequence[payloads.Department]) -> list[payloads.User]:
    """Members of the visible tree: list from each top department (usually just 1) with children."""
    ids = {d.id for d in departments}
    roots = sorted(d.id for d in departments if d.parentid not in ids) or [1]
    users: dict[str, payloads.User] = {}
    for root in roots:
        users.update((u.userid, u) for u in source.list_users(root, True))
    return list(users.values())


def _sync_tags(run: _Run) -> None:
    groups = run.source.get_corp_tag_list()
    with session_scope() as session:
        changes = do_sync_corp_tags_by_type(session, run.corp_id, groups, complete=True)
        run.commit_page(session, changes, stage="tags")
    run.progress(len(groups), len(groups), "tag groups")


def _sync_customers(run: _Run) -> None:
    """batch/get_by_user over the follow users, ≤100 userids a batch, each cursor page a transaction."""
    start = run.checkpoint.get("customers") or _start_customers(run)
    size = max(1, min(100, get_settings().sync_batch_size))
    userids: list[str] = start["follow_userids"]
    batches = [userids[i : i + size] for i in range(0, len(userids), size)]
    for group in _prefetched(_contact_pages(run.source, batches, start)):
        with session_scope() as session:
            changes: Changes = {}
            for page, _state in group:
                add_changes(
                    changes, do_upsert_contact_page(session, run.corp_id, page.external_contact_list, run_id=run.run_id)
                )
            state = group[-1][1]
            run.commit_page(session, changes, stage="customers", state=state, pages=len(group))
        _keep_planner_stats_fresh(run.pages - len(group), run.pages, CONTACT_TABLES)
        run.progress(int(state["seen"]), None, "customers")
    with session_scope() as session:
        removed = do_end_unseen_follows(session, run.corp_id, run_id=run.run_id, started_at=run.started_at)
        # Follows added through a channel code while no callback reached us: attribute them by state.
        do_attribute_corp(session, run.corp_id)
        run.commit_page(session, {"follows": removed}, stage="customers")


def _contact_pages(
    source: SyncSource, batches: list[list[str]], state: dict[str, Any]
) -> Iterator[tuple[payloads.ContactPage, dict[str, Any]]]:
    """Each page with the checkpoint state that follows it; the next cursor needs only the last answer."""
    seen = int(state.get("seen", 0))
    while state["batch"] < len(batches):
        page = source.batch_get_by_user(batches[state["batch"]], cursor=state["cursor"], limit=CONTACT_PAGE_LIMIT)
        seen += len(page.external_contact_list)
        state = _next_contact_state(state, page.next_cursor, seen)
        yield page, state


_T = TypeVar("_T")
_DONE = object()


def _prefetched(pages: Iterator[_T], depth: int = 4) -> Iterator[list[_T]]:
    """Fetch pages on a thread while the caller writes, and hand over every page already fetched.

    WeCom and the database overlap, and pages that arrived while the last ones were written share
    one transaction (at most `depth`), so commits cost less when writing is the bottleneck. A
    fetch error is raised after the pages fetched before it have been handed over (and
    committed), so a resume starts exactly where the crash happened. If the caller stops early,
    the fetcher stops at its next page.
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    fetcher = threading.Thread(target=_fetch_into, args=(pages, buffer, stop), name="siyu-sync-prefetch", daemon=True)
    fetcher.start()
    try:
        while True:
            group, ending = _take_available(buffer, depth)
            if group:
                yield group
            if ending is _DONE:
                return
            if isinstance(ending, BaseException):
                raise ending
    finally:
        stop.set()


def _take_available(buffer: queue.Queue[Any], limit: int) -> tuple[list[Any], Any]:
    """Block for one item, then take whatever else is ready; a sentinel or error ends the group."""
    group: list[Any] = []
    item = buffer.get()
    while True:
        if item is _DONE or isinstance(item, BaseException):
            return group, item
        group.append(item)
        if len(group) >= limit:
            return group, None
        try:
            item = buffer.get_nowait()
        except queue.Empty:
            return group, None


def _fetch_into(pages: Iterator[Any], buffer: queue.Queue[Any], stop: threading.Event) -> None:
    try:
        for item in pages:
            while not stop.is_set():
                try:
                    buffer.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        buffer.put(_DONE)
    except BaseException as exc:  # handed to the caller's thread
        buffer.put(exc)


def _start_customers(run: _Run) -> dict[str, Any]:
    """The follow users are fixed for the pass (kept in the checkpoint) so a resume pages the same list."""
    return {"follow_userids": sorted(set(run.source.get_follow_user_list())), "batch": 0, "cursor": "", "seen": 0}


def _next_contact_state(state: dict[str, Any], next_cursor: str, seen: int) -> dict[str, Any]:
    if next_cursor:
        return {**state, "cursor": next_cursor, "seen": seen}
    return {**state, "batch": state["batch"] + 1, "cursor": "", "seen": seen}


def _sync_groups(run: _Run) -> None:
    """groupchat/list pages of GROUP_PAGE_LIMIT; each page's groupchat/get details are one transaction."""
    state = run.checkpoint.get("groups") or {"cursor": "", "listed": False, "seen": 0}
    while not state["listed"]:
        page = run.source.list_group_chats(cursor=state["cursor"], limit=GROUP_PAGE_LIMIT)
        details = _group_details(run.source, page.group_chat_list)
        seen = int(state["seen"]) + len(details)
        state = {"cursor": page.next_cursor, "listed": not page.next_cursor, "seen": seen}
        with session_scope() as session:
            changes = do_upsert_group_chats(session, run.corp_id, details, run_id=run.run_id)
            run.commit_page(session, changes, stage="groups", state=state)
        _keep_planner_stats_fresh(run.pages - 1, run.pages, GROUP_TABLES)
        run.progress(seen, None, "groups")
    with session_scope() as session:
        dismissed = do_dismiss_unlisted_group_chats(session, run.corp_id, run_id=run.run_id, started_at=run.started_at)
        run.commit_page(session, {"group_chats": dismissed}, stage="groups")


def _keep_planner_stats_fresh(before: int, after: int, tables: Sequence[Table]) -> None:
    """Re-ANALYZE whenever the run's page count passes a power of 4: O(log pages) times as tables grow."""
    if _power_of_4_floor(after) == _power_of_4_floor(before):
        return
    with session_scope() as session:
        refresh_planner_stats(session, tables)


def _power_of_4_floor(pages: int) -> int:
    level = 0
    while pages >= 4 ** (level + 1):
        level += 1
    return level if pages else -1


def _group_details(
    source: SyncSource, refs: Sequence[payloads.GroupChatRef]
) -> list[tuple[payloads.GroupChatDetail, int]]:
    """groupchat/get for each listed chat; one dismissed since the listing is skipped (and dismissed later)."""
    details: list[tuple[payloads.GroupChatDetail, int]] = []
    for ref in refs:
        try:
            details.append((source.get_group_chat(ref.chat_id), ref.status))
        except NotFoundError:
            log.info("group chat %s vanished between list and get", ref.chat_id)
    return details


STAGES: dict[str, Callable[[_Run], None]] = {
    "employees": _sync_employees,
    "tags": _sync_tags,
    "customers": _sync_customers,
    "groups": _sync_groups,
}
STAGE_TYPES: dict[str, tuple[str, ...]] = {
    "employees": ("departments", "employees"),
    "tags": ("tag_groups", "tags", "follow_tags"),
    "customers": ("customers", "follows", "follow_tags"),
    "groups": ("group_chats", "group_members"),
}
