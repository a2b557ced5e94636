"""The contract every Transport keeps (bot.messaging.transport), whatever its channel and
framework, run against that channel's fake server: a send returns the message's id, with
or without buttons; edits change text and buttons; a press is answered; files go as
uploads; and each failure arrives as the channel-neutral error the dispatcher and the core
act on (a wait → RetryAfter with its seconds, a block → Blocked, a refusal → Refused, a
server or network failure → Transient).

A new transport joins by adding an entry to TRANSPORTS: a context manager that yields it,
connected to the fake server it is given (SERVERS: each channel's, by the entry's prefix).
Both Telegram frameworks run one transport (bot.channels.telegram.transport.BotApiTransport),
for Telegram and for Bale, each against its own fake server; a host bot's own defaults must
not change what it sends (HTML_HOSTS).
"""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from telegram.ext import ApplicationBuilder, Defaults

from bot.channels.telegram import aiogram_shell, ptb_shell
from bot.messaging.registry import CHANNELS
from bot.messaging.transport import (
    Blocked,
    Button,
    Keyboard,
    Refused,
    RetryAfter,
    Transient,
    Transport,
)
from tests.fakebot import FakeBotApi
from tests.fakebot.bale import FakeBaleApi

KEYBOARD: Keyboard = ((Button("Yes <b>", "s1:yes"), Button("No", "s1:no")),)
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@asynccontextmanager
async def aiogram_transport(
    api: FakeBotApi, base_url: str, channel: str = "telegram"
) -> AsyncIterator[Transport]:
    bot = aiogram_shell.build_bot(api.token, base_url)
    try:
        yield aiogram_shell.AiogramTransport(bot, channel)
    finally:
        await bot.session.close()


@asynccontextmanager
async def ptb_transport(
    api: FakeBotApi, base_url: str, channel: str = "telegram"
) -> AsyncIterator[Transport]:
    app = ptb_shell.build_application(api.token, base_url)
    try:
        # Bot.initialize() calls getMe, which a closed port refuses: not needed to send
        await app.bot.request.initialize()
        yield ptb_shell.PtbTransport(app.bot, channel)
    finally:
        await app.bot.request.shutdown()


Factory = Callable[[FakeBotApi, str], AbstractAsyncContextManager[Transport]]
TRANSPORTS: dict[str, Factory] = {
    "telegram-aiogram": aiogram_transport,
    "telegram-ptb": ptb_transport,
    "bale-aiogram": functools.partial(aiogram_transport, channel="bale"),
    "bale-ptb": functools.partial(ptb_transport, channel="bale"),
}
# Each channel's fake server, by the prefix of a TRANSPORTS entry.
SERVERS: dict[str, type[FakeBotApi]] = {"telegram": FakeBotApi, "bale": FakeBaleApi}


