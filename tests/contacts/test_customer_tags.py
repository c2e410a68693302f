"""Editing a follow's tags: local rows + a mark_tag outbox row in one transaction, then WeCom (the emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.accounts.models import Role
from siyu.contacts.models import Customer, Employee, Follow, FollowStatus
from siyu.core.tasks import configure_queue
from siyu.outbox.models import WeComOutbox
from siyu.outbox.tasks import send_one
from siyu.sync.flows import run_sync
from siyu.tags.models import FollowTag, Tag
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from tests.console_api_support import add, api_client, console_client, tag, tag_group
from tests.factories import make_corp
from tests.sync.test_sync_support import corp_for


@dataclass
class Synced:
    emu: RunningEmulator
    db: sessionmaker[Session]
    corp_id: int

    def a_follow(self, *, other_than: int | None = None) -> tuple[int, int, str, str]:
        """(customer id, follow id, userid, external_userid) of an active follow."""
        with self.db() as s:
            row = s.execute(
                sa.select(Customer.id, Follow.id, Employee.userid, Customer.external_userid)
                .join(Follow, Follow.customer_id == Customer.id)
                .join(Employee, Employee.id == Follow.employee_id)
                .where(
                    Follow.corp_id == self.corp_id,
                    Follow.status == FollowStatus.ACTIVE,
                    Customer.id != (other_than or 0),
                )
                .order_by(Follow.id)
                .limit(1)
            ).one()
        return row[0], row[1], row[2], row[3]

    def tags(self) -> dict[str, int]:
        """WeCom tag id → siyu tag id."""
        with self.db() as s:
            return dict(s.execute(sa.select(Tag.wecom_id, Tag.id).where(Tag.corp_id == self.corp_id)).all())

    def follow_tags(self, follow_id: int) -> set[int]:
        with self.db() as s:
            return set(s.scalars(sa.select(FollowTag.tag_id).where(FollowTag.follow_id == follow_id)))

    def count(self, sql: str) -> int:
        with self.db() as s:
            return int(s.execute(sa.text(sql)).scalar_one())


@pytest.fixture
def synced(db: sessionmaker[Session]) -> Iterator[Synced]:
    configure_queue()  # a real queue with no consumer: the test sends outbox rows itself
    with start_emulator(employees=4, customers=30, seed=5) as emu:
        corp_id = corp_for(db, emu)
        run_sync(corp_id)
        yield Synced(emu, db, corp_id)


def test_tag_edit_writes_outbox_and_reaches_wecom(synced: Synced) -> None:
    # given a follow and a tag set different from its current one
    customer_id, follow_id, userid, ext = synced.a_follow()
    by_wecom = synced.tags()
    current = synced.follow_tags(follow_id)
    wanted = {t for t in list(by_wecom.values())[:3] if t not in current} | set(list(current)[1:])
    client = api_client(synced.db, synced.corp_id, Role.OPERATOR)
    # when an operator saves it
    r = client.put(f"/api/customers/{customer_id}/follows/{follow_id}/tags", json={"tag_ids": sorted(wanted)})
    # then the local rows change at once and one mark_tag row waits in the outbox
    assert r.status_code == 200, r.text
    assert {t["id"] for t in r.json()["tags"]} == wanted
    assert r.json()["tag_sync"]["status"] == "pending"
    assert synced.follow_tags(follow_id) == wanted
    with synced.db() as s:
        (row,) = s.scalars(sa.select(WeComOutbox).where(WeComOutbox.kind == "mark_tag")).all()
    ids = {v: k for k, v in by_wecom.items()}
    assert row.payload["userid"] == userid and row.payload["external_userid"] == ext
    assert set(row.payload["add"]) == {ids[t] for t in wanted - current}
    assert set(row.payload["remove"]) == {ids[t] for t in current - wanted}
    # and once the row is sent, WeCom has exactly the new set
    assert send_one(row.id) == "sent"
    emu_follow = synced.emu.state.follow(userid, ext)
    assert emu_follow is not None
    assert set(emu_follow.tag_ids) == {ids[t] for t in wanted}
    detail = client.get(f"/api/customers/{customer_id}").json()
    assert next(f for f in detail["follows"] if f["id"] == follow_id)["tag_sync"]["status"] == "sent"


def test_tag_edit_is_on_the_timeline(synced: Synced) -> None:
    customer_id, follow_id, _, _ = synced.a_follow()
    new_tag = next(t for t in synced.tags().values() if t not in synced.follow_tags(follow_id))
    client = api_client(synced.db, synced.corp_id, Role.ADMIN)
    wanted = sorted(synced.follow_tags(follow_id) | {new_tag})
    assert (
        client.put(f"/api/customers/{customer_id}/follows/{follow_id}/tags", json={"tag_ids": wanted}).status_code
        == 200
    )
    r = client.get(f"/api/customers/{customer_id}/timeline")
    assert r.status_code == 200, r.text
    latest = r.json()["items"][0]
    assert latest["kind"] == "tags_changed"
    assert latest["actor"].startswith("user:")
    assert latest["detail"]["added_ids"] == [new_tag]
    assert latest["detail"]["outbox_id"] > 0


def test_saving_the_same_tags_sends_nothing(synced: Synced) -> None:
    customer_id, follow_id, _, _ = synced.a_follow()
    client = api_client(synced.db, synced.corp_id, Role.ADMIN)
    current = sorted(synced.follow_tags(follow_id))
    r = client.put(f"/api/customers/{customer_id}/follows/{follow_id}/tags", json={"tag_ids": current})
    assert r.status_code == 200, r.text
    assert synced.count("SELECT count(*) FROM wecom_outbox") == 0


def test_failed_send_is_shown_with_its_error(synced: Synced) -> None:
    customer_id, follow_id, _, _ = synced.a_follow()
    new_tag = next(t for t in synced.tags().values() if t not in synced.follow_tags(follow_id))
    client = api_client(synced.db, synced.corp_id, Role.ADMIN)
    body = {"tag_ids": sorted(synced.follow_tags(follow_id) | {new_tag})}
    assert client.put(f"/api/customers/{customer_id}/follows/{follow_id}/tags", json=body).status_code == 200
    outbox_id = synced.count("SELECT max(id) FROM wecom_outbox")
    # when WeCom refuses it for good
    synced.emu.inject_error("/cgi-bin/externalcontact/mark_tag", 40068)
    assert send_one(outbox_id) == "failed"
    # then the follow shows the failure and its error
    detail = client.get(f"/api/customers/{customer_id}").json()
    sync = next(f for f in detail["follows"] if f["id"] == follow_id)["tag_sync"]
    assert sync["status"] == "failed" and "40068" in sync["error"]


def test_staff_edit_their_own_follow(synced: Synced) -> None:
    customer_id, follow_id, userid, _ = synced.a_follow()
    client = api_client(synced.db, synced.corp_id, Role.STAFF, employee_userid=userid)
    new_tag = next(t for t in synced.tags().values() if t not in synced.follow_tags(follow_id))
    body = {"tag_ids": sorted(synced.follow_tags(follow_id) | {new_tag})}
    r = client.put(f"/api/customers/{customer_id}/follows/{follow_id}/tags", json=body)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("unknown tag", 422, "invalid"),
        ("tag of another corp", 422, "invalid"),
        ("follow of another customer", 404, "not_found"),
        ("staff, follow of a colleague", 404, "not_found"),
        ("compliance may not write", 403, "forbidden"),
        ("ended follow", 409, "conflict"),
        ("not a list", 422, "invalid"),
    ],
)
def test_bad_tag_edits_write_nothing(synced: Synced, case: str, status: int, code: str) -> None:
    # given a follow, and the state before
    customer_id, follow_id, userid, _ = synced.a_follow()
    before = synced.follow_tags(follow_id)
    a_tag = next(t for t in synced.tags().values() if t not in before)
    body: object = {"tag_ids": sorted(before | {a_tag})}
    role, staff_of = Role.ADMIN, None
    if case == "unknown tag":
        body = {"tag_ids": [a_tag, 10**9]}
    elif case == "tag of another corp":
        other = make_corp(synced.db, wecom_corpid="wwelsewhere00000").corp_id
        (group,) = add(synced.db, tag_group(other, "别家"))
        (foreign,) = add(synced.db, tag(other, group, "别家标签"))
        body = {"tag_ids": [foreign]}
    elif case == "follow of another customer":
        customer_id = synced.a_follow(other_than=customer_id)[0]
    elif case == "staff, follow of a colleague":
        with synced.db() as s:
            staff_of = s.scalar(
                sa.select(Employee.userid).where(Employee.userid != userid, Employee.corp_id == synced.corp_id)
            )
        role = Role.STAFF
    elif case == "compliance may not write":
        role = Role.COMPLIANCE
    elif case == "ended follow":
        with synced.db.begin() as s:
            s.execute(sa.update(Follow).where(Follow.id == follow_id).values(status=FollowStatus.TRANSFERRED))
    elif case == "not a list":
        body = {"tag_ids": "1,2"}
    client = api_client(synced.db, synced.corp_id, role, employee_userid=staff_of)
    # when the edit is attempted
    r = client.put(f"/api/customers/{customer_id}/follows/{follow_id}/tags", json=body)
    # then it is refused with a clear code, and nothing was written
    assert r.status_code == status, r.text
    assert r.json()["detail"][0]["code"] == code
    assert synced.follow_tags(follow_id) == before
    assert synced.count("SELECT count(*) FROM wecom_outbox") == 0
    assert synced.count("SELECT count(*) FROM customer_event WHERE kind = 'tags_changed'") == 0


def test_console_saves_tags_from_the_form(synced: Synced) -> None:
    customer_id, follow_id, _, _ = synced.a_follow()
    client = console_client(synced.db, synced.corp_id, Role.ADMIN)
    page = client.get(f"/customers/{customer_id}")
    assert page.status_code == 200 and 'data-testid="follow-tags-form"' in page.text
    new_tag = next(t for t in synced.tags().values() if t not in synced.follow_tags(follow_id))
    form = {"tag_ids": [str(t) for t in sorted(synced.follow_tags(follow_id) | {new_tag})]}
    r = client.put(f"/customers/{customer_id}/follows/{follow_id}/tags", data=form, headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text
    assert 'data-testid="tags-saved"' in r.text and 'data-status="pending"' in r.text
    assert new_tag in synced.follow_tags(follow_id)


def test_console_tag_save_needs_csrf(synced: Synced) -> None:
    customer_id, follow_id, _, _ = synced.a_follow()
    client = console_client(synced.db, synced.corp_id, Role.ADMIN)
    del client.headers["X-CSRF-Token"]
    r = client.put(f"/customers/{customer_id}/follows/{follow_id}/tags", data={"tag_ids": ["1"]})
    assert r.status_code == 403
    assert synced.count("SELECT count(*) FROM wecom_outbox") == 0
