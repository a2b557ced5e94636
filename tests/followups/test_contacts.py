"""Contacts from CSV: every bad row listed and nothing imported, re-imports update in place."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import contacts as contacts_cli
from bot.cli import invite as invite_cli
from bot.followups.contacts_csv import (
    ContactRow,
    ContactsFileError,
    import_contacts,
    parse_contacts,
)
from bot.settings import get_settings
from storage.db import Database
from storage.models import Contact, ContactIdentity
from storage.repo import Store

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "contacts"
STAKEHOLDERS = FIXTURES / "stakeholders.csv"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

runner = CliRunner()


def sada() -> typer.Typer:
    """The two commands as the lead mounts them under `sada`."""
    app = typer.Typer()
    app.add_typer(contacts_cli.app, name="contacts")
    app.command("invite")(invite_cli.invite)
    return app


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """SADA_* settings pointing at a temporary SQLite file, flows and data folder."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("SADA_DATABASE_URL", url)
    monkeypatch.setenv("SADA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SADA_FLOWS_DIR", str(tmp_path / "flows"))
    monkeypatch.setenv("SADA_BOT_USERNAME", "sada_test_bot")
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: keep names on one line
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


# --- checking files -----------------------------------------------------------------------


def _keys(rows: list[ContactRow]) -> list[tuple[str, str | None]]:
    """Each row's first id as (channel, id); "external" for the company's own id."""
    return [next(iter(r.identities.items())) if r.identities else ("external", r.external_id)
            for r in rows]


def test_a_good_file_with_bom_aliases_and_local_digits() -> None:
    parsed = parse_contacts(STAKEHOLDERS)
    assert parsed.problems == []
    assert _keys(parsed.rows) == [("telegram", "1001"), ("telegram", "1002"), ("telegram", "1003"),
                    ("telegram", "1004"), ("telegram", "2001"), ("telegram", "2002"),
                    ("telegram", "3001"), ("external", "CRM-17"), ("external", "CRM-18")]
    reza = parsed.rows[1].fields  # ۱۰۰۲, FA, asia/tehran
    assert reza["language"] == "fa" and reza["timezone"] == "Asia/Tehran"
    assert reza["company"] == "Pars Steel" and reza["name"] == "رضا کریمی"
    assert parsed.rows[5].fields["language"] == "ar"  # "Arabic"
    assert parsed.rows[8].fields["name"] == "Nguyen, Minh"
    assert parsed.rows[8].fields["company"] is None


def test_every_bad_row_is_listed_with_its_line_and_fix() -> None:
    parsed = parse_contacts(FIXTURES / "bad_rows.csv", shown_as="bad_rows.csv")
    assert [str(p) for p in parsed.problems] == [
        "bad_rows.csv:2: telegram_id: '12ab' is not a Telegram id (use a positive number "
        "like 123456789, the person's chat id; put other ids in external_id)",
        "bad_rows.csv:3: telegram_id or external_id: empty id (every row needs one to "
        "recognise the contact when the file is imported again)",
        "bad_rows.csv:5: telegram_id: 1001 is also on line 4 (keep one row per contact; "
        "digits in any script count as the same)",
        "bad_rows.csv:6: language: 'de' is not ar, fa or en (leave it empty to use the "
        "flow's default language)",
        "bad_rows.csv:7: timezone: 'Tehran' is not a time zone (did you mean Asia/Tehran?)",
        "bad_rows.csv:8: 9 values but the header has 8 columns (put values that contain "
        "the separator in double quotes)",
    ]


def test_unknown_columns_suggest_the_right_name() -> None:
    parsed = parse_contacts(FIXTURES / "unknown_column.csv", shown_as="f.csv")
    assert [str(p) for p in parsed.problems] == [
        "f.csv:1: compnay: unknown column (did you mean company?)",
        "f.csv:1: favourite_colour: unknown column (use bale_id, telegram_id, web_id, "
        "whatsapp_id, external_id, preferred_channel, name, first_name, language, timezone, "
        "account, role, segment)",
    ]
    parsed = parse_contacts(FIXTURES / "no_id_column.csv", shown_as="f.csv")
    assert str(parsed.problems[0]) == (
        "f.csv:1: no id column: add bale_id, telegram_id, web_id, whatsapp_id (the person's "
        "chat id on that channel) or external_id (your own customer id)")


def test_semicolons_and_external_ids() -> None:
    parsed = parse_contacts(FIXTURES / "semicolons.csv")
    assert parsed.problems == []
    assert [(*key, r.fields["timezone"]) for key, r in zip(_keys(parsed.rows), parsed.rows,
                                                            strict=True)] == [
        ("external", "C-1", "Asia/Riyadh"), ("external", "C-2", "Asia/Tehran")]