@asynccontextmanager
async def aiogram_html_host(api: FakeBotApi, base_url: str) -> AsyncIterator[Transport]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url))
    bot = Bot(api.token, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    try:
        yield aiogram_shell.AiogramTransport(bot)
    finally:
        await bot.session.close()


@asynccontextmanager
async def ptb_html_host(api: FakeBotApi, base_url: str) -> AsyncIterator[Transport]:
    app = (ApplicationBuilder().token(api.token).base_url(base_url + "/bot")
           .defaults(Defaults(parse_mode="HTML")).job_queue(None).build())
    try:
        await app.bot.request.initialize()
        yield ptb_shell.PtbTransport(app.bot)
    finally:
        await app.bot.request.shutdown()


# Transports on a host bot that made HTML its default parse mode (README: "In a bot you
# already have"): survey texts are plain and may hold < & *, so no default may apply.
HTML_HOSTS: dict[str, Factory] = {
    "telegram-aiogram": aiogram_html_host,
    "telegram-ptb": ptb_html_host,
}


@pytest.fixture(params=list(TRANSPORTS))
def connect(request: pytest.FixtureRequest) -> Factory:
    return TRANSPORTS[request.param]


@pytest.fixture
async def api(request: pytest.FixtureRequest) -> AsyncIterator[FakeBotApi]:
    """The fake server of the channel the test's transport speaks for (Telegram's when the
    test takes no transport)."""
    callspec = getattr(request.node, "callspec", None)
    entry = callspec.params.get("connect", "telegram") if callspec is not None else "telegram"
    async with SERVERS[entry.partition("-")[0]](seed=3) as fake:
        yield fake


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_it_sends_on_a_registered_channel(api: FakeBotApi, connect: Factory) -> None:
    async with connect(api, api.base_url) as transport:
        assert transport.channel in CHANNELS
        assert type(api) is SERVERS[transport.channel]  # its own channel's server


async def test_it_sends_edits_and_answers_a_press(api: FakeBotApi, connect: Factory) -> None:
    sara = api.user(1004)
    async with connect(api, api.base_url) as transport:
        text = "Rate us <b>0-10</b> & tell *why*"  # plain text: no parse_mode, no entities
        message_id = await transport.send_text(1004, text, KEYBOARD)
        [sent] = api.sent(1004)
        assert sent["message_id"] == message_id and sent["text"] == text
        assert "entities" not in sent and "parse_mode" not in api.calls("sendMessage")[0].params
        assert sent["reply_markup"] == {"inline_keyboard": [[
            {"text": "Yes <b>", "callback_data": "s1:yes"},
            {"text": "No", "callback_data": "s1:no"},
        ]]}
        assert await transport.send_text(1004, "no keyboard", None) == message_id + 1
        assert "reply_markup" not in api.sent(1004)[1]

        await transport.edit(1004, message_id, "Thanks <3", None)  # text, keyboard removed
        edited = api.message(1004, message_id)
        assert edited is not None
        assert edited["text"] == "Thanks <3" and "reply_markup" not in edited

        chosen: Keyboard = ((Button("✓ 9", "s1:noop"),),)
        await transport.edit(1004, message_id, None, chosen)  # the keyboard only
        edited = api.message(1004, message_id)
        assert edited is not None and edited["text"] == "Thanks <3"
        assert edited["reply_markup"]["inline_keyboard"][0][0]["text"] == "✓ 9"
        await transport.edit(1004, message_id, None, None)
        edited = api.message(1004, message_id)
        assert edited is not None and "reply_markup" not in edited

        pressed = await sara.press(api.sent(1004)[0], "s1:no")
        await transport.answer_press(pressed["callback_query"]["id"], "Noted")
        assert api.callback_answers()[-1]["text"] == "Noted"


async def test_it_uploads_a_document_and_a_photo(api: FakeBotApi, connect: Factory) -> None:
    api.user(1004)
    async with connect(api, api.base_url) as transport:
        await transport.send_document(1004, "sada-my-data.json", b'{"a": 1}', "Yours")
        [upload] = api.calls("sendDocument")
        assert upload.ok and upload.encoding == "multipart"
        [(chat_id, document)] = api.documents
        assert chat_id == 1004
        assert (document.filename, document.data) == ("sada-my-data.json", b'{"a": 1}')
        assert upload.params["caption"] == "Yours"

        await transport.send_photo(1004, "trend.png", PNG, "The trend")
        [upload] = api.calls("sendPhoto")
        assert upload.ok and upload.encoding == "multipart"
        [(chat_id, photo)] = api.photos
        assert chat_id == 1004
        assert (photo.filename, photo.data) == ("trend.png", PNG)
        assert upload.params["caption"] == "The trend"


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_it_maps_each_failure_to_a_channel_neutral_error(
    api: FakeBotApi, connect: Factory
) -> None:
    api.user(1005)
    async with connect(api, api.base_url) as transport:
        api.fail_next("sendMessage", 429, retry_after=3)  # wait → RetryAfter, with seconds
        with pytest.raises(RetryAfter) as flood:
            await transport.send_text(1005, "x", None)
        assert flood.value.seconds == 3

        message_id = await transport.send_text(1005, "Q1", KEYBOARD)  # 400 → Refused
        with pytest.raises(Refused, match=r"(?i)message is not modified"):
            await transport.edit(1005, message_id, None, KEYBOARD)
        with pytest.raises(Refused, match=r"(?i)query is too old"):
            await transport.answer_press("12345", None)
        api.fail_next("sendPhoto", 400, "Bad Request: IMAGE_PROCESS_FAILED")
        with pytest.raises(Refused, match=r"(?i)image_process_failed"):
            await transport.send_photo(1005, "trend.png", PNG, None)

        api.fail_next("editMessageText", 502)  # 5xx → Transient
        with pytest.raises(Transient):
            await transport.edit(1005, message_id, "Q1 again", None)
        api.fail_next("sendDocument", 500)
        with pytest.raises(Transient):
            await transport.send_document(1005, "a.json", b"{}", None)
        api.lose_response_next("sendMessage")  # the connection drops → Transient
        with pytest.raises(Transient):
            await transport.send_text(1005, "sent, but the answer was lost", None)

        api.block(1005)  # 403 → Blocked
        with pytest.raises(Blocked):
            await transport.send_text(1005, "x", None)
        with pytest.raises(Blocked):
            await transport.edit(1005, message_id, "x", None)

    async with connect(api, f"http://127.0.0.1:{closed_port()}") as nowhere:  # no server
        with pytest.raises(Transient):
            await nowhere.send_text(1005, "x", None)


@pytest.mark.parametrize("host", list(HTML_HOSTS))
async def test_a_host_bots_default_parse_mode_does_not_apply(api: FakeBotApi, host: str) -> None:
    api.user(1006)
    async with HTML_HOSTS[host](api, api.base_url) as transport:
        message_id = await transport.send_text(1006, "<b>5</b> & up", KEYBOARD)
        await transport.edit(1006, message_id, "<i>done</i> & *", None)
        await transport.send_document(1006, "a.json", b"{}", "<b>yours</b> &")
        await transport.send_photo(1006, "trend.png", PNG, "<b>trend</b> &")
    methods = ("sendMessage", "editMessageText", "sendDocument", "sendPhoto")
    assert [[c.params.get("parse_mode") for c in api.calls(m)] for m in methods] == [[None]] * 4
    edited = api.message(1006, message_id)
    assert edited is not None and edited["text"] == "<i>done</i> & *"
    assert "entities" not in edited
