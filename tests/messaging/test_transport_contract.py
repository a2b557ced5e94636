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
not change what it sends (HTML_HOSTS). Every entry, on the Bot API or not (WhatsApp's Cloud
API), also runs the channel-neutral tests at the end against its channel's fake through a
Driver (DRIVERS, by the entry's prefix).
"""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, cast

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from telegram.ext import ApplicationBuilder, Defaults

from bot.channels.telegram import aiogram_shell, ptb_shell
from bot.channels.whatsapp.transport import (
    THROUGHPUT_WAIT,
    GraphClient,
    WhatsAppTransport,
    message_number,
)
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
from tests.fakegraph import FakeGraphApi
from tests.web.contract import web_driver, web_transport

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


@asynccontextmanager
async def whatsapp_transport(api: FakeGraphApi, base_url: str) -> AsyncIterator[Transport]:
    async with GraphClient(api.phone_number_id, api.access_token, api_url=base_url,
                           api_version=api.version) as client:
        yield WhatsAppTransport(client)


Factory = Callable[[FakeBotApi, str], AbstractAsyncContextManager[Transport]]
# An entry's factory takes its channel's fake server (a FakeBotApi, a FakeGraphApi …).
AnyFactory = Callable[[Any, str], AbstractAsyncContextManager[Transport]]
TRANSPORTS: dict[str, AnyFactory] = {
    "telegram-aiogram": aiogram_transport,
    "telegram-ptb": ptb_transport,
    "bale-aiogram": functools.partial(aiogram_transport, channel="bale"),
    "bale-ptb": functools.partial(ptb_transport, channel="bale"),
    "whatsapp": whatsapp_transport,
    "web": web_transport,
}
# Each Bot API channel's fake server, by the prefix of a TRANSPORTS entry: the tests in the
# Bot API's terms run on these entries (every entry runs the channel-neutral ones below).
SERVERS: dict[str, type[FakeBotApi]] = {"telegram": FakeBotApi, "bale": FakeBaleApi}
BOT_API = [entry for entry in TRANSPORTS if entry.partition("-")[0] in SERVERS]


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


@pytest.fixture(params=BOT_API)
def connect(request: pytest.FixtureRequest) -> Factory:
    return cast(Factory, TRANSPORTS[request.param])


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


# --- the contract in every channel's terms ----------------------------------------------
# The tests above speak the Bot API (its markup, edits and parse modes) and run on the Bot
# API transports; those below run on every entry of TRANSPORTS, each against its channel's
# fake through a Driver: how a person becomes reachable there, what the fake recorded, and
# how each kind of failure is injected.


class Driver(Protocol):
    api: Any  # the fake server a TRANSPORTS entry connects to
    wait: float  # the seconds the injected "wait" asks for

    def person(self, n: int) -> str:
        """An address that can receive messages now."""

    def sent(self, address: str) -> list[tuple[str, list[str]]]:
        """Messages to `address`: their text and the data of their buttons."""

    def text_of(self, address: str, message_id: int) -> str | None:
        """The text a message shows now (after edits)."""

    async def press(self, address: str, data: str) -> str:
        """The person presses the button carrying `data` on the last message: its
        callback id."""

    def uploads(self) -> list[tuple[str, str, bytes]]:
        """Files sent: (address, filename, content)."""

    def fail_next(self, kind: str, address: str) -> None:
        """The next send fails: "wait", "refuse", "server", "lose" or "block"."""


class BotApiDriver:
    def __init__(self, api: FakeBotApi) -> None:
        self.api = api
        self.wait = 3.0

    def person(self, n: int) -> str:
        return str(self.api.user(1000 + n).id)

    def sent(self, address: str) -> list[tuple[str, list[str]]]:
        return [(m["text"], [b["callback_data"] for row in
                             m.get("reply_markup", {}).get("inline_keyboard", []) for b in row])
                for m in self.api.sent(int(address))]

    def text_of(self, address: str, message_id: int) -> str | None:
        message = self.api.message(int(address), message_id)
        return None if message is None else str(message["text"])

    async def press(self, address: str, data: str) -> str:
        pressed = await self.api.user(int(address)).press(self.api.sent(int(address))[-1], data)
        return str(pressed["callback_query"]["id"])

    def uploads(self) -> list[tuple[str, str, bytes]]:
        return [(str(chat), f.filename, f.data) for chat, f in
                self.api.documents + self.api.photos]

    def fail_next(self, kind: str, address: str) -> None:
        if kind == "wait":
            self.api.fail_next("sendMessage", 429, retry_after=int(self.wait))
        elif kind == "refuse":
            self.api.fail_next("sendMessage", 400, "Bad Request: chat not found")
        elif kind == "server":
            self.api.fail_next("sendMessage", 502)
        elif kind == "lose":
            self.api.lose_response_next("sendMessage")
        else:
            self.api.block(int(address))


class GraphDriver:
    def __init__(self, api: FakeGraphApi) -> None:
        self.api = api
        self.wait = THROUGHPUT_WAIT

    def person(self, n: int) -> str:
        number = f"9715{n:08d}"
        self.api.wrote(number)  # within the 24-hour window
        return number

    def sent(self, address: str) -> list[tuple[str, list[str]]]:
        shown = []
        for m, text in zip(self.api.sent(address), self.api.texts(address), strict=True):
            action = m.get("interactive", {}).get("action", {})
            datas = [b["reply"]["id"] for b in action.get("buttons", [])]
            datas += [r["id"] for s in action.get("sections", []) for r in s["rows"]]
            shown.append((text, datas))
        return shown

    def text_of(self, address: str, message_id: int) -> str | None:
        return next((t for m, t in zip(self.api.sent(address), self.api.texts(address),
                                       strict=True) if message_number(m["id"]) == message_id),
                    None)

    async def press(self, address: str, data: str) -> str:
        body = await self.api.user(address).press(self.api.sent(address)[-1], data)
        return str(body["entry"][0]["changes"][0]["value"]["messages"][0]["id"])

    def uploads(self) -> list[tuple[str, str, bytes]]:
        found = []
        for m in self.api.sent():
            media = m.get("document") or m.get("image")
            if media is not None:
                filename, _, content = self.api.media[media["id"]]
                found.append((m["to"], filename, content))
        return found

    def fail_next(self, kind: str, address: str) -> None:
        if kind == "wait":
            self.api.fail_next(130429)
        elif kind == "refuse":
            self.api.fail_next(131009)
        elif kind == "server":
            self.api.fail_next(500)
        elif kind == "lose":
            self.api.lose_response_next()
        else:
            self.api.block(address)


@asynccontextmanager
async def bot_api_driver(channel: str) -> AsyncIterator[Driver]:
    async with SERVERS[channel](seed=3) as fake:
        yield BotApiDriver(fake)


@asynccontextmanager
async def graph_driver(channel: str) -> AsyncIterator[Driver]:
    async with FakeGraphApi() as fake:
        yield GraphDriver(fake)


# Each channel's fake and its driver, by the prefix of a TRANSPORTS entry.
DRIVERS: dict[str, Callable[[str], AbstractAsyncContextManager[Driver]]] = {
    "telegram": bot_api_driver, "bale": bot_api_driver, "whatsapp": graph_driver,
    "web": web_driver,  # its "server" is the database the browser reads (tests/web/contract.py)
}


@pytest.fixture(params=list(TRANSPORTS))
async def channel_transport(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Driver, AnyFactory]]:
    channel = str(request.param).partition("-")[0]
    factory = TRANSPORTS[request.param]
    async with DRIVERS[channel](channel) as driver:
        yield driver, factory


async def test_every_channel_sends_with_and_without_buttons(
    channel_transport: tuple[Driver, AnyFactory],
) -> None:
    driver, connect = channel_transport
    address = driver.person(4)
    async with connect(driver.api, driver.api.base_url) as transport:
        assert transport.channel in CHANNELS
        asked = await transport.send_text(address, "Rate us <b>0-10</b> & *why*", KEYBOARD)
        plain = await transport.send_text(address, "no keyboard", None)
        assert isinstance(asked, int) and isinstance(plain, int) and asked != plain
        assert driver.sent(address) == [("Rate us <b>0-10</b> & *why*", ["s1:yes", "s1:no"]),
                                        ("no keyboard", [])]
        if CHANNELS.get(transport.channel).capabilities.editable:
            await transport.edit(address, asked, "Thanks <3", None)
            assert driver.text_of(address, asked) == "Thanks <3"
        else:
            with pytest.raises(Refused):
                await transport.edit(address, asked, "Thanks <3", None)
            assert driver.text_of(address, asked) == "Rate us <b>0-10</b> & *why*"
        await transport.send_text(address, "Again?", KEYBOARD)
        await transport.answer_press(await driver.press(address, "s1:no"), None)


async def test_every_channel_uploads_a_document_and_a_photo(
    channel_transport: tuple[Driver, AnyFactory],
) -> None:
    driver, connect = channel_transport
    address = driver.person(4)
    async with connect(driver.api, driver.api.base_url) as transport:
        await transport.send_document(address, "sada-my-data.json", b'{"a": 1}', "Yours")
        await transport.send_photo(address, "trend.png", PNG, None)
    assert driver.uploads() == [(address, "sada-my-data.json", b'{"a": 1}'),
                                (address, "trend.png", PNG)]


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
@pytest.mark.parametrize(("kind", "error"), [
    ("wait", RetryAfter), ("refuse", Refused), ("server", Transient), ("lose", Transient),
    ("block", Blocked),
])
async def test_every_channel_maps_each_failure(
    channel_transport: tuple[Driver, AnyFactory], kind: str, error: type[Exception],
) -> None:
    driver, connect = channel_transport
    address = driver.person(5)
    async with connect(driver.api, driver.api.base_url) as transport:
        driver.fail_next(kind, address)
        with pytest.raises(error) as raised:
            await transport.send_text(address, "x", None)
        if isinstance(raised.value, RetryAfter):
            assert raised.value.seconds == driver.wait
    async with connect(driver.api, f"http://127.0.0.1:{closed_port()}") as nowhere:
        with pytest.raises(Transient):
            await nowhere.send_text(address, "x", None)
