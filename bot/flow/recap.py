"""A question in a few words, for recalling an answer ("When we asked “…”, you answered …").

A question's text often carries a preamble ("Sorry to hear that.") and instructions ("Pick
up to two."): quoted whole, a follow-up reads like a form. The flow's `recap` says it short;
without one we take the text's last sentence that is a question, and for NPS, CSAT and CES
questions whose question sentence is still long, the catalog's short form of the standard
question. The result may hold placeholders: the caller renders them.
"""

from __future__ import annotations

import re

from bot.flow.model import RECAP_LIMIT, Question, by_code
from bot.i18n import N_, Translator

# A sentence ends at . ! ? ؟ … followed by a space, or at a line break; "3.5" goes on.
_BREAK = re.compile(r"(?<=[.!?؟…])\s+|\n+")
_ASKING = ("?", "؟")

# The standard questions in a few words, in each language's CX wording (catalogs).
SCORED_RECAPS: dict[str, str] = {
    "nps": N_("How likely are you to recommend us?"),
    "csat": N_("How satisfied are you with us?"),
    "ces": N_("How easy was it to get what you needed?"),
}


def _in(texts: dict[str, str], lang: str, default: str | None) -> str:
    return texts.get(lang) or (texts.get(default) if default else None) or next(
        iter(texts.values()), "")


def question_sentence(text: str) -> str | None:
    """The last sentence of `text` that asks something ("…?" or "…؟"), or None."""
    sentences = [s.strip() for s in _BREAK.split(text)]
    asking = [s for s in sentences if s.endswith(_ASKING)]
    return asking[-1] if asking else None


def _cut(text: str, limit: int = RECAP_LIMIT) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def recap(question: Question, t: Translator, default_language: str | None = None) -> str:
    """The question in a few words, in `t`'s language (see the module docstring)."""
    if question.recap:
        return " ".join(_in(by_code(question.recap), t.lang, default_language).split())
    text = _in(by_code(question.text), t.lang, default_language)
    asked = question_sentence(text)
    if asked is not None and len(asked) <= RECAP_LIMIT:
        return " ".join(asked.split())
    if question.type in SCORED_RECAPS:
        return t.gettext(SCORED_RECAPS[question.type])
    return _cut(asked or text)
