"""What the engine asks a channel to show: data, rendered by each channel its own way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Counted phrases ("about 3 minutes", "5 questions") need the catalogs' plural forms, which
# the engine cannot read: it leaves one of these marks in the text and the count on the
# Say, and every channel puts the reader's phrase in (bot.channels.text). Private-use
# characters, so no typed or escaped text can be mistaken for them.
DURATION = "\ue000"
QUESTION_COUNT = "\ue001"


@dataclass(frozen=True)
class Say:
    """A flow text (intro, outro), already in the session's language with placeholders filled.

    `minutes` and `questions` are set when the text holds a DURATION or QUESTION_COUNT mark.
    """

    text: str
    minutes: int | None = None
    questions: int | None = None
    # the fewest questions this person can be asked, when fewer than `questions`: then the
    # count reads "up to 9", as the progress line's "1 of 7–9" will
    fewest: int | None = None


@dataclass(frozen=True)
class Notice:
    """One of the bot's own messages, looked up by key in the gettext catalogs."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    id: str
    label: str


PREVIOUS_LIMIT = 100


@dataclass(frozen=True)
class Ask:
    """One question on screen, with everything a channel needs to render it."""

    question_id: str
    type: str
    text: str
    language: str
    group_title: str
    new_group: bool  # first question shown from this group: channels show its title
    index: int  # 1-based position among the questions this person will see
    total: int  # the most questions this person may see in all, answered ones included
    seconds_left: int
    optional: bool
    can_go_back: bool
    low: int | None = None  # scale bounds
    high: int | None = None
    low_label: str | None = None
    high_label: str | None = None
    choices: tuple[Choice, ...] = ()
    picks: tuple[str, ...] = ()  # ticked options of a multi question
    min_picks: int = 0
    max_picks: int = 0
    max_length: int | None = None
    # The earlier answer, as typed, when the person went back: a text answer whole (its
    # max_length bounds it), any other cut to PREVIOUS_LIMIT characters ("٨" amid a page of
    # filler words was a valid score, but is no line to show again).
    previous: str | None = None
    # The fewest questions this person will see in all: below `total` while a later
    # question's condition waits on an answer not given yet (None: the same as `total`).
    least: int | None = None


@dataclass(frozen=True)
class AskConsent:
    """The flow's consent text, to be agreed to (yes) or declined (no) before any question."""

    text: str
    language: str


Prompt = Say | Notice | Ask | AskConsent
