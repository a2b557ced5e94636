"""`sada link --channel bale`: a ble.ir link to the Bale bot, its name from
SADA_BALE__BOT_USERNAME or asked from the Bale server; the link opens the flow there."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bot.cli import run as run_cli
from bot.settings import get_settings
from tests.fakebot.bale import FakeBaleApi

ROOT = Path(__file__).resolve().parents[2]
BALE_LINK = re.compile(r"https://ble\.ir/(\w+)\?start=([A-Za-z0-9_-]{22})")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.startswith("SADA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SADA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SADA_FLOWS_DIR", str(ROOT / "flows"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def invoke(*args: str) -> tuple[int, str]:
    app = typer.Typer(pretty_exceptions_enable=False)
    run_cli.register(app)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.output


def test_a_bale_link_with_the_configured_name(env: pytest.MonkeyPatch) -> None:
    env.setenv("SADA_BALE__BOT_USERNAME", "@sada_bale_bot")
    code, output = invoke("link", "post-support", "--channel", "bale", "-c", "ticket=T-1")
    assert code == 0, output
    match = BALE_LINK.fullmatch(output.strip())
    assert match is not None and match.group(1) == "sada_bale_bot", output


async def test_a_bale_link_asks_the_bale_server_for_the_name(env: pytest.MonkeyPatch) -> None:
    async with FakeBaleApi(username="asked_bale_bot", minimal_me=True) as bale:
        env.setenv("SADA_BALE__TOKEN", bale.token)
        env.setenv("SADA_BALE__API_URL", bale.base_url)
        code, output = await asyncio.to_thread(
            invoke, "link", "post-support", "--channel", "bale", "-c", "ticket=T-1")
        assert bale.calls("getMe")
    assert code == 0, output
    match = BALE_LINK.fullmatch(output.strip())
    assert match is not None and match.group(1) == "asked_bale_bot", output


@pytest.mark.parametrize(("args", "says"), [
    (["--channel", "bale"], "sada link needs the bot's name for the Bale link: set "
     "SADA_BALE__BOT_USERNAME"),
    (["--channel", "icq"], "--channel must be one of telegram, bale, web, not 'icq'"),
])
def test_a_link_that_cannot_be_made_says_why_in_one_line(
    env: pytest.MonkeyPatch, args: list[str], says: str
) -> None:
    code, output = invoke("link", "post-support", *args, "-c", "ticket=T-1")
    assert code == 2 and output.strip().startswith(says) and len(output.strip().splitlines()) == 1
