"""`sada report` and `sada answers`: CX metrics and free-text answers from the database.

FLOW is a flow id (looked up in SADA_FLOWS_DIR, then among the flow versions stored with
the answers) or a flow YAML file. Every failure ends in one red line and exit code 1 (2
for a bad option), never a traceback.
"""

from __future__ import annotations

import asyncio
import inspect
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from bot.cli.common import database_url as _url
from bot.cli.common import fail as _fail
from bot.cli.common import settings_or_exit

if TYPE_CHECKING:
    from bot.flow.model import Flow
    from bot.reports.metrics import AccountSummary, Report
    from storage.db import Database
    from storage.reports import TextAnswer

# Flows, metrics and storage are imported where used: `sada --help` must start fast.

REPORT_FORMATS = ("table", "csv", "json", "html")
ANSWER_FORMATS = ("table", "csv", "json")


def _choice(value: str | None, allowed: tuple[str, ...], option: str) -> None:
    if value is not None and value not in allowed:
        _fail(f"{option} {value!r} is not one of: {', '.join(allowed)}", 2)


def _dates(since: str | None, until: str | None) -> tuple[date | None, date | None]:
    from bot.followups.dates import parse_day
    from bot.reports.periods import BadDate, check_order

    try:
        first = parse_day(since, "--since") if since is not None else None
        last = parse_day(until, "--until") if until is not None else None
        check_order(first, last)
    except BadDate as exc:
        _fail(str(exc), 2)
    return first, last


# --- which flow ---------------------------------------------------------------------------


def _flow_file(path: Path) -> Flow:
    from bot.flow.loader import FlowError, load_flow

    try:
        return load_flow(path).flow
    except FlowError as exc:
        problems = "; ".join(str(p) for p in exc.problems[:3])
        _fail(f"{path}: the flow has errors ({problems}); see `sada flows lint`")


def _flows_in(folder: Path) -> dict[str, Flow]:
    from bot.flow.loader import FlowError, load_flow

    found: dict[str, Flow] = {}
    for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
        try:
            flow = load_flow(path).flow
        except FlowError:
            continue  # `sada flows lint` reports it; a report needs only the named flow
        found.setdefault(flow.id, flow)
    return found


async def _stored_flow(db: Database, flow_id: str) -> Flow | None:
    """The latest stored version of a flow no longer (or not yet) in the flows folder."""
    from sqlmodel import col, select

    from bot.flow.loader import FlowError, load_flow_text
    from storage.models import FlowVersion

    query = (select(FlowVersion).where(FlowVersion.flow_id == flow_id)
             .order_by(col(FlowVersion.created_at).desc(), col(FlowVersion.id).desc()).limit(1))
    async with db.session() as s, s.begin():
        version = (await s.exec(query)).first()
    if version is None:
        return None
    try:
        return load_flow_text(version.content, f"<stored {flow_id}>").flow
    except FlowError:
        return None


async def _resolve(db: Database, name: str, flows_dir: Path) -> Flow:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            _fail(f"no flow file {name}")
        return _flow_file(path)
    found = _flows_in(flows_dir)
    if name in found:
        return found[name]
    stored = await _stored_flow(db, name)
    if stored is not None:
        return stored
    known = ", ".join(sorted(found)) or "none"
    _fail(f"unknown flow {name!r}: flows in {flows_dir} (SADA_FLOWS_DIR): {known}; "
          "or give a flow YAML file")


# --- output -------------------------------------------------------------------------------


def _write(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}")
    typer.echo(f"wrote {out}")


def _call(function: Callable[..., Any], *args: Any, **options: Any) -> Any:
    # Pass only the keyword options the renderer takes, so the CLI keeps working while
    # html.py and charts.py grow or drop options (flow, lang).
    accepted = inspect.signature(function).parameters
    return function(*args, **{k: v for k, v in options.items() if k in accepted})


def _drawn(report: Report, flow: Flow, lang: str) -> list[Any]:
    """The charts, drawn once for both the html report and --charts: drawing them is most
    of an html report's time."""
    try:
        from bot.reports.charts import render_charts
    except ImportError as exc:
        _fail(f"charts are not available in this install ({exc})")
    return list(_call(render_charts, report, flow=flow, lang=lang))


def _html(report: Report, flow: Flow, out: Path, lang: str, views: list[Any],
          drawn: list[Any] | None = None) -> None:
    try:
        from bot.reports.html import write_html
    except ImportError as exc:
        _fail(f"the html report is not available in this install ({exc}); use --format "
              "table, csv or json")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _call(write_html, report, out, flow=flow, lang=lang, accounts=views, charts=drawn)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}")
    typer.echo(f"wrote {out}")


