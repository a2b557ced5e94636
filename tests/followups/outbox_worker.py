"""Dispatchers in their own OS processes, for test_multiprocess.py, tests/faults and bench/.

One worker (the real aiogram transport):

    python -m tests.followups.outbox_worker --database-url URL --api-url BASE --token T \
        --worker w1 [--lease 3] [--rate 200] [--batch 20] [--concurrency 1]

It opens the database, builds the transport against the given Bot API server, prints
``ready`` and waits for a line on stdin (so several workers start together), then dispatches
until the outbox holds nothing queued or sending — waiting out the leases of workers that
died — and prints its DispatchReport as one JSON line.

A fork server, for tests that kill and restart processes many times (a crash loop):

    python -m tests.followups.outbox_worker --fork-server

Starting Python with a Telegram library takes seconds; the server imports everything once
and then forks a fresh process per command, in milliseconds. Commands are JSON lines on
stdin, each answered by one JSON line on stdout:

- ``{"op": "dispatch", "log": PATH, "report": PATH, <the worker's options>}``: a worker as
  above (the python-telegram-bot transport), started at once; its report goes to ``report``.
  Answer: ``{"pid": N}``.
- ``{"op": "run", "log": PATH, "database_url": …, "api_url": …, "token": …,
  "flows_dir": …}``: ``run_bot`` (python-telegram-bot, long polling) as ``sada run`` runs
  it, stopping on SIGTERM. Answer: ``{"pid": N}``.
- ``{"op": "worker", "log": PATH, "ready": PATH, "go": PATH, "report": PATH,
  "database_url": …, "api_url": …, "token": …, "worker": NAME, <options>}``: the worker
  above (the aiogram transport) in a forked child; it creates ``ready`` once its database
  is open, starts when ``go`` exists, and writes its report to ``report``. Answer:
  ``{"pid": N}``. The first such command imports aiogram in the server (seconds), so the
  other uses of the server do not pay for it.
- ``{"op": "wait", "pid": N}``: waits for that child to end. Answer: ``{"pid": N,
  "status": S}``, S the exit code or minus the signal that killed it.

A child's stdout and stderr go to its ``log``. Kill children by pid (``os.kill``), then
``wait`` for them: the server is their parent and reaps them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import logging
import os
import sys
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.clock import utc_now
from bot.followups.dispatcher import Dispatcher, DispatchReport
from bot.followups.ratelimit import RateLimiter
from bot.messaging.transport import Transport
from storage import outbox
from storage.db import Database


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--fork-server", action="store_true")
    parser.add_argument("--database-url")
    parser.add_argument("--api-url")
    parser.add_argument("--token")
    parser.add_argument("--worker")
    parser.add_argument("--lease", type=float, default=3.0, help="seconds")
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.fork_server:
        for name in ("database_url", "api_url", "token", "worker"):
            if getattr(args, name) is None:
                parser.error(f"--{name.replace('_', '-')} is required")
    return args


async def _outstanding(db: Database) -> int:
    summary = await outbox.status_summary(db, utc_now(), failures=0)
    return summary.count(status="queued") + summary.count(status="sending")


async def dispatch_all(
    db: Database, transport: Transport, *, worker: str, lease: float = 3.0,
    rate: float = 200.0, batch: int = 20, concurrency: int = 1,
) -> dict[str, Any]:
    """Dispatch until nothing is queued or sending; the summed DispatchReport as a dict."""
    span = timedelta(seconds=lease)
    dispatcher = Dispatcher(
        db, {"telegram": transport}, limiters={"telegram": RateLimiter(rate=rate, per_chat=1.0)},
        lease=span,
        send_timeout=span / 2,
        batch=batch, worker_id=worker, concurrency=concurrency,
    )
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
    return {"worker": worker, **result}


async def main(argv: list[str]) -> None:
    from bot.channels.telegram.aiogram_shell import AiogramTransport, build_bot

    args = _arguments(argv)
    bot = build_bot(args.token, args.api_url)
    try:
        async with await Database.open(args.database_url) as db:
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            result = await dispatch_all(
                db, AiogramTransport(bot), worker=args.worker, lease=args.lease,
                rate=args.rate, batch=args.batch, concurrency=args.concurrency,
            )
            print(json.dumps(result), flush=True)
    finally:
        await bot.session.close()


# --- the fork server ------------------------------------------------------------------------


_APPLICATIONS: dict[tuple[str, str], Any] = {}  # built by the server, used by its children


def _application(token: str, api_url: str) -> Any:
    """A PTB Application for this Bot API server, built once in the server: building one
    creates two httpx clients, whose TLS set-up costs a fifth of a second each time."""
    from bot.channels.telegram.ptb_shell import build_application

    key = (token, api_url)
    if key not in _APPLICATIONS:
        _APPLICATIONS[key] = build_application(token, api_url)
    return _APPLICATIONS[key]


async def _dispatch_child(command: dict[str, Any]) -> None:
    from bot.channels.telegram.ptb_shell import PtbTransport

    application = _application(command["token"], command["api_url"])
    try:
        async with await Database.open(command["database_url"]) as db:
            result = await dispatch_all(
                db, PtbTransport(application.bot), worker=command["worker"],
                lease=command.get("lease", 3.0), rate=command.get("rate", 200.0),
                batch=command.get("batch", 20), concurrency=command.get("concurrency", 1),
            )
    finally:
        await application.bot.shutdown()
    Path(command["report"]).write_text(json.dumps(result))


async def _worker_child(command: dict[str, Any]) -> None:
    """`main`, with files for its ready, go and report lines."""
    from bot.channels.telegram.aiogram_shell import AiogramTransport, build_bot

    bot = build_bot(command["token"], command["api_url"])
    try:
        async with await Database.open(command["database_url"]) as db:
            Path(command["ready"]).touch()
            go = Path(command["go"])
            while not go.exists():
                await asyncio.sleep(0.005)
            result = await dispatch_all(
                db, AiogramTransport(bot), worker=command["worker"],
                lease=command.get("lease", 3.0), rate=command.get("rate", 200.0),
                batch=command.get("batch", 20), concurrency=command.get("concurrency", 1),
            )
    finally:
        await bot.session.close()
    Path(command["report"]).write_text(json.dumps(result))


async def _run_child(command: dict[str, Any]) -> None:
    from bot.channels.telegram.runner import run_bot
    from bot.settings import Settings

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' init-only option
        telegram={"token": command["token"], "api_url": command["api_url"]},
        database_url=command["database_url"], flows_dir=Path(command["flows_dir"]),
    )
    await run_bot(settings, framework="ptb", webhook_url=None)


_CHILDREN = {"dispatch": _dispatch_child, "run": _run_child, "worker": _worker_child}


def _child(command: dict[str, Any]) -> None:
    """In the forked process: never returns."""
    code = 0
    try:
        log = os.open(command["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request
        asyncio.run(_CHILDREN[command["op"]](command))
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # _exit: the server's own buffers, atexit hooks and finalizers are not the child's
        os._exit(code)


def _answer(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def fork_server() -> None:
    # Import what the children use before forking, so each starts in milliseconds: run_bot
    # imports the core (and the reports' charts), the follow-ups and their planners late.
    import bot.channels.telegram.ptb_shell
    import bot.channels.telegram.runner
    import bot.conversation.controller
    import bot.followups.actions
    import bot.followups.reminders
    import bot.followups.scheduler
    import bot.settings  # noqa: F401

    _answer({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "wait":
            pid = int(command["pid"])
            _, status = os.waitpid(pid, 0)
            _answer({"pid": pid, "status": os.waitstatus_to_exitcode(status)})
        elif op in _CHILDREN:
            if op == "dispatch":
                _application(command["token"], command["api_url"])
            if op == "worker":  # before the fork: each child would import it again
                importlib.import_module("bot.channels.telegram.aiogram_shell")
            pid = os.fork()
            if pid == 0:
                _child(command)
            _answer({"pid": pid})
        else:
            _answer({"error": f"unknown op {op!r}: use dispatch, run or wait"})


if __name__ == "__main__":
    if "--fork-server" in sys.argv[1:]:
        fork_server()
    else:
        asyncio.run(main(sys.argv[1:]))
