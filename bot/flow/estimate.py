"""How long a flow takes to answer, per language.

Time = reading time of what the customer sees (intro, each question with its option or
scale labels, the longest outro) at an adult reading speed for the language, plus an
answer time per question type. Conditional questions count in full: the estimate is a
worst case, which is what a promise of "about N minutes" must cover. The figures and
their sources are in docs/flows.md ("How long a flow takes").
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from bot.flow.model import SCORED_TYPES, Flow, Lang, Question, by_code

# Silent reading of non-fiction, English: Brysbaert (2019), 238 wpm. Arabic: IReST
# (Trauzettel-Klosinski & Dietz 2012), 138 wpm read aloud — the only cross-language
# norm with Arabic; aloud is slower than silent, which errs towards a longer estimate.
# Persian is not in IReST: 150 wpm is our assumption (same script, but Persian writes
# more separate words per sentence than Arabic, whose clitics join the word).
READING_WPM: Final[dict[str, float]] = {"en": 238.0, "ar": 138.0, "fa": 150.0}
_SLOWEST_WPM: Final = min(READING_WPM.values())

# Seconds to decide and answer once the question is read (reading counted separately),
# built from Keystroke-Level-Model operators (Card, Moran & Newell 1980: mental
# preparation 1.35 s, point 1.1 s, tap 0.2–0.3 s) and mobile typing speed (Palin et al.
# 2019: 36 wpm), rounded up for the chat round trip. Derivations in docs/flows.md.
ANSWER_SECONDS: Final[dict[str, float]] = {
    "nps": 4.0,
    "csat": 4.0,
    "ces": 4.0,
    "scale": 4.0,
    "yesno": 4.0,
    "choice": 5.0,
    "multi": 8.0,
    "number": 8.0,
    "text": 30.0,
}

# The seeds: an interview should take no more than four minutes.
LIMIT_SECONDS: Final = 240


def words(text: str) -> int:
    """Whitespace-separated words; a ZWNJ-joined Persian word stays one word, as it reads."""
    return len(text.split())


def _wpm(lang: str) -> float:
    return READING_WPM.get(lang, _SLOWEST_WPM)


def _in(text: Mapping[Lang, str] | None, lang: str) -> str:
    """The text in `lang`, else any text (a flow the linter rejects still gets a figure)."""
    if not text:
        return ""
    found = by_code(text).get(lang)
    if found is not None:
        return found
    return next(iter(text.values()), "")


def text_seconds(text: str, lang: str) -> float:
    """Seconds to read `text` in `lang`."""
    return words(text) * 60.0 / _wpm(lang)


# Asked for every question ahead on every step: kept per loaded question object (flows are
# immutable), forgotten with it.
_SECONDS: dict[tuple[int, str], float] = {}


def question_seconds(question: Question, lang: str) -> float:
    """Seconds to read `question` (with its labels) and answer it, in `lang`."""
    key = (id(question), lang)
    seconds = _SECONDS.get(key)
    if seconds is None:
        seconds = _SECONDS[key] = _question_seconds(question, lang)
        weakref.finalize(question, _SECONDS.pop, key, None)
    return seconds


def _question_seconds(question: Question, lang: str) -> float:
    shown = [_in(question.text, lang)]
    options = getattr(question, "options", None) or []
    shown.extend(_in(option.label, lang) for option in options)
    if isinstance(question, SCORED_TYPES) and question.labels is not None:
        shown.append(_in(question.labels.min, lang))
        shown.append(_in(question.labels.max, lang))
    reading = sum(text_seconds(text, lang) for text in shown)
    return reading + ANSWER_SECONDS.get(question.type, max(ANSWER_SECONDS.values()))


def flow_seconds(flow: Flow, lang: str) -> float:
    """Worst-case seconds for the whole flow in `lang`: every question asked."""
    intro = text_seconds(_in(flow.intro, lang), lang)
    questions = sum(question_seconds(q, lang) for q in flow.questions)
    outro = max((text_seconds(_in(v.text, lang), lang) for v in flow.outro), default=0.0)
    return intro + questions + outro


@dataclass
class Estimate:
    seconds_by_language: dict[str, float]
    questions: int

    @property
    def worst_seconds(self) -> float:
        return max(self.seconds_by_language.values(), default=0.0)

    @property
    def worst_language(self) -> str | None:
        if not self.seconds_by_language:
            return None
        return max(self.seconds_by_language, key=lambda lang: self.seconds_by_language[lang])

    @property
    def minutes(self) -> int:
        """Whole minutes to promise in the intro: rounded up, at least 1."""
        return max(1, math.ceil(self.worst_seconds / 60.0))


def estimate(flow: Flow) -> Estimate:
    return Estimate(
        seconds_by_language={lang: flow_seconds(flow, lang) for lang in flow.languages},
        questions=len(flow.questions),
    )


def clock(seconds: float) -> str:
    """Compact form for tables: 185 → "3m05s"."""
    whole = max(0, round(seconds))
    return f"{whole // 60}m{whole % 60:02d}s"


def spoken(seconds: float) -> str:
    """Form for messages: 275 → "4 min 35 s", 240 → "4 min", 42 → "42 s"."""
    whole = max(0, round(seconds))
    minutes, rest = divmod(whole, 60)
    if minutes and rest:
        return f"{minutes} min {rest} s"
    if minutes:
        return f"{minutes} min"
    return f"{rest} s"
