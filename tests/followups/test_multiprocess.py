"""Real OS processes dispatching one outbox through the fake Telegram Bot API over HTTP.

- Two workers on one PostgreSQL database (and, with the same code, one SQLite file) deliver
  500 messages: every one exactly once.
- ``kill -9`` during dispatch, then a new worker: nothing is lost, and nothing is sent twice
  except the message the killed worker had in flight. A worker sends one message at a time
  (concurrency 1) and records each send in its own transaction right after Telegram answers,
  so at most ONE message per killed worker can have reached Telegram without being marked
  sent; the new worker re-sends it when the dead worker's lease ends. The first kill test
  makes that window certain — the fake holds its answer to one sendMessage after recording
  the message, and the worker is killed while it waits — and asserts that exactly that
  message, and only it, arrived twice. The second kills at an arbitrary point and asserts
  the bound: at most one duplicate.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from storage import outbox
from storage.db import Database
from storage.models import Outbox
from tests.fakebot.server import FakeBotApi

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WAIT = 120.0  # seconds: bounds a broken run only; nothing here is timed


class HoldingApi(FakeBotApi):
    """Takes the message with text ``hold`` (so it counts as delivered), then keeps the
    worker waiting for the answer until ``release`` is set."""

    def __init__(self, hold: str) -> None:
        super().__init__()
        self.hold = hold
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def _send_message(self, params: dict[str, Any], call: Any) -> dict[str, Any]:
        message = await super()._send_message(params, call)
        if params.get("text") == self.hold and not self.held.is_set():
            self.held.set()
            await self.release.wait()
        return message


async def _fill(url: str, count: int) -> None:
    now = datetime.now(UTC)
    async with await Database.open(url, auto_upgrade=True) as db, db.session() as s, s.begin():
        for i in range(count):
            await outbox.enqueue(s, key=f"invitation:{i}", kind="invitation",
                                 address=str(10_000 + i), contact_id=None, text=f"m{i:03d}",
                                 due_at=now, now=now, channel="telegram")


async def _rows(url: str) -> list[Outbox]:
    async with await Database.open(url) as db, db.session() as s, s.begin():
        return list((await s.exec(select(Outbox))).all())


class Worker:
    """tests/followups/outbox_worker.py in a subprocess."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str, log: Path) -> None:
        self.proc = proc
        self.name = name
        self.log = log

    @classmethod
    async def start(cls, name: str, url: str, api: FakeBotApi, tmp: Path,
                    **options: float) -> Worker:
        args = ["--database-url", url, "--api-url", api.base_url, "--token", api.token,
                "--worker", name]
        for key, value in options.items():
            args += [f"--{key}", str(value)]
        log = tmp / f"{name}.stderr"
        with log.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.followups.outbox_worker", *args, cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            )
        worker = cls(proc, name, log)
        assert await worker._line() == "ready", worker.errors()
        return worker

    def errors(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def _line(self) -> str:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), WAIT)
        return line.decode().strip()

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def finish(self) -> dict[str, Any]:
        line = await self._line()
        assert await asyncio.wait_for(self.proc.wait(), WAIT) == 0, self.errors()
        assert line, f"{self.name} printed no report: {self.errors()}"
        return json.loads(line)

    async def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert await asyncio.wait_for(self.proc.wait(), WAIT) == -signal.SIGKILL


def _delivered(api: FakeBotApi) -> Counter[str]:
    return Counter(api.texts())


@pytest.mark.parametrize("head_url", ["postgres", "sqlite"], indirect=True)
async def test_two_processes_deliver_every_message_exactly_once(
    head_url: str, tmp_path: Path
) -> None:
    await _fill(head_url, 500)
    async with FakeBotApi() as api:
        # started side by side: each takes seconds to import, and waits for "go" when ready
        workers = await asyncio.gather(
            *(Worker.start(f"w{n}", head_url, api, tmp_path) for n in (1, 2)))
        for worker in workers:
            worker.go()
        reports = [await worker.finish() for worker in workers]
    delivered = _delivered(api)
    assert len(delivered) == 500 and set(delivered.values()) == {1}  # none lost, none twice
    assert sum(r["sent"] for r in reports) == 500
    assert all(r["sent"] > 0 for r in reports), reports  # both really took part
    assert all(r["failed"] == 0 and r["lost_lease"] == 0 for r in reports), reports
    sent_ids = {(m["chat"]["id"], m["message_id"]) for m in api.sent()}
    rows = await _rows(head_url)
    assert {r.status for r in rows} == {"sent"}
    assert {(int(r.address), r.message_id) for r in rows} == sent_ids  # each outcome recorded


@pytest.mark.parametrize("head_url", ["postgres", "sqlite"], indirect=True)
async def test_kill_9_mid_send_loses_nothing_and_duplicates_only_the_message_in_flight(
    head_url: str, tmp_path: Path
) -> None:
    await _fill(head_url, 200)
    async with HoldingApi(hold="m080") as api:
        first = await Worker.start("doomed", head_url, api, tmp_path, lease=3, batch=25)
        first.go()
        await asyncio.wait_for(api.held.wait(), WAIT)
        # m080 reached "Telegram"; its row is "sending" and the answer never comes back.
        await first.kill()
        api.release.set()
        rows = {r.text: r for r in await _rows(head_url)}
        assert rows["m080"].status == "sending"
        assert all(rows[f"m{i:03d}"].status == "sent" for i in range(80))
        second = await Worker.start("successor", head_url, api, tmp_path, lease=3, batch=25)
        second.go()
        report = await second.finish()
    delivered = _delivered(api)
    assert len(delivered) == 200  # nothing lost
    assert {text: n for text, n in delivered.items() if n > 1} == {"m080": 2}
    assert report["sent"] == 120  # m080 again, and m081 … m199
    rows = {r.text: r for r in await _rows(head_url)}
    assert {r.status for r in rows.values()} == {"sent"}
    assert rows["m080"].attempts == 2  # the send cut off by the kill counts
    # the batch the dead worker had claimed but not sent went out once, after its lease,
    # on its first attempt: a claim is not an attempt
    assert all(rows[f"m{i:03d}"].attempts == 1 for i in range(81, 200))


@pytest.mark.parametrize("head_url", ["postgres"], indirect=True)
async def test_kill_9_at_an_arbitrary_moment_duplicates_at_most_one_message(
    head_url: str, tmp_path: Path
) -> None:
    await _fill(head_url, 200)
    async with FakeBotApi() as api:
        first = await Worker.start("doomed", head_url, api, tmp_path, lease=2, rate=100)
        first.go()
        await api.wait_for(lambda: len(api.sent()) >= 57, WAIT, "57 messages sent")
        await first.kill()
        second = await Worker.start("successor", head_url, api, tmp_path, lease=2, rate=100)
        second.go()
        await second.finish()
    delivered = _delivered(api)
    assert len(delivered) == 200
    assert sum(delivered.values()) - 200 <= 1, delivered.most_common(3)
    assert {r.status for r in await _rows(head_url)} == {"sent"}
