"""The `sada` command: one sub-command group per staff task."""

from __future__ import annotations

import sys

import typer

from bot.cli import (
    actions,
    cases,
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
    # A catalog found broken only when a report or a message needs it (sada run and preview
    # check theirs up front) still ends in one line, never a traceback.
    from bot.i18n import CatalogError

    try:
        app()
    except CatalogError as exc:
        print(f"sada: {exc}", file=sys.stderr)
        sys.exit(1)
