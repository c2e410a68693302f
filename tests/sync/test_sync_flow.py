"""The full sync against the emulator over real HTTP: mirror, idempotency, resume, removals, scopes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from siyu.contacts.models import Employee, Follow, FollowStatus
from siyu.core.clock import now_utc
from siyu.core.counts import Counts
from siyu.corp.models import AuditLog
from siyu.groups.models import GroupChat, GroupStatus
from siyu.sync.flows import SyncBusy, SyncError, run_sync
from siyu.sync.models import SyncRun, SyncStatus
from siyu.tags.models import Tag
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from tests.sync.test_sync_support import assert_mirrors, corp_for, counting_client, snapshot


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with start_emulator(employees=12, customers=400, seed=7) as running:
        yield running


@pytest.fixture
def corp_id(db: sessionmaker[Session], emu: RunningEmulator) -> int:
    return corp_for(db, emu)


def test_a_sync_mirrors_the_corp_row_by_row(db: sessionmaker[Session], emu: RunningEmulator, corp_id: int) -> None:
    # given an emulated corp with customers, follows, tags and groups
    # when it is synced
    summary = run_sync(corp_id)
    # then every row equals the emulator's state, and the summary counts the additions
    assert_mirrors(db, corp_id, emu.state)
    counts = emu.state.counts()
    assert summary.changes["customers"] == Counts(added=counts["customers"])
    assert summary.changes["follows"] == Counts(added=counts["follows"])
    assert summary.changes["group_chats"] == Counts(added=counts["groups"])
    with db() as s:
        assert s.scalars(select(SyncRun.status)).one() == SyncStatus.DONE
        assert s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "sync.finished")) == 1


def test_a_second_sync_changes_nothing(db: sessionmaker[Session], emu: RunningEmulator, corp_id: int) -> None:
    # given a synced corp
    run_sync(corp_id)
    before = snapshot(db)
    # when it is synced again
    summary = run_sync(corp_id)
    # then nothing is counted and every row is identical (updated_at included)
    assert summary.total == Counts()
    assert snapshot(db) == before


def test_a_crashed_sync_resumes_from_its_checkpoint(
    db: sessionmaker[Session], emu: RunningEmulator, corp_id: int
) -> None:
    # given a sync that dies after 3 customer pages
    crashing = counting_client(db, corp_id, fail_after_pages=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_sync(corp_id, client=crashing)
    with db() as s:
        assert s.scalars(select(SyncRun.status)).one() == SyncStatus.FAILED
    # when the sync runs again
    resumed = counting_client(db, corp_id)
    summary = run_sync(corp_id, client=resumed)
    # then it continued the same run from the 4th page, skipping finished stages, and the mirror is exact
    full = counting_client(db, corp_id)
    run_sync(corp_id, client=full)
    assert summary.resumed
    assert resumed.calls["batch_get_by_user"] == full.calls["batch_get_by_user"] - 3
    assert "list_departments" not in resumed.calls
    assert summary.changes["customers"] == Counts(added=emu.state.counts()["customers"])
    assert_mirrors(db, corp_id, emu.state)


def test_a_dead_run_is_resumed_and_a_live_one_refuses(db: sessionmaker[Session], corp_id: int) -> None:
    # given a run left "running" by a process that is still beating
    with db.begin() as s:
        s.add(SyncRun(corp_id=corp_id, scope="tags", checkpoint={}, stats={}))
    # then another sync of the corp refuses to start
    with pytest.raises(SyncBusy):
        run_sync(corp_id, only="tags")
    # when its heartbeat goes stale (its process died)
    with db.begin() as s:
        s.execute(update(SyncRun).values(heartbeat_at=now_utc() - timedelta(hours=1)))
    summary = run_sync(corp_id, only="tags")
    # then the next sync takes that run over
    assert summary.resumed
    with db() as s:
        assert s.scalars(select(SyncRun.status)).all() == [SyncStatus.DONE]


def test_what_wecom_no_longer_has_is_removed(db: sessionmaker[Session], emu: RunningEmulator, corp_id: int) -> None:
    # given a synced corp
    run_sync(corp_id)
    state = emu.state
    # when, without any callback, a follow goes, a remark changes, a tag is deleted and a group vanishes
    gone = next(state.follows())
    state.remove_follow(gone.userid, gone.external_userid)
    changed = next(state.follows())
    state.update_follow(changed.userid, changed.external_userid, remark="改过的备注")
    tag_id = next(t for t in state.tags if any(t in f.tag_ids for f in state.follows()))
    state.delete_tags([tag_id], [])
    chat_id = next(iter(state.groups))
    del state.groups[chat_id]
    summary = run_sync(corp_id)
    # then the follow is removed, the group dismissed, the tag deleted, the remark updated
    assert summary.changes["follows"] == Counts(updated=1, removed=1)
    assert summary.changes["tags"].removed == 1
    assert summary.changes["group_chats"] == Counts(removed=1)
    with db() as s:
        assert s.scalars(select(Follow.status).where(Follow.status != FollowStatus.ACTIVE)).all() == ["removed"]
        assert s.scalar(select(Tag.id).where(Tag.wecom_id == tag_id)) is None
        dismissed = s.scalars(select(GroupChat).where(GroupChat.chat_id == chat_id)).one()
        assert (dismissed.status, dismissed.dismissed_at is not None) == (GroupStatus.DISMISSED, True)
    mirror_state_without_ended(db, corp_id, emu)


def mirror_state_without_ended(db: sessionmaker[Session], corp_id: int, emu: RunningEmulator) -> None:
    """After removals, the live part of the mirror still equals the emulator (ended rows keep their history)."""
    from tests.sync.test_sync_support import expected_from, mirror_of

    mirror, expected = mirror_of(db, corp_id), expected_from(emu.state)
    mirror["follows"] = {k: v for k, v in mirror["follows"].items() if v[-1] == FollowStatus.ACTIVE}
    mirror["follow_tags"] = {k: v for k, v in mirror["follow_tags"].items() if k in mirror["follows"]}
    mirror["groups"] = {k: v for k, v in mirror["groups"].items() if v[-1] == GroupStatus.ACTIVE}
    mirror["members"] = {k: v for k, v in mirror["members"].items() if k[0] in mirror["groups"]}
    for name in ("follows", "follow_tags", "tags", "tag_groups", "groups", "members"):
        assert mirror[name] == expected[name], f"{name} differ"


def test_a_follow_seen_again_is_reactivated(db: sessionmaker[Session], emu: RunningEmulator, corp_id: int) -> None:
    # given a follow the last sync marked removed
    run_sync(corp_id, only="customers")
    follow = next(emu.state.follows())
    emu.state.remove_follow(follow.userid, follow.external_userid)
    run_sync(corp_id, only="customers")
    # when WeCom lists it again
    emu.state.add_follow(follow)
    summary = run_sync(corp_id, only="customers")
    # then it is active again
    assert summary.changes["follows"] == Counts(updated=1)
    with db() as s:
        assert set(s.scalars(select(Follow.status))) == {FollowStatus.ACTIVE}


@pytest.mark.parametrize(
    ("only", "types"),
    [
        ("employees", {"departments", "employees"}),
        ("tags", {"tag_groups", "tags", "follow_tags"}),
        ("customers", {"customers", "follows", "follow_tags"}),
        ("groups", {"group_chats", "group_members"}),
    ],
)
def test_only_syncs_one_scope(db: sessionmaker[Session], corp_id: int, only: str, types: set[str]) -> None:
    # when one scope is synced
    summary = run_sync(corp_id, only=only)
    # then only its object types are reported, and (for tags) nothing else is written
    assert set(summary.changes) == types
    assert summary.total.added > 0
    if only == "tags":
        with db() as s:
            assert s.scalar(select(func.count()).select_from(Employee)) == 0


def test_an_unknown_scope_is_refused(corp_id: int) -> None:
    with pytest.raises(SyncError, match="unknown scope"):
        run_sync(corp_id, only="everything")


def test_progress_is_reported(corp_id: int) -> None:
    seen: list[tuple[int, int | None, str]] = []
    run_sync(corp_id, progress=lambda done, total, label: seen.append((done, total, label)))
    assert {label for _, _, label in seen} == {"employees", "tag groups", "customers", "groups"}
