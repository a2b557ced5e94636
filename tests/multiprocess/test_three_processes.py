"""Three `sada run --webhook` processes on one PostgreSQL database behind a round-robin proxy
behave as one bot (issue 14): the fake Bot API enforces Telegram's limits (30 messages a
second, one a second per chat, 429 with retry_after beyond them); respondents complete a
survey by webhook updates through the proxy, some of them delivered twice at once (to two
processes); invitations made with `sada invite` and their reminders go out; one process is
killed with SIGKILL half-way and started again. Then: every answer is in the database, no
message went twice, and no message met a second 429.

Sizes, as the issue asks: 200 respondents and 1,000 invitations with their 1,000 reminders.
The respondents answer a three-question pulse (a score pressed, a reason typed, a rating
pressed: both kinds of update), not the nine-step B2B survey the invitations carry: at
Telegram's 30 messages a second every message is 37 ms of the test's time, and the B2B
survey's 18 messages a respondent made it four minutes of sending alone. The steps the B2B
survey adds (ticks, Done, skip) are one process's work, tested elsewhere. SENDING below is
how long the sending takes, so the test mostly waits: conftest.py gives `-n auto` one
worker more than the cores for it.
SADA_TEST_RESPONDENTS and SADA_TEST_INVITED run it smaller while working on it; the outbox
lease is 20 s (SADA_OUTBOX_LEASE_SECONDS: how long the rows the killed process had claimed
wait).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from bot.channels.telegram.runner import webhook_secret
from bot.engine.normalize import local_digits
from bot.settings import Settings
from storage.db import upgrade
from tests.bale.test_run import B2B, ROOT, TELEGRAM_TOKEN, Person, Process, free_port
from tests.conftest import _create, _drop, _pg_server
from tests.fakebot import FakeBotApi

pytestmark = [pytest.mark.postgres, pytest.mark.slow(seconds=165)]

RESPONDENTS = int(os.environ.get("SADA_TEST_RESPONDENTS", "200"))
INVITED = int(os.environ.get("SADA_TEST_INVITED", "1000"))
PROCESSES = 3
# How long sending everything takes at the shared limits (27 messages a second: Telegram's 30
# less SHARED_HEADROOM), PULSE_MESSAGES to each respondent and two to each invited person.
# A wait gives up only after twice that and a minute more: a slower or busier machine than
# this 2-core one must not fail for its speed.
PULSE_MESSAGES = 9  # the menu, the intro and three questions, the closing, three edits
SENDING = (RESPONDENTS * PULSE_MESSAGES + 2 * INVITED) / 27
PATIENCE = 60 + 2 * SENDING
# Reminders one minute after the invitation, at any hour of any day; the test moves the
# invitations' time back instead of waiting the minute.
REMINDERS = ('\nreminders:\n  after: [1m]\n  window: "00:00-00:00"\n'
             "  days: [mon, tue, wed, thu, fri, sat, sun]\n")
JSON = dict[str, Any]
# What the respondents answer: public, so /start offers it beside the B2B survey.
PULSE = """\
id: pulse
languages: [fa, en]
default_language: fa
title: {fa: "نظرسنجی کوتاه", en: "Quick pulse"}
touchpoint: pulse
public: true
intro:
  fa: "سلام {first_name}، {question_count} کوتاه داریم که {duration} وقت می‌گیرد."
  en: "Hello {first_name}: {question_count}, {duration}."
outro:
  fa: "ممنون که وقت گذاشتید؛ همهٔ پاسخ‌ها را می‌خوانیم."
  en: "Thank you for your time; we read every answer."
groups:
  - id: pulse
    title: {fa: "نظر شما", en: "Your view"}
    questions:
      - id: nps
        type: nps
        text:
          fa: "چقدر احتمال دارد ما را به دیگران پیشنهاد کنید؟"
          en: "How likely are you to recommend us?"
      - id: why
        type: text
        text:
          fa: "دلیل اصلی امتیازتان چیست؟"
          en: "What is the main reason for your score?"
      - id: speed
        type: scale
        min: 1
        max: 5
        text:
          fa: "از سرعت پاسخ‌گویی ما چقدر راضی هستید؟"
          en: "How satisfied are you with how quickly we answer?"
