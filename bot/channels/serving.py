"""The channels `sada run` serves by webhook only, beside the Bot API channels: each folder
under bot/channels/ whose `runner` module declares how it runs (`enabled`, `check`,
`serve`), discovered as bot.messaging.registry discovers channel declarations, so adding
such a channel touches nothing outside its folder and its settings.

The Bot API channels (Telegram, Bale) are run by bot/channels/telegram/runner.py, which
calls the hooks found here with the process's shared parts (store, stop, HTTP site,
follow-ups).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, cast

from bot.settings import Settings

if TYPE_CHECKING:
    from bot.channels.telegram.runner import CoreFactory, _Shared

__all__ = ["WebhookChannel", "webhook_channels"]

CHANNELS_PACKAGE = "bot.channels"
HOOK_MODULE = "runner"


class WebhookChannel(Protocol):
    """What a channel's `runner` module declares (bot/channels/whatsapp/runner.py)."""

    CHANNEL_NAME: str

    def enabled(self, settings: Settings) -> bool:
        """Whether its settings ask `sada run` to serve it."""
        ...

    def check(self, settings: Settings) -> None:
        """Raise the runner's StartError naming the first variable it lacks."""
        ...

    def serve(self, shared: _Shared, settings: Settings, make_core: CoreFactory,
              webhook_url: str | None) -> Awaitable[None]:
        """Serve the channel until the shared stop."""
        ...


def _declares(module: ModuleType) -> bool:
    return all(hasattr(module, name) for name in ("CHANNEL_NAME", "enabled", "check", "serve"))


@cache
def webhook_channels() -> tuple[WebhookChannel, ...]:
    """Every channel folder's run hooks, in name order."""
    package = importlib.import_module(CHANNELS_PACKAGE)
    found: list[WebhookChannel] = []
    for folder in sorted(pkgutil.iter_modules(package.__path__, f"{CHANNELS_PACKAGE}."),
                         key=lambda f: f.name):
        if not folder.ispkg:
            continue
        try:
            module = importlib.import_module(f"{folder.name}.{HOOK_MODULE}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{folder.name}.{HOOK_MODULE}":
                raise
            continue
        if _declares(module):
            found.append(cast(WebhookChannel, module))
    return tuple(found)
