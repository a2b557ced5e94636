"""Telegram throughput: N simulated respondents answer the B2B survey through the real bot.

Method
------
Everything runs in one process and no socket is opened towards Telegram:

* The bot is the real one: an aiogram ``Dispatcher`` with ``survey_router(core)`` around a
  ``Controller`` on a real database (a SQLite file in a temporary folder, and a fresh
  PostgreSQL database made for the run and dropped after it).
* Telegram is an ``aiogram`` session (``InProcessSession``) that answers every Bot API call
  in-process. aiogram's whole request path still runs: method objects, the serialisation
  its HTTP session performs (``prepare_value`` on every field, keyboards to JSON), and the
  parsing and validation of the JSON reply (``check_response``). ``sendMessage`` gets a
  realistic ``Message`` back (incrementing message_id, chat, date, text, reply_markup).
* Respondents are scripted people. Each has its own private chat, a Telegram language
  (fa, ar, en in turn), sends ``/start``, presses the public flow's button and answers
  ``flows/b2b_supplier.yaml`` to the end: some answers by pressing buttons (the
  callback_data the bot really sent, read back from the recorded sendMessage/edit
  reply_markup), some typed, in Persian, Arabic or Western digits, a few out of range
  first. Updates are built as Telegram would send them (JSON validated into
  ``aiogram.types.Update``, bound to the bot) and fed with ``await dp.feed_update(bot,
  update)``. Respondents run concurrently (``--concurrency``, default 32); one
  respondent's updates go in order, each after the previous one was answered.
* Latency is measured around each ``feed_update`` call: for Sada that covers the filter
  (``core.wants``), the database transactions and the replies sent through aiogram. Wall
  time covers the whole concurrent run, including building the updates.
* Baseline: the *same* updates (the recorded JSON of every respondent, replayed in the same
  order and with the same concurrency) go through a bare aiogram router whose message handler
  echoes the text (``await message.answer(message.text)``) and whose callback handler answers
  the callback, on the same in-process session. The ratio Sada / echo is the cost of the
  survey (engine, storage, keyboards) over aiogram's own floor on this machine.
* Checks: the answer rows stored must equal the number the scripts imply (every question
  asked, skipped ones included), every session must be completed, every update handled,
  and nothing may be logged at WARNING or above; otherwise the run says so loudly.

Run: ``.venv/bin/python bench/telegram_throughput.py [--respondents N]
[--backend sqlite|postgres|both] [--postgres-url URL] [--concurrency C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import platform
import random
import re
import secrets
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiogram
import asyncpg
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.base import BaseSession
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import CallbackQuery, InputFile, Message, Update
from rich.console import Console
from rich.table import Table
from sqlalchemy import text as sql
from sqlalchemy.engine import make_url

from bench import over_http
from bench.over_http import FakeBotApi, make_http_feed, rss_mb, run_echo, run_floor, run_sada
from bot.channels.telegram.aiogram_shell import survey_router
from bot.conversation.controller import Controller, load_flows
from bot.flow.model import Flow
from storage.db import Database, upgrade
from storage.repo import Store

ROOT = Path(__file__).resolve().parents[1]
FLOW_ID = "b2b-supplier"
BOT_TOKEN = "4242424242:" + "B" * 35
BOT_USER: dict[str, Any] = {
    "id": 4242424242, "is_bot": True, "first_name": "Sada", "username": "sada_bench_bot",
}
LANGS = ("fa", "ar", "en")
DIGITS = {"en": "0123456789", "fa": "۰۱۲۳۴۵۶۷۸۹", "ar": "٠١٢٣٤٥٦٧٨٩"}
NAMES = {"fa": "سارا", "ar": "ليلى", "en": "Sara"}
REASONS = {
    "fa": "تحویل به‌موقع و پاسخ سریع",
    "ar": "التسليم في الموعد وسرعة الرد",
    "en": "On-time delivery and quick answers",
}
# s1:<kind>:<session hex>:<question index>:<value>:<signature> (bot/channels/telegram/keyboards)
QUESTION_DATA = re.compile(r"^s1:([a-z]):([0-9a-f]+):(\d+):([^:]*):([^:]+)$")
MAX_STEPS = 60  # a respondent still talking after this many updates is stuck: a bug

JSON = dict[str, Any]
# Wide enough for the over-HTTP table (three runs, three ratios) on one line per row.
console = Console(width=max(Console().width, 112))


# --- Telegram, in-process ---------------------------------------------------------------------


@dataclass
class SentMessage:
    """A message the bot sent, as the fake Telegram keeps it (edits applied)."""

    message_id: int
    chat_id: int
    text: str
    reply_markup: JSON | None

    def as_json(self) -> JSON:
        message: JSON = {
            "message_id": self.message_id, "date": int(time.time()),
            "chat": {"id": self.chat_id, "type": "private"}, "from": BOT_USER, "text": self.text,
        }
        if self.reply_markup:
            message["reply_markup"] = self.reply_markup
        return message

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data) of every inline button, row by row."""
        if not self.reply_markup:
            return []
        return [(b["text"], b.get("callback_data", ""))
                for row in self.reply_markup.get("inline_keyboard", []) for b in row]


