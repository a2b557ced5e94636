"""What a poll that finds nothing due costs a process: every `sada run` polls the outbox every
second and the webhook queue every five, most polls find nothing, and a company runs
several processes around the clock.

For each backend it prints the CPU of one empty poll (`storage.outbox.claim_due`,
`storage.webhooks.claim_due`) beside its floor: one `SELECT 1` through the same kind of
connection (`Database.glance`), the least any poll can cost. Best of ROUNDS rounds of CALLS
polls each, CPU time of this process (PostgreSQL's server is not counted).

    .venv/bin/python bench/empty_poll.py
    .venv/bin/python bench/empty_poll.py --backend postgres --postgres-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage import outbox, webhooks
from storage.db import Database

ROUNDS, CALLS = 5, 300
LEASE = timedelta(seconds=60)


async def _best(call: Callable[[], Awaitable[object]]) -> float:
    """µs of CPU per call, the best round."""
    for _ in range(30):
        await call()
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(CALLS):
            await call()
        best = min(best, (time.process_time() - started) / CALLS)
    return best * 1e6


async def measure(url: str, label: str) -> None:
    async with await Database.open(url, auto_upgrade=True) as db:
        now = datetime.now(UTC)
        # something queued, but not due: the poll's index lookup has a row to pass over
        async with db.session() as s, s.begin():
            await outbox.enqueue(s, key="later", kind="alert", channel="telegram", address="1",
                                 contact_id=None,
                                 text="later", due_at=now + timedelta(hours=1), now=now)

        async def floor() -> None:
            async with db.glance() as conn:
                (await conn.execute(text("SELECT 1"))).first()

        async def outbox_poll() -> None:
            assert not await outbox.claim_due(db, now=now, limit=50, lease=LEASE, worker="bench",
                                              channels={"telegram", "web"})

        async def webhook_poll() -> None:
            assert not await webhooks.claim_due(db, now=now, limit=50, lease=LEASE)

        base = await _best(floor)
        print(f"{label:10}  SELECT 1 (the floor)   {base:7.0f} µs")
        for name, poll in (("outbox", outbox_poll), ("webhooks", webhook_poll)):
            cost = await _best(poll)
            ratio = cost / base
            print(f"{label:10}  {name:9} empty poll  {cost:7.0f} µs   {ratio:4.1f}× the floor")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            await measure(f"sqlite:///{Path(folder) / 'poll.db'}", "SQLite")
    if args.backend in ("postgres", "both"):
        name = f"bench_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(args.postgres_url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(args.postgres_url).set(database=name)
            await measure(url.render_as_string(hide_password=False), "PostgreSQL")
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
