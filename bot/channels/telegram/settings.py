"""The Telegram channel's settings: SADA_TELEGRAM__<KEY> (or the older flat names)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from bot.settings_group import Ids, SettingsGroup

TELEGRAM_API_URL = "https://api.telegram.org"
# What Telegram accepts as a webhook secret_token.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class BotApiSettings(SettingsGroup):
    """A channel on Telegram's Bot API protocol (Telegram, Bale): `sada run` runs every such
    group that has a token on the code of bot/channels/telegram/. A channel's group derives
    from this and declares the same keys with its own defaults and descriptions."""

    token: SecretStr | None = None
    api_url: str = TELEGRAM_API_URL
    admin_ids: Ids = Field(default_factory=list)
    alert_chat_ids: Ids = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    bot_username: str | None = None

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_base_url(cls, value: str) -> str:
        default = cls.model_fields["api_url"].default
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError(f"must look like {default}, not {value!r}")
        return value.rstrip("/")

    @property
    def link_name(self) -> str | None:
        return self.bot_username

    @field_validator("bot_username")
    @classmethod
    def _without_at(cls, value: str | None) -> str | None:
        return value.lstrip("@") or None if value is not None else None


class TelegramSettings(BotApiSettings):
    aliases: ClassVar[Mapping[str, str]] = {
        "token": "SADA_TELEGRAM_TOKEN",
        "api_url": "SADA_TELEGRAM_API_URL",
        "admin_ids": "SADA_ADMIN_IDS",
        "alert_chat_ids": "SADA_ALERT_CHAT_IDS",
        "webhook_secret": "SADA_WEBHOOK_SECRET",
        "bot_username": "SADA_BOT_USERNAME",
    }

    token: SecretStr | None = Field(
        default=None, description="the bot's token from @BotFather (123456:ABC…)"
    )
    api_url: str = Field(
        default=TELEGRAM_API_URL,
        description="the Bot API server: Telegram's, or your own telegram-bot-api, or the "
        "tests' fake",
    )
    admin_ids: Ids = Field(
        default_factory=list,
        description="Telegram user ids of the survey team (they may use /report), "
        "comma-separated: 12345,67890",
    )
    alert_chat_ids: Ids = Field(
        default_factory=list, json_schema_extra={"shown_default": "the admin ids"},
        description="Telegram chats that get detractor alerts, comma-separated",
    )
    webhook_secret: SecretStr | None = Field(
        default=None, json_schema_extra={"shown_default": "derived from the token"},
        description="the webhook's X-Telegram-Bot-Api-Secret-Token: 1-256 of A-Z, a-z, "
        "0-9, _ and -",
    )
    bot_username: str | None = Field(
        default=None, json_schema_extra={"shown_default": "asked from Telegram"},
        description="the bot's @username, for `sada link` and the links `sada invite` "
        "writes without calling Telegram",
    )
