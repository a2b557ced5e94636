"""`sada run` with Telegram on long polling serves the HTTP API on --listen once an API key
is in use, and opens no port without one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bot.channels.telegram.runner import run_bot
from bot.settings import Settings
from storage.api_keys import create_key
from storage.db import Database
from tests.bale.test_run import ROOT, TELEGRAM_TOKEN, free_port
from tests.fakebot import FakeBotApi

pytestmark = pytest.mark.slow


async def _polling_run(tmp_path: Path, with_key: bool) -> tuple[int | None, str]:
    """(status of GET /api/v1/flows with the key, or None when nothing listens; the key)."""
    url = f"sqlite:///{tmp_path / 'sada.db'}"
    key = ""
    async with await Database.open(url, auto_upgrade=True) as database:
        if with_key:
            _, key = await create_key(database, "helpdesk", ["read"],
                                      now=datetime.now(UTC))
    port = free_port()
    async with FakeBotApi(token=TELEGRAM_TOKEN) as telegram:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            telegram={"token": telegram.token, "api_url": telegram.base_url},
            database_url=url, flows_dir=ROOT / "flows",
        )
        stop = asyncio.Event()
        task = asyncio.create_task(run_bot(settings, framework="aiogram", webhook_url=None,
                                           listen=("127.0.0.1", port), stop=stop,
                                           polling_timeout=1))
        try:
            await telegram.wait_for(lambda: bool(telegram.calls("getUpdates")) or task.done(),
                                    timeout=60, what="polling")
            assert not task.done() or task.result()
            try:
                async with aiohttp.ClientSession() as session, session.get(
                        f"http://127.0.0.1:{port}/api/v1/flows",
                        headers={"Authorization": f"Bearer {key}"}) as answer:
                    return answer.status, key
            except aiohttp.ClientConnectorError:
                return None, key
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def test_polling_only_run_serves_the_api_when_a_key_is_in_use(tmp_path: Path) -> None:
    status, _ = await _polling_run(tmp_path, with_key=True)
    assert status == 200


async def test_polling_only_run_opens_no_port_without_a_key(tmp_path: Path) -> None:
    status, _ = await _polling_run(tmp_path, with_key=False)
    assert status is None
