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

from sqlmodel import col, select

from bot.engine.normalize import BIDI_CONTROLS, latin_digits
from bot.flow.model import LANGUAGES
from bot.followups.timing import canonical_timezone
from bot.messaging.registry import CHANNELS, Channel
from storage.db import Database
from storage.models import Contact, ContactIdentity

TELEGRAM = "telegram"

# Header spellings files written before there was more than one channel use for Telegram.
_LEGACY_ALIASES = {TELEGRAM: ("chat_id", "telegram_chat_id", "tg_id")}
# Canonical column → the header spellings accepted for it (compared after folding case,
# spaces and dashes to "_"). A column per channel of the registry comes first (see
# `column_aliases()`): `<channel>_id`, alias `<channel>`.
FIXED_COLUMNS: dict[str, tuple[str, ...]] = {
    "external_id": ("external_id", "id", "customer_id", "crm_id"),
    "preferred_channel": ("preferred_channel", "preferred", "channel"),
    "name": ("name", "full_name", "contact_name"),
    "first_name": ("first_name", "given_name"),
    "language": ("language", "lang", "locale"),
    "timezone": ("timezone", "time_zone", "tz"),
    "account": ("account", "company", "account_name", "organisation", "organization"),
    "role": ("role", "stakeholder_role", "stakeholder"),
    "segment": ("segment", "group"),
}
# Contact fields each column fills (account is stored as Contact.company).
_FIELD = {"name": "name", "first_name": "first_name", "language": "language",
          "timezone": "timezone", "account": "company", "role": "role", "segment": "segment"}
_LANGUAGE_NAMES = {
    "arabic": "ar", "عربي": "ar", "العربية": "ar", "عربی": "ar",
    "persian": "fa", "farsi": "fa", "فارسی": "fa", "فارسي": "fa",
    "english": "en", "انگلیسی": "en", "الإنجليزية": "en",
}
_STRIP = str.maketrans("", "", BIDI_CONTROLS + "\ufeff\u200b")
# Control characters that are not whitespace (whitespace is collapsed to one space).
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
_UNNAMED = "-"
MAX_TEXT = 200
NUL = "\x00"
HEADER_NUL = ("the header line has NUL characters (\\0): the file is probably UTF-16; save it "
              "as CSV UTF-8 (in Excel: Save As → CSV UTF-8)")


def identity_column(channel: str) -> str:
    return f"{channel}_id"


def identity_channels() -> list[Channel]:
    """The channels a contacts file may give an id for: those of the registry that say what
    an address on them looks like (a console preview has no one to import)."""
    return [c for c in CHANNELS if c.address is not None]


def column_aliases() -> dict[str, tuple[str, ...]]:
    """Canonical column → accepted spellings: `<channel>_id` for each channel, then the rest."""
    found: dict[str, tuple[str, ...]] = {}
    for channel in identity_channels():
        found[identity_column(channel.name)] = (identity_column(channel.name), channel.name,
                                                *_LEGACY_ALIASES.get(channel.name, ()))
    return found | FIXED_COLUMNS


def _aliases() -> dict[str, str]:
    return {alias: column for column, aliases in column_aliases().items() for alias in aliases}


def id_columns() -> list[str]:
    """The columns that identify a contact: one per channel, and external_id."""
    return [identity_column(c.name) for c in identity_channels()] + ["external_id"]


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
    """One valid row: the contact's ids (the company's own, and an address per channel) and
    the fields it sets (None: leave as stored)."""

    line: int
    external_id: str | None
    identities: dict[str, str]  # channel → address
    fields: dict[str, str | None]

    def ids(self) -> list[tuple[str, str]]:
        """(column, value) of each id the row gives, for one-line problems."""
        found = [(identity_column(c), a) for c, a in self.identities.items()]
        if self.external_id:
            found.append(("external_id", self.external_id))
        return found


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
    aliases = _aliases()
    accepted = sorted(aliases)
    if any(NUL in value for value in values):
        return [], [RowProblem(file, line, "", HEADER_NUL)]
    for raw in values:
        name = fold_header(raw)
        if not name:
            # Spreadsheets often add an empty last column; its cells must stay empty.
            columns.append(_UNNAMED)
            continue
        column = aliases.get(name)
        if column is None:
            close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else \
                f"use {', '.join(column_aliases())}"
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
    if not problems and not any(column in seen for column in id_columns()):
        chats = ", ".join(id_columns()[:-1])
        problems.append(RowProblem(file, line, "", f"no id column: add {chats} (the person's "
                                   "chat id on that channel) or external_id (your own "
                                   "customer id)"))
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
    identities: dict[str, str] = {}
    for channel in identity_channels():
        column = identity_column(channel.name)
        address = latin_digits(cells.get(column, "")).replace(" ", "")
        if not address:
            continue
        fmt = channel.address
        # Stored as the channel keeps it (a phone number's E.164 digits), whatever the form.
        stored = address if fmt is None else fmt.normalised(address)
        if len(address) > MAX_TEXT:
            problems.append(RowProblem(file, line, column, f"longer than {MAX_TEXT} "
                                       f"characters (a {channel.title} id is short)"))
        elif fmt is not None and stored is None:
            problems.append(RowProblem(file, line, column, f"{cells[column]!r} is not a "
                                       f"{channel.title} id (use {fmt.hint}; put other ids "
                                       "in external_id)"))
        elif stored is not None:
            identities[channel.name] = stored
    external_id = latin_digits(cells.get("external_id", ""))
    if len(external_id) > MAX_TEXT:
        problems.append(RowProblem(file, line, "external_id", f"longer than {MAX_TEXT} "
                                   "characters (use your CRM's id, not a description)"))
    given = [c for c in id_columns() if cells.get(c)]
    if not given:
        which = " or ".join(c for c in id_columns() if c in columns)
        problems.append(RowProblem(file, line, which, "empty id (every row needs one to "
                                   "recognise the contact when the file is imported again)"))
    preferred = cells.get("preferred_channel", "").casefold() or None
    if preferred is not None and preferred not in {c.name for c in identity_channels()}:
        names = ", ".join(c.name for c in identity_channels())
        problems.append(RowProblem(file, line, "preferred_channel",
                                   f"{cells['preferred_channel']!r} is not a channel (use one "
                                   f"of {names}, or leave it empty)"))
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
    fields["preferred_channel"] = preferred
    return ContactRow(line, external_id or None, identities, fields)


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
        repeated = [(column, value) for column, value in row.ids() if (column, value) in seen]
        for column, value in repeated:
            parsed.problems.append(RowProblem(file, line, column, f"{value} is also on line "
                                              f"{seen[(column, value)]} (keep one row per "
                                              "contact; digits in any script count as the "
                                              "same)"))
        if repeated:
            continue
        seen |= {key: line for key in row.ids()}
        parsed.rows.append(row)
    if not parsed.rows and not parsed.problems:
        parsed.problems.append(RowProblem(file, header_line, "", "no contacts below the "
                                          "header line"))
    return parsed


