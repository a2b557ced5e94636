"""`sada invite`: invite a segment, an account, a role or a list of contacts to a flow.

Every failure is one red line on stderr and a non-zero exit code, never a traceback:
2 for bad options (unknown flow, bad --at, bad --context), 1 when nothing could be done.
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
    ContextOption,
    database_url,
    fail,
    link_target,
    settings_or_exit,
)

if TYPE_CHECKING:
    from bot.flow.model import Flow
    from bot.followups.invite import Audience, InviteReport


async def _run(
    url: str, flow: Flow, audience: Audience, contacts_file: Path | None, at: datetime,
    context: dict[str, str], bot_username: str | None, links_out: Path, dry_run: bool,
    now: datetime, links_channel: str,
) -> InviteReport:
    # Imported here, not at the top: storage and the CSV reader cost a second of start-up
    # that `sada --help` should not pay.
    from bot.followups.invite import Audience, contacts_from_file, invite_contacts
    from storage.db import Database

    async with await Database.open(url) as db:
        if contacts_file is not None:
            ids = await contacts_from_file(db, contacts_file)
            audience = Audience(contact_ids=ids)
        return await invite_contacts(db, flow=flow, audience=audience, at=at, context=context,
                                now=now, bot_username=bot_username, links_out=links_out,
                                dry_run=dry_run, links_channel=links_channel)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def invite(
    flow: Annotated[str, typer.Option("--flow", "-f", help="The flow's id (a file in "
                                      "SADA_FLOWS_DIR) or its YAML file.")],
    segment: Annotated[str | None, typer.Option(help="Contacts of this segment.")] = None,
    account: Annotated[str | None, typer.Option(help="Stakeholders of this account "
                                                "(company).")] = None,
    role: Annotated[str | None, typer.Option(help="Contacts with this stakeholder role.")
                    ] = None,
    contacts: Annotated[Path | None, typer.Option("--contacts", metavar="FILE.csv",
                                                  help="Contacts listed in a CSV (a "
                                                  "contact_id, <channel>_id such as "
                                                  "telegram_id or bale_id, or external_id "
                                                  "column; an import file works).")] = None,
    at: Annotated[str | None, typer.Option("--at", metavar="TIME", help="When: "
                                           "2026-12-01T09:00+03:30, or \"2026-12-01 09:00\" "
                                           "in UTC. Default and any past time: now. Each "
                                           "contact gets it at their next local window.")
                  ] = None,
    context: ContextOption = None,
    links_out: Annotated[Path | None, typer.Option("--links-out", metavar="FILE.csv",
                                                   help="Where to write personal links for "
                                                   "contacts without a reachable chat "
                                                   "(default: data/invite-links-<flow>-"
                                                   "<time>.csv).")] = None,
    links_channel: Annotated[str | None, typer.Option(
        "--links-channel", metavar="CHANNEL", help="The channel whose links go to contacts "
        "without a reachable chat: telegram, bale, web … (default: web when "
        "SADA_WEB__PUBLIC_URL is set, else telegram)")] = None,
    bot_username: BotUsernameOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show who would be invited and "
                                          "skipped; change nothing.")] = False,
) -> None:
    """Invite contacts to a flow: by --segment, --account and/or --role, or --contacts FILE.

    Skipped, and counted: opted out, unreachable, surveyed with this flow within
    its fatigue (default 30d), or over its account_limit (distinct roles first).

    With a reachable chat (their preferred channel, else the one they last wrote
    from): a message with a "Start the survey" button, at their
    next local window (the flow's reminders window and working days).

    Without one: a personal link (t.me, or --links-channel's form), in a CSV for you
    to send by e-mail or SMS; the link needs the bot's @username
    (SADA_<CHANNEL>__BOT_USERNAME or --bot-username): without it those contacts are
    skipped, the others invited, and a later run reaches them.
    """
    if contacts is not None and (segment or account or role):
        fail("--contacts cannot be combined with --segment, --account or --role", 2)
    if contacts is None and not (segment or account or role):
        fail("say who to invite: --segment S, --account A, --role R (they combine) or "
              "--contacts FILE.csv", 2)
    from bot.followups.contacts_csv import ContactsFileError
    from bot.followups.invite import (
        Audience,
        InviteError,
        check_context,
        default_links_file,
        parse_at,
        resolve_flow,
    )
    from storage.db import StorageError

    settings = settings_or_exit()
    now = datetime.now(UTC)
    links = link_target(settings, links_channel, bot_username)
    try:
        loaded = resolve_flow(flow, settings.flows_dir)
        when = parse_at(at, now)
        values = check_context(loaded.flow, context or [])
    except InviteError as exc:
        fail(str(exc), 2)
    audience = Audience(segment=segment, account=account, role=role)
    target = links_out or default_links_file(settings.data_dir, loaded.flow.id, now)
    url = database_url()
    try:
        report = asyncio.run(_run(url, loaded.flow, audience,
                                  contacts, when, values,
                                  links.name, target, dry_run, now, links.channel))
    except InviteError as exc:
        fail(str(exc), 2)
    except ContactsFileError as exc:
        fail(str(exc))
    except (StorageError, OSError) as exc:
        fail(f"nothing was invited: {exc}")
    console = Console(highlight=False, soft_wrap=True)
    described = audience.describe() if contacts is None else str(contacts)
    if report.invited == 0 and not report.skipped:
        fail(f"no contacts match {described}: check them with `sada contacts list`")
    console.print(f"{loaded.flow.id}: {report.summary()}", markup=False)
    first, last = report.first_due, report.last_due
    if report.by_message and first is not None and last is not None:  # each has a due time
        timing = _when(first) if first == last else f"{_when(first)} to {_when(last)}"
        console.print(f"  {report.by_message} by message, due {timing} (each "
                      "contact's local window)", markup=False)
    if report.by_link:
        if report.links_file is not None:
            console.print(f"  {report.by_link} without a reachable chat: personal links in "
                          f"{report.links_file}; send them by e-mail, SMS or your helpdesk",
                          markup=False)
        else:
            console.print(f"  {report.by_link} without a reachable chat would get a personal "
                          "link", markup=False)
    if report.skipped["no_link"]:
        console.print(f"  {report.skipped['no_link']} without a reachable chat not invited: set "
                      f"{links.needed} or pass --bot-username, then run the same command again for "
                      "their personal links", markup=False)
    if report.skipped["account_limit"] and report.account_limit is not None:
        limit = report.account_limit
        console.print(f"  account limit: at most {limit.max} stakeholders per account within "
                      f"{limit.window}; places went to distinct roles first, then by contact "
                      "id", markup=False)
    if dry_run:
        console.print("  dry run: nothing was changed", markup=False)