"""
PULSE_ANSWERS = {"nps", "why", "speed"}


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    server = _pg_server()
    name = f"sada_t_mp_{secrets.token_hex(4)}"
    url = await _create(server, name)
    try:
        await upgrade(url)
        yield url
    finally:
        await _drop(server, name)


class Proxy:
    """A load balancer in miniature: each request to the next backend in turn; one that
    cannot be reached (killed) is skipped for the next, as a balancer's health checks do."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.turn = itertools.cycle(range(len(backends)))
        self.port = free_port()
        self.session: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.failovers = 0

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def forward(self, request: web.Request) -> web.Response:
        assert self.session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "x-telegram-bot-api-secret-token")}
        for _ in range(len(self.backends) * 20):
            port = self.backends[next(self.turn)]
            try:
                async with self.session.request(
                        request.method, f"http://127.0.0.1:{port}{request.path_qs}",
                        data=body, headers=headers) as answer:
                    if answer.status == 503:  # stopping: the next one takes it
                        raise aiohttp.ClientConnectionError("503")
                    return web.Response(status=answer.status, body=await answer.read(),
                                        content_type=answer.content_type)
            except (aiohttp.ClientConnectionError, aiohttp.ServerDisconnectedError):
                self.failovers += 1
                await asyncio.sleep(0.05)
        return web.Response(status=502)

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()


async def start_sada(env: dict[str, str], log: Path, port: int, webhook: str) -> Process:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SADA_")}
    with log.open("a") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from bot.cli import main; main()", "run",
            "--webhook", webhook, "--listen", f"127.0.0.1:{port}",
            cwd=ROOT, env={**clean, **env}, stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=out)
    return Process(proc, log)


