"""The `sada` command: one sub-command group per staff task."""

from __future__ import annotations

import typer

from bot.cli import db, flows, preview, run

app = typer.Typer(
    help="Sada: conversational CX surveys in Arabic, Persian and English.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(flows.app, name="flows")
app.add_typer(db.app, name="db")
app.command("preview")(preview.preview)
run.register(app)


def main() -> None:
    app()
