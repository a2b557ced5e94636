"""`sada db`: apply schema migrations and show the database's revision."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from bot.cli.common import database_url

# storage.db (SQLAlchemy, Alembic) is imported in the commands: `sada --help` must start fast.

app = typer.Typer(
    help="Database schema: apply migrations (`upgrade`) and show the revision (`current`).",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str | None,
    typer.Option("--url", "--database-url", help="Database URL; overrides SADA_DATABASE_URL."),
]


def _fail(exc: Exception) -> typer.Exit:
    # markup=False: messages may carry brackets rich would read as tags; soft_wrap keeps
    # the message on one line in narrow terminals.
    Console(stderr=True).print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _target(url: str | None) -> str:
    return database_url(url)  # a bad URL or setting ends here, in one line


@app.command("upgrade")
def upgrade_command(url: UrlOption = None) -> None:
    """Apply all pending migrations (safe to repeat)."""
    from storage.db import StorageError, display_url, upgrade

    try:
        target = _target(url)
        before, after = asyncio.run(upgrade(target))
    except (StorageError, ValueError) as exc:
        raise _fail(exc) from None
    typer.echo(f"database at {display_url(target)}: {before or 'empty'} → {after}")


@app.command("current")
def current_command(url: UrlOption = None) -> None:
    """Show the database's schema revision and whether it is up to date."""
    from storage.db import StorageError, current_revision, display_url, head_revision

    try:
        target = _target(url)
        revision = asyncio.run(current_revision(target))
    except (StorageError, ValueError) as exc:
        raise _fail(exc) from None
    head = head_revision()
    status = "at head" if revision == head else f"behind head {head}: run `sada db upgrade`"
    typer.echo(f"database at {display_url(target)}: {revision or 'empty'} ({status})")


@app.command("revision", hidden=True)
def revision_command(
    message: Annotated[str, typer.Option("--message", "-m", help="What the migration does.")],
) -> None:
    """(Developers) Autogenerate the next migration from the models."""
    from storage.db import StorageError, new_revision

    try:
        path = asyncio.run(new_revision(message))
    except StorageError as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote {path}: review it, then test it on SQLite and PostgreSQL")
