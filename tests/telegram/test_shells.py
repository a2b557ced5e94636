"""The aiogram and python-telegram-bot shells, run by the real frameworks against the fake
Bot API server: updates in as events, `run_bot` polling and webhooks, and the `sada run` /
`sada link` command lines. The Transport's calls and errors are the contract suite's:
tests/messaging/test_transport_contract.py.

A small fake core stands in for Controller so the shells are proven on their own; the
last tests run the real core end to end."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import typer
from aiogram import Dispatcher, F, Router
from aiogram.types import CallbackQuery, Message
from telegram import Update
from telegram.ext import CallbackQueryHandler, ContextTypes, MessageHandler, filters
from typer.testing import CliRunner

from bot.channels.telegram import aiogram_shell, ptb_shell
from bot.channels.telegram.runner import (
    ALLOWED_UPDATES,
    SECRET_HEADER,
    Core,
    StartError,
    run_bot,
    webhook_secret,
)
from bot.cli import run as run_cli
from bot.conversation.events import Inbound, Pressed, Sender, Typed
from bot.conversation.lanes import DEFAULT_CONCURRENCY, ChatLanes, wait_out
from bot.messaging.transport import Button, Keyboard, Transport
from bot.settings import Settings, get_settings
from storage.db import Database
from storage.inbox import Inbox
from storage.repo import Store
from tests.fakebot import FakeBotApi
from tests.fakebot.running import settings_for

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ["aiogram", "ptb"]
KEYBOARD: Keyboard = ((Button("Yes <b>", "s1:yes"), Button("No", "s1:no")),)
GOOD_TOKEN = "123456:" + "A" * 35
JSON = dict[str, Any]


class FakeCore:
    """What the shells need of Controller: it records events and answers through the
    transport (a text with a keyboard for a text, a callback answer for a press)."""

    def __init__(self, wanted: Callable[[Inbound], bool] = lambda _: True) -> None:
        self.wanted = wanted
        self.events: list[Inbound] = []
        self.asked: list[Inbound] = []
        self.resumed: list[Transport] = []
        self.created: dict[str, Any] = {}

    async def wants(self, event: Inbound) -> bool:
        self.asked.append(event)
        return self.wanted(event)

    async def process(self, event: Inbound, transport: Transport) -> None:
        self.events.append(event)
        if isinstance(event, Typed):
            await transport.send_text(event.chat_id, f"got {event.text}", KEYBOARD)
        else:
            await transport.answer_press(event.callback_id, "ok")

    async def resume_pending(self, transport: Transport) -> int:
        self.resumed.append(transport)
        return 0

    async def factory(
        self, store: Store, *, channel: str, flows_dir: Path, bot_username: str,
        admin_ids: frozenset[str], secret: str, alert_to: list[tuple[str, str]],
    ) -> Core:
        self.created = {"store": store, "channel": channel, "flows_dir": flows_dir,
                        "bot_username": bot_username, "admin_ids": admin_ids, "secret": secret,
                        "alert_to": alert_to}
        return self


def ours(event: Inbound) -> bool:
    """Like the real core: commands and s1: buttons are Sada's, other text is the host's."""
    if isinstance(event, Pressed):
        return event.data.startswith("s1:")
    return event.text.startswith("/")


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(seed=3) as fake:
        yield fake


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- each shell inside its framework, next to a host bot's own handlers ------------------------


class Host:
    """What a host bot's handlers received: everything Sada let through."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.presses: list[str] = []


@asynccontextmanager
async def aiogram_running(api: FakeBotApi, core: FakeCore, host: Host) -> AsyncIterator[None]:
    bot = aiogram_shell.build_bot(api.token, api.base_url)
    host_router = Router(name="host")

    @host_router.message(F.text)
    async def host_text(message: Message) -> None:
        host.texts.append(message.text or "")

    @host_router.callback_query()
    async def host_press(query: CallbackQuery) -> None:
        host.presses.append(query.data or "")

    dp = Dispatcher()
    dp.include_router(aiogram_shell.survey_router(core))  # first, as the module says
    dp.include_router(host_router)
    task = asyncio.create_task(dp.start_polling(
        bot, polling_timeout=1, handle_signals=False, handle_as_tasks=False,
    ))
    await api.wait_for(lambda: api.calls("getUpdates") or task.done())
    try:
        yield
    finally:
        if not task.done():
            await dp.stop_polling()
        await task


