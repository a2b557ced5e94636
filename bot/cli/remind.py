"""`sada remind`: the reminders due now for contacts invited by link, in a CSV for staff.

Every failure is one red line on stderr and a non-zero exit code, never a traceback:
2 for bad options (unknown flow, links channel without a name), 1 when nothing could be done.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from bot.cli.common import (
    BotUsernameOption,
    database_url,
    fail,
    link_target,
    settings_or_exit,
)

if TYPE_CHECKING:
    from bot.flow.model import Flow
    from bot.followups.link_reminders import LinkRemindersReport


async def _run(url: str, flows: dict[str, Flow], now: datetime, links_channel: str,
               bot_username: str, links_out: Path, dry_run: bool) -> LinkRemindersReport:
    # Imported here, not at the top: storage costs start-up time `sada --help` should not pay.
    from bot.followups.link_reminders import export_link_reminders
    from storage.db import Database

    async with await Database.open(url) as db:
        return await export_link_reminders(db, flows=flows, now=now,
                                           links_channel=links_channel,
                                           bot_username=bot_username, links_out=links_out,
                                           dry_run=dry_run)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def remind(
    flow: Annotated[str | None, typer.Option("--flow", "-f", help="Only this flow (its id "
                                             "in SADA_FLOWS_DIR, or its YAML file); default: "
                                             "every flow there.")] = None,
    links_out: Annotated[Path | None, typer.Option("--links-out", metavar="FILE.csv",
                                                   help="Where to write the links (default: "
                                                   "data/reminder-links-<flow>-<time>.csv)."
                                                   )] = None,
    links_channel: Annotated[str | None, typer.Option(
        "--links-channel", metavar="CHANNEL", help="The channel the invitations' links were "
        "made for, as given to `sada invite` (default: web when SADA_WEB__PUBLIC_URL is set, "
        "else telegram)")] = None,
    bot_username: BotUsernameOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show how many reminders are due; "
                                          "change nothing.")] = False,
) -> None:
    """Write the reminders due now for contacts invited by link (no chat) to a CSV.

    Contacts with a chat are reminded by the scheduler; those without one got a personal
    link from `sada invite` or the API, and their reminders are yours to send by e-mail or
    SMS. Due now means as for chat reminders: the flow's reminders `after` steps, inside
    the contact's local window on their working days.

    Each row has the columns of the invitation links file plus `reminder` (its step, from
    1) and `started` (yes: the link resumes the survey), and the same personal link as
    the invitation. Exported steps are recorded: running again exports each once; people
    who completed, opted out or expired are left out. Run it every hour or so (cron):
    each contact is due inside their own local window.
    """
    from bot.followups.invite import InviteError, _flow_ids, resolve_flow
    from bot.followups.link_reminders import default_reminder_links_file
    from storage.db import StorageError

    settings = settings_or_exit()
    now = datetime.now(UTC)
    # as `sada invite` chooses them, so the links are the same
    links = link_target(settings, links_channel, bot_username)
    if links.name is None:
        fail(f"the links need {links.needed}: set it or pass --bot-username", 2)
    names = [flow] if flow is not None else list(_flow_ids(settings.flows_dir))
    if not names:
        fail(f"no flows in {settings.flows_dir} (SADA_FLOWS_DIR): put the flows there or pass "
             "--flow FILE.yaml", 2)
    flows: dict[str, Flow] = {}
    for each in names:
        try:
            loaded = resolve_flow(each, settings.flows_dir).flow
        except InviteError as exc:
            if flow is not None:
                fail(str(exc), 2)
            # as the scheduler does: a broken flow is left out, the others are reminded
            Console(stderr=True).print(f"skipped: {exc}", style="yellow", markup=False,
                                       highlight=False, soft_wrap=True)
            continue
        flows[loaded.id] = loaded
    if not flows:
        fail(f"no usable flow in {settings.flows_dir}: fix them (see `sada flows lint`)", 2)
    target = links_out or default_reminder_links_file(
        settings.data_dir, next(iter(flows)) if flow is not None else None, now)
    try:
        report = asyncio.run(_run(database_url(), flows, now, links.channel, links.name, target,
                                  dry_run))
    except (StorageError, OSError) as exc:
        fail(f"nothing was exported: {exc}")
    console = Console(highlight=False, soft_wrap=True)
    scope = ", ".join(flows)
    due = len(report.rows)
    if report.links_file is not None:
        console.print(f"{scope}: {_plural(due, 'reminder')} due by link: personal links in "
                      f"{report.links_file}; send them by e-mail, SMS or your helpdesk",
                      markup=False)
    elif due:
        console.print(f"{scope}: {_plural(due, 'reminder')} due by link would be exported",
                      markup=False)
    else:
        console.print(f"{scope}: no reminders due by link now", markup=False)
    if report.dropped:
        console.print(f"  {_plural(report.dropped, 'earlier step')} missed and replaced by "
                      "the latest: one nudge, not a burst", markup=False)
    if report.by_chat:
        console.print(f"  {report.by_chat} invited by link have a chat now: the scheduler "
                      "reminds them there", markup=False)
    if dry_run:
        console.print("  dry run: nothing was changed", markup=False)
