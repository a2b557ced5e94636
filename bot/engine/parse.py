"""Typed answers, as people type them, turned into values — or into what was expected.

Each function takes the question and the text and returns `Accepted(value)` or a
`Rejected(key, params)` that the channel renders from the catalogs as a short hint. A
text that could mean two things ("7 or 8", "بله ولی نه", a word in two options) is
rejected with an `ambiguous_*` key: nothing is stored that the person did not mean. The
words recognised are data in `bot.engine.lexicon`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from bot.engine import lexicon
from bot.engine.normalize import clean_incoming, fold, plain
from bot.engine.state import Value
from bot.engine.words import AMBIGUOUS, Move, command_word, means_nothing, read_yes_no
from bot.flow.model import (
    NUMBER_LIMIT,
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
_NUMBER = re.compile(r"^[+-]?(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
# The most digits a score or an option number is read from: "㊿" × 2,200 is 4,400 digits
# after NFKC, which int() refuses with an exception. A longer number is a wrong answer.
_MOST_DIGITS = len(str(NUMBER_LIMIT))


def _integer(word: str) -> int | None:
    """A whole number typed as digits, or None (not digits, or too long to mean one)."""
    if len(word) > _MOST_DIGITS or not _INTEGER.match(word):
        return None
    return int(word)


def _table(table: dict[str, dict[int, tuple[str, ...]]]) -> dict[str, int]:
    return {plain(w): n for per_lang in table.values() for n, ws in per_lang.items() for w in ws}


def _words(table: dict[str, tuple[str, ...]]) -> frozenset[str]:
    return frozenset(plain(w) for ws in table.values() for w in ws)


_NUMBER_WORDS = _table(lexicon.NUMBER_WORDS)
_AMBIGUOUS_NUMBERS = frozenset(plain(w) for w in lexicon.AMBIGUOUS_NUMBER_WORDS)
_ORDINALS = _table(lexicon.ORDINAL_WORDS)
# Arabic ordinals are typed with or without the article: "الخيار الثالث", "ثالث".
_ORDINALS |= {w[2:]: n for w, n in _ORDINALS.items() if w.startswith("ال") and len(w) > 4}
_OPTION_WORDS = _words(lexicon.OPTION_WORDS)
_OUT_OF = frozenset(w for phrase in _words(lexicon.OUT_OF_WORDS) for w in phrase.split())
_FILLERS = _words(lexicon.SCORE_FILLERS)
_ALTERNATIVES = _words(lexicon.SCORE_ALTERNATIVES)


def parse(question: Question, text: str) -> Outcome:
    if isinstance(question, SCORED_TYPES):
        low, high = question.bounds
        end = _scale_end(question, text)
        return Accepted(end) if end is not None else _score(text, low, high)
    if isinstance(question, ChoiceQuestion):
        return _choice(question, text)
    if isinstance(question, MultiQuestion):
        return _multi(question, text)
    if isinstance(question, YesNoQuestion):
        answer = read_yes_no(text)
        if answer is AMBIGUOUS:
            return Rejected("ambiguous_yesno")
        return Rejected("expect_yesno") if answer is None else Accepted(answer)
    if isinstance(question, NumberQuestion):
        return _number(question, text)
    assert isinstance(question, TextQuestion)
    return _text(question, text)


def move(question: Question, text: str) -> Move | None:
    """A typed message that moves instead of answering: a command word alone ("رجوع",
    "بگذر", "skip"), or a bare no / "nothing" on an optional text question. A word that
    names one of the question's options is that option, not a command."""
    word = command_word(text)
    if word and isinstance(question, ChoiceQuestion | MultiQuestion) and isinstance(
        _match(question.options, plain(text).split()), int
    ):
        return None
    if word:
        return word
    if isinstance(question, TextQuestion) and question.optional and means_nothing(text):
        return "skip"
    return None


# --- scores ------------------------------------------------------------------------------

# A signed number only at the start or after a space: "7-8" is two numbers, "-3" is one.
_SCORE_TOKENS = re.compile(
    r"(?P<num>(?:(?<=\s)|^)[+-]\d+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"|(?P<sep>[/\-~–—])|(?P<word>[^\s\d/\-~–—]+)"
)


def _scale_end(question: Question, text: str) -> int | None:
    """A scale's end typed as its label ("خیلی سخت", "محتمل جدًا"): the person quotes the
    words shown beside the number, in any of the flow's languages."""
    if not isinstance(question, SCORED_TYPES) or question.labels is None:
        return None
    labels = question.labels
    key = plain(text)
    low, high = question.bounds
    for label, value in ((labels.min, low), (labels.max, high)):
        if label and key in {plain(words) for words in label.values()}:
            return value
    return None


