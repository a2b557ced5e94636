"""Typed settings, read once from SADA_* environment variables and an optional .env file.

Each channel is a group, declared in its folder (bot/channels/<name>/settings.py) and set
as ``SADA_<CHANNEL>__<KEY>``: SADA_TELEGRAM__TOKEN. A group's older flat names
(SADA_TELEGRAM_TOKEN, SADA_ADMIN_IDS, …) are read as aliases; both names set to different
values is an error. The environment wins over .env, whichever name each uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bot.channels.bale.settings import BaleSettings
from bot.channels.telegram.settings import TelegramSettings
from bot.channels.web.settings import WebSettings
from bot.channels.whatsapp.settings import WhatsAppSettings
from bot.metrics_settings import MetricsSettings
from bot.settings_group import SettingsGroup

DEFAULT_DATA_DIR = Path("data")
PREFIX = "SADA_"
NESTED = "__"
# The type of a settings error whose message is already the whole line (names included).
WHOLE_LINE = "sada_settings"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_nested_delimiter=NESTED, env_file=".env",
        env_file_encoding="utf-8", extra="ignore",
    )

    database_url: str | None = Field(
        default=None, json_schema_extra={"shown_default": "SQLite in SADA_DATA_DIR"},
        description="sqlite:///path/to.db or postgresql://user@host/db; the async driver "
        "(aiosqlite, asyncpg) is chosen for you",
    )
    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="folder of the default SQLite file, created on first use",
    )
    flows_dir: Path = Field(
        default=Path("flows"),
        description="folder of flow YAML files, where flow ids (b2b-supplier) are looked up",
    )
    secret_key: SecretStr | None = Field(
        default=None, json_schema_extra={"shown_default": "derived from each channel's token"},
        description="signs button data (changing it invalidates the buttons of messages "
        "already sent)",
    )
    # The channels: one group each (a new channel adds its line here).
    telegram: TelegramSettings = Field(
        default_factory=TelegramSettings,
        description='the Telegram channel: one variable per key (SADA_TELEGRAM__TOKEN=…), '
        'or all of them as a JSON object ({"token": "…"})',
    )
    bale: BaleSettings = Field(
        default_factory=BaleSettings,
        description='the Bale channel: SADA_BALE__TOKEN=… and so on, or a JSON object',
    )
    whatsapp: WhatsAppSettings = Field(
        default_factory=WhatsAppSettings,
        description='the WhatsApp channel (Cloud API): SADA_WHATSAPP__ACCESS_TOKEN=… and so '
        'on, or a JSON object',
    )
    web: WebSettings = Field(
        default_factory=WebSettings,
        description='the web chat: SADA_WEB__PUBLIC_URL=… and so on, or a JSON object',
    )
    # Groups that are not channels (is_channel False): read the same way.
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings,
        description='the Prometheus endpoint: SADA_METRICS__ENABLED=… and so on, or a JSON '
        'object',
    )
    outbox_lease_seconds: float = Field(
        default=60.0, ge=10.0, le=3600.0,
        description="how long a process holds an invitation, reminder or alert it took to "
        "send: when a process dies, the messages it held go out from another once this has "
        "passed; a send may take half of it",
    )
    log_level: str = Field(
        default="INFO",
        description="what `sada run` logs: DEBUG, INFO, WARNING or ERROR (--log-level); "
        "personal data (names, answers, typed text, numbers) only at DEBUG",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text (a line per record) or json (an object per line, for log "
        "collectors) (--log-format)",
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(env_settings, EnvSettingsSource)
        assert isinstance(dotenv_settings, DotEnvSettingsSource)
        return (init_settings, _ChannelNames(env_settings), _ChannelNames(dotenv_settings),
                file_secret_settings)

    def alert_to(self) -> list[tuple[str, str]]:
        """Where staff alerts go, on every channel: (channel, address) pairs."""
        return [(name, address) for name in channel_groups(type(self))
                for address in getattr(self, name).alert_addresses]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sada.db').as_posix()}"


def channel_groups(
    settings_cls: type[BaseSettings] = Settings,
) -> dict[str, type[SettingsGroup]]:
    """The channels' settings groups by field name: {"telegram": TelegramSettings}. A field
    whose type is a SettingsGroup is a group: declaring it is all a channel needs here."""
    return {name: model for name, model in setting_groups(settings_cls).items()
            if getattr(model, "is_channel", True)}


def setting_groups(
    settings_cls: type[BaseSettings] = Settings,
) -> dict[str, type[SettingsGroup]]:
    """Every settings group, the channels' and the others' (metrics), by field name."""
    return {name: field.annotation for name, field in settings_cls.model_fields.items()
            if isinstance(field.annotation, type)
            and issubclass(field.annotation, SettingsGroup)}


@dataclass(frozen=True)
class Variable:
    """One setting: its variable, the older name still read for it, and its field."""

    name: str
    alias: str | None
    field: FieldInfo


def variables() -> Iterator[Variable]:
    """Every setting in the order the README table lists them."""
    groups = setting_groups()
    for name, field in Settings.model_fields.items():
        if name not in groups:
            yield Variable(f"{PREFIX}{name.upper()}", None, field)
    for group, model in groups.items():
        for key, field in model.model_fields.items():
            yield Variable(f"{PREFIX}{group.upper()}{NESTED}{key.upper()}",
                           model.aliases.get(key), field)


def variable_name(*loc: str | int) -> str:
    """The variable behind a value (("telegram", "token") → SADA_TELEGRAM__TOKEN), or its
    older flat name when only that one is set, so a message names what the user wrote."""
    head = str(loc[0])
    model = setting_groups().get(head)
    if model is None or len(loc) < 2:
        return f"{PREFIX}{head.upper()}"
    key = str(loc[1])
    nested = f"{PREFIX}{head}{NESTED}{key}".upper()
    alias = model.aliases.get(key)
    if alias is not None:
        written = _names_set()
        if alias in written and nested not in written:
            return alias
    return nested


def field_at(*loc: str | int) -> FieldInfo | None:
    """The field behind a value: ("telegram", "token") or ("data_dir",)."""
    model = setting_groups().get(str(loc[0]))
    if model is not None and len(loc) > 1:
        return model.model_fields.get(str(loc[1]))
    return Settings.model_fields.get(str(loc[0]))


def _names_set() -> set[str]:
    # The same readers Settings uses: the environment, then .env.
    found = EnvSettingsSource(Settings).env_vars.keys() | DotEnvSettingsSource(
        Settings).env_vars.keys()
    return {name.upper() for name in found}


def _line(line: str, *loc: str) -> InitErrorDetails:
    # "{line}": the message is a template, and a line may hold braces of its own.
    return InitErrorDetails(type=PydanticCustomError(WHOLE_LINE, "{line}", {"line": line}),
                            loc=loc, input=None)


class _ChannelNames(PydanticBaseSettingsSource):
    """The environment or .env as pydantic-settings reads it, plus what nesting leaves out:
    the older flat names of the channels' keys, and one line (not a traceback) for a name
    set twice, a channel that does not exist, or a group that is not JSON."""

    def __init__(self, source: EnvSettingsSource) -> None:
        super().__init__(source.settings_cls)
        self.source = source

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads through the wrapped source

    def __call__(self) -> dict[str, Any]:
        written = self.source.env_vars  # lower-case names (case_sensitive is off)
        groups = setting_groups(self.settings_cls)
        channels = channel_groups(self.settings_cls)
        prefix = PREFIX.lower()
        problems = []
        for name in written:
            head, nested, _ = name.removeprefix(prefix).partition(NESTED)
            if name.startswith(prefix) and nested and head not in groups:
                problems.append(_line(
                    f"{name.upper()}: there is no channel {head!r}; the channels are "
                    f"{', '.join(channels)} ({PREFIX}<CHANNEL>{NESTED}<KEY>)", head))
        for group in groups:
            whole = written.get(prefix + group)
            if whole is not None:
                try:
                    json.loads(whole)
                except ValueError:
                    example = f"{PREFIX}{group.upper()}{NESTED}TOKEN"
                    problems.append(_line(
                        f"{PREFIX}{group.upper()}: must be a JSON object such as "
                        f'{{"token": "…"}}; or set each key on its own: {example}=…', group))
        if problems:
            raise ValidationError.from_exception_data("Settings", problems)
        values = self.source()
        for group, model in groups.items():
            for key, alias in model.aliases.items():
                old = written.get(alias.lower())
                if old is None:
                    continue
                given = values.setdefault(group, {})
                if not isinstance(given, dict):
                    continue  # not an object: validation names SADA_<GROUP>
                if key in given and str(given[key]).strip() != old.strip():
                    nested = f"{PREFIX}{group}{NESTED}{key}".upper()
                    problems.append(_line(
                        f"{nested} and {alias} are both set, to different values: keep "
                        f"{nested} ({alias} is its older name)", group, key))
                given.setdefault(key, old)
        if problems:
            raise ValidationError.from_exception_data("Settings", problems)
        return values


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
