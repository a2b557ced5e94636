"""The bot's own words: gettext catalogs per language, CLDR plurals, digits and bidi.

Catalogs live in locales/<lang>/LC_MESSAGES/sada.po (maintained with Babel: `make i18n`).
An installed wheel carries them, with their compiled .mo, as the package's bot/locales/
(hatch_build.py); an editable checkout reads the repository's locales/. In a checkout a .mo
is used when it is newer than its .po; otherwise the .po is compiled in memory, so a fresh
checkout works without a build step. A missing or unreadable catalog is a CatalogError,
never a silent fall-back to English.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterable
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.support import Translations

from bot.engine.normalize import isolate, local_digits
from bot.flow.model import LANGUAGES, RTL_LANGUAGES

DOMAIN = "sada"
CHECKOUT_LOCALES = Path(__file__).resolve().parent.parent / "locales"
RLM = "\u200f"


class CatalogError(Exception):
    """A language's catalog is missing or unreadable; the message is one line for a person."""


def _find_locales() -> Traversable:
    packaged = resources.files("bot") / "locales"
    return packaged if packaged.is_dir() else CHECKOUT_LOCALES


LOCALES_DIR: Traversable = _find_locales()


def _fix() -> str:
    if LOCALES_DIR == CHECKOUT_LOCALES:
        return "restore locales/ from git, or run `make i18n`"
    return "reinstall sada (pip install --force-reinstall sada)"


def _stale(mo: Traversable, po: Traversable) -> bool:
    """In a checkout, a .po edited after `make i18n` wins over its old .mo; an installed
    package's files all carry the install time, and its .mo was built from its .po."""
    return isinstance(po, Path) and isinstance(mo, Path) and po.is_file() \
        and po.stat().st_mtime > mo.stat().st_mtime


def _read(lang: str, source: Traversable) -> Translations:
    with source.open("rb") as fh:
        if source.name.endswith(".mo"):
            return Translations(fh, domain=DOMAIN)
        catalog = read_po(fh, locale=lang, domain=DOMAIN, abort_invalid=True)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def _name(lang: str) -> str:
    try:
        return f"{Locale.parse(lang).english_name} ({lang})"
    except (ValueError, UnknownLocaleError):
        return lang


@cache
def _catalog(lang: str) -> Translations:
    folder = LOCALES_DIR / lang / "LC_MESSAGES"
    mo, po = folder / f"{DOMAIN}.mo", folder / f"{DOMAIN}.po"
    if not mo.is_file() and not po.is_file():
        raise CatalogError(f"the {_name(lang)} catalog is missing: there is no {po}; {_fix()}")
    source = mo if mo.is_file() and not _stale(mo, po) else po
    try:
        return _read(lang, source)
    except (OSError, struct.error, ValueError, PoFileError) as exc:
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        reason = " ".join(text.split()) or type(exc).__name__
        raise CatalogError(f"the {_name(lang)} catalog {source} is unreadable ({reason}); "
                           f"{_fix()}") from None


def check_catalogs(languages: Iterable[str]) -> None:
    """Load the catalog of each language now: a reader must never get English instead."""
    for lang in dict.fromkeys(languages):
        _catalog(lang)


def N_(message: str) -> str:
    """Marks a string for extraction; it is translated where it is shown."""
    return message


def translate(lang: str, message: str) -> str:
    """The catalog's words for `message`, unformatted: for callers that place numbers and
    direction themselves (charts)."""
    return _catalog(lang if lang in LANGUAGES else "en").gettext(message)


def rounded_hours(hours: float) -> tuple[int | float, int]:
    """Hours as staff read them (whole from 10 on, tenths below) and the count that picks
    their plural form: a value with a fraction takes CLDR's "other" form in ar, fa and en,
    for which 100 stands."""
    value = round(hours) if hours >= 10 else round(hours, 1)
    if float(value).is_integer():
        return int(value), int(value)
    return value, 100


