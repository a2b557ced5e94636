"""The fake Bot API's protocol, spoken over raw HTTP: encodings, errors, updates, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakebot import FakeBotApi

JSON = dict[str, Any]
KEYBOARD = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(seed=7) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Client:
    """Raw requests, in each encoding a Bot API client may use."""

    def __init__(self, api: FakeBotApi, session: aiohttp.ClientSession) -> None:
        self.api = api
        self.session = session

    async def __call__(
        self, method: str, params: JSON | None = None, *, how: str = "json",
        token: str | None = None,
    ) -> tuple[int, JSON]:
        url = f"{self.api.base_url}/bot{token or self.api.token}/{method}"
        kwargs: dict[str, Any] = {}
        fields = {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in (params or {}).items()
        }
        if how == "json":
            kwargs["json"] = params
        elif how in ("form", "multipart"):
            if how == "form":
                kwargs["data"] = fields
            else:
                form = aiohttp.FormData()
                for key, value in fields.items():
                    form.add_field(key, value)
                form.add_field("doc", b"bytes", filename="a.txt", content_type="text/plain")
                kwargs["data"] = form
        elif how == "query":
            kwargs["params"] = fields
        async with self.session.post(url, **kwargs) as response:
            return response.status, await response.json()

    async def ok(self, method: str, params: JSON | None = None, **kwargs: Any) -> Any:
        status, body = await self(method, params, **kwargs)
        assert status == 200 and body["ok"] is True, body
        return body["result"]

    async def error(self, method: str, params: JSON | None = None, **kwargs: Any) -> JSON:
        status, body = await self(method, params, **kwargs)
        assert body["ok"] is False and body["error_code"] == status, body
        return body


@pytest.fixture
def client(api: FakeBotApi, http: aiohttp.ClientSession) -> Client:
    return Client(api, http)


# --- requests and answers -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["json", "form", "multipart", "query"])
async def test_every_encoding_decodes_to_the_same_parameters(
    api: FakeBotApi, client: Client, how: str
) -> None:
    message = await client.ok(
        "sendMessage", {"chat_id": 42, "text": "007", "reply_markup": KEYBOARD}, how=how
    )
    call = api.calls("sendMessage")[0]
    assert call.encoding == how
    assert call.params["chat_id"] == 42 and call.params["text"] == "007"  # text stays a string
    assert call.params["reply_markup"] == KEYBOARD  # JSON inside a form field, decoded
    assert message["reply_markup"] == KEYBOARD and message["text"] == "007"


async def test_empty_body_method_names_any_case_and_a_realistic_me(
    api: FakeBotApi, client: Client
) -> None:
    me = await client.ok("GETME", how="none")
    assert me["id"] == 123456 and me["is_bot"] is True and me["username"] == "sada_test_bot"
    assert api.requests[0].method == "getMe" and api.requests[0].encoding == "empty"


async def test_wrong_token_unknown_method_and_unknown_path(
    api: FakeBotApi, client: Client, http: aiohttp.ClientSession
) -> None:
    assert await client.error("getMe", token="123456:wrong") == {
        "ok": False, "error_code": 401, "description": "Unauthorized"
    }
    assert (await client.error("sendPoll"))["description"] == "Not Found: method not found"
    async with http.get(f"{api.base_url}/nothing") as response:
        assert response.status == 404


async def test_sent_messages_number_per_chat_and_keep_their_keyboards(
    api: FakeBotApi, client: Client
) -> None:
    first = await client.ok("sendMessage", {"chat_id": 1, "text": "a", "reply_markup": KEYBOARD})
    await client.ok("sendMessage", {"chat_id": 2, "text": "b"})
    reply_kb = {"keyboard": [["Yes", "No"]], "one_time_keyboard": True}
    second = await client.ok("sendMessage", {"chat_id": 1, "text": "c", "reply_markup": reply_kb})
    assert (first["message_id"], second["message_id"]) == (1, 2)
    assert first["from"]["is_bot"] is True and first["chat"]["type"] == "private"
    assert "reply_markup" not in second  # Telegram echoes inline keyboards only ...
    assert [m["reply_markup"] for m in api.sent(1)] == [KEYBOARD, reply_kb]  # ... sent() keeps all
    assert api.texts() == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"text": ""}, "Bad Request: message text is empty"),
        ({"text": "  \n"}, "Bad Request: message text is empty"),
        ({"text": "x" * 4097}, "Bad Request: message is too long"),
        ({"text": "<b>bold</b>", "parse_mode": "HTML", "chat_id": "@nobody"},
         "Bad Request: chat not found"),
        ({"text": "Hi <Sara>", "parse_mode": "HTML"},
         'Bad Request: can\'t parse entities: Unsupported start tag "sara" at byte offset 3'),
        ({"text": "Dr. Ali", "parse_mode": "MarkdownV2"},
         "Bad Request: can't parse entities: Character '.' is reserved and must be escaped "
         "with the preceding '\\'"),
        ({"text": "x", "reply_markup": {"inline_keyboard": [[{"text": "t"}]]}},
         "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the "
         "inline keyboard"),
        ({"text": "x", "reply_markup": {"inline_keyboard": [[
            {"text": "t", "callback_data": "نظر" * 11}]]}},  # 66 bytes in UTF-8
         "Bad Request: BUTTON_DATA_INVALID"),
        ({"text": "x", "reply_markup": "{not json"},
         "Bad Request: can't parse reply keyboard markup JSON object"),
    ],
)
async def test_texts_and_keyboards_are_validated_like_telegram(
    client: Client, params: JSON, description: str
) -> None:
    body = await client.error("sendMessage", {"chat_id": 5, **params}, how="form")
    assert (body["error_code"], body["description"]) == (400, description)


async def test_limits_are_counted_in_characters_and_utf8_bytes(client: Client) -> None:
    persian_32 = "نظرسنجی" * 4 + "نظرس"  # 32 letters, 64 bytes: the most callback_data holds
    keyboard = {"inline_keyboard": [[{"text": "t", "callback_data": persian_32}]]}
    await client.ok("sendMessage", {"chat_id": 5, "text": "س" * 4096, "reply_markup": keyboard})


async def test_html_is_parsed_into_entities(client: Client) -> None:
    message = await client.ok(
        "sendMessage", {"chat_id": 5, "text": "<b>سلام</b> &lt;3", "parse_mode": "HTML"}
    )
    assert message["text"] == "سلام <3"
    assert message["entities"] == [{"type": "bold", "offset": 0, "length": 4}]


async def test_edits_follow_telegram_rules(api: FakeBotApi, client: Client) -> None:
    sent = await client.ok("sendMessage", {"chat_id": 9, "text": "Q1", "reply_markup": KEYBOARD})
    where = {"chat_id": 9, "message_id": sent["message_id"]}
    same = await client.error("editMessageText", {**where, "text": "Q1", "reply_markup": KEYBOARD})
    assert same["description"].startswith("Bad Request: message is not modified")
    edited = await client.ok("editMessageText", {**where, "text": "Q1 ✓"})
    assert edited["text"] == "Q1 ✓" and "reply_markup" not in edited  # no markup: keyboard gone
    assert edited["edit_date"] >= edited["date"]
    again = await client.ok("editMessageReplyMarkup", {**where, "reply_markup": KEYBOARD})
    assert again["reply_markup"] == KEYBOARD
    unchanged = await client.error("editMessageReplyMarkup", {**where, "reply_markup": KEYBOARD})
    assert unchanged["description"].startswith("Bad Request: message is not modified")
    missing = await client.error("editMessageText", {"chat_id": 9, "message_id": 99, "text": "x"})
    assert missing["description"] == "Bad Request: message to edit not found"
    assert [m["text"] for m in api.edits(9)] == ["Q1 ✓", "Q1 ✓"]
    assert api.message(9, sent["message_id"])["reply_markup"] == KEYBOARD  # type: ignore[index]
    assert await client.ok("deleteMessage", where) is True
    gone = await client.error("deleteMessage", where)
    assert gone["description"] == "Bad Request: message to delete not found"
    assert api.deleted() == [(9, sent["message_id"])]


async def test_users_messages_cannot_be_edited(api: FakeBotApi, client: Client) -> None:
    update = await api.user(3).send("hi")
    body = await client.error(
        "editMessageText", {"chat_id": 3, "message_id": update["message"]["message_id"],
                            "text": "x"}
    )
    assert body["description"] == "Bad Request: message can't be edited"


async def test_webhook_settings_and_commands(api: FakeBotApi, client: Client) -> None:
    await client.ok("setWebhook", {"url": "https://bot.example/hook", "secret_token": "s3cr-t"})
    assert (api.webhook_url, api.webhook_secret) == ("https://bot.example/hook", "s3cr-t")
    assert (await client.ok("getWebhookInfo"))["url"] == "https://bot.example/hook"
    conflict = await client.error("getUpdates")
    assert conflict["error_code"] == 409 and "webhook is active" in conflict["description"]
    await client.ok("deleteWebhook", how="form")
    assert await client.ok("getUpdates") == []

    commands = [{"command": "start", "description": "شروع"}]
    await client.ok("setMyCommands", {"commands": commands, "language_code": "fa"})
    assert await client.ok("getMyCommands", {"language_code": "fa"}) == commands
    assert await client.ok("getMyCommands") == []
    bad = await client.error("setMyCommands", {"commands": [{"command": "Start",
                                                             "description": "x"}]})
    assert bad["description"] == "Bad Request: BOT_COMMAND_INVALID"
    await client.ok("deleteMyCommands", {"language_code": "fa"})
    assert api.commands(language_code="fa") == []
    await client.ok("setChatMenuButton", {"menu_button": {"type": "commands"}})
    assert await client.ok("getChatMenuButton", {"chat_id": 1}) == {"type": "commands"}
    assert await client.ok("sendChatAction", {"chat_id": 1, "action": "typing"}) is True
    assert (await client.error("sendChatAction", {"chat_id": 1, "action": "dancing"}))[
        "description"] == "Bad Request: wrong parameter action in request"
    assert await client.ok("close") is True and await client.ok("logOut") is True


# --- updates --------------------------------------------------------------------------------


async def test_user_updates_look_like_telegram(api: FakeBotApi, client: Client) -> None:
    sara = api.user(1001, username="sara_k")
    update = await sara.send("/start@sada_test_bot inv-42")
    message = update["message"]
    assert message["entities"] == [{"offset": 0, "length": 20, "type": "bot_command"}]
    assert message["from"] == {"id": 1001, "is_bot": False, "first_name": "Sara",
                               "username": "sara_k", "language_code": "fa"}
    assert message["chat"]["type"] == "private" and message["chat"]["id"] == 1001
    assert "entities" not in (await sara.send("/ not a command"))["message"]

    sent = await client.ok("sendMessage", {"chat_id": 1001, "text": "Q", "reply_markup": KEYBOARD})
    assert sent["message_id"] == 3  # one counter per chat for both sides, as in private chats
    press = (await sara.press(sent, "yes"))["callback_query"]
    assert press["data"] == "yes" and press["message"]["message_id"] == 3
    assert press["from"]["id"] == 1001 and press["chat_instance"]
    with pytest.raises(AssertionError, match="forge"):
        await sara.press(sent, "no")
    forged = (await sara.forge("admin:drop", message_id=77))["callback_query"]
    assert forged["message"] == {"chat": sara.chat, "message_id": 77, "date": 0}  # inaccessible

    assert await client.ok("answerCallbackQuery", {"callback_query_id": press["id"],
                                                   "text": "Thanks"}) is True
    again = await client.error("answerCallbackQuery", {"callback_query_id": press["id"]})
    assert again["description"].startswith("Bad Request: query is too old")
    assert api.callback_answers() == [{"callback_query_id": press["id"], "text": "Thanks"}]


async def test_get_updates_offset_limit_and_confirmation(api: FakeBotApi, client: Client) -> None:
    user = api.user(5)
    first = await user.send("1")
    await user.send("2")
    third = await user.send("3")
    assert first["update_id"] + 2 == third["update_id"]
    batch = await client.ok("getUpdates", {"limit": 2})
    assert [u["message"]["text"] for u in batch] == ["1", "2"]
    again = await client.ok("getUpdates")  # nothing confirmed yet: everything again
    assert [u["message"]["text"] for u in again] == ["1", "2", "3"]
    rest = await client.ok("getUpdates", {"offset": batch[-1]["update_id"] + 1}, how="form")
    assert [u["message"]["text"] for u in rest] == ["3"]
    assert api.updates_confirmed == batch[-1]["update_id"] + 1
    assert await client.ok("getUpdates", {"offset": third["update_id"] + 1}) == []
    assert api.pending_updates == []


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    api: FakeBotApi, client: Client
) -> None:
    poll = asyncio.create_task(client.ok("getUpdates", {"timeout": 30}))
    await api.wait_for(lambda: api.calls("getUpdates"))
    update = await api.user(5).send("hello")
    async with asyncio.timeout(5):  # a liveness guard: the poll must not sit out its 30 s
        assert await poll == [update]


async def test_a_second_long_poll_terminates_the_first(api: FakeBotApi, client: Client) -> None:
    first = asyncio.create_task(client("getUpdates", {"timeout": 30}))
    await api.wait_for(lambda: api.calls("getUpdates"))
    assert await client.ok("getUpdates", {"timeout": 0}) == []
    async with asyncio.timeout(5):
        status, body = await first
    assert status == 409 and "terminated by other getUpdates" in body["description"]


async def test_allowed_updates_filters_and_is_remembered(api: FakeBotApi, client: Client) -> None:
    user = api.user(5)
    await user.send("hi")
    await user.block()  # my_chat_member
    batch = await client.ok("getUpdates", {"allowed_updates": ["my_chat_member"]}, how="form")
    assert [next(iter(u.keys() - {"update_id"})) for u in batch] == ["my_chat_member"]
    assert batch[0]["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    assert [u["message"]["text"] for u in api.filtered_updates] == ["hi"]
    await user.send("again")
    assert await client.ok("getUpdates", {"offset": batch[-1]["update_id"] + 1}) == []


async def test_redelivered_update_is_handed_out_again(api: FakeBotApi, client: Client) -> None:
    update = await api.user(5).send("once")
    [got] = await client.ok("getUpdates")
    assert await client.ok("getUpdates", {"offset": got["update_id"] + 1}) == []
    api.redeliver(update)
    assert await client.ok("getUpdates", {"offset": got["update_id"] + 1}) == [update]
    assert await client.ok("getUpdates", {"offset": got["update_id"] + 1}) == []
    assert api.deliveries == [update["update_id"]] * 2


# --- faults ---------------------------------------------------------------------------------


async def test_injected_failures_block_and_rate_limit(api: FakeBotApi, client: Client) -> None:
    api.fail_next("sendmessage", retry_after=3, times=2)
    for _ in range(2):
        assert await client.error("sendMessage", {"chat_id": 1, "text": "x"}) == {
            "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        }
    await client.ok("sendMessage", {"chat_id": 1, "text": "x"})

    api.block(2)
    blocked = await client.error("sendMessage", {"chat_id": 2, "text": "x"})
    assert (blocked["error_code"], blocked["description"]) == (403, "Forbidden: bot was blocked "
                                                                    "by the user")
    api.unblock(2)
    await client.ok("sendMessage", {"chat_id": 2, "text": "x"})

    api.rate_limit(3)
    results = await asyncio.gather(
        *(client("sendMessage", {"chat_id": 3, "text": str(i)}) for i in range(5))
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 200, 429, 429] and api.rejected_429 == 2
    rejected = [body for status, body in results if status == 429]
    assert all(body["parameters"] == {"retry_after": 1} for body in rejected)
    assert len(api.sent(3)) == 3


async def test_known_chats_only(client: Client) -> None:
    async with FakeBotApi(require_known_chats=True) as api:
        strict = Client(api, client.session)
        assert (await strict.error("sendMessage", {"chat_id": 8, "text": "x"}))[
            "description"] == "Bad Request: chat not found"
        user = api.user(8)
        assert (await strict.error("sendMessage", {"chat_id": 8, "text": "x"}))[
            "description"] == "Forbidden: bot can't initiate conversation with a user"
        await user.send("/start")
        await strict.ok("sendMessage", {"chat_id": 8, "text": "x"})


async def test_lost_response_still_takes_effect(api: FakeBotApi, client: Client) -> None:
    api.lose_response_next("sendMessage")
    with pytest.raises(aiohttp.ClientError):
        await client("sendMessage", {"chat_id": 1, "text": "maybe"})
    assert api.texts(1) == ["maybe"]
    await client.ok("sendMessage", {"chat_id": 1, "text": "surely"})


async def test_wait_for_times_out_with_the_story_so_far(api: FakeBotApi, client: Client) -> None:
    await client.ok("sendMessage", {"chat_id": 1, "text": "only one"})
    await api.user(2).send("unread")
    with pytest.raises(AssertionError) as failure:
        await api.wait_for(lambda: len(api.sent(1)) >= 2, timeout=0.2)
    report = str(failure.value)
    assert "len(api.sent(1)) >= 2" in report and "sendMessage(chat_id=1" in report
    assert "1 queued update(s) never fetched" in report
    assert await api.wait_for(lambda: api.sent(1)) == api.sent(1)  # returns the value
