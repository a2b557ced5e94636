"""The `sada` command: one sub-command group per staff task."""

from __future__ import annotations

import inspect
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperOption

from bot.cli import (
    actions,
    api_keys,
    cases,
    common,
    contacts,
    db,
    flows,
    invite,
    preview,
    remind,
    report,
    run,
    status,
    webhooks,
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
app.command("remind")(remind.remind)
app.command("status")(status.status)
app.command("report")(report.report)
app.command("answers")(report.answers)
app.add_typer(cases.app, name="cases")
app.add_typer(actions.app, name="actions")
app.add_typer(api_keys.app, name="api-keys")
app.add_typer(webhooks.app, name="webhooks")
app.command("preview")(preview.preview)
run.register(app)


# What typer shows for a value's type: `<str>` reads as code; people read TEXT, INTEGER.
_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "int range": "INTEGER", "float": "NUMBER",
               "path": "PATH", "Path": "PATH", "file": "FILE", "directory": "FOLDER"}


def _reflow(text: str) -> str:
    """Docstring lines wrapped at 90 columns are one sentence: rich markup mode would keep
    each break ("with --since, every" / "figure is…"). A line ending in ':' or ';' keeps
    its break: it starts a list."""
    paragraphs = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        out = ""
        for line in paragraph.splitlines():
            out += ("\n" if out.endswith((":", ";")) else " " if out else "") + line.strip()
        paragraphs.append(out)
    return "\n\n".join(paragraphs)


def tidy_help(command: Any) -> Any:
    """Flags show no `<bool>`, values a word (TEXT, INTEGER) instead of `<str>`, arguments
    their name alone instead of `<list[Path]>`, on every command; a metavar the code gives
    stays."""
    for param in command.params:
        if isinstance(param, TyperArgument):
            param.metavar = param.metavar or (param.name or "").upper()
            param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]  # name says it
        elif isinstance(param, TyperOption) and param.metavar is None:
            if param.is_flag:
                param.metavar = ""
            elif "--database-url" in param.opts:
                param.metavar = "URL"
            else:
                shown = param.display_type(None).strip("<>")  # type: ignore[arg-type]
                param.metavar = _TYPE_NAMES.get(shown) or shown.upper()
    if command.help:
        command.help = _reflow(command.help)
    make_help = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = make_help(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
    return command


def main() -> None:
    # The last line of defence: a catalog found broken only when a report or a message
    # needs it (sada run and preview check theirs up front), or settings read by code that
    # bypassed common.settings_or_exit, still end in one line, never a traceback.
    from pydantic import ValidationError

    from bot.i18n import CatalogError

    try:
        tidy_help(typer.main.get_command(app))(prog_name="sada")
    except CatalogError as exc:
        print(f"sada: {exc}", file=sys.stderr)
        sys.exit(1)
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        print("\n".join(common.settings_problems(exc)), file=sys.stderr)
        sys.exit(2)