class Translator:
    """Translates and formats for one reader: their words, plural forms and digits."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else "en"
        self.rtl = self.lang in RTL_LANGUAGES
        self._t = _catalog(self.lang)

    def number(self, value: int | float) -> str:
        text = f"{value:g}" if isinstance(value, float) else str(value)
        if self.rtl:
            # ٫ (U+066B) is the decimal separator Arabic and Persian readers write: "۲٫۵"
            text = text.replace(".", "\u066b")
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
        return self.isolate_ltr(self._fill(self._t.gettext(message), params))

    def ngettext(self, singular: str, plural: str, n: int, **params: Any) -> str:
        return self.isolate_ltr(
            self._fill(self._t.ngettext(singular, plural, n), {"n": n, **params}))

    def line(self, text: str) -> str:
        """Start a right-to-left line with RLM: clients pick a line's direction from its
        first strong character, and a line starting with a digit would flip."""
        return RLM + text if self.rtl and text and not text.startswith(RLM) else text

    def lines(self, text: str) -> str:
        """`line` for every line of a text (help, consent, intros span several)."""
        return "\n".join(self.line(line) for line in text.splitlines())

    def isolate_ltr(self, text: str) -> str:
        """In right-to-left text, wrap each /command, URL, e-mail and run of Latin words in
        LRI LRM … LRM PDI, so "/skip" does not show as "skip/" and "(/export، /forget)"
        keeps its order and brackets.

        LRI rather than FSI: a command has no strong letter at its start, and it must read
        left to right. The LRMs inside serve clients that ignore isolates (they then see
        LRM/skipLRM, which still orders "/skip" right). Nothing sits between "/" and the
        name, and the marks are not word characters, so Telegram still makes the command
        tappable. Text already inside an isolate (placeholder values) is left alone, so
        this is safe to apply twice.
        """
        if not self.rtl or not text:
            return text
        if _ISOLATE_OPENERS.isdisjoint(text):  # most texts: no isolate to step over
            return _wrap_ltr(text)
        out: list[str] = []
        depth = 0
        start = 0
        for index, char in enumerate(text):
            if char in _ISOLATE_OPENERS:
                if depth == 0:
                    out.append(_wrap_ltr(text[start:index]))
                    start = index
                depth += 1
            elif char == PDI and depth:
                depth -= 1
                if depth == 0:
                    out.append(text[start:index + 1])
                    start = index + 1
        out.append(_wrap_ltr(text[start:]) if depth == 0 else text[start:])
        return "".join(out)

    def join(self, items: list[str]) -> str:
        return ("، " if self.rtl else ", ").join(items)

    def alternatives(self, items: list[str]) -> str:
        """"7 or 8", "۷ یا ۸", "٧ أو ٨": CLDR's or-list, so a question offering choices
        reads as one in every language."""
        return format_list(items, style="or", locale=self.lang)


LRI, PDI, LRM = "\u2066", "\u2069", "\u200e"
_ISOLATE_OPENERS = frozenset("\u2066\u2067\u2068")
# Left-to-right tokens in right-to-left text, longest first: URLs (ASCII up to a space or
# a non-ASCII character such as the Arabic comma), e-mails, Telegram commands (the same
# boundaries Telegram uses to detect them), and Latin words with the spaces, digits and
# in-word punctuation between them ("Sada Support", "iPhone 15", "e-mail").
_LTR_TOKEN = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.-]*://|www\.)[!-~]+"
    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
    # a command with its Latin arguments ("/forget yes") as one run: two runs would show
    # "yes /forget" in a right-to-left line
    r"|(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?"
    r"(?: +[A-Za-z0-9_-]+(?![\w/<>]))*(?![\w/<>])"
    r"|[A-Za-z][A-Za-z0-9]*(?:['’&+._-][A-Za-z0-9]+)*(?: +[A-Za-z0-9][A-Za-z0-9]*"
    r"(?:['’&+._-][A-Za-z0-9]+)*)*"
)
# A URL or e-mail at the end of a sentence: its closing punctuation belongs to the sentence.
_TRAILING = ".,;:!?)]}'\""


def _wrap_ltr(text: str) -> str:
    def wrap(match: re.Match[str]) -> str:
        token = match.group()
        kept = token.rstrip(_TRAILING) or token
        return f"{LRI}{LRM}{kept}{LRM}{PDI}{token[len(kept):]}"

    return _LTR_TOKEN.sub(wrap, text) if text else text


def translator(lang: str) -> Translator:
    return Translator(lang)
