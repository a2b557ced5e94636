"""The fake Bale server: its own token and address beside a fake Telegram, and each quirk
switch doing what it says (the runner's tests lean on them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakebot import FakeBotApi
from tests.fakebot.bale import BALE_TOKEN, FakeBaleApi

JSON = dict[str, Any]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(http: aiohttp.ClientSession, api: FakeBotApi, method: str,
               params: JSON | None = None, token: str | None = None) -> tuple[int, JSON]:
    url = f"{api.base_url}/bot{token or api.token}/{method}"
    async with http.post(url, json=params or {}) as response:
        return response.status, await response.json()


async def test_bale_and_telegram_are_two_servers_with_their_own_tokens(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeBotApi() as telegram, FakeBaleApi() as bale:
        assert bale.base_url != telegram.base_url
        assert (await call(http, bale, "getMe"))[1]["result"]["username"] == "sada_bale_bot"
        # Telegram's token is no Bale token
        status, body = await call(http, bale, "getMe", token=telegram.token)
        assert (status, body["description"]) == (401, "Unauthorized")
        assert bale.token == BALE_TOKEN


async def test_pending_updates_survive_delete_webhook_when_asked(
    http: aiohttp.ClientSession,
) -> None:
    for survive, left in ((True, 1), (False, 0)):
        async with FakeBaleApi(pending_survive_delete=survive) as bale:
            await bale.user(7).send("hi")
            await call(http, bale, "deleteWebhook", {"drop_pending_updates": True})
            status, body = await call(http, bale, "getUpdates", {"timeout": 0})
            assert (status, len(body["result"])) == (200, left)


async def test_an_unsupported_method_answers_as_bale_does(http: aiohttp.ClientSession) -> None:
    async with FakeBaleApi(unsupported={"editMessageReplyMarkup"}) as bale:
        status, body = await call(http, bale, "editMessageReplyMarkup",
                                  {"chat_id": 7, "message_id": 1})
        assert (status, body) == (404, {"ok": False, "error_code": 404,
                                        "description": "Not Found: method not found"})
        assert (await call(http, bale, "getMe"))[0] == 200  # the rest works
    async with FakeBaleApi(unsupported={"answerCallbackQuery"}, unsupported_code=400) as bale:
        status, _ = await call(http, bale, "answerCallbackQuery", {"callback_query_id": "1"})
        assert status == 400


async def test_a_press_notice_can_be_refused_while_a_bare_answer_works(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeBaleApi(press_notice=False) as bale:
        sara = bale.user(7)
        await sara.send("/start")
        status, sent = await call(http, bale, "sendMessage", {
            "chat_id": 7, "text": "?",
            "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}})
        update = await sara.press(sent["result"], "a")
        query = update["callback_query"]["id"]
        status, _ = await call(http, bale, "answerCallbackQuery",
                               {"callback_query_id": query, "text": "noted"})
        assert status == 400
        status, _ = await call(http, bale, "answerCallbackQuery", {"callback_query_id": query})
        assert status == 200


async def test_minimal_get_me_and_odd_and_broken_updates(http: aiohttp.ClientSession) -> None:
    async with FakeBaleApi(minimal_me=True) as bale:
        me = (await call(http, bale, "getMe"))[1]["result"]
        assert set(me) == {"id", "is_bot", "first_name", "username"}
        sara = bale.user(7)
        odd = bale.odd_update(sara, "salam")
        broken = bale.broken_update(sara)
        updates = (await call(http, bale, "getUpdates", {"timeout": 0}))[1]["result"]
        assert [u["update_id"] for u in updates] == [odd["update_id"], broken["update_id"]]
        assert updates[0]["bale_meta"] == "v2" and updates[0]["message"]["text"] == "salam"
        assert "chat" not in updates[1]["message"] and "date" not in updates[1]["message"]
