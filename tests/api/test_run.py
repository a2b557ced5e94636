"""`sada run` with Telegram on long polling serves the HTTP API on --listen once an API key
is in use, and opens no port without one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bot.settings import Settings
from storage.api_keys import create_key
from storage.db import Database
from tests.bale.test_run import ROOT, TELEGRAM_TOKEN, free_port
from tests.fakebot import FakeBotApi
from tests.fakebot.running import polling

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
        async with polling(telegram, settings, listen=("127.0.0.1", port)):
            try:
                async with aiohttp.ClientSession() as session, session.get(
                        f"http://127.0.0.1:{port}/api/v1/flows",
                        headers={"Authorization": f"Bearer {key}"}) as answer:
                    return answer.status, key
            except aiohttp.ClientConnectorError:
                return None, key


async def test_polling_only_run_serves_the_api_when_a_key_is_in_use(tmp_path: Path) -> None:
    status, _ = await _polling_run(tmp_path, with_key=True)
    assert status == 200


async def test_polling_only_run_opens_no_port_without_a_key(tmp_path: Path) -> None:
    status, _ = await _polling_run(tmp_path, with_key=False)
    assert status is None
