"""Contacts from a CSV file: every row is checked before anything is imported.

Staff export these files from CRMs and spreadsheets in Arabic, Persian and English, so
we accept what such tools write: a UTF-8 byte-order mark, `;` or tab separators, header
names in any case with common aliases (`company` for `account`), Persian and
Arabic-Indic digits in ids. Anything we cannot use is reported as
`FILE:LINE: column: what is wrong (how to fix)`, one line per problem, and then nothing
is imported: a half-imported file is harder to fix than a rejected one.

A row with a NUL character is refused (PostgreSQL cannot store one, and it usually means
a file saved as UTF-16); other control characters are dropped from the text.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import tuple_
from sqlmodel import col, select

from bot.engine.normalize import BIDI_CONTROLS, latin_digits
from bot.flow.model import LANGUAGES
from bot.followups.timing import canonical_timezone
from storage.db import Database
from storage.models import Contact

TELEGRAM = "telegram"
EXTERNAL = "external"

# Canonical column → the header spellings accepted for it (compared after folding case,
# spaces and dashes to "_").
COLUMNS: dict[str, tuple[str, ...]] = {
    "telegram_id": ("telegram_id", "telegram", "chat_id", "telegram_chat_id", "tg_id"),
    "external_id": ("external_id", "id", "customer_id", "crm_id"),
    "name": ("name", "full_name", "contact_name"),
    "first_name": ("first_name", "given_name"),
    "language": ("language", "lang", "locale"),
    "timezone": ("timezone", "time_zone", "tz"),
    "account": ("account", "company", "account_name", "organisation", "organization"),
    "role": ("role", "stakeholder_role", "stakeholder"),
    "segment": ("segment", "group"),
}
_ALIASES = {alias: column for column, aliases in COLUMNS.items() for alias in aliases}
# Contact fields each column fills (account is stored as Contact.company).
_FIELD = {"name": "name", "first_name": "first_name", "language": "language",
          "timezone": "timezone", "account": "company", "role": "role", "segment": "segment"}
_LANGUAGE_NAMES = {
    "arabic": "ar", "عربي": "ar", "العربية": "ar", "عربی": "ar",
    "persian": "fa", "farsi": "fa", "فارسی": "fa", "فارسي": "fa",
    "english": "en", "انگلیسی": "en", "الإنجليزية": "en",
}
_TELEGRAM_ID = re.compile(r"^[+-]?[0-9]+$")
# chat ids are BIGINT columns; Telegram's own stay far below (52 bits)
MAX_CHAT_ID = 2**63 - 1
_STRIP = str.maketrans("", "", BIDI_CONTROLS + "\ufeff\u200b")
# Control characters that are not whitespace (whitespace is collapsed to one space).
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
_UNNAMED = "-"
MAX_TEXT = 200
NUL = "\x00"
HEADER_NUL = ("the header line has NUL characters (\\0): the file is probably UTF-16; save it "
              "as CSV UTF-8 (in Excel: Save As → CSV UTF-8)")


class ContactsFileError(ValueError):
    """The file as a whole cannot be read (missing, not UTF-8, no header …): one line."""


@dataclass(frozen=True)
class RowProblem:
    file: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.column}: {self.message}" if self.column else \
            f"{where}: {self.message}"


@dataclass(frozen=True)
class ContactRow:
    """One valid row: the contact's key and the fields it sets (None: leave as stored)."""

    line: int
    channel: str
    external_id: str
    fields: dict[str, str | None]


@dataclass
class ParsedFile:
    rows: list[ContactRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportSummary:
    created: int
    updated: int
    unchanged: int


def fold_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.translate(_STRIP).strip().casefold())


def _clean(value: str) -> str:
    # Spreadsheets leave bidi marks and runs of spaces around Arabic and Persian text.
    return _CONTROLS.sub("", re.sub(r"\s+", " ", value.translate(_STRIP))).strip()


def nul_problem(values: Sequence[str], header: Sequence[str] | None = None) -> str | None:
    """The one-line problem of a record holding NUL characters, or None: PostgreSQL cannot
    store them (SQLite would). A header line with them is HEADER_NUL."""
    where = [i for i, value in enumerate(values) if NUL in value]
    if not where:
        return None
    names = ", ".join(header[i] if header is not None and i < len(header) and header[i]
                      else f"column {i + 1}" for i in where)
    return (f"{names}: NUL character (\\0) in the text; delete it, or save the file again "
            "as CSV UTF-8 if it was UTF-16")


def read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ContactsFileError(f"{path}: this is a folder, not a CSV file") from None
    except FileNotFoundError:
        raise ContactsFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ContactsFileError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ContactsFileError(f"{path}: the file is UTF-16; save it as CSV UTF-8 "
                                "(in Excel: Save As → CSV UTF-8)")
    try:
        return raw.decode("utf-8-sig")  # the BOM Excel writes is not part of the header
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ContactsFileError(f"{path}:{line}: the file is not UTF-8 text; save it as "
                                "CSV UTF-8 (in Excel: Save As → CSV UTF-8)") from None


