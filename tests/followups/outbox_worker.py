"""One dispatcher in its own OS process, for test_multiprocess.py and bench/.

    python -m tests.followups.outbox_worker --database-url URL --api-url BASE --token T \
        --worker w1 [--lease 3] [--rate 200] [--batch 20]

It opens the database, builds the real aiogram transport against the given Bot API server,
prints ``ready`` and waits for a line on stdin (so several workers start together), then
dispatches until the outbox holds nothing queued or sending — waiting out the leases of
workers that died — and prints its DispatchReport as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from datetime import timedelta

from bot.channels.telegram.aiogram_shell import AiogramTransport, build_bot
from bot.followups.dispatcher import Dispatcher, DispatchReport, utc_now
from bot.followups.ratelimit import RateLimiter
from storage import outbox
from storage.db import Database


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--lease", type=float, default=3.0, help="seconds")
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--batch", type=int, default=20)
    return parser.parse_args(argv)


async def _outstanding(db: Database) -> int:
    summary = await outbox.status_summary(db, utc_now(), failures=0)
    return summary.count(status="queued") + summary.count(status="sending")


async def main(argv: list[str]) -> None:
    args = _arguments(argv)
    bot = build_bot(args.token, args.api_url)
    try:
        async with await Database.open(args.database_url) as db:
            lease = timedelta(seconds=args.lease)
            dispatcher = Dispatcher(
                db, AiogramTransport(bot), limiter=RateLimiter(rate=args.rate),
                lease=lease, send_timeout=lease / 2, batch=args.batch, worker_id=args.worker,
            )
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            total = DispatchReport()
            while True:
                report = await dispatcher.run_once()
                total = total + report
                if report.claimed:
                    continue
                if dispatcher.paused():  # a 429: run_once does nothing until it passes
                    await asyncio.sleep(0.05)
                    continue
                if not await _outstanding(db):
                    break
                await asyncio.sleep(0.05)  # rows held by another worker, or due later
            result = dataclasses.asdict(total)
            result["paused_until"] = None
            print(json.dumps({"worker": args.worker, **result}), flush=True)
    finally:
        await bot.session.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
