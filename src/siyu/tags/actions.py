"""Mirror writes for corp tag groups and tags (企业标签).

Like the contact mirror actions: set-based, flush only, no write when nothing changed, and the
caller (a sync run or a processed callback) records the audit row.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.contacts.models import Follow
from siyu.core.clock import from_timestamp
from siyu.core.counts import Counts
from siyu.segments.changes import WHOLE_CORP_AFTER, mark_corp_dirty, mark_dirty
from siyu.sync.bulk import Changes, Row, chunks, delete_ids, total, upsert_rows
from siyu.tags.models import FollowTag, Tag, TagGroup
from siyu.wecom import payloads

TAG_GROUP = TagGroup.__table__
TAG = Tag.__table__
FOLLOW_TAG = FollowTag.__table__


def _group_row(group: payloads.CorpTagGroup) -> Row:
    return {
        "wecom_id": group.group_id,
        "name": group.group_name,
        "order": group.order,
        "created_at": from_timestamp(group.create_time),
    }


def _tag_row(group_id: int, tag: payloads.CorpTag) -> Row:
    return {
        "wecom_id": tag.id,
        "group_id": group_id,
        "name": tag.name,
        "order": tag.order,
        "created_at": from_timestamp(tag.create_time),
    }


def do_sync_corp_tags_by_type(
    session: Session, corp_id: int, groups: Sequence[payloads.CorpTagGroup], *, complete: bool = True
) -> Changes:
    """Mirror tag groups and their tags; see do_sync_corp_tags."""
    live = [g for g in groups if not g.deleted]
    upserted = upsert_rows(session, TAG_GROUP, corp_id=corp_id, key=("wecom_id",), rows=[_group_row(g) for g in live])
    group_ids = {k[0]: v for k, v in upserted.ids.items()}
    tag_rows = [_tag_row(group_ids[g.group_id], t) for g in live for t in g.tag if not t.deleted]
    tags = upsert_rows(session, TAG, corp_id=corp_id, key=("wecom_id",), rows=tag_rows)
    changes = {"tag_groups": upserted.counts, "tags": tags.counts, "follow_tags": Counts()}
    keep_tags = {row["wecom_id"] for row in tag_rows}
    if complete:
        stale_groups = _stale_ids(session, corp_id, TagGroup, keep={g.group_id for g in live})
        stale_tags = _stale_ids(session, corp_id, Tag, keep=keep_tags)
    else:
        stale_groups = _ids_of(session, corp_id, TagGroup, {g.group_id for g in groups if g.deleted})
        stale_tags = _absent_tags_of(session, corp_id, [group_ids[g.group_id] for g in live], keep_tags)
    _remove(session, corp_id, stale_tags, stale_groups, changes)
    session.flush()
    return changes


def do_sync_corp_tags(
    session: Session, corp_id: int, groups: Sequence[payloads.CorpTagGroup], *, complete: bool = True
) -> Counts:
    """Mirror get_corp_tag_list.

    complete=True: `groups` is every group, so any other group or tag is deleted.
    complete=False: just these groups were re-fetched (after a tag callback); their tags that
    are absent are deleted, other groups are left alone. Entries flagged `deleted` are removed.
    """
    return total(do_sync_corp_tags_by_type(session, corp_id, groups, complete=complete))


def _stale_ids(session: Session, corp_id: int, model: type[Tag] | type[TagGroup], *, keep: set[str]) -> list[int]:
    rows = session.execute(select(model.id, model.wecom_id).where(model.corp_id == corp_id)).all()
    return [row.id for row in rows if row.wecom_id not in keep]


def _ids_of(session: Session, corp_id: int, model: type[Tag] | type[TagGroup], wecom_ids: set[str]) -> list[int]:
    found: list[int] = []
    for part in chunks(sorted(wecom_ids)):
        stmt = select(model.id).where(model.corp_id == corp_id, model.wecom_id.in_(part))
        found.extend(session.execute(stmt).scalars())
    return found


def _absent_tags_of(session: Session, corp_id: int, group_ids: list[int], keep: set[str]) -> list[int]:
    found: list[int] = []
    for part in chunks(group_ids):
        stmt = select(Tag.id, Tag.wecom_id).where(Tag.corp_id == corp_id, Tag.group_id.in_(part))
        found.extend(row.id for row in session.execute(stmt) if row.wecom_id not in keep)
    return found


def _remove(session: Session, corp_id: int, tag_ids: list[int], group_ids: list[int], changes: Changes) -> None:
    """Delete tags and groups with their follow tags explicitly (not relying on SQLite's FK pragma)."""
    tag_ids = sorted(set(tag_ids) | set(_tags_in_groups(session, group_ids)))
    changes["follow_tags"].removed += _delete_follow_tags(session, corp_id, tag_ids)
    changes["tags"].removed += delete_ids(session, TAG, tag_ids)
    changes["tag_groups"].removed += delete_ids(session, TAG_GROUP, group_ids)


def _tags_in_groups(session: Session, group_ids: list[int]) -> list[int]:
    found: list[int] = []
    for part in chunks(group_ids):
        found.extend(session.execute(select(Tag.id).where(Tag.group_id.in_(part))).scalars())
    return found


def _delete_follow_tags(session: Session, corp_id: int, tag_ids: list[int]) -> int:
    """Delete the tags' follow_tag rows; the customers who had them are marked for the segment indexes."""
    follow_ids: list[int] = []
    for part in chunks(tag_ids):
        stmt = FOLLOW_TAG.delete().where(FOLLOW_TAG.c.tag_id.in_(part)).returning(FOLLOW_TAG.c.follow_id)
        follow_ids.extend(session.execute(stmt).scalars())
    if len(follow_ids) > WHOLE_CORP_AFTER:
        mark_corp_dirty(session, corp_id)
    else:
        for part in chunks(sorted(set(follow_ids))):
            mark_dirty(session, corp_id, session.scalars(select(Follow.customer_id).where(Follow.id.in_(part))))
    return len(follow_ids)


def do_delete_tag(session: Session, corp_id: int, wecom_id: str) -> Counts:
    """A corp tag was deleted in WeCom. Its group goes too once empty, as WeCom does."""
    tag = session.execute(select(Tag.id, Tag.group_id).where(Tag.corp_id == corp_id, Tag.wecom_id == wecom_id)).first()
    if tag is None:
        return Counts()
    changes: Changes = {"tag_groups": Counts(), "tags": Counts(), "follow_tags": Counts()}
    _remove(session, corp_id, [tag.id], [], changes)
    if session.execute(select(Tag.id).where(Tag.group_id == tag.group_id).limit(1)).first() is None:
        _remove(session, corp_id, [], [tag.group_id], changes)
    session.flush()
    return Counts(removed=changes["tags"].removed + changes["tag_groups"].removed)


def do_delete_tag_group(session: Session, corp_id: int, wecom_id: str) -> Counts:
    """A tag group was deleted in WeCom, and with it all its tags."""
    group_ids = _ids_of(session, corp_id, TagGroup, {wecom_id})
    if not group_ids:
        return Counts()
    changes: Changes = {"tag_groups": Counts(), "tags": Counts(), "follow_tags": Counts()}
    _remove(session, corp_id, [], group_ids, changes)
    session.flush()
    return Counts(removed=changes["tags"].removed + changes["tag_groups"].removed)
