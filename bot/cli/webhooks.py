"""`sada webhooks`: endpoints of integrations that receive Sada's events as signed POSTs.

A subscription's secret is printed once, by `add`; the receiver checks every request's
signature with it (docs/webhooks.md). Deliveries are sent by `sada run`. Every failure is
one red line: exit 2 for input that names nothing or cannot make a subscription, 1 for the
rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from bot.cli.common import (
    Column,
    FormatOption,
    check_format,
    fail,
    id_parser,
    print_table,
    stamp,
    with_database,
    write_records,
)

if TYPE_CHECKING:
    from storage.db import Database
    from storage.webhooks import SubscriptionRow

# Storage is imported where used: `sada --help` must start fast.

app = typer.Typer(help="Webhooks: POST response and case events to an integration's URL, "
                  "signed; add, list, remove, enable, test.", no_args_is_help=True,
                  add_completion=False)

# Kept here rather than imported from storage: the help text must not load the database layer.
_EVENTS_HELP = ("Comma-separated, from: response.completed (a survey answered to the end), "
                "case.opened (a detractor alert), case.resolved (staff closed a case).")

T = TypeVar("T")
_ID = id_parser("webhook", "sada webhooks list")


def clock() -> datetime:
    """The shell owns the clock; tests replace it."""
    from bot.clock import utc_now

    return utc_now()


def _with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    from storage.webhooks import BadWebhookInput

    return with_database(work, refused=(BadWebhookInput,))


@app.command("add")
def add_command(
    url: Annotated[str, typer.Argument(help="Where to POST events: a full http:// or "
                                       "https:// URL of the receiving integration.")],
    events: Annotated[str, typer.Option("--events", metavar="EVENT,…", help=_EVENTS_HELP)],
) -> None:
    """Subscribe a URL to events and print its signing secret, once: store it in the
    receiver's settings now.

    The secret alone goes to stdout (SECRET=$(sada webhooks add …) captures it); the rest
    to stderr.
    """
    from storage.webhooks import check_url, parse_events

    try:  # before opening the database: a typo is reported without one
        url, wanted = check_url(url), parse_events(events)
    except ValueError as exc:
        fail(str(exc), 2)
    from storage.webhooks import add_subscription

    now = clock()
    sub = _with_database(lambda db: add_subscription(db, url, wanted, now=now))
    typer.echo(sub.secret)
    Console(stderr=True, highlight=False).print(
        f"webhook {sub.id}: {sub.url} gets {', '.join(sub.events)}; its signing secret is "
        "shown only now (docs/webhooks.md says how to check signatures)", markup=False,
        soft_wrap=True)


_COLUMNS = (Column("id", right=True, min_width=2), Column("url", text=True, min_width=12),
            Column("events", text=True), Column("state"), Column("pending", right=True),
            Column("failures", right=True, drop=3), Column("last success", drop=2),
            Column("last error", text=True, drop=1))
_FIELDS = ("id", "url", "events", "active", "pending", "failures", "failing_since",
           "disabled_at", "created_at", "last_success_at", "last_error")


def _state(row: SubscriptionRow) -> str:
    sub = row.subscription
    return "active" if sub.active else f"disabled {stamp(sub.disabled_at)}"


@app.command("list")
def list_command(fmt: FormatOption = "table") -> None:
    """Subscriptions: URL, events, whether active, deliveries waiting, failures in a row,
    last success and last error. Secrets are never shown again."""
    check_format(fmt)
    from storage.webhooks import list_subscriptions

    rows: list[SubscriptionRow] = _with_database(list_subscriptions)
    if fmt != "table":
        write_records(fmt, _FIELDS, [
            [r.subscription.id, r.subscription.url,
             ",".join(r.subscription.events) if fmt == "csv" else r.subscription.events,
             r.subscription.active, r.pending, r.subscription.failures,
             r.subscription.failing_since, r.subscription.disabled_at,
             r.subscription.created_at, r.subscription.last_success_at,
             r.subscription.last_error] for r in rows])
        return
    console = Console(highlight=False)
    if not rows:
        console.print("no webhooks; add one with: sada webhooks add https://… --events "
                      "response.completed", markup=False)
        return
    print_table(console, _COLUMNS, [
        [str(r.subscription.id), r.subscription.url, ", ".join(r.subscription.events),
         _state(r), str(r.pending), str(r.subscription.failures),
         stamp(r.subscription.last_success_at) or "never", r.subscription.last_error or ""]
        for r in rows])


@app.command("remove")
def remove_command(
    subscription_id: Annotated[int, typer.Argument(
        metavar="ID", parser=_ID, help="The webhook's id (`sada webhooks list`).")],
) -> None:
    """Delete a webhook; its deliveries still waiting are dropped, never sent."""
    from storage.webhooks import remove_subscription

    sub = _with_database(lambda db: remove_subscription(db, subscription_id))
    typer.echo(f"webhook {sub.id} ({sub.url}) removed")


@app.command("enable")
def enable_command(
    subscription_id: Annotated[int, typer.Argument(
        metavar="ID", parser=_ID, help="The webhook's id (`sada webhooks list`).")],
) -> None:
    """Enable a webhook disabled after repeated failures: its waiting deliveries are sent
    again from now on, each with a fresh set of retries."""
    from storage.webhooks import enable_subscription

    now = clock()
    row = _with_database(lambda db: enable_subscription(db, subscription_id, now=now))
    typer.echo(f"webhook {row.subscription.id} ({row.subscription.url}) enabled; "
               f"{row.pending} waiting deliveries resume")


@app.command("test")
def test_command(
    subscription_id: Annotated[int, typer.Argument(
        metavar="ID", parser=_ID, help="The webhook's id (`sada webhooks list`).")],
) -> None:
    """POST one signed `ping` event to the webhook now and say what came back (exit 1
    unless a 2xx). Nothing is queued or retried."""
    from bot.followups.webhooks import send_test
    from storage.webhooks import get_subscription

    sub = _with_database(lambda db: get_subscription(db, subscription_id))
    status, what = asyncio.run(send_test(sub.url, sub.secret, now=clock()))
    if status is None or not 200 <= status < 300:
        fail(f"webhook {sub.id} ({sub.url}): {what}")
    typer.echo(f"webhook {sub.id} ({sub.url}): {what}")