def test_quirks_of_spreadsheet_exports(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    # trailing separators, an unnamed empty column, blank lines, bidi marks around values
    path.write_text("telegram_id,name,language,\n\n 55 ,\u200fسارا\u200f ,fa,,\n",
                    encoding="utf-8")
    parsed = parse_contacts(path)
    assert parsed.problems == []
    assert parsed.rows[0].identities == {"telegram": "55"}
    assert parsed.rows[0].fields["name"] == "سارا"
    path.write_text("telegram_id,name,\n56,Reza,oops\n", encoding="utf-8")
    assert "under a column without a name" in str(parse_contacts(path).problems[0])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"telegram_id,name\n", "no contacts below the header line"),
        ("telegram_id,name\n1,Sara\n".encode("utf-16"), "UTF-16"),
        (b"telegram_id,name\n1,\xe9t\xe9\n", "not UTF-8"),
    ],
    ids=["empty", "header-only", "utf16", "latin1"],
)
def test_unusable_files_are_one_line(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    try:
        parsed = parse_contacts(path)
    except ContactsFileError as exc:
        message = str(exc)
    else:
        message = "\n".join(str(p) for p in parsed.problems)
    assert expected in message and "\n" not in message


def test_hostile_cells_are_refused_row_by_row(tmp_path: Path) -> None:
    """NUL (PostgreSQL cannot store it), group chat ids, ids no column holds and ids too long
    for an index: one line each, naming the row; the good rows still parse."""
    path = tmp_path / "c.csv"
    path.write_bytes("telegram_id,external_id,name\n"
                     "1001,,Sa\x00ra\n"
                     "-1001234567890,,Team chat\n"
                     "0,,Nobody\n"
                     "99999999999999999999,,Too big\n"
                     f",{'x' * 201},Long\n"
                     "1002,,Re\x1bza\u202e\n".encode())
    parsed = parse_contacts(path, shown_as="c.csv")
    assert [str(p) for p in parsed.problems] == [
        "c.csv:2: name: NUL character (\\0) in the text; delete it, or save the file again "
        "as CSV UTF-8 if it was UTF-16",
        *(f"c.csv:{line}: telegram_id: {value!r} is not a Telegram id (use a positive number "
          "like 123456789, the person's chat id; put other ids in external_id)"
          for line, value in ((3, "-1001234567890"), (4, "0"), (5, "99999999999999999999"))),
        "c.csv:6: external_id: longer than 200 characters (use your CRM's id, not a "
        "description)",
    ]
    # control characters and overrides are dropped from names, as bidi marks always were
    assert [(r.identities, r.fields["name"]) for r in parsed.rows] == [
        ({"telegram": "1002"}, "Reza")]


def test_a_utf16_file_without_its_bom_is_refused_at_the_header(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("telegram_id,name\n1,Sara\n".encode("utf-16-le"))
    [problem] = parse_contacts(path, shown_as="c.csv").problems
    assert str(problem) == ("c.csv:1: the header line has NUL characters (\\0): the file is "
                            "probably UTF-16; save it as CSV UTF-8 (in Excel: Save As → CSV "
                            "UTF-8)")


async def test_nothing_with_a_nul_reaches_the_database(database: Database,
                                                      tmp_path: Path) -> None:
    """Stored by SQLite, refused by PostgreSQL with a traceback before: now refused at the
    file, on both, and the rest imports."""
    path = tmp_path / "c.csv"
    path.write_bytes(b"external_id,name,account\nCRM-1,A\x00b,Acme\nCRM-2,Reza,Acme\x00\n"
                     b"CRM-3,Sara,Acme\n")
    parsed = parse_contacts(path)
    assert [p.line for p in parsed.problems] == [2, 3]
    summary = await import_contacts(database, parsed.rows, now=NOW)
    assert summary.created == 1 and list(await _all(database)) == ["CRM-3"]


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ContactsFileError, match="no such file"):
        parse_contacts(tmp_path / "nope.csv")
    with pytest.raises(ContactsFileError, match="folder"):
        parse_contacts(tmp_path)


# --- importing ----------------------------------------------------------------------------


async def _all(database: Database) -> dict[str | None, Contact]:
    """Contacts by their Telegram chat id, else their external id."""
    async with database.session() as s, s.begin():
        chats = {i.contact_id: i.address for i in (await s.exec(select(ContactIdentity)))
                 if i.channel == "telegram"}
        return {chats.get(c.id or 0, c.external_id): c
                for c in (await s.exec(select(Contact))).all()}


async def test_import_then_reimport_updates_in_place(database: Database, store: Store) -> None:
    rows = parse_contacts(STAKEHOLDERS).rows
    first = await import_contacts(database, rows, now=NOW)
    assert (first.created, first.updated, first.unchanged) == (9, 0, 0)
    again = await import_contacts(database, rows, now=NOW)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 9)

    sara = await store.find_contact("telegram", "1001")
    assert sara is not None and sara.id is not None
    await store.set_contact_flags(sara.id, opted_out=True)

    update = await import_contacts(
        database, parse_contacts(FIXTURES / "stakeholders_update.csv").rows, now=NOW)
    assert (update.created, update.updated, update.unchanged) == (1, 2, 1)
    contacts = await _all(database)
    assert len(contacts) == 10
    assert contacts["1001"].role == "decision_maker" and contacts["1001"].opted_out
    assert contacts["1001"].id == sara.id and contacts["1001"].language == "fa"
    assert contacts["1002"].role == "user"  # empty cells leave what is stored
    assert contacts["3001"].timezone == "Europe/Dublin"
    assert contacts["4001"].company == "Thames Tools"


