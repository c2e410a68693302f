"""The callback URL WeCom calls: /wecom/callback/{corp_id}.

GET answers WeCom's URL verification. POST checks the signature, decrypts, checks the
receiveid, stores the event in the inbox (deduplicated) and answers at once; the
work happens on the task queue. Nothing is processed inside the request.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from siyu.callbacks.writer import PendingEvent, inbox_writer
from siyu.core.config import get_settings
from siyu.core.db import session_scope
from siyu.core.errors import DomainError, ErrorCode
from siyu.corp import service as corp_service
from siyu.wecom.callbacks import CallbackParseError, dedupe_key, parse_envelope, parse_event
from siyu.wecom.crypto import MsgCrypt
from siyu.wecom.errors import CryptoError, CryptoErrorCode

router = APIRouter(tags=["wecom callbacks"])


def _crypt(corp_id: int) -> MsgCrypt:
    crypt = corp_service.cached_crypt(corp_id)
    if crypt is not None:
        return crypt
    with session_scope() as session:
        crypt = corp_service.callback_crypt(session, corp_id=corp_id)
    if crypt is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no corp {corp_id}")
    return crypt


def _crypto_error(exc: CryptoError) -> DomainError:
    if exc.code == CryptoErrorCode.VALIDATE_SIGNATURE:
        return DomainError(ErrorCode.CALLBACK_SIGNATURE, "msg_signature does not match")
    if exc.code == CryptoErrorCode.VALIDATE_CORPID:
        return DomainError(ErrorCode.CALLBACK_RECEIVER, "the event is addressed to another corp")
    return DomainError(ErrorCode.CALLBACK_MALFORMED, exc.message)


@router.get("/wecom/callback/{corp_id}", response_class=PlainTextResponse)
def verify_url(
    corp_id: int,
    msg_signature: str = Query(...),
    timestamp: str = Query(...),
    nonce: str = Query(...),
    echostr: str = Query(...),
) -> PlainTextResponse:
    """WeCom's URL verification: the bare plaintext of echostr, no quotes, no newline."""
    try:
        plain = _crypt(corp_id).verify_url(msg_signature, timestamp, nonce, echostr)
    except CryptoError as exc:
        raise _crypto_error(exc) from exc
    return PlainTextResponse(plain)


async def _read_capped(request: Request) -> bytes:
    limit = get_settings().callback_max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise DomainError(ErrorCode.CALLBACK_TOO_LARGE, f"body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise DomainError(ErrorCode.CALLBACK_TOO_LARGE, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/wecom/callback/{corp_id}", response_class=PlainTextResponse)
async def receive(
    corp_id: int,
    request: Request,
    msg_signature: str = Query(...),
    timestamp: str = Query(...),
    nonce: str = Query(...),
) -> PlainTextResponse:
    """Verify and decrypt here (sub-millisecond), then wait for the group commit; nothing is processed."""
    body = await _read_capped(request)
    await inbox_writer().store(open_event(corp_id, body, msg_signature, timestamp, nonce))
    return PlainTextResponse("success")


def open_event(corp_id: int, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> PendingEvent:
    """Parse the envelope, check the signature, decrypt, check the receiveid, parse the event."""
    crypt = _crypt(corp_id)
    try:
        envelope = parse_envelope(body)
        plain = crypt.decrypt_envelope(msg_signature, timestamp, nonce, envelope.encrypt)
        event = parse_event(plain)
    except CallbackParseError as exc:
        raise DomainError(ErrorCode.CALLBACK_MALFORMED, str(exc)) from exc
    except CryptoError as exc:
        raise _crypto_error(exc) from exc
    return PendingEvent(corp_id, dedupe_key(event), event.event, event.change_type, event.raw)
