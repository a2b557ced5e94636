"""What each channel can carry, as data, declared once by the channel (in its folder under
bot/channels/, see bot.messaging.registry).

`sada flows lint` checks every flow against each registered channel: it renders each flow
text the way the channel shows it (bot.channels.text: progress line, group title, hints,
placeholders at their longest) and measures the result. The dispatcher paces its sends by
the channel's rates (bot.followups.ratelimit). A channel without limits (the console
preview) declares none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

# How a channel measures text against its limits: Telegram counts UTF-16 code units (an
# emoji outside the BMP is two), others count characters (code points).
TextCounting = Literal["utf16", "characters"]


def utf16_length(text: str) -> int:
    """The length of `text` in UTF-16 code units, as Telegram counts it."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class ListMessages:
    """A channel's list message: one button opening a list of rows to pick from (WhatsApp's
    interactive list)."""

    rows: int  # the most rows a list holds
    title: int  # characters in a row's title
    description: int  # characters in a row's description


@dataclass(frozen=True)
class Capabilities:
    # The longest message the channel takes, counted as `text_counting` says. Longer is
    # refused, and the person gets nothing.
    text_length: int
    text_counting: TextCounting
    # Buttons under one message: in one row and in all; 0 in all means the channel has none
    # and options are numbered lines to type.
    buttons_per_row: int
    buttons_total: int
    # The characters a button shows before the channel cuts its label off.
    button_label: int
    # The bytes of payload a button carries back (Sada's signed payload is sized by indexes,
    # never by option ids or labels: bot.messaging.keyboards).
    callback_data: int
    # Whether a sent message can be changed (its text, its buttons) after the fact.
    editable: bool
    # Send rates the channel enforces: messages per second overall, and to any one chat.
    messages_per_second: float
    messages_per_chat_per_second: float
    # List messages, where the channel has them.
    lists: ListMessages | None = None
    # How long after a person last wrote free-form messages reach them (WhatsApp's 24 h);
    # outside it only the channel's approved templates go (bot.messaging.transport.Templated).
    # None: no window, a message may go any time.
    window: timedelta | None = None
    # Whether a message sent while the person is away reaches them (a notification on their
    # phone). A web page does not: it shows what was sent only when reopened, so invitations
    # and reminders go to such a contact as a link for staff to send (e-mail, SMS), and one
    # person may open their link in several browsers (a visitor id each).
    reaches_absent: bool = True

    def __post_init__(self) -> None:
        if self.messages_per_second <= 0 or self.messages_per_chat_per_second <= 0:
            raise ValueError("send rates must be positive numbers of messages per second")

    @property
    def buttons(self) -> bool:
        """Options as buttons (True), or as numbered lines to type."""
        return self.buttons_total > 0

    def length(self, text: str) -> int:
        """The length of `text` as the channel counts it against `text_length`."""
        return utf16_length(text) if self.text_counting == "utf16" else len(text)
