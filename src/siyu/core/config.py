"""One typed Settings object for the whole of siyu, read from SIYU_* environment variables or .env."""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIYU_", env_file=".env", extra="ignore")

    env: Environment = Field(Environment.DEVELOPMENT, description="development, test or production.")
    database_url: str = Field(
        "sqlite:///siyu.db",
        description="SQLAlchemy URL; SQLite by default, e.g. postgresql+psycopg://user@host/db in production.",
    )
    queue_url: str | None = Field(
        None,
        description="Task queue storage: sqlite:///path (embedded, the default: next to the database) "
        "or redis://host:port/db for several machines.",
    )
    redis_url: str | None = Field(
        None, description="When set, WeCom access tokens are shared through Redis instead of the database."
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Encrypts corp secrets at rest and signs sessions. Required outside development; "
        "in development a random key is generated once and kept in siyu.secret beside the database.",
    )
    wecom_api_base: str = Field("https://qyapi.weixin.qq.com", description="Default WeCom API base URL for new corps.")
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="The URL WeCom reaches this server at (shown for the callback URL).",
    )
    wecom_retry_budget_seconds: float = Field(
        30.0, description="How long one WeCom call may keep backing off on 45009/45033/-1 before giving up."
    )
    wecom_timeout_seconds: float = Field(10.0, description="HTTP timeout for one WeCom request.")
    callback_max_body_bytes: int = Field(1024 * 1024, description="Callback bodies above this get 413.")
    sync_batch_size: int = Field(100, description="Employees per batch/get_by_user call (WeCom's maximum is 100).")
    export_dir: Path | None = Field(
        None, description="Where customer CSV exports are written; default: an `exports` folder next to the database."
    )

    def resolved_queue_url(self) -> str:
        if self.queue_url:
            return self.queue_url
        return f"sqlite:///{self._data_dir() / 'siyu-queue.db'}"

    def resolved_export_dir(self) -> Path:
        return self.export_dir or self._data_dir() / "exports"

    def _data_dir(self) -> Path:
        if self.database_url.startswith("sqlite:///") and ":memory:" not in self.database_url:
            return Path(self.database_url.removeprefix("sqlite:///")).resolve().parent
        return Path.cwd()

    def resolved_secret_key(self) -> str:
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.env == Environment.PRODUCTION:
            raise RuntimeError("SIYU_SECRET_KEY must be set in production")
        path = self._data_dir() / "siyu.secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
