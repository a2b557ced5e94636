"""The over-HTTP mode of telegram_throughput.py: the bot as `sada run` runs it, against a
local fake Bot API server, by long polling.

* **Bot API**: ``FakeBotApi`` here, a lean aiohttp server on 127.0.0.1 (the tests' fake in
  tests/fakebot records and deep-copies every request, which would weigh on a 10,000-person
  run). It answers ``getUpdates`` as Telegram does (updates from the offset on, at most
  ``limit``, a long poll that returns as soon as one is there; an offset confirms what is
  below it) and keeps the messages the bot sent, with edits applied, through the in-process
  mode's ``InProcessSession`` bookkeeping, so the same scripted respondents read them.
* **Sada**: ``run_bot(settings, framework="aiogram", webhook_url=None)`` — the runner of
  `sada run`: a real aiohttp session, long polling, the per-chat lanes, one database.
* **Echo**: a bare aiogram bot (``Dispatcher.start_polling``, its own aiohttp session) with
  the in-process mode's echo router, fed the same updates the respondents sent Sada.
* **Floor**: what issue 14 calls the floor of a survey step: for each update, one committed
  write (an INSERT in its own transaction, on the same database and engine settings as
  Sada) and then *the Bot API calls Sada made for that update*, the same methods with the
  same fields in the same order (recorded by the fake during Sada's run), through a bare
  aiogram bot on Sada's own HTTP session (LeanSession, as `sada run`). No survey logic, no
  reads. Sada / floor is what Sada's own work costs on top
  of the calls a survey step cannot avoid; floor / echo is the best ratio a survey bot that
  makes these calls could reach.
* **Respondents**: an update is made available (queued, long polls woken), the respondent
  waits until the bot has *handled* it (Sada: the runner's feed returned; echo: aiogram's
  update handler returned), then sends its next one. **Reply latency** is from the moment the
  update was available to the bot's first reply call for that chat (sendMessage,
  editMessageText/ReplyMarkup, answerCallbackQuery) reaching the server; **next message**
  to its first sendMessage (what the respondent waits for: the next question, mostly).

Everything runs in one process and one event loop (server, respondents and bot), the same for
Sada and echo: the harness's own cost is in both figures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher, methods
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Update
from aiohttp import web

JSON = dict[str, Any]
# Messages a second Sada is told Telegram allows, overall and per chat (the shared limits on
# PostgreSQL, their per-chat margin left out); None: Telegram's own, 30 and 1 (--rate).
CHANNEL_RATE: float | None = None
REPLIES = frozenset({"sendMessage", "editMessageText", "editMessageReplyMarkup",
                     "answerCallbackQuery", "sendDocument"})


@dataclass
class _Waiting:
    available: float
    handled: asyncio.Future[None]
    replied: bool = False
    asked: bool = False  # a sendMessage went back (the next question, mostly)
    source: int = 0  # id() of the respondent's payload: the key of its recorded replies


# A Bot API call as the floor bot makes it: the method's name and its fields, decoded.
Call = tuple[str, JSON]


@dataclass
class FakeBotApi:
    """A Bot API on 127.0.0.1 that hands out queued updates by getUpdates."""

    token: str
    me: JSON
    store: Any  # an InProcessSession: its _result, chats, calls
    latencies: list[float] = field(default_factory=list)
    asked: list[float] = field(default_factory=list)  # to the first sendMessage of an update
    unanswered: int = 0
    polls: int = 0  # getUpdates calls
    _queue: list[JSON] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _waiting: dict[int, _Waiting] = field(default_factory=dict)  # by update_id
    _chat_update: dict[int, int] = field(default_factory=dict)  # chat -> its update in flight
    _runner: web.AppRunner | None = None
    _last_id: int = 0
    releasing: bool = False  # long polls answer at once (a bot is being stopped)
    base_url: str = ""
    recording: bool = False  # keep each update's reply calls (Sada's measured run)
    replies: dict[int, list[Call]] = field(default_factory=dict)  # by payload id()
    _script: dict[int, list[Call]] = field(default_factory=dict)  # by update_id, for the floor

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._arrived.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the respondents' side ---------------------------------------------------------------

    async def deliver(self, payload: JSON, chat_id: int) -> None:
        """Make the update available and wait until the bot has handled it. The server
        numbers updates in the order they arrive, as Telegram does (the echo baseline replays
        Sada's updates, whose ids would otherwise be behind its offset)."""
        self._last_id += 1
        update_id = self._last_id
        original, payload = payload, {**payload, "update_id": update_id}
        waiting = _Waiting(time.perf_counter(), asyncio.get_running_loop().create_future(),
                           source=id(original))
        self._waiting[update_id] = waiting
        self._script[update_id] = self.replies.get(id(original), [])
        self._chat_update[chat_id] = update_id
        self._queue.append(payload)
        self._arrived.set()
        try:
            await waiting.handled
        finally:
            self._waiting.pop(update_id, None)
            self._script.pop(update_id, None)
            if self._chat_update.get(chat_id) == update_id:
                del self._chat_update[chat_id]
            if not waiting.replied:
                self.unanswered += 1

    async def stopped(self, stop: asyncio.Event, bot: Awaitable[None]) -> None:
        """Stop a bot: long polls answer at once while it winds down."""
        self.releasing = True
        self._arrived.set()
        stop.set()
        try:
            await bot
        finally:
            self.releasing = False

    def script(self, update_id: int) -> list[Call]:
        """The calls Sada made for the update the floor bot now has (its payload's)."""
        return self._script.get(update_id, [])

    def handled(self, update_id: int) -> None:
        """The bot is done with the update (called from the bot's side)."""
        waiting = self._waiting.get(update_id)
        if waiting is not None and not waiting.handled.done():
            waiting.handled.set_result(None)

    # --- the bot's side ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        form: dict[str, Any] = dict(await request.post())
        if not form and request.can_read_body:
            form = await request.json()
        if name == "getUpdates":
            result: Any = await self._get_updates(form)
        elif name == "getMe":
            result = self.me
        elif name == "getWebhookInfo":
            result = {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        else:
            if name in REPLIES:
                self._replied(name, form)
            self.store.calls[name] += 1
            result = self.store._result(name, form)
        return web.json_response({"ok": True, "result": result})

    def _replied(self, name: str, form: dict[str, Any]) -> None:
        if name == "answerCallbackQuery":  # the bench's query ids are "<chat>-<n>"
            chat = int(str(form.get("callback_query_id", "0")).split("-")[0])
        else:
            chat = int(form.get("chat_id", 0))
        update_id = self._chat_update.get(chat)
        waiting = self._waiting.get(update_id) if update_id is not None else None
        if waiting is not None and self.recording:
            self.replies.setdefault(waiting.source, []).append((name, _decoded(form)))
        if waiting is not None and not waiting.replied:
            waiting.replied = True
            self.latencies.append(time.perf_counter() - waiting.available)
        if waiting is not None and name == "sendMessage" and not waiting.asked:
            waiting.asked = True
            self.asked.append(time.perf_counter() - waiting.available)

    def restart(self) -> None:
        """Figures from now on (a measured run begins)."""
        self.latencies, self.asked, self.unanswered, self.polls = [], [], 0, 0

    async def _get_updates(self, form: dict[str, Any]) -> list[JSON]:
        self.polls += 1
        offset = int(form.get("offset") or 0)
        limit = int(form.get("limit") or 100)
        timeout = float(form.get("timeout") or 0)
        if offset:  # confirmed: Telegram forgets them
            self._queue = [u for u in self._queue if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while True:
            batch = [u for u in self._queue if u["update_id"] >= offset][:limit]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self.releasing:
                return batch
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                return []


def _decoded(form: dict[str, Any]) -> JSON:
    """A posted form's fields as a method's fields: the JSON ones (keyboards) decoded."""
    return {key: json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value
            for key, value in form.items()}


# --- the bots --------------------------------------------------------------------------------


async def run_sada(api: FakeBotApi, database_url: str, flows_dir: Path,
                   stop: asyncio.Event) -> None:
    """`sada run` (aiogram, long polling) with each handled update reported to the fake."""
    from bot.channels.telegram import aiogram_shell
    from bot.channels.telegram.runner import run_bot
    from bot.settings import Settings

    original = aiogram_shell.AiogramIntake.feed

    async def feed(self: aiogram_shell.AiogramIntake, update: Any) -> None:
        try:
            await original(self, update)
        finally:
            api.handled(update.update_id)

    settings = Settings(
        telegram={"token": api.token, "api_url": api.base_url},  # type: ignore[arg-type]
        database_url=database_url, flows_dir=flows_dir,
    )
    from bot.followups import shared_rate

    install = shared_rate.install

    def install_at_rate(database: Any, channels: dict[str, Any]) -> bool:
        # The fake enforces no limits: with PostgreSQL, Sada may be told the same (--rate).
        if CHANNEL_RATE is None:
            return install(database, channels)
        done = install(database, {name: dataclasses.replace(
            capabilities, messages_per_second=CHANNEL_RATE,
            messages_per_chat_per_second=CHANNEL_RATE) for name, capabilities in channels.items()})
        for name in channels:
            # The quarter second the limits keep between two messages to one chat on top of
            # the channel's spacing (shared_rate.CHAT_MARGIN) goes too: with respondents who
            # answer at once it, not the survey step, set the pace.
            limiter = shared_rate.installed(name)
            if limiter is not None:
                limiter.per_chat = 1.0 / CHANNEL_RATE
        return done

    aiogram_shell.AiogramIntake.feed = feed  # type: ignore[method-assign]
    shared_rate.install = install_at_rate
    try:
        await run_bot(settings, framework="aiogram", webhook_url=None, stop=stop,
                      polling_timeout=25, freeze_when_up=True)
    finally:
        aiogram_shell.AiogramIntake.feed = original  # type: ignore[method-assign]
        shared_rate.install = install


async def _poll_until(api: FakeBotApi, stop: asyncio.Event, *, router: Any = None,
                      step: Callable[[Bot, Update], Awaitable[None]] | None = None,
                      session: type[AiohttpSession] = AiohttpSession) -> None:
    """A bare aiogram bot polling the fake until `stop`, each handled update reported to
    it: the router's handlers run, or `step` in their place."""
    bot = Bot(api.token, session=session(api=TelegramAPIServer.from_base(api.base_url)))
    dp = Dispatcher()
    if router is not None:
        dp.include_router(router)

    async def signal(handler: Callable[[Update, dict[str, Any]], Awaitable[Any]],
                     event: Update, data: dict[str, Any]) -> Any:
        try:
            return await (step(bot, event) if step is not None else handler(event, data))
        finally:
            api.handled(event.update_id)

    dp.update.outer_middleware(signal)  # type: ignore[arg-type]
    polling = asyncio.create_task(dp.start_polling(bot, polling_timeout=25,
                                                   handle_signals=False,
                                                   close_bot_session=True))
    await stop.wait()
    await dp.stop_polling()
    await polling


async def run_echo(api: FakeBotApi, router_factory: Callable[[], Any],
                   stop: asyncio.Event) -> None:
    """A bare aiogram echo bot polling the fake."""
    await _poll_until(api, stop, router=router_factory())


async def run_floor(api: FakeBotApi, database_url: str, stop: asyncio.Event) -> None:
    """The floor of a survey step (see the module's docstring): per update, one committed
    INSERT, then the calls Sada made for it, through a bare aiogram bot."""
    from sqlalchemy import text as sql

    from storage.db import PG_POOL_SIZE, Database

    database = await Database.open(database_url)
    # At most a pool's worth of writes at once (Sada's lanes bound it likewise): with every
    # respondent's update writing at once, PostgreSQL connections beyond the pool would be
    # opened and closed again for each, which no real bot would do.
    writers = asyncio.Semaphore(PG_POOL_SIZE)
    async with database.engine.begin() as conn:
        await conn.execute(sql("CREATE TABLE IF NOT EXISTS bench_floor "
                               "(update_id INTEGER NOT NULL, chat_id BIGINT NOT NULL)"))
    insert = sql("INSERT INTO bench_floor (update_id, chat_id) VALUES (:u, :c)")
    kinds: dict[str, type[Any]] = {}

    async def step(bot: Bot, update: Update) -> None:
        body = update.message or (update.callback_query.message if update.callback_query
                                  else None)
        async with writers, database.engine.begin() as conn:
            await conn.execute(insert, {"u": update.update_id,
                                        "c": body.chat.id if body is not None else 0})
        for name, fields in api.script(update.update_id):
            kind = kinds.get(name) or kinds.setdefault(
                name, getattr(methods, name[0].upper() + name[1:]))
            await bot(kind.model_validate(fields))

    # Sada's own session (bot/channels/telegram/aiogram_session.py): the floor's calls cost
    # what Sada's cost, not what aiogram's stock session would.
    from bot.channels.telegram.aiogram_session import LeanSession

    try:
        await _poll_until(api, stop, step=step, session=LeanSession)
    finally:
        await database.close()


def make_http_feed(api: FakeBotApi) -> Callable[[JSON], Awaitable[None]]:
    async def feed(payload: JSON) -> None:
        body = payload.get("message") or payload["callback_query"]["message"]
        await api.deliver(payload, int(body["chat"]["id"]))

    return feed


def rss_mb() -> float:
    """This process's resident set size in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


__all__ = ["FakeBotApi", "make_http_feed", "rss_mb", "run_echo", "run_floor", "run_sada"]
