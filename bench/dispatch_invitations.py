"""Dispatching invitations to N contacts against a Bot API that enforces Telegram's 30/s.

Method
------
* A real database (a SQLite file in a temporary folder, or a fresh PostgreSQL database made
  for the run and dropped after it) gets N Telegram contacts, one scheduled invitation each,
  and one queued outbox row per invitation, all due now — what ``sada invite`` leaves
  behind for a segment of N people. Each message is written when it is sent (in the
  contact's language, with its "Start" button: bot.followups.render), as in production.
* Telegram is the tests' fake Bot API server (``tests/fakebot/server.py``) over real HTTP
  on 127.0.0.1, with ``api.rate_limit(30)``: more than 30 messages in any rolling second
  get ``429 Too Many Requests`` with ``retry_after``, as Telegram does.
* The dispatcher is the production one (``bot.followups.dispatcher.Dispatcher``) with the
  real aiogram transport, its default rate limiter (``--rate``, ``--burst`` to try others),
  batches of 50, one message at a time. It runs until the outbox is empty.
* Reported: elapsed time of the dispatch, the achieved rate and its fraction of the 30/s
  ceiling, the 429s the fake answered, duplicates (a chat that got its invitation more
  than once) and missing messages; every outbox row must end "sent". The exit status is 1
  when a message is missing or duplicated.

Run: ``.venv/bin/python bench/dispatch_invitations.py [--contacts N]
[--backend sqlite|postgres] [--postgres-url URL] [--rate R] [--burst B]``. The default
10,000 contacts take about six minutes at 30/s; ``--contacts 1000`` about 35 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlmodel import col, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake Bot API lives with the tests

from bot.channels.telegram.aiogram_shell import AiogramTransport, build_bot  # noqa: E402
from bot.channels.telegram.channel import CHANNEL  # noqa: E402
from bot.flow.loader import load_flow  # noqa: E402
from bot.followups.dispatcher import Dispatcher, DispatchReport  # noqa: E402
from bot.followups.ratelimit import RateLimiter  # noqa: E402
from storage import outbox  # noqa: E402
from storage.db import Database, upgrade  # noqa: E402
from storage.models import Contact, Invitation  # noqa: E402
from tests.fakebot.server import FakeBotApi  # noqa: E402

CHUNK = 1000
TELEGRAM_PACED = RateLimiter.for_channel(CHANNEL.capabilities)  # the dispatcher's default
CEILING = 30.0  # Telegram's bulk limit, enforced by the fake
LANGUAGES = ("fa", "ar", "en")
FLOW = Path(__file__).resolve().parents[1] / "flows" / "post_support.yaml"


async def seed(db: Database, contacts: int, now: datetime) -> None:
    """N contacts, their invitations and the queued invitation messages, in one go."""
    async with db.session() as s, s.begin():
        # In chunks: asyncpg takes at most 32,767 parameters per statement.
        for start in range(0, contacts, CHUNK):
            await s.exec(insert(Contact).values([  # type: ignore[call-overload]
                # the company's id doubles as the chat id the message goes to
                {"external_id": str(100_000 + i), "name": f"Contact {i}",
                 "language": LANGUAGES[i % 3], "segment": "bench", "opted_out": False,
                 "created_at": now, "updated_at": now}
                for i in range(start, min(start + CHUNK, contacts))
            ]))
        found = await s.exec(select(Contact.id, Contact.external_id, Contact.language))
        people = sorted(found.all(), key=lambda row: int(row[1] or 0))
        for start in range(0, contacts, CHUNK):
            await s.exec(insert(Invitation).values([  # type: ignore[call-overload]
                {"contact_id": cid, "flow_id": "post-support",
                 "context": {"touchpoint": "bench"}, "status": "scheduled", "due_at": now,
                 "token": f"bench{cid}", "reminders_sent": 0, "created_at": now}
                for cid, _, _ in people[start:start + CHUNK]
            ]))
        invitations = dict((await s.exec(select(Invitation.contact_id, Invitation.id))).all())
        for cid, chat, _ in people:
            await outbox.enqueue(
                s, key=f"invitation:{invitations[cid]}", kind="invitation", channel="telegram",
                address=str(chat), contact_id=cid, due_at=now, now=now,
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


async def run(args: argparse.Namespace) -> int:
    async with database(args.backend, args.postgres_url) as url, \
            await Database.open(url) as db, FakeBotApi() as api:
        started = time.perf_counter()
        await seed(db, args.contacts, datetime.now(UTC))
        seeded = time.perf_counter() - started
        api.rate_limit(CEILING)
        bot = build_bot(api.token, api.base_url)
        limiter = RateLimiter(rate=args.rate, per_chat=TELEGRAM_PACED.per_chat,
                              burst=args.burst)
        transport = AiogramTransport(bot)
        flow = load_flow(FLOW)
        dispatcher = Dispatcher(db, {transport.channel: transport},
                                limiters={transport.channel: limiter}, worker_id="bench",
                                flows={flow.flow.id: flow})
        total = DispatchReport()
        began = time.perf_counter()
        next_note = 1000
        try:
            while True:
                if dispatcher.paused():
                    await asyncio.sleep(0.05)
                    continue
                report = await dispatcher.run_once()
                total = total + report
                if total.sent >= next_note:
                    rate = total.sent / (time.perf_counter() - began)
                    print(f"  {total.sent:>6} sent, {rate:5.1f}/s, {api.rejected_429} × 429",
                          file=sys.stderr, flush=True)
                    next_note += 1000
                if report.claimed:
                    continue
                wake = await outbox.next_wakeup(db, channels=dispatcher.channels)
                if wake is None:
                    break
                await asyncio.sleep(max((wake - datetime.now(UTC)).total_seconds(), 0.01))
        finally:
            await bot.session.close()
        elapsed = time.perf_counter() - began
        summary = await outbox.status_summary(db, datetime.now(UTC))
        async with db.session() as s, s.begin():
            chats = set((await s.exec(select(col(Contact.external_id)))).all())
    per_chat = Counter(str(m["chat"]["id"]) for m in api.sent())
    duplicates = sum(n - 1 for n in per_chat.values() if n > 1)
    missing = len(chats - set(per_chat))
    rate = total.sent / elapsed if elapsed else 0.0
    print(f"Python {platform.python_version()}, {args.backend}, {args.contacts} contacts, "
          f"limiter {args.rate:g}/s burst {args.burst}, fake Bot API limit {CEILING:g}/s")
    print(f"seeded in {seeded:.1f} s; dispatched in {elapsed:.1f} s")
    print(f"sent {total.sent}: {rate:.2f} messages/s = {rate / CEILING:.1%} of the "
          f"{CEILING:g}/s ceiling")
    print(f"429s: {api.rejected_429}; duplicates: {duplicates}; missing: {missing}; "
          f"failed: {total.failed}; outbox: {summary.count(status='sent')} sent, "
          f"{summary.count() - summary.count(status='sent')} other")
    return 0 if duplicates == 0 and missing == 0 and total.failed == 0 else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=10_000, metavar="N")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a server where the user may CREATE DATABASE")
    parser.add_argument("--rate", type=float, default=TELEGRAM_PACED.rate,
                        help="the dispatcher's messages per second (default: its default)")
    parser.add_argument("--burst", type=int, default=TELEGRAM_PACED.burst)
    args = parser.parse_args(argv)
    if args.contacts < 1:
        parser.error("--contacts must be at least 1")
    return args


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(run(parse_args())))


if __name__ == "__main__":
    main()