def _chunks(items: Sequence[ContactRow], size: int = 500) -> Iterable[Sequence[ContactRow]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class ImportConflict(ContactsFileError):
    """Rows that disagree with what is stored (an id owned by another contact): nothing was
    imported; one RowProblem per line."""

    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


async def import_contacts(
    db: Database, rows: Sequence[ContactRow], *, now: datetime, file: str = ""
) -> ImportSummary:
    """Create or update every row in one transaction: a row is the contact any of its ids
    (external_id, a channel's id) already belongs to, or a new one; ids it lacks are added.

    A row whose ids belong to two different stored contacts is a problem, and then nothing
    is imported (ImportConflict). Empty cells leave what is stored (a language the person
    chose in chat survives a re-import without one); opt-out and reachability are never
    touched here.
    """
    created = updated = unchanged = 0
    problems: list[RowProblem] = []
    async with db.session() as s, s.begin():
        for chunk in _chunks(rows):
            by_company, by_address = await _stored(s, chunk)
            for row in chunk:
                owners: dict[int, str] = {}
                if row.external_id and row.external_id in by_company:
                    owners.setdefault(by_company[row.external_id].contact_id, "external_id")
                for channel, address in row.identities.items():
                    known = by_address.get((channel, address))
                    if known is not None:
                        owners.setdefault(known.contact_id, identity_column(channel))
                if len(owners) > 1:
                    (a, first), (b, second) = list(owners.items())[:2]
                    problems.append(RowProblem(file, row.line, second, f"belongs to contact "
                                               f"{b}, but {first} is contact {a}'s (one row "
                                               "per person: fix the ids, or merge them in "
                                               "your file)"))
                    continue
                # text fields of Contact only; mypy cannot tell which keys
                changes: dict[str, Any] = {
                    k: v for k, v in row.fields.items() if v is not None
                }
                changed = False
                if owners:
                    contact = await s.get(Contact, next(iter(owners)))
                    assert contact is not None
                    if row.external_id and contact.external_id != row.external_id:
                        if contact.external_id is not None:
                            problems.append(RowProblem(file, row.line, "external_id",
                                                       f"contact {contact.id} has external_id "
                                                       f"{contact.external_id}, not "
                                                       f"{row.external_id} (fix the file)"))
                            continue
                        changes["external_id"] = row.external_id
                    if any(getattr(contact, k) != v for k, v in changes.items()):
                        contact.sqlmodel_update({**changes, "updated_at": now})
                        changed = True
                else:
                    contact = Contact(external_id=row.external_id, created_at=now,
                                      updated_at=now, **changes)
                    s.add(contact)
                    await s.flush()
                assert contact.id is not None
                for channel, address in row.identities.items():
                    if (channel, address) not in by_address:
                        identity = ContactIdentity(contact_id=contact.id, channel=channel,
                                                   address=address, created_at=now)
                        s.add(identity)
                        by_address[(channel, address)] = identity
                        changed = True
                if row.external_id:
                    by_company[row.external_id] = _Owner(contact.id)
                if not owners:
                    created += 1
                elif changed:
                    updated += 1
                else:
                    unchanged += 1
            await s.flush()
        if problems:
            raise ImportConflict(problems)  # the transaction rolls back: nothing imported
    return ImportSummary(created, updated, unchanged)


@dataclass(frozen=True)
class _Owner:
    contact_id: int


async def _stored(
    s: Any, chunk: Sequence[ContactRow]
) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    """Who already has the chunk's ids: company id → owner, (channel, address) → identity."""
    companies = [r.external_id for r in chunk if r.external_id]
    by_company: dict[str, Any] = {}
    if companies:
        for contact_id, external_id in (await s.exec(
                select(Contact.id, Contact.external_id)
                .where(col(Contact.external_id).in_(companies)))).all():
            by_company[external_id] = _Owner(contact_id)
    by_address: dict[tuple[str, str], Any] = {}
    pairs = [(c, a) for r in chunk for c, a in r.identities.items()]
    for channel in {c for c, _ in pairs}:
        addresses = [a for c, a in pairs if c == channel]
        for identity in await s.exec(select(ContactIdentity).where(
                ContactIdentity.channel == channel,
                col(ContactIdentity.address).in_(addresses))):
            by_address[(channel, identity.address)] = identity
    return by_company, by_address
