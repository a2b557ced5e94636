"""Text as people type it in Arabic, Persian and English, made comparable.

The raw text is always stored as typed; these functions only serve matching and parsing.
"""

from __future__ import annotations

import re
import unicodedata

ARABIC_INDIC = "٠١٢٣٤٥٦٧٨٩"
PERSIAN = "۰۱۲۳۴۵۶۷۸۹"
_TO_LATIN = str.maketrans(ARABIC_INDIC + PERSIAN, "0123456789" * 2)
_TO_PERSIAN = str.maketrans("0123456789", PERSIAN)
_TO_ARABIC = str.maketrans("0123456789", ARABIC_INDIC)

# Bidi controls: marks (LRM, RLM, ALM), embeddings/overrides and isolates. Overrides in
# incoming text can make a reply render reversed, so they never survive into storage.
BIDI_CONTROLS = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_STRIP_BIDI = str.maketrans("", "", BIDI_CONTROLS)
_OVERRIDES = str.maketrans("", "", "\u202a\u202b\u202c\u202d\u202e")

# Control characters nobody types on purpose: C0 but tab and newline, DEL and C1. NUL is
# refused by PostgreSQL in text and JSON (SQLite stores it), the others hide or garble
# text; a channel strips them at its edge, and the engine does again so that no input,
# from whatever channel, brings them into state or storage.
_CONTROLS = dict.fromkeys([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)])
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # the same, to find one

# NFKC leaves these apart; people type either form depending on their keyboard.
_LETTER_FOLD = str.maketrans(
    {
        "ي": "ی",  # Arabic yeh → Persian yeh
        "ى": "ی",  # alef maksura
        "ك": "ک",  # Arabic kaf → keheh
        "ة": "ه",  # teh marbuta
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ؤ": "و",
        "ئ": "ی",
        "ـ": None,  # tatweel
        "\u200c": "",  # ZWNJ: می‌خواهم and میخواهم are the same word
        "\u200d": "",
        "٫": ".",  # Arabic decimal separator
        "٬": ",",  # Arabic thousands separator
        "،": ",",
        "؛": ";",
    }
)
_DIACRITICS = re.compile("[\u064b-\u065f\u0670\u06d6-\u06ed]")
_SPACES = re.compile(r"\s+")


def latin_digits(text: str) -> str:
    return text.translate(_TO_LATIN)


def local_digits(text: str, lang: str) -> str:
    """Latin digits shown in the reader's own: Persian ۰-۹ in fa, Arabic-Indic in ar."""
    if lang == "fa":
        return text.translate(_TO_PERSIAN)
    if lang == "ar":
        return text.translate(_TO_ARABIC)
    return text


def without_controls(text: str) -> str:
    """The text without control characters; a carriage return becomes a newline."""
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROLS)


def clean_incoming(text: str) -> str:
    """What we store as a text answer: the text minus controls and bidi overrides, trimmed."""
    return without_controls(text).translate(_OVERRIDES).strip()


def fold(text: str) -> str:
    """A matching key: NFKC, no controls or bidi marks, folded letters and digits, lower case."""
    text = unicodedata.normalize("NFKC", without_controls(text)).translate(_STRIP_BIDI)
    text = _DIACRITICS.sub("", text).translate(_LETTER_FOLD).translate(_TO_LATIN)
    return _SPACES.sub(" ", text).strip().casefold()


def isolate(text: str) -> str:
    """Wrap a value in a first-strong isolate so Latin names and numbers keep their place."""
    return f"\u2068{text}\u2069"


# Punctuation people put around a word or a number ("۹.", "بله!", "«تحویل»"). The
# apostrophe stays inside words (wasn't, i'd), "/" stays for "n/a", "7/10" and /back.
_PUNCTUATION = re.compile(r"[.!?؟,;:…\"«»“”()\[\]{}*~#،؛]+|(?<!\w)'|'(?!\w)")
_STRETCHED = re.compile(r"([^\W\d_])\1+")


def plain(text: str) -> str:
    """The folded text as words only: punctuation around words becomes a space."""
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", fold(text))).strip()


def unstretch(text: str) -> str:
    """Letters held down collapse to one ("نعععم", "yesss", "لاااا"); compare only
    with words that went through the same function."""
    return _STRETCHED.sub(r"\1", text)
