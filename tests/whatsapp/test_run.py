"""WhatsApp in a real `sada run` process, against the fake Graph API: Meta's webhook
verification, a person completing the B2B survey in Arabic by taps and typed Arabic-Indic
digits, forged and redelivered webhooks, status webhooks on the outbox rows, and wrong
settings in one line."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from typer.testing import CliRunner

import bot.cli
from bot.channels.telegram.runner import run_bot
from bot.channels.telegram.settings import TelegramSettings
from bot.channels.whatsapp.settings import WhatsAppSettings
from bot.channels.whatsapp.webhook import signature
from bot.settings import Settings
from storage.db import Database
from storage.outbox import enqueue
from storage.repo import Store
from tests.bale.test_run import (
    ROOT,
    TELEGRAM_TOKEN,
    Process,
    completed,
    free_port,
    sada_run,
    stop,
)
from tests.conftest import sqlite_at_head
from tests.fakebot import FakeBotApi
from tests.fakegraph import FakeGraphApi
from tests.sada_cli import run_sada

pytestmark = pytest.mark.slow

VERIFY_TOKEN = "sada-verify-me"
NUMBER = "971501234567"
JSON = dict[str, Any]


def env_for(graph: FakeGraphApi, db: Path) -> dict[str, str]:
    return {"SADA_DATABASE_URL": f"sqlite:///{db}", "SADA_FLOWS_DIR": str(ROOT / "flows"),
            "SADA_WHATSAPP__PHONE_NUMBER_ID": graph.phone_number_id,
            "SADA_WHATSAPP__ACCESS_TOKEN": graph.access_token,
            "SADA_WHATSAPP__APP_SECRET": graph.app_secret,
            "SADA_WHATSAPP__VERIFY_TOKEN": VERIFY_TOKEN,
            "SADA_WHATSAPP__API_URL": graph.base_url,
            "SADA_WHATSAPP__API_VERSION": graph.version}


async def started(graph: FakeGraphApi, tmp_path: Path, db: Path) -> tuple[Process, str]:
    port = free_port()
    process = await sada_run(env_for(graph, db), tmp_path / "run.log",
                             "--listen", f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}/whatsapp"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    async with aiohttp.ClientSession() as session:
        while True:
            assert process.proc.returncode is None, process.output()
            assert loop.time() < deadline, process.output()
            try:
                async with session.get(url, params={
                        "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                        "hub.challenge": "1158201444"}) as answer:
                    if answer.status == 200:
                        assert await answer.text() == "1158201444"
                        break
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.2)
        async with session.get(url, params={"hub.mode": "subscribe",
                                            "hub.verify_token": "wrong",
                                            "hub.challenge": "1"}) as answer:
            assert answer.status == 403
    graph.webhook_url = url
    return process, url


def interactive(message: JSON) -> list[tuple[str, str]]:
    """(id, title) of a message's buttons or list rows."""
    if message["type"] != "interactive":
        return []
    action = message["interactive"]["action"]
    if "buttons" in action:
        return [(b["reply"]["id"], b["reply"]["title"]) for b in action["buttons"]]
    return [(r["id"], r["title"]) for s in action["sections"] for r in s["rows"]]


async def tap(graph: FakeGraphApi, to: str, title: str) -> None:
    """Tap the button or list row titled `title` (or ending with it) of the latest message
    that has one, and wait for the bot's answer."""
    user = graph.user(to)
    before = len(graph.sent(to))
    for message in reversed(graph.sent(to)):
        for choice, shown in interactive(message):
            if shown == title or shown.endswith(" " + title) or shown.startswith(title):
                if message["interactive"]["type"] == "button":
                    await user.press(message, choice)
                else:
                    await user.choose(message, choice)
                await graph.wait_for(lambda: len(graph.sent(to)) > before, timeout=30)
                return
    raise AssertionError(f"no choice {title!r}: {[interactive(m) for m in graph.sent(to)[-3:]]}")


async def typed(graph: FakeGraphApi, to: str, text: str) -> None:
    before = len(graph.sent(to))
    await graph.user(to).send(text)
    await graph.wait_for(lambda: len(graph.sent(to)) > before, timeout=30)


def outbox(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(
            "select id, status, delivery, delivery_error, message_id from outbox order by id"))


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql, args))


def answers(db: Path) -> dict[str, Any]:
    return {q: (raw, value) for q, raw, value in query(
        db, "select question_id, raw_text, value from answer order by id")}


async def queue_message(db: Path, key: str, to: str, text: str) -> None:
    """A free staff message to `to` on WhatsApp, for the running process to send."""
    now = datetime.now(UTC)
    async with await Database.open(f"sqlite:///{db}") as database, \
            database.session() as s, s.begin():
        await enqueue(s, key=key, kind="alert", channel="whatsapp", address=to,
                      contact_id=None, text=text, due_at=now, now=now)


