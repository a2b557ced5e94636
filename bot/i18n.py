"""The bot's own words: gettext catalogs per language, CLDR plurals, digits and bidi.

Catalogs live in locales/<lang>/LC_MESSAGES/sada.po (maintained with Babel: `make i18n`).
A compiled .mo is used when it is newer than its .po; otherwise the .po is compiled in
memory, so a fresh checkout works without a build step.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from bot.engine.normalize import isolate, local_digits
from bot.flow.model import LANGUAGES, RTL_LANGUAGES

DOMAIN = "sada"
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
RLM = "\u200f"


@cache
def _catalog(lang: str) -> NullTranslations:
    po = LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    mo = po.with_suffix(".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return Translations(fh, domain=DOMAIN)
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def N_(message: str) -> str:
    """Marks a string for extraction; it is translated where it is shown."""
    return message


def translate(lang: str, message: str) -> str:
    """The catalog's words for `message`, unformatted: for callers that place numbers and
    direction themselves (charts)."""
    return _catalog(lang if lang in LANGUAGES else "en").gettext(message)


class Translator:
    """Translates and formats for one reader: their words, plural forms and digits."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else "en"
        self.rtl = self.lang in RTL_LANGUAGES
        self._t = _catalog(self.lang)

    def number(self, value: int | float) -> str:
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return local_digits(text, self.lang)

    def _fill(self, template: str, params: dict[str, Any]) -> str:
        shown = {}
        for key, value in params.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                text = str(value)
                shown[key] = isolate(text) if self.rtl and text else text
            else:
                shown[key] = self.number(value)
        try:
            return template.format(**shown)
        except (KeyError, IndexError, ValueError):
            # A translator's typo in a placeholder must not take a conversation down.
            return template

    def gettext(self, message: str, **params: Any) -> str:
        return self._fill(self._t.gettext(message), params)

    def ngettext(self, singular: str, plural: str, n: int, **params: Any) -> str:
        return self._fill(self._t.ngettext(singular, plural, n), {"n": n, **params})

    def line(self, text: str) -> str:
        """Start a right-to-left line with RLM: clients pick a line's direction from its
        first strong character, and a line starting with a digit would flip."""
        return RLM + text if self.rtl and text and not text.startswith(RLM) else text

    def join(self, items: list[str]) -> str:
        return ("، " if self.rtl else ", ").join(items)


def translator(lang: str) -> Translator:
    return Translator(lang)
