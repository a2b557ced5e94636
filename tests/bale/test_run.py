"""Telegram and Bale in one `sada run` process, each against its own fake Bot API server:
a person on each channel completes a survey side by side (fa on Telegram, ar on Bale), on
aiogram and on python-telegram-bot, while the Bale server behaves as Bale is reported to
(pending updates kept by deleteWebhook, an unsupported method, a refused press notice, a
minimal getMe, updates the frameworks' models reject). Wrong Bale settings stop `sada run`
with one line naming the variable.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.channels.telegram.runner import StartError, run_bot, webhook_secret
from bot.engine.normalize import local_digits
from bot.flow.loader import load_flow
from bot.settings import Settings
from storage.db import Database
from storage.outbox import enqueue
from storage.repo import Store
from tests.conftest import sqlite_at_head
from tests.fakebot import FakeBotApi, FakeUser
from tests.fakebot.bale import FakeBaleApi
from tests.sada_cli import run_sada

ROOT = Path(__file__).resolve().parents[2]
B2B = load_flow(ROOT / "flows" / "b2b_supplier.yaml").flow
TELEGRAM_TOKEN = "123456:TEST-token-for-sada-two-channel-tests-0123"
NAMES = {"fa": "سارا", "ar": "سارة"}
SKIP = {"fa": "رد شدن ←", "ar": "تخطٍّ ←"}
DONE = {"fa": "تأیید ✓", "ar": "تم ✓"}

pytestmark = pytest.mark.slow


@dataclass
class Process:
    """`sada run` as a child process, its log in a file."""

    proc: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


async def sada_run(env: dict[str, str], log: Path, *args: str) -> Process:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SADA_")}
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from bot.cli import main; main()", "run", *args,
            cwd=ROOT, env={**clean, **env}, stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=out,
        )
    return Process(proc, log)


async def stop(process: Process) -> int:
    if process.proc.returncode is None:
        process.proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.proc.wait(), 30)


def env_for(telegram: FakeBotApi | None, bale: FakeBaleApi | None, db: Path) -> dict[str, str]:
    env = {"SADA_DATABASE_URL": f"sqlite:///{db}", "SADA_FLOWS_DIR": str(ROOT / "flows")}
    if telegram is not None:
        env |= {"SADA_TELEGRAM__TOKEN": telegram.token,
                "SADA_TELEGRAM__API_URL": telegram.base_url}
    if bale is not None:
        env |= {"SADA_BALE__TOKEN": bale.token, "SADA_BALE__API_URL": bale.base_url,
                "SADA_BALE__ADMIN_IDS": "1"}
    return env


class Person:
    """Someone chatting with the bot on one fake server."""

    def __init__(self, api: FakeBotApi, user: FakeUser, lang: str) -> None:
        self.api, self.user, self.lang = api, user, lang

    async def do(self, action: object, new: int = 1) -> None:
        before = len(self.api.sent(self.user.id))
        await action  # type: ignore[misc]
        await self.api.wait_sent(self.user.id, before + new, timeout=30)
        await asyncio.sleep(0)

    async def press(self, label: str, new: int = 1) -> None:
        for message in reversed(self.api.sent(self.user.id)):
            current = self.api.message(self.user.id, message["message_id"]) or message
            markup = current.get("reply_markup") or message.get("reply_markup") or {}
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label or button["text"].endswith(" " + label):
                        await self.do(self.user.press(current, button["callback_data"]), new)
                        return
        raise AssertionError(f"no button {label!r} for {self.user.id}: "
                             f"{self.api.texts(self.user.id)[-2:]}")

    def option(self, qid: str, option: str) -> str:
        for o in B2B.question(qid).options:  # type: ignore[union-attr]
            if o.id == option:
                return o.label[self.lang]  # type: ignore[index,no-any-return]
        raise KeyError(option)

    async def whole_survey(self) -> None:
        lang = self.lang
        await self.do(self.user.send("/start"))
        await self.press(B2B.title[lang], new=2)  # type: ignore[index]  # intro + question
        await self.press(self.option("stakeholder", "buyer"))
        await self.press(local_digits("9", lang))
        await self.press(SKIP[lang])
        await self.press(local_digits("4", lang))
        await self.press(self.option("priorities", "quality"), new=0)
        await self.api.wait_for(lambda: bool(self.api.calls("editMessageText")
                                             or self.api.calls("editMessageReplyMarkup")))
        await self.press(DONE[lang])
        await self.press(self.option("informed", "always"))
        # the last answer: the closing message follows
        await self.press(local_digits("2", lang))


async def completed(db: Path, channel: str, address: str) -> list[str]:
    """The statuses of the sessions of the contact at (channel, address)."""
    async with await Database.open(f"sqlite:///{db}") as database:
        contact = await Store(database).find_contact(channel, address)
    if contact is None:
        return []
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute(
            "select status from survey_session where contact_id = ?", (contact.id,))]


@pytest.fixture(params=["aiogram", "ptb"])
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_one_process_runs_telegram_and_bale_side_by_side(
    framework: str, tmp_path: Path
) -> None:
    db = tmp_path / "sada.db"
    async with (
        FakeBotApi(token=TELEGRAM_TOKEN) as telegram,
        FakeBaleApi(pending_survive_delete=True, unsupported={"editMessageReplyMarkup"},
                    press_notice=False, minimal_me=True) as bale,
    ):
        early = bale.user(3001, first_name="Reza", language_code="fa")
        await early.send("/start")  # waiting before the start: handled, never dropped
        process = await sada_run(env_for(telegram, bale, db), tmp_path / "run.log",
                                 "--framework", framework)
        try:
            await telegram.wait_for(lambda: bool(telegram.calls("getUpdates")
                                                 and bale.calls("getUpdates"))
                                    or process.proc.returncode is not None,
                                    timeout=90, what="both channels polling")
            assert process.proc.returncode is None, process.output()
            await bale.wait_sent(early.id, 1, timeout=30)
            sara = Person(telegram, telegram.user(1001, NAMES["fa"], "fa"), "fa")
            salma = Person(bale, bale.user(2001, NAMES["ar"], "ar"), "ar")
            await asyncio.gather(sara.whole_survey(), salma.whole_survey())
            # an update Bale's server spells its own way is still read; one the frameworks
            # cannot read is skipped, and the loop goes on to the next
            bale.broken_update(salma.user)
            later = bale.user(2002, NAMES["ar"], "ar")
            odd = bale.odd_update(later, "/start")
            await bale.wait_sent(later.id, 1, timeout=30)
            # both confirmed: the server hands neither out again
            await bale.wait_for(lambda: bale.updates_confirmed > odd["update_id"], timeout=30,
                                what="the skipped update confirmed")
        finally:
            code = await stop(process)
        log = process.output()
        assert code == 0, log
        # each person only on their own channel's server
        assert telegram.sent(2001) == [] and bale.sent(1001) == []
        assert await completed(db, "telegram", "1001") == ["completed"], log
        assert await completed(db, "bale", "2001") == ["completed"], log
        assert await completed(db, "telegram", "2001") == [] == await completed(db, "bale",
                                                                                 "1001")
        # the Bale links and names are Bale's: no t.me, no Telegram-only wording
        assert not any("t.me/" in text for text in bale.texts())
        assert "skipped: the framework cannot read it" in log
        assert "Bale: 1 update(s) waiting from before the start; handling them first" in log
        assert "Traceback" not in log


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("SADA_BALE__API_URL", "tapi.bale.ai",
     "SADA_BALE__API_URL: must look like https://tapi.bale.ai, not 'tapi.bale.ai'"),
    ("SADA_BALE__ADMIN_IDS", "@reza", "SADA_BALE__ADMIN_IDS: must be numeric ids"),
    ("SADA_BALE__TOKEN", "not-a-token", "SADA_BALE__TOKEN does not look like a bot token"),
    ("SADA_BALE__TOKN", "1:x", "SADA_BALE__TOKN: not a Bale setting"),
])
def test_wrong_bale_settings_are_one_line(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    env = env_for(None, None, tmp_path / "sada.db") | {
        "SADA_TELEGRAM__TOKEN": TELEGRAM_TOKEN, "SADA_BALE__TOKEN": "987654:BALE-token",
        variable: value}
    # `sada run` in this process: it stops at the settings, before it starts anything
    done = run_sada(["run"], env=env, cwd=ROOT)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(says), lines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_webhooks_of_both_channels_share_one_listen_address(
    framework: str, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/sada"
    async with FakeBotApi(token=TELEGRAM_TOKEN) as telegram, FakeBaleApi() as bale:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            telegram={"token": telegram.token, "api_url": telegram.base_url},
            bale={"token": bale.token, "api_url": bale.base_url},
            database_url=sqlite_at_head(tmp_path / "sada.db"), flows_dir=ROOT / "flows",
        )
        stop = asyncio.Event()
        task = asyncio.create_task(run_bot(settings, framework=framework, webhook_url=url,
                                           listen=("127.0.0.1", port), stop=stop))
        try:
            await telegram.wait_for(lambda: bool(telegram.webhook_url and bale.webhook_url)
                                    or task.done(), timeout=60, what="both webhooks set")
            assert not task.done() or task.result()
            assert (telegram.webhook_url, bale.webhook_url) == (url, f"{url}/bale")
            # each channel checks its own secret, derived from its own token
            assert telegram.webhook_secret == webhook_secret(settings, "telegram")
            assert bale.webhook_secret == webhook_secret(settings, "bale")
            assert telegram.webhook_secret != bale.webhook_secret
            sara, salma = telegram.user(1001, "سارا", "fa"), bale.user(2001, "سارة", "ar")
            assert await telegram.post_update_to_webhook(await sara.send("/start")) == 200
            assert await bale.post_update_to_webhook(await salma.send("/start")) == 200
            assert telegram.sent(1001) and bale.sent(2001)
            # a Bale update on Telegram's path, with Bale's secret, is not taken
            update = await salma.send("/help")
            assert await bale.post_update_to_webhook(update, url, bale.webhook_secret) == 401
            # one the framework cannot read is confirmed and skipped, as when polling
            sent = len(bale.sent(2001))
            assert await bale.post_update_to_webhook(bale.broken_update(salma)) == 200
            assert await bale.post_update_to_webhook(update) == 200
            assert len(bale.sent(2001)) > sent  # and the next one is answered
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        assert not bale.calls("deleteWebhook") and not telegram.calls("getUpdates")


def two_channels(telegram: FakeBotApi, bale: FakeBaleApi, db: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram={"token": telegram.token, "api_url": telegram.base_url, "admin_ids": [7]},
        bale={"token": bale.token, "api_url": bale.base_url, "admin_ids": [8]},
        database_url=sqlite_at_head(db), flows_dir=ROOT / "flows",
    )


async def test_follow_ups_go_out_on_their_own_channel(tmp_path: Path) -> None:
    """One dispatcher for the process: each outbox row leaves through its channel's
    transport, to that channel's server."""
    db = tmp_path / "sada.db"
    async with FakeBotApi(token=TELEGRAM_TOKEN) as telegram, FakeBaleApi() as bale:
        telegram.user(7), bale.user(8)
        stop = asyncio.Event()
        task = asyncio.create_task(run_bot(two_channels(telegram, bale, db),
                                           framework="aiogram", webhook_url=None, stop=stop,
                                           polling_timeout=1))
        try:
            await telegram.wait_for(lambda: bool(telegram.calls("getUpdates")
                                                 and bale.calls("getUpdates"))
                                    or task.done(), timeout=60, what="polling")
            assert not task.done() or task.result()
            now = datetime.now(UTC)
            async with await Database.open(f"sqlite:///{db}") as database, \
                    database.session() as s, s.begin():
                for channel, address in (("telegram", "7"), ("bale", "8")):
                    await enqueue(s, key=f"test:{channel}", kind="alert", channel=channel,
                                  address=address, contact_id=None,
                                  text=f"alert for {channel}", due_at=now, now=now)
            await telegram.wait_sent(7, 1, timeout=30)
            await bale.wait_sent(8, 1, timeout=30)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        assert telegram.texts() == ["alert for telegram"]
        assert bale.texts() == ["alert for bale"]


async def test_a_channel_that_cannot_start_stops_the_process_in_one_line(
    tmp_path: Path,
) -> None:
    async with FakeBotApi(token=TELEGRAM_TOKEN) as telegram, FakeBaleApi() as bale:
        bale.fail_next("getMe", 401, times=5)  # Bale does not know the token
        stop = asyncio.Event()
        with pytest.raises(StartError) as failed:
            await asyncio.wait_for(run_bot(two_channels(telegram, bale, tmp_path / "sada.db"),
                                           framework="ptb", webhook_url=None, stop=stop,
                                           polling_timeout=1), 60)
        assert str(failed.value).startswith(
            "Bale did not accept SADA_BALE__TOKEN (") and "\n" not in str(failed.value)
        assert bale.token not in str(failed.value)
        assert stop.is_set()  # Telegram was stopped with it
