"""Bale, as the messaging layer knows it (bot.messaging.registry finds it here).

Bale publishes no limits of its own: where its documentation is silent the numbers are
Telegram's or stricter, so a flow that lints clean for Bale is not refused by it
(docs/channels.md, "Bale").
"""

from __future__ import annotations

from bot.channels.telegram.channel import bot_api_links
from bot.messaging.capabilities import Capabilities
from bot.messaging.registry import BOT_API_CHAT, Channel

CHANNEL = Channel(
    name="bale",
    title="Bale",
    capabilities=Capabilities(
        # Bale documents sendMessage as Telegram's; counting in UTF-16 is the stricter
        # reading when it measures characters.
        text_length=4096,
        text_counting="utf16",
        buttons_per_row=8,
        buttons_total=100,
        button_label=64,
        callback_data=64,
        # editMessageText and editMessageReplyMarkup are in Bale's method list; a refusal of
        # either degrades to a new message (bot.messaging Refused), never a stop.
        editable=True,
        # Unpublished: a third of Telegram's overall rate, so a burst of invitations is
        # paced well below anything a practitioner reported Bale answering 429 to.
        messages_per_second=10.0,
        messages_per_chat_per_second=1.0,
    ),
    # https://ble.ir/<bot>?start=<payload>, read back as Telegram's /start <payload>; the
    # payload alphabet and length are Telegram's (unconfirmed for Bale: the tokens Sada
    # issues, 22 url-safe characters, are well inside either).
    links=bot_api_links("https://ble.ir/{bot}?start={payload}"),
    address=BOT_API_CHAT,  # a person's chat: a positive number
)
