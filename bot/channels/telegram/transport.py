"""The Transport on Telegram's Bot API, written once for every framework that speaks it.

aiogram and python-telegram-bot name the Bot API's methods and parameters alike, so the
calls a transport makes (send, edit the text or only the buttons, answer a press, upload a
file) are made here, on either framework's Bot (BotApi says what is used of it). A shell
subclasses BotApiTransport with the three things that differ: its inline keyboard classes,
its wrapper for an uploaded file, and how its exceptions map onto bot.messaging's errors.

parse_mode=None everywhere, so that a host bot's default parse mode (aiogram's
DefaultBotProperties, PTB's Defaults) cannot turn survey text into markup.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Any, Protocol

from bot.channels.telegram.channel import CHANNEL
from bot.messaging.transport import Keyboard, Refused

__all__ = ["BotApi", "BotApiTransport"]


class Sent(Protocol):
    @property
    def message_id(self) -> int: ...


class BotApi(Protocol):
    """The Bot methods a transport calls, as aiogram's Bot and PTB's both define them
    (markup and files are whatever the framework's `markup` and `upload` make)."""

    async def send_message(
        self, chat_id: int, text: str, *, parse_mode: None, reply_markup: Any
    ) -> Sent: ...

    async def edit_message_text(
        self, text: str, *, chat_id: int, message_id: int, parse_mode: None, reply_markup: Any
    ) -> object: ...

    async def edit_message_reply_markup(
        self, *, chat_id: int, message_id: int, reply_markup: Any
    ) -> object: ...

    async def answer_callback_query(
        self, callback_query_id: str, *, text: str | None
    ) -> object: ...

    async def send_document(
        self, chat_id: int, document: Any, *, caption: str | None, parse_mode: None
    ) -> object: ...

    async def send_photo(
        self, chat_id: int, photo: Any, *, caption: str | None, parse_mode: None
    ) -> object: ...


class BotApiTransport(ABC):
    """bot.messaging Transport on a Bot API framework's Bot; a shell supplies `errors`,
    `markup` and `upload`."""

    def __init__(self, bot: BotApi, channel: str = CHANNEL.name) -> None:
        """`channel`: the registered channel this Bot API speaks for (Telegram, or Bale,
        whose API is Telegram's at another address)."""
        self.bot = bot
        self.channel = channel

    @abstractmethod
    def errors(self) -> AbstractContextManager[None]:
        """Raises the framework's exceptions from inside as bot.messaging's errors."""

    @abstractmethod
    def markup(self, keyboard: Keyboard) -> object:
        """The keyboard as the framework's InlineKeyboardMarkup."""

    @abstractmethod
    def upload(self, filename: str, content: bytes) -> object:
        """The content as the framework's file to upload, named `filename`."""

    def _markup(self, keyboard: Keyboard | None) -> object | None:
        return None if keyboard is None else self.markup(keyboard)

    async def send_text(self, chat_id: str, text: str, keyboard: Keyboard | None) -> int:
        with self.errors():
            message = await self.bot.send_message(
                _chat(chat_id), text, parse_mode=None, reply_markup=self._markup(keyboard)
            )
        return message.message_id

    async def edit(
        self, chat_id: str, message_id: int, text: str | None, keyboard: Keyboard | None
    ) -> None:
        # An edit without reply_markup removes the inline keyboard, as keyboard=None asks.
        with self.errors():
            if text is None:
                await self.bot.edit_message_reply_markup(
                    chat_id=_chat(chat_id), message_id=message_id,
                    reply_markup=self._markup(keyboard),
                )
            else:
                await self.bot.edit_message_text(
                    text, chat_id=_chat(chat_id), message_id=message_id, parse_mode=None,
                    reply_markup=self._markup(keyboard),
                )

    async def answer_press(self, callback_id: str, text: str | None) -> None:
        try:
            with self.errors():
                await self.bot.answer_callback_query(callback_id, text=text)
        except Refused:
            if text is None:
                raise
            # A server may refuse the notice and not the answer (Bale is reported to differ
            # here): the press is still acknowledged, or the person's button keeps spinning.
            with self.errors():
                await self.bot.answer_callback_query(callback_id, text=None)

    async def send_document(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None:
        with self.errors():
            await self.bot.send_document(
                _chat(chat_id), self.upload(filename, content), caption=caption, parse_mode=None
            )

    async def send_photo(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None:
        with self.errors():
            await self.bot.send_photo(
                _chat(chat_id), self.upload(filename, content), caption=caption, parse_mode=None
            )


def _chat(address: str) -> int:
    """A Bot API chat id from Sada's address of the chat; anything else is no chat of this
    API's (an address of another channel), refused rather than sent to the wrong place."""
    try:
        return int(address)
    except ValueError:
        raise Refused(f"{address!r} is not a Bot API chat id") from None
