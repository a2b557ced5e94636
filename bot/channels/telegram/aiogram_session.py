"""aiogram's HTTP session with the two costs of every Bot API call cut: the request's form and
the reply's validation.

aiogram builds a request's form by dumping the method's model to a dict and walking it value
by value (``prepare_value``), and reads a reply with ``json.loads`` and then pydantic's
``model_validate`` on the Python objects. For a question with a keyboard that was about
0.2 ms and 0.14–0.22 ms of CPU, three times a survey step (bench/README.md, ninth round).
Here the plain fields of a method are read off the model as they are, a keyboard is written
by pydantic's JSON serializer, and a successful reply is validated straight from its JSON
text (pydantic-core parses and validates in one pass). A sent or edited message is read as
its id alone (SentMessage): that is all Sada's transport reads of it, and building aiogram's
Message, a model of a hundred fields, was most of a call's reading.

The form holds the same fields with the same values as aiogram's (tests/telegram/
test_aiogram_session.py compares them for every method Sada sends). Anything this does not
know how to write exactly as aiogram does (a file, a date, a nested object other than an
inline keyboard, a list of objects) is built by aiogram itself, as is every reply that is
not a success.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiogram.client.default import Default
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import EditMessageReplyMarkup, EditMessageText, SendMessage
from aiogram.methods.base import Response, TelegramMethod, TelegramType
from aiogram.types import InlineKeyboardMarkup
from aiohttp import FormData
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticSerializationError

if TYPE_CHECKING:
    from aiogram import Bot

__all__ = ["LeanSession", "SentMessage"]

_SCALARS = (bool, int, float)


class SentMessage(BaseModel):
    """A message Sada sent or edited, as the transport reads it: its id."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message_id: int


# What the calls Sada's transport makes return, read as their ids (an edit of an inline-mode
# message returns True instead: Sada sends none).
_READ_AS_ID: dict[type[TelegramMethod[Any]], object] = {
    SendMessage: SentMessage,
    EditMessageText: SentMessage | bool,
    EditMessageReplyMarkup: SentMessage | bool,
}
# Built at import, as aiogram_shell builds aiogram's models: a reply that booked its slot in
# the shared limits must not then wait for a build (7 ms for these two).
_BUILT: dict[object, type[Response[Any]]] = {
    returning: Response[returning]  # type: ignore[valid-type]
    for returning in (SentMessage, SentMessage | bool)}


class LeanSession(AiohttpSession):
    """AiohttpSession whose forms and successful replies cost less CPU (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._responses = dict(_BUILT)

    def build_form_data(self, bot: Bot, method: TelegramMethod[TelegramType]) -> FormData:
        fields = self._plain_fields(bot, method)
        if fields is None:
            return super().build_form_data(bot, method)
        return FormData(fields, quote_fields=False)

    def _plain_fields(
        self, bot: Bot, method: TelegramMethod[Any]
    ) -> list[tuple[str, str]] | None:
        """The form's fields as aiogram's build_form_data makes them, or None for a method
        with a value this does not write (aiogram's own build then runs)."""
        fields: list[tuple[str, str]] = []
        for key, value in method:
            if isinstance(value, Default):
                value = bot.default[value.name]
            if value is None:
                continue
            if isinstance(value, str):
                text = value
            elif isinstance(value, _SCALARS):
                text = self.json_dumps(value)
            elif isinstance(value, InlineKeyboardMarkup):
                try:
                    text = value.model_dump_json(exclude_none=True)
                except PydanticSerializationError:
                    return None  # a Default inside: aiogram resolves it
            elif isinstance(value, list) and all(
                    isinstance(item, str | int) for item in value):
                text = self.json_dumps(value)  # allowed_updates
            else:
                return None
            if text:  # aiogram leaves out what prepares to nothing ("")
                fields.append((key, text))
        return fields

    def check_response(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status_code: int,
        content: str,
    ) -> Response[TelegramType]:
        if HTTPStatus.OK <= status_code <= HTTPStatus.IM_USED and self.json_loads is json.loads:
            returning = _READ_AS_ID.get(type(method), method.__returning__)
            kind = self._responses.get(returning)
            if kind is None:
                kind = self._responses.setdefault(
                    returning, Response[returning])  # type: ignore[valid-type]
            try:
                response = kind.model_validate_json(content, context={"bot": bot})
            except ValidationError:
                pass  # aiogram's own reading raises what it raises (ClientDecodeError)
            else:
                if response.ok:
                    return response
        return super().check_response(bot, method, status_code, content)
