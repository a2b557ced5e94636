"""`sada contacts list`, `sada cases list` and `sada actions list` fit an 80-column terminal
(columns chosen by width, text wrapped, nothing cut) and give csv or json for a pipe."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.followups.test_alerts import B2B, _one_case, cli_database, on_database

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
LONG = ("We moved deliveries to the morning slot and added a second driver for the Riyadh "
        "route, so orders arrive before noon")


@pytest.fixture
def cli(head_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from cli_database(head_url, monkeypatch)


def _at(monkeypatch: pytest.MonkeyPatch, columns: int, *args: str) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout  # what a pipe gets; notes such as the count go to stderr


def _fits(output: str, columns: int) -> None:
    too_wide = [line for line in output.splitlines() if len(line.rstrip()) > columns]
    assert not too_wide, too_wide


def test_contacts_list_fits_80_columns_and_pipes(cli: str, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    _at(monkeypatch, 80, "contacts", "import", str(ROOT / "docs/examples/contacts.csv"))
    narrow = _at(monkeypatch, 80, "contacts", "list")
    _fits(narrow, 80)
    header = narrow.splitlines()[0].split()
    assert header[0] == "id" and "name" in header and "account" in header
    assert "timezone" not in header  # the first to go when narrow, and said so
    assert "not shown at 80 columns: " in narrow and "timezone" in narrow
    assert "showing 6 of 6" in narrow
    wide = _at(monkeypatch, 200, "contacts", "list")
    assert "timezone" in wide.splitlines()[0] and "not shown" not in wide

    rows = list(csv.DictReader(io.StringIO(_at(monkeypatch, 80, "contacts", "list", "-f",
                                               "csv"))))
    assert rows and set(rows[0]) >= {"id", "name", "timezone", "account", "role", "state"}
    assert "showing" not in "".join(r["id"] for r in rows)  # the count goes to stderr
    records = json.loads(_at(monkeypatch, 80, "contacts", "list", "--format", "json"))
    assert isinstance(records[0]["id"], int) and records[0]["state"] == "ok"


def test_actions_list_wraps_long_text_instead_of_cutting_it(
    cli: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _at(monkeypatch, 80, "actions", "add", "--flow", "b2b-supplier", "--text-en", LONG,
        "--text-ar", "نقلنا التوصيل إلى الصباح", "--promised", "2099-12-20")
    for columns in (80, 60):
        shown = _at(monkeypatch, columns, "actions", "list")
        _fits(shown, columns)
        words = " ".join(line[20:] for line in shown.splitlines())
        for word in ("deliveries", "Riyadh", "noon", "2099-12-20", "told"):
            assert word in words, (columns, word, shown)
    [record] = json.loads(_at(monkeypatch, 80, "actions", "list", "-f", "json"))
    assert record["text_en"] == LONG and record["promised"] == "2099-12-20"
    [row] = csv.DictReader(io.StringIO(_at(monkeypatch, 80, "actions", "list", "-f", "csv")))
    assert row["text_ar"] == "نقلنا التوصيل إلى الصباح" and row["told"] == "0"


def test_cases_list_fits_80_columns_and_pipes(cli: str, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    from bot.flow.loader import load_flow

    b2b = load_flow(B2B)
    case_id = on_database(cli, lambda store: _one_case(store, b2b))
    shown = _at(monkeypatch, 80, "cases", "list")
    _fits(shown, 80)
    for part in ("Nadia", "nps 2", "3h 05m", "1 case, 1 open"):
        assert part in shown, (part, shown)
    [record] = json.loads(_at(monkeypatch, 80, "cases", "list", "-f", "json"))
    assert record["id"] == case_id and record["score"] == 2 and record["status"] == "open"
    [row] = csv.DictReader(io.StringIO(_at(monkeypatch, 80, "cases", "list", "-f", "csv")))
    assert row["contact"] == "Nadia" and row["account"] == "Globex"


def test_an_unknown_format_is_one_line(cli: str) -> None:
    for args in (["contacts", "list"], ["cases", "list"], ["actions", "list"]):
        result = runner.invoke(app, [*args, "--format", "xml"])
        assert result.exit_code == 2
        assert result.output == "--format 'xml' is not one of: table, csv, json\n"


def test_lists_show_hostile_values_on_one_line_and_csv_never_runs_them(
    cli: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name from Telegram reversing the row, a CRM account that is a formula (issue 10)."""
    from storage.repo import Store

    async def hostile(store: Store) -> None:
        await store.upsert_contact("telegram", "777", name="\u202eevil\u2028Resolve: 1",
                                   company="=SUM(A1:A9)", role="-buyer")

    on_database(cli, hostile)
    shown = _at(monkeypatch, 200, "contacts", "list")
    assert not set(shown) & {"\u202e", "\u2028"}
    assert "evil / Resolve: 1" in shown and "=SUM(A1:A9)" in shown  # as typed, on screen
    [row] = csv.DictReader(io.StringIO(_at(monkeypatch, 80, "contacts", "list", "-f", "csv")))
    assert (row["account"], row["role"]) == ("'=SUM(A1:A9)", "'-buyer")
    assert row["id"] == "1"  # numbers as numbers
    [record] = json.loads(_at(monkeypatch, 80, "contacts", "list", "-f", "json"))
    assert record["account"] == "=SUM(A1:A9)"  # JSON is data: nothing to neutralise


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["contacts", "list", "--limit", str(2**70)],
         f"--limit '{2**70}': give a whole number from 1 to 2147483647"),
        (["contacts", "list", "--limit", "0"], "--limit '0': give a whole number from 1"),
        (["status", "--failures", str(2**70)],
         f"--failures '{2**70}': give a whole number from 0 to 2147483647"),
        (["cases", "resolve", str(2**70), "--note", "x"],
         f"there is no case {2**70}: case ids run from 1 to 2147483647"),
        (["actions", "done", str(2**64)],
         f"there is no action {2**64}: action ids run from 1 to 2147483647"),
    ],
)
def test_numbers_no_database_holds_are_one_line(cli: str, args: list[str], expected: str
                                                 ) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(expected)
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
