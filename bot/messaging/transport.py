"""How a message leaves, whatever the channel: the Transport protocol, the buttons it
carries and the errors it raises. A channel's transport maps its API's failures onto these
errors, so follow-ups, retries and staff alerts are written once for every channel.

A chat is addressed by the channel's own id for it, as text (a Telegram chat id, a phone
number …): each transport converts it to what its API wants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Button:
    """An action offered under a message: its label and the payload a press brings back."""

    text: str
    data: str


Keyboard = tuple[tuple[Button, ...], ...]


class Blocked(Exception):
    """The person blocked the bot or deleted their account (Telegram's 403)."""


class RetryAfter(Exception):
    """The channel asks us to wait `seconds` before sending again (Telegram's 429)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds}s")
        self.seconds = seconds


class ChatRetryAfter(RetryAfter):
    """A wait that concerns one person only (WhatsApp's pair rate): that person's message
    waits `seconds`, the rest of the channel goes on."""


class Transient(Exception):
    """A network error or a server error (5xx): worth retrying with backoff."""


class Refused(Exception):
    """The channel refused this message and retrying it will not help (Telegram's 400:
    message not modified, not found, too long …)."""


class OutsideWindow(Refused):
    """The channel takes no free-form message to this person now: it allows them only within
    a window after the person last wrote (WhatsApp's 24 hours). A refusal of this message,
    so whatever handles Refused handles it; a template message may still go."""


class Numbered(Protocol):
    """What a template send returns: at least the sent message's number (Transport ids)."""

    @property
    def id(self) -> int: ...


class TemplateSpec(Protocol):
    """One approved template as a channel's settings configure it: the channel's name and
    language code for it, the names of the values its placeholders take in order, and
    whether its first button is a quick reply that starts the survey."""

    @property
    def name(self) -> str: ...

    @property
    def language(self) -> str: ...

    @property
    def parameters(self) -> tuple[str, ...]: ...

    @property
    def button(self) -> bool: ...


@runtime_checkable
class Templated(Protocol):
    """A transport whose channel has a messaging window (Capabilities.window) sends the
    channel's approved templates outside it, and knows which are configured."""

    def template(self, kind: str, language: str) -> TemplateSpec | None:
        """The template for messages of `kind` (invitation, reminder …) in `language`, or
        None when none is configured (the channel may fall back to English itself)."""

    async def send_template(
        self, chat_id: str, name: str, language: str, params: Sequence[str],
        button_payload: str | None = None,
    ) -> Numbered:
        """Send template `name` in `language` with its placeholders' values in order, and
        the payload its first (quick-reply) button brings back, if it has one."""


class Transport(Protocol):
    """What a channel must provide: five calls, raising the errors above."""

    # The registered name of the channel it sends on (bot.messaging.registry): its
    # capabilities, limits included, are looked up by it.
    channel: str

    async def send_text(self, chat_id: str, text: str, keyboard: Keyboard | None) -> int:
        """Send `text` with the buttons of `keyboard` (None: none); the new message's id."""

    async def edit(
        self, chat_id: str, message_id: int, text: str | None, keyboard: Keyboard | None
    ) -> None:
        """Change a sent message: its text (None: keep it) and its buttons (None: remove)."""

    async def answer_press(self, callback_id: str, text: str | None) -> None:
        """Acknowledge a button press, with a short notice (None: none)."""

    async def send_document(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None: ...

    async def send_photo(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None: ...
