"""Real OS processes dispatching one outbox through the fake Telegram Bot API over HTTP.

The processes are forked by tests/followups/outbox_worker.py's fork server, which imports
the bot and aiogram once: a fresh interpreter spends about 6 s of CPU importing aiogram.

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
import signal
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
from tests.faults.test_dispatch_faults import ForkServer

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
    """tests/followups/outbox_worker.py's worker in a process of its own, forked by its fork
    server: a fresh interpreter would spend seconds importing aiogram each time."""

    def __init__(self, forks: ForkServer, pid: int, name: str, files: dict[str, Path]) -> None:
        self.forks = forks
        self.pid = pid
        self.name = name
        self.files = files

    @classmethod
    async def start(cls, forks: ForkServer, name: str, url: str, api: FakeBotApi, tmp: Path,
                    **options: float) -> Worker:
        files = {key: tmp / f"{name}.{key}" for key in ("log", "ready", "go", "report")}
        pid = await forks.start("worker", files["log"], **{
            key: str(path) for key, path in files.items() if key != "log"},
            database_url=url, api_url=api.base_url, token=api.token, worker=name, **options)
        worker = cls(forks, pid, name, files)
        deadline = asyncio.get_running_loop().time() + WAIT
        while not files["ready"].exists():  # its database open
            assert not _ended(pid), worker.errors()
            assert asyncio.get_running_loop().time() < deadline, worker.errors()
            await asyncio.sleep(0.01)
        return worker

    def errors(self) -> str:
        log = self.files["log"]
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def go(self) -> None:
        self.files["go"].touch()

    async def finish(self) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + WAIT
        while not _ended(self.pid):  # the server's `wait` would hold up every other question
            assert asyncio.get_running_loop().time() < deadline, self.errors()
            await asyncio.sleep(0.01)
        assert await self.forks.wait(self.pid) == 0, self.errors()
        report = self.files["report"]
        assert report.exists(), f"{self.name} wrote no report: {self.errors()}"
        return json.loads(report.read_text())  # type: ignore[no-any-return]

    async def kill(self) -> None:
        assert await self.forks.kill(self.pid) == -signal.SIGKILL


def _ended(pid: int) -> bool:
    """Whether the fork server's child `pid` has ended (a zombie until the server waits)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except (FileNotFoundError, IndexError):
        return True


def _delivered(api: FakeBotApi) -> Counter[str]:
    return Counter(api.texts())


@pytest.mark.parametrize("head_url", ["postgres", "sqlite"], indirect=True)
async def test_two_processes_deliver_every_message_exactly_once(
    head_url: str, tmp_path: Path, forks: ForkServer
) -> None:
    await _fill(head_url, 500)
    async with FakeBotApi() as api:
        # started side by side: each waits for "go" when ready
        workers = await asyncio.gather(
            *(Worker.start(forks, f"w{n}", head_url, api, tmp_path) for n in (1, 2)))
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
    head_url: str, tmp_path: Path, forks: ForkServer
) -> None:
    await _fill(head_url, 200)
    async with HoldingApi(hold="m080") as api:
        first = await Worker.start(forks, "doomed", head_url, api, tmp_path, lease=3, batch=25)
        first.go()
        await asyncio.wait_for(api.held.wait(), WAIT)
        # m080 reached "Telegram"; its row is "sending" and the answer never comes back.
        await first.kill()
        api.release.set()
        rows = {r.text: r for r in await _rows(head_url)}
        assert rows["m080"].status == "sending"
        assert all(rows[f"m{i:03d}"].status == "sent" for i in range(80))
        second = await Worker.start(forks, "successor", head_url, api, tmp_path, lease=3, batch=25)
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
    head_url: str, tmp_path: Path, forks: ForkServer
) -> None:
    await _fill(head_url, 200)
    async with FakeBotApi() as api:
        first = await Worker.start(forks, "doomed", head_url, api, tmp_path, lease=2, rate=100)
        first.go()
        await api.wait_for(lambda: len(api.sent()) >= 57, WAIT, "57 messages sent")
        await first.kill()
        second = await Worker.start(forks, "successor", head_url, api, tmp_path, lease=2, rate=100)
        second.go()
        await second.finish()
    delivered = _delivered(api)
    assert len(delivered) == 200
    assert sum(delivered.values()) - 200 <= 1, delivered.most_common(3)
    assert {r.status for r in await _rows(head_url)} == {"sent"}
