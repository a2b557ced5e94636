"""`sada run` leaves what its start made out of Python's garbage collections, once every
channel is up (bot.serving.Shared.join): a full collection then walks what the conversations
made, not the ~300,000 objects of the imports, flows and engine."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from bot.channels.telegram.runner import run_bot
from bot.settings import Settings
from tests.conftest import sqlite_at_head
from tests.fakebot.server import FakeBotApi

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("freeze", [True, False])
async def test_the_start_is_frozen_once_every_channel_is_up(tmp_path: Path,
                                                            freeze: bool) -> None:
    assert gc.get_freeze_count() == 0, "a frozen test process: run this test alone"
    try:
        async with FakeBotApi(token="123456:TEST-token-for-sada-freeze-tests-0123456") as api:
            settings = Settings(
                telegram={"token": api.token, "api_url": api.base_url},
                database_url=sqlite_at_head(tmp_path / "sada.db"), flows_dir=ROOT / "flows",
                _env_file=None,  # type: ignore[call-arg]
            )
            stop = asyncio.Event()
            task = asyncio.create_task(run_bot(settings, framework="aiogram",
                                               webhook_url=None, stop=stop,
                                               polling_timeout=1, freeze_when_up=freeze))
            await api.wait_for(lambda: api.calls("getUpdates") or task.done(), timeout=60,
                               what="polling")
            if task.done():
                task.result()
            frozen = gc.get_freeze_count()
            stop.set()
            await asyncio.wait_for(task, 15)
        if freeze:
            # the imports alone are well over this; a test process's own objects too
            assert frozen > 50_000
        else:
            assert frozen == 0  # in-process callers (tests, hosts) keep their collections
    finally:
        gc.unfreeze()
