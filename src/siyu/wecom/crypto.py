"""WXBizMsgCrypt: the signature and AES envelope WeCom uses for callbacks.

Written from the official description (reference §1.1): sha1 over the sorted
(token, timestamp, nonce, encrypt); AES-256-CBC with IV = key[:16]; PKCS#7 to a
32-byte block; plaintext = random16 ‖ uint32_be(len) ‖ msg ‖ receiveid.
Decryption is lenient about the pad bytes (as WeCom's own samples are) and strict
about everything that carries meaning: length, receiveid, signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import struct
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from siyu.wecom.errors import CryptoError, CryptoErrorCode

BLOCK = 32
_RANDOM_ALPHABET = string.ascii_letters + string.digits


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """sha1 of the four strings sorted and joined, as lowercase hex."""
    joined = "".join(sorted([token, timestamp, nonce, encrypt]))
    return hashlib.sha1(joined.encode()).hexdigest()


def pkcs7_pad(data: bytes) -> bytes:
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes) -> bytes:
    n = data[-1] if data else 0
    if not 1 <= n <= BLOCK or n > len(data):
        raise CryptoError(CryptoErrorCode.ILLEGAL_BUFFER, "bad padding")
    return data[:-n]


def random16() -> bytes:
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(16)).encode()


def decode_aes_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise CryptoError(CryptoErrorCode.ILLEGAL_AES_KEY, "EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except ValueError as exc:  # binascii.Error, or a non-ASCII str that b64decode refuses outright
        raise CryptoError(CryptoErrorCode.ILLEGAL_AES_KEY, "EncodingAESKey is not base64") from exc
    if len(key) != 32:
        raise CryptoError(CryptoErrorCode.ILLEGAL_AES_KEY, "EncodingAESKey must decode to 32 bytes")
    return key


def generate_encoding_aes_key() -> str:
    """A fresh 43-character EncodingAESKey (32 random bytes, base64 without the '=')."""
    return base64.b64encode(secrets.token_bytes(32)).decode()[:-1]


def generate_token(length: int = 32) -> str:
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(length))


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a sender puts on the wire: the ciphertext and the values that sign it."""

    encrypt: str
    msg_signature: str
    timestamp: str
    nonce: str


class MsgCrypt:
    """One callback configuration: token, EncodingAESKey and the expected receiveid (the corpid)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self.token = token
        self.key = decode_aes_key(encoding_aes_key)
        self.receive_id = receive_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, msg: str | bytes, *, nonce_bytes: bytes | None = None) -> str:
        """Base64 ciphertext of msg; nonce_bytes (the 16-byte random prefix) is injectable for tests."""
        body = msg.encode() if isinstance(msg, str) else msg
        prefix = nonce_bytes if nonce_bytes is not None else random16()
        if len(prefix) != 16:
            raise ValueError("the random prefix must be 16 bytes")
        plain = prefix + struct.pack(">I", len(body)) + body + self.receive_id.encode()
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(pkcs7_pad(plain)) + enc.finalize()).decode()

    def decrypt(self, encrypt: str, *, receive_id: str | None = None) -> bytes:
        """The message bytes inside encrypt, after checking length and receiveid."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CryptoError(CryptoErrorCode.DECODE_BASE64, "Encrypt is not base64") from exc
        if not raw or len(raw) % 16:
            raise CryptoError(CryptoErrorCode.DECRYPT_AES, "ciphertext is not whole AES blocks")
        dec = self._cipher().decryptor()
        content = pkcs7_unpad(dec.update(raw) + dec.finalize())[16:]
        if len(content) < 4:
            raise CryptoError(CryptoErrorCode.ILLEGAL_BUFFER, "plaintext too short")
        (length,) = struct.unpack(">I", content[:4])
        if 4 + length > len(content):
            raise CryptoError(CryptoErrorCode.ILLEGAL_BUFFER, "length field exceeds the plaintext")
        msg, from_id = content[4 : 4 + length], content[4 + length :]
        expected = self.receive_id if receive_id is None else receive_id
        if from_id != expected.encode():
            raise CryptoError(CryptoErrorCode.VALIDATE_CORPID, "receiveid does not match")
        return msg

    def check_signature(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        expected = signature(self.token, timestamp, nonce, encrypt)
        # bytes, because compare_digest raises TypeError on a str with non-ASCII characters
        if not hmac.compare_digest(expected.encode(), msg_signature.lower().encode()):
            raise CryptoError(CryptoErrorCode.VALIDATE_SIGNATURE, "msg_signature does not match")

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """GET verification: check the signature over echostr and return its plaintext."""
        self.check_signature(msg_signature, timestamp, nonce, echostr)
        try:
            return self.decrypt(echostr).decode()
        except UnicodeDecodeError as exc:
            raise CryptoError(CryptoErrorCode.ILLEGAL_BUFFER, "echostr is not UTF-8") from exc

    def decrypt_envelope(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> bytes:
        """POST: signature first, then decryption (the order WeCom's samples use)."""
        self.check_signature(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    def seal(
        self,
        msg: str | bytes,
        *,
        timestamp: str | None = None,
        nonce: str | None = None,
        nonce_bytes: bytes | None = None,
    ) -> Envelope:
        """Encrypt and sign msg as a sender (WeCom, or our emulator) does."""
        ts = timestamp or str(int(time.time()))
        nc = nonce or str(secrets.randbelow(10**9))
        encrypt = self.encrypt(msg, nonce_bytes=nonce_bytes)
        return Envelope(encrypt, signature(self.token, ts, nc, encrypt), ts, nc)


def envelope_xml(receive_id: str, encrypt: str, agent_id: str = "") -> str:
    """The POST body WeCom sends to a callback URL."""
    return (
        f"<xml><ToUserName><![CDATA[{receive_id}]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>"
        f"<AgentID><![CDATA[{agent_id}]]></AgentID></xml>"
    )


def reply_xml(env: Envelope) -> str:
    """The passive reply template (reference §1.5), byte for byte."""
    return (
        f"<xml>\n<Encrypt><![CDATA[{env.encrypt}]]></Encrypt>\n"
        f"<MsgSignature><![CDATA[{env.msg_signature}]]></MsgSignature>\n"
        f"<TimeStamp>{env.timestamp}</TimeStamp>\n"
        f"<Nonce><![CDATA[{env.nonce}]]></Nonce>\n</xml>"
    )
