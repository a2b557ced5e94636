"""The terminal, as the messaging layer knows it: typed answers only, nothing edited."""

from __future__ import annotations

from bot.i18n import N_
from bot.messaging.capabilities import Capabilities
from bot.messaging.registry import Channel

CHANNEL = Channel(
    name="console",
    title="the console preview",
    capabilities=Capabilities(
        # A terminal scrolls: no length worth refusing a message for.
        text_length=1_000_000,
        text_counting="characters",
        # No buttons: options are numbered lines to type; a printed line cannot change.
        buttons_per_row=0,
        buttons_total=0,
        button_label=0,
        callback_data=0,
        editable=False,
        messages_per_second=1_000_000.0,
        messages_per_chat_per_second=1_000_000.0,
    ),
    # Chat's notices send people to /start; here running the same command again is what
    # continues (a stopped session starts afresh).
    notices={
        "stopped": N_("Stopped; your answers so far are saved. To answer again, run the same "
                      "preview command again: it starts the survey afresh."),
        "survey_stopped": N_("This survey is stopped. To answer again, run the same preview "
                             "command again: it starts the survey afresh."),
        "consent_declined": N_("Understood: we will not store any answers. If you change "
                               "your mind, run the same preview command again."),
    },
)