def _charts(report: Report, flow: Flow, folder: Path, lang: str,
            drawn: list[Any] | None = None) -> None:
    try:
        from bot.reports.charts import write_charts
    except ImportError as exc:
        _fail(f"charts are not available in this install ({exc})")
    try:
        paths = _call(write_charts, report, folder, flow=flow, lang=lang, charts=drawn)
    except OSError as exc:
        _fail(f"cannot write charts into {folder}: {exc.strerror or exc}")
    for path in paths or []:
        typer.echo(f"wrote {path}")


# --- sada report --------------------------------------------------------------------------


@dataclass
class _Result:
    flow: Flow
    report: Report | None = None
    summaries: list[AccountSummary] = field(default_factory=list)
    views: list[Any] | None = None  # bot.reports.accounts.AccountView, when installed


async def _account_views(db: Database, flow: Flow, **options: Any) -> list[Any] | None:
    """The account view's own rows (open cases and promises listed), or None when
    bot/reports/accounts.py is not there; its numbers come from build_accounts anyway."""
    try:
        from bot.reports.accounts import build_accounts as build_views
    except ImportError:
        return None
    views: list[Any] = await build_views(db, flow, **options)
    return views


async def _gather_report(url: str, name: str, flows_dir: Path, *, accounts: bool, fmt: str,
                         by: str | None, period: str, **window: Any) -> _Result:
    from bot.reports.metrics import build_accounts, build_report
    from storage.db import Database

    async with await Database.open(url) as db:
        result = _Result(await _resolve(db, name, flows_dir))
        if not accounts or fmt == "html":
            # the accounts page opens with the whole flow's scores per stakeholder role
            result.report = await build_report(db, result.flow, by=by or (
                "role" if accounts else None), period=period, **window)  # type: ignore[arg-type]
        if accounts or window["account"] is not None:
            result.views = await _account_views(db, result.flow, **window)
            if result.views is not None:
                result.summaries = [view.summary for view in result.views]
            else:
                result.summaries = await build_accounts(db, result.flow, **window)
        return result


def report(
    flow: Annotated[str, typer.Argument(help="Flow id (e.g. b2b-supplier) or flow YAML file.")],
    by: Annotated[str | None, typer.Option(
        "--by", help="Split by role, account, segment, language or touchpoint.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="First day, YYYY-MM-DD (UTC), included.")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Last day, YYYY-MM-DD (UTC), included.")] = None,
    period: Annotated[str, typer.Option("--period", help="Trend by week or month.")] = "month",
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help="table, csv, json or html.")] = "table",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write to this file (html default: out/report-FLOW.html).")] = None,
    account: Annotated[str | None, typer.Option(
        "--account", help="Only this account (contact company): its roles, who stayed "
        "silent, open cases and promises.")] = None,
    accounts: Annotated[bool, typer.Option(
        "--accounts", help="B2B overview of every account: NPS per stakeholder role, silent "
        "roles and people, open cases and promises.")] = False,
    charts: Annotated[Path | None, typer.Option(
        "--charts", help="Also write the PNG charts into this folder.")] = None,
    lang: Annotated[str, typer.Option(
        "--lang", "-l", help="Language of the html report and charts: ar, fa or en.")] = "en",
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="Overrides SADA_DATABASE_URL.")] = None,
) -> None:
    """NPS, CSAT, CES, response rates, drop-off, time to resolve and distributions.

    Groups with fewer than 5 responses are marked too small to trust; with --since, every
    figure is compared with the window of the same length just before.
    """
    from bot.reports.metrics import DIMENSIONS, PERIODS
    from bot.reports.tables import report_csv, report_json_text
    from storage.db import StorageError

    _choice(by, DIMENSIONS, "--by")
    _choice(period, PERIODS, "--period")
    _choice(fmt, REPORT_FORMATS, "--format")
    _choice(lang, ("ar", "fa", "en"), "--lang")
    if accounts and account is not None:
        _fail("use --accounts for every account or --account NAME for one, not both", 2)
    if accounts and charts is not None and fmt != "html":
        _fail("--charts needs the flow's report: drop --accounts, or use --format html", 2)
    first, last = _dates(since, until)
    url = _url(database_url)
    try:
        result = asyncio.run(_gather_report(
            url, flow, settings_or_exit().flows_dir, accounts=accounts, fmt=fmt, by=by,
            period=period, since=first, until=last, account=account))
    except StorageError as exc:
        _fail(str(exc))
    found, made = result.flow, result.report
    if made is None:  # --accounts as table, csv or json
        _accounts_out(result, fmt, out)
        return
    drawn = _drawn(made, found, lang) if fmt == "html" and charts is not None else None
    if fmt == "html":
        _html(made, found, out or Path("out") / f"report-{made.flow_id}.html", lang,
              result.views or [], drawn)
    elif fmt == "table":
        _show(lambda console: _print_report(console, result), out)
    else:
        _write(report_csv(made) if fmt == "csv" else report_json_text(made), out)
    if charts is not None:
        _charts(made, found, charts, lang, drawn)