async def sada(env: dict[str, str], *args: str) -> str:
    """A `sada` command as staff type it; its output."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SADA_")}
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from bot.cli import main; main()", *args, cwd=ROOT,
        env={**clean, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    said, _ = await command.communicate()
    assert command.returncode == 0, said.decode()
    return said.decode()


async def ready(session: aiohttp.ClientSession, process: Process, port: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        assert process.proc.returncode is None, process.output()[-3000:]
        assert loop.time() < deadline, process.output()[-3000:]
        try:
            async with session.get(f"http://127.0.0.1:{port}/readyz") as answer:
                if answer.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)


class Respondent(Person):
    """A person whose updates reach the bot as Telegram's webhook would send them: through
    the proxy, every few of them twice at once."""

    poster: aiohttp.ClientSession
    url: str
    secret: str
    database: str  # the processes' PostgreSQL, to see a survey completed
    doubled = 0
    short = 0  # steps that lost a message other than the question (a SIGKILL)
    finished = 0  # respondents whose last answer had its reply

    async def post(self, update: JSON) -> None:
        headers = {"Content-Type": "application/json",
                   "X-Telegram-Bot-Api-Secret-Token": self.secret}
        for _ in range(50):
            try:
                async with self.poster.post(self.url, data=json.dumps(update),
                                            headers=headers) as answer:
                    if answer.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass  # as Telegram, post it again: a process still handling it skips it
            await asyncio.sleep(0.2)
        raise AssertionError(f"update {update['update_id']} never accepted")

    async def do(self, action: object, new: int = 1) -> None:
        before = len(self.api.sent(self.user.id))
        update = await action  # type: ignore[misc]
        if update["update_id"] % 5 == 0:  # the same update at two processes at once
            Respondent.doubled += 1
            await asyncio.gather(self.post(update), self.post(update))
        else:
            await self.post(update)
        if not new:
            return

        def arrived() -> bool:
            sent = self.api.sent(self.user.id)
            if len(sent) >= before + new:
                return True
            # An update applied by a process killed before its replies went: the question
            # is re-sent (resume_pending), the intro before it is not.
            return len(sent) > before and bool(sent[-1].get("reply_markup"))

        loop = asyncio.get_running_loop()
        deadline, quiet_until = loop.time() + 90, loop.time() + 15
        while not arrived():
            if loop.time() > quiet_until and await self.completed():
                # The last answer, applied by a process killed before its closing message
                # went: the survey is complete, and a message that is not a question is not
                # sent again.
                break
            assert loop.time() < deadline, (
                f"timed out after 90s waiting for {new} message(s) to {self.user.id}: "
                f"{[t[:30] for t in self.api.texts(self.user.id)[-3:]]}")
            await asyncio.sleep(0.2)
        if len(self.api.sent(self.user.id)) < before + new:
            Respondent.short += 1

    async def pulse(self) -> None:
        """The pulse survey from /start to its closing message."""
        await self.do(self.user.send("/start"))
        await self.press("نظرسنجی کوتاه", new=2)  # the intro and the first question
        await self.press(local_digits("9", self.lang))
        await self.do(self.user.send("پاسخ‌گویی سریع"))
        await self.press(local_digits("5", self.lang))  # the closing message follows
        Respondent.finished += 1

    async def completed(self) -> bool:
        conn = await pg(Respondent.database)
        try:
            return bool(await conn.fetchval(
                "SELECT count(*) FROM survey_session s JOIN contact_identity i "
                "ON i.contact_id = s.contact_id WHERE i.channel = 'telegram' "
                "AND i.address = $1 AND s.status = 'completed'", str(self.user.id)))
        finally:
            await conn.close()


async def pg(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url.replace("+asyncpg", ""))


async def test_three_processes_behave_as_one_bot(pg_url: str, tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    text = (ROOT / "flows" / "b2b_supplier.yaml").read_text(encoding="utf-8")
    (flows / "b2b_supplier.yaml").write_text(text + REMINDERS, encoding="utf-8")
    (flows / "pulse.yaml").write_text(PULSE, encoding="utf-8")
    invited = [5_000_000 + i for i in range(INVITED)]
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("telegram_id,name,language\n" + "".join(
        f"{chat},Guest {chat},en\n" for chat in invited), encoding="utf-8")
    ports = [free_port() for _ in range(PROCESSES)]
    proxy = Proxy(ports)
    await proxy.start()
    webhook = f"http://127.0.0.1:{proxy.port}/telegram"
    loop = asyncio.get_running_loop()
    began = loop.time()
    marks: list[str] = []

    def mark(what: str) -> None:
        marks.append(f"{what} {loop.time() - began:.1f}s")
    async with FakeBotApi(token=TELEGRAM_TOKEN) as api, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60)) as session:
        api.rate_limit(30, per_chat=1)  # Telegram's limits: 429 + retry_after beyond them
        env = {"SADA_DATABASE_URL": pg_url, "SADA_FLOWS_DIR": str(flows),
               "SADA_TELEGRAM__TOKEN": api.token, "SADA_TELEGRAM__API_URL": api.base_url,
               "SADA_SECRET_KEY": "one-secret-for-every-process-0123456789",
               # the killed process's invitations go out from another 20 s later, not 60
               "SADA_OUTBOX_LEASE_SECONDS": "20"}
        processes = [await start_sada(env, tmp_path / f"run{i}.log", port, webhook)
                     for i, port in enumerate(ports)]
        try:
            for process, port in zip(processes, ports, strict=True):
                await ready(session, process, port)
            mark("ready")
            settings = Settings(telegram={"token": api.token})  # type: ignore[arg-type]
            Respondent.poster, Respondent.url, Respondent.database = session, webhook, pg_url
            Respondent.secret = webhook_secret(settings, "telegram")
            await sada(env, "contacts", "import", str(contacts))
            await sada(env, "invite", "--flow", "b2b-supplier", "--contacts", str(contacts))
            mark("invited")
            people = [Respondent(api, api.user(1000 + i, f"Person {i}", "fa"), "fa")
                      for i in range(RESPONDENTS)]
            surveys = asyncio.gather(*(p.pulse() for p in people))

            async def kill_and_restart() -> None:
                # Half-way through the surveys or the invitations, whichever comes first:
                # SIGKILL one process, then start it again once the invitations sent so
                # far are a minute old (their reminders come due, and its start plans them
                # at once).
                await api.wait_for(lambda: Respondent.finished >= RESPONDENTS // 2 or len(
                    {chat for chat in api.sent_chats() if chat >= 5_000_000}) >= INVITED // 2,
                                   timeout=PATIENCE, what="half the surveys or invitations")
                mark("killed")
                processes[0].proc.send_signal(signal.SIGKILL)
                await processes[0].proc.wait()
                conn = await pg(pg_url)
                try:
                    await conn.execute("UPDATE invitation SET sent_at = sent_at - "
                                       "interval '2 minutes' WHERE sent_at IS NOT NULL")
                    # the planner copies an invitation's sent_at from its outbox row
                    await conn.execute("UPDATE outbox SET sent_at = sent_at - interval "
                                       "'2 minutes' WHERE kind = 'invitation' AND "
                                       "sent_at IS NOT NULL")
                    # and a reminder the planner already queued (it looks ahead) with them
                    await conn.execute("UPDATE outbox SET due_at = due_at - interval "
                                       "'2 minutes' WHERE kind = 'reminder' AND "
                                       "status = 'queued'")
                finally:
                    await conn.close()
                processes[0] = await start_sada(env, tmp_path / "run0.log", ports[0], webhook)
                await ready(session, processes[0], ports[0])
                mark("restarted")

            await asyncio.gather(surveys, kill_and_restart())
            mark("surveys")
            # every invitation out; then a minute passes for those sent after the restart,
            # and a process plans their reminders (a restart plans at once)
            await api.wait_for(lambda: len({chat for chat in api.sent_chats()
                                            if chat >= 5_000_000}) >= INVITED,
                               timeout=PATIENCE, what="every invitation")
            mark("surveys and invitations")
            conn = await pg(pg_url)
            try:
                await conn.execute("UPDATE invitation SET sent_at = sent_at - "
                                   "interval '2 minutes' WHERE sent_at > now() - "
                                   "interval '90 seconds'")
                # not synced yet: the planner copies sent_at from the outbox row
                await conn.execute("UPDATE outbox SET sent_at = sent_at - interval "
                                   "'2 minutes' WHERE kind = 'invitation' AND sent_at > "
                                   "now() - interval '90 seconds'")
                # the reminders the planner queued ahead of time move with their invitations
                await conn.execute("UPDATE outbox SET due_at = due_at - interval "
                                   "'2 minutes' WHERE kind = 'reminder' AND "
                                   "status = 'queued'")
            finally:
                await conn.close()
            processes[1].proc.send_signal(signal.SIGTERM)
            assert await processes[1].proc.wait() == 0, processes[1].output()[-3000:]
            processes[1] = await start_sada(env, tmp_path / "run1.log", ports[1], webhook)
            await ready(session, processes[1], ports[1])
            await api.wait_for(lambda: sum(1 for chat in api.sent_chats()
                                           if chat >= 5_000_000) >= 2 * INVITED,
                               timeout=PATIENCE, what="every reminder")
            mark("reminders")
            await asyncio.sleep(0.2)  # nothing more comes
        finally:
            for process in processes:
                if process.proc.returncode is None:
                    process.proc.send_signal(signal.SIGTERM)
            for process in processes:
                await asyncio.wait_for(process.proc.wait(), 30)
            await proxy.close()
        took = loop.time() - began
        phases = ", ".join(marks)
        conn = await pg(pg_url)
        try:
            sessions = await conn.fetch(
                "SELECT s.id, s.status, i.address FROM survey_session s "
                "JOIN contact_identity i ON i.contact_id = s.contact_id "
                "WHERE i.channel = 'telegram' AND i.address::bigint < 5000000")
            answers = await conn.fetch("SELECT session_id, question_id FROM answer")
            outbox = await conn.fetch("SELECT kind, status, count(*) AS n FROM outbox "
                                      "GROUP BY kind, status")
        finally:
            await conn.close()
        # 0 answers lost: every respondent completed, with the same answers as the first
        assert sorted(s["status"] for s in sessions) == ["completed"] * RESPONDENTS, sessions
        by_session: dict[int, set[str]] = {}
        for row in answers:
            by_session.setdefault(row["session_id"], set()).add(row["question_id"])
        assert all(by_session.get(s["id"]) == PULSE_ANSWERS for s in sessions), by_session
        assert len(answers) == RESPONDENTS * len(PULSE_ANSWERS)  # and none twice
        # 0 messages duplicated: no chat got the same text twice
        texts = Counter((m["chat"]["id"], m["text"]) for m in api.sent())
        twice = {key: n for key, n in texts.items() if n > 1}
        # Delivery is at-least-once where Telegram has no idempotency key: the one message
        # the killed process's dispatcher had on the wire (it sends one at a time) may go
        # again when its lease ends. Nothing else may.
        assert sum(n - 1 for n in twice.values()) <= 1, twice
        # the invitations and their reminders: each invited person got both
        per_invited = Counter(chat for chat, _ in texts if chat >= 5_000_000)
        assert sorted(per_invited.values()) == [2] * INVITED
        # 0 answered 429s beyond the first retry: no message met two 429s
        tries: dict[tuple[Any, Any, Any], list[int | None]] = {}
        for call in api.requests:
            if call.method.startswith(("send", "edit")):
                tries.setdefault(_message(call), []).append(call.status)
        again = {k: v for k, v in tries.items() if v.count(429) > 1}
        assert not again, _windows(api.requests, again)
        edits = len(api.calls("editMessageText")) + len(api.calls("editMessageReplyMarkup"))
        print(f"\n{PROCESSES} processes, {RESPONDENTS} respondents ({len(answers)} answers, "
              f"{Respondent.doubled} updates delivered twice, {Respondent.short} steps short of "
              f"a message), {INVITED} invitations and "
              f"{INVITED} reminders, {len(api.sent())} messages and {edits} edits, "
              f"{api.rejected_429} 429s, "
              f"{proxy.failovers} proxy failovers, {len(twice)} sent twice, outbox "
              f"{[tuple(r) for r in outbox]}: {took:.1f}s ({phases})")
        assert B2B.id == "b2b-supplier"


def _message(call: Any) -> tuple[Any, Any, Any]:
    """Which message a send or an edit is, for counting its tries: the method, the chat and
    the text (an edit without one: the message edited)."""
    return (call.method, call.params.get("chat_id"),
            call.params.get("text") or call.params.get("message_id"))


def _windows(calls: list[Any], again: dict[tuple[Any, Any, Any], list[int | None]]) -> str:
    """Each try of the messages that met two 429s: when it arrived (seconds after the first
    send), its answer, and the messages the fake had accepted in the second before it,
    overall and to that chat: what a 429 found."""
    sends = [c for c in calls if c.method.startswith(("send", "edit"))]
    start = sends[0].at if sends else 0.0
    lines = []
    for method, chat, what in again:
        for call in sends:
            if _message(call) != (method, chat, what):
                continue
            before = [c for c in sends if c.status == 200 and call.at - 1 < c.at < call.at]
            lines.append(f"{method} {chat} at {call.at - start:.3f}s: {call.status}; "
                         f"accepted in the second before: {len(before)} overall, "
                         f"{sum(c.params.get('chat_id') == chat for c in before)} to the chat")
    return "\n".join(lines)
