"""Writes to corps: connecting a WeCom corp and changing its credentials."""

from __future__ import annotations

import re

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.core import audit
from siyu.core.errors import DomainError, ErrorCode
from siyu.core.secrets import decrypt_secret, encrypt_secret
from siyu.corp.models import Corp, WeComToken
from siyu.wecom.crypto import decode_aes_key
from siyu.wecom.errors import CryptoError

_TOKEN = re.compile(r"^[A-Za-z0-9]{1,32}$")


def _validate(wecom_corpid: str, callback_token: str, callback_aes_key: str) -> None:
    if not wecom_corpid.strip():
        raise DomainError(ErrorCode.INVALID, "corp id is required")
    if not _TOKEN.match(callback_token):
        raise DomainError(ErrorCode.INVALID, "callback token must be 1–32 letters or digits")
    try:
        decode_aes_key(callback_aes_key)
    except CryptoError as exc:
        raise DomainError(ErrorCode.INVALID, f"EncodingAESKey: {exc.message}") from exc


def do_create_corp(
    session: Session,
    *,
    name: str,
    wecom_corpid: str,
    contact_secret: str,
    callback_token: str,
    callback_aes_key: str,
    api_base_url: str,
    agent_id: str = "",
    actor: str = "system",
) -> Corp:
    """Connect a WeCom corp; secrets are stored encrypted."""
    _validate(wecom_corpid, callback_token, callback_aes_key)
    if session.scalar(select(Corp.corp_id).where(Corp.wecom_corpid == wecom_corpid)) is not None:
        raise DomainError(ErrorCode.CONFLICT, f"corp {wecom_corpid} is already connected")
    corp = Corp(
        name=name,
        wecom_corpid=wecom_corpid,
        agent_id=agent_id,
        api_base_url=api_base_url.rstrip("/"),
        contact_secret_enc=encrypt_secret(contact_secret),
        callback_token_enc=encrypt_secret(callback_token),
        callback_aes_key_enc=encrypt_secret(callback_aes_key),
    )
    session.add(corp)
    session.flush()
    audit.record(
        session, corp_id=corp.corp_id, actor=actor, action="corp.create", object_type="corp", object_id=corp.corp_id
    )
    return corp


def do_update_corp_connection(
    session: Session,
    corp: Corp,
    *,
    contact_secret: str | None = None,
    callback_token: str | None = None,
    callback_aes_key: str | None = None,
    api_base_url: str | None = None,
    agent_id: str | None = None,
    actor: str = "system",
) -> Corp:
    token = callback_token if callback_token is not None else "x"
    key = callback_aes_key if callback_aes_key is not None else "A" * 43
    _validate(corp.wecom_corpid, token, key)
    if contact_secret is not None:
        corp.contact_secret_enc = encrypt_secret(contact_secret)
    if callback_token is not None:
        corp.callback_token_enc = encrypt_secret(callback_token)
    if callback_aes_key is not None:
        corp.callback_aes_key_enc = encrypt_secret(callback_aes_key)
    if api_base_url is not None:
        corp.api_base_url = api_base_url.rstrip("/")
    if agent_id is not None:
        corp.agent_id = agent_id
    session.flush()
    fields = {
        "secret": contact_secret,
        "token": callback_token,
        "aes_key": callback_aes_key,
        "api_base_url": api_base_url,
        "agent_id": agent_id,
    }
    changed = [k for k, v in fields.items() if v is not None]
    audit.record(
        session,
        corp_id=corp.corp_id,
        actor=actor,
        action="corp.update_connection",
        object_type="corp",
        object_id=corp.corp_id,
        detail={"changed": changed},
    )
    return corp


def do_forget_tokens(session: Session, corp: Corp) -> None:
    """Drop the stored access tokens after the secret or API changed, so the next call fetches one anew."""
    session.execute(delete(WeComToken).where(WeComToken.corp_id == corp.corp_id))
    session.flush()


def do_reveal_callback_secrets(session: Session, corp: Corp, *, actor: str) -> tuple[str, str]:
    """The callback Token and EncodingAESKey in clear, for pasting into WeCom; every reveal is audited."""
    audit.record(
        session,
        corp_id=corp.corp_id,
        actor=actor,
        action="corp.reveal_callback_secrets",
        object_type="corp",
        object_id=corp.corp_id,
    )
    session.flush()
    return decrypt_secret(corp.callback_token_enc), decrypt_secret(corp.callback_aes_key_enc)
