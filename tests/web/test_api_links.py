"""The HTTP API's personal links once the web chat has a public URL: a contact without a
chat gets a web link by default (nothing to install to answer); links_channel still picks
another channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.api.app import Api
from bot.api.mount import bot_usernames
from bot.channels.telegram.settings import TelegramSettings
from bot.channels.web.settings import WebSettings
from bot.serving import Shared
from bot.settings import Settings
from storage.db import Database
from storage.repo import Store
from tests.api.test_api import FLOWS, INVITE, call, key_with
from tests.bale.test_run import free_port


@asynccontextmanager
async def api_server(database: Database, settings: Settings) -> AsyncIterator[str]:
    port = free_port()
    shared = Shared(Store(database), asyncio.Event(), channels=1, listen=("127.0.0.1", port))
    shared.api = Api(database, flows_dir=FLOWS, bot_usernames=bot_usernames(settings)).handle
    await shared.start_server()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await shared.close()


async def test_a_contact_without_a_chat_gets_a_web_link(database: Database) -> None:
    key = await key_with(database, "invite")
    settings = Settings(_env_file=None,  # type: ignore[call-arg]
                        web=WebSettings(public_url="https://cx.example.com"),
                        telegram=TelegramSettings(bot_username="sada_bot"))
    async with api_server(database, settings) as base:
        body = {**INVITE, "contact": {"external_id": "CRM-7", "name": "Ali"}}
        status, answer = await call("POST", f"{base}/api/v1/invitations", key, body)
        assert status == 201, answer
        assert answer["link"].startswith("https://cx.example.com/s/")
        assert answer["links_channel"] == "web"
        body = {**INVITE, "contact": {"external_id": "CRM-8"}, "links_channel": "telegram"}
        status, answer = await call("POST", f"{base}/api/v1/invitations", key, body)
        assert status == 201, answer
        assert answer["link"].startswith("https://t.me/sada_bot?start=")
