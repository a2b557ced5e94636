"""aiogram 3, unmodified, against the fake: its Bot methods, errors, polling and webhooks."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tests.fakebot import FakeBotApi
from tests.fakebot.clients import aiogram_bot

NPS = InlineKeyboardMarkup(inline_keyboard=[
    [InlineKeyboardButton(text=str(n), callback_data=f"nps:{n}") for n in range(0, 11, 5)]
])


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as fake:
        yield fake


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    bot = aiogram_bot(api)
    yield bot
    await bot.session.close()


def survey_dispatcher(seen: list[str]) -> Dispatcher:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        seen.append(f"start:{message.message_id}")
        await message.answer("How likely are you to recommend us?", reply_markup=NPS)

    @dp.message(F.text)
    async def text(message: Message) -> None:
        seen.append(f"text:{message.message_id}")
        await message.answer(f"echo {message.text}")

    @dp.callback_query(F.data.startswith("nps:"))
    async def score(query: CallbackQuery) -> None:
        seen.append(f"press:{query.data}")
        await query.answer("Thanks!")
        assert isinstance(query.message, Message)
        await query.message.edit_text(f"You chose {query.data}")

    return dp


@asynccontextmanager
async def polling(dp: Dispatcher, bot: Bot, api: FakeBotApi) -> AsyncIterator[None]:
    """Run `dp.start_polling` as a task; stop it the way aiogram supports from inside a loop."""
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, polling_timeout=1)
    )
    await api.wait_for(lambda: api.calls("getUpdates") or task.done())
    try:
        yield
    finally:
        if not task.done():
            await dp.stop_polling()  # cancels the pending getUpdates, closes the bot session
        await task


async def test_bot_methods_round_trip(api: FakeBotApi, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "sada_test_bot", True)
    sent = await bot.send_message(1001, "<b>Q1</b> of 3", parse_mode="HTML", reply_markup=NPS)
    assert sent.text == "Q1 of 3" and sent.entities and sent.entities[0].type == "bold"
    assert sent.reply_markup is not None
    assert sent.reply_markup.model_dump() == NPS.model_dump()
    assert api.sent(1001)[0]["reply_markup"] == NPS.model_dump(exclude_none=True)
    call = api.calls("sendMessage")[0]
    assert call.encoding == "form" and call.params["reply_markup"]["inline_keyboard"]

    edited = await bot.edit_message_text("Q1 ✓", chat_id=1001, message_id=sent.message_id)
    assert isinstance(edited, Message) and edited.text == "Q1 ✓" and edited.reply_markup is None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Q1 ✓", chat_id=1001, message_id=sent.message_id)

    press = await api.user(1001).press(sent.model_dump(by_alias=True, exclude_none=True),
                                       "nps:10")
    assert await bot.answer_callback_query(press["callback_query"]["id"], text="Thanks")
    assert api.callback_answers()[0]["text"] == "Thanks"


async def test_errors_surface_as_aiogram_exceptions(api: FakeBotApi, bot: Bot) -> None:
    api.fail_next("sendMessage", retry_after=3)
    with pytest.raises(TelegramRetryAfter) as flood:
        await bot.send_message(1, "x")
    assert flood.value.retry_after == 3

    api.block(2)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(2, "x")

    too_long = InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text="x", callback_data="answer:" + "ب" * 30)]  # 67 bytes
    ])
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(1, "x", reply_markup=too_long)

    api.lose_response_next("sendMessage")
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(1, "delivered anyway")
    assert api.texts(1) == ["delivered anyway"]
    assert api.rejected_429 == 0  # injected failures are not rate-limit rejections


async def test_rate_limit_rejects_the_excess_with_retry_after(api: FakeBotApi, bot: Bot) -> None:
    api.rate_limit(4)
    results = await asyncio.gather(
        *(bot.send_message(7, f"m{i}") for i in range(6)), return_exceptions=True
    )
    floods = [r for r in results if isinstance(r, TelegramRetryAfter)]
    assert len(floods) == 2 and {f.retry_after for f in floods} == {1}
    assert api.rejected_429 == 2 and len(api.sent(7)) == 4


async def test_dispatcher_polling_gets_messages_and_presses(api: FakeBotApi, bot: Bot) -> None:
    seen: list[str] = []
    sara = api.user(1001)
    await sara.send("/start")  # queued before polling starts: fetched on the first poll
    async with polling(survey_dispatcher(seen), bot, api):
        [question] = await api.wait_sent(1001, 1)
        assert question["reply_markup"] == NPS.model_dump(exclude_none=True)
        await sara.press(question, "nps:10")
        await api.wait_for(lambda: api.edits(1001))
    assert seen == ["start:1", "press:nps:10"]
    assert api.edits(1001)[0]["text"] == "You chose nps:10"
    assert api.callback_answers()[0]["text"] == "Thanks!"
    # aiogram asks only for the update types it has handlers for ...
    assert sorted(api.calls("getUpdates")[0].params["allowed_updates"]) == [
        "callback_query", "message"
    ]
    # ... and its next poll confirmed what it took, so a restart would not see them again
    assert api.pending_updates == []


async def test_a_redelivered_update_is_handled_twice(api: FakeBotApi, bot: Bot) -> None:
    seen: list[str] = []
    user = api.user(1002, language_code=None)
    async with polling(survey_dispatcher(seen), bot, api):
        update = await user.send("hello")
        await api.wait_sent(1002, 1)
        api.redeliver(update)
        await api.wait_sent(1002, 2)
    assert seen == ["text:1", "text:1"]  # aiogram does not de-duplicate by update_id
    assert api.texts(1002) == ["echo hello", "echo hello"]


async def test_polling_confirms_an_update_before_its_handler_finishes(
    api: FakeBotApi, bot: Bot
) -> None:
    release = asyncio.Event()
    dp = Dispatcher()

    @dp.message()
    async def slow(message: Message) -> None:
        await release.wait()
        await message.answer("done")

    async with polling(dp, bot, api):
        update = await api.user(5).send("x")
        await api.wait_for(lambda: api.updates_confirmed > update["update_id"])
        assert api.sent(5) == []  # confirmed while the handler still runs: a crash loses it
        release.set()
        await api.wait_sent(5, 1)


async def test_webhook_with_secret_token(api: FakeBotApi, bot: Bot) -> None:
    seen: list[str] = []
    dp = survey_dispatcher(seen)
    app = web.Application()
    SimpleRequestHandler(dp, bot, secret_token="s3cret", handle_in_background=False).register(
        app, path="/tg"
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/tg"
        await bot.set_webhook(url, secret_token="s3cret")
        update = await api.user(1003).send("/start")
        assert await api.post_update_to_webhook(update, url, secret_token="wrong") == 401
        assert seen == []
        assert await api.post_update_to_webhook(update) == 200  # the stored URL and secret
        assert seen == ["start:1"] and api.texts(1003) == ["How likely are you to recommend us?"]
        assert (await bot.get_webhook_info()).pending_update_count == 0
        with pytest.raises(Exception, match="webhook is active"):
            await bot.get_updates()
    finally:
        await runner.cleanup()
    assert Update.model_validate(update).message is not None
