"""Encryption at rest for corp secrets (Fernet, key derived from Settings.secret_key)."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

from siyu.core.config import get_settings


@lru_cache
def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"siyu-secrets-v1:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_secret(plaintext: str) -> str:
    return _fernet(get_settings().resolved_secret_key()).encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    try:
        return _fernet(get_settings().resolved_secret_key()).decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("cannot decrypt a stored secret: SIYU_SECRET_KEY changed?") from exc
