"""Mounting the HTTP API on the one server of `sada run`."""

from __future__ import annotations

import logging

from bot.api.app import V1, Api
from bot.messaging.registry import CHANNELS
from bot.serving import Shared
from bot.settings import Settings
from storage.api_keys import list_keys

log = logging.getLogger(__name__)


def bot_usernames(settings: Settings) -> dict[str, str | None]:
    """The bot each channel's personal links open (SADA_<CHANNEL>__BOT_USERNAME)."""
    found: dict[str, str | None] = {}
    for channel in CHANNELS:
        group = getattr(settings, channel.name, None)
        found[channel.name] = getattr(group, "link_name", None) if group is not None else None
    return found


async def mount_api(shared: Shared, settings: Settings) -> Api:
    """Serve the API under /api/ whenever the server listens, and make it listen now when an
    API key is in use: then the API is enabled, even if every channel polls. Without a key
    no request could be accepted, so a polling bot opens no port for it."""
    api = Api(shared.store.database, flows_dir=settings.flows_dir,
              bot_usernames=bot_usernames(settings))
    shared.api = api.handle
    if await list_keys(shared.store.database, include_revoked=False):
        await shared.start_server()
        host, port = shared.listen
        log.info("HTTP API: listening on http://%s:%d%s", host, port, V1)
    return api