def _score(text: str, low: int, high: int) -> Outcome:
    expected = Rejected("expect_score", {"low": low, "high": high})
    # ("n", value) numbers, ("of", None) "out of" words between a score and its top
    items: list[tuple[str, float | None]] = []
    maybe_nine = alternatives = 0
    for match in _SCORE_TOKENS.finditer(fold(text)):
        if match["num"]:
            number = match["num"]
            if len(number) > _MOST_DIGITS:
                return expected
            # A sign only where the scale has negative points: "-0" and "+7" are not
            # what any button says.
            if number[0] == "+" or (number[0] == "-" and (low >= 0 or float(number) == 0)):
                return expected
            items.append(("n", float(number)))
        elif match["sep"] == "/":
            items.append(("of", None))
        elif match["sep"]:
            alternatives += 1
        elif match["word"]:
            word = plain(match["word"])
            if not word:
                continue  # punctuation
            if word in _NUMBER_WORDS:
                maybe_nine += word in _AMBIGUOUS_NUMBERS
                items.append(("n", float(_NUMBER_WORDS[word])))
            elif word in _OUT_OF:
                items.append(("of", None))
            elif word in _ALTERNATIVES:
                alternatives += 1
            elif word not in _FILLERS:
                return expected  # "۸ چون…", "10 not 9"?: not a plain score
    if maybe_nine > 1:  # "نه نه" is "no, no", not "9 9"
        return expected
    values: list[float] = []
    for n, (kind, value) in enumerate(items):
        if kind != "n" or value is None:
            continue
        before = items[n - 1][0] if n else ""
        if before == "of" and values:  # the top of the scale: "٨ من ١٠", "eight out of ten"
            if value != high:
                return expected  # "8/10" on a 1–5 question: another scale
            continue
        values.append(value)
    distinct = sorted(set(values))
    if len(distinct) == 1:
        value = distinct[0]
        if alternatives or not value.is_integer() or not low <= value <= high:
            return expected
        return Accepted(int(value))
    candidates = [int(v) for v in distinct if v.is_integer() and low <= v <= high]
    if len(candidates) >= 2:  # "7 or 8", "between 6 and 7", "۷ یا ۸"
        return Rejected("ambiguous_score", {"candidates": candidates, "low": low, "high": high})
    return expected


# --- options -----------------------------------------------------------------------------

_ZWNJ = "\u200c"
# Words too common to tell options apart by themselves.
_COMMON = frozenset(plain(w) for w in (
    "و", "of", "and", "the", "a", "or", "in", "to", "في", "من", "على", "عن", "مع", "أو",
    "از", "در", "به", "با", "برای", "یا", "را", "که",
))


def _bare(word: str) -> str:
    """An Arabic word without its article: "التسليم" and "تسليم" name the same thing."""
    return word[2:] if word.startswith("ال") and len(word) > 4 else word


def _label_key(words: list[str]) -> str:
    return "".join(_bare(w) for w in words)


def _option_keys(option: Option) -> tuple[frozenset[str], frozenset[str]]:
    """An option's whole labels (compared without spaces or ZWNJ) and its words."""
    return _keys(option.id, tuple(option.label.values()))


