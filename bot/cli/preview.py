"""`sada preview`: run a flow in the terminal, as chat would, on the configured database."""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.channels.console import ConsolePreview, stdin_reader
from bot.flow.loader import FlowError, LoadedFlow, load_flow
from bot.i18n import CatalogError, check_catalogs
from bot.settings import get_settings
from bot.survey import SurveyService
from storage.db import Database, StorageError, to_async_url
from storage.repo import Store


def preview(
    flow: Annotated[Path, typer.Argument(help="The flow YAML file to run.")],
    lang: Annotated[
        str | None, typer.Option("--lang", "-l", help="ar, fa or en (default: the flow's).")
    ] = None,
    as_name: Annotated[
        str | None,
        typer.Option("--as", help="Respondent name; the same name resumes the same session."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Overrides SADA_DATABASE_URL.")
    ] = None,
) -> None:
    """Answer a flow in the terminal, one question at a time.

    Works interactively and piped (one answer per line). Commands: /back, /skip, /stop,
    /lang ar|fa|en. End of input keeps the session; running again resumes it.
    """
    err = Console(stderr=True)
    if lang is not None and lang not in ("ar", "fa", "en"):
        err.print(f"[red]--lang must be ar, fa or en, not {lang!r}[/red]")
        raise typer.Exit(2)
    try:
        loaded = load_flow(flow)
    except FlowError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False, highlight=False)
        err.print("[red]The flow has errors; fix them (see `sada flows lint`) and retry.[/red]")
        raise typer.Exit(1) from None
    if lang is not None and lang not in loaded.flow.languages:
        err.print(f"[red]{loaded.flow.id} is not available in {lang}; it has "
                  f"{', '.join(loaded.flow.languages)}[/red]")
        raise typer.Exit(2)
    try:  # /lang can switch to any of the flow's languages; the bot's own default is English
        check_catalogs(["en", *loaded.flow.languages])
    except CatalogError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    name = as_name or getpass.getuser()
    url = database_url or get_settings().effective_database_url
    try:
        to_async_url(url)
    except ValueError as exc:
        err.print(str(exc), style="red", markup=False)
        raise typer.Exit(1) from None
    try:
        finished = asyncio.run(_run(url, loaded, lang, name))
    except StorageError as exc:
        err.print(str(exc), style="red", markup=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("\n[yellow]Stopped; your answers are saved. Run again to resume.[/yellow]")
        raise typer.Exit(130) from None
    if not finished:
        raise typer.Exit(0)


async def _run(url: str, loaded: LoadedFlow, lang: str | None, name: str) -> bool:
    console = Console(highlight=False, soft_wrap=True)
    async with await Database.open(url) as database:
        store = Store(database)
        runner = ConsolePreview(store, SurveyService(store), console, stdin_reader(sys.stdin))
        return await runner.run(loaded, language=lang, name=name)
