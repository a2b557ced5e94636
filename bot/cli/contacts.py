"""`sada contacts`: import contacts from CSV, list them, see which stakeholders stayed silent.

Every failure is one red line per problem on stderr and a non-zero exit code, never a
traceback: 1 when nothing could be done (bad file, database unusable), 2 for bad options.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.cli.common import (
    Column,
    FormatOption,
    check_format,
    count_parser,
    database_url,
    fail,
    print_table,
    settings_or_exit,
    write_records,
)
from bot.staff_text import staff_line

if TYPE_CHECKING:
    from bot.followups.contacts_csv import ContactRow, ImportSummary
    from bot.followups.reminders import StakeholderState
    from storage.models import Contact, ContactIdentity

# Storage and the CSV reader are imported where used: `sada --help` must start fast.

app = typer.Typer(
    help="Contacts: import them from CSV, list them, see who stayed silent.",
    no_args_is_help=True,
    add_completion=False,
)

__all__ = ["app", "fail", "settings_or_exit"]  # invite shares these


def _database_url() -> str:
    return database_url()


# --- import ------------------------------------------------------------------------------


async def _import(url: str, rows: list[ContactRow], file: str) -> ImportSummary:
    from bot.followups.contacts_csv import import_contacts
    from storage.db import Database

    async with await Database.open(url) as db:
        return await import_contacts(db, rows, now=datetime.now(UTC), file=file)


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A CSV file (UTF-8, comma, semicolon or tab "
                                         "separated) with a header line.", metavar="FILE.csv")],
    dry_run: Annotated[bool, typer.Option("--check", help="Only check the file; import "
                                          "nothing.")] = False,
) -> None:
    """Import contacts from FILE.csv; if any row is wrong, nothing is imported.

    Each problem is listed as FILE:LINE: column: what is wrong (how to fix).

    Header names (any case; each row needs at least one id):
    <channel>_id, one column per channel (telegram_id, bale_id …): the person's chat
    id on that channel, e.g. 123456789;
    external_id: your own id (people without a chat get a link);
    preferred_channel: where to write to them when they have several chats;
    name, first_name, language (ar, fa or en), timezone (e.g. Asia/Tehran),
    account (alias company), role (e.g. buyer, user), segment.

    Importing again updates contacts instead of duplicating them (a row is the
    contact any of its ids belongs to; ids it adds are added); an empty cell
    leaves the stored value as it is.
    """
    from bot.followups.contacts_csv import ContactsFileError, ImportConflict, parse_contacts
    from storage.db import StorageError

    url = _database_url()
    try:
        parsed = parse_contacts(file)
    except ContactsFileError as exc:
        fail(str(exc))
    if parsed.problems:
        err = Console(stderr=True)
        for problem in parsed.problems:
            err.print(str(problem), style="red", markup=False, highlight=False, soft_wrap=True)
        rows = len({p.line for p in parsed.problems})
        fail(f"nothing imported: {len(parsed.problems)} problem"
              f"{'s' if len(parsed.problems) != 1 else ''} on {rows} line"
              f"{'s' if rows != 1 else ''}; fix them and import the file again")
    if dry_run:
        typer.echo(f"{file}: {len(parsed.rows)} contacts, no problems (nothing imported)")
        return
    try:
        summary = asyncio.run(_import(url, parsed.rows, str(file)))
    except ImportConflict as exc:
        err = Console(stderr=True)
        for problem in exc.problems:
            err.print(str(problem), style="red", markup=False, highlight=False, soft_wrap=True)
        fail(f"nothing imported: {len(exc.problems)} row"
             f"{'s' if len(exc.problems) != 1 else ''} disagree with the stored contacts; fix "
             "them and import the file again")
    except StorageError as exc:
        fail(str(exc))
    table = Table(title=f"Imported {file.name}", show_edge=False)
    for column in ("created", "updated", "unchanged", "total"):
        table.add_column(column, justify="right")
    table.add_row(str(summary.created), str(summary.updated), str(summary.unchanged),
                  str(summary.created + summary.updated + summary.unchanged))
    Console(highlight=False).print(table)


# --- list --------------------------------------------------------------------------------


def _state(contact: Contact, identities: list[ContactIdentity]) -> str:
    from storage.identities import is_unreachable

    if contact.opted_out:
        return "opted out"
    if is_unreachable(identities):
        return "unreachable"
    return "ok"


async def _list(
    url: str, limit: int, filters: dict[str, object]
) -> tuple[list[Contact], dict[int, list[ContactIdentity]], int]:
    from storage.db import Database
    from storage.identities import identities_of
    from storage.invitations import count_contacts, find_contacts

    async with await Database.open(url) as db, db.session() as s, s.begin():
        contacts = await find_contacts(s, limit=limit, **filters)
        identities = await identities_of(s, [c.id for c in contacts if c.id is not None])
        total = await count_contacts(s, **filters)
    return contacts, identities, total


def _channels() -> list[str]:
    from bot.followups.contacts_csv import identity_channels

    return [c.name for c in identity_channels()]


def _address(identities: list[ContactIdentity], channel: str) -> str:
    """The contact's addresses on `channel` ("" when none); a blocked one is marked."""
    return " ".join(i.address + (" (unreachable)" if i.unreachable else "")
                    for i in identities if i.channel == channel)


