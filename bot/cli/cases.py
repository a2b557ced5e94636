"""`sada cases`: the detractor cases staff must close, and closing them.

Every failure ends in one red line and exit code 1 (2 for input that names nothing),
never a traceback.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from bot.cli.common import (
    Column,
    FormatOption,
    check_format,
    database_url,
    id_parser,
    print_table,
    write_records,
)
from bot.cli.common import fail as _fail
from bot.staff_text import staff_line

if TYPE_CHECKING:
    from storage.cases import CaseRow
    from storage.db import Database

# Storage and calendars are imported where used: `sada --help` must start fast.

app = typer.Typer(help="Detractor cases: list them, resolve them (time to resolve is kept).",
                  no_args_is_help=True, add_completion=False)


def clock() -> datetime:
    """The shell owns the clock; tests replace it to check ages and times to resolve exactly."""
    from bot.clock import utc_now

    return utc_now()


T = TypeVar("T")
_COMMENT = 160  # the table wraps it; --format csv or json gives the whole comment


def with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` on the configured database; storage failures become one red line."""
    from storage.db import Database, NotFound, StorageError

    url = database_url()

    async def run() -> T:
        async with await Database.open(url) as db:
            return await work(db)

    try:
        return asyncio.run(run())
    # staff_line: "already resolved by …: <note>" quotes what someone typed
    except NotFound as exc:
        _fail(staff_line(str(exc)), 2)
    except (StorageError, ValueError) as exc:
        _fail(staff_line(str(exc)))


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _short(text: str | None) -> str:
    if not text:
        return ""
    line = staff_line(text)
    return line if len(line) <= _COMMENT else line[: _COMMENT - 1] + "…"


# Narrow terminals hide when it was opened and resolved first, then the role, the status
# and the account: which case, who, the score, what they wrote and how long it has waited stay.
_COLUMNS = (
    Column("id", right=True), Column("opened", drop=5), Column("age", right=True),
    Column("contact", text=True, min_width=8), Column("account", text=True, drop=2,
                                                     min_width=7),
    Column("role", drop=4), Column("score"), Column("comment", text=True, min_width=16),
    Column("status", drop=3), Column("time to resolve", right=True, drop=6))
_FIELDS = ("id", "flow", "opened_at", "status", "contact_id", "contact", "account", "role",
           "question", "score", "comment", "resolved_at", "resolved_by", "note",
           "time_to_resolve_seconds")


def _who(row: CaseRow) -> str:
    contact = row.contact
    return contact.name or contact.first_name or contact.external_id or f"#{contact.id}"


def _cells(row: CaseRow, now: datetime) -> list[str]:
    from bot.followups.dates import span

    case, contact = row.case, row.contact
    ttr = row.time_to_resolve
    age = span(now - case.opened_at) if case.status == "open" else ""
    return [str(case.id), _stamp(case.opened_at), age, f"{_who(row)} ({contact.id})",
            contact.company or "", contact.role or "", f"{case.question_id} {case.score}",
            _short(case.comment), case.status, span(ttr) if ttr is not None else ""]


def _record(row: CaseRow) -> list[object]:
    case, contact = row.case, row.contact
    ttr = row.time_to_resolve
    return [case.id, case.flow_id, case.opened_at, case.status, contact.id, _who(row),
            contact.company, contact.role, case.question_id, case.score, case.comment,
            case.resolved_at, case.resolved_by, case.note,
            int(ttr.total_seconds()) if ttr is not None else None]


@app.command("list")
def list_command(
    open_only: Annotated[bool, typer.Option("--open/--all",
                                            help="Only open cases (default), or all.")] = True,
    flow: Annotated[str | None, typer.Option("--flow", help="Only cases of this flow id.")]
    = None,
    fmt: FormatOption = "table",
) -> None:
    """Cases, oldest first: who, which score, what they wrote, and how long it has waited."""
    check_format(fmt)
    from bot.followups.dates import span
    from storage.cases import list_cases

    rows = with_database(lambda db: list_cases(db, open_only=open_only, flow_id=flow))
    if fmt != "table":  # every column and the whole comment, for a spreadsheet or a pipe
        write_records(fmt, _FIELDS, [_record(row) for row in rows])
        return
    console = Console(highlight=False)
    if not rows:
        which = "open cases" if open_only else "cases"
        console.print(f"no {which}" + (f" for flow {flow}" if flow else ""), markup=False)
        return
    now = clock()
    print_table(console, _COLUMNS, [_cells(row, now) for row in rows])
    resolved = [r.time_to_resolve for r in rows if r.time_to_resolve is not None]
    summary = f"{len(rows)} case{'s' if len(rows) != 1 else ''}"
    summary += f", {sum(1 for r in rows if r.case.status == 'open')} open"
    if resolved:
        mean = sum(resolved, start=timedelta(0)) / len(resolved)
        summary += f", mean time to resolve {span(mean)}"
    console.print(summary, markup=False)


def _default_by() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers: the note still says enough
        return None


@app.command("resolve")
def resolve_command(
    case_id: Annotated[int, typer.Argument(metavar="ID", help="The case id (`sada cases list`).",
                                           parser=id_parser("case", "sada cases list --all"))],
    note: Annotated[str, typer.Option("--note", help="What was done, for the record.")],
    by: Annotated[str | None, typer.Option("--by", help="Who resolved it (default: your "
                                           "login name).")] = None,
) -> None:
    """Close a case with a note; its time to resolve is recorded and shown."""
    if not note.strip():
        _fail('--note is empty: say what was done, e.g. --note "called the buyer, '
              'refund sent"', 2)
    from bot.followups.dates import span
    from storage.cases import resolve_case

    now = clock()
    case = with_database(lambda db: resolve_case(db, case_id, note=note, by=by or _default_by(),
                                                 now=now))
    assert case.resolved_at is not None
    typer.echo(f"case {case.id} resolved in {span(case.resolved_at - case.opened_at)} "
               f"(opened {_stamp(case.opened_at)} UTC)")
