"""The web chat, as the messaging layer knows it (bot.messaging.registry finds it here).

A person in a browser is a visitor: their address is a random id the server makes
(secrets.token_urlsafe(16), 22 url-safe characters) and the browser keeps. A link opens the
chat page of the server's public URL ({bot}: SADA_WEB__PUBLIC_URL) with a link token.
"""

from __future__ import annotations

import secrets

from bot.messaging.capabilities import Capabilities
from bot.messaging.keyboards import PREFIX
from bot.messaging.registry import AddressFormat, Channel, DeepLinks

VISITOR_BYTES = 16
VISITOR = AddressFormat(pattern="[A-Za-z0-9_-]{22}",
                        hint="a web visitor id: 22 letters, digits, _ or -")


def new_visitor() -> str:
    return secrets.token_urlsafe(VISITOR_BYTES)


CAPABILITIES = Capabilities(
    # A page scrolls: the limit only keeps one message's row in the database sane.
    text_length=20_000,
    text_counting="characters",
    # Buttons wrap in the page; the caps keep a bad flow from drawing a wall of them.
    buttons_per_row=8,
    buttons_total=100,
    button_label=200,
    # Signed button data travels as JSON: no channel limit worth the name.
    callback_data=1024,
    editable=True,
    # Written to the database, read by the browser: limits are Sada's own flood guards
    # (transport.py), far above what a conversation or the dispatcher sends.
    messages_per_second=500.0,
    messages_per_chat_per_second=5.0,
    reaches_absent=False,
)

CHANNEL = Channel(
    name="web",
    title="the web chat",
    capabilities=CAPABILITIES,
    # {bot}: the public base URL of the server (https://cx.example.com); the page at /s/
    # opens the chat and the controller reads "/start <payload>" as a link's start.
    links=DeepLinks(
        url="{bot}/s/{payload}",
        payload_characters="A-Za-z0-9_-",
        payload_length=64,
        button=f"{PREFIX}:g:{{payload}}",
    ),
    address=VISITOR,
    # Notices are chat's: "send /start" works here too, typed in the chat's box.
)
