"""What every `sada` command shares: reading the settings, the database URL, failing in one line.

A bad SADA_* variable ends any command in one line per variable that names it and says how
to fix it (exit code 2), never a pydantic traceback. The database URL resolves the same way
everywhere: a command's own --database-url, then the root `sada --database-url`, then
SADA_DATABASE_URL (environment or .env), then SQLite in SADA_DATA_DIR.

This module stays light (no storage, no Telegram): `sada --help` imports it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.settings import (
    WHOLE_LINE,
    Settings,
    field_at,
    get_settings,
    setting_groups,
    variable_name,
)
from bot.staff_text import staff_line

if TYPE_CHECKING:  # storage loads SQLAlchemy: only commands that open a database
    from storage.db import Database

T = TypeVar("T")

# Set by the root callback on every invocation (None when `sada --database-url` is absent).
root_database_url: str | None = None


# --context as preview, link and invite take it: one spelling, one help text, one rule.
ContextOption = Annotated[
    list[str] | None,
    typer.Option("--context", "-c", metavar="KEY=VALUE", help="A value the flow declares "
                 "under `context:` (its {KEY} placeholders), e.g. -c ticket=T-1042; repeat "
                 "for more. Every declared key needs one."),
]

# --- personal links: whose, on which channel (sada invite, sada remind) ----------------------

BotUsernameOption = Annotated[str | None, typer.Option(
    "--bot-username", help="Whom the links open: the bot's @username (default: "
    "SADA_<CHANNEL>__BOT_USERNAME).")]


@dataclass(frozen=True)
class LinkTarget:
    """The channel personal links are made for, and the name they open (None: not set)."""

    channel: str
    name: str | None

    @property
    def needed(self) -> str:
        """The setting the links need when `name` is None."""
        if self.channel == "web":
            return f"{variable_name('web', 'public_url')} (the web chat's public address)"
        return f"{variable_name(self.channel, 'bot_username')} (the bot's @username)"


def link_target(settings: Settings, channel: str | None, bot_username: str | None
                ) -> LinkTarget:
    """--links-channel (default: web when the web chat has a public address, which needs no
    app, else telegram) and --bot-username (default: the channel's setting), or a one-line
    exit when the channel makes no links."""
    from bot.messaging.registry import CHANNELS, NoLinks, UnknownChannel

    chosen = channel or ("web" if settings.web.public_url else "telegram")
    try:
        CHANNELS.links(chosen)
    except (UnknownChannel, NoLinks) as exc:
        fail(f"--links-channel: {exc}", 2)
    group = getattr(settings, chosen, None)
    name = (bot_username or (group.link_name if group is not None else None) or "").strip()
    return LinkTarget(chosen, name or None)


# --- database ids as options and arguments -----------------------------------------------

_DIGITS = re.compile(r"\d+")  # \d: decimal digits of any script (9, ٩, ۹, ९ …)


def id_parser(what: str, listing: str) -> Callable[[str], int]:
    """The parser of an option or argument naming a row by its id (``typer.Option(parser=
    id_parser("contact", "sada contacts list"))``): a whole number from 1 to the largest id
    the database holds, in any digits. Anything else ends the command in one line (exit 2)
    instead of a usage box, or a driver's OverflowError for 2**70."""

    def parse(value: str) -> int:
        from storage.cases import MAX_ID  # storage: only for commands that open a database

        text = str(value).strip()
        if not _DIGITS.fullmatch(text):
            fail(f"{value!r} is not a number: give the {what}'s id as `{listing}` shows "
                 "it, e.g. 12", 2)
        number = int(text)
        if not 0 < number <= MAX_ID:
            fail(f"there is no {what} {text}: {what} ids run from 1 to {MAX_ID} "
                 f"(`{listing}` shows them)", 2)
        return number

    return parse


def count_parser(option: str, minimum: int) -> Callable[[str], int]:
    """The parser of a how-many option (``--limit``, ``--failures``): a whole number from
    ``minimum`` up to what a database LIMIT takes, in any digits; anything else one line."""

    def parse(value: str) -> int:
        from storage.cases import MAX_ID

        text = str(value).strip()
        if not _DIGITS.fullmatch(text) or not minimum <= int(text) <= MAX_ID:
            fail(f"{option} {value!r}: give a whole number from {minimum} to {MAX_ID}", 2)
        return int(text)

    return parse


def fail(message: str, code: int = 1) -> NoReturn:
    """One red line (or one per problem) on stderr and exit ``code``."""
    # markup=False: messages may hold brackets rich would read as tags; soft_wrap keeps
    # each message on one line in narrow terminals.
    Console(stderr=True).print(message, style="red", markup=False, highlight=False,
                               soft_wrap=True)
    raise typer.Exit(code)


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per bad variable: ``SADA_NAME: what is wrong; expected: the fix``, naming
    the variable as the user wrote it (SADA_TELEGRAM__TOKEN, or its older SADA_TELEGRAM_TOKEN)."""
    lines = []
    for error in exc.errors():
        loc = error["loc"]
        if error["type"] == WHOLE_LINE:  # already names its variables
            lines.append(str(error["msg"]))
            continue
        name = variable_name(*loc[:2])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and len(loc) > 1:
            group = str(loc[0]).upper()
            known = ", ".join(f"SADA_{group}__{key.upper()}"
                              for key in setting_groups()[str(loc[0])].model_fields)
            message = f"not a {group.title()} setting; the settings are {known}"
        elif error["type"] != "value_error":  # our validators say what they expect
            field = field_at(*loc[:2])
            if field is not None and field.description:
                message += f"; expected: {field.description}"
        lines.append(f"{name}: {message}")
    return list(dict.fromkeys(lines))


def settings_or_exit() -> Settings:
    """The settings (with the root --database-url applied), or one line per bad variable."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        fail("\n".join(settings_problems(exc)), 2)
    if root_database_url is not None:
        settings = settings.model_copy(update={"database_url": root_database_url})
    return settings


def database_url(option: str | None = None) -> str:
    """The database URL a command uses, checked: one line and exit 2 if it is malformed."""
    from storage.db import to_async_url  # sqlalchemy: only for commands that open a database

    settings = settings_or_exit()  # a bad variable is reported even when the URL is given
    if option is not None or root_database_url is not None:
        source, url = "--database-url", option or settings.effective_database_url
    else:
        source, url = "SADA_DATABASE_URL", settings.effective_database_url
    try:
        to_async_url(url)
    except ValueError as exc:
        fail(f"{source}: {exc}", 2)
    return url


def with_database(work: Callable[[Database], Awaitable[T]],
                  refused: tuple[type[Exception], ...] = ()) -> T:
    """Run `work` on the command's database: a NotFound or one of `refused` (bad input,
    said in one line) exits 2, any other StorageError 1."""
    from storage.db import Database, NotFound, StorageError

    url = database_url()

    async def run() -> T:
        async with await Database.open(url) as db:
            return await work(db)

    try:
        return asyncio.run(run())
    except Exception as exc:
        if isinstance(exc, (NotFound, *refused)):
            fail(str(exc), 2)
        if isinstance(exc, StorageError):
            fail(str(exc))
        raise


def stamp(moment: datetime | None) -> str:
    """A time in a list: to the minute, blank when there is none."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""


# --- lists: a table that fits the terminal, or CSV / JSON for a pipe ----------------------

FORMATS = ("table", "csv", "json")
FormatOption = Annotated[str, typer.Option(
    "--format", "-f", metavar="table|csv|json", show_default=True,
    help="[bold]table[/bold] for people; [bold]csv[/bold] or [bold]json[/bold] (every column, "
    "full text) for a spreadsheet or a pipe.")]


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        fail(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}", 2)


@dataclass(frozen=True)
class Column:
    """A list column. ``drop``: 0 always shown, higher numbers are hidden first when the
    terminal is too narrow; ``text``: free text that wraps, the rest never does (a split
    date or id is unreadable)."""

    name: str
    drop: int = 0
    text: bool = False
    right: bool = False
    min_width: int = 10


# Free text gets up to this many cells before a column is hidden to make room; past it,
# the text wraps (down to its min_width) rather than costing the reader a column.
_COMFORTABLE = 24


def _needed(column: Column, cells: Sequence[str]) -> int:
    widest = max([cell_len(column.name), *(cell_len(c) for c in cells)])
    return min(widest, max(column.min_width, _COMFORTABLE)) if column.text else widest


def fit_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int
              ) -> tuple[Table, list[str]]:
    """A table for ``width`` columns of terminal, and the names of the columns left out."""
    shown = list(range(len(columns)))

    def total() -> int:  # cells, plus padding and a separator between columns: 3 cells
        return sum(_needed(columns[i], [r[i] for r in rows]) for i in shown) + 3 * (
            len(shown) - 1)

    while total() > width:
        droppable = [i for i in shown if columns[i].drop]
        if not droppable:
            break
        # the highest drop number goes first; among equals, the rightmost
        shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    # Rich squeezes every column alike when a table is too wide, cutting short codes too:
    # share what the fixed columns leave among the free-text ones instead.
    widest = {i: max([cell_len(columns[i].name), *(cell_len(r[i]) for r in rows)])
              for i in shown}
    texts = [i for i in shown if columns[i].text]
    left = width - 3 * (len(shown) - 1) - sum(widest[i] for i in shown if i not in texts)
    limits: dict[int, int] = {}
    if sum(widest[i] for i in texts) > left:
        # narrowest first: a short name keeps its width, the long comment takes the rest
        for done, i in enumerate(sorted(texts, key=lambda i: widest[i])):
            fair = left // (len(texts) - done)
            limits[i] = max(columns[i].min_width, min(widest[i], fair))
            left -= limits[i]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, highlight=False)
    for i in shown:
        column = columns[i]
        limit = limits.get(i)
        table.add_column(column.name, justify="right" if column.right else "left",
                         no_wrap=not column.text, overflow="fold", max_width=limit)
    for row in rows:
        # Text: cells are never markup; staff_line: a cell is one line in its own direction,
        # whatever a respondent or a CRM put in it (bot.staff_text).
        table.add_row(*(Text(staff_line(row[i])) for i in shown))
    hidden = [c.name for i, c in enumerate(columns) if i not in shown]
    return table, hidden


def print_table(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]]
                ) -> None:
    table, hidden = fit_table(columns, rows, console.width)
    console.print(table)
    if hidden:
        console.print(f"(not shown at {console.width} columns: {', '.join(hidden)}; widen the "
                      "terminal or use --format csv)", markup=False, style="dim")


def write_records(fmt: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Rows as CSV (the reports' writer) or as a JSON list of objects, on stdout."""
    if fmt == "csv":
        from bot.reports.tables import write_csv

        typer.echo(write_csv(header, rows), nl=False)
        return
    records = [dict(zip(header, row, strict=True)) for row in rows]
    typer.echo(json.dumps(records, ensure_ascii=False, indent=2, default=_json_value))


def _json_value(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")
