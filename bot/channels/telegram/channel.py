"""Telegram, as the messaging layer knows it (bot.messaging.registry finds it here)."""

from __future__ import annotations

from bot.messaging.capabilities import Capabilities
from bot.messaging.keyboards import PREFIX
from bot.messaging.registry import BOT_API_CHAT, Channel, DeepLinks


def bot_api_links(url: str) -> DeepLinks:
    """Deep links of a Bot API channel at `url`: /start with a payload of 1-64 characters of
    A-Za-z0-9_-, and a button the Controller reads back as that start (an invitation's or a
    reminder's)."""
    return DeepLinks(url=url, payload_characters="A-Za-z0-9_-", payload_length=64,
                     button=f"{PREFIX}:g:{{payload}}")


CHANNEL = Channel(
    name="telegram",
    title="Telegram",
    capabilities=Capabilities(
        # Bot API sendMessage: 1-4096 characters after entities parsing, counted in UTF-16.
        text_length=4096,
        text_counting="utf16",
        # Inline keyboards: at most 8 buttons a row and 100 in all (Telegram's server limits,
        # not in the Bot API's text: more is refused with a 400).
        buttons_per_row=8,
        buttons_total=100,
        button_label=64,
        callback_data=64,  # callback_data: 1-64 bytes
        editable=True,
        # The bot FAQ: about 30 messages a second overall, and about one a second to a chat.
        messages_per_second=30.0,
        messages_per_chat_per_second=1.0,
    ),
    links=bot_api_links("https://t.me/{bot}?start={payload}"),
    address=BOT_API_CHAT,  # a person's chat: a positive number
)
