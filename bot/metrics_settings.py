"""The metrics endpoint's settings: SADA_METRICS__<KEY>. A settings group like a channel's
(one variable per key, or the group as JSON), though not a channel: nothing runs for it."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from bot.settings_group import SettingsGroup


class MetricsSettings(SettingsGroup):
    # Not a channel: bot.settings.channel_groups leaves it out, setting_groups keeps it.
    is_channel: ClassVar[bool] = False

    enabled: bool = Field(
        default=True,
        description="serve Prometheus metrics at GET /metrics (no key needed: keep it off "
        "the public internet)",
    )
    listen: str | None = Field(
        default=None, json_schema_extra={"shown_default": "on --listen"},
        description="HOST:PORT of a server of its own for /metrics, e.g. 127.0.0.1:9464, "
        "instead of the --listen server (which may face the internet)",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        host, sep, port = value.strip().rpartition(":")
        if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be HOST:PORT, such as 127.0.0.1:9464, not {value!r}")
        return value.strip()

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) of the server of its own, or None: /metrics on --listen."""
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)
