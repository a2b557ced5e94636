"""The `sada` command: one sub-command group per staff task."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bot.cli import (
    actions,
    cases,
    common,
    contacts,
    db,
    flows,
    invite,
    preview,
    report,
    run,
    status,
)

app = typer.Typer(
    help="Sada: conversational CX surveys in Arabic, Persian and English.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root(
    ctx: typer.Context,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", metavar="URL", show_default=False,
        help="Database for this command: sqlite:///path or postgresql://user@host/db. "
        "Overrides SADA_DATABASE_URL; a command's own --database-url wins over it.")] = None,
) -> None:
    """Sada: conversational CX surveys in Arabic, Persian and English."""
    # Reset when the command ends, so one run's option never leaks into the next (tests
    # call the apps many times in one process).
    common.root_database_url = database_url
    ctx.call_on_close(lambda: setattr(common, "root_database_url", None))


app.add_typer(flows.app, name="flows")
app.add_typer(db.app, name="db")
app.add_typer(contacts.app, name="contacts")
app.command("invite")(invite.invite)
app.command("status")(status.status)
app.command("report")(report.report)
app.command("answers")(report.answers)
app.add_typer(cases.app, name="cases")
app.add_typer(actions.app, name="actions")
app.command("preview")(preview.preview)
run.register(app)


def main() -> None:
    # The last line of defence: a catalog found broken only when a report or a message
    # needs it (sada run and preview check theirs up front), or settings read by code that
    # bypassed common.settings_or_exit, still end in one line, never a traceback.
    from pydantic import ValidationError

    from bot.i18n import CatalogError

    try:
        app()
    except CatalogError as exc:
        print(f"sada: {exc}", file=sys.stderr)
        sys.exit(1)
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        print("\n".join(common.settings_problems(exc)), file=sys.stderr)
        sys.exit(2)
