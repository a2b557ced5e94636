"""Arabic and Persian text for report images: shaping, direction and digits.

Arabic script is stored in logical order with one code point per letter; a picture needs
each letter in its joined form (initial, medial, final, isolated) and the line laid out right
to left. Who does that depends on the installed matplotlib:

- matplotlib 3.11 lays text out with libraqm (HarfBuzz shaping + FriBiDi reordering), so it
  must get the plain logical text. Shaping it again with arabic_reshaper and python-bidi
  hands it presentation forms in reversed order, which it reverses back: the words come out
  backwards with broken joins (checked on this machine by rendering both; see docs/reports.md).
- matplotlib without libraqm (3.10 and older, or a build without it) draws code points one
  after the other, left to right: there we shape with arabic_reshaper and reorder with
  python-bidi (`get_display`) before handing the string over.

`for_matplotlib` picks the right one by asking the installed matplotlib once, so every label
goes through it and charts read correctly on both kinds of install.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from arabic_reshaper import ArabicReshaper
from babel import Locale
from bidi import get_display

from bot.engine.normalize import local_digits
from bot.flow.model import RTL_LANGUAGES

RLM = "\u200f"
ALM = "\u061c"

# Arabic, Arabic Supplement, Arabic Extended-A and the two presentation-form blocks.
_ARABIC_SCRIPT = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")
PRESENTATION_FORMS = re.compile("[\ufb50-\ufdff\ufe70-\ufeff]")

# Keep harakat (they are rare in labels but must not be dropped) and let ZWNJ break joins,
# as Persian orthography needs (می‌شود): arabic_reshaper's defaults do both.
_RESHAPER = ArabicReshaper(configuration={"delete_harakat": False, "support_ligatures": True})

# A Persian yeh joined on both sides: its medial presentation form (U+FBFE) differs from
# its isolated code point, so any shaping engine must pick another glyph for it.
_PROBE = "\u06cc\u06cc\u06cc"


def is_rtl(lang: str) -> bool:
    return lang in RTL_LANGUAGES


def has_arabic_script(text: str) -> bool:
    return _ARABIC_SCRIPT.search(text) is not None


def shape(text: str) -> str:
    """Joined letters in visual (left-to-right drawing) order, for a renderer that shapes
    nothing: presentation forms from arabic_reshaper, reordered by python-bidi."""
    if not has_arabic_script(text):
        return text
    # Reshape line by line: get_display reorders each line on its own.
    return "\n".join(get_display(_RESHAPER.reshape(line)) for line in text.split("\n"))


@cache
def matplotlib_shapes_text() -> bool:
    """Whether the installed matplotlib shapes and reorders text itself (libraqm).

    Asked by laying out a joined Persian word with the bundled DejaVu Sans: a shaping
    engine picks contextual glyphs, a plain one the nominal glyph of each code point.
    """
    try:
        from matplotlib import font_manager, ft2font
        from matplotlib._text_helpers import layout

        font = ft2font.FT2Font(font_manager.findfont("DejaVu Sans", fallback_to_default=True))
        font.set_size(12, 72)
        nominal = {font.get_char_index(ord(c)) for c in _PROBE}
        drawn = {item.glyph_index for item in layout(_PROBE, font)}
    except Exception:  # a private API moved: fall back to what the version says
        from matplotlib import ft2font

        return hasattr(ft2font, "__libraqm_version__")
    return not drawn <= nominal


def for_matplotlib(text: str) -> str:
    """The string to give matplotlib so that Arabic and Persian read correctly in the image."""
    if not has_arabic_script(text):
        return text
    return text if matplotlib_shapes_text() else shape(text)


def digits(text: str, lang: str) -> str:
    """Latin digits shown as the reader writes them: ۰-۹ in Persian, ٠-٩ in Arabic."""
    return local_digits(text, lang)


def number(value: float, lang: str, *, decimals: int = 0) -> str:
    """A number as the reader writes it: local digits, and ٫ for the decimal point in ar/fa."""
    return numeral(f"{value:.{decimals}f}", lang)


def numeral(text: str, lang: str) -> str:
    """A number already written out ("2.5", "-3") as the reader writes it: local digits, and
    in ar/fa ٫ for the decimal point and a real minus."""
    if lang in RTL_LANGUAGES:
        text = text.replace(".", "\u066b").replace("-", "\u2212")
    return local_digits(text, lang)


def percent_sign(lang: str) -> str:
    """The Arabic percent sign ٪ in ar/fa, % otherwise."""
    return "\u066a" if lang in RTL_LANGUAGES else "%"


def percent(value: float, lang: str, *, decimals: int = 0, marked: bool = False) -> str:
    """"42%" in English, "٤٢٪" in Arabic, "۴۲٪" in Persian.

    `marked` starts an ar/fa percentage with ALM, for a bidi-aware renderer (HTML): after
    Arabic-script words, digits take the Arabic-number direction (UAX #9, rule W2), which
    puts ٪ after the number in reading order, left of it. A number alone in a cell has no
    such neighbour and would show ٪ on its right; the mark makes cells read as sentences do.
    """
    text = number(value, lang, decimals=decimals) + percent_sign(lang)
    return ALM + text if marked and lang in RTL_LANGUAGES else text


def signed(value: float, lang: str, *, decimals: int = 0, marked: bool = False) -> str:
    """A change with its sign: "+5", "−3" (a real minus, which does not wrap like a hyphen).

    `marked` puts CLDR's bidi mark before the sign, for text a bidi-aware renderer lays
    out (HTML): a sign next to digits has no direction of its own, so without the mark it
    follows its surroundings. Charts get no mark (matplotlib may draw it as a box).
    """
    body = number(abs(value), lang, decimals=decimals)
    if round(value, decimals) == 0:
        return body
    return (sign_mark(lang) if marked else "") + ("+" if value > 0 else "\u2212") + body


# The digits each language is shown in (bot.engine.normalize.local_digits).
_NUMBERING = {"ar": "arab", "fa": "arabext"}


@cache
def sign_mark(lang: str) -> str:
    """The invisible mark CLDR writes before a sign: ALM in Arabic, so the sign sits right of
    the digits and is read first; LRM in Persian, so it sits left of them as in Iranian
    maths ("−۵"); nothing in English."""
    if lang not in _NUMBERING:
        return ""
    minus = Locale.parse(lang).number_symbols[_NUMBERING[lang]]["minusSign"]
    return minus.rstrip("-\u2212")


def clean(text: str) -> str:
    """Drop bidi overrides and control characters from user text before drawing it."""
    return "".join(
        c for c in text if c in "\n\u200c\u200d" or unicodedata.category(c) not in ("Cc", "Cf")
    )
