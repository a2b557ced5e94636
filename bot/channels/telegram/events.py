"""Telegram, framework-neutral: what arrives (events), what leaves (outs), and the
transport each framework implements. aiogram and python-telegram-bot only translate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class TgUser:
    id: int
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None


@dataclass(frozen=True)
class TgText:
    """A text message in a private chat (commands included)."""

    update_id: int
    chat_id: int
    user: TgUser
    text: str


@dataclass(frozen=True)
class TgPress:
    """An inline button pressed."""

    update_id: int
    chat_id: int
    user: TgUser
    callback_id: str
    message_id: int | None
    data: str


TgEvent = TgText | TgPress


@dataclass(frozen=True)
class Button:
    text: str
    data: str


Keyboard = tuple[tuple[Button, ...], ...]


@dataclass(frozen=True)
class SendText:
    chat_id: int
    text: str
    keyboard: Keyboard | None = None
    # set when this message shows a question: once sent, the session records it as shown
    session_id: int | None = None
    question_id: str | None = None


@dataclass(frozen=True)
class EditMessage:
    chat_id: int
    message_id: int
    text: str | None = None  # None: change only the keyboard
    keyboard: Keyboard | None = None


@dataclass(frozen=True)
class AnswerPress:
    callback_id: str
    text: str | None = None


@dataclass(frozen=True)
class SendDocument:
    chat_id: int
    filename: str
    content: bytes
    caption: str | None = None


@dataclass(frozen=True)
class SendPhoto:
    chat_id: int
    filename: str
    content: bytes  # PNG
    caption: str | None = None


Out = SendText | EditMessage | AnswerPress | SendDocument | SendPhoto


class Blocked(Exception):
    """403: the person blocked the bot or deleted their account."""


class RetryAfter(Exception):
    """429: Telegram asks us to wait."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds}s")
        self.seconds = seconds


class Transient(Exception):
    """A network error or a 5xx: worth retrying with backoff."""


class Refused(Exception):
    """A 400 that retrying will not fix (message not modified, not found …)."""


class Transport(Protocol):
    """What a framework must provide: five calls, raising the four errors above."""

    async def send_text(self, chat_id: int, text: str, keyboard: Keyboard | None) -> int: ...

    async def edit(
        self, chat_id: int, message_id: int, text: str | None, keyboard: Keyboard | None
    ) -> None: ...

    async def answer_press(self, callback_id: str, text: str | None) -> None: ...

    async def send_document(
        self, chat_id: int, filename: str, content: bytes, caption: str | None
    ) -> None: ...

    async def send_photo(
        self, chat_id: int, filename: str, content: bytes, caption: str | None
    ) -> None: ...