def _print_report(console: Console, result: _Result) -> None:
    from bot.reports.tables import report_renderable

    assert result.report is not None
    # with the account view's panel below, the report need not list the silent people
    console.print(report_renderable(result.report, silent=not result.views))
    if result.views:  # --account A: its panel, with the open cases and promises themselves
        _print_views(console, result)


def _print_views(console: Console, result: _Result) -> None:
    from bot.reports.tables import accounts_renderable

    if result.views is None:
        console.print(accounts_renderable(result.summaries))
        return
    from bot.reports.accounts import render_accounts

    _call(render_accounts, result.views, console, flow=result.flow)


def _show(draw: Callable[[Console], None], out: Path | None, width: int = 120) -> None:
    """Draw on the terminal, or as plain text (no colours) into `out`."""
    if out is None:
        draw(Console(highlight=False))
        return
    buffer = io.StringIO()
    draw(Console(file=buffer, width=width, highlight=False, no_color=True))
    _write(buffer.getvalue(), out)


def _accounts_out(result: _Result, fmt: str, out: Path | None) -> None:
    from bot.reports.tables import accounts_csv, accounts_json_text

    if fmt == "table":
        _show(lambda console: _print_views(console, result), out)
    elif fmt == "csv":
        _write(accounts_csv(result.summaries), out)
    else:
        _write(accounts_json_text(result.summaries), out)


# --- sada answers -------------------------------------------------------------------------


async def _answers(url: str, name: str, flows_dir: Path, question: str, by: str | None,
                   scope: dict[str, Any]) -> list[TextAnswer]:
    from bot.reports.metrics import DIMENSIONS, FlowFacts
    from storage.db import Database
    from storage.reports import Scope, text_answers

    async with await Database.open(url) as db:
        flow = await _resolve(db, name, flows_dir)
        if question not in {q.id for q in flow.questions}:
            texts = [q.id for q in flow.questions if q.type == "text"]
            _fail(f"{flow.id} has no question {question!r}; its text questions: "
                  f"{', '.join(texts) or 'none'}", 2)
        facts = FlowFacts.of(flow)
        return await text_answers(db, Scope(flow.id, **scope), question,
                                  facts.grouping((by,) if by in DIMENSIONS else ()),
                                  facts.scores)


def answers(
    flow: Annotated[str, typer.Argument(help="Flow id or flow YAML file.")],
    question: Annotated[str, typer.Option(
        "--question", "-q", help="The question id, e.g. nps_why.")],
    lang: Annotated[str | None, typer.Option(
        "--lang", "-l", help="Only answers given in ar, fa or en.")] = None,
    by: Annotated[str | None, typer.Option(
        "--by", help="Group by role, account, segment, language or touchpoint.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="First day, YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last day, YYYY-MM-DD.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Only this account.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file.")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="Overrides SADA_DATABASE_URL.")] = None,
) -> None:
    """List the answers to one question (usually a free-text one), newest first.

    Each answer comes with who gave it, when, and the same session's NPS and CSAT.
    """
    from bot.reports.metrics import DIMENSIONS
    from bot.reports.periods import window
    from bot.reports.tables import answers_csv, answers_json_text, answers_view
    from storage.db import StorageError

    _choice(lang, ("ar", "fa", "en"), "--lang")
    _choice(by, DIMENSIONS, "--by")
    _choice(fmt, ANSWER_FORMATS, "--format")
    first, last = _dates(since, until)
    start, end = window(first, last)
    url = _url(database_url)
    scope = {"start": start, "end": end, "account": account, "language": lang}
    try:
        rows = asyncio.run(_answers(url, flow, settings_or_exit().flows_dir, question, by, scope))
    except StorageError as exc:
        _fail(str(exc))
    if fmt == "csv":
        _write(answers_csv(rows, by), out)
    elif fmt == "json":
        _write(answers_json_text(rows, by), out)
    else:
        _show(lambda console: console.print(answers_view(rows, question, by)), out)
