"""The web chat in the transport contract (tests/messaging/test_transport_contract.py): its
"server" is the database the browser reads, so the driver looks at `web_message` rows and
brings each failure about for real: a visitor no browser holds any more (Blocked), a
history full (Refused), a flood of entries in the last minute (a wait), the table gone
(the database failing: Transient), and a database server that does not answer."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from bot.channels.web import history
from bot.channels.web.transport import FLOOD_WAIT, MOST_ENTRIES, MOST_RECENT, WebTransport, press_id
from bot.messaging.transport import Transport
from storage.db import Database

_STORED = "%Y-%m-%d %H:%M:%S.%f"  # how SQLite keeps a timestamp


@cache
def _at_head() -> Path:
    """One SQLite file migrated to head per test process; each driver copies it. Migrated
    on a loop of its own: the first driver asks from inside the test's loop."""
    path = Path(tempfile.mkdtemp(prefix="sada-web-contract-")) / "web.db"

    async def migrate() -> None:
        await (await Database.open(f"sqlite:///{path}")).close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    return path


@dataclass
class WebHistory:
    """The web chat's "server": an SQLite database; base_url is its URL."""

    path: Path
    database: Database

    @property
    def base_url(self) -> str:
        return f"sqlite:///{self.path}"


@asynccontextmanager
async def web_transport(api: WebHistory, base_url: str) -> AsyncIterator[Transport]:
    if base_url == api.base_url:
        yield WebTransport(api.database)
        return
    # the contract's "nowhere" (http://127.0.0.1:<closed port>): a database server there
    port = base_url.rsplit(":", 1)[1]
    url = f"postgresql+asyncpg://sada@127.0.0.1:{port}/sada"
    nowhere = Database(create_async_engine(url, connect_args={"timeout": 2}), url)
    try:
        yield WebTransport(nowhere)
    finally:
        await nowhere.close()


class WebDriver:
    def __init__(self, api: WebHistory) -> None:
        self.api = api
        self.wait = FLOOD_WAIT

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.api.path, isolation_level=None)

    def person(self, n: int) -> str:
        visitor = f"visitor{n:015d}"
        with self._db() as db:
            db.execute("insert into web_visitor (id, opened, created_at) values (?, '[]', ?)",
                       (visitor, datetime.now(UTC).strftime(_STORED)))
        return visitor

    def _entries(self, address: str) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("select seq, message_id, kind, body from web_message where "
                              "visitor_id = ? order by seq", (address,)).fetchall()
        found = []
        for seq, message_id, kind, body in rows:
            entry = {"seq": seq, "kind": kind, **json.loads(body)}
            if kind in ("message", "edit"):
                entry["id"] = message_id
            found.append(entry)
        return found

    def sent(self, address: str) -> list[tuple[str, list[str]]]:
        return [(m["text"], [b["data"] for row in m["buttons"] or [] for b in row])
                for m in self._entries(address) if m["kind"] == "message" and "file" not in m]

    def text_of(self, address: str, message_id: int) -> str | None:
        shown = history.applied(self._entries(address))
        return next((m["text"] for m in shown if m.get("id") == message_id), None)

    async def press(self, address: str, data: str) -> str:
        offered = [b["data"] for m in self._entries(address) if m["kind"] == "message"
                   for row in m["buttons"] or [] for b in row]
        assert data in offered, (data, offered)
        return press_id(address)

    def uploads(self) -> list[tuple[str, str, bytes]]:
        with self._db() as db:
            rows = db.execute("select visitor_id, body from web_message where kind = "
                              "'message' order by seq").fetchall()
        return [(visitor, file["name"], base64.b64decode(file["data"]))
                for visitor, body in rows if (file := json.loads(body).get("file"))]

    def _fill(self, address: str, count: int, at: datetime) -> None:
        stamp = at.strftime(_STORED)
        with self._db() as db:  # one transaction: thousands of rows in a blink
            db.execute("begin")
            db.executemany("insert into web_message (visitor_id, kind, body, created_at) "
                           "values (?, 'message', '{\"text\": \"x\"}', ?)",
                           [(address, stamp)] * count)
            db.execute("commit")

    def fail_next(self, kind: str, address: str) -> None:
        now = datetime.now(UTC)
        if kind == "wait":
            self._fill(address, MOST_RECENT, now)
        elif kind == "refuse":
            self._fill(address, MOST_ENTRIES, now - timedelta(days=1))
        elif kind in ("server", "lose"):
            with self._db() as db:
                db.execute("drop table web_message")
        else:
            with self._db() as db:
                db.execute("delete from web_visitor where id = ?", (address,))


@asynccontextmanager
async def web_driver(channel: str) -> AsyncIterator[WebDriver]:
    folder = Path(tempfile.mkdtemp(prefix="sada-web-"))
    try:
        path = folder / "web.db"
        shutil.copyfile(_at_head(), path)
        database = await Database.open(f"sqlite:///{path}")
        try:
            yield WebDriver(WebHistory(path, database))
        finally:
            await database.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