@asynccontextmanager
async def ptb_running(api: FakeBotApi, core: FakeCore, host: Host) -> AsyncIterator[None]:
    app = ptb_shell.build_application(api.token, api.base_url)

    async def host_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        host.texts.append(update.message.text or "")

    async def host_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        host.presses.append(update.callback_query.data or "")

    ptb_shell.add_survey_handlers(app, core)
    app.add_handler(MessageHandler(filters.TEXT, host_text))  # group 0, the usual place
    app.add_handler(CallbackQueryHandler(host_press))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(timeout=1)
        await app.start()
        try:
            yield
        finally:
            await app.updater.stop()
            await app.stop()


def running(framework: str, api: FakeBotApi, core: FakeCore, host: Host) -> Any:
    return (aiogram_running if framework == "aiogram" else ptb_running)(api, core, host)


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_text_and_a_press_reach_the_core_as_events(api: FakeBotApi, framework: str) -> None:
    core, host = FakeCore(ours), Host()
    sara = api.user(1001, first_name="Sara", language_code="fa", username="sara_k")
    async with running(framework, api, core, host):
        update = await sara.send("/start abc")
        [reply] = await api.wait_sent(1001, 1)
        pressed = await sara.press(reply, "s1:yes")
        await api.wait_for(lambda: api.callback_answers())
    user = Sender("1001", "Sara", None, "sara_k", "fa")
    assert core.events == [
        Typed(update["update_id"], "1001", user, "/start abc"),
        Pressed(pressed["update_id"], "1001", user, pressed["callback_query"]["id"],
                reply["message_id"], "s1:yes"),
    ]
    assert reply["text"] == "got /start abc"
    assert api.callback_answers()[0]["text"] == "ok"
    assert host.texts == [] and host.presses == []  # handled by Sada: the host never sees it


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_what_the_core_does_not_want_reaches_the_host_bot(
    api: FakeBotApi, framework: str
) -> None:
    core, host = FakeCore(ours), Host()
    omid = api.user(1002, language_code=None)
    async with running(framework, api, core, host):
        await omid.send("hello there")
        await omid.forge("host:menu", message_id=1)
        await api.wait_for(lambda: host.texts and host.presses)
        await omid.send("/help")  # still Sada's
        await api.wait_sent(1002, 1)
    assert host.texts == ["hello there"] and host.presses == ["host:menu"]
    assert [type(e).__name__ for e in core.asked] == ["Typed", "Pressed", "Typed"]
    assert [e.text for e in core.events if isinstance(e, Typed)] == ["/help"]
    assert core.events[0].user.language_code is None


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_group_chats_are_not_surveyed(api: FakeBotApi, framework: str) -> None:
    core, host = FakeCore(), Host()
    sara = api.user(1003)
    async with running(framework, api, core, host):
        api.queue_update({"message": {
            "message_id": 1, "from": sara.info, "date": 0, "text": "/start",
            "chat": {"id": -100123, "type": "supergroup", "title": "Team"},
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        }})
        await api.wait_for(lambda: host.texts)
    assert core.asked == [] and core.events == []
    assert host.texts == ["/start"]


# --- run_bot: polling and webhooks -----------------------------------------------------------


