"""What every `sada` command shares: reading the settings, the database URL, failing in one line.

A bad SADA_* variable ends any command in one line per variable that names it and says how
to fix it (exit code 2), never a pydantic traceback. The database URL resolves the same way
everywhere: a command's own --database-url, then the root `sada --database-url`, then
SADA_DATABASE_URL (environment or .env), then SQLite in SADA_DATA_DIR.

This module stays light (no storage, no Telegram): `sada --help` imports it.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from bot.settings import Settings, get_settings

# Set by the root callback on every invocation (None when `sada --database-url` is absent).
root_database_url: str | None = None


def fail(message: str, code: int = 1) -> NoReturn:
    """One red line (or one per problem) on stderr and exit ``code``."""
    # markup=False: messages may hold brackets rich would read as tags; soft_wrap keeps
    # each message on one line in narrow terminals.
    Console(stderr=True).print(message, style="red", markup=False, highlight=False,
                               soft_wrap=True)
    raise typer.Exit(code)


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per bad variable: ``SADA_NAME: what is wrong; expected: the fix``."""
    fields = Settings.model_fields
    lines = []
    for error in exc.errors():
        field = "_".join(str(part) for part in error["loc"][:1])
        name = f"SADA_{field.upper()}"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "value_error":
            # Our validators already name the variable and show the accepted form.
            message = message.removeprefix(f"{name} ")
        else:
            described = fields[field].description if field in fields else None
            if described:
                message += f"; expected: {described}"
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