class InProcessSession(BaseSession):
    """A Bot API that lives in this process: every call is serialised as aiogram's aiohttp
    session would post it, answered with JSON, and parsed by aiogram's own response check."""

    def __init__(self) -> None:
        super().__init__()
        self.ids = itertools.count(1)  # message ids, shared with the respondents' messages
        self.chats: dict[int, dict[int, SentMessage]] = {}
        self.calls: Counter[str] = Counter()

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        files: dict[str, InputFile] = {}
        form: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if prepared:  # AiohttpSession.build_form_data leaves empty fields out too
                form[key] = prepared
        for upload in files.values():
            async for _chunk in upload.read(bot):
                pass
        name = method.__api_method__
        self.calls[name] += 1
        content = self.json_dumps({"ok": True, "result": self._result(name, form)})
        response = self.check_response(bot=bot, method=method, status_code=200, content=content)
        return cast(TelegramType, response.result)

    def _result(self, name: str, form: dict[str, Any]) -> Any:
        if name in ("sendMessage", "sendDocument"):
            chat_id = int(form["chat_id"])
            message = SentMessage(next(self.ids), chat_id, form.get("text") or
                                  form.get("caption") or "", _markup(form))
            self.chats.setdefault(chat_id, {})[message.message_id] = message
            return message.as_json()
        if name in ("editMessageText", "editMessageReplyMarkup"):
            chat_id, message_id = int(form["chat_id"]), int(form["message_id"])
            message = self.chats.setdefault(chat_id, {}).get(message_id) or SentMessage(
                message_id, chat_id, "", None)
            message.reply_markup = _markup(form)  # no reply_markup: the keyboard is removed
            if name == "editMessageText":
                message.text = form["text"]
                return message.as_json()
            return True
        if name == "getMe":
            return BOT_USER
        return True  # answerCallbackQuery and anything else a handler may call

    def new_message_id(self) -> int:
        return next(self.ids)

    def latest(self, chat_id: int) -> SentMessage | None:
        messages = self.chats.get(chat_id)
        return messages[max(messages)] if messages else None

    def last_id(self, chat_id: int) -> int:
        return max(self.chats.get(chat_id) or [0])

    def messages(self, chat_id: int) -> list[SentMessage]:
        return list(self.chats.get(chat_id, {}).values())

    async def stream_content(
        self, url: str, headers: dict[str, Any] | None = None, timeout: int = 30,
        chunk_size: int = 65536, raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""

    async def close(self) -> None:
        return None


def _markup(form: dict[str, Any]) -> JSON | None:
    raw = form.get("reply_markup")
    return cast(JSON, json.loads(raw)) if raw else None


# --- respondents ------------------------------------------------------------------------------


@dataclass
class Plan:
    """What one respondent will answer, and how (button or typed)."""

    stakeholder: int
    nps: int
    why: bool  # type a reason, or press Skip
    expectations: int
    priorities: tuple[int, ...]
    vs_others: int
    ces: int
    typed: frozenset[str]  # question ids answered by typing
    invalid_first: bool  # type an out-of-range score first

    def expected_answers(self, flow: Flow) -> int:
        """Answer rows the survey must hold at the end: every question asked, skips included."""
        options = flow.question("stakeholder").options  # type: ignore[attr-defined]
        asked = 7  # stakeholder, nps, nps_why, expectations, priorities, informed, ces
        asked += options[self.stakeholder].id == "decision_maker"  # vs_others
        asked += self.ces >= 5  # ces_why
        return asked


def make_plan(index: int) -> Plan:
    rng = random.Random(index)
    typed = {q for q in ("stakeholder", "nps", "expectations", "ces") if rng.random() < 0.5}
    return Plan(
        stakeholder=index % 6, nps=rng.randint(0, 10), why=rng.random() < 0.6,
        expectations=rng.randint(1, 5),
        priorities=tuple(rng.sample(range(6), rng.randint(1, 2))),
        vs_others=rng.randrange(4), ces=rng.randint(1, 7), typed=frozenset(typed),
        invalid_first=index % 10 == 3,
    )


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    asked: list[float] = field(default_factory=list)  # over HTTP: to the first sendMessage
    unhandled: int = 0
    polls: int = 0  # over HTTP: the getUpdates calls the bot made
    failed: list[str] = field(default_factory=list)


Feed = Callable[[JSON], Awaitable[None]]


def make_feed(dp: Dispatcher, bot: Bot, stats: Stats) -> Feed:
    async def feed(payload: JSON) -> None:
        # As polling would hand it over: validated from JSON and bound to the bot.
        update = Update.model_validate(payload, context={"bot": bot})
        start = time.perf_counter()
        try:
            result = await dp.feed_update(bot, update)
        except Exception as exc:  # aiogram re-raises what a handler raised
            stats.failed.append(f"update {payload['update_id']}: {type(exc).__name__}: {exc}")
            return
        finally:
            stats.latencies.append(time.perf_counter() - start)
        if result is UNHANDLED:
            stats.unhandled += 1
    return feed


class Respondent:
    """One person in a private chat, answering by reading what the bot actually sent."""

    update_ids = itertools.count(1)

    def __init__(self, index: int, flow: Flow, session: InProcessSession) -> None:
        self.index = index
        self.chat_id = 700_000_000 + index
        self.lang = LANGS[index % 3]
        self.digits = DIGITS[LANGS[(index // 3) % 3]]  # every language meets every digit set
        self.flow = flow
        self.session = session
        self.plan = make_plan(index)
        self.user: JSON = {"id": self.chat_id, "is_bot": False, "first_name": NAMES[self.lang],
                           "language_code": self.lang}
        self.payloads: list[JSON] = []  # everything sent, for the echo baseline
        self.asked: list[str] = []
        self.problem: str | None = None

    def _number(self, value: int) -> str:
        return str(value).translate(str.maketrans("0123456789", self.digits))

    async def write(self, feed: Feed, text: str) -> None:
        message: JSON = {
            "message_id": self.session.new_message_id(), "date": int(time.time()),
            "chat": {"id": self.chat_id, "type": "private", "first_name": NAMES[self.lang]},
            "from": self.user, "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(text.split()[0])}]
        await self._send(feed, {"update_id": next(self.update_ids), "message": message})

    async def press(self, feed: Feed, message: SentMessage, data: str) -> None:
        query = {"id": f"{self.chat_id}-{len(self.payloads)}", "from": self.user,
                 "chat_instance": str(self.chat_id), "message": message.as_json(), "data": data}
        await self._send(feed, {"update_id": next(self.update_ids), "callback_query": query})

    async def _send(self, feed: Feed, payload: JSON) -> None:
        self.payloads.append(payload)
        await feed(payload)

    def _question(self, after: int) -> tuple[SentMessage, str, dict[str, str]] | None:
        """The newest question sent after message `after`: its message, question id and
        callback data by (kind, value)."""
        for message in reversed(self.session.messages(self.chat_id)):
            if message.message_id <= after:
                return None
            found = [(m, d) for _, d in message.buttons() if (m := QUESTION_DATA.match(d))]
            if found:
                index = int(found[0][0].group(3))
                data = {f"{m.group(1)}{m.group(4)}": d for m, d in found}
                return message, self.flow.questions[index].id, data
        return None

    async def run(self, feed: Feed) -> None:
        await self.write(feed, "/start")
        menu = self.session.latest(self.chat_id)
        flow_button = next((d for _, d in (menu.buttons() if menu else [])
                            if d == f"s1:f:{FLOW_ID}"), None)
        if menu is None or flow_button is None:
            self.problem = f"no {FLOW_ID} button in the /start menu"
            return
        mark = self.session.last_id(self.chat_id)
        await self.press(feed, menu, flow_button)
        attempts: Counter[str] = Counter()
        for _ in range(MAX_STEPS):
            found = self._question(after=mark)
            if found is None:
                return  # no new question after an answer: the survey is over
            message, qid, data = found
            self.asked.append(qid)
            attempts[qid] += 1
            mark = self.session.last_id(self.chat_id)
            await self._answer(feed, message, qid, data, attempts[qid])
        self.problem = f"still asked questions after {MAX_STEPS} steps: {self.asked[-5:]}"

    async def _answer(
        self, feed: Feed, message: SentMessage, qid: str, data: dict[str, str], attempt: int
    ) -> None:
        plan = self.plan
        scores = {"nps": plan.nps, "expectations": plan.expectations, "ces": plan.ces}
        if qid in scores:
            if qid == "nps" and plan.invalid_first and attempt == 1:
                await self.write(feed, self._number(11))  # rejected: the bot asks again
            elif qid in plan.typed:
                await self.write(feed, self._number(scores[qid]))
            else:
                await self.press(feed, message, data[f"a{scores[qid]}"])
        elif qid == "stakeholder" and qid in plan.typed:
            await self.write(feed, self._number(plan.stakeholder + 1))  # options are numbered
        elif qid in ("stakeholder", "vs_others", "informed"):
            choice = {"stakeholder": plan.stakeholder, "vs_others": plan.vs_others}.get(qid, 0)
            await self.press(feed, message, data[f"a{choice}"])
        elif qid in ("nps_why", "ces_why"):
            if plan.why or qid == "ces_why":
                await self.write(feed, REASONS[self.lang])
            else:
                await self.press(feed, message, data["k"])
        elif qid == "priorities":
            for option in plan.priorities:
                await self.press(feed, message, data[f"t{option}"])
                # the toggle redrew the same message: press on what it shows now
                message = self.session.chats[self.chat_id][message.message_id]
            await self.press(feed, message, data["d"])
        else:
            raise AssertionError(f"the script has no answer for question {qid!r}")


# --- one backend ------------------------------------------------------------------------------


def _ms(seconds: list[float], percentile: int) -> float:
    """A percentile of `seconds`, in milliseconds (the median when too few for more)."""
    if not seconds:
        return float("nan")
    if percentile == 50 or len(seconds) < 2:
        return statistics.median(seconds) * 1000
    return statistics.quantiles(seconds, n=100, method="inclusive")[percentile - 1] * 1000


@dataclass
class RunResult:
    updates: int
    wall: float
    stats: Stats
    cpu: float = float("nan")  # the process's CPU seconds (every thread) over the run

    @property
    def p50(self) -> float:
        return _ms(self.stats.latencies, 50)

    @property
    def p99(self) -> float:
        return _ms(self.stats.latencies, 99)

    @property
    def asked_p50(self) -> float:
        return _ms(self.stats.asked, 50)

    @property
    def asked_p99(self) -> float:
        return _ms(self.stats.asked, 99)

    @property
    def per_second(self) -> float:
        return self.updates / self.wall


@dataclass
class BackendResult:
    name: str
    sada: RunResult
    echo: RunResult
    answers: int
    expected: int
    completed: int
    respondents: int
    problems: list[str]
    logged: list[str]
    calls: Counter[str]  # Bot API calls Sada made, by method
    mode: str = "in-process"
    rss: tuple[float, float] | None = None  # MB after the warm-up and after the run
    # Over HTTP: one committed write and Sada's own Bot API calls per update (over_http.py)
    floor: RunResult | None = None


class LogCollector(logging.Handler):
    """Everything logged at WARNING or above while the bot runs: there should be nothing."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line += f" [{type(exc).__name__}: {exc}]"
        self.records.append(line)


async def gather_limited(
    jobs: Sequence[Callable[[], Awaitable[None]]], concurrency: int
) -> float:
    """Run the jobs, at most `concurrency` at a time; the wall time in seconds."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    start = time.perf_counter()
    await asyncio.gather(*(one(job) for job in jobs))
    return time.perf_counter() - start


def echo_router() -> Router:
    router = Router(name="echo")

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    @router.callback_query()
    async def answer(query: CallbackQuery) -> None:
        await query.answer()

    return router


async def count(database: Database, query: str) -> int:
    async with database.engine.connect() as conn:
        return int((await conn.execute(sql(query))).scalar_one())


async def bench_backend(name: str, url: str, respondents: int, concurrency: int) -> BackendResult:
    collector = LogCollector()
    logging.getLogger().addHandler(collector)
    database = await Database.open(url)
    session = InProcessSession()
    bot = Bot(BOT_TOKEN, session=session)
    try:
        store = Store(database)
        flows = load_flows(ROOT / "flows")
        core = Controller(store, flows, channel="telegram", bot_username=BOT_USER["username"],
                            admin_ids=frozenset(), secret=secrets.token_hex(16))
        flow = flows[FLOW_ID].flow
        sada_dp = Dispatcher()
        sada_dp.include_router(survey_router(core))

        # Warm-up (connections, caches, first imports): one respondent, not measured.
        warm = Respondent(respondents, flow, session)
        await warm.run(make_feed(sada_dp, bot, Stats()))
        answers_before = await count(database, "SELECT count(*) FROM answer")
        completed_before = await count(
            database, "SELECT count(*) FROM survey_session WHERE status = 'completed'")

        people = [Respondent(i, flow, session) for i in range(respondents)]
        calls_before = session.calls.copy()
        sada_stats = Stats()
        sada_feed = make_feed(sada_dp, bot, sada_stats)
        cpu_start = time.process_time()
        wall = await gather_limited([lambda p=p: p.run(sada_feed) for p in people], concurrency)
        sada_cpu = time.process_time() - cpu_start
        await sada_dp.emit_shutdown(bot=bot)
        answers = await count(database, "SELECT count(*) FROM answer") - answers_before
        completed = await count(
            database, "SELECT count(*) FROM survey_session WHERE status = 'completed'"
        ) - completed_before
        sada = RunResult(len(sada_stats.latencies), wall, sada_stats, sada_cpu)
        calls = session.calls - calls_before

        # The baseline: the same updates, replayed in the same order, through a bare echo bot.
        echo_dp = Dispatcher()
        echo_dp.include_router(echo_router())
        warm_echo = make_feed(echo_dp, bot, Stats())
        for payload in warm.payloads:
            await warm_echo(payload)
        echo_stats = Stats()
        echo_feed = make_feed(echo_dp, bot, echo_stats)

        async def replay(payloads: list[JSON]) -> None:
            for payload in payloads:
                await echo_feed(payload)

        cpu_start = time.process_time()
        echo_wall = await gather_limited(
            [lambda p=p: replay(p.payloads) for p in people], concurrency)
        echo = RunResult(len(echo_stats.latencies), echo_wall, echo_stats,
                         time.process_time() - cpu_start)

        problems = [f"respondent {p.index}: {p.problem}" for p in people if p.problem]
        problems += [f"Sada: {f}" for f in sada_stats.failed]
        problems += [f"echo: {f}" for f in echo_stats.failed]
        return BackendResult(
            name, sada, echo, answers, sum(p.plan.expected_answers(flow) for p in people),
            completed, respondents, problems, collector.records, calls,
        )
    finally:
        logging.getLogger().removeHandler(collector)
        await bot.session.close()
        await database.close()


async def _until_done(work: Awaitable[Any], bot: asyncio.Task[None], who: str) -> None:
    """`work`, unless the bot stops first (it failed to start: its error is raised)."""
    job = asyncio.ensure_future(work)
    await asyncio.wait({job, bot}, return_when=asyncio.FIRST_COMPLETED)
    if not job.done():
        job.cancel()
        await bot  # raises the bot's error
        raise RuntimeError(f"{who} stopped before the respondents were done")
    job.result()


async def bench_backend_http(
    name: str, url: str, respondents: int, concurrency: int
) -> BackendResult:
    """Over HTTP: `sada run`'s runner and a bare aiogram echo bot, long polling a local fake
    Bot API (bench/over_http.py). Above 1,000 respondents only Sada runs (the RSS run) and a
    finished respondent's messages are forgotten, so the harness itself stays flat."""
    collector = LogCollector()
    logging.getLogger().addHandler(collector)
    store = InProcessSession()
    api = FakeBotApi(BOT_TOKEN, BOT_USER, store)
    await api.start()
    keep = respondents <= 1000
    try:
        flow = load_flows(ROOT / "flows")[FLOW_ID].flow
        feed = make_http_feed(api)
        stop = asyncio.Event()
        bot = asyncio.create_task(run_sada(api, url, ROOT / "flows", stop))
        api.recording = keep  # Sada's calls for each update, which the floor bot will make
        warm = Respondent(respondents, flow, store)
        await _until_done(warm.run(feed), bot, "Sada")
        database = await Database.open(url)
        try:
            answers_before = await count(database, "SELECT count(*) FROM answer")
            completed_before = await count(
                database, "SELECT count(*) FROM survey_session WHERE status = 'completed'")
        finally:
            await database.close()
        people = [Respondent(i, flow, store) for i in range(respondents)]
        calls_before = store.calls.copy()
        api.restart()
        rss_before = rss_mb()

        async def one(person: Respondent) -> None:
            await person.run(feed)
            if not keep:
                store.chats.pop(person.chat_id, None)
                person.payloads.clear()

        run = gather_limited([lambda p=p: one(p) for p in people], concurrency)
        start, cpu_start = time.perf_counter(), time.process_time()
        await _until_done(run, bot, "Sada")
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        rss_after = rss_mb()
        sada_stats = Stats(latencies=api.latencies, asked=api.asked, polls=api.polls)
        sada_stats.unhandled = api.unanswered
        updates = sum(len(p.payloads) for p in people) if keep else len(api.latencies)
        await api.stopped(stop, bot)
        api.recording = False
        calls = store.calls - calls_before
        database = await Database.open(url)
        try:
            answers = await count(database, "SELECT count(*) FROM answer") - answers_before
            completed = await count(
                database, "SELECT count(*) FROM survey_session WHERE status = 'completed'"
            ) - completed_before
        finally:
            await database.close()
        sada = RunResult(updates, wall, sada_stats, cpu)

        echo = floor = RunResult(0, float("nan"), Stats())
        if keep:
            async def replay(payloads: list[JSON]) -> None:
                for payload in payloads:
                    await feed(payload)

            async def baseline(who: str, run: Callable[[asyncio.Event], Awaitable[None]]
                               ) -> RunResult:
                """The same updates, in the same order, through another bot on the server."""
                stop = asyncio.Event()
                bot = asyncio.create_task(run(stop))
                await _until_done(replay(warm.payloads), bot, who)
                api.restart()
                start, cpu_start = time.perf_counter(), time.process_time()
                await _until_done(gather_limited(
                    [lambda p=p: replay(p.payloads) for p in people], concurrency), bot, who)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                stats = Stats(latencies=api.latencies, asked=api.asked, polls=api.polls)
                stats.unhandled = api.unanswered
                await api.stopped(stop, bot)
                return RunResult(len(stats.latencies), wall, stats, cpu)

            floor = await baseline("floor", lambda stop: run_floor(api, url, stop))
            echo = await baseline("echo", lambda stop: run_echo(api, echo_router, stop))

        problems = [f"respondent {p.index}: {p.problem}" for p in people if p.problem]
        return BackendResult(
            name, sada, echo, answers, sum(p.plan.expected_answers(flow) for p in people),
            completed, respondents, problems, collector.records, calls,
            mode="over HTTP", rss=(rss_before, rss_after), floor=floor,
        )
    finally:
        logging.getLogger().removeHandler(collector)
        await api.stop()


Bench = Callable[[str, str, int, int], Awaitable[BackendResult]]


async def bench_sqlite(respondents: int, concurrency: int,
                       bench: Bench = bench_backend) -> BackendResult:
    with tempfile.TemporaryDirectory(prefix="sada-bench-") as folder:
        url = f"sqlite:///{Path(folder) / 'sada.db'}"
        await upgrade(url)
        return await bench("SQLite", url, respondents, concurrency)


async def bench_postgres(server: str, respondents: int, concurrency: int,
                         bench: Bench = bench_backend) -> BackendResult | str:
    """The result, or why PostgreSQL was skipped."""
    name = f"bench_{secrets.token_hex(6)}"
    plain = server.replace("+asyncpg", "")
    try:
        admin = await asyncpg.connect(plain, timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.PostgresError as exc:
        await admin.close()
        return f"cannot create a database: {exc}"
    await admin.close()
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade(url)
        return await bench("PostgreSQL", url, respondents, concurrency)
    finally:
        admin = await asyncpg.connect(plain, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# --- report -----------------------------------------------------------------------------------


def report(result: BackendResult) -> None:
    sada, echo, floor = result.sada, result.echo, result.floor
    have_echo = bool(echo.updates)
    have_floor = floor is not None and bool(floor.updates)
    table = Table(title=f"{result.name}, {result.mode}: {result.respondents} respondents",
                  title_justify="left")
    table.add_column("")
    table.add_column("Sada", justify="right")
    if have_floor:
        table.add_column("floor", justify="right")
    table.add_column("echo", justify="right")
    table.add_column("Sada / echo", justify="right")
    if have_floor:
        table.add_column("floor / echo", justify="right")
        table.add_column("Sada / floor", justify="right")
    answers = f"{result.answers}"
    if result.answers != result.expected:
        answers = f"[bold red]{result.answers} MISMATCH (expected {result.expected})[/]"
    completed = f"{result.completed}/{result.respondents}"
    if result.completed != result.respondents:
        completed = f"[bold red]{completed} MISMATCH[/]"

    def cells(*values: str) -> None:
        """A row's cells for Sada, [floor,] echo, then the ratios."""
        what, sada_cell, floor_cell, echo_cell, *ratios = values
        table.add_row(*[v for v, shown in (
            (what, True), (sada_cell, True), (floor_cell, have_floor), (echo_cell, True),
            *((r, i == 0 or have_floor) for i, r in enumerate(ratios))) if shown])

    cells("updates", str(sada.updates), str(floor.updates) if floor else "",
          str(echo.updates), "", "", "")
    cells("unhandled updates", str(sada.stats.unhandled),
          str(floor.stats.unhandled) if floor else "", str(echo.stats.unhandled), "", "", "")
    cells("answers stored", answers, "", "", "", "", "")
    cells("surveys completed", completed, "", "", "", "", "")

    def row(what: str, value: Callable[[RunResult], float], digits: int, ratio: str) -> None:
        def shown(run: RunResult | None, present: bool) -> str:
            return f"{value(run):.{digits}f}" if run is not None and present else ""

        def of(a: RunResult | None, b: RunResult | None) -> str:
            if a is None or b is None or not a.updates or not b.updates or not value(b):
                return ""
            return ratio.format(value(a) / value(b))

        cells(what, shown(sada, True), shown(floor, have_floor), shown(echo, have_echo),
              of(sada, echo), of(floor, echo), of(sada, floor))

    def answers_per_second(run: RunResult) -> float:
        return result.answers / run.wall

    row("wall time (s)", lambda r: r.wall, 2, "{:.1f}×")
    row("answers/s", answers_per_second, 0, "{:.3f}")
    row("updates/s", lambda r: r.per_second, 0, "{:.3f}")
    if sada.cpu == sada.cpu:  # the whole process: harness (and fake server) and bot together
        row("CPU per update (ms)", lambda r: r.cpu / r.updates * 1000, 2, "{:.1f}×")
        row("CPU busy (% of one core)", lambda r: r.cpu / r.wall * 100, 0, "{:.2f}")
    if result.mode != "in-process":
        # aiogram's polling asks again as soon as it has handed out a batch: a bot slower
        # per update finds fewer updates waiting, and pays a request per update or so
        row("getUpdates per update", lambda r: r.stats.polls / r.updates, 2, "{:.1f}×")
    row("latency p50 (ms)", lambda r: r.p50, 2, "{:.1f}×")
    row("latency p99 (ms)", lambda r: r.p99, 2, "{:.1f}×")
    if result.mode != "in-process":
        # what a respondent waits for: the next message (an edit or a press's answer, the
        # first reply above, may come before it)
        row("next message p50 (ms)", lambda r: r.asked_p50, 2, "{:.1f}×")
        row("next message p99 (ms)", lambda r: r.asked_p99, 2, "{:.1f}×")
    console.print(table)
    if result.rss is not None:
        before, after = result.rss
        console.print(f"RSS of the process: {before:.0f} MB after the warm-up, {after:.0f} MB "
                      f"after the run ({after - before:+.0f} MB)", highlight=False)
    console.print("Bot API calls by Sada: " + ", ".join(
        f"{name} {n}" for name, n in result.calls.most_common()), highlight=False)
    if result.problems:
        console.print(f"[bold red]{len(result.problems)} problem(s):[/]")
        for problem in result.problems[:20]:
            console.print(f"  {problem}", markup=False)
    if result.logged:
        console.print(f"[bold red]{len(result.logged)} warning(s)/error(s) logged:[/]")
        for line, times in Counter(result.logged).most_common(20):
            console.print(f"  {times}× {line}", markup=False)
    else:
        console.print("nothing logged at WARNING or above")


def _ratios(result: BackendResult) -> tuple[float, float, float, float]:
    """Sada / echo and floor / echo in answers a second, Sada / floor, and p99 Sada / echo."""
    sada, echo, floor = result.sada, result.echo, result.floor
    nan = float("nan")
    if not echo.updates:
        return nan, nan, nan, nan
    to_echo = echo.wall / sada.wall
    floor_to_echo = echo.wall / floor.wall if floor is not None and floor.updates else nan
    return to_echo, floor_to_echo, to_echo / floor_to_echo, sada.p99 / echo.p99


def report_rounds(results: list[BackendResult]) -> None:
    """One round: its table. Several (--rounds): each round's ratios, then the table of the
    round whose Sada / echo is the median. Sada and its baselines run one after another, and
    this machine's speed wanders from minute to minute, so one round's ratio can be off by a
    fifth; the median of several is what to quote."""
    if len(results) > 1:
        table = Table(title=f"{results[0].name}, {results[0].mode}: "
                            f"{results[0].respondents} respondents, {len(results)} rounds",
                      title_justify="left")
        for column in ("round", "Sada / echo", "floor / echo", "Sada / floor",
                       "p99 Sada / echo", "CPU/update Sada (ms)", "echo (ms)"):
            table.add_column(column, justify="right")
        for n, result in enumerate(results, 1):
            to_echo, floor_to_echo, to_floor, p99 = _ratios(result)
            table.add_row(str(n), f"{to_echo:.3f}", f"{floor_to_echo:.3f}", f"{to_floor:.3f}",
                          f"{p99:.1f}×", f"{result.sada.cpu / result.sada.updates * 1000:.2f}",
                          f"{result.echo.cpu / result.echo.updates * 1000:.2f}"
                          if result.echo.updates else "")
        console.print(table)
        console.print("The table below is the median round's (by Sada / echo).",
                      highlight=False)
    report(sorted(results, key=lambda result: _ratios(result)[0])[(len(results) - 1) // 2])


async def main(args: argparse.Namespace) -> int:
    console.print(
        f"Sada Telegram throughput · {args.respondents} respondents · mode {args.mode} · "
        f"Python {platform.python_version()} · aiogram {aiogram.__version__} · "
        f"{os.cpu_count()} CPU(s) · load average {os.getloadavg()[0]:.1f}")
    over_http.CHANNEL_RATE = args.rate
    ok = True
    modes: list[tuple[Bench, int]] = []
    if args.mode in ("inprocess", "both"):
        modes.append((bench_backend, args.concurrency or 32))
    if args.mode in ("http", "both"):
        # over HTTP every respondent talks at once, up to 500
        modes.append((bench_backend_http, args.concurrency or min(args.respondents, 500)))
    for bench, concurrency in modes:
        if args.backend in ("sqlite", "both"):
            results = [await bench_sqlite(args.respondents, concurrency, bench)
                       for _ in range(args.rounds)]
            ok &= all(_clean(result) for result in results)
            report_rounds(results)
        if args.backend in ("postgres", "both"):
            results = []
            for _ in range(args.rounds):
                outcome = await bench_postgres(args.postgres_url, args.respondents,
                                               concurrency, bench)
                if isinstance(outcome, str):
                    console.print(f"[yellow]PostgreSQL skipped: {outcome}[/]", highlight=False)
                    break
                results.append(outcome)
                ok &= _clean(outcome)
            if results:
                report_rounds(results)
    console.print(f"load average at the end {os.getloadavg()[0]:.1f}", highlight=False)
    return 0 if ok else 1


def _clean(result: BackendResult) -> bool:
    return (result.answers == result.expected and result.completed == result.respondents
            and not result.problems and not result.logged and not result.sada.stats.unhandled)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--respondents", type=int, default=200, metavar="N")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a server where this user may CREATE and DROP databases")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="respondents talking at the same time (default 32 in-process, "
                             "every respondent up to 500 over HTTP)")
    parser.add_argument("--mode", choices=("inprocess", "http", "both"), default="inprocess",
                        help="the bot fed in-process, over HTTP long polling against a local "
                             "fake Bot API (as `sada run`), or both")
    parser.add_argument("--rate", type=float, default=None, metavar="PER_SECOND",
                        help="over HTTP on PostgreSQL: the messages a second Sada's shared "
                             "limits allow, overall and per chat (default Telegram's 30 and "
                             "1; the fake enforces none)")
    parser.add_argument("--rounds", type=int, default=1, metavar="K",
                        help="run each backend K times and report the round with the median "
                             "Sada / echo, after every round's ratios (default 1)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be above 0")
    if args.respondents < 1 or (args.concurrency is not None and args.concurrency < 1):
        parser.error("--respondents and --concurrency must be at least 1")
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(asyncio.run(main(parse_args())))
