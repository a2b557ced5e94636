"""The Bale channel's settings: SADA_BALE__<KEY>. New with Bale, so no older names."""

from __future__ import annotations

from pydantic import Field, SecretStr

from bot.channels.telegram.settings import BotApiSettings
from bot.settings_group import Ids

BALE_API_URL = "https://tapi.bale.ai"


class BaleSettings(BotApiSettings):
    token: SecretStr | None = Field(
        default=None, description="the Bale bot's token from @BotFather in Bale (123456:ABC…)"
    )
    api_url: str = Field(
        default=BALE_API_URL,
        description="Bale's Bot API server, or the tests' fake",
    )
    admin_ids: Ids = Field(
        default_factory=list,
        description="Bale user ids of the survey team (they may use /report), "
        "comma-separated: 12345,67890",
    )
    alert_chat_ids: Ids = Field(
        default_factory=list, json_schema_extra={"shown_default": "the admin ids"},
        description="Bale chats that get detractor alerts, comma-separated",
    )
    webhook_secret: SecretStr | None = Field(
        default=None, json_schema_extra={"shown_default": "derived from the token"},
        description="the Bale webhook's secret_token: 1-256 of A-Z, a-z, 0-9, _ and -",
    )
    bot_username: str | None = Field(
        default=None, json_schema_extra={"shown_default": "asked from Bale"},
        description="the Bale bot's username, for its ble.ir links",
    )
