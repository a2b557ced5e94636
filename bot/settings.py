"""Typed settings, read once from SADA_* environment variables and an optional .env file."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATA_DIR = Path("data")
TELEGRAM_API_URL = "https://api.telegram.org"
# What Telegram accepts as a webhook secret_token.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SADA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Folder for the embedded database")
    database_url: str | None = Field(
        default=None,
        description="sqlite:///path or postgresql://user@host/db; default: SQLite in data_dir",
    )
    flows_dir: Path = Field(default=Path("flows"), description="Folder of flow YAML files")
    telegram_token: SecretStr | None = Field(
        default=None, description="The bot's token from @BotFather (123456:ABC…)"
    )
    telegram_api_url: str = Field(
        default=TELEGRAM_API_URL,
        description="Bot API server: Telegram's, or a local telegram-bot-api / test fake",
    )
    # NoDecode: pydantic-settings would otherwise demand JSON ("[1,2]") for a list.
    admin_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Telegram user ids of the survey team, comma-separated: 12345,67890",
    )
    alert_chat_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Telegram chats that get detractor alerts, comma-separated; "
        "default: SADA_ADMIN_IDS",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="X-Telegram-Bot-Api-Secret-Token for webhooks; default: derived from the token",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs button data; default: derived from the token (changing it "
        "invalidates the buttons of messages already sent)",
    )
    bot_username: str | None = Field(
        default=None, description="The bot's @username, for `sada link` without calling Telegram"
    )

    @property
    def alert_chats(self) -> list[int]:
        return self.alert_chat_ids or self.admin_ids

    @field_validator("admin_ids", "alert_chat_ids", mode="before")
    @classmethod
    def _comma_separated_ids(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        parts = [part for part in re.split(r"[\s,;]+", value.strip().strip("[]")) if part]
        if not all(re.fullmatch(r"-?\d+", part) for part in parts):
            raise ValueError(
                f"SADA_{(info.field_name or '').upper()} must be numeric Telegram ids separated "
                "by commas, "
                f"e.g. 12345,67890 (got {value!r})"
            )
        return [int(part) for part in parts]

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError(
                "SADA_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
            )
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _api_base_url(cls, value: str) -> str:
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError(
                f"SADA_TELEGRAM_API_URL must look like https://api.telegram.org, not {value!r}"
            )
        return value.rstrip("/")

    @field_validator("bot_username")
    @classmethod
    def _without_at(cls, value: str | None) -> str | None:
        return value.lstrip("@") or None if value is not None else None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sada.db').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
