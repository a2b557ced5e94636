"""Faults while the outbox is dispatched, in real OS processes against the fake Bot API over
HTTP, on SQLite and PostgreSQL: a crash loop of ``kill -9``, and SIGTERM under a full queue.

Each test measures and asserts the figures of issue 10: messages tried, lost, duplicated,
and how many processes crashed (or how long a stop took). They are printed too (``-s``).

Processes come from the fork server of tests/followups/outbox_worker.py: it imports the
bot once, then forks each worker in milliseconds, so a crash loop of six kills costs about a
second instead of the seconds a fresh interpreter needs to import a Telegram library.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlmodel import col, select

from storage.db import Database
from storage.models import Outbox
from tests.fakebot.server import FakeBotApi

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # seconds: bounds a broken run only


class SlowApi(FakeBotApi):
    """Takes each message at once (it counts as delivered), then answers ``delay`` seconds
    later: a kill in between is a send whose outcome the worker never learns."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def _send_message(self, params: dict[str, Any], call: Any) -> dict[str, Any]:
        message = await super()._send_message(params, call)
        await asyncio.sleep(self.delay)
        return message


class ForkServer:
    """tests/followups/outbox_worker.py --fork-server, driven from async tests."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.followups.outbox_worker", "--fork-server"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.lock = threading.Lock()
        assert self._read() == {"ready": True}

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the fork server ended"
        answer: dict[str, Any] = json.loads(line)
        assert "error" not in answer, answer
        return answer

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        with self.lock:  # one question, one answer: a wait given up on still reads its own
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
            return self._read()

    async def ask(self, **command: Any) -> dict[str, Any]:
        # in a thread: the fake Bot API serves the children from this test's event loop
        return await asyncio.wait_for(asyncio.to_thread(self._ask, command), WAIT)

    async def start(self, op: str, log: Path, **options: Any) -> int:
        return int((await self.ask(op=op, log=str(log), **options))["pid"])

    async def wait(self, pid: int) -> int:
        return int((await self.ask(op="wait", pid=pid))["status"])

    async def kill(self, pid: int) -> int:
        """SIGKILL (a no-op for a child that has ended); how it ended."""
        os.kill(pid, signal.SIGKILL)
        return await self.wait(pid)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(WAIT)


async def _fill(db: Database, count: int) -> None:
    """``count`` invitations due now (rows as outbox.enqueue writes them, in one statement)."""
    now = datetime.now(UTC)
    rows = [{"key": f"invitation:{i}", "kind": "invitation", "status": "queued",
             "channel": "telegram", "address": str(10_000 + i), "text": f"m{i:04d}",
             "attempts": 0, "due_at": now,
             "created_at": now}
            for i in range(count)]
    async with db.session() as s, s.begin():
        await s.exec(insert(Outbox), params=rows)


async def _rows(db: Database) -> list[Outbox]:
    async with db.session() as s, s.begin():
        return list((await s.exec(select(Outbox))).all())


async def _held_now(db: Database) -> bool:
    """Whether a live worker holds rows (a claim whose lease has not ended)."""
    held = select(col(Outbox.id)).where(col(Outbox.status) == "sending",
                                        col(Outbox.locked_until) > datetime.now(UTC))
    async with db.session() as s, s.begin():
        return (await s.exec(held.limit(1))).first() is not None


async def _end_leases(db: Database) -> None:
    """What the passing of a dead worker's lease does, without waiting it out."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with db.session() as s, s.begin():
        await s.exec(update(Outbox).where(col(Outbox.status) == "sending")
                     .values(locked_until=past))


def _log(tmp: Path, name: str) -> Path:
    return tmp / f"{name}.log"


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


# Where each worker of the crash loop is killed: 0 = as soon as it holds its claim (before
# or during its first send), n = once n more messages reached Telegram (mostly mid-send: the
# fake answers 30 ms after taking a message).
KILL_AFTER = (0, 3, 5, 0, 4)
MESSAGES = 30  # fewer than a batch: every worker claims every message still unsent
CONCURRENCY = 2


