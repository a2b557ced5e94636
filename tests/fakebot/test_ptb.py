"""python-telegram-bot 22, unmodified, against the fake: errors, polling and its webhook."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from tests.fakebot import FakeBotApi
from tests.fakebot.clients import ptb_application

App = Application[Any, Any, Any, Any, Any, Any]
NPS = InlineKeyboardMarkup([[InlineKeyboardButton(str(n), callback_data=f"nps:{n}")
                             for n in range(0, 11, 5)]])


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as fake:
        yield fake


def survey_app(api: FakeBotApi, seen: list[str]) -> App:
    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        seen.append(f"text:{update.message.message_id}:{update.message.text}")
        await update.message.reply_text("How likely are you to recommend us?", reply_markup=NPS)

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        seen.append(f"press:{query.data}")
        await query.answer("Thanks!")
        await query.edit_message_text(f"You chose {query.data}")

    app = ptb_application(api)
    app.add_handler(MessageHandler(filters.TEXT, on_text))
    app.add_handler(CallbackQueryHandler(on_press))
    return app


@asynccontextmanager
async def polling(app: App) -> AsyncIterator[App]:
    """PTB's documented manual lifecycle; the reverse order on the way out."""
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    try:
        yield app
    finally:
        await app.updater.stop()  # cancels the long poll, then confirms with a timeout=0 poll
        await app.stop()
        await app.shutdown()


def seconds(value: int | dt.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else value


async def test_application_polls_messages_and_presses(api: FakeBotApi) -> None:
    seen: list[str] = []
    sara = api.user(1001)
    async with polling(survey_app(api, seen)):
        await sara.send("/start")
        [question] = await api.wait_sent(1001, 1)
        assert question["reply_markup"]["inline_keyboard"][0][2]["callback_data"] == "nps:10"
        await sara.press(question, "nps:10")
        await api.wait_for(lambda: api.edits(1001))
    assert seen == ["text:1:/start", "press:nps:10"]
    assert api.edits(1001)[0]["text"] == "You chose nps:10"
    assert api.callback_answers()[0]["text"] == "Thanks!"
    assert api.calls("deleteWebhook")  # start_polling makes sure no webhook is set
    last_poll = api.calls("getUpdates")[-1]
    assert last_poll.params["timeout"] == 0 and last_poll.ok  # the confirming poll at stop
    assert api.pending_updates == []
    assert {call.encoding for call in api.calls("sendMessage")} == {"form"}


async def test_polling_confirms_an_update_before_its_handler_finishes(api: FakeBotApi) -> None:
    release = asyncio.Event()

    async def slow(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await release.wait()
        assert update.message is not None
        await update.message.reply_text("done")

    app = ptb_application(api)
    app.add_handler(MessageHandler(filters.TEXT, slow))
    async with polling(app):
        update = await api.user(5).send("x")
        await api.wait_for(lambda: api.updates_confirmed > update["update_id"])
        assert api.sent(5) == []  # confirmed while the handler still runs: a crash loses it
        release.set()
        await api.wait_sent(5, 1)


async def test_a_redelivered_update_is_handled_twice(api: FakeBotApi) -> None:
    seen: list[str] = []
    user = api.user(1002)
    async with polling(survey_app(api, seen)):
        update = await user.send("hello")
        await api.wait_sent(1002, 1)
        api.redeliver(update)
        await api.wait_sent(1002, 2)
    assert seen == ["text:1:hello", "text:1:hello"]  # PTB does not de-duplicate either


# RetryAfter's own constructor reads its int-valued retry_after, which PTB 22 deprecates
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_errors_surface_as_ptb_exceptions(api: FakeBotApi) -> None:
    app = ptb_application(api)
    async with app:  # initialize() calls getMe
        bot = app.bot
        assert bot.username == "sada_test_bot"
        api.fail_next("sendMessage", retry_after=3)
        with pytest.raises(RetryAfter) as flood:
            await bot.send_message(1, "x")
        assert seconds(flood.value.retry_after) == 3

        api.block(2)
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(2, "x")

        data = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="ب" * 33)]])
        with pytest.raises(BadRequest, match="Button_data_invalid"):  # PTB capitalizes it
            await bot.send_message(1, "x", reply_markup=data)

        sent = await bot.send_message(1, "Q1", reply_markup=NPS)
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.edit_message_reply_markup(1, sent.message_id, reply_markup=NPS)

        api.lose_response_next("sendMessage")
        with pytest.raises(NetworkError):
            await bot.send_message(1, "delivered anyway")
        assert api.texts(1)[-1] == "delivered anyway"


async def test_ptb_webhook_server_checks_the_secret_token(api: FakeBotApi) -> None:
    seen: list[str] = []
    app = survey_app(api, seen)
    with socket.socket() as probe:  # PTB's webhook server wants a port number, not a socket
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await app.initialize()
    await app.start()
    assert app.updater is not None
    try:
        await app.updater.start_webhook(
            listen="127.0.0.1", port=port, url_path="tg", secret_token="s3cret",
            webhook_url=f"http://127.0.0.1:{port}/tg",
        )
        assert api.webhook_url == f"http://127.0.0.1:{port}/tg"  # PTB called setWebhook
        update = await api.user(1003).send("hi")
        assert await api.post_update_to_webhook(update, api.webhook_url, "wrong") == 403
        assert await api.post_update_to_webhook(update) == 200
        await api.wait_sent(1003, 1)
        assert seen == ["text:1:hi"]
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
