"""Mirror actions for departments, employees, customers and follows: change counts and idempotency."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from siyu.contacts.actions import (
    do_apply_customer_detail,
    do_end_follow,
    do_mark_employee_resigned,
    do_sync_departments,
    do_sync_employees,
    do_upsert_contact_page,
    do_upsert_contacts,
    do_upsert_employee,
)
from siyu.contacts.models import Customer, Department, Employee, EmployeeStatus, Follow, FollowStatus
from siyu.core.counts import Counts
from siyu.tags.actions import do_sync_corp_tags
from siyu.tags.models import FollowTag, Tag
from siyu.wecom import payloads
from tests.factories import make_corp


@pytest.fixture
def corp_id(db: sessionmaker[Session]) -> int:
    return make_corp(db).corp_id


def _user(userid: str, **extra: Any) -> payloads.User:
    return payloads.User.model_validate({"userid": userid, "name": userid.title(), "department": [1], **extra})


def _row(external_userid: str, userid: str = "zhangsan", **follow: Any) -> payloads.ContactWithFollow:
    return payloads.ContactWithFollow.model_validate(
        {
            "external_contact": {"external_userid": external_userid, "name": f"客户{external_userid}", "type": 1},
            "follow_info": {"userid": userid, "remark": "备注", "createtime": 1700000000, **follow},
        }
    )


def _tags(*tag_ids: str) -> list[payloads.CorpTagGroup]:
    tags = [{"id": t, "name": f"name-{t}"} for t in tag_ids]
    return [payloads.CorpTagGroup.model_validate({"group_id": "g1", "group_name": "G", "tag": tags})]


def _follow(session: Session, external_userid: str, userid: str = "zhangsan") -> Follow:
    return session.execute(
        select(Follow)
        .join(Customer, Customer.id == Follow.customer_id)
        .join(Employee, Employee.id == Follow.employee_id)
        .where(Customer.external_userid == external_userid, Employee.userid == userid)
    ).scalar_one()


def _follow_tags(session: Session, external_userid: str, userid: str = "zhangsan") -> set[str]:
    follow = _follow(session, external_userid, userid)
    stmt = select(Tag.wecom_id).join(FollowTag, FollowTag.tag_id == Tag.id).where(FollowTag.follow_id == follow.id)
    return set(session.scalars(stmt))


def test_departments_are_mirrored_and_a_second_sync_changes_nothing(db: sessionmaker[Session], corp_id: int) -> None:
    # given two departments
    deps = [payloads.Department(id=1, name="总部"), payloads.Department(id=2, name="销售", parentid=1, order=5)]
    with db.begin() as s:
        first = do_sync_departments(s, corp_id, deps)
    # when the same list is synced again, then a renamed one, then one disappears
    with db.begin() as s:
        again = do_sync_departments(s, corp_id, deps)
    with db.begin() as s:
        renamed = do_sync_departments(s, corp_id, [deps[0], deps[1].model_copy(update={"name": "销售部"})])
    with db.begin() as s:
        dropped = do_sync_departments(s, corp_id, [deps[0]])
        names = list(s.scalars(select(Department.name)))
    # then each reports exactly what changed
    assert (first, again, renamed, dropped) == (Counts(added=2), Counts(), Counts(updated=1), Counts(removed=1))
    assert names == ["总部"]


@pytest.mark.parametrize(
    ("wecom_status", "expected"),
    [
        (1, EmployeeStatus.ACTIVE),
        (2, EmployeeStatus.DISABLED),
        (4, EmployeeStatus.INACTIVE),
        (5, EmployeeStatus.RESIGNED),
    ],
)
def test_employee_status_follows_wecom(
    db: sessionmaker[Session], corp_id: int, wecom_status: int, expected: EmployeeStatus
) -> None:
    # given a WeCom user with a status
    with db.begin() as s:
        # when it is upserted
        do_upsert_employee(s, corp_id, _user("lisi", status=wecom_status))
        # then the status is mapped
        assert s.scalars(select(Employee.status)).one() == expected


def test_employee_sync_sets_follow_users_and_resigns_the_missing(db: sessionmaker[Session], corp_id: int) -> None:
    # given three employees, two of them follow users
    users = [_user("a"), _user("b"), _user("c")]
    with db.begin() as s:
        first = do_sync_employees(s, corp_id, users, follow_userids=["a", "b"])
    with db.begin() as s:
        again = do_sync_employees(s, corp_id, users, follow_userids=["a", "b"])
    # when c leaves WeCom's list
    with db.begin() as s:
        left = do_sync_employees(s, corp_id, users[:2], follow_userids=["a", "b"])
        rows = {e.userid: (e.status, e.is_follow_user) for e in s.scalars(select(Employee))}
    # then c is resigned, and only that counted
    assert (first, again, left) == (Counts(added=3), Counts(), Counts(removed=1))
    assert rows == {"a": ("active", True), "b": ("active", True), "c": ("resigned", False)}


def test_mark_resigned_is_idempotent(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_upsert_employee(s, corp_id, _user("a"))
    with db.begin() as s:
        first = do_mark_employee_resigned(s, corp_id, "a")
    with db.begin() as s:
        second = do_mark_employee_resigned(s, corp_id, "a")
    assert (first, second) == (Counts(removed=1), Counts())


def test_contact_page_upserts_customers_follows_and_tags(db: sessionmaker[Session], corp_id: int) -> None:
    # given tags and a page of two customers of one employee
    with db.begin() as s:
        do_sync_corp_tags(s, corp_id, _tags("t1", "t2", "t3"))
    page = [_row("wm1", tag_id=["t1", "t2"], remark_mobiles=["13800000001"]), _row("wm2", tag_id=["t3"])]
    # when it is applied twice
    with db.begin() as s:
        first = do_upsert_contact_page(s, corp_id, page)
    with db.begin() as s:
        before = {f.id: f.updated_at for f in s.scalars(select(Follow))}
    with db.begin() as s:
        second = do_upsert_contacts(s, corp_id, page)
    # then the first adds everything, the second nothing, and no row was rewritten
    assert first == {"customers": Counts(added=2), "follows": Counts(added=2), "follow_tags": Counts(added=3)}
    assert second == Counts()
    with db() as s:
        assert {f.id: f.updated_at for f in s.scalars(select(Follow))} == before
        assert _follow_tags(s, "wm1") == {"t1", "t2"}
        assert _follow(s, "wm1").remark_mobiles == ["13800000001"]


def test_a_changed_follow_counts_one_update_and_replaces_its_tags(db: sessionmaker[Session], corp_id: int) -> None:
    # given a mirrored customer with tags t1, t2
    with db.begin() as s:
        do_sync_corp_tags(s, corp_id, _tags("t1", "t2", "t3"))
        do_upsert_contacts(s, corp_id, [_row("wm1", tag_id=["t1", "t2"])])
    # when WeCom reports a new remark and tags t2, t3 (plus an unknown tag)
    with db.begin() as s:
        changes = do_upsert_contact_page(s, corp_id, [_row("wm1", remark="新备注", tag_id=["t2", "t3", "tX"])])
    # then one follow is updated, one tag added, one removed; the unknown tag is skipped
    assert changes == {"customers": Counts(), "follows": Counts(updated=1), "follow_tags": Counts(added=1, removed=1)}
    with db() as s:
        assert _follow(s, "wm1").remark == "新备注"
        assert _follow_tags(s, "wm1") == {"t2", "t3"}


def test_a_follow_of_an_unknown_employee_gets_a_placeholder_employee(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, [_row("wm1", userid="newbie")])
    with db() as s:
        assert s.scalars(select(Employee.userid)).all() == ["newbie"]


def test_end_follow_is_idempotent_and_a_later_listing_reactivates(db: sessionmaker[Session], corp_id: int) -> None:
    # given an active follow
    with db.begin() as s:
        do_upsert_contacts(s, corp_id, [_row("wm1")])
    status = FollowStatus.CUSTOMER_DELETED_EMPLOYEE
    # when it is ended twice
    with db.begin() as s:
        first = do_end_follow(s, corp_id, userid="zhangsan", external_userid="wm1", status=status)
    with db.begin() as s:
        second = do_end_follow(s, corp_id, userid="zhangsan", external_userid="wm1", status=status)
        ended = _follow(s, "wm1")
        assert (ended.status, ended.ended_at is not None) == (status, True)
    # then only the first counts; a follow that WeCom lists again is active again
    with db.begin() as s:
        back = do_upsert_contacts(s, corp_id, [_row("wm1")])
        assert (_follow(s, "wm1").status, _follow(s, "wm1").ended_at) == (FollowStatus.ACTIVE, None)
    assert (first, second, back) == (Counts(removed=1), Counts(), Counts(updated=1))


def test_end_follow_of_an_unknown_pair_is_a_no_op(db: sessionmaker[Session], corp_id: int) -> None:
    with db.begin() as s:
        counts = do_end_follow(s, corp_id, userid="x", external_userid="wm0", status=FollowStatus.TRANSFERRED)
    assert counts == Counts()


def test_customer_detail_upserts_every_follow_and_ends_none(db: sessionmaker[Session], corp_id: int) -> None:
    # given a customer followed by a and b
    with db.begin() as s:
        do_sync_corp_tags(s, corp_id, _tags("t1"))
        do_upsert_contacts(s, corp_id, [_row("wm1", userid="a"), _row("wm1", userid="b")])
    detail = payloads.ExternalContactDetail.model_validate(
        {
            "external_contact": {"external_userid": "wm1", "name": "新名字"},
            "follow_user": [
                {"userid": "a", "remark": "备注", "createtime": 1700000000, "tags": [{"tag_id": "t1", "type": 1}]},
                {"userid": "c", "remark_company": "腾讯", "createtime": 1700000001},
            ],
        }
    )
    # when externalcontact/get lists a (now tagged) and c, but not b
    with db.begin() as s:
        counts = do_apply_customer_detail(s, corp_id, detail)
    # then the customer is renamed, c added, a tagged, and b left as it was
    assert counts == Counts(added=2, updated=1)
    with db() as s:
        assert s.scalars(select(Customer.name)).one() == "新名字"
        assert _follow_tags(s, "wm1", "a") == {"t1"}
        assert _follow(s, "wm1", "b").status == FollowStatus.ACTIVE
        assert _follow(s, "wm1", "c").remark_corp_name == "腾讯"
