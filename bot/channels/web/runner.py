"""The web chat in `sada run`: its page, widget and API on the process's one HTTP server,
beside the other channels. CHANNEL_NAME, enabled, check and serve are the channel's run hooks,
found by bot.serving (bot/channels/whatsapp/runner.py is the model).

Button data is signed like every channel's: with SADA_SECRET_KEY, else with a key made once
and kept in SADA_DATA_DIR (the web chat has no bot token to derive one from), so buttons
already shown stay valid across restarts.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from bot.channels.web.http import PAGE_PREFIX, WebChat
from bot.channels.web.transport import WebTransport
from bot.conversation.lanes import ChatLanes
from bot.serving import CoreFactory, Shared, StartError
from bot.settings import Settings, variable_name

__all__ = ["CHANNEL_NAME", "check", "enabled", "serve"]

log = logging.getLogger(__name__)
CHANNEL_NAME = "web"
STOP_GRACE_SECONDS = 10.0
SECRET_FILE = "web-secret"


def enabled(settings: Settings) -> bool:
    """Whether `sada run` serves the web chat: SADA_WEB__ENABLED, or a public URL set."""
    return settings.web.serves


def check(settings: Settings) -> None:
    """The web chat needs nothing more; a data folder it cannot write a key to is said so."""
    if settings.secret_key is None and not settings.data_dir.is_dir():
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartError(f"cannot create {settings.data_dir} ({exc.strerror}) for the "
                             f"web chat's signing key: set {variable_name('secret_key')} or "
                             f"{variable_name('data_dir')}") from None


def secret(settings: Settings) -> str:
    """The key that signs the web chat's button data."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = Path(settings.data_dir) / SECRET_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key + "\n")
    return key


async def serve(shared: Shared, settings: Settings, make_core: CoreFactory,
                webhook_url: str | None) -> None:
    """Serve the web chat until the stop."""
    check(settings)
    group = settings.web
    host, port = shared.listen
    lanes = ChatLanes()
    try:
        core = await make_core(
            shared.store, channel=CHANNEL_NAME, flows_dir=settings.flows_dir,
            bot_username=group.public_url or f"http://{host}:{port}", admin_ids=frozenset(),
            secret=secret(settings), alert_to=settings.alert_to(),
        )
        transport = WebTransport(shared.store.database)
        shown = await core.resume_pending(transport)
        if shown:
            log.info("web chat: re-sent %d question(s) committed before the last stop but "
                     "never shown", shown)
        chat = WebChat(shared.store, core, transport, group, stop=shared.stop, lanes=lanes)
        for method, path, handler in chat.routes():
            await shared.route(path, handler, method=method)
        for method, prefix, handler in chat.prefix_routes():
            await shared.route_prefix(prefix, handler, method=method)
        shared.join(transport, getattr(core, "flows", {}))
        log.info("web chat: pages on http://%s:%d%s<token>%s", host, port, PAGE_PREFIX,
                 f" (public at {group.public_url})" if group.public_url else "")
        await shared.stop.wait()
        await lanes.close(STOP_GRACE_SECONDS)
    finally:
        await shared.stop_followups()
        await lanes.close(STOP_GRACE_SECONDS)
