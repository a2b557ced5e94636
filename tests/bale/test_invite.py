"""An invitation to a contact with a Telegram and a Bale chat who prefers Bale: `sada invite`
queues it, the one `sada run` of both channels sends it on Bale only, and the person
answers it there: its start button opens the survey in the Bale chat."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.settings import Settings, get_settings
from tests.fakebot import FakeBotApi
from tests.fakebot.bale import FakeBaleApi
from tests.fakebot.running import polling

ROOT = Path(__file__).resolve().parents[2]
TELEGRAM_TOKEN = "123456:TEST-token-for-sada-bale-invite-tests-01234"
# Any hour, any day: the invitation is due at once whenever the test runs.
ALWAYS = '\nreminders:\n  after: [3d]\n  window: "00:00-00:00"\n' \
         "  days: [mon, tue, wed, thu, fri, sat, sun]\n"
CONTACTS = ("telegram_id,bale_id,preferred_channel,name,language,timezone,segment\n"
            "1001,2001,bale,سارة,ar,Asia/Dubai,vip\n")

pytestmark = pytest.mark.slow


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("SADA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    flows = tmp_path / "flows"
    flows.mkdir()
    text = (ROOT / "flows" / "b2b_supplier.yaml").read_text(encoding="utf-8")
    (flows / "b2b_supplier.yaml").write_text(text + ALWAYS, encoding="utf-8")
    monkeypatch.setenv("SADA_FLOWS_DIR", str(flows))
    monkeypatch.setenv("SADA_DATABASE_URL", f"sqlite:///{tmp_path / 'sada.db'}")
    get_settings.cache_clear()
    yield flows
    get_settings.cache_clear()


def sada(*args: str) -> str:
    get_settings.cache_clear()
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


async def test_an_invitation_goes_to_the_preferred_bale_chat_and_opens_there(
    env: Path, tmp_path: Path
) -> None:
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    await asyncio.to_thread(sada, "contacts", "import", str(tmp_path / "contacts.csv"))
    async with FakeBotApi(token=TELEGRAM_TOKEN) as telegram, FakeBaleApi() as bale:
        sara_tg, sara = telegram.user(1001, "سارة", "ar"), bale.user(2001, "سارة", "ar")
        await asyncio.to_thread(sada, "invite", "--flow", "b2b-supplier", "--segment", "vip",
                                "--bot-username", "sada_bale_bot")
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            telegram={"token": telegram.token, "api_url": telegram.base_url},
            bale={"token": bale.token, "api_url": bale.base_url},
            database_url=f"sqlite:///{tmp_path / 'sada.db'}", flows_dir=env,
        )
        async with polling(telegram, settings):
            [invitation] = await bale.wait_sent(sara.id, 1, timeout=60)
            buttons = [b for row in invitation["reply_markup"]["inline_keyboard"] for b in row]
            assert len(buttons) == 1
            await sara.press(invitation, buttons[0]["callback_data"])
            opened = await bale.wait_sent(sara.id, 3, timeout=30)  # the intro, a question
            assert opened[2].get("reply_markup"), opened
        assert telegram.sent(sara_tg.id) == []  # nothing on the chat she does not prefer
