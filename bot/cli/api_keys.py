"""`sada api-keys`: the keys integrations (a helpdesk, a CRM) present to the HTTP API.

A key is printed once, when created; Sada keeps only its hash. Every failure is one red
line: exit 2 for input that names nothing or cannot make a key, 1 for the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from bot.cli.common import (
    Column,
    FormatOption,
    check_format,
    fail,
    print_table,
    stamp,
    with_database,
    write_records,
)

if TYPE_CHECKING:
    from storage.db import Database
    from storage.models import ApiKey

# Storage is imported where used: `sada --help` must start fast.

app = typer.Typer(help="API keys: one per integration calling Sada's HTTP API; create, list, "
                  "revoke.", no_args_is_help=True, add_completion=False)

# Kept here rather than imported from storage: the help text must not load the database layer.
_SCOPES_HELP = ("Comma-separated, from: invite (invite contacts to a flow), contacts (create "
                "and update contacts), read (flows, reports, responses), cases (list and "
                "resolve cases).")

T = TypeVar("T")


def clock() -> datetime:
    """The shell owns the clock; tests replace it."""
    from bot.clock import utc_now

    return utc_now()


def _with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    from storage.api_keys import BadKeyInput

    return with_database(work, refused=(BadKeyInput,))


@app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. helpdesk: one word "
                                        "of letters, digits, '.', '-' or '_'.")],
    scopes: Annotated[str, typer.Option("--scopes", metavar="SCOPE,…", help=_SCOPES_HELP)],
) -> None:
    """Create a key and print it, once: Sada keeps only its hash, so store it now.

    The key alone goes to stdout (KEY=$(sada api-keys create …) captures it); what it is
    for goes to stderr.
    """
    from storage.api_keys import check_name, create_key, parse_scopes

    try:  # before opening the database: a typo is reported without one
        name, wanted = check_name(name), parse_scopes(scopes)
    except ValueError as exc:
        fail(str(exc), 2)
    now = clock()
    key, text = _with_database(lambda db: create_key(db, name, wanted, now=now))
    typer.echo(text)
    Console(stderr=True, highlight=False).print(
        f"API key {key.name} (prefix {key.prefix}, scopes {', '.join(key.scopes)}): shown "
        "only now: store it in the integration's settings", markup=False, soft_wrap=True)


_COLUMNS = (Column("name", text=True, min_width=8), Column("prefix"), Column("scopes"),
            Column("created", drop=2), Column("last used", drop=1), Column("revoked"))
_FIELDS = ("name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")


@app.command("list")
def list_command(
    revoked: Annotated[bool, typer.Option("--revoked/--active", help="Include revoked keys "
                                          "(default), or only those in use.")] = True,
    fmt: FormatOption = "table",
) -> None:
    """Keys, oldest first: name, prefix, scopes, when created, last used and revoked."""
    check_format(fmt)
    from storage.api_keys import list_keys

    keys: list[ApiKey] = _with_database(lambda db: list_keys(db, include_revoked=revoked))
    if fmt != "table":
        # CSV cells are text: the scopes as one cell; JSON keeps them a list
        write_records(fmt, _FIELDS, [
            [k.name, k.prefix, ",".join(k.scopes) if fmt == "csv" else k.scopes,
             k.created_at, k.last_used_at, k.revoked_at] for k in keys])
        return
    console = Console(highlight=False)
    if not keys:
        console.print("no API keys; create one with: sada api-keys create NAME --scopes read",
                      markup=False)
        return
    print_table(console, _COLUMNS, [
        [k.name, k.prefix, ",".join(k.scopes), stamp(k.created_at),
         stamp(k.last_used_at) or "never", stamp(k.revoked_at)] for k in keys])


@app.command("revoke")
def revoke_command(
    name: Annotated[str, typer.Argument(help="The key's name (`sada api-keys list`).")],
) -> None:
    """Revoke a key: every request with it is refused from now on. Its name may be reused."""
    from storage.api_keys import revoke_key

    now = clock()
    key = _with_database(lambda db: revoke_key(db, name, now=now))
    typer.echo(f"API key {key.name} (prefix {key.prefix}) revoked")