@asynccontextmanager
async def bot_running(
    api: FakeBotApi, settings: Settings, framework: str, core: FakeCore,
    webhook_url: str | None = None, listen: tuple[str, int] = ("127.0.0.1", 8080),
) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(
        settings, framework=framework,  # type: ignore[arg-type]
        webhook_url=webhook_url, listen=listen, stop=stop, polling_timeout=1,
        core_factory=core.factory,
    ))
    if webhook_url is None:
        await api.wait_for(lambda: api.calls("getUpdates") or task.done())
    else:
        await api.wait_for(lambda: api.webhook_url or task.done())
    if task.done():
        task.result()  # start-up failed: show why
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_run_bot_polls_handles_and_stops(
    api: FakeBotApi, tmp_path: Path, framework: str
) -> None:
    core = FakeCore()
    settings = settings_for(api, tmp_path, admin_ids=[7, 8])
    reza = api.user(1006)
    async with bot_running(api, settings, framework, core):
        assert len(core.resumed) == 1  # before any update was fetched
        update = await reza.send("/start")
        await api.wait_sent(1006, 1)
        assert [e.update_id for e in core.events] == [update["update_id"]]
        polls = api.calls("getUpdates")
    assert api.texts(1006) == ["got /start"]
    assert core.created["bot_username"] == "sada_test_bot"
    assert core.created["admin_ids"] == frozenset({"7", "8"})
    assert core.created["flows_dir"] == tmp_path
    assert len(core.created["secret"]) == 64
    assert polls[-1].params["allowed_updates"] == ALLOWED_UPDATES
    assert api.calls("deleteWebhook")  # polling needs no webhook set
    assert api.pending_updates == []


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_run_bot_finishes_the_update_in_hand_when_stopped_and_halts_the_outbox_at_once(
    api: FakeBotApi, tmp_path: Path, framework: str
) -> None:
    """The two graces (updates in hand, sends in flight) run side by side, not one after
    the other: from the stop on, the dispatcher claims nothing, however long an update
    takes to finish."""
    from storage.db import Database
    from storage.outbox import enqueue

    started, release = asyncio.Event(), asyncio.Event()

    class SlowCore(FakeCore):
        async def process(self, event: Inbound, transport: Transport) -> None:
            started.set()
            await release.wait()
            await super().process(event, transport)

    core = SlowCore()
    settings = settings_for(api, tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(
        settings, framework=framework,  # type: ignore[arg-type]
        webhook_url=None, stop=stop, polling_timeout=1, core_factory=core.factory,
    ))
    await api.user(1007).send("/start")
    await asyncio.wait_for(started.wait(), 10)
    stop.set()
    async with await Database.open(settings.effective_database_url) as db:
        async with db.session() as s, s.begin():
            now = datetime.now(UTC)
            await enqueue(s, key="after-stop", kind="invitation", chat_id=1009,
                          contact_id=None, text="Too late", due_at=now, now=now,
                          channel="telegram")
        await asyncio.sleep(2.5)  # more than two dispatch ticks
    assert not task.done()  # waiting for the update in hand
    assert api.texts(1009) == []
    release.set()
    await asyncio.wait_for(task, 10)
    assert api.texts(1007) == ["got /start"] and api.texts(1009) == []


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_run_bot_webhook_checks_the_secret(
    api: FakeBotApi, tmp_path: Path, framework: str
) -> None:
    core = FakeCore()
    settings = settings_for(api, tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    sara = api.user(1008)
    async with bot_running(api, settings, framework, core, url, ("127.0.0.1", port)):
        assert api.webhook_url == url and api.webhook_secret == webhook_secret(settings)
        assert api.calls("setWebhook")[0].params["allowed_updates"] == ALLOWED_UPDATES
        update = await sara.send("/start")
        assert await api.post_update_to_webhook(update, url, "wrong-secret") == 401
        assert await api.post_update_to_webhook(update, url, None) == 401  # no header at all
        assert core.events == [] and api.sent(1008) == []
        assert await api.post_update_to_webhook(update) == 200  # Telegram's own, with secret
        # answered after handling (handle_in_background=False): the reply is already out
        assert api.texts(1008) == ["got /start"]
        assert [e.update_id for e in core.events] == [update["update_id"]]
    assert not api.calls("getUpdates")


# --- one chat's wait holds up no other chat (lanes) ------------------------------------------


class GatedCore(FakeCore):
    """FakeCore whose updates from a gated chat wait until the test opens the gate: a
    stand-in for a reply waiting out a long 429. It records when each update started and
    finished, and how many ran at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[int, asyncio.Event] = {}
        self.started: list[str] = []
        self.finished: list[str] = []
        self.running = 0
        self.peak = 0

    async def process(self, event: Inbound, transport: Transport) -> None:
        label = f"{event.chat_id}:{event.text if isinstance(event, Typed) else event.data}"
        self.started.append(label)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            gate = self.gates.get(int(event.chat_id))
            if gate is not None:
                await gate.wait()
            await asyncio.sleep(0.001 * (event.update_id % 7))  # finish out of arrival order
            await super().process(event, transport)
        finally:
            self.running -= 1
            self.finished.append(label)


@asynccontextmanager
async def feeding(
    api: FakeBotApi, tmp_path: Path, framework: str, mode: str, core: FakeCore,
) -> AsyncIterator[Callable[[JSON], Any]]:
    """run_bot by polling or webhook; yields `deliver(update)`, which for a webhook posts
    the update as Telegram does (a task: the request is answered only once it was handled)
    and for polling does nothing (the update is already queued for getUpdates)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook" if mode == "webhook" else None
    posts: list[asyncio.Task[int]] = []

    def deliver(update: JSON) -> Any:
        if url is not None:
            posts.append(asyncio.create_task(api.post_update_to_webhook(update)))
            return posts[-1]
        return None

    async with bot_running(api, settings_for(api, tmp_path), framework, core, url,
                           ("127.0.0.1", port)):
        yield deliver
    for post in posts:  # answered by now: handled, or 503 when the stop came first
        await post


@pytest.mark.parametrize("mode", ["polling", "webhook"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_one_chat_waiting_holds_up_no_other_chat(
    api: FakeBotApi, tmp_path: Path, framework: str, mode: str
) -> None:
    core = GatedCore()
    flooder, other = api.user(1101), api.user(1102)
    core.gates[1101] = asyncio.Event()
    async with feeding(api, tmp_path, framework, mode, core) as deliver:
        deliver(await flooder.send("/m0"))
        await api.wait_for(lambda: core.started == ["1101:/m0"], what="the flood's first")
        for n in range(1, 5):
            deliver(await flooder.send(f"/m{n}"))
        deliver(await other.send("/start"))
        # answered while the flooder's first update still waits, the other four behind it
        await api.wait_sent(1102, 1)
        assert core.started == ["1101:/m0", "1102:/start"]
        assert api.texts(1101) == []
        core.gates[1101].set()
        await api.wait_sent(1101, 5)
    replies = api.texts(1101)
    if mode == "polling":  # one person's updates in the order Telegram handed them out
        assert replies == [f"got /m{n}" for n in range(5)]
    else:  # concurrent posts arrive in any order; still one at a time
        assert replies[0] == "got /m0" and sorted(replies) == [f"got /m{n}" for n in range(5)]
    assert core.peak == 2


@pytest.mark.parametrize("mode", ["polling", "webhook"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_many_chats_run_side_by_side_each_in_order(
    api: FakeBotApi, tmp_path: Path, framework: str, mode: str
) -> None:
    core = GatedCore()
    users = [api.user(1200 + n) for n in range(6)]
    async with feeding(api, tmp_path, framework, mode, core) as deliver:
        for round_ in range(6):
            for user in users:
                deliver(await user.send(f"/r{round_}"))
            if mode == "webhook":  # posted one after another for each chat, as Telegram does
                await api.wait_for(lambda r=round_: len(core.finished) >= 6 * (r + 1))
        await api.wait_for(lambda: len(core.finished) == 36, what="36 updates handled")
    for user in users:
        assert api.texts(user.id) == [f"got /r{n}" for n in range(6)]
    assert 1 < core.peak <= DEFAULT_CONCURRENCY


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_no_update_is_asked_for_while_taken_ones_wait_for_a_place(
    api: FakeBotApi, tmp_path: Path, framework: str
) -> None:
    core = GatedCore()
    busy = [api.user(1250 + n) for n in range(DEFAULT_CONCURRENCY)]
    for user in busy:
        core.gates[user.id] = asyncio.Event()
    async with feeding(api, tmp_path, framework, "polling", core):
        for user in busy:
            await user.send("/hold")
        await api.wait_for(lambda: len(core.started) == DEFAULT_CONCURRENCY,
                           what="every place taken")
        queued = await api.user(1270).send("/queued")  # taken, then waits for a place
        await api.wait_for(lambda: any(u["update_id"] == queued["update_id"] for c in
                                       api.calls("getUpdates") if c.ok for u in c.result),
                           what="/queued taken")
        polls = len(api.calls("getUpdates"))
        later = await api.user(1271).send("/later")
        await asyncio.sleep(0.3)
        # Another getUpdates would only move /later into the queue behind /queued.
        assert len(api.calls("getUpdates")) == polls
        assert not [c for c in api.calls("getUpdates") if c.status is None]
        core.gates[busy[0].id].set()
        await api.wait_sent(1271, 1)
        for user in busy[1:]:
            core.gates[user.id].set()
        await api.wait_for(lambda: len(core.finished) == DEFAULT_CONCURRENCY + 2,
                           what="every update handled")
    assert api.texts(1270) == ["got /queued"] and api.texts(1271) == ["got /later"]
    assert queued["update_id"] < later["update_id"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_stop_finishes_updates_in_hand_and_keeps_the_waiting_ones_for_the_next_start(
    api: FakeBotApi, tmp_path: Path, framework: str
) -> None:
    core = GatedCore()
    flooder, other = api.user(1301), api.user(1302)
    core.gates[1301] = asyncio.Event()
    settings = settings_for(api, tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(
        settings, framework=framework,  # type: ignore[arg-type]
        webhook_url=None, stop=stop, polling_timeout=1, core_factory=core.factory,
    ))
    await flooder.send("/first")
    waiting = [await flooder.send(f"/then{n}") for n in range(3)]
    handled = await other.send("/start")
    await api.wait_sent(1302, 1)
    assert core.started == ["1301:/first", "1302:/start"]
    stop.set()
    await asyncio.sleep(0.2)
    assert not task.done()  # the update in hand is finished first
    core.gates[1301].set()
    await asyncio.wait_for(task, 10)
    assert api.texts(1301) == ["got /first"]
    # Taken and kept, so confirmed to Telegram; never handled, so still in the inbox for the
    # next start. The handled ones are gone from it.
    assert api.pending_updates == []
    inbox = await _inbox(settings, api)
    assert [u["update_id"] for u in inbox] == [u["update_id"] for u in waiting]
    assert handled["update_id"] not in [u["update_id"] for u in inbox]

    again = GatedCore()
    async with bot_running(api, settings, framework, again):
        await api.wait_sent(1301, 4)
    assert api.texts(1301) == ["got /first", "got /then0", "got /then1", "got /then2"]
    assert api.texts(1302) == ["got /start"]
    assert api.pending_updates == []
    assert await _inbox(settings, api) == []


async def _inbox(settings: Settings, api: FakeBotApi) -> list[dict[str, Any]]:
    """What the runner keeps of `api`'s bot, not handled yet (storage/inbox.py)."""
    async with await Database.open(settings.effective_database_url) as database:
        return await Inbox(database, f"telegram:{api.me['username']}").waiting()


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(("body", "content_type"), [
    (b'{"update_id": 1, "message": ', "application/json"),
    (b"\xff\xfe not utf-8", "application/json"),
    (b"[1, 2, 3]", "application/json"),
    (b'{"message": {"text": "no update_id"}}', "application/json"),
    (b"", "application/json"),
], ids=["truncated", "not-utf8", "array", "no-update-id", "empty"])
async def test_a_malformed_webhook_body_is_400_without_a_traceback(
    api: FakeBotApi, tmp_path: Path, framework: str, body: bytes, content_type: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = FakeCore()
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    async with bot_running(api, settings_for(api, tmp_path), framework, core, url,
                           ("127.0.0.1", port)):
        headers = {"Content-Type": content_type, SECRET_HEADER: api.webhook_secret or ""}
        async with aiohttp.ClientSession() as http, http.post(
            url, data=body, headers=headers
        ) as response:
            status, text = response.status, await response.text()
        good = await api.user(1401).send("/start")  # the server is fine afterwards
        assert await api.post_update_to_webhook(good) == 200
    assert (status, text) == (400, "the body must be a JSON update")
    assert [e.text for e in core.events if isinstance(e, Typed)] == ["/start"]
    complaints = [r for r in caplog.records if "webhook request" in r.getMessage()]
    assert len(complaints) == 1 and complaints[0].levelno == logging.WARNING
    assert "\n" not in complaints[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


# --- the lanes on their own ------------------------------------------------------------------


async def test_lanes_bound_how_many_run_and_forget_idle_chats() -> None:
    lanes = ChatLanes(concurrency=2)
    gate = asyncio.Event()
    order: list[tuple[int, int]] = []

    async def work(chat: int, n: int) -> None:
        await gate.wait()
        order.append((chat, n))

    done = [lanes.submit(chat, functools.partial(work, chat, n))
            for n in range(3) for chat in range(5)]
    await asyncio.sleep(0.05)
    assert lanes.running == 2 and lanes.chats == 5
    gate.set()
    assert all(await asyncio.gather(*done))
    assert lanes.peak == 2 and lanes.chats == 0  # no lane left behind
    for chat in range(5):
        assert [n for c, n in order if c == chat] == [0, 1, 2]


async def test_placed_waits_only_for_updates_that_could_run_now() -> None:
    lanes = ChatLanes(concurrency=1)
    gate = asyncio.Event()

    async def held() -> None:
        await gate.wait()

    first = lanes.submit(1, held)
    behind = lanes.submit(1, held)  # behind its own chat's update: it could not run anyway
    await asyncio.sleep(0.01)
    assert lanes.ready == 0
    await asyncio.wait_for(lanes.placed(), 1)
    other = lanes.submit(2, held)  # could run but for the one place
    await asyncio.sleep(0.01)
    assert lanes.ready == 1
    placed = asyncio.ensure_future(lanes.placed())
    await asyncio.sleep(0.05)
    assert not placed.done()
    gate.set()
    await asyncio.wait_for(placed, 1)
    assert all(await asyncio.gather(first, behind, other))
    assert lanes.ready == 0

    stuck = asyncio.Event()
    lanes.submit(3, stuck.wait)
    lanes.submit(4, stuck.wait)
    await asyncio.sleep(0.01)
    placed = asyncio.ensure_future(lanes.placed())
    await asyncio.sleep(0.01)
    await lanes.close(grace=0.01)  # a stop ends the wait too
    await asyncio.wait_for(placed, 1)


async def test_a_wait_out_gives_its_place_to_another_chat_and_a_stop_cuts_it_short() -> None:
    lanes = ChatLanes(concurrency=1)
    waited: list[bool] = []

    async def rate_limited() -> None:
        waited.append(await wait_out(3600))

    async def quick() -> None:
        waited.append(True)

    first = lanes.submit(1, rate_limited)
    second = lanes.submit(2, quick)  # runs while chat 1 waits, although only one may run
    assert await asyncio.wait_for(second, 5) is True
    behind = lanes.submit(1, quick)
    await lanes.close(grace=5)
    assert await first is True and waited == [True, False]  # cut short, said so
    assert await behind is False  # never started: the stop came first
    assert lanes.submit(3, quick).result() is False


async def test_the_webhook_secret_setting_wins(api: FakeBotApi, tmp_path: Path) -> None:
    settings = settings_for(api, tmp_path, webhook_secret="my_Secret-1")
    assert webhook_secret(settings) == "my_Secret-1"
    derived = webhook_secret(settings_for(api, tmp_path))
    assert derived != webhook_secret(settings_for(api, tmp_path, token="1:other"))
    with pytest.raises(ValueError, match="must be 1-256 characters"):
        settings_for(api, tmp_path, webhook_secret="has space")


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_run_bot_start_errors_are_one_line(
    api: FakeBotApi, tmp_path: Path, framework: str
) -> None:
    core = FakeCore()
    unreachable = settings_for(api, tmp_path, api_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StartError, match="cannot reach the Telegram Bot API") as caught:
        await run_bot(unreachable, framework=framework,  # type: ignore[arg-type]
                      webhook_url=None, stop=asyncio.Event(), core_factory=core.factory)
    assert "\n" not in str(caught.value)

    wrong = settings_for(api, tmp_path, token="999:" + "B" * 35)
    with pytest.raises(StartError, match="did not accept SADA_TELEGRAM__TOKEN") as caught:
        await run_bot(wrong, framework=framework,  # type: ignore[arg-type]
                      webhook_url=None, stop=asyncio.Event(), core_factory=core.factory)
    assert "B" * 35 not in str(caught.value)  # never the token

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StartError, match=f"cannot listen on 127.0.0.1:{port}"):
            await run_bot(settings_for(api, tmp_path), framework=framework,  # type: ignore[arg-type]
                          webhook_url=f"http://127.0.0.1:{port}/hook", listen=("127.0.0.1", port),
                          stop=asyncio.Event(), core_factory=core.factory)
    assert core.events == []


# --- the real core, end to end ---------------------------------------------------------------


def first_button(message: JSON) -> str:
    return str(message["reply_markup"]["inline_keyboard"][0][0]["callback_data"])


@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_the_real_core_runs_a_survey(
    api: FakeBotApi, tmp_path: Path, framework: str, webhook: bool
) -> None:
    settings = settings_for(api, tmp_path, flows_dir=ROOT / "flows")
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook" if webhook else None
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(
        settings, framework=framework,  # type: ignore[arg-type]
        webhook_url=url, listen=("127.0.0.1", port), stop=stop, polling_timeout=1,
    ))
    await api.wait_for(lambda: api.calls("getUpdates") or api.webhook_url or task.done())
    if task.done():
        task.result()

    async def deliver(update: JSON) -> None:
        if webhook:
            assert await api.post_update_to_webhook(update) == 200

    sara = api.user(1009, language_code="en")
    try:
        await deliver(await sara.send("/start"))
        [menu] = await api.wait_sent(1009, 1)  # the public flows, as buttons
        await deliver(await sara.press(menu, first_button(menu)))
        await api.wait_for(lambda: any("inline_keyboard" in m.get("reply_markup", {})
                                       for m in api.sent(1009)[1:]))
        question = api.sent(1009)[-1]
        pressed = await sara.press(question, first_button(question))
        await deliver(pressed)
        # the answered question now shows the choice; the next question follows
        await api.wait_for(lambda: api.edits(1009) and len(api.sent(1009)) > 3)
        count = len(api.sent(1009))
        api.redeliver(pressed)  # as Telegram does after a crash: handled once only
        await deliver(pressed)
        await deliver(await sara.send("/help"))
        await api.wait_sent(1009, count + 1)
        assert "/back" in api.texts(1009)[-1]
        assert len(api.callback_answers()) == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


# `sada run` in its own process: the real SIGTERM path (not registered in bot.cli yet, so the
# commands are mounted on a bare Typer app here).
RUN_CLI = "import typer; from bot.cli import run; app = typer.Typer(); run.register(app); app()"


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_sada_run_serves_until_sigterm(tmp_path: Path, framework: str) -> None:
    async with FakeBotApi(token=GOOD_TOKEN) as api:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SADA_")}
        env.update(SADA_TELEGRAM_TOKEN=GOOD_TOKEN, SADA_TELEGRAM_API_URL=api.base_url,
                   SADA_DATA_DIR=str(tmp_path), SADA_FLOWS_DIR=str(ROOT / "flows"))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RUN_CLI, "run", "--framework", framework, cwd=tmp_path,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            await api.wait_for(lambda: api.calls("getUpdates") or process.returncode is not None,
                               timeout=60)
            await api.user(1010, language_code="en").send("/start")
            await api.wait_sent(1010, 1, timeout=20)
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    log = err.decode()
    assert process.returncode == 0, log
    assert "Sada is running as @sada_test_bot" in log and "SIGTERM" in log
    assert GOOD_TOKEN not in log  # httpx logs request URLs at INFO: silenced


# --- settings and the command line ------------------------------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """A clean SADA_* environment in an empty folder (no .env), settings re-read."""
    for name in list(os.environ):
        if name.startswith("SADA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SADA_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    run_cli.register(app)
    return app


def invoke(*args: str) -> tuple[int, str]:
    get_settings.cache_clear()  # read the environment as this test set it
    result = CliRunner().invoke(cli(), list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.output


def test_admin_ids_accept_a_comma_list(env: pytest.MonkeyPatch) -> None:
    env.setenv("SADA_ADMIN_IDS", "12345, 67890,1")
    assert get_settings().telegram.admin_ids == [12345, 67890, 1]
    env.setenv("SADA_ADMIN_IDS", "")
    assert Settings().telegram.admin_ids == []


@pytest.mark.parametrize(("token", "says"), [
    (None, "SADA_TELEGRAM__TOKEN is not set: get a token from @BotFather"),
    ("12345", "does not look like a bot token"),
    ("abc:" + "A" * 35, "does not look like a bot token"),
    ("123:short", "does not look like a bot token"),
])
def test_run_needs_a_well_formed_token(
    env: pytest.MonkeyPatch, token: str | None, says: str
) -> None:
    if token is not None:
        env.setenv("SADA_TELEGRAM_TOKEN", token)
    code, output = invoke("run")
    assert code == 2
    assert says in output and len(output.strip().splitlines()) == 1
    assert "Traceback" not in output


@pytest.mark.parametrize(("args", "says"), [
    (["--listen", "8080"], "--listen must be HOST:PORT"),
    (["--webhook", "bot.example.com/hook"], "the webhook must be a full URL"),
    (["--framework", "flask"], "flask"),
])
def test_run_rejects_bad_options(env: pytest.MonkeyPatch, args: list[str], says: str) -> None:
    env.setenv("SADA_TELEGRAM_TOKEN", GOOD_TOKEN)
    code, output = invoke("run", *args)
    assert code == 2 and says in output and "Traceback" not in output


def test_run_with_bad_settings_says_which(env: pytest.MonkeyPatch) -> None:
    env.setenv("SADA_ADMIN_IDS", "12,abc")
    code, output = invoke("run")
    assert code == 2 and output.startswith("SADA_ADMIN_IDS: must be numeric ids")


def test_run_with_an_unreachable_api_is_one_line(env: pytest.MonkeyPatch) -> None:
    env.setenv("SADA_TELEGRAM_TOKEN", GOOD_TOKEN)
    env.setenv("SADA_TELEGRAM_API_URL", f"http://127.0.0.1:{free_port()}")
    code, output = invoke("run", "--framework", "ptb")
    assert code == 1, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cannot reach the Telegram Bot API")
    assert GOOD_TOKEN not in output


@pytest.mark.parametrize("item", ["ticket", "=T-1", "my key=1"])
def test_link_rejects_malformed_context(env: pytest.MonkeyPatch, item: str) -> None:
    env.setenv("SADA_FLOWS_DIR", str(ROOT / "flows"))
    code, output = invoke("link", "post-support", "--context", item)
    assert code == 2 and "expected KEY=VALUE" in output
    assert len(output.strip().splitlines()) == 1


def test_listen_parsing() -> None:
    assert run_cli.parse_listen("[::1]:8443") == ("::1", 8443)
    assert run_cli.parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    for bad in ("8080", "host:", ":80", "h:99999"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            run_cli.parse_listen(bad)


def test_link_needs_a_served_flow(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("SADA_FLOWS_DIR", str(ROOT / "flows"))
    env.setenv("SADA_BOT_USERNAME", "sada_test_bot")
    code, output = invoke("link", "no_such_flow")
    assert code == 2 and "serves no flow 'no_such_flow'" in output


def test_link_prints_a_t_me_url(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("SADA_FLOWS_DIR", str(ROOT / "flows"))
    env.setenv("SADA_BOT_USERNAME", "@sada_test_bot")
    code, output = invoke("link", str(ROOT / "flows" / "post_support.yaml"), "-c", "ticket=T-1042")
    assert code == 0, output
    url = output.strip()
    assert re.fullmatch(r"https://t\.me/sada_test_bot\?start=[A-Za-z0-9_-]{1,64}", url)
    with sqlite3.connect(tmp_path / "data" / "sada.db") as db:
        row = db.execute("SELECT flow_id, contact_id, context FROM link_token WHERE token = ?",
                         (url.rsplit("=", 1)[1],)).fetchone()
    assert row == ("post-support", None, '{"ticket": "T-1042"}')

    code, output = invoke("link", "b2b-supplier", "--contact", "999")
    assert code == 2 and output.strip() == "there is no contact 999 in the database"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["post-support"], "flow post-support needs a value for ticket: add --context ticket="),
        (["post-support", "-c", "ticket=T-1", "-c", "agent=Mona"],
         "--context agent: flow post-support declares no such key (its context keys: ticket)"),
        (["b2b-supplier", "-c", "ticket=T-1"], "its context keys: none"),
    ],
    ids=["missing", "undeclared", "none-declared"],
)
def test_link_checks_context_against_the_flow(env: pytest.MonkeyPatch, args: list[str],
                                              expected: str) -> None:
    env.setenv("SADA_FLOWS_DIR", str(ROOT / "flows"))
    env.setenv("SADA_BOT_USERNAME", "sada_test_bot")
    code, output = invoke("link", *args)
    assert code == 2 and expected in output and len(output.strip().splitlines()) == 1


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_link_without_a_username_asks_for_it_not_for_a_token(
    env: pytest.MonkeyPatch, token: str | None
) -> None:
    env.setenv("SADA_FLOWS_DIR", str(ROOT / "flows"))
    if token is not None:
        env.setenv("SADA_TELEGRAM_TOKEN", token)
    code, output = invoke("link", "b2b-supplier")
    assert code == 2 and "set SADA_TELEGRAM__BOT_USERNAME (the bot's @username" in output
    assert "TOKEN" not in output and len(output.strip().splitlines()) == 1


async def test_link_asks_telegram_for_the_username_when_not_set(
    env: pytest.MonkeyPatch,
) -> None:
    async with FakeBotApi(token=GOOD_TOKEN, username="acme_cx_bot") as api:
        env.setenv("SADA_FLOWS_DIR", str(ROOT / "flows"))
        env.setenv("SADA_TELEGRAM_TOKEN", GOOD_TOKEN)
        env.setenv("SADA_TELEGRAM_API_URL", api.base_url)
        # the command runs its own event loop: in a thread, while the fake serves from ours
        code, output = await asyncio.to_thread(invoke, "link", "b2b-supplier")
        assert code == 0, output
        assert output.startswith("https://t.me/acme_cx_bot?start=")
        env.setenv("SADA_TELEGRAM_API_URL", f"http://127.0.0.1:{free_port()}")
        code, output = await asyncio.to_thread(invoke, "link", "b2b-supplier")
        assert code == 1 and "set SADA_TELEGRAM__BOT_USERNAME" in output
        assert len(output.strip().splitlines()) == 1
