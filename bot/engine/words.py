"""Words people type for yes, no, stop, back and skip, in every language we serve.

The words themselves are data in `bot.engine.lexicon`; this module compares them folded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from bot.engine import lexicon
from bot.engine.normalize import fold, plain, unstretch

_STOP = (
    "stop", "unsubscribe", "/stop",
    "توقف", "إلغاء", "الغاء", "إيقاف", "ايقاف", "أوقف", "اوقف",
    "لغو", "انصراف", "توقف کن",
)


def key(text: str) -> str:
    """How a typed yes/no or command is compared: folded, no punctuation, unstretched."""
    return unstretch(plain(text))


def _keys(table: dict[str, tuple[str, ...]] | Iterable[str]) -> frozenset[str]:
    words = (w for ws in table.values() for w in ws) if isinstance(table, dict) else table
    return frozenset(k for k in (key(w) for w in words) if k)


YES = _keys(lexicon.YES)
NO = _keys(lexicon.NO)
STOP = frozenset(fold(w) for w in _STOP)
_POLITE = _keys(lexicon.YESNO_POLITE)
_ECHOES = _keys(lexicon.YESNO_ECHOES)
_NEGATIONS = _keys(lexicon.NEGATIONS) | NO
_HEDGES = _keys(lexicon.HEDGES)
_BACK = _keys(lexicon.BACK_WORDS)
_SKIP = _keys(lexicon.SKIP_WORDS)
NOTHING = _keys(lexicon.NOTHING) | NO
_LONGEST = 3  # words in the longest phrase of the tables above

# How a yes/no answer reads back inside a flow text ({resolved} in an outro).
YESNO_WORDS: dict[str, tuple[str, str]] = {
    "en": ("yes", "no"),
    "ar": ("نعم", "لا"),
    "fa": ("بله", "نه"),
}

AMBIGUOUS: Literal["ambiguous"] = "ambiguous"
YesNo = bool | Literal["ambiguous"] | None
Move = Literal["back", "skip"]


def _phrases(words: list[str]) -> Iterable[str]:
    """The words as phrases, each the longest that one of the tables knows."""
    known = YES | _NEGATIONS | _POLITE | _ECHOES | _HEDGES
    i = 0
    while i < len(words):
        for n in range(min(_LONGEST, len(words) - i), 0, -1):
            phrase = " ".join(words[i:i + n])
            if n == 1 or phrase in known:
                yield phrase
                i += n
                break


def read_yes_no(text: str) -> YesNo:
    """True or False when the text clearly says yes or no, AMBIGUOUS when it says both or
    hedges ("بله ولی نه کامل", "نعم لكن لا"), None when it is not a yes/no at all."""
    k = key(text)
    if k in YES:
        return True
    if k in NO:
        return False
    words = k.split()
    lead: bool | None = None
    for n in range(min(_LONGEST, len(words)), 0, -1):
        head = " ".join(words[:n])
        if head in YES or head in NO:
            lead, words = head in YES, words[n:]
            break
    if lead is None:
        return None
    kinds = set()
    for phrase in _phrases(words):
        if phrase in _HEDGES:
            kinds.add("hedge")
        elif phrase in _NEGATIONS:
            kinds.add("negation")
        elif phrase in YES:
            kinds.add("yes")
        elif phrase in _ECHOES:
            kinds.add("echo")
        elif phrase not in _POLITE:
            return None  # "لا أعرف", "yes the delivery…": not a plain yes or no
    if "hedge" in kinds:
        return AMBIGUOUS
    if lead:
        return AMBIGUOUS if "negation" in kinds else True
    if "yes" in kinds or ("echo" in kinds and "negation" not in kinds):
        return AMBIGUOUS  # "نه، حل شد": no what?
    return False


def yes_or_no(text: str) -> bool | None:
    """A clear yes or no; anything else (unclear or mixed) is None."""
    answer = read_yes_no(text)
    return answer if isinstance(answer, bool) else None


def command_word(text: str) -> Move | None:
    """A whole message that means Back or Skip in any language ("رجوع", "بگذر", "skip")."""
    k = key(text)
    if k in _BACK:
        return "back"
    if k in _SKIP:
        return "skip"
    return None


def means_nothing(text: str) -> bool:
    """A bare no or "nothing" ("لا شيء", "هیچی", "no thanks"): on an optional question
    that asks for more, the person has nothing to add."""
    return key(text) in NOTHING


def is_stop(text: str) -> bool:
    return fold(text).rstrip(".!") in STOP
