"""A corp (企业) and its WeCom connection. Every other table hangs off corp.corp_id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.core.clock import now_utc
from siyu.core.db import Base, BigId, UtcDateTime


class Corp(Base):
    __tablename__ = "corp"

    corp_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    wecom_corpid: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[str] = mapped_column(String(32), default="")
    api_base_url: Mapped[str] = mapped_column(String(255))
    # Fernet ciphertexts (siyu.core.secrets); never store or log the plaintext.
    contact_secret_enc: Mapped[str] = mapped_column(Text)
    callback_token_enc: Mapped[str] = mapped_column(Text)
    callback_aes_key_enc: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc)


class WeComToken(Base):
    """The access token shared by every process of a corp (when Redis is not configured)."""

    __tablename__ = "wecom_token"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), primary_key=True)
    app: Mapped[str] = mapped_column(String(32), primary_key=True)
    access_token: Mapped[str] = mapped_column(String(1024))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    generation: Mapped[int] = mapped_column(Integer, default=1)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.corp_id", ondelete="CASCADE"), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now_utc, index=True)
