"""Dispatching invitations to N contacts against a fake channel that enforces its limits:
Telegram's 30/s, or WhatsApp's 80/s and one message every 6 s to the same person.

Method
------
* A real database (a SQLite file in a temporary folder, or a fresh PostgreSQL database made
  for the run and dropped after it) gets N contacts, one scheduled invitation each, and one
  queued outbox row per invitation, all due now — what ``sada invite`` leaves behind for a
  segment of N people. Each message is written when it is sent (in the contact's language,
  with its "Start" button: bot.followups.render), as in production.
* ``--channel telegram`` (the default): the contacts are Telegram chats, and Telegram is the
  tests' fake Bot API server (``tests/fakebot/server.py``) over real HTTP on 127.0.0.1, with
  ``api.rate_limit(30)``: more than 30 messages in any rolling second get ``429 Too Many
  Requests`` with ``retry_after``, as Telegram does. The real aiogram transport sends.
* ``--channel whatsapp``: the contacts are WhatsApp identities (E.164 digits), and WhatsApp is
  the tests' fake Graph API (``tests/fakegraph/server.py``) over real HTTP, with
  ``messages_per_second=80`` (error 130429 beyond) and ``pair_seconds=6`` (131056 to a
  second message to one person within 6 s). The contacts wrote a minute ago (their
  identity's ``last_inbound_at``, and the fake's window), so the invitations go free-form,
  as reply buttons; with ``--outside-window`` nobody wrote, the fake refuses free-form
  messages (131047) and the invitations must go as the configured approved template
  (``sada_invitation`` in fa, ar, en, its button opening the survey). The real
  ``WhatsAppTransport`` sends through its ``GraphClient`` (httpx) to the fake's base URL.
* The dispatcher is the production one (``bot.followups.dispatcher.Dispatcher``) with the
  channel's default rate limiter (``--rate``, ``--burst`` to try others), batches of 50,
  one message at a time (``--concurrency`` to try more). It runs until the outbox is empty.
* Reported: elapsed time of the dispatch, the achieved rate and its fraction of the
  channel's ceiling, the throttles the fake answered (429s; 130429s and 131056s), duplicates
  (a person who got their invitation more than once) and missing messages; every outbox row
  must end "sent", and on WhatsApp every message must be of the expected kind (template
  outside the window, free-form inside). The exit status is 1 when a message is missing,
  duplicated, failed or of the wrong kind.

Run: ``.venv/bin/python bench/dispatch_invitations.py [--channel telegram|whatsapp]
[--outside-window] [--contacts N] [--backend sqlite|postgres] [--postgres-url URL]
[--rate R] [--burst B] [--concurrency C]``. The default 10,000 Telegram contacts take about
six minutes at 30/s; ``--contacts 1000`` about 35 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlmodel import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake Bot API and Graph API live with the tests

from bot.channels.telegram.aiogram_shell import AiogramTransport, build_bot  # noqa: E402
from bot.channels.telegram.channel import CHANNEL as TELEGRAM  # noqa: E402
from bot.channels.whatsapp.channel import CHANNEL as WHATSAPP  # noqa: E402
from bot.channels.whatsapp.settings import Template  # noqa: E402
from bot.channels.whatsapp.transport import (  # noqa: E402
    PAIR_RATE,
    THROUGHPUT,
    GraphClient,
    WhatsAppTransport,
)
from bot.flow.loader import load_flow  # noqa: E402
from bot.followups.dispatcher import Dispatcher, DispatchReport  # noqa: E402
from bot.followups.ratelimit import RateLimiter  # noqa: E402
from bot.messaging.transport import Transport  # noqa: E402
from storage import outbox  # noqa: E402
from storage.db import Database, upgrade  # noqa: E402
from storage.models import Contact, ContactIdentity, Invitation  # noqa: E402
from tests.fakebot.server import FakeBotApi  # noqa: E402
from tests.fakegraph import FakeGraphApi  # noqa: E402

CHUNK = 1000
# The dispatcher's default pacing on each channel, and the ceiling each fake enforces.
PACED = {name: RateLimiter.for_channel(channel.capabilities)
         for name, channel in (("telegram", TELEGRAM), ("whatsapp", WHATSAPP))}
CEILINGS = {"telegram": 30.0, "whatsapp": WHATSAPP.capabilities.messages_per_second}
PAIR_SECONDS = 1 / WHATSAPP.capabilities.messages_per_chat_per_second
LANGUAGES = ("fa", "ar", "en")
FLOW = ROOT / "flows" / "post_support.yaml"
# The approved invitation template a company would submit (docs/channels.md's example).
TEMPLATE = "sada_invitation"
TEMPLATE_PARAMETERS = ("first_name", "survey")


def whatsapp_number(i: int) -> str:
    """A distinct UAE mobile number in E.164 digits per contact."""
    return f"9715{i:08d}"


def address(channel: str, i: int) -> str:
    # On Telegram the company's id doubles as the chat id the message goes to.
    return whatsapp_number(i) if channel == "whatsapp" else str(100_000 + i)


async def seed(db: Database, contacts: int, now: datetime, channel: str,
               wrote_at: datetime | None) -> None:
    """N contacts, their invitations and the queued invitation messages, in one go; on
    WhatsApp each contact's identity, last written to from at `wrote_at` (None: never)."""
    async with db.session() as s, s.begin():
        # In chunks: asyncpg takes at most 32,767 parameters per statement.
        for start in range(0, contacts, CHUNK):
            await s.exec(insert(Contact).values([  # type: ignore[call-overload]
                {"external_id": str(100_000 + i), "name": f"Contact {i}",
                 "language": LANGUAGES[i % 3], "segment": "bench", "opted_out": False,
                 "created_at": now, "updated_at": now}
                for i in range(start, min(start + CHUNK, contacts))
            ]))
        found = await s.exec(select(Contact.id, Contact.external_id))
        people = [(cid, address(channel, int(ext or 0) - 100_000))
                  for cid, ext in sorted(found.all(), key=lambda row: int(row[1] or 0))]
        for start in range(0, contacts, CHUNK):
            await s.exec(insert(Invitation).values([  # type: ignore[call-overload]
                {"contact_id": cid, "flow_id": "post-support",
                 "context": {"touchpoint": "bench"}, "status": "scheduled", "due_at": now,
                 "token": f"bench{cid}", "reminders_sent": 0, "created_at": now}
                for cid, _ in people[start:start + CHUNK]
            ]))
            if channel == "whatsapp":
                await s.exec(insert(ContactIdentity).values([  # type: ignore[call-overload]
                    {"contact_id": cid, "channel": "whatsapp", "address": number,
                     "unreachable": False, "last_inbound_at": wrote_at, "created_at": now}
                    for cid, number in people[start:start + CHUNK]
                ]))
        invitations = dict((await s.exec(select(Invitation.contact_id, Invitation.id))).all())
        for cid, to in people:
            await outbox.enqueue(
                s, key=f"invitation:{invitations[cid]}", kind="invitation", channel=channel,
                address=to, contact_id=cid, due_at=now, now=now,
                invitation_id=invitations[cid],
            )