def _delimiter(header_line: str) -> str:
    # Excel writes ";" where "," is the decimal separator, and tabs when pasting.
    counts = {sep: header_line.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def read_records(text: str) -> tuple[list[tuple[int, list[str]]], str]:
    """(first line number, values) for each record, and the delimiter used."""
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = _delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for values in reader:
            if any(v.strip() for v in values):
                records.append((line, values))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ContactsFileError(f"line {reader.line_num}: {exc} (check the quotes)") from None
    return records, delimiter


def _header(
    file: str, line: int, values: Sequence[str]
) -> tuple[list[str], list[RowProblem]]:
    columns: list[str] = []
    problems: list[RowProblem] = []
    seen: dict[str, str] = {}
    accepted = sorted(_ALIASES)
    if any(NUL in value for value in values):
        return [], [RowProblem(file, line, "", HEADER_NUL)]
    for raw in values:
        name = fold_header(raw)
        if not name:
            # Spreadsheets often add an empty last column; its cells must stay empty.
            columns.append(_UNNAMED)
            continue
        column = _ALIASES.get(name)
        if column is None:
            close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else \
                f"use {', '.join(COLUMNS)}"
            shown = raw.strip() or "(empty)"
            problems.append(RowProblem(file, line, shown, f"unknown column ({hint})"))
            columns.append("")
            continue
        if column in seen:
            problems.append(RowProblem(file, line, raw.strip(), f"the {column} column "
                                       f"appears twice ({seen[column]!r} and {raw.strip()!r}); "
                                       "keep one"))
        seen[column] = raw.strip()
        columns.append(column)
    if not problems and "telegram_id" not in seen and "external_id" not in seen:
        problems.append(RowProblem(file, line, "", "no id column: add telegram_id (the "
                                   "person's numeric Telegram chat id) or external_id (your "
                                   "own customer id)"))
    return columns, problems


def _language(value: str) -> str | None:
    folded = value.casefold()
    code = re.split(r"[-_]", folded, maxsplit=1)[0]
    if code in LANGUAGES:
        return code
    return _LANGUAGE_NAMES.get(folded)


def _timezone_hint(value: str) -> str:
    city = value.strip().replace(" ", "_").casefold()
    from zoneinfo import available_timezones

    matches = sorted(z for z in available_timezones() if z.casefold().endswith("/" + city))
    if matches:
        return f"did you mean {matches[0]}?"
    return "use an IANA name such as Asia/Tehran, Asia/Riyadh or Europe/London, or leave it empty"


def _row(
    file: str, line: int, columns: list[str], values: list[str], problems: list[RowProblem]
) -> ContactRow | None:
    before = len(problems)
    if len(values) > len(columns) and not any(v.strip() for v in values[len(columns):]):
        values = values[: len(columns)]  # trailing separators, as some exports write
    if len(values) != len(columns):
        problems.append(RowProblem(file, line, "", f"{len(values)} values but the header has "
                                   f"{len(columns)} columns (put values that contain the "
                                   "separator in double quotes)"))
        return None
    nul = nul_problem(values, columns)
    if nul is not None:
        problems.append(RowProblem(file, line, "", nul))
        return None
    cells: dict[str, str] = {}
    for index, (column, value) in enumerate(zip(columns, values, strict=True), start=1):
        if column == _UNNAMED:
            if _clean(value):
                problems.append(RowProblem(file, line, f"column {index}", f"{_clean(value)!r} "
                                           "is under a column without a name (name the "
                                           "column or delete the value)"))
            continue
        cells[column] = _clean(value)
    telegram_id = latin_digits(cells.get("telegram_id", "")).replace(" ", "")
    external_id = latin_digits(cells.get("external_id", ""))
    if telegram_id and not _TELEGRAM_ID.match(telegram_id):
        problems.append(RowProblem(file, line, "telegram_id", f"{cells['telegram_id']!r} is "
                                   "not a numeric Telegram chat id (use digits only, e.g. "
                                   "123456789; put other ids in external_id)"))
    elif telegram_id and int(telegram_id) < 0:
        problems.append(RowProblem(file, line, "telegram_id", f"{cells['telegram_id']} is a "
                                   "group or channel chat id: a person's chat id is positive "
                                   "(e.g. 123456789); surveys go to people, one chat each"))
    elif telegram_id and int(telegram_id) == 0:
        problems.append(RowProblem(file, line, "telegram_id", "0 is not a Telegram chat id (a "
                                   "person's chat id is a positive number, e.g. 123456789)"))
    elif telegram_id and int(telegram_id) > MAX_CHAT_ID:
        problems.append(RowProblem(file, line, "telegram_id", f"{cells['telegram_id']} is too "
                                   "large for a Telegram chat id (they have at most 16 "
                                   "digits; check the column)"))
    if len(external_id) > MAX_TEXT:
        problems.append(RowProblem(file, line, "external_id", f"longer than {MAX_TEXT} "
                                   "characters (use your CRM's id, not a description)"))
    if not telegram_id and not external_id:
        which = " or ".join(c for c in ("telegram_id", "external_id") if c in columns)
        problems.append(RowProblem(file, line, which, "empty id (every row needs one to "
                                   "recognise the contact when the file is imported again)"))
    fields: dict[str, str | None] = {}
    for column, target in _FIELD.items():
        value = cells.get(column, "")
        if len(value) > MAX_TEXT:
            problems.append(RowProblem(file, line, column, f"longer than {MAX_TEXT} "
                                       "characters (shorten it)"))
        fields[target] = value or None
    if fields["language"] is not None:
        lang = _language(fields["language"])
        if lang is None:
            problems.append(RowProblem(file, line, "language", f"{cells['language']!r} is "
                                       "not ar, fa or en (leave it empty to use the flow's "
                                       "default language)"))
        fields["language"] = lang
    if fields["timezone"] is not None:
        tz = canonical_timezone(fields["timezone"])
        if tz is None:
            problems.append(RowProblem(file, line, "timezone", f"{cells['timezone']!r} is not "
                                       f"a time zone ({_timezone_hint(cells['timezone'])})"))
        fields["timezone"] = tz
    if len(problems) > before:
        return None
    if telegram_id:
        return ContactRow(line, TELEGRAM, str(int(telegram_id)), fields)
    return ContactRow(line, EXTERNAL, external_id, fields)


def parse_contacts(path: Path, *, shown_as: str | None = None) -> ParsedFile:
    """Read and check every row; raises ContactsFileError when the file itself is unusable.

    `shown_as` is the file name used in problems (default: the path as given).
    """
    file = shown_as or str(path)
    text = read_text(path)
    try:
        records, _delimiter_used = read_records(text)
    except ContactsFileError as exc:
        raise ContactsFileError(f"{file}: {exc}") from None
    if not records:
        raise ContactsFileError(f"{file}: the file is empty; the first line must name the "
                                f"columns, e.g. telegram_id,name,language,timezone,account,"
                                "role,segment")
    header_line, header = records[0]
    parsed = ParsedFile()
    parsed.columns, parsed.problems = _header(file, header_line, header)
    if parsed.problems:
        return parsed
    seen: dict[tuple[str, str], int] = {}
    for line, values in records[1:]:
        row = _row(file, line, parsed.columns, values, parsed.problems)
        if row is None:
            continue
        key = (row.channel, row.external_id)
        if key in seen:
            column = "telegram_id" if row.channel == TELEGRAM else "external_id"
            parsed.problems.append(RowProblem(file, line, column, f"{row.external_id} is also "
                                              f"on line {seen[key]} (keep one row per "
                                              "contact; digits in any script count as the "
                                              "same)"))
            continue
        seen[key] = line
        parsed.rows.append(row)
    if not parsed.rows and not parsed.problems:
        parsed.problems.append(RowProblem(file, header_line, "", "no contacts below the "
                                          "header line"))
    return parsed


def _chunks(items: Sequence[ContactRow], size: int = 500) -> Iterable[Sequence[ContactRow]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def import_contacts(
    db: Database, rows: Sequence[ContactRow], *, now: datetime
) -> ImportSummary:
    """Create or update every row in one transaction, keyed on (channel, id).

    Empty cells leave what is stored (a language the person chose in chat survives a
    re-import without one); opt-out and reachability are never touched here.
    """
    created = updated = unchanged = 0
    async with db.session() as s, s.begin():
        for chunk in _chunks(rows):
            keys = [(r.channel, r.external_id) for r in chunk]
            found = await s.exec(select(Contact).where(
                tuple_(col(Contact.channel), col(Contact.external_id)).in_(keys)))
            existing = {(c.channel, c.external_id): c for c in found}
            for row in chunk:
                # text fields of Contact only (FIELDS); mypy cannot tell which keys
                changes: dict[str, Any] = {
                    k: v for k, v in row.fields.items() if v is not None
                }
                contact = existing.get((row.channel, row.external_id))
                if contact is None:
                    s.add(Contact(channel=row.channel, external_id=row.external_id,
                                  created_at=now, updated_at=now, **changes))
                    created += 1
                elif any(getattr(contact, k) != v for k, v in changes.items()):
                    contact.sqlmodel_update({**changes, "updated_at": now})
                    updated += 1
                else:
                    unchanged += 1
            await s.flush()
    return ImportSummary(created, updated, unchanged)
