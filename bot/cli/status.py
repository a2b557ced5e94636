"""`sada status`: what the follow-up outbox holds — queued, sending, sent, failed, cancelled
by kind — when the next message is due, how old the backlog is, and the latest failures.

Every failure ends in one red line and exit code 1, never a traceback.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.cli.common import count_parser
from bot.cli.common import database_url as _database_url
from bot.cli.common import fail as _fail
from bot.staff_text import staff_line

if TYPE_CHECKING:
    from storage.outbox import OutboxStatus

# Storage and the dispatcher are imported where used: `sada --help` must start fast.


def clock() -> datetime:
    """The shell owns the clock; tests replace it to check ages exactly."""
    from bot.clock import utc_now

    return utc_now()

_ERROR_WIDTH = 80


def age(delta: timedelta) -> str:
    """A short human duration: 45s, 12m, 3h 5m, 2d 4h."""
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def counts_table(summary: OutboxStatus) -> Table:
    from storage.outbox import KINDS, STATUSES

    table = Table(title="Outbox by kind", title_justify="left")
    table.add_column("kind")
    for status in STATUSES:
        table.add_column(status, justify="right")
    table.add_column("total", justify="right")
    kinds = [k for k in KINDS if summary.count(kind=k)]
    kinds += sorted({k for k, _ in summary.counts} - set(KINDS))  # written by newer code
    for kind in kinds:
        table.add_row(kind, *(str(summary.count(kind=kind, status=st)) for st in STATUSES),
                      str(summary.count(kind=kind)))
    table.add_section()
    table.add_row("all", *(str(summary.count(status=st)) for st in STATUSES),
                  str(summary.count()), style="bold")
    return table


def timing_lines(summary: OutboxStatus) -> list[str]:
    now = summary.now
    if summary.next_due_at is None:
        return ["Nothing queued."]
    due = summary.next_due_at
    when = f"in {age(due - now)}" if due > now else f"overdue by {age(now - due)}"
    lines = [f"Next due: {_stamp(due)} ({when})",
             f"Queued and due now: {summary.overdue}"]
    if summary.oldest_queued_at is not None:
        lines.append(f"Oldest queued message: created {age(now - summary.oldest_queued_at)} "
                     "ago")
    return lines


def failures_table(summary: OutboxStatus) -> Table:
    table = Table(title=f"Latest failures ({len(summary.failures)})", title_justify="left")
    for name in ("id", "kind", "to", "attempts", "due"):
        table.add_column(name, justify="right" if name in ("id", "attempts") else "left")
    table.add_column("last error", overflow="fold")
    for f in summary.failures:
        error = f.error if len(f.error) <= _ERROR_WIDTH else f.error[: _ERROR_WIDTH - 1] + "…"
        table.add_row(str(f.id), f.kind, f"{f.channel} {f.address}", str(f.attempts),
                      f.due_at.strftime("%Y-%m-%d %H:%M"), Text(staff_line(error)))  # no markup
    return table


def delivery_table(counts: dict[tuple[str, str], int]) -> Table:
    """What the channels that report it (WhatsApp) said of the messages sent."""
    from storage.delivery import DELIVERY_STATES

    table = Table(title="Delivery reported by the channel", title_justify="left")
    table.add_column("channel")
    for state in DELIVERY_STATES:
        table.add_column(state, justify="right")
    for channel in sorted({c for c, _ in counts}):
        table.add_row(channel, *(str(counts.get((channel, st), 0)) for st in DELIVERY_STATES))
    return table


async def _summary(url: str, failures: int) -> tuple[OutboxStatus, dict[tuple[str, str], int]]:
    from storage.db import Database
    from storage.delivery import delivery_counts
    from storage.outbox import status_summary

    async with await Database.open(url) as db:
        return (await status_summary(db, clock(), failures=failures),
                await delivery_counts(db))


def status(
    failures: Annotated[
        int, typer.Option("--failures", help="How many of the latest failures to list.",
                          parser=count_parser("--failures", 0))
    ] = 10,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Overrides SADA_DATABASE_URL.")
    ] = None,
) -> None:
    """Show the follow-up outbox: messages by kind and status, the next due time, failures."""
    from storage.db import StorageError

    url = _database_url(database_url)
    try:
        summary, delivered = asyncio.run(_summary(url, failures))
    except (StorageError, ValueError) as exc:
        _fail(str(exc))
    console = Console(highlight=False, soft_wrap=True)
    if not summary.counts:
        console.print("The outbox is empty: no invitation, reminder, alert or follow-up has "
                      "been queued yet.", markup=False)
        return
    console.print(counts_table(summary))
    if delivered:
        console.print(delivery_table(delivered))
    for line in timing_lines(summary):
        console.print(line, markup=False)
    if summary.failures:
        console.print(failures_table(summary))