@cache
def _keys(option_id: str, texts: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    labels = {fold(option_id)}
    words: set[str] = set()
    for label in texts:
        for form in (plain(label), plain(label.replace(_ZWNJ, " "))):
            labels.add(_label_key(form.split()))
            words.update(_bare(w) for w in form.split())
            # "والحسابات": the attached "and" is not part of the word people type
            words.update(_bare(w[1:]) for w in form.split() if w.startswith("و") and len(w) > 3)
    return frozenset(labels), frozenset(words)


def _number_of(words: list[str], count: int) -> int | None:
    """ "3", "option 3", "#3", "الخيار الثالث", "گزینه سوم", "the third one" → index."""
    rest = [w for w in words if w not in _OPTION_WORDS] or words
    if len(rest) != 1:
        return None
    word, prefixed = rest[0], len(rest) < len(words)
    if _INTEGER.match(word):
        typed = _integer(word)
        if typed is None:
            return None
        number = typed
    elif word in _ORDINALS:
        number = _ORDINALS[word]
    elif word in _NUMBER_WORDS and (prefixed or word not in _AMBIGUOUS_NUMBERS):
        number = _NUMBER_WORDS[word]
    else:
        return None
    return number - 1 if 1 <= number <= count else None


def _match(options: list[Option], words: list[str]) -> int | tuple[int, ...] | None:
    """Which option these words name: its number, its label, or words only it has. A tuple
    lists the options they could name when several could."""
    if not words:
        return None
    whole = _label_key(words)
    for i, option in enumerate(options):
        if whole in _option_keys(option)[0]:
            return i
    number = _number_of(words, len(options))
    if number is not None or any(_INTEGER.match(w) for w in words):
        return number
    content = {_bare(w) for w in words if w not in _COMMON}
    if not content or any(read_yes_no(w) is not None or len(w) < 2 for w in content):
        return None  # "لا" must not pick "لا أستطيع الحكم"
    found = tuple(i for i, o in enumerate(options) if content <= _option_keys(o)[1])
    if not found:
        return None
    return found[0] if len(found) == 1 else found


def _ambiguous(found: tuple[int, ...], options: list[Option]) -> Rejected:
    numbers = [i + 1 for i in found]
    return Rejected("ambiguous_option",
                    {"numbers": numbers, "labels": [options[i].label for i in found]})


def _choice(question: ChoiceQuestion, text: str) -> Outcome:
    found = _match(question.options, plain(text).split())
    if isinstance(found, tuple):
        return _ambiguous(found, question.options)
    if found is None:
        return Rejected("expect_option", {"count": len(question.options)})
    return Accepted(question.options[found].id)


_HARD_SEPARATORS = re.compile(r"[,;/+&|،؛]|(?<=\d)\s*و\s*(?=\d)")
_SOFT_SEPARATORS = frozenset({"|", "و", "and", "&", "+"})
_MOST_WORDS = 40  # more than any list of options people type; beyond it we do not guess


def _segments(options: list[Option], words: list[str]) -> list[int] | tuple[int, ...] | None:
    """Split the words into option names ("١ و٣", "الجودة والسعر", "price and quality"),
    trying the longest names first. A list when every part names one option; a tuple
    of candidates when a part could name several."""

    @cache
    def from_(p: int) -> list[int] | tuple[int, ...] | None:
        while p < len(words) and words[p] in _SOFT_SEPARATORS:
            p += 1
        if p == len(words):
            return []
        unclear: tuple[int, ...] | None = None
        for j in range(len(words), p, -1):
            part = list(words[p:j])
            if "|" in part:
                continue
            found = _match(options, part)
            if found is None and part[0].startswith("و") and len(part[0]) > 1:
                found = _match(options, [part[0][1:], *part[1:]])  # و attached: "و٣"
            if found is None:
                continue
            rest = from_(j)
            if isinstance(found, int) and isinstance(rest, list):
                return [found, *rest]
            if rest is not None and unclear is None:
                unclear = found if isinstance(found, tuple) else rest  # type: ignore[assignment]
        return unclear

    return from_(0)


def _multi(question: MultiQuestion, text: str) -> Outcome:
    hint = Rejected(
        "expect_picks",
        {"count": len(question.options), "low": question.min_picks, "high": question.most},
    )
    words = plain(_HARD_SEPARATORS.sub(" | ", fold(text))).split()
    if len(words) > _MOST_WORDS:
        return hint
    found = _segments(question.options, words)
    if isinstance(found, tuple):
        return _ambiguous(found, question.options)
    if not found:
        return hint
    indexes = set(found)
    if not question.min_picks <= len(indexes) <= question.most:
        return hint
    return Accepted([question.options[i].id for i in sorted(indexes)])


def _number(question: NumberQuestion, text: str) -> Outcome:
    key = fold(text).replace(" ", "")
    params = {"low": question.min, "high": question.max}
    shape = _NUMBER.match(key)
    if not shape:
        return Rejected("expect_whole_number" if question.integer else "expect_number", params)
    negative = key.startswith("-")
    # Beyond NUMBER_LIMIT: the range in reply, its open side closed at the limit. Counted
    # in digits first: "1" and 400 zeros is infinite as a float.
    if len(shape["whole"].replace(",", "").lstrip("0")) > _MOST_DIGITS or abs(
        float(key.replace(",", ""))
    ) > NUMBER_LIMIT:
        if negative:
            params["low"] = question.min if question.min is not None else -NUMBER_LIMIT
        else:
            params["high"] = question.max if question.max is not None else NUMBER_LIMIT
        return Rejected("expect_number_range", params)
    number = float(key.replace(",", "")) + 0.0  # + 0.0: "-0" is 0
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
        number = _integer(value)
        if number is not None and low <= number <= high and value == str(number):
            return Accepted(number)
        return None
    if isinstance(question, ChoiceQuestion):
        ids = [o.id for o in question.options]
        return Accepted(value) if value in ids else None
    if isinstance(question, YesNoQuestion):
        return {"yes": Accepted(True), "no": Accepted(False)}.get(value)
    return None
