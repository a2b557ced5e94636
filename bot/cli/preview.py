"""`sada preview`: run a flow in the terminal, as chat would, on the configured database."""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from bot.cli.common import ContextOption, database_url, fail, settings_or_exit
from bot.i18n import CatalogError, check_catalogs

if TYPE_CHECKING:
    from bot.channels.console.preview import Respondent
    from bot.flow.loader import LoadedFlow


def preview(
    flow: Annotated[str, typer.Argument(help="The flow's id (a file in SADA_FLOWS_DIR) or its "
                                        "YAML file.")],
    lang: Annotated[
        str | None, typer.Option("--lang", "-l", help="ar, fa or en (default: the flow's).")
    ] = None,
    as_name: Annotated[
        str | None,
        typer.Option("--as", help="Respondent name; the same name resumes the same session. "
                     "Without it: a nameless respondent, resumed by your login."),
    ] = None,
    context: ContextOption = None,
    database_url_option: Annotated[
        str | None, typer.Option("--database-url", help="Overrides SADA_DATABASE_URL.")
    ] = None,
) -> None:
    """Answer a flow in the terminal, one question at a time.

    Works interactively and piped (one answer per line). Commands: /back, /skip, /stop,
    /lang ar|fa|en. End of input keeps the session; running again resumes it.
    Answers go through the same steps as in chat: a detractor score opens a case
    (`sada cases list`) and alerts SADA_TELEGRAM__ALERT_CHAT_IDS when `sada run` sends them.
    """
    # Imported here, not at the top: the survey service and storage cost a second of
    # start-up that `sada --help` should not pay.
    from bot.channels.console.preview import Respondent
    from bot.flow.loader import FlowError, load_flow
    from bot.followups.invite import InviteError, check_context, flow_path
    from storage.db import StorageError

    if lang is not None and lang not in ("ar", "fa", "en"):
        fail(f"--lang must be ar, fa or en, not {lang!r}", 2)
    settings = settings_or_exit()
    err = Console(stderr=True)
    try:
        path = flow_path(flow, settings.flows_dir)
    except InviteError as exc:
        fail(str(exc), 2)
    try:
        loaded = load_flow(path)
    except FlowError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False, highlight=False)
        fail("The flow has errors; fix them (see `sada flows lint`) and retry.")
    except CatalogError as exc:  # lint measures messages in the flow's languages
        fail(str(exc))
    try:
        values = check_context(loaded.flow, context or [])
    except InviteError as exc:
        fail(str(exc), 2)
    if lang is not None and lang not in loaded.flow.languages:
        fail(f"{loaded.flow.id} is not available in {lang}; it has "
             f"{', '.join(loaded.flow.languages)}", 2)
    try:  # /lang can switch to any of the flow's languages; the bot's own default is English
        check_catalogs(["en", *loaded.flow.languages])
    except CatalogError as exc:
        fail(str(exc))
    url = database_url(database_url_option)
    respondent = Respondent.named(as_name) if as_name else Respondent(_login())
    try:
        finished = asyncio.run(_run(url, loaded, lang, respondent, values,
                                    settings.alert_to()))
    except StorageError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err.print("\n[yellow]Stopped; your answers are saved. Run again to resume.[/yellow]")
        raise typer.Exit(130) from None
    if not finished:
        raise typer.Exit(0)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return "preview"


async def _run(
    url: str, loaded: LoadedFlow, lang: str | None, respondent: Respondent,
    context: dict[str, Any], alert_to: list[tuple[str, str]],
) -> bool:
    from bot.channels.console.preview import ConsolePreview, stdin_reader
    from bot.followups.hooks import survey_hooks
    from bot.survey import SurveyService
    from storage.db import Database
    from storage.repo import Store

    console = Console(highlight=False, soft_wrap=True)
    async with await Database.open(url) as database:
        store = Store(database)
        # the same step hooks as chat: cases (alerts queue for sada run) and invitations
        service = SurveyService(store, hooks=survey_hooks(alert_to))
        runner = ConsolePreview(store, service, console, stdin_reader(sys.stdin))
        return await runner.run(loaded, language=lang, respondent=respondent,
                                context=context)
