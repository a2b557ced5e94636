"""Typed answers, as people type them, turned into values — or into what was expected.

Each function takes the question and the text and returns `Accepted(value)` or a
`Rejected(key, params)` that the channel renders from the catalogs as a short hint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.engine.normalize import clean_incoming, fold
from bot.engine.state import Value
from bot.engine.words import yes_or_no
from bot.flow.model import (
    SCORED_TYPES,
    ChoiceQuestion,
    MultiQuestion,
    NumberQuestion,
    Option,
    Question,
    TextQuestion,
    YesNoQuestion,
)


@dataclass(frozen=True)
class Accepted:
    value: Value


@dataclass(frozen=True)
class Rejected:
    key: str
    params: dict[str, Any] = field(default_factory=dict)


Outcome = Accepted | Rejected

_INTEGER = re.compile(r"^[+-]?\d+$")
# "7/10", "7 of 10", "7 out of 10", "٧ من ١٠", "۷ از ۱۰": people quote the scale back.
_OUT_OF = re.compile(r"^([+-]?\d+)\s*(?:/|of|out of|من|از)\s*\d+$")
_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
_SEPARATORS = re.compile(r"\s*(?:[,;/+&]|\band\b|\bو\b)\s*")


def parse(question: Question, text: str) -> Outcome:
    if isinstance(question, SCORED_TYPES):
        low, high = question.bounds
        return _score(text, low, high)
    if isinstance(question, ChoiceQuestion):
        return _choice(question, text)
    if isinstance(question, MultiQuestion):
        return _multi(question, text)
    if isinstance(question, YesNoQuestion):
        answer = yes_or_no(text)
        return Rejected("expect_yesno") if answer is None else Accepted(answer)
    if isinstance(question, NumberQuestion):
        return _number(question, text)
    assert isinstance(question, TextQuestion)
    return _text(question, text)


def _score(text: str, low: int, high: int) -> Outcome:
    key = fold(text)
    match = _OUT_OF.match(key)
    if match:
        key = match.group(1)
    if not _INTEGER.match(key) or not low <= int(key) <= high:
        return Rejected("expect_score", {"low": low, "high": high})
    return Accepted(int(key))


def _option_index(options: list[Option], token: str) -> int | None:
    """Find an option by its number as shown (1-based), its id, or its label in any language."""
    key = fold(token)
    if _INTEGER.match(key):
        number = int(key)
        return number - 1 if 1 <= number <= len(options) else None
    for i, option in enumerate(options):
        if key == option.id or key in {fold(label) for label in option.label.values()}:
            return i
    return None


def _choice(question: ChoiceQuestion, text: str) -> Outcome:
    index = _option_index(question.options, text)
    if index is None:
        return Rejected("expect_option", {"count": len(question.options)})
    return Accepted(question.options[index].id)


def _multi(question: MultiQuestion, text: str) -> Outcome:
    hint = Rejected(
        "expect_picks",
        {"count": len(question.options), "low": question.min_picks, "high": question.most},
    )
    whole = _option_index(question.options, text)
    if whole is not None:
        indexes = {whole}
    else:
        tokens = [t for t in _SEPARATORS.split(fold(text)) if t]
        # "1 3 4" typed with spaces only
        if len(tokens) == 1 and all(_INTEGER.match(t) for t in tokens[0].split()):
            tokens = tokens[0].split()
        found = [_option_index(question.options, t) for t in tokens]
        if not tokens or None in found:
            return hint
        indexes = {i for i in found if i is not None}
    if not question.min_picks <= len(indexes) <= question.most:
        return hint
    return Accepted([question.options[i].id for i in sorted(indexes)])


def _number(question: NumberQuestion, text: str) -> Outcome:
    key = fold(text).replace(" ", "")
    params = {"low": question.min, "high": question.max}
    if not _NUMBER.match(key):
        return Rejected("expect_whole_number" if question.integer else "expect_number", params)
    number = float(key.replace(",", ""))
    if question.integer and not number.is_integer():
        return Rejected("expect_whole_number", params)
    if (question.min is not None and number < question.min) or (
        question.max is not None and number > question.max
    ):
        return Rejected("expect_number_range", params)
    return Accepted(int(number) if question.integer else number)


def _text(question: TextQuestion, text: str) -> Outcome:
    cleaned = clean_incoming(text)
    if not cleaned:
        return Rejected("expect_text")
    if len(cleaned) > question.max_length:
        return Rejected("text_too_long", {"limit": question.max_length, "length": len(cleaned)})
    return Accepted(cleaned)


def pick(question: Question, value: str) -> Outcome | None:
    """A button press. Only values the question's own keyboard can send are valid: None
    means the button was not one of ours (forged or from another version)."""
    if isinstance(question, SCORED_TYPES):
        low, high = question.bounds
        if _INTEGER.match(value) and low <= int(value) <= high and value == str(int(value)):
            return Accepted(int(value))
        return None
    if isinstance(question, ChoiceQuestion):
        ids = [o.id for o in question.options]
        return Accepted(value) if value in ids else None
    if isinstance(question, YesNoQuestion):
        return {"yes": Accepted(True), "no": Accepted(False)}.get(value)
    return None
