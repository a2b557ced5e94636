"""The Bot API transport against the fake Bale server's quirks, on both frameworks: what
Bale does not support arrives as the channel-neutral Refused (never a crash), and a press
whose notice Bale refuses is still acknowledged."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.messaging.transport import Button, Keyboard, Refused
from tests.fakebot.bale import FakeBaleApi
from tests.messaging.test_transport_contract import aiogram_transport, ptb_transport

KEYBOARD: Keyboard = ((Button("بله", "s1:yes"), Button("نه", "s1:no")),)
CONNECT = {"aiogram": aiogram_transport, "ptb": ptb_transport}


@pytest.fixture(params=list(CONNECT))
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def bale() -> AsyncIterator[FakeBaleApi]:
    async with FakeBaleApi(unsupported={"editMessageReplyMarkup"}, press_notice=False,
                           seed=5) as fake:
        yield fake


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_an_unsupported_method_is_refused(bale: FakeBaleApi, framework: str) -> None:
    bale.user(2001)
    async with CONNECT[framework](bale, bale.base_url, "bale") as transport:
        assert transport.channel == "bale"
        message_id = await transport.send_text("2001", "سؤال", KEYBOARD)
        with pytest.raises(Refused, match=r"(?i)not found"):
            await transport.edit("2001", message_id, None, None)  # editMessageReplyMarkup
        await transport.edit("2001", message_id, "تم", None)  # editMessageText works
        edited = bale.message(2001, message_id)
        assert edited is not None and edited["text"] == "تم"
    bale.unsupported, bale.unsupported_code = {"sendphoto"}, 400
    async with CONNECT[framework](bale, bale.base_url, "bale") as transport:
        with pytest.raises(Refused):
            await transport.send_photo("2001", "trend.png", b"\x89PNG", None)


async def test_a_refused_notice_still_acknowledges_the_press(
    bale: FakeBaleApi, framework: str
) -> None:
    salma = bale.user(2001)
    async with CONNECT[framework](bale, bale.base_url, "bale") as transport:
        await transport.send_text("2001", "سؤال", KEYBOARD)
        pressed = await salma.press(bale.sent(2001)[0], "s1:yes")
        await transport.answer_press(pressed["callback_query"]["id"], "ثبت شد")
        [answer] = bale.callback_answers()
        assert answer["callback_query_id"] == pressed["callback_query"]["id"]
        assert not answer.get("text")
        with pytest.raises(Refused):  # a stale press stays refused, notice or not
            await transport.answer_press("12345", "ثبت شد")