@app.command("list")
def list_command(
    segment: Annotated[str | None, typer.Option(help="Only this segment.")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account (company).")] = None,
    role: Annotated[str | None, typer.Option(help="Only this stakeholder role.")] = None,
    language: Annotated[str | None, typer.Option(help="Only this language: ar, fa or en.")
                        ] = None,
    opted_out: Annotated[bool, typer.Option("--opted-out", help="Only those who opted out "
                                            "(/stop).")] = False,
    unreachable: Annotated[bool, typer.Option("--unreachable", help="Only those who blocked "
                                              "the bot or deleted their account.")] = False,
    reachable: Annotated[bool, typer.Option("--reachable", help="Only those we may write to "
                                            "(neither opted out nor unreachable).")] = False,
    limit: Annotated[int, typer.Option(help="Show at most this many.",
                                       parser=count_parser("--limit", 1))] = 50,
    fmt: FormatOption = "table",
) -> None:
    """List contacts, by account, role and id; filters combine."""
    check_format(fmt)
    if reachable and (opted_out or unreachable):
        fail("--reachable cannot be combined with --opted-out or --unreachable", 2)
    if language is not None and language not in ("ar", "fa", "en"):
        fail(f"--language must be ar, fa or en, not {language!r}", 2)
    filters: dict[str, object] = {"segment": segment, "account": account, "role": role,
                                  "language": language}
    if opted_out:
        filters["opted_out"] = True
    if unreachable:
        filters["unreachable"] = True
    if reachable:
        filters["reachable"] = True
    from storage.db import StorageError

    url = _database_url()
    try:
        contacts, identities, total = asyncio.run(_list(url, limit, filters))
    except StorageError as exc:
        fail(str(exc))
    channels = _channels()
    shown = f"showing {len(contacts)} of {total}" + (
        f" (--limit {total} shows all)" if total > len(contacts) else "")
    if fmt != "table":  # the data alone on stdout; the count on stderr
        write_records(fmt, _contact_fields(channels),
                      [_contact_record(c, identities.get(c.id or 0, []), channels)
                       for c in contacts])
        Console(stderr=True, highlight=False).print(shown, markup=False, style="dim")
        return
    console = Console(highlight=False)
    if not contacts:
        console.print("no contacts match (import some with `sada contacts import FILE.csv`)",
                      markup=False)
        return
    rows = []
    for c in contacts:
        mine = identities.get(c.id or 0, [])
        rows.append([str(c.id), *(_address(mine, channel) for channel in channels),
                     c.preferred_channel or "", c.external_id or "", c.name or "",
                     c.language or "", c.timezone or "", c.company or "", c.role or "",
                     c.segment or "", _state(c, mine)])
    print_table(console, _contact_columns(channels), rows)
    console.print(shown, markup=False)


def _contact_columns(channels: list[str]) -> list[Column]:
    # Narrow terminals hide the timezone first, then the preferred channel, segment,
    # language, the external id and the chats: who it is, their account and role, and
    # whether we may write stay.
    return [Column("id", right=True), *(Column(channel, drop=1) for channel in channels),
            Column("preferred", drop=6), Column("external id", drop=2),
            Column("name", text=True), Column("lang", drop=3), Column("timezone", drop=7),
            Column("account", text=True), Column("role"), Column("segment", drop=4),
            Column("state")]


def _contact_fields(channels: list[str]) -> list[str]:
    return ["id", *(f"{channel}_id" for channel in channels), "preferred_channel",
            "external_id", "name", "first_name", "language", "timezone", "account", "role",
            "segment", "state"]


def _contact_record(
    c: Contact, identities: list[ContactIdentity], channels: list[str]
) -> list[object]:
    return [c.id, *(_address(identities, channel) or None for channel in channels),
            c.preferred_channel, c.external_id, c.name, c.first_name, c.language, c.timezone,
            c.company, c.role, c.segment, _state(c, identities)]


# --- silent stakeholders -----------------------------------------------------------------


async def _silent(url: str, flow: str, account: str | None) -> list[StakeholderState]:
    from bot.followups.reminders import silent_by_role
    from storage.db import Database

    async with await Database.open(url) as db:
        return await silent_by_role(db, flow, account)


@app.command("silent")
def silent_command(
    flow: Annotated[str, typer.Option("--flow", "-f", help="The flow's id.")],
    account: Annotated[str | None, typer.Option(help="One account (default: all).")] = None,
    only_silent: Annotated[bool, typer.Option("--only-silent", help="Hide those who "
                                              "answered.")] = False,
) -> None:
    """Per account and role: who was invited to FLOW, who answered, who stayed silent."""
    from storage.db import StorageError

    url = _database_url()
    try:
        states = asyncio.run(_silent(url, flow, account))
    except StorageError as exc:
        fail(str(exc))
    console = Console(highlight=False)
    if not states:
        where = f"account {account!r}" if account else "any account"
        console.print(f"no contacts in {where} (the account column of `sada contacts "
                      "import`)", markup=False)
        return
    shown = [x for x in states if x.silent] if only_silent else states
    table = Table(show_edge=False)
    for column in ("account", "role", "name", "id", "invitation", "reminders", "sent (UTC)"):
        table.add_column(column, overflow="fold", no_wrap=column in (
            "role", "id", "invitation", "reminders"))
    for x in shown:
        status = x.status + (f" ({x.reason})" if x.reason else "")
        table.add_row(*(staff_line(v or "") for v in (x.account, x.role, x.name)),
                      str(x.contact_id), status, str(x.reminders_sent),
                      x.sent_at.strftime("%Y-%m-%d %H:%M") if x.sent_at else "")
    console.print(table)
    silent = sum(1 for x in states if x.silent)
    invited = sum(1 for x in states if x.status != "not invited")
    roles = sorted({x.role or "-" for x in states if x.silent})
    console.print(f"{silent} of {invited} invited stakeholders silent"
                  + (f" (roles: {', '.join(roles)})" if roles else ""), markup=False)
