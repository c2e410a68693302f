"""Mirror actions for corp tags and customer groups: change counts, idempotency, set replacement."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from siyu.contacts.actions import do_upsert_contacts
from siyu.contacts.models import Customer
from siyu.core.counts import Counts
from siyu.groups.actions import do_dismiss_group_chat, do_upsert_group_chat
from siyu.groups.models import GroupChat, GroupMember, GroupStatus
from siyu.tags.actions import do_delete_tag, do_delete_tag_group, do_sync_corp_tags
from siyu.tags.models import FollowTag, Tag, TagGroup
from siyu.wecom import payloads
from tests.factories import make_corp


@pytest.fixture
def corp_id(db: sessionmaker[Session]) -> int:
    return make_corp(db).corp_id


def _group(group_id: str, *tags: str, **extra: Any) -> payloads.CorpTagGroup:
    data = {"group_id": group_id, "group_name": f"组{group_id}", "order": 1, "create_time": 1700000000, **extra}
    data["tag"] = [{"id": t, "name": f"标签{t}", "order": 1, "create_time": 1700000000} for t in tags]
    return payloads.CorpTagGroup.model_validate(data)


def _wecom_ids(session: Session, model: type[Tag] | type[TagGroup]) -> set[str]:
    return set(session.scalars(select(model.wecom_id)))


def test_tags_sync_is_idempotent_and_complete_sync_deletes_the_unlisted(
    db: sessionmaker[Session], corp_id: int
) -> None:
    groups = [_group("g1", "t1", "t2"), _group("g2", "t3")]
    with db.begin() as s:
        first = do_sync_corp_tags(s, corp_id, groups)
    with db.begin() as s:
        again = do_sync_corp_tags(s, corp_id, groups)
    with db.begin() as s:
        shrunk = do_sync_corp_tags(s, corp_id, [_group("g1", "t1")])
        assert (_wecom_ids(s, TagGroup), _wecom_ids(s, Tag)) == ({"g1"}, {"t1"})
    assert (first, again, shrunk) == (Counts(added=5), Counts(), Counts(removed=3))


def test_partial_tag_sync_touches_only_the_given_groups(db: sessionmaker[Session], corp_id: int) -> None:
    # given two groups
    with db.begin() as s:
        do_sync_corp_tags(s, corp_id, [_group("g1", "t1", "t2"), _group("g2", "t3")])
    # when g1 is re-fetched after a callback, without t2, renamed, and g2 is not in the answer
    with db.begin() as s:
        counts = do_sync_corp_tags(s, corp_id, [_group("g1", "t1", group_name="新名字")], complete=False)
        # then g1 is renamed and loses t2; g2 stays
        assert (_wecom_ids(s, TagGroup), _wecom_ids(s, Tag)) == ({"g1", "g2"}, {"t1", "t3"})
    assert counts == Counts(updated=1, removed=1)


def test_tags_flagged_deleted_are_removed(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_sync_corp_tags(s, corp_id, [_group("g1", "t1"), _group("g2", "t2")])
    with db.begin() as s:
        counts = do_sync_corp_tags(s, corp_id, [_group("g2", "t2", deleted=True)], complete=False)
        assert _wecom_ids(s, TagGroup) == {"g1"}
    assert counts == Counts(removed=2)


def _tag_a_follow(db: sessionmaker[Session], corp_id: int, *tag_ids: str) -> None:
    row = payloads.ContactWithFollow.model_validate(
        {"external_contact": {"external_userid": "wm1"}, "follow_info": {"userid": "u1", "tag_id": list(tag_ids)}}
    )
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, [row])


def test_deleting_a_tag_untags_follows_and_drops_an_emptied_group(db: sessionmaker[Session], corp_id: int) -> None:
    # given a follow tagged t1 (the only tag of g1) and t2
    with db.begin() as s:
        do_sync_corp_tags(s, corp_id, [_group("g1", "t1"), _group("g2", "t2", "t3")])
    _tag_a_follow(db, corp_id, "t1", "t2")
    # when t1 is deleted, twice
    with db.begin() as s:
        first = do_delete_tag(s, corp_id, "t1")
    with db.begin() as s:
        second = do_delete_tag(s, corp_id, "t1")
        # then the follow keeps only t2 and g1 is gone (as in WeCom)
        assert len(s.scalars(select(FollowTag.tag_id)).all()) == 1
        assert _wecom_ids(s, TagGroup) == {"g2"}
    assert (first, second) == (Counts(removed=2), Counts())


def test_deleting_a_tag_group_deletes_its_tags(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_sync_corp_tags(s, corp_id, [_group("g1", "t1", "t2"), _group("g2", "t3")])
    _tag_a_follow(db, corp_id, "t1", "t3")
    with db.begin() as s:
        counts = do_delete_tag_group(s, corp_id, "g1")
        assert (_wecom_ids(s, TagGroup), _wecom_ids(s, Tag)) == ({"g2"}, {"t3"})
        assert len(s.scalars(select(FollowTag.tag_id)).all()) == 1
    with db.begin() as s:
        assert do_delete_tag_group(s, corp_id, "g1") == Counts()
    assert counts == Counts(removed=3)


def _chat(*members: tuple[str, int], name: str = "客户群") -> payloads.GroupChatDetail:
    return payloads.GroupChatDetail.model_validate(
        {
            "chat_id": "wr1",
            "name": name,
            "owner": "u1",
            "create_time": 1700000000,
            "member_list": [{"userid": u, "type": t, "join_time": 1700000100, "join_scene": 1} for u, t in members],
            "member_version": "v1",
        }
    )


def test_group_upsert_replaces_members_and_links_customers(db: sessionmaker[Session], corp_id: int) -> None:
    # given a mirrored customer wm1
    _tag_a_follow(db, corp_id)
    # when a group with u1, wm1 and wm2 is upserted, twice, then again without wm2 but with wm3
    with db.begin() as s:
        first = do_upsert_group_chat(s, corp_id, _chat(("u1", 1), ("wm1", 2), ("wm2", 2)))
    with db.begin() as s:
        again = do_upsert_group_chat(s, corp_id, _chat(("u1", 1), ("wm1", 2), ("wm2", 2)))
    with db.begin() as s:
        changed = do_upsert_group_chat(s, corp_id, _chat(("u1", 1), ("wm1", 2), ("wm3", 2)), wecom_status=1)
        members = dict(s.execute(select(GroupMember.userid, GroupMember.customer_id)).all())
        wm1 = s.scalars(select(Customer.id)).one()
    # then members are replaced and wm1 is linked to its customer
    assert (first, again, changed) == (Counts(added=4), Counts(), Counts(added=1, updated=1, removed=1))
    assert members == {"u1": None, "wm1": wm1, "wm3": None}


def test_dismissing_a_group_is_idempotent_and_relisting_reactivates(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_upsert_group_chat(s, corp_id, _chat(("u1", 1)))
    with db.begin() as s:
        first = do_dismiss_group_chat(s, corp_id, "wr1")
    with db.begin() as s:
        second = do_dismiss_group_chat(s, corp_id, "wr1")
        assert s.scalars(select(GroupChat.status)).one() == GroupStatus.DISMISSED
    with db.begin() as s:
        back = do_upsert_group_chat(s, corp_id, _chat(("u1", 1)))
        assert s.scalars(select(GroupChat.dismissed_at)).one() is None
    assert (first, second, back) == (Counts(removed=1), Counts(), Counts(updated=1))
