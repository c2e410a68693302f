"""Errors are codes: each domain has a StrEnum of codes; one handler renders them as JSON."""

from __future__ import annotations

from enum import StrEnum

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class ErrorCode(StrEnum):
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    CONFLICT = "conflict"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    THROTTLED = "throttled"
    CSRF = "csrf_failed"
    CALLBACK_SIGNATURE = "callback_signature_invalid"
    CALLBACK_MALFORMED = "callback_malformed"
    CALLBACK_TOO_LARGE = "callback_too_large"
    CALLBACK_RECEIVER = "callback_receiveid_mismatch"
    WECOM_UNAVAILABLE = "wecom_unavailable"


STATUS = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.INVALID: 422,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.THROTTLED: 429,
    ErrorCode.CSRF: 403,
    ErrorCode.CALLBACK_SIGNATURE: 401,
    ErrorCode.CALLBACK_MALFORMED: 400,
    ErrorCode.CALLBACK_TOO_LARGE: 413,
    ErrorCode.CALLBACK_RECEIVER: 400,
    ErrorCode.WECOM_UNAVAILABLE: 502,
}


class DomainError(Exception):
    """An error a user can act on: a code, a message, and (by the code) an HTTP status."""

    def __init__(self, code: ErrorCode, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg

    @property
    def status_code(self) -> int:
        return STATUS.get(self.code, 400)


def error_body(code: str, msg: str) -> dict[str, list[dict[str, str]]]:
    return {"detail": [{"code": code, "msg": msg}]}


async def _handle_domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return JSONResponse(error_body(exc.code, exc.msg), status_code=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _handle_domain_error)
