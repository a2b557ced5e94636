"""The web chat's settings: SADA_WEB__<KEY>. New with the web chat, so no older names.

The chat has no staff of its own (no admin ids): its alerts go to the other channels'."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import NoDecode

from bot.settings_group import SettingsGroup

_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def origin_of(url: str) -> str:
    """scheme://host[:port] of `url`, lower-cased: how browsers name an origin."""
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest.split('/', 1)[0].lower()}"


def _origins(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    found = []
    for written in (p.strip() for p in re.split(r"[\s,;]+", value.strip()) if p.strip()):
        if not _ORIGIN.fullmatch(written.rstrip("/")):
            raise ValueError(f"{written!r} is not an origin: write each as "
                             "https://www.example.com (scheme and host, no path), "
                             "separated by commas")
        found.append(origin_of(written.rstrip("/")))
    return found


class WebSettings(SettingsGroup):
    enabled: bool = Field(
        default=False, json_schema_extra={"shown_default": "on when the public URL is set"},
        description="serve the web chat on --listen (/s/<token>, /web/sada.js, /web/v1/…)",
    )
    public_url: str | None = Field(
        default=None,
        description="the chat server's public base URL, e.g. https://cx.example.com: its "
        "links are <public url>/s/<token>; setting it turns the web chat on",
    )
    allowed_origins: Annotated[list[str], NoDecode, BeforeValidator(_origins)] = Field(
        default_factory=list, json_schema_extra={"shown_default": "the server's own"},
        description="other sites that may embed the chat (CORS), comma-separated: "
        "https://www.example.com,https://shop.example.com",
    )
    trust_proxy: bool = Field(
        default=False,
        description="believe X-Forwarded-Host and X-Forwarded-Proto (only behind your own "
        "reverse proxy, which must set them)",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s?#]*)?", url):
            raise ValueError(f"must be the server's base URL like https://cx.example.com, "
                             f"not {value!r}")
        return url

    @property
    def serves(self) -> bool:
        """Whether `sada run` serves the web chat."""
        return self.enabled or self.public_url is not None

    @property
    def link_name(self) -> str | None:
        """The links' base: the public URL ({bot} of the channel's DeepLinks)."""
        return self.public_url