async def test_a_crash_loop_loses_nothing_and_spends_attempts_only_on_real_sends(
    database: Database, forks: ForkServer, tmp_path: Path
) -> None:
    db, db_url = database, database.url
    await _fill(db, MESSAGES)
    worker = {"database_url": db_url, "lease": 30.0, "rate": 500.0, "batch": 50,
              "concurrency": CONCURRENCY}
    async with SlowApi(delay=0.03) as api:
        worker.update(api_url=api.base_url, token=api.token)
        for n, after in enumerate(KILL_AFTER):
            before = len(api.sent())
            name = f"doomed{n}"
            log, ended = _log(tmp_path, name), tmp_path / f"{name}.json"
            pid = await forks.start("dispatch", log, worker=name, report=str(ended), **worker)
            if after:
                await api.wait_for(
                    lambda: len(api.sent()) >= before + after or ended.exists(),  # noqa: B023
                    WAIT, f"{after} more sent: {_tail(log)}")
            else:
                deadline = time.monotonic() + WAIT
                while not await _held_now(db) and not ended.exists():
                    assert time.monotonic() < deadline, _tail(log)
                    await asyncio.sleep(0.005)
            # before the fix the sixth worker found every message out of attempts, failed
            # them all without sending and ended on its own
            assert await forks.kill(pid) == -signal.SIGKILL, (
                f"{name} ended before its kill: {ended.read_text()}")
            await _end_leases(db)
        kills = len(KILL_AFTER)
        log = _log(tmp_path, "survivor")
        report_file = tmp_path / "survivor.json"
        pid = await forks.start("dispatch", log, worker="survivor", report=str(report_file),
                                **worker)
        assert await forks.wait(pid) == 0, _tail(log)
    report = json.loads(report_file.read_text())
    delivered = Counter(api.texts())
    rows = await _rows(db)
    tried = len(rows)
    lost = sum(1 for r in rows if delivered[r.text] == 0)
    duplicated = sum(delivered.values()) - len(delivered)
    wasted = sum(r.attempts for r in rows) - sum(delivered.values())
    print(f"\ncrash loop on {db.url.split(':')[0]}: tried {tried}, lost {lost}, "
          f"duplicated {duplicated}, crashed {kills}, attempts without a delivery {wasted}")
    assert (tried, lost) == (MESSAGES, 0)
    assert {r.status for r in rows} == {"sent"}, [
        (r.text, r.status, r.attempts, r.last_error) for r in rows if r.status != "sent"]
    assert report["failed"] == 0  # nobody "gave up after 5 attempts" never made
    # only a send in flight at a kill can have reached Telegram without being recorded
    assert duplicated <= kills * CONCURRENCY, delivered.most_common(5)
    # an attempt is recorded before each send: never fewer than the deliveries, and more
    # only for a send in flight at a kill that never reached Telegram
    assert all(r.attempts >= delivered[r.text] for r in rows)
    assert 0 <= wasted <= kills * CONCURRENCY
    # most went out on their first attempt although every worker had claimed them all
    assert sum(1 for r in rows if r.attempts == 1) >= MESSAGES - 2 * kills * CONCURRENCY


QUEUE = 1500
STOP_WITHIN = 3.0  # seconds from SIGTERM to exit; a service manager allows 10 s before -9


async def test_sigterm_under_a_full_queue_exits_at_once_and_gives_the_queue_back(
    database: Database, forks: ForkServer, tmp_path: Path
) -> None:
    db, db_url = database, database.url
    await _fill(db, QUEUE)  # about 52 s of sending at Telegram's pace
    async with SlowApi(delay=0.02) as api:
        log = _log(tmp_path, "sada-run")
        pid = await forks.start("run", log, database_url=db_url, api_url=api.base_url,
                                token=api.token, flows_dir=str(ROOT / "flows"))
        status: int | None = None
        try:
            await api.wait_for(lambda: len(api.sent()) >= 10, WAIT,
                               f"10 invitations sent: {_tail(log)}")
            os.kill(pid, signal.SIGTERM)
            stopping = time.monotonic()
            with contextlib.suppress(TimeoutError):  # before the fix: 52 s
                status = await asyncio.wait_for(forks.wait(pid), 3 * STOP_WITHIN)
            took = time.monotonic() - stopping
        finally:
            if status is None:  # not reaped yet, so the pid is still that process
                os.kill(pid, signal.SIGKILL)
    assert status is not None, (f"sada run still running {took:.0f}s after SIGTERM, "
                                f"{len(api.sent())} sent: {_tail(log)}")
    delivered = Counter(api.texts())
    rows = await _rows(db)
    by_status = Counter(r.status for r in rows)
    lost = sum(1 for r in rows if r.status != "sent" and r.status != "queued")
    duplicated = sum(delivered.values()) - len(delivered)
    print(f"\nSIGTERM on {db.url.split(':')[0]}: {QUEUE} due, {by_status['sent']} sent, "
          f"{by_status['queued']} given back, lost {lost}, duplicated {duplicated}, "
          f"shutdown {took:.2f}s")
    assert status == 0, _tail(log)
    assert took < STOP_WITHIN, f"shutdown took {took:.1f}s"
    assert "SIGTERM" in log.read_text()
    assert len(rows) == QUEUE and set(by_status) <= {"sent", "queued"}, by_status
    assert lost == 0 and duplicated == 0
    # what was sent is recorded as sent, exactly; the rest is back in the queue untouched
    assert sorted(r.text for r in rows if r.status == "sent") == sorted(delivered)
    queued = [r for r in rows if r.status == "queued"]
    assert queued and {(r.attempts, r.locked_until, r.last_error) for r in queued} == {
        (0, None, None)}
