"""What each channel can carry, as data: `sada flows lint` checks every flow against it.

A channel with limits declares them here, once; the linter renders each flow text the way
the channel shows it (bot.channels.text: progress line, group title, hints, placeholders at
their longest) and measures the result. A channel without limits (the console preview)
needs no entry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    channel: str  # as staff know it, in lint messages
    # The longest message the channel takes, in UTF-16 code units (how Telegram counts:
    # an emoji outside the BMP is two). Longer is refused, and the person gets nothing.
    message: int
    # The characters a button shows before the channel cuts its label off.
    button_label: int
    # The bytes of data a button carries back (bot.channels.telegram.keyboards: Sada's
    # signed payload, sized by indexes, never by option ids or labels).
    callback_data: int
    # Options as buttons (True), or as numbered lines to type.
    buttons: bool = True


TELEGRAM = Limits("Telegram", message=4096, button_label=64, callback_data=64)

CHANNELS: tuple[Limits, ...] = (TELEGRAM,)


def utf16_length(text: str) -> int:
    """The length of `text` as Telegram counts it."""
    return len(text.encode("utf-16-le")) // 2
