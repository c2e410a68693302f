"""Settings: the connection (secrets never shown), updates, reveal (audited), test connection, sync now."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from siyu.core.secrets import decrypt_secret
from siyu.core.tasks import configure_queue
from siyu.corp.models import AuditLog, Corp
from siyu.wecom.crypto import generate_encoding_aes_key
from siyu.wecom.emulator.server import RunningEmulator
from tests import console_api_support as sup
from tests.factories import make_corp
from tests.sync.test_sync_support import corp_for


@pytest.fixture(autouse=True)
def _queue() -> None:
    configure_queue("memory://", immediate=True)


def _corp_row(db: sessionmaker[Session], corp_id: int) -> Corp:
    with db() as s:
        corp = s.get(Corp, corp_id)
        assert corp is not None
        return corp


@pytest.mark.parametrize("role", ["admin", "operator"])
def test_connection_is_shown_without_secrets(db: sessionmaker[Session], role: str) -> None:
    # given
    corp = make_corp(db, secret="s3cret-value")
    client = sup.api_client(db, corp.corp_id, role)

    # when
    r = client.get("/api/settings/connection")

    # then
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["wecom_corpid"] == corp.wecom_corpid and body["contact_secret_set"] is True
    assert body["callback_url"].endswith(f"/wecom/callback/{corp.corp_id}")
    assert corp.secret not in r.text and corp.token not in r.text and corp.aes_key not in r.text


@pytest.mark.parametrize("role", ["staff", "compliance"])
def test_other_roles_may_not_read_settings(db: sessionmaker[Session], role: str) -> None:
    corp_id = make_corp(db).corp_id
    sup.add(db, sup.employee(corp_id, "u1"))
    client = sup.api_client(db, corp_id, role, **({"employee_userid": "u1"} if role == "staff" else {}))
    assert client.get("/api/settings/connection").status_code == 403
    assert client.post("/api/settings/test-connection").status_code == 403


def test_admin_updates_secrets_and_they_are_stored_encrypted(db: sessionmaker[Session]) -> None:
    # given
    corp_id = make_corp(db).corp_id
    client = sup.api_client(db, corp_id, "admin")
    key = generate_encoding_aes_key()

    # when
    r = client.patch(
        "/api/settings/connection",
        json={
            "contact_secret": "new-secret",
            "callback_token": "Tok123",
            "callback_aes_key": key,
            "agent_id": "1000002",
        },
    )

    # then
    assert r.status_code == 200, r.text
    assert "new-secret" not in r.text and "Tok123" not in r.text
    row = _corp_row(db, corp_id)
    assert decrypt_secret(row.contact_secret_enc) == "new-secret"
    assert (decrypt_secret(row.callback_token_enc), decrypt_secret(row.callback_aes_key_enc)) == ("Tok123", key)
    assert row.agent_id == "1000002" and "new-secret" not in row.contact_secret_enc
    with db() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "corp.update_connection")).one()
    assert "new-secret" not in entry.detail and "secret" in entry.detail


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"callback_token": "bad token!"},
        {"callback_aes_key": "!" * 43},
        {"callback_aes_key": "short"},
        {"api_base_url": "ftp://example"},
        {"agent_id": "abc"},
    ],
)
def test_bad_updates_are_refused_and_change_nothing(db: sessionmaker[Session], body: dict[str, str]) -> None:
    # given
    corp_id = make_corp(db).corp_id
    client = sup.api_client(db, corp_id, "admin")
    before = _corp_row(db, corp_id)

    # when
    r = client.patch("/api/settings/connection", json=body)

    # then
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["code"] == "invalid"
    after = _corp_row(db, corp_id)
    assert (after.callback_token_enc, after.callback_aes_key_enc, after.api_base_url) == (
        before.callback_token_enc,
        before.callback_aes_key_enc,
        before.api_base_url,
    )


def test_operator_may_not_update_or_reveal(db: sessionmaker[Session]) -> None:
    corp_id = make_corp(db).corp_id
    client = sup.api_client(db, corp_id, "operator")
    assert client.patch("/api/settings/connection", json={"contact_secret": "x"}).status_code == 403
    assert client.post("/api/settings/callback-secrets").status_code == 403


def test_admin_reveals_callback_secrets_and_it_is_audited(db: sessionmaker[Session]) -> None:
    # given
    corp = make_corp(db)
    client = sup.api_client(db, corp.corp_id, "admin")

    # when
    r = client.post("/api/settings/callback-secrets")

    # then
    assert r.status_code == 200, r.text
    assert (r.json()["token"], r.json()["encoding_aes_key"]) == (corp.token, corp.aes_key)
    audit = client.get("/api/audit?action=corp.reveal").json()["items"]
    assert len(audit) == 1 and audit[0]["actor"].startswith("user:")


def test_test_connection_ok_against_the_emulator(db: sessionmaker[Session], emulator: RunningEmulator) -> None:
    # given
    corp_id = corp_for(db, emulator)
    client = sup.api_client(db, corp_id, "operator")

    # when
    r = client.post("/api/settings/test-connection")

    # then
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and r.json()["follow_users"] > 0


def test_wrong_secret_shows_the_errcode(db: sessionmaker[Session], emulator: RunningEmulator) -> None:
    # given: a working connection (a token is stored), then a wrong secret saved
    corp_id = corp_for(db, emulator)
    client = sup.api_client(db, corp_id, "admin")
    assert client.post("/api/settings/test-connection").json()["ok"] is True
    assert client.patch("/api/settings/connection", json={"contact_secret": "wrong"}).status_code == 200

    # when
    r = client.post("/api/settings/test-connection")

    # then
    body = r.json()
    assert (body["ok"], body["step"], body["errcode"]) == (False, "gettoken", 40001), body
    assert body["errmsg"]


def test_test_connection_page_shows_the_errcode(db: sessionmaker[Session], emulator: RunningEmulator) -> None:
    # given
    corp_id = corp_for(db, emulator)
    client = sup.console_client(db, corp_id, "admin")
    client.post("/settings/connection", data={"contact_secret": "wrong"}, headers={"HX-Request": "true"})

    # when
    r = client.post("/settings/test")

    # then
    assert r.status_code == 200, r.text
    assert 'data-testid="test-errcode">40001<' in r.text


def test_sync_now_shows_progress_until_done(db: sessionmaker[Session], emulator: RunningEmulator) -> None:
    # given
    corp_id = corp_for(db, emulator)
    client = sup.console_client(db, corp_id, "operator")

    # when: the queue runs the sync inline, so the first answer already shows it finished
    r = client.post("/settings/sync")

    # then
    assert r.status_code == 200, r.text
    assert 'data-status="done"' in r.text and 'data-testid="sync-summary"' in r.text
    assert 'hx-trigger="every 1s"' not in r.text
    progress = sup.api_client(db, corp_id, "admin").get("/api/settings/sync-progress").json()
    assert progress["status"] == "done" and progress["stages_done"] == ["employees", "tags", "customers", "groups"]
    assert progress["pages"] > 0 and progress["changes"]["customers"]["added"] == 300


def test_sync_progress_polls_while_queued_or_running(db: sessionmaker[Session]) -> None:
    # given: a run in the middle of its customers stage
    from siyu.sync.models import SyncRun

    corp_id = make_corp(db).corp_id
    (run_id,) = sup.add(
        db,
        SyncRun(
            corp_id=corp_id,
            scope="all",
            status="running",
            checkpoint={"done": ["employees", "tags"], "customers": {"cursor": "x"}},
            stats={"pages": 7, "changes": {"customers": {"added": 700, "updated": 0, "removed": 0}}},
        ),
    )
    client = sup.console_client(db, corp_id, "admin")

    # when
    running = client.get("/settings/sync-progress?since=0")
    queued = client.get(f"/settings/sync-progress?since={run_id}")

    # then
    assert 'data-status="running"' in running.text and 'hx-trigger="every 1s"' in running.text
    assert 'data-testid="sync-pages">7<' in running.text and "客户" in running.text
    assert 'data-status="queued"' in queued.text and 'hx-trigger="every 1s"' in queued.text


def test_settings_page_renders_in_chinese_without_secrets(db: sessionmaker[Session]) -> None:
    # given
    corp = make_corp(db)
    client = sup.console_client(db, corp.corp_id, "admin")

    # when
    r = client.get("/settings")

    # then
    assert r.status_code == 200, r.text
    assert "企业微信连接" in r.text and 'data-testid="sync-now"' in r.text and 'data-testid="test-connection"' in r.text
    assert corp.secret not in r.text and corp.token not in r.text and corp.aes_key not in r.text


def test_settings_page_form_saves_and_reports_errors(db: sessionmaker[Session]) -> None:
    # given
    corp_id = make_corp(db).corp_id
    client = sup.console_client(db, corp_id, "admin")

    # when
    bad = client.post(
        "/settings/connection", data={"callback_token": "no spaces allowed"}, headers={"HX-Request": "true"}
    )
    good = client.post("/settings/connection", data={"api_base_url": "https://qyapi.example.com"})

    # then
    assert bad.status_code == 200 and 'role="alert"' in bad.text and "未保存" in bad.text
    assert good.status_code == 303
    assert _corp_row(db, corp_id).api_base_url == "https://qyapi.example.com"


def test_reveal_in_the_page_is_admin_only(db: sessionmaker[Session]) -> None:
    corp = make_corp(db)
    admin = sup.console_client(db, corp.corp_id, "admin").post("/settings/reveal")
    operator = sup.console_client(db, corp.corp_id, "operator").post("/settings/reveal")
    assert admin.status_code == 200 and corp.token in admin.text
    assert operator.status_code == 403
