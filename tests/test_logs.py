"""Structured logs: JSON records parse, one per line, with the channel, update, contact and
session of the inbound event being handled (and of the outbox row being sent); nothing
personal (names, answers, typed text, numbers) is logged above DEBUG in a full survey;
`sada run` refuses a log level or format it does not know in one line."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot import logs
from bot.cli import app
from bot.conversation.controller import Controller
from bot.conversation.events import Sender
from bot.messaging.transport import Keyboard, Refused
from storage import outbox
from storage.repo import Store
from tests.conversation.test_controller import Chat, Recorder
from tests.followups.outbox_fakes import FakeClock, RecordingTransport

ROOT = Path(__file__).resolve().parents[1]
PHONE = "971501234567"  # a chat id that is a phone number, as WhatsApp's are
TYPED = "secret-answer-7731"


class Telegram(Recorder):
    """Records, and logs each send from inside the handling, as a library would."""

    channel = "telegram"
    refuse: str | None = None  # a message containing this is refused (400)

    async def send_text(self, chat_id: int, text: str, keyboard: Keyboard | None) -> int:
        logging.getLogger("tests.transport").info("sending a message")
        if self.refuse is not None and self.refuse in text:
            raise Refused("Bad Request: message is too long")
        return await super().send_text(chat_id, text, keyboard)

    async def answer_press(self, callback_id: str, text: str | None) -> None:
        if callback_id == "explode":
            raise RuntimeError("the press could not be answered")
        await super().answer_press(callback_id, text)


@contextmanager
def captured(fmt: str, level: int) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logs.handler(fmt, stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def _core(store: Store) -> Controller:
    return await Controller.create(store, channel="telegram", flows_dir=ROOT / "flows",
                                   bot_username="sada_test_bot", admin_ids=frozenset({"1"}),
                                   secret="test-secret", alert_to=[("telegram", "1")])


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = stream.getvalue().splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # every line one object


async def test_json_records_carry_the_inbound_events_context(store: Store) -> None:
    core = await _core(store)
    transport = Telegram()
    chat = Chat(core, transport, 4301, "en")
    with captured("json", logging.DEBUG) as stream:
        await chat.send("/start")
        await chat.press("Supplier relationship review")
        await chat.press("Purchasing")
        logging.getLogger("tests.after").info("between updates")
    records = _records(stream)
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys()
        assert record["time"].endswith("Z")
    contact = await store.find_contact("telegram", "4301")
    assert contact is not None and contact.id is not None
    session = await store.latest_open_session(contact.id)
    assert session is not None
    sends = [r for r in records if r["logger"] == "tests.transport"]
    assert sends and all(r["channel"] == "telegram" and r["contact_id"] == contact.id
                         and isinstance(r["update_id"], int) for r in sends)
    assert sends[-1]["session_id"] == session.id  # the question after "Purchasing"
    assert len({r["update_id"] for r in sends}) == 3  # one per update
    [after] = [r for r in records if r["logger"] == "tests.after"]
    assert not set(logs.FIELDS) & after.keys()  # the event's context ended with it


async def test_an_exception_is_one_string_field(store: Store) -> None:
    from bot.conversation.events import Pressed

    core = await _core(store)
    transport = Telegram()
    chat = Chat(core, transport, 4302, "en")
    await chat.send("/start")
    with captured("json", logging.INFO) as stream:
        await core.process(Pressed(77001, "4302", chat.user, "explode", 1, "sada:x"), transport)  # type: ignore[arg-type]
    [failed] = [r for r in _records(stream) if r["level"] == "ERROR"]
    assert failed["message"] == "update 77001: delivery failed"
    assert "RuntimeError: the press could not be answered" in failed["exception"]
    assert failed["update_id"] == 77001 and failed["channel"] == "telegram"


async def test_the_dispatcher_names_its_rows_channel_and_contact(store: Store) -> None:
    from bot.channels.telegram.channel import CHANNEL as TELEGRAM
    from bot.followups.dispatcher import Dispatcher
    from bot.followups.ratelimit import RateLimiter

    clock = FakeClock()
    contact = await store.upsert_contact("telegram", PHONE, seen_at=clock.now(), name="Zoya")
    async with store.database.session() as s, s.begin():
        await outbox.enqueue(s, key="k", kind="alert", channel="telegram", address=PHONE,
                             contact_id=contact.id, text="hello", due_at=clock.now(),
                             now=clock.now())
    transport = RecordingTransport(clock)
    transport.fail(PHONE, Refused("Bad Request: chat not found"))
    dispatcher = Dispatcher(store.database, {"telegram": transport}, clock=clock.now,
                            sleep=clock.sleep, worker_id="test", limiters={
                                "telegram": RateLimiter.for_channel(
                                    TELEGRAM.capabilities, clock=clock.monotonic,
                                    sleep=clock.sleep)})
    with captured("json", logging.INFO) as stream:
        await dispatcher.run_once()
    [failed] = [r for r in _records(stream) if r["level"] == "WARNING"]
    assert (failed["channel"], failed["contact_id"]) == ("telegram", contact.id)
    assert PHONE not in json.dumps(failed)


async def test_a_full_survey_logs_nothing_personal_above_debug(store: Store) -> None:
    core = await _core(store)
    transport = Telegram()
    transport.refuse = "خوشحالیم"  # the promoters' outro: an error to log, and an apology
    chat = Chat(core, transport, int(PHONE), "fa")
    chat.user = Sender(PHONE, "Zoya", "Markerova", language_code="fa")
    with captured("text", logging.INFO) as stream:
        await chat.send("/start")
        await chat.press("نظرسنجی همکاری با ما")
        for label in ("خرید و تدارکات", "۹"):
            await chat.press(label)
        await chat.send(TYPED)
        await chat.press("۴")
        await chat.press("کیفیت محصول")
        await chat.press("تأیید ✓")
        await chat.press("همیشه")
        await chat.press("۲")
    text = stream.getvalue()
    contact = await store.find_contact("telegram", PHONE)
    assert contact is not None and contact.id is not None
    [session] = (await store.export_contact(contact.id))["sessions"]
    assert session["status"] == "completed"
    assert "refused" in text  # the run did log, above DEBUG
    for personal in (TYPED, "Zoya", "Markerova", PHONE, "خوشحالیم"):
        assert personal not in text, personal
    assert "[channel=telegram update_id=" in text and f"contact_id={contact.id}" in text


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Settings from this test's variables only, read afresh."""
    from bot.settings import get_settings

    for name in [n for n in os.environ if n.startswith("SADA_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("clean_settings")
@pytest.mark.parametrize(("option", "says"), [
    (["--log-level", "loud"], "--log-level must be one of DEBUG, INFO, WARNING, ERROR"),
    (["--log-format", "xml"], "--log-format must be text or json, not 'xml'"),
])
def test_sada_run_refuses_an_unknown_level_or_format(
    monkeypatch: pytest.MonkeyPatch, option: list[str], says: str
) -> None:
    from typer.testing import CliRunner

    monkeypatch.setenv("SADA_TELEGRAM__TOKEN", "123456:" + "A" * 35)
    monkeypatch.setenv("SADA_FLOWS_DIR", str(ROOT / "flows"))
    result = CliRunner().invoke(app, ["run", *option])
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith(says)
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.usefixtures("clean_settings")
def test_a_mistyped_log_level_is_told_before_a_missing_token() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["run", "--log-level", "loud"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith("--log-level must be one of"), result.output


@pytest.mark.usefixtures("clean_settings")
def test_a_bad_sada_log_level_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    monkeypatch.setenv("SADA_LOG_LEVEL", "chatty")
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == ("SADA_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, "
                                     "ERROR, not 'chatty'")
