"""Reads of corps, and the callback crypto built from a corp's stored secrets."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.core.errors import DomainError, ErrorCode
from siyu.core.secrets import decrypt_secret
from siyu.corp.models import Corp
from siyu.wecom.crypto import MsgCrypt


def get(session: Session, *, corp_id: int) -> Corp | None:
    return session.get(Corp, corp_id)


def list_(session: Session) -> list[Corp]:
    return list(session.scalars(select(Corp).order_by(Corp.corp_id)))


def resolve(session: Session, *, ref: str | None) -> Corp:
    """A corp by numeric id or WeCom corpid; with no ref, the only corp there is."""
    corps = list_(session)
    if ref is None:
        if len(corps) != 1:
            raise DomainError(ErrorCode.INVALID, f"{len(corps)} corps are connected; name one with --corp")
        return corps[0]
    for corp in corps:
        if ref in (str(corp.corp_id), corp.wecom_corpid):
            return corp
    raise DomainError(ErrorCode.NOT_FOUND, f"no corp {ref!r}")


_CRYPT_TTL = 60.0
_crypt_cache: dict[int, tuple[float, MsgCrypt]] = {}
_crypt_lock = threading.Lock()


def callback_crypt(session: Session, *, corp_id: int) -> MsgCrypt | None:
    """The corp's MsgCrypt, cached briefly: decrypting three secrets per callback would dominate ingest."""
    now = time.monotonic()
    hit = _crypt_cache.get(corp_id)
    if hit and now - hit[0] < _CRYPT_TTL:
        return hit[1]
    corp = session.get(Corp, corp_id)
    if corp is None:
        return None
    crypt = MsgCrypt(
        decrypt_secret(corp.callback_token_enc), decrypt_secret(corp.callback_aes_key_enc), corp.wecom_corpid
    )
    with _crypt_lock:
        _crypt_cache[corp_id] = (now, crypt)
    return crypt


def forget_crypt(corp_id: int | None = None) -> None:
    with _crypt_lock:
        if corp_id is None:
            _crypt_cache.clear()
        else:
            _crypt_cache.pop(corp_id, None)
