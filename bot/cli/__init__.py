"""The `sada` command: one sub-command group per staff task."""

from __future__ import annotations

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
    app()