@asynccontextmanager
async def database(backend: str, server: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="sada-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'sada.db'}"
        return
    name = f"bench_{secrets.token_hex(6)}"
    plain = server.replace("+asyncpg", "")
    admin = await asyncpg.connect(plain, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade(url)
        yield url
    finally:
        admin = await asyncpg.connect(plain, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class Fake:
    """The channel's fake server as the bench reads it after (or during) the run."""

    transport: Transport
    throttles: Callable[[], str]  # what the fake answered beyond its limits, one phrase
    throttled: Callable[[], int]  # how many sends it refused for its limits
    recipients: Callable[[], list[str]]  # the address of every message accepted
    wrong_kind: Callable[[], int]  # messages not of the kind expected (0 on Telegram)
    kinds: Callable[[], str]


async def telegram_fake(stack: AsyncExitStack) -> Fake:
    api = await stack.enter_async_context(FakeBotApi())
    api.rate_limit(CEILINGS["telegram"])
    bot = build_bot(api.token, api.base_url)
    stack.push_async_callback(bot.session.close)
    return Fake(
        transport=AiogramTransport(bot),
        throttles=lambda: f"429s: {api.rejected_429}",
        throttled=lambda: api.rejected_429,
        recipients=lambda: [str(m["chat"]["id"]) for m in api.sent()],
        wrong_kind=lambda: 0,
        kinds=lambda: "sendMessage",
    )


async def whatsapp_fake(stack: AsyncExitStack, contacts: int, outside_window: bool) -> Fake:
    api = await stack.enter_async_context(FakeGraphApi(
        templates={(TEMPLATE, lang): len(TEMPLATE_PARAMETERS) for lang in LANGUAGES},
        messages_per_second=CEILINGS["whatsapp"], pair_seconds=PAIR_SECONDS,
    ))
    if not outside_window:
        for i in range(contacts):
            api.wrote(whatsapp_number(i), seconds_ago=60)
    client = await stack.enter_async_context(GraphClient(
        api.phone_number_id, api.access_token, api_url=api.base_url, api_version=api.version))
    templates = {"invitation": {lang: Template(name=TEMPLATE, language=lang,
                                               parameters=TEMPLATE_PARAMETERS, button=True)
                                for lang in LANGUAGES}}
    expected = "template" if outside_window else "interactive"

    def codes() -> Counter[int | None]:
        return Counter(c.error_code for c in api.calls() if not c.ok)

    def throttles() -> str:
        found = codes()
        other = sum(n for code, n in found.items() if code not in THROUGHPUT | {PAIR_RATE})
        return (f"130429s: {sum(found[c] for c in THROUGHPUT)}; 131056s: {found[PAIR_RATE]}; "
                f"other errors: {other}")

    return Fake(
        transport=WhatsAppTransport(client, menu="Choose", templates=templates),
        throttles=throttles,
        throttled=lambda: sum(n for code, n in codes().items()
                              if code in THROUGHPUT | {PAIR_RATE}),
        recipients=lambda: [m["to"] for m in api.sent()],
        wrong_kind=lambda: sum(1 for m in api.sent() if m["type"] != expected),
        kinds=lambda: ", ".join(f"{n} {kind}" for kind, n in
                                Counter(m["type"] for m in api.sent()).items()),
    )


async def run(args: argparse.Namespace) -> int:
    channel = args.channel
    ceiling = CEILINGS[channel]
    async with database(args.backend, args.postgres_url) as url, \
            await Database.open(url) as db, AsyncExitStack() as stack:
        started = time.perf_counter()
        now = datetime.now(UTC)
        wrote_at = None if args.outside_window else now - timedelta(minutes=1)
        await seed(db, args.contacts, now, channel, wrote_at)
        seeded = time.perf_counter() - started
        fake = (await whatsapp_fake(stack, args.contacts, args.outside_window)
                if channel == "whatsapp" else await telegram_fake(stack))
        limiter = RateLimiter(rate=args.rate, per_chat=PACED[channel].per_chat,
                              burst=args.burst)
        flow = load_flow(FLOW)
        dispatcher = Dispatcher(db, {channel: fake.transport}, limiters={channel: limiter},
                                worker_id="bench", flows={flow.flow.id: flow},
                                concurrency=args.concurrency)
        total = DispatchReport()
        load = os.getloadavg()[0]
        began = time.perf_counter()
        cpu_began = time.process_time()
        next_note = 1000
        while True:
            if dispatcher.paused():
                await asyncio.sleep(0.05)
                continue
            report = await dispatcher.run_once()
            total = total + report
            if total.sent >= next_note:
                rate = total.sent / (time.perf_counter() - began)
                print(f"  {total.sent:>6} sent, {rate:5.1f}/s, {fake.throttles()}",
                      file=sys.stderr, flush=True)
                next_note += 1000
            if report.claimed:
                continue
            wake = await outbox.next_wakeup(db, channels=dispatcher.channels)
            if wake is None:
                break
            await asyncio.sleep(max((wake - datetime.now(UTC)).total_seconds(), 0.01))
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu_began
        loads = f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        summary = await outbox.status_summary(db, datetime.now(UTC))
        expected = {address(channel, i) for i in range(args.contacts)}
        received = Counter(fake.recipients())
        wrong_kind = fake.wrong_kind()
        throttles, kinds = fake.throttles(), fake.kinds()
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    missing = len(expected - set(received))
    strangers = len(set(received) - expected)
    rate = total.sent / elapsed if elapsed else 0.0
    window = (" (outside the 24-hour window: templates)" if args.outside_window
              else " (inside the 24-hour window: free-form)") if channel == "whatsapp" else ""
    limits = (f"{ceiling:g}/s" if channel == "telegram"
              else f"{ceiling:g}/s and 1 per {PAIR_SECONDS:g} s per person")
    print(f"Python {platform.python_version()}, {args.backend}, {args.contacts} {channel} "
          f"contacts{window}, limiter {args.rate:g}/s burst {args.burst} concurrency "
          f"{args.concurrency}, fake {channel} limit {limits}; load average {loads} "
          f"on {os.cpu_count()} cores")
    print(f"seeded in {seeded:.1f} s; dispatched in {elapsed:.1f} s")
    # What a message costs in CPU, whatever the pacing: this process holds the dispatcher,
    # its client and the fake API server (a database server's own CPU is not counted).
    print(f"CPU while dispatching: {cpu:.1f} s, "
          f"{1000 * cpu / max(total.sent, 1):.2f} ms a message (this process)")
    print(f"sent {total.sent}: {rate:.2f} messages/s = {rate / ceiling:.1%} of the "
          f"{ceiling:g}/s ceiling; messages: {kinds}")
    print(f"{throttles}; duplicates: {duplicates}; missing: {missing}; "
          f"failed: {total.failed}; wrong kind: {wrong_kind}; to strangers: {strangers}; "
          f"outbox: {summary.count(status='sent')} sent, "
          f"{summary.count() - summary.count(status='sent')} other")
    ok = duplicates == missing == strangers == wrong_kind == total.failed == 0
    return 0 if ok else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--channel", choices=("telegram", "whatsapp"), default="telegram")
    parser.add_argument("--outside-window", action="store_true",
                        help="whatsapp: nobody wrote within 24 hours, so templates go")
    parser.add_argument("--contacts", type=int, default=10_000, metavar="N")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a server where the user may CREATE DATABASE")
    parser.add_argument("--rate", type=float,
                        help="the dispatcher's messages per second (default: its default "
                             "for the channel)")
    parser.add_argument("--burst", type=int)
    parser.add_argument("--concurrency", type=int, default=1,
                        help="messages the dispatcher sends at once (default 1)")
    args = parser.parse_args(argv)
    if args.contacts < 1:
        parser.error("--contacts must be at least 1")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if args.outside_window and args.channel != "whatsapp":
        parser.error("--outside-window is for --channel whatsapp (Telegram has no window)")
    if args.rate is None:
        args.rate = PACED[args.channel].rate
    if args.burst is None:
        args.burst = PACED[args.channel].burst
    return args


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(run(parse_args())))


if __name__ == "__main__":
    main()