async def test_a_contact_made_by_the_bot_is_updated_not_duplicated(
    database: Database, store: Store
) -> None:
    # the person talked to the bot first: the core created (telegram, chat id)
    bot_made = await store.upsert_contact("telegram", "1001", first_name="Sara", language="en")
    await import_contacts(database, parse_contacts(STAKEHOLDERS).rows, now=NOW)
    contacts = await _all(database)
    assert contacts["1001"].id == bot_made.id and contacts["1001"].company == "Pars Steel"
    assert contacts["1001"].first_name == "Sara" and contacts["1001"].language == "fa"


# --- the commands -------------------------------------------------------------------------


def test_cli_import_and_list(cli_db: str) -> None:
    result = runner.invoke(sada(), ["contacts", "import", str(STAKEHOLDERS)])
    assert result.exit_code == 0, result.output
    assert "created" in result.output and "9" in result.output

    result = runner.invoke(sada(), ["contacts", "import", str(STAKEHOLDERS)])
    assert result.exit_code == 0 and "unchanged" in result.output

    result = runner.invoke(sada(), ["contacts", "list", "--segment", "enterprise",
                                    "--role", "buyer"])
    assert result.exit_code == 0, result.output
    assert "سارا احمدی" in result.output and "علی رضایی" in result.output
    assert "James" not in result.output and "showing 3 of 3" in result.output

    result = runner.invoke(sada(), ["contacts", "list", "--limit", "2"])
    assert "showing 2 of 9" in result.output

    result = runner.invoke(sada(), ["contacts", "list", "--opted-out"])
    assert result.exit_code == 0 and "no contacts match" in result.output


def test_cli_import_of_a_bad_file_imports_nothing(cli_db: str) -> None:
    result = runner.invoke(sada(), ["contacts", "import", str(FIXTURES / "bad_rows.csv")])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # no traceback
    for line in (2, 3, 5, 6, 7, 8):
        assert f"bad_rows.csv:{line}: " in result.output
    assert "nothing imported: 6 problems on 6 lines" in result.output
    result = runner.invoke(sada(), ["contacts", "list"])
    assert "no contacts match" in result.output  # not even the good row 1008


def test_cli_import_check_only(cli_db: str) -> None:
    result = runner.invoke(sada(), ["contacts", "import", "--check", str(STAKEHOLDERS)])
    assert result.exit_code == 0 and "9 contacts, no problems" in result.output
    assert "no contacts match" in runner.invoke(sada(), ["contacts", "list"]).output


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["contacts", "import", "missing.csv"], 1, "missing.csv: no such file"),
        (["contacts", "list", "--reachable", "--opted-out"], 2, "cannot be combined"),
        (["contacts", "list", "--language", "de"], 2, "--language must be ar, fa or en"),
    ],
    ids=["missing-file", "conflicting-flags", "bad-language"],
)
def test_cli_errors_are_one_line(cli_db: str, args: list[str], code: int, expected: str) -> None:
    result = runner.invoke(sada(), args)
    assert result.exit_code == code
    assert isinstance(result.exception, SystemExit)
    assert expected in result.output and "Traceback" not in result.output


def test_cli_reports_a_bad_database_url(cli_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SADA_DATABASE_URL", "mysql://db/sada")
    get_settings.cache_clear()
    result = runner.invoke(sada(), ["contacts", "list"])
    assert result.exit_code == 2 and "SADA_DATABASE_URL" in result.output
