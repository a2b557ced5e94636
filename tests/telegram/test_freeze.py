"""`sada run` leaves what its start made out of Python's garbage collections, once every
channel is up (bot.serving.Shared.join): a full collection then walks what the conversations
made, not the ~300,000 objects of the imports, flows and engine."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tests.fakebot.running import polling, settings_for
from tests.fakebot.server import FakeBotApi

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("freeze", [True, False])
async def test_the_start_is_frozen_once_every_channel_is_up(tmp_path: Path,
                                                            freeze: bool) -> None:
    assert gc.get_freeze_count() == 0, "a frozen test process: run this test alone"
    try:
        async with FakeBotApi(token="123456:TEST-token-for-sada-freeze-tests-0123456") as api, \
                polling(api, settings_for(api, tmp_path, ROOT / "flows"),
                        freeze_when_up=freeze):
            frozen = gc.get_freeze_count()
        if freeze:
            # the imports alone are well over this; a test process's own objects too
            assert frozen > 50_000
        else:
            assert frozen == 0  # in-process callers (tests, hosts) keep their collections
    finally:
        gc.unfreeze()
