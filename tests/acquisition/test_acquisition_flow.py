"""Channel codes end to end through the emulator: real HTTP, real crypto, real callbacks.

An operator creates a code (the outbox creates it in WeCom); a simulated customer scans it; the
callback is stored and processed; the follow is attributed, the code's tags reach WeCom, and the
welcome arrives inside the WelcomeCode's window with its variables filled in.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from siyu.acquisition import actions, welcome
from siyu.acquisition.models import Channel, GroupCode, GroupCodeJoin, WelcomeSend, WelcomeStatus
from siyu.acquisition.schemas import ChannelPatch, ChannelWrite, GroupCodeWrite, WelcomeTemplateWrite
from siyu.app import create_app
from siyu.callbacks import service as inbox_service
from siyu.callbacks.tasks import process_one
from siyu.contacts.models import Customer, Follow
from siyu.core.clock import now_utc
from siyu.core.tasks import configure_queue
from siyu.corp.service import forget_crypt
from siyu.sync.flows import run_sync
from siyu.tags.models import Tag
from siyu.wecom.emulator.server import start_emulator
from tests.live_corp import LiveCorp
from tests.server_fixtures import serve_in_thread
from tests.sync.test_sync_support import corp_for


class Live(LiveCorp):
    def process(self) -> list[str]:
        """The worker: apply every stored event (welcomes are sent inside), then send the outbox."""
        self.emu.wait_for_callbacks(10)
        with self.db() as s:
            ids = inbox_service.pending_ids(s)
        statuses = [process_one(i) for i in ids]
        self.send_outbox()
        return statuses

    def create_channel(self, **fields: object) -> Channel:
        with self.db.begin() as s:
            channel = actions.do_create_channel(s, self.admin, ChannelWrite.model_validate({"name": "门店A", **fields}))
            channel_id = channel.id
        assert set(self.send_outbox()) == {"sent"}
        return self.channel(channel_id)

    def channel(self, channel_id: int) -> Channel:
        with self.db() as s:
            found = s.get(Channel, channel_id)
            assert found is not None
            s.expunge(found)
            return found

    def follow_of(self, external_userid: str) -> Follow:
        with self.db() as s:
            follow = s.scalar(
                sa.select(Follow)
                .join(Customer, Customer.id == Follow.customer_id)
                .where(Customer.external_userid == external_userid)
            )
            assert follow is not None
            s.expunge(follow)
            return follow

    def welcome_sends(self) -> list[WelcomeSend]:
        with self.db() as s:
            rows = list(s.scalars(sa.select(WelcomeSend).order_by(WelcomeSend.id)))
            s.expunge_all()
            return rows

    def synced_tags(self, n: int) -> list[Tag]:
        with self.db() as s:
            tags = list(s.scalars(sa.select(Tag).where(Tag.corp_id == self.corp_id).order_by(Tag.id).limit(n)))
            s.expunge_all()
            return tags


@pytest.fixture
def live(db: sessionmaker[Session]) -> Iterator[Live]:
    forget_crypt()
    configure_queue()
    with start_emulator(employees=6, customers=20, seed=7) as emu:
        corp_id = corp_for(db, emu)
        run_sync(corp_id)
        with serve_in_thread(create_app(configure=False)) as url:
            emu.set_callback_url(f"{url}/wecom/callback/{corp_id}")
            yield Live(emu, db, corp_id)


def _active_userids(live: Live, n: int) -> list[str]:
    return [e.userid for e in live.emu.state.employees.values() if e.status == 1][:n]


def test_scan_attributes_the_follow_applies_tags_and_sends_the_welcome(live: Live) -> None:
    # given a channel code with one employee, a tag and a welcome with variables
    (userid,) = _active_userids(live, 1)
    (tag,) = live.synced_tags(1)
    channel = live.create_channel(
        userids=[userid], tag_ids=[tag.id], welcome={"text": "{nickname}您好，我是{employee}，欢迎光临门店A"}
    )
    assert channel.config_id and channel.qr_url
    way = live.emu.state.contact_ways[channel.config_id]
    assert (way.state, way.user) == (channel.state, [userid])
    # when a customer scans it
    scan = live.emu.actors.scan_contact_way(channel.config_id, name="李雷")
    assert live.process() == ["done"]
    ext = scan.data["external_userid"]
    # then the follow and the customer's first touch are attributed to the channel
    follow = live.follow_of(ext)
    assert follow.channel_id == channel.id
    with live.db() as s:
        assert s.scalar(sa.select(Customer.first_channel_id).where(Customer.external_userid == ext)) == channel.id
    # the tag reached WeCom through mark_tag
    assert tag.wecom_id in live.emu.state.follow(userid, ext).tag_ids  # type: ignore[union-attr]
    # and the welcome arrived once, inside the window, with the variables resolved
    employee_name = live.emu.state.employees[userid].name
    deliveries = [d for d in live.emu.welcome_deliveries if d.external_userid == ext]
    assert [d.text for d in deliveries] == [f"李雷您好，我是{employee_name}，欢迎光临门店A"]
    (sent,) = live.welcome_sends()
    assert (sent.status, sent.source, sent.channel_id) == (WelcomeStatus.SENT, "channel", channel.id)
    assert sent.sent_at is not None and sent.sent_at <= sent.deadline_at


def test_daily_cap_moves_the_code_to_the_backup_and_midnight_restores_it(live: Live) -> None:
    first, backup = _active_userids(live, 2)
    channel = live.create_channel(userids=[first], backup_userids=[backup], daily_cap=1)
    # the first scan reaches the cap: siyu rewrites the code's users to the backup
    live.emu.actors.scan_contact_way(channel.config_id)
    assert live.process() == ["done"]
    assert live.emu.state.contact_ways[channel.config_id].user == [backup]
    assert live.channel(channel.id).live_userids == [backup]
    # the next customer is served by the backup
    second = live.emu.actors.scan_contact_way(channel.config_id)
    assert second.data["userid"] == backup
    assert live.process() == ["done"]
    # the next day (corp time) the cap lifts and the configured employee serves again
    from siyu.acquisition.rotation import do_rotate_corp

    with live.db.begin() as s:
        result = do_rotate_corp(s, live.corp_id, at=now_utc() + timedelta(days=1))
    assert result.changed == [channel.id]
    live.send_outbox()
    assert live.emu.state.contact_ways[channel.config_id].user == [first]


def test_expired_welcome_code_is_recorded_not_sent(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    (userid,) = _active_userids(live, 1)
    channel = live.create_channel(userids=[userid], welcome={"text": "欢迎"})
    live.emu.actors.scan_contact_way(channel.config_id)
    # the worker reaches the event after the 20 s window (a backlog): nothing is sent, the reason is kept
    late = now_utc() + timedelta(seconds=25)
    monkeypatch.setattr(welcome, "now_utc", lambda: late)
    assert live.process() == ["done"]
    (row,) = live.welcome_sends()
    assert row.status == WelcomeStatus.EXPIRED and "20 s window" in row.reason
    assert live.emu.welcome_deliveries == []


def test_wecom_refusing_an_expired_code_is_recorded(live: Live) -> None:
    (userid,) = _active_userids(live, 1)
    channel = live.create_channel(userids=[userid], welcome={"text": "欢迎"})
    live.emu.inject_error("externalcontact/send_welcome_msg", 41050)
    live.emu.actors.scan_contact_way(channel.config_id)
    assert live.process() == ["done"]
    (row,) = live.welcome_sends()
    assert row.status == WelcomeStatus.EXPIRED and "41050" in row.reason


def test_41096_is_retried_inside_the_window_and_41051_means_delivered(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(welcome, "RETRY_DELAY", 0.05)
    (userid,) = _active_userids(live, 1)
    channel = live.create_channel(userids=[userid], welcome={"text": "欢迎"})
    live.emu.inject_error("externalcontact/send_welcome_msg", 41096)
    live.emu.actors.scan_contact_way(channel.config_id)
    assert live.process() == ["done"]
    (row,) = live.welcome_sends()
    assert (row.status, row.attempts) == (WelcomeStatus.SENT, 2)
    assert len(live.emu.welcome_deliveries) == 1
    # a second send of the same code (a crash after WeCom accepted): WeCom answers 41051, recorded as delivered
    with live.db.begin() as s:
        s.execute(sa.update(WelcomeSend).values(status=WelcomeStatus.PENDING))
    assert welcome.send_now([row.id]) == {row.id: WelcomeStatus.ALREADY_SENT}
    assert len(live.emu.welcome_deliveries) == 1


def test_default_welcome_for_adds_without_a_channel(live: Live) -> None:
    with live.db.begin() as s:
        body = WelcomeTemplateWrite.model_validate({"scope": "corp", "content": {"text": "感谢添加，{nickname}"}})
        actions.do_put_welcome_template(s, live.admin, body)
    live.emu.actors.add_customer(name="韩梅梅")
    assert live.process() == ["done"]
    (row,) = live.welcome_sends()
    assert (row.status, row.source, row.channel_id) == (WelcomeStatus.SENT, "corp", None)
    assert [d.text for d in live.emu.welcome_deliveries] == ["感谢添加，韩梅梅"]


def test_edit_while_the_add_is_in_flight_reaches_wecom(live: Live) -> None:
    first, second = _active_userids(live, 2)
    with live.db.begin() as s:
        channel = actions.do_create_channel(s, live.admin, ChannelWrite(name="海报", userids=[first]))
        channel_id = channel.id
    with live.db.begin() as s:
        found = s.get(Channel, channel_id)
        assert found is not None
        actions.do_update_channel(s, live.admin, found, ChannelPatch(userids=[first, second]))
    live.send_outbox()
    config_id = live.channel(channel_id).config_id
    assert live.emu.state.contact_ways[config_id].user == [first, second]


def test_deleting_a_channel_deletes_the_code_in_wecom(live: Live) -> None:
    (userid,) = _active_userids(live, 1)
    channel = live.create_channel(userids=[userid])
    with live.db.begin() as s:
        found = s.get(Channel, channel.id)
        assert found is not None
        actions.do_delete_channel(s, live.admin, found)
    live.send_outbox()
    assert channel.config_id not in live.emu.state.contact_ways


def test_group_code_joiners_are_recorded_and_tagged(live: Live) -> None:
    chat_id = next(iter(live.emu.state.groups))
    (tag,) = live.synced_tags(1)
    with live.db.begin() as s:
        code = actions.do_create_group_code(
            s,
            live.admin,
            GroupCodeWrite(
                name="会员群", chat_ids=[chat_id], room_base_name="会员群", tag_ids=[tag.id], welcome_text="欢迎入群"
            ),
        )
        code_id = code.id
    live.send_outbox()
    with live.db() as s:
        code = s.get(GroupCode, code_id)
        assert code is not None and code.config_id and code.qr_url and code.welcome_template_id
        config_id = code.config_id
    # an existing customer (followed by an employee) joins through the code
    follow = next(f for f in live.emu.state.follows() if live.emu.state.employees[f.userid].status == 1)
    joined = live.emu.actors.scan_join_way(config_id, external_userid=follow.external_userid)
    assert set(live.process()) == {"done"}
    with live.db() as s:
        rows = s.execute(sa.select(GroupCodeJoin.member_userid, GroupCodeJoin.chat_id)).all()
    assert rows == [(follow.external_userid, joined.data["chat_id"])]
    assert tag.wecom_id in live.emu.state.follow(follow.userid, follow.external_userid).tag_ids  # type: ignore[union-attr]


def test_a_full_group_rotates_in_a_new_one_and_the_code_follows(live: Live) -> None:
    chat_id = next(iter(live.emu.state.groups))
    with live.db.begin() as s:
        code = actions.do_create_group_code(
            s, live.admin, GroupCodeWrite(name="福利群", chat_ids=[chat_id], room_base_name="福利群", room_base_id=7)
        )
        code_id = code.id
    live.send_outbox()
    with live.db() as s:
        config_id = s.get(GroupCode, code_id).config_id  # type: ignore[union-attr]
    # the only group is full: WeCom creates 福利群7 and puts the customer there
    live.emu.state.group_member_cap = len(live.emu.state.groups[chat_id].members)
    joined = live.emu.actors.scan_join_way(config_id)
    assert joined.data["created_group"]
    assert set(live.process()) == {"done"}
    with live.db() as s:
        code = s.get(GroupCode, code_id)
        assert code is not None
        assert joined.data["chat_id"] in code.chat_ids and code.room_base_id == 8
        joins = s.scalar(
            sa.select(sa.func.count()).select_from(GroupCodeJoin).where(GroupCodeJoin.group_code_id == code_id)
        )
    assert joins == 1


def test_reconcile_deletes_orphans_of_lost_answers_and_flags_codes_deleted_in_wecom(live: Live) -> None:
    from siyu.acquisition.reconcile import MISSING_IN_WECOM, do_reconcile_contact_ways
    from siyu.corp.models import Corp
    from siyu.wecom.client import client_for_corp

    first, second = _active_userids(live, 2)
    kept = live.create_channel(userids=[first])
    gone = live.create_channel(name="被删的码", userids=[second])
    # a retried add whose first answer was lost: WeCom holds a second config with our state
    with live.db() as s, client_for_corp(s.get(Corp, live.corp_id)) as client:  # type: ignore[arg-type]
        orphan = client.add_contact_way(type=2, scene=2, state=kept.state, user=[first]).config_id
        stranger = client.add_contact_way(type=2, scene=2, state="not-siyu", user=[first]).config_id
        client.del_contact_way(gone.config_id)  # someone deleted this code in WeCom
    with live.db.begin() as s, client_for_corp(s.get(Corp, live.corp_id)) as client:  # type: ignore[arg-type]
        result = do_reconcile_contact_ways(s, live.corp_id, client)
    assert (result.orphans, result.missing) == ([orphan], [gone.id])
    live.send_outbox()
    ways = live.emu.state.contact_ways
    assert orphan not in ways and stranger in ways and kept.config_id in ways
    assert live.channel(gone.id).sync_error == MISSING_IN_WECOM
    assert live.channel(kept.id).sync_error == ""


def test_welcome_attachments_upload_images_and_invite_to_a_group(live: Live) -> None:
    from siyu.acquisition.models import MaterialKind
    from siyu.acquisition.schemas import MaterialWrite

    (userid,) = _active_userids(live, 1)
    chat_id = next(iter(live.emu.state.groups))
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    with live.db.begin() as s:
        image = actions.do_create_material(s, live.admin, MaterialWrite(kind=MaterialKind.IMAGE), (png, "image/png"))
        link = actions.do_create_material(
            s, live.admin, MaterialWrite(kind=MaterialKind.LINK, title="到店礼", url="https://example.com/gift")
        )
        mini = actions.do_create_material(
            s,
            live.admin,
            MaterialWrite(kind=MaterialKind.MINIPROGRAM, title="会员中心", appid="wx0123456789abcdef", page="/pages/m"),
            (png, "image/png"),
        )
        code = actions.do_create_group_code(
            s, live.admin, GroupCodeWrite(name="会员群", chat_ids=[chat_id], room_base_name="会员群")
        )
        ids = (image.id, link.id, mini.id, code.id)
    live.send_outbox()
    channel = live.create_channel(
        userids=[userid], welcome={"text": "欢迎", "material_ids": list(ids[:3]), "group_code_id": ids[3]}
    )
    live.emu.actors.scan_contact_way(channel.config_id)
    assert live.process() == ["done"]
    (delivery,) = live.emu.welcome_deliveries
    kinds = [a["msgtype"] for a in delivery.attachments]
    assert kinds == ["image", "link", "miniprogram", "image"]
    image_media = delivery.attachments[0]["image"]["media_id"]
    assert live.emu.state.media[image_media].data == png  # uploaded once, then referenced
    assert delivery.attachments[2]["miniprogram"]["pic_media_id"] in live.emu.state.media
    assert "/scan/group/" in delivery.attachments[3]["image"]["pic_url"]  # the group code's QR invites to the group


def test_a_resigned_employee_leaves_the_code_at_the_next_rotation(live: Live) -> None:
    from siyu.acquisition.rotation import do_rotate_corp

    first, second = _active_userids(live, 2)
    channel = live.create_channel(userids=[first, second])
    live.emu.actors.resign_employee(first)
    assert live.process() == ["done"]
    with live.db.begin() as s:
        assert do_rotate_corp(s, live.corp_id).changed == [channel.id]
    live.send_outbox()
    assert live.emu.state.contact_ways[channel.config_id].user == [second]


def test_the_welcome_first_lane_sends_before_the_add_is_applied(live: Live) -> None:
    (userid,) = _active_userids(live, 1)
    channel = live.create_channel(userids=[userid], welcome={"text": "{nickname}，欢迎"})
    scan = live.emu.actors.scan_contact_way(channel.config_id, name="王芳")
    live.emu.wait_for_callbacks(10)
    with live.db() as s:
        (inbox_id,) = inbox_service.pending_ids(s)
    # the lane sends at once: the customer is not mirrored yet, the nickname comes from WeCom
    assert welcome.send_first(inbox_id) == WelcomeStatus.SENT
    assert [d.text for d in live.emu.welcome_deliveries] == ["王芳，欢迎"]
    (row,) = live.welcome_sends()
    assert (row.customer_id, row.channel_id) == (None, channel.id)
    # a second run of the lane finds the row; the full apply fills the customer in and sends nothing more
    assert welcome.send_first(inbox_id) == "later"
    assert live.process() == ["done"]
    (row,) = live.welcome_sends()
    assert row.status == WelcomeStatus.SENT and row.customer_id is not None
    assert live.follow_of(scan.data["external_userid"]).channel_id == channel.id
    assert len(live.emu.welcome_deliveries) == 1
