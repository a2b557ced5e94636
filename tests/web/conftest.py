"""A web chat on a real aiohttp server on a free port, over a real controller and database
(SQLite and PostgreSQL), and a browser-like client of its JSON API (no browser: the widget's
own tests drive Chromium)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.channels.web.http import WebChat
from bot.channels.web.settings import WebSettings
from bot.channels.web.transport import WebTransport
from bot.conversation.controller import standalone_controller
from storage.db import Database
from storage.repo import Store

ROOT = Path(__file__).resolve().parents[2]
SHOP = "https://shop.example.com"
JSON = dict[str, Any]


@dataclass
class Served:
    chat: WebChat
    base: str
    http: aiohttp.ClientSession

    async def post(self, name: str, body: Any, **headers: str) -> tuple[int, JSON]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.http.post(f"{self.base}/web/v1/{name}", data=data,
                                  headers={"Content-Type": "application/json",
                                           **headers}) as answer:
            return answer.status, await answer.json()

    async def open(self, **body: Any) -> JSON:
        status, answer = await self.post("open", {"visitor": None, "token": None,
                                                  "flow": None, "lang": None, **body})
        assert status == 200, answer
        return answer

    async def settled(self) -> None:
        """Until the visitors' events are handled (their lanes empty)."""
        for _ in range(500):
            if not self.chat.lanes.chats:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the controller is still busy")

    async def poll(self, visitor: str, after: int) -> tuple[list[JSON], int]:
        """What the visitor has after `after`, once their events are handled."""
        await self.settled()
        async with self.http.get(f"{self.base}/web/v1/poll",
                                 params={"visitor": visitor, "after": str(after)}) as answer:
            assert answer.status == 200, await answer.text()
            found = await answer.json()
        return found["messages"], found["last"]


def settings(**values: Any) -> WebSettings:
    return WebSettings(allowed_origins=[SHOP], **values)


async def serve(database: Database, web_settings: WebSettings) -> AsyncIterator[Served]:
    store = Store(database)
    core = await standalone_controller(store, channel="web", flows_dir=ROOT / "flows",
                                       bot_username="http://testserver", admin_ids=frozenset(),
                                       secret="web-test-secret")
    stop = asyncio.Event()
    chat = WebChat(store, core, WebTransport(database), web_settings, stop=stop)
    runner = web.AppRunner(chat.application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            yield Served(chat, f"http://127.0.0.1:{port}", http)
    finally:
        stop.set()
        await chat.lanes.close(5)
        await runner.cleanup()


@pytest.fixture
async def served(database: Database) -> AsyncIterator[Served]:
    async for found in serve(database, settings()):
        yield found
