"""`sada run`'s runner against a running FakeBotApi: its settings, and run_bot polling the
fake for as long as a block runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.channels.telegram.runner import run_bot
from bot.settings import Settings
from tests.conftest import sqlite_at_head

from .server import FakeBotApi

__all__ = ["polling", "settings_for"]


def settings_for(
    api: FakeBotApi, tmp_path: Path, flows_dir: Path | None = None, **telegram: Any
) -> Settings:
    """Settings for the fake server; ``telegram``: other SADA_TELEGRAM__* keys."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram={"token": api.token, "api_url": api.base_url, **telegram},
        database_url=sqlite_at_head(tmp_path / "sada.db"), flows_dir=flows_dir or tmp_path,
    )


@asynccontextmanager
async def polling(api: FakeBotApi, settings: Settings, *, framework: str = "aiogram",
                  **options: Any) -> AsyncIterator[asyncio.Task[None]]:
    """run_bot long polling `api` until the block ends (then stopped and awaited). The block
    starts once it polls; a start that failed raises here instead."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(settings, framework=framework,  # type: ignore[arg-type]
                                       webhook_url=None, stop=stop, polling_timeout=1,
                                       **options))
    try:
        # a cold start (imports, migrations) takes seconds on a busy machine
        await api.wait_for(lambda: api.calls("getUpdates") or task.done(), timeout=60,
                           what="polling")
        if task.done():
            task.result()
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
