"""Everything that can go wrong when speaking WeCom, as one exception tree.

WeComError
├── CryptoError                 a callback envelope failed (library codes -40001 … -40011, never on the wire)
└── ApiError                    the API answered errcode != 0 (errcode and errmsg kept)
    ├── TokenError              40014 invalid / 42001 expired / 41001 missing access_token: refresh and retry once
    ├── CredentialError         40013 bad corpid, 40001 / 40091 bad secret: retrying cannot help
    ├── RateLimitError          45009 frequency, 45033 concurrency, -1 system busy: back off with jitter
    │   └── BusyError           41063 a mass message is still being dispatched: back off the same way
    ├── PermissionError_        48002 api forbidden, 60011 no privilege, 301002 not allowed, 40098 member not activated
    ├── NotFoundError           84061 not an external contact, 40096 invalid external_userid, 60111 no user,
    │                           41047 invalid msgid …
    ├── InvalidRequestError     40058 bad field, 41xxx missing parameter (41048 no customer to send to,
    │   │                       41065 bad attachment), 301021 duplicate tag name …
    │   └── LimitError          45047 a per-object quota is used up (remind_groupmsg_send: 3 per msgid in
    │                           24 h): retrying before the window passes cannot help
    └── (ApiError itself)       any other errcode
TransportError                  the HTTP exchange itself failed (connection, timeout, non-200, not JSON)
"""

from __future__ import annotations

from enum import IntEnum


class WeComError(Exception):
    """Base of every error raised by siyu.wecom."""


class CryptoErrorCode(IntEnum):
    VALIDATE_SIGNATURE = -40001
    PARSE_XML = -40002
    COMPUTE_SIGNATURE = -40003
    ILLEGAL_AES_KEY = -40004
    VALIDATE_CORPID = -40005
    ENCRYPT_AES = -40006
    DECRYPT_AES = -40007
    ILLEGAL_BUFFER = -40008
    ENCODE_BASE64 = -40009
    DECODE_BASE64 = -40010
    GEN_RETURN_XML = -40011


class CryptoError(WeComError):
    def __init__(self, code: CryptoErrorCode, message: str) -> None:
        super().__init__(f"{message} ({int(code)})")
        self.code = code
        self.message = message


class TransportError(WeComError):
    """The request never produced a WeCom answer (network, timeout, HTTP status, body not JSON)."""


class ApiError(WeComError):
    def __init__(self, errcode: int, errmsg: str, *, path: str = "") -> None:
        super().__init__(f"{path}: errcode {errcode}: {errmsg}" if path else f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path


class TokenError(ApiError):
    pass


class CredentialError(ApiError):
    pass


class RateLimitError(ApiError):
    pass


class PermissionError_(ApiError):
    pass


class NotFoundError(ApiError):
    pass


class InvalidRequestError(ApiError):
    pass


class BusyError(RateLimitError):
    """WeCom is still working on the object (41063: the mass message is being dispatched); try again shortly."""


class LimitError(InvalidRequestError):
    """A quota on one object is used up (the 4th remind of a mass message within 24 hours)."""


TOKEN_ERRCODES = frozenset({40014, 42001, 41001})
RATE_LIMIT_ERRCODES = frozenset({45009, 45033, -1})
BUSY_ERRCODES = frozenset({41063})
# answers the client backs off on and asks again, within its retry budget
BACKOFF_ERRCODES = RATE_LIMIT_ERRCODES | BUSY_ERRCODES
_BY_ERRCODE: dict[int, type[ApiError]] = {
    **dict.fromkeys(TOKEN_ERRCODES, TokenError),
    **dict.fromkeys(RATE_LIMIT_ERRCODES, RateLimitError),
    **dict.fromkeys(BUSY_ERRCODES, BusyError),
    41047: NotFoundError,
    45047: LimitError,
    **dict.fromkeys((40013, 40001, 40091), CredentialError),
    **dict.fromkeys((48002, 60011, 301002), PermissionError_),
    **dict.fromkeys((84061, 40096, 60111, 40003, 84062), NotFoundError),
    **dict.fromkeys((40058, 41037, 301021, 40068, 40071, 40007, 45002, 40004, 40009), InvalidRequestError),
    **dict.fromkeys((40098,), PermissionError_),
}


def error_for(errcode: int, errmsg: str, *, path: str = "") -> ApiError:
    """The typed exception for an errcode; 41xxx (missing parameter) are invalid requests."""
    cls = _BY_ERRCODE.get(errcode)
    if cls is None and 41000 <= errcode < 42000:
        cls = InvalidRequestError
    return (cls or ApiError)(errcode, errmsg, path=path)
