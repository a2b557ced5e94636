"""LeanSession writes the forms aiogram writes and reads replies as aiogram reads them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import ClientDecodeError, TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    EditMessageText,
    GetUpdates,
    SendDocument,
    SendMessage,
    TelegramMethod,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
)

from bot.channels.telegram.aiogram_session import LeanSession, SentMessage

KEYBOARD = InlineKeyboardMarkup(inline_keyboard=[
    [InlineKeyboardButton(text=str(n), callback_data=f"sada:a:{n}:0:7:sig") for n in range(6)],
    [InlineKeyboardButton(text="۹", callback_data="sada:a:9:0:7:sig"),
     InlineKeyboardButton(text="منو ☰", callback_data="sada:m")],
])
CHOSEN = InlineKeyboardMarkup(inline_keyboard=[
    [InlineKeyboardButton(text="✓ ۹", callback_data="sada:noop")]])

# What Sada's transport and runner send, as aiogram's Bot methods build them.
METHODS: list[TelegramMethod[Any]] = [
    SendMessage(chat_id=7301, text="How likely are you to recommend us?", parse_mode=None,
                reply_markup=KEYBOARD),
    SendMessage(chat_id=7301, text="متشکریم! «پاسخ شما» ثبت شد.", parse_mode=None),
    SendMessage(chat_id=-1001234567890, text="0", parse_mode=None),
    EditMessageText(text="What did we do well?", chat_id=7301, message_id=12, parse_mode=None,
                    reply_markup=KEYBOARD),
    EditMessageText(text="No keyboard", chat_id=7301, message_id=12, parse_mode=None),
    EditMessageReplyMarkup(chat_id=7301, message_id=12, reply_markup=CHOSEN),
    EditMessageReplyMarkup(chat_id=7301, message_id=12),
    AnswerCallbackQuery(callback_query_id="4382bfdwdsb323b2d9"),
    AnswerCallbackQuery(callback_query_id="4382bfdwdsb323b2d9", text="That question was "
                        "already answered.", show_alert=False),
    AnswerCallbackQuery(callback_query_id="1", text="", show_alert=True, cache_time=0),
    GetUpdates(offset=913, timeout=25, allowed_updates=["message", "callback_query"]),
    GetUpdates(offset=0, limit=100),
]


def _fields(form: Any) -> dict[str, Any]:
    """A form's fields, JSON values decoded (their spacing and escapes are the writer's)."""
    fields: dict[str, Any] = {}
    for options, _headers, value in form._fields:
        if isinstance(value, str) and value[:1] in "[{":
            value = json.loads(value)
        fields[options["name"]] = value
    return fields


@pytest.mark.parametrize("default", [
    DefaultBotProperties(),
    # a host bot's defaults: resolved as aiogram resolves them, or left to aiogram
    DefaultBotProperties(parse_mode="HTML", protect_content=True, disable_notification=True),
    DefaultBotProperties(link_preview=LinkPreviewOptions(is_disabled=True)),
], ids=["no-defaults", "scalar-defaults", "object-default"])
@pytest.mark.parametrize("method", METHODS, ids=lambda m: type(m).__name__)
def test_the_form_is_aiograms(method: TelegramMethod[Any], default: DefaultBotProperties
                              ) -> None:
    bot = Bot("42:TOKEN", default=default)
    lean = LeanSession().build_form_data(bot, method)
    theirs = AiohttpSession().build_form_data(bot, method)
    assert _fields(lean) == _fields(theirs)
    assert not lean._is_multipart and not theirs._is_multipart


def test_a_file_is_left_to_aiogram() -> None:
    bot = Bot("42:TOKEN")
    method = SendDocument(chat_id=7, document=BufferedInputFile(b"{}", "sada-my-data.json"),
                          caption="Everything we store about you.", parse_mode=None)
    lean = LeanSession().build_form_data(bot, method)
    assert lean._is_multipart  # aiogram's own build: the file goes as an upload
    assert _fields(lean)["document"].startswith("attach://")


MESSAGE = json.dumps({"ok": True, "result": {
    "message_id": 55, "date": 1764547200, "text": "How likely are you to recommend us?",
    "chat": {"id": 7301, "type": "private", "first_name": "Sara"},
    "from": {"id": 42, "is_bot": True, "first_name": "Sada", "username": "sada_bot"},
    "reply_markup": json.loads(KEYBOARD.model_dump_json(exclude_none=True))}})


@pytest.mark.parametrize("method", [METHODS[0], METHODS[3], METHODS[5]],
                         ids=lambda m: type(m).__name__)
def test_a_sent_or_edited_message_is_read_as_its_id(method: TelegramMethod[Any]) -> None:
    bot = Bot("42:TOKEN")
    lean = LeanSession().check_response(bot, method, 200, MESSAGE)
    theirs = AiohttpSession().check_response(bot, method, 200, MESSAGE)
    assert isinstance(theirs.result, Message)
    assert lean.result == SentMessage(message_id=theirs.result.message_id)
    assert lean.ok and lean.result.message_id == 55


@pytest.mark.parametrize(("method", "content"), [
    (METHODS[5], '{"ok":true,"result":true}'),  # an inline-mode message's edit
    (METHODS[7], '{"ok":true,"result":true}'),
    (METHODS[10], '{"ok":true,"result":[]}'),
    (METHODS[10], json.dumps({"ok": True, "result": [{"update_id": 9, "message": json.loads(
        MESSAGE)["result"]}]})),
], ids=["edited-inline", "answered", "no-updates", "an-update"])
def test_other_replies_read_as_aiogram_reads_them(method: TelegramMethod[Any], content: str
                                                  ) -> None:
    bot = Bot("42:TOKEN")
    lean = LeanSession().check_response(bot, method, 200, content)
    theirs = AiohttpSession().check_response(bot, method, 200, content)
    assert lean == theirs


@pytest.mark.parametrize(("status", "content", "error"), [
    (429, '{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3",'
          '"parameters":{"retry_after":3}}', TelegramRetryAfter),
    (400, '{"ok":false,"error_code":400,"description":"Bad Request: message is not modified"}',
     TelegramBadRequest),
    (200, "<html>502 Bad Gateway</html>", ClientDecodeError),
    (200, '{"ok":true,"result":{"message_id":"x"}}', ClientDecodeError),
], ids=["429", "400", "not-json", "wrong-shape"])
def test_a_failure_raises_what_aiogram_raises(status: int, content: str,
                                              error: type[Exception]) -> None:
    bot = Bot("42:TOKEN")
    with pytest.raises(error) as lean:
        LeanSession().check_response(bot, METHODS[0], status, content)
    with pytest.raises(error) as theirs:
        AiohttpSession().check_response(bot, METHODS[0], status, content)
    assert str(lean.value) == str(theirs.value)