async def sent_row(graph: FakeGraphApi, db: Path, key: str) -> JSON:
    """The message the process sent for the outbox row `key`, once recorded as sent."""
    await graph.wait_for(lambda: query(db, "select status from outbox where key = ?", key)
                         == [("sent",)], timeout=30)
    [text] = query(db, "select text from outbox where key = ?", key)[0]
    [message] = [m for m in graph.sent() if m["type"] == "text"
                 and m["text"]["body"] == text]
    return message


def delivery(db: Path, key: str) -> tuple[Any, ...]:
    [row] = query(db, "select status, delivery, delivery_error from outbox where key = ?", key)
    return row


def reachable(db: Path, channel: str, address: str) -> bool:
    [(unreachable,)] = query(db, "select unreachable from contact_identity where channel = ? "
                             "and address = ?", channel, address)
    return not unreachable


async def test_a_survey_in_arabic_on_whatsapp_with_webhooks_and_statuses(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sada.db"
    async with FakeGraphApi() as graph:
        graph.user(NUMBER, "سارة")
        process, _ = await started(graph, tmp_path, db)
        try:
            await typed(graph, NUMBER, "/lang ar")
            await typed(graph, NUMBER, "/start")
            [(_, title)] = interactive(graph.sent(NUMBER)[-1])
            await tap(graph, NUMBER, title)  # the survey from the list of public ones
            await tap(graph, NUMBER, "المشتريات")  # a list row (six roles)
            # 0–10 does not fit WhatsApp's buttons or lists: typed, in Arabic-Indic digits
            assert interactive(graph.sent(NUMBER)[-1]) == []
            await typed(graph, NUMBER, "٩")
            await tap(graph, NUMBER, "تخطٍّ ←")  # a reply button
            await tap(graph, NUMBER, "٤")
            await tap(graph, NUMBER, "☐ جودة المنتج")
            await tap(graph, NUMBER, "تم ✓")
            for _ in range(4):  # what is left: the first choice of each, or a typed ٢
                if query(db, "select status from survey_session") == [("completed",)]:
                    break
                choices = [c for c in interactive(graph.sent(NUMBER)[-1])
                           if not c[1].startswith("→")]
                if choices:
                    await tap(graph, NUMBER, choices[0][1])
                else:
                    await typed(graph, NUMBER, "٢")
            assert await completed(db, "whatsapp", NUMBER) == ["completed"], process.output()
            stored = answers(db)
            assert stored["stakeholder"][1] == '"buyer"'
            assert stored["nps"] == ("٩", 9)
            assert stored["expectations"][1] == 4
            # every message the person sent was marked read
            assert len(graph.reads) >= 8

            # a forged or missing signature is refused and changes nothing
            handled = query(db, "select count(*) from processed_update")
            count = len(graph.sent(NUMBER))
            body = graph.message_body(graph.user(NUMBER), "text", {"text": {"body": "/start"}})
            assert await graph.post_webhook(body, signature="sha256=" + "0" * 64) == 403
            assert await graph.post_webhook(body, signature="") == 401
            wrong = signature(b"{}", graph.app_secret)  # signs another body
            assert await graph.post_webhook(body, signature=wrong) == 403
            # a redelivery of a message already handled changes nothing either
            last_answer = next(b for b, status in reversed(graph.webhooks) if status == 200)
            assert await graph.post_webhook(last_answer) == 200
            await asyncio.sleep(0.5)
            assert query(db, "select count(*) from processed_update") == handled
            assert len(graph.sent(NUMBER)) == count
            assert answers(db) == stored

            # statuses update the row, in whatever order and as often as they come
            await queue_message(db, "note:1", NUMBER, "شكرًا لكم")
            note = await sent_row(graph, db, "note:1")
            for status in ("delivered", "sent", "read", "delivered", "read"):
                assert await graph.post_webhook(graph.status_body(note, status)) == 200
            assert delivery(db, "note:1") == ("sent", "read", None)
            # failed after it was read on another device: still read, the error kept
            assert await graph.post_webhook(graph.status_body(note, "failed", 131026)) == 200
            status, state, error = delivery(db, "note:1")
            assert (status, state) == ("sent", "read") and "131026" in error
            assert reachable(db, "whatsapp", NUMBER)

            # 131026 on a message not delivered: that WhatsApp identity is unreachable, the
            # same contact's Telegram chat is not
            other = "966551234567"
            graph.user(other, "Omar")
            await typed(graph, other, "/start")
            [(contact_id,)] = query(db, "select contact_id from contact_identity where "
                                    "channel = 'whatsapp' and address = ?", other)
            with sqlite3.connect(db) as conn:
                conn.execute("insert into contact_identity (contact_id, channel, address, "
                             "unreachable, created_at) values (?, 'telegram', '5005', 0, ?)",
                             (contact_id, datetime.now(UTC).isoformat(" ")))
            await queue_message(db, "note:2", other, "Thank you")
            lost = await sent_row(graph, db, "note:2")
            assert await graph.post_webhook(graph.status_body(lost, "sent")) == 200
            assert await graph.post_webhook(graph.status_body(lost, "failed", 131026)) == 200
            status, state, error = delivery(db, "note:2")
            assert (status, state) == ("failed", "failed") and "131026" in error
            assert not reachable(db, "whatsapp", other)
            assert reachable(db, "telegram", "5005")
            # a late "delivered" for the same message still moves it on
            assert await graph.post_webhook(graph.status_body(lost, "delivered")) == 200
            assert delivery(db, "note:2")[1] == "delivered"
        finally:
            code = await stop(process)
        log = process.output()
        assert code == 0, log
        assert "Traceback" not in log
        # sada status: what WhatsApp reported, per channel
        shown = await asyncio.to_thread(  # the command runs its own event loop
            CliRunner().invoke, bot.cli.app, ["status", "--database-url", f"sqlite:///{db}"])
        assert shown.exit_code == 0, shown.output
        [line] = [li for li in shown.output.splitlines() if li.strip("│ ").startswith("whats")]
        # the note read, the lost one delivered late on another device
        assert [c.strip() for c in line.split("│")[1:6]] == ["whatsapp", "0", "1", "1", "0"]


@pytest.mark.parametrize(("unset", "says"), [
    ("SADA_WHATSAPP__APP_SECRET", "SADA_WHATSAPP__APP_SECRET is not set"),
    ("SADA_WHATSAPP__VERIFY_TOKEN", "SADA_WHATSAPP__VERIFY_TOKEN is not set"),
    ("SADA_WHATSAPP__ACCESS_TOKEN", "SADA_WHATSAPP__ACCESS_TOKEN is not set"),
])
async def test_missing_whatsapp_settings_are_one_line(
    tmp_path: Path, unset: str, says: str,
) -> None:
    async with FakeGraphApi() as graph:
        env = env_for(graph, tmp_path / "sada.db")
        del env[unset]
        # `sada run` in this process: it stops at the settings, before it starts anything
        done = run_sada(["run", "--listen", f"127.0.0.1:{free_port()}"], env=env, cwd=ROOT)
        assert done.returncode == 2, done.stdout + done.stderr
        lines = (done.stdout + done.stderr).strip().splitlines()
        assert len(lines) == 1 and says in lines[0], lines


async def test_telegram_and_whatsapp_in_one_process_on_one_address(tmp_path: Path) -> None:
    """Telegram's webhook on the --webhook URL, WhatsApp's on its path plus /whatsapp, one
    --listen address; follow-ups go out on the channel of their row."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/sada"
    db = tmp_path / "sada.db"
    async with FakeBotApi(token=TELEGRAM_TOKEN) as telegram, FakeGraphApi() as graph:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            telegram=TelegramSettings.model_validate(
                {"token": telegram.token, "api_url": telegram.base_url}),
            whatsapp=WhatsAppSettings.model_validate(
                {"phone_number_id": graph.phone_number_id, "access_token": graph.access_token,
                 "app_secret": graph.app_secret, "verify_token": VERIFY_TOKEN,
                 "api_url": graph.base_url}),
            database_url=sqlite_at_head(db), flows_dir=ROOT / "flows",
        )
        stop = asyncio.Event()
        task = asyncio.create_task(run_bot(settings, framework="aiogram", webhook_url=url,
                                           listen=("127.0.0.1", port), stop=stop))
        try:
            await telegram.wait_for(lambda: bool(telegram.webhook_url) or task.done(),
                                    timeout=60, what="the Telegram webhook set")
            assert not task.done() or task.result()
            graph.webhook_url = f"{url}/whatsapp"
            sara = telegram.user(1001, "سارا", "fa")
            assert await telegram.post_update_to_webhook(await sara.send("/start")) == 200
            await typed(graph, NUMBER, "/start")
            assert telegram.sent(1001) and graph.sent(NUMBER)
            # a Telegram update on WhatsApp's path is refused: no signature
            assert await telegram.post_update_to_webhook(
                await sara.send("/help"), graph.webhook_url) == 401
            await queue_message(db, "wa", NUMBER, "واتساب")
            now = datetime.now(UTC)
            async with await Database.open(f"sqlite:///{db}") as database, \
                    database.session() as s, s.begin():
                await enqueue(s, key="tg", kind="alert", channel="telegram", address="1001",
                              contact_id=None, text="تلگرام", due_at=now, now=now)
            await sent_row(graph, db, "wa")
            await telegram.wait_for(lambda: "تلگرام" in telegram.texts(1001), timeout=30,
                                    what="the Telegram follow-up")
            assert "تلگرام" not in graph.texts() and "واتساب" not in telegram.texts(1001)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


TEMPLATES = ('{"invitation": {"en": {"name": "sada_invitation", "language": "en", '
             '"parameters": ["first_name", "survey"], "button": true}}}')


@pytest.mark.parametrize(("lang", "digit", "number"), [
    ("fa", "۹", "4915112345678"),  # a Persian speaker abroad: WhatsApp has no Iran
    ("en", "9", "447700900123"),
])
async def test_an_invitation_outside_the_window_a_whole_survey_and_its_reminder_stops(
    tmp_path: Path, lang: str, digit: str, number: str,
) -> None:
    """Invited while outside the 24-hour window: the invitation goes as the template (the
    English one standing in for Persian), its button opens the survey, the person answers
    every question by taps and typed digits of their script, and the reminder queued for
    the invitation is not sent once the survey is completed."""
    from bot.flow.loader import load_flow
    from bot.followups.invite import Audience, invite_contacts

    db = tmp_path / "sada.db"
    b2b = load_flow(next((ROOT / "flows").glob("b2b*.y*ml"))).flow
    now = datetime.now(UTC)
    async with await Database.open(f"sqlite:///{db}") as database:
        contact = await Store(database).upsert_contact("whatsapp", number, first_name="Amal",
                                                       language=lang)
        assert contact.id is not None
        await invite_contacts(database, flow=b2b, audience=Audience(contact_ids=(contact.id,)),
                              at=now, context={}, now=now, bot_username=None, links_out=None)
    with sqlite3.connect(db) as conn:  # due now whatever the contact's local window
        conn.execute("update outbox set due_at = ?", (now.isoformat(" "),))
        [(invitation_id,)] = conn.execute("select id from invitation").fetchall()
    async with await Database.open(f"sqlite:///{db}") as database, \
            database.session() as s, s.begin():
        await enqueue(s, key=f"reminder:{invitation_id}:0", kind="reminder",
                      channel="whatsapp", address=number, contact_id=contact.id,
                      due_at=now + timedelta(days=1), now=now, invitation_id=invitation_id)
    async with FakeGraphApi() as graph:
        graph.user(number, "Amal")
        port = free_port()
        process = await sada_run({**env_for(graph, db), "SADA_WHATSAPP__TEMPLATES": TEMPLATES},
                                 tmp_path / "run.log", "--listen", f"127.0.0.1:{port}")
        graph.webhook_url = f"http://127.0.0.1:{port}/whatsapp"
        try:
            invitation = await graph.wait_for(
                lambda: next((m for m in graph.sent(number) if m["type"] == "template"), None),
                timeout=60)
            assert invitation["template"]["name"] == "sada_invitation"
            assert invitation["template"]["language"] == {"code": "en"}
            before = len(graph.sent(number))
            await graph.user(number).press_template_button(invitation)
            await graph.wait_for(lambda: len(graph.sent(number)) > before, timeout=30)
            for _ in range(16):
                if query(db, "select status from survey_session") == [("completed",)]:
                    break
                choices = [c[1] for c in interactive(graph.sent(number)[-1])
                           if "«" not in c[1] and "→" not in c[1]]
                ticked = any(c.startswith("☑") for c in choices)
                if any(c.startswith(("☐", "☑")) for c in choices):  # several may be picked
                    await tap(graph, number, next(
                        c for c in choices if (c.endswith("✓") if ticked else c[0] == "☐")))
                elif choices:
                    await tap(graph, number, choices[0])
                else:
                    await typed(graph, number, digit)
            assert await completed(db, "whatsapp", number) == ["completed"], [
                m.get("text") or m.get("interactive") for m in graph.sent(number)[-3:]]
            assert ("nps", digit) in {(q, raw) for q, raw, _ in query(
                db, "select question_id, raw_text, value from answer")}
            # the reminder is due later; once it is, it is cancelled, not sent
            with sqlite3.connect(db) as conn:
                conn.execute("update outbox set due_at = ? where kind = 'reminder'",
                             (datetime.now(UTC).isoformat(" "),))
            await graph.wait_for(lambda: query(
                db, "select status from outbox where kind = 'reminder'") == [("cancelled",)],
                timeout=30)
            assert query(db, "select status from invitation") == [("completed",)]
            assert [m["type"] for m in graph.sent(number)].count("template") == 1
        finally:
            code = await stop(process)
        assert code == 0, process.output()
        assert "Traceback" not in process.output()
