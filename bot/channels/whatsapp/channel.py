"""WhatsApp, as the messaging layer knows it (bot.messaging.registry finds it here).

An address on WhatsApp is the person's phone number in E.164, stored as its digits without
the "+": the form the Cloud API's webhooks name the sender by (`wa_id`), so an imported
contact and a person who writes in are the same identity.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.channels.whatsapp.numbers import E164, e164
from bot.messaging.capabilities import Capabilities, ListMessages
from bot.messaging.keyboards import PREFIX
from bot.messaging.registry import AddressFormat, Channel, DeepLinks

# The customer service window: free-form messages reach a person only this long after their
# last message to the business; after it, only approved templates (error 131047).
WINDOW = timedelta(hours=24)


def within_window(last_inbound: datetime | None, now: datetime) -> bool:
    """Whether a free-form message may go now to someone who last wrote at `last_inbound`
    (None: never wrote); a minute's margin, so a message queued at 23:59:30 is not refused
    on arrival."""
    return last_inbound is not None and now - last_inbound < WINDOW - timedelta(minutes=1)


PHONE = AddressFormat(
    pattern=E164, normalise=e164,
    hint="a phone number with its country code, like +971 50 123 4567 or 00966551234567",
)

# Meta documents 80 messages a second per business number by default, and about one
# message every 6 seconds to the same person (error 131056 beyond).
CAPABILITIES = Capabilities(
    # A text message's body: 4096 characters. An interactive message's body is 1024: a
    # longer question goes as a text, then its buttons under a short body (transport.py).
    text_length=4096,
    text_counting="characters",
    # Reply buttons: at most 3 in a message, titles of at most 20 characters, ids ≤ 256.
    buttons_per_row=3,
    buttons_total=3,
    button_label=20,
    callback_data=256,
    editable=False,  # a sent message cannot be changed
    messages_per_second=80.0,
    messages_per_chat_per_second=1 / 6,
    # List messages: 10 rows in all, row titles ≤ 24, descriptions ≤ 72.
    lists=ListMessages(rows=10, title=24, description=72),
    window=WINDOW,
)

CHANNEL = Channel(
    name="whatsapp",
    title="WhatsApp",
    capabilities=CAPABILITIES,
    # A wa.me link opens a chat with the business number ({bot}: its digits) with a text
    # filled in; the person sends it, and the controller reads "/start <payload>" as a
    # deep-link start. A template's quick-reply button brings back the `button` data.
    links=DeepLinks(
        url="https://wa.me/{bot}?text=%2Fstart%20{payload}",
        payload_characters="A-Za-z0-9_-",
        payload_length=64,
        button=f"{PREFIX}:g:{{payload}}",
    ),
    address=PHONE,
)
