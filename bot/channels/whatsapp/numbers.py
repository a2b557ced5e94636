"""Phone numbers as WhatsApp addresses them: E.164 digits without the "+".

Apart from channel.py, so that the settings (loaded by every `sada` command) read a number
without the channel's keyboards, catalogs and flow model.
"""

from __future__ import annotations

import re

from bot.engine.normalize import BIDI_CONTROLS, latin_digits

__all__ = ["E164", "e164"]

# E.164: a country code that does not start with 0, at most 15 digits in all. Eight at
# least: shorter numbers exist only inside a few small countries' own plans.
E164 = "[1-9][0-9]{7,14}"
# What people put between the digits of a phone number, in spreadsheets and CRMs.
_SEPARATORS = re.compile(r"[\s.\-‐‑‒–—/()\[\]" + BIDI_CONTROLS + "\u200b\ufeff]")
# "+44 (0)20 …": the national trunk 0 some write after the country code, in parentheses.
_TRUNK = re.compile(r"^(\+|00)\s*([1-9][0-9]{0,2})\s*\(0\)")


def e164(written: str) -> str | None:
    """The E.164 digits of a phone number as people write it ("+971 50 123-4567",
    "00966 (55) 123 4567", Persian or Arabic-Indic digits), or None when it is not an
    international number: a national one ("0912 …") lacks its country code, and a guess
    would message a stranger."""
    text = _TRUNK.sub(r"\1\2", latin_digits(written.strip()))
    digits = _SEPARATORS.sub("", text)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    else:
        return None  # no "+" and no "00": a national number, or not a number at all
    return digits if re.fullmatch(E164, digits) else None
