"""The real bot, on aiogram and on python-telegram-bot, against the fake Bot API HTTP server.

Whole surveys in ar, fa and en, by buttons and by typing; language switch, /stop, /forget,
forged and stale buttons, a redelivered update, a staff command refused, one person's flood
under Telegram's per-chat limit, and messages Telegram refuses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.conversation.controller import Controller
from bot.conversation.events import Pressed, Sender
from bot.engine.normalize import local_digits
from bot.flow.loader import load_flow
from bot.messaging.keyboards import PREFIX
from bot.messaging.transport import Keyboard
from storage.db import Database
from storage.repo import Store
from tests.fakebot.running import polling, settings_for
from tests.fakebot.server import Call, FakeBotApi, FakeUser, _ApiError

ROOT = Path(__file__).resolve().parents[2]
B2B = load_flow(ROOT / "flows" / "b2b_supplier.yaml").flow
ADMIN = 1
LATIN = re.compile(r"[A-Za-z]")
NAMES = {"fa": "سارا", "ar": "سارة", "en": "Sara"}

pytestmark = pytest.mark.slow


class RefusingApi(FakeBotApi):
    """Refuses, as Telegram does a text over 4,096 characters, every message containing one
    of `refuse`."""

    def __init__(self, token: str) -> None:
        super().__init__(token=token)
        self.refuse: set[str] = set()

    async def _send_message(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        if any(part in str(params.get("text", "")) for part in self.refuse):
            raise _ApiError(400, "Bad Request: message is too long")
        return await super()._send_message(params, call)


@dataclass
class Bot:
    api: RefusingApi
    db: Path

    def user(self, user_id: int, lang: str | None) -> FakeUser:
        return self.api.user(user_id, first_name=NAMES.get(lang or "en", "Sara"),
                             language_code=lang)

    async def do(self, user: FakeUser, action: Awaitable[Any], new: int = 1) -> list[dict]:
        """Act, then wait until the bot has sent `new` more messages to this user."""
        before = len(self.api.sent(user.id))
        await action
        sent = await self.api.wait_sent(user.id, before + new)
        await asyncio.sleep(0)  # let the bot go on with what follows its last send
        return sent[before:]

    async def press(self, user: FakeUser, label: str, new: int = 1) -> list[dict]:
        message, data = self.button(user, label)
        return await self.do(user, user.press(message, data), new)

    def button(self, user: FakeUser, label: str) -> tuple[dict, str]:
        for message in reversed(self.api.sent(user.id)):
            current = self.api.message(user.id, message["message_id"]) or message
            markup = current.get("reply_markup") or message.get("reply_markup") or {}
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label or button["text"].endswith(" " + label):
                        return current, button["callback_data"]
        raise AssertionError(f"no button {label!r} in the chat with {user.id}")

    def answers(self, user_id: int) -> dict[str, Any]:
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute(
                "select a.question_id, a.value from answer a join survey_session s "
                "on s.id = a.session_id join contact_identity c on c.contact_id = s.contact_id "
                "where c.address = ?", (str(user_id),)).fetchall()
        return {q: json.loads(v) if isinstance(v, str) else v for q, v in rows}

    def status(self, user_id: int) -> list[str]:
        with sqlite3.connect(self.db) as conn:
            return [r[0] for r in conn.execute(
                "select s.status from survey_session s join contact_identity c "
                "on c.contact_id = s.contact_id where c.address = ? order by s.id",
                (str(user_id),))]


@pytest.fixture(params=["aiogram", "ptb"])
async def bot(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bot]:
    db = tmp_path / "sada.db"
    async with RefusingApi(token="123456:TEST-token-for-sada-e2e-tests-0123456789") as api:
        settings = settings_for(api, tmp_path, ROOT / "flows", admin_ids=[ADMIN])
        async with polling(api, settings, framework=request.param):
            yield Bot(api, db)


def label(lang: str, qid: str, option: str) -> str:
    question = B2B.question(qid)
    for o in question.options:  # type: ignore[union-attr]
        if o.id == option:
            return o.label[lang]  # type: ignore[index]
    raise KeyError(option)


async def open_b2b(bot: Bot, user: FakeUser, lang: str) -> None:
    await bot.do(user, user.send("/start"))
    await bot.press(user, B2B.title[lang], new=2)  # type: ignore[index]  # intro + question


@pytest.mark.parametrize("lang", ["fa", "ar", "en"])
async def test_whole_survey_by_buttons(bot: Bot, lang: str) -> None:
    user = bot.user(100, lang)
    await open_b2b(bot, user, lang)
    await bot.press(user, label(lang, "stakeholder", "buyer"))
    await bot.press(user, local_digits("9", lang))
    await bot.press(user, {"fa": "رد شدن ←", "ar": "تخطٍّ ←", "en": "Skip »"}[lang])
    await bot.press(user, local_digits("4", lang))
    await bot.press(user, label(lang, "priorities", "quality"), new=0)
    await bot.api.wait_for(lambda: any("☑" in json.dumps(e, ensure_ascii=False)
                                       for e in bot.api.edits(user.id)))
    await bot.press(user, {"fa": "تأیید ✓", "ar": "تم ✓", "en": "Done ✓"}[lang])
    await bot.press(user, label(lang, "informed", "always"))
    await bot.press(user, local_digits("2", lang))
    assert bot.status(user.id) == ["completed"]
    assert bot.answers(user.id) == {"stakeholder": "buyer", "nps": 9, "nps_why": None,
                                    "expectations": 4, "priorities": ["quality"],
                                    "informed": "always", "ces": 2}
    if lang != "en":  # only the reader's language: no Latin letter in any message
        for text in bot.api.texts(user.id):
            assert not LATIN.search(text.replace("/skip", "")), text
    # no stale buttons: every answered question's keyboard is replaced by the choice (the
    # last one's edit follows the closing message, and may still be on its way)
    questions = [m for m in bot.api.sent(user.id) if m.get("reply_markup")][1:]

    def stale() -> list[dict]:
        current = [bot.api.message(user.id, m["message_id"]) or {} for m in questions]
        return [m for m in current if sum(len(row) for row in (m.get("reply_markup") or {})
                                          .get("inline_keyboard", [])) > 1]

    await bot.api.wait_for(lambda: not stale(), what="no stale keyboard left")


@pytest.mark.parametrize("lang", ["fa", "ar", "en"])
async def test_whole_survey_by_typing_local_digits(bot: Bot, lang: str) -> None:
    user = bot.user(200, lang)
    await open_b2b(bot, user, lang)
    for typed in ("3", "5", "delivery is late" if lang == "en" else "التسليم", "2", "1، 2",
                  "2", "2", "6", "slow" if lang == "en" else "بطيء"):
        await bot.do(user, user.send(local_digits(typed, lang)))
    assert bot.status(user.id) == ["completed"]
    answers = bot.answers(user.id)
    assert answers["stakeholder"] == "decision_maker" and answers["nps"] == 5
    assert answers["priorities"] == ["quality", "on_time"] and answers["vs_others"] == "same"
    assert answers["ces"] == 6 and answers["ces_why"]


async def test_wrong_answers_language_switch_and_stop(bot: Bot) -> None:
    user = bot.user(300, "fa")
    await open_b2b(bot, user, "fa")
    await bot.do(user, user.send("۱"))
    [hint, _again] = await bot.do(user, user.send("۱۱"), new=2)
    assert hint["text"].endswith("لطفاً یک عدد صحیح از ۰ تا ۱۰ بفرستید.")
    await bot.do(user, user.send("/language"))
    [changed, shown] = await bot.press(user, "العربية", new=2)
    assert "تم تغيير اللغة" in changed["text"] and "٠" in json.dumps(
        shown["reply_markup"], ensure_ascii=False)
    await bot.do(user, user.send("توقف"))
    assert bot.status(user.id) == ["stopped"]
    with sqlite3.connect(bot.db) as conn:
        assert conn.execute("select opted_out, language from contact").fetchone() == (1, "ar")
    await bot.do(user, user.send("/start"), new=2)  # opts back in: welcome back + question
    with sqlite3.connect(bot.db) as conn:
        assert conn.execute("select opted_out from contact").fetchone() == (0,)


async def test_forged_stale_and_redelivered_updates_change_nothing(bot: Bot) -> None:
    user = bot.user(400, "en")
    await open_b2b(bot, user, "en")
    first, data = bot.button(user, "Purchasing")
    await bot.press(user, "Purchasing")
    answers_before = bot.answers(user.id)
    await user.forge(data, message_id=first["message_id"])  # the old button, again
    await bot.api.wait_for(lambda: any("earlier question" in (a.get("text") or "")
                                       for a in bot.api.callback_answers()))
    await user.forge(data[:-4] + "AAAA")
    await bot.api.wait_for(lambda: any("not part of this survey" in (a.get("text") or "")
                                       for a in bot.api.callback_answers()))
    before = len(bot.api.sent(user.id))
    update = await user.send("8")
    await bot.api.wait_sent(user.id, before + 1)  # the next question
    sent = len(bot.api.sent(user.id))
    bot.api.redeliver(update)
    await bot.api.wait_for(lambda: update["update_id"] in bot.api.deliveries[-3:])
    await asyncio.sleep(0.3)
    assert len(bot.api.sent(user.id)) == sent
    assert bot.answers(user.id) == {**answers_before, "nps": 8}


async def test_staff_commands_export_and_forget(bot: Bot) -> None:
    stranger = bot.user(500, "en")
    [refusal] = await bot.do(stranger, stranger.send("/report"))
    assert "survey team only" in refusal["text"]
    admin = bot.user(ADMIN, "en")
    [report] = await bot.do(admin, admin.send("/report"))
    assert "survey team only" not in report["text"]
    await open_b2b(bot, stranger, "en")  # one answer, so the report has a trend to draw
    await bot.press(stranger, "Purchasing")
    await bot.press(stranger, "4")
    [summary] = await bot.do(admin, admin.send("/report b2b-supplier"))
    assert "Supplier relationship review" in summary["text"]
    await bot.api.wait_for(lambda: bot.api.photos)
    [(chat_id, chart)] = bot.api.photos
    assert chat_id == ADMIN and chart.data.startswith(b"\x89PNG")
    await bot.do(stranger, stranger.send("/export"), new=0)
    await bot.api.wait_for(lambda: bot.api.documents)
    [(chat_id, upload)] = bot.api.documents
    assert chat_id == 500 and json.loads(upload.data)["identities"][0]["address"] == "500"
    await bot.do(stranger, stranger.send("/forget"))
    await bot.press(stranger, "Yes, erase my data")
    with sqlite3.connect(bot.db) as conn:
        assert conn.execute("select count(*) from contact_identity where address = '500'"
                            ).fetchone() == (0,)


async def test_one_persons_flood_does_not_hold_up_another(bot: Bot) -> None:
    bot.api.rate_limit(None, per_chat=1)  # Telegram: about one message a second per chat
    flooder, other = bot.user(600, "en"), bot.user(601, "en")
    for _ in range(40):
        await flooder.send("/help")
    await bot.api.wait_for(lambda: bot.api.rejected_429, what="the flood rate-limited")
    await bot.do(other, other.send("/start"))
    # answered while the flooder's replies still trickle out at one a second
    assert len(bot.api.sent(flooder.id)) < 40
    assert "Hello" in bot.api.texts(other.id)[0]


QUESTION_REFUSED = ("Sorry, this question could not be shown; the survey team has been told. "
                    "Send /skip to go on or /stop to end the survey.")


async def test_a_refused_question_gets_an_apology_and_is_never_sent_again(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    role = B2B.question("stakeholder").text["en"]  # type: ignore[index]
    bot.api.refuse.add(role)
    user = bot.user(700, "en")
    await bot.do(user, user.send("/start"))
    _intro, apology = await bot.press(user, B2B.title["en"], new=2)  # type: ignore[index]
    assert apology["text"] == QUESTION_REFUSED
    with sqlite3.connect(bot.db) as conn:
        # marked shown: neither the next start (resume_pending) nor the next message sends
        # it again
        assert conn.execute("select shown, position from survey_session").fetchone() == (
            "stakeholder", "stakeholder")
    [nps] = await bot.do(user, user.send("1"))  # taken as its answer: on to the next one
    assert "recommend" in nps["text"]
    tried = [c for c in bot.api.calls("sendMessage") if role in str(c.params.get("text"))]
    assert len(tried) == 1
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "refused question stakeholder of flow b2b-supplier" in error.getMessage()
    with sqlite3.connect(bot.db) as conn:  # "the survey team has been told": really
        alerts = conn.execute("select address, text from outbox where kind = 'alert'").fetchall()
    assert [(chat, text.split(":")[0]) for chat, text in alerts] == [
        (str(ADMIN), "Telegram refused question stakeholder of flow b2b-supplier")]


async def test_a_refused_reply_gets_an_apology(bot: Bot) -> None:
    bot.api.refuse.add("/back")  # the help text
    user = bot.user(701, "en")
    [apology] = await bot.do(user, user.send("/help"))
    assert apology["text"] == ("Sorry, our reply could not be shown; the survey team has "
                               "been told.")
    await bot.do(user, user.send("/help"))  # the same failure again: staff hear it once
    with sqlite3.connect(bot.db) as conn:
        alerts = conn.execute("select address from outbox where kind = 'alert'").fetchall()
    assert alerts == [(str(ADMIN),)]


class GatedTransport:
    """A Transport whose sends to `gated` chats wait for `gate`: a chat waiting out a 429."""

    def __init__(self, gated: set[str]) -> None:
        self.gated, self.gate = gated, asyncio.Event()
        self.sent: list[tuple[str, str]] = []

    async def send_text(self, chat_id: str, text: str, keyboard: Keyboard | None) -> int:
        if chat_id in self.gated:
            await self.gate.wait()
        self.sent.append((chat_id, text))
        return len(self.sent)

    async def edit(self, *args: object) -> None: ...

    async def answer_press(self, *args: object) -> None: ...

    async def send_document(self, *args: object) -> None: ...

    async def send_photo(self, *args: object) -> None: ...


async def test_resuming_after_a_crash_is_not_held_up_by_one_chat(tmp_path: Path) -> None:
    async with await Database.open(f"sqlite:///{tmp_path / 'sada.db'}") as db:
        core = await Controller.create(Store(db), channel="telegram", flows_dir=ROOT / "flows",
                                         bot_username="sada_test_bot", admin_ids=frozenset(),
                                         secret="s")
        for n, chat in enumerate(("801", "802", "803")):  # opened; the process dies before sending
            user = Sender(chat, "Sara", language_code="en")
            assert await core.handle(Pressed(n + 1, chat, user, f"cb{n}", None,
                                             f"{PREFIX}:f:b2b-supplier"))
        transport = GatedTransport({"801"})
        resuming = asyncio.create_task(core.resume_pending(transport))
        async with asyncio.timeout(10):
            while len(transport.sent) < 2:
                await asyncio.sleep(0.01)
        assert {chat for chat, _ in transport.sent} == {"802", "803"}  # while 801 still waits
        assert not resuming.done()
        transport.gate.set()
        assert await asyncio.wait_for(resuming, 10) == 3
        assert sorted(chat for chat, _ in transport.sent) == ["801", "802", "803"]
        assert await core.resume_pending(transport) == 0  # each marked shown
