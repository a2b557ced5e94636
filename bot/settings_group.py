"""What every settings group shares: the model it derives from, and staff id lists.

A group is read from ``SADA_<GROUP>__<KEY>``. Each channel declares one in its own folder
(bot/channels/<name>/settings.py); a group that is not a channel (bot/metrics_settings.py)
sets ``is_channel`` False. bot.settings gathers the groups, one field each. ``aliases``
keeps the flat names of earlier releases working.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_settings import NoDecode


class SettingsGroup(BaseModel):
    # forbid: a mistyped key (SADA_TELEGRAM__TOKN) is an error, not a silently unset value.
    model_config = ConfigDict(extra="forbid")

    # key -> an older, flat variable name still read for it (SADA_TELEGRAM_TOKEN for token).
    aliases: ClassVar[Mapping[str, str]] = {}

    # A channel whose people can be staff declares `admin_ids` and `alert_chat_ids` (Ids);
    # one without (a web chat) has neither, and no staff there.
    @property
    def staff_ids(self) -> frozenset[str]:
        """The survey team's ids on this channel, as addresses: they may use /report."""
        ids: list[int] = getattr(self, "admin_ids", [])
        return frozenset(str(i) for i in ids)

    @property
    def link_name(self) -> str | None:
        """Whom this channel's links open (a bot's @username, a business number): None
        when not configured, or when the channel has no links."""
        return None

    @property
    def alert_addresses(self) -> list[str]:
        """The chats on this channel that get staff alerts: the alert chats, else the
        admins."""
        chats: list[int] = getattr(self, "alert_chat_ids", []) or getattr(self, "admin_ids", [])
        return [str(chat) for chat in chats]


def _comma_separated(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    parts = [part for part in re.split(r"[\s,;]+", value.strip().strip("[]")) if part]
    if not all(re.fullmatch(r"-?\d+", part) for part in parts):
        raise ValueError(
            f"must be numeric ids separated by commas, e.g. 12345,67890 (got {value!r})"
        )
    return [int(part) for part in parts]


# A list of numeric user or chat ids, written 12345,67890 in a variable. NoDecode:
# pydantic-settings would otherwise demand JSON ("[1,2]") for a list.
Ids = Annotated[list[int], NoDecode, BeforeValidator(_comma_separated)]
