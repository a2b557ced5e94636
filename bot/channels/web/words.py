"""The widget's own words (its title, the text box, the menu), from the gettext catalogs
like every other word of the bot's, put into the script as it is served: the widget needs
them before it has talked to the server (the bubble's launcher), and a second request for
a dozen words would cost more than the words."""

from __future__ import annotations

import json
from functools import cache

from bot.flow.model import LANGUAGES
from bot.i18n import N_, translate

WIDGET_WORDS: dict[str, str] = {
    "title": N_("Survey"),
    "log": N_("Conversation"),
    "label": N_("Your answer"),
    "placeholder": N_("Type your answer…"),
    "send": N_("Send"),
    "menu": N_("Menu"),
    "stop": N_("Stop the survey"),
    "language": N_("Change language"),
    "help": N_("Help"),
    "open": N_("Open the survey chat"),
    "close": N_("Close"),
    "offline": N_("Connection lost. Trying again…"),
}

# The script holds the English words between these marks, so the file runs as it is.
START, END = b"/*sada:words*/", b"/*sada:end*/"


def widget_words() -> dict[str, dict[str, str]]:
    return {lang: {key: translate(lang, message) for key, message in WIDGET_WORDS.items()}
            for lang in LANGUAGES}


@cache
def with_words(script: bytes) -> bytes:
    """`script` with every language's words in place of the English ones it ships with."""
    head, start, rest = script.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        return script
    words = json.dumps(widget_words(), ensure_ascii=False, separators=(",", ":"))
    return head + start + words.encode() + end + tail
