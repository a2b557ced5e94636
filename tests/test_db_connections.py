"""The pool's connections: a PostgreSQL connection is pinged only after it rested, and one
the server closed meanwhile is replaced before anybody uses it; SQLite statements each make
one trip to the driver's thread, or none: the writer's run on the loop's thread and go to
the driver's only to wait for another process's lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

import storage.db as db_module
import storage.sqlite_trips as trips
from storage.db import Database
from storage.repo import Store
from storage.sqlite_trips import OneTripConnection
from tests.conftest import sqlite_at_head

ONLY_POSTGRES = pytest.mark.parametrize(
    "database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
ONLY_SQLITE = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


async def _backend_pid(database: Database) -> int:
    async with database.engine.connect() as conn:
        return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def _closed_by_the_server(database: Database, pid: int) -> None:
    """The server ends the backend `pid` (as a restart would), and a moment passes."""
    admin = await asyncpg.connect(database.url.replace("+asyncpg", ""), timeout=10)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.1)


@ONLY_POSTGRES
async def test_a_busy_connection_is_not_pinged_and_a_rested_one_is(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    dialect = database.engine.sync_engine.dialect
    pings: list[Any] = []
    ping = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 60.0)
    first = await _backend_pid(database)
    assert await _backend_pid(database) == first
    assert await _backend_pid(database) == first
    assert pings == []  # back in the pool a moment ago: used as it is

    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.05)
    await asyncio.sleep(0.1)
    assert await _backend_pid(database) == first
    assert len(pings) == 1


@ONLY_POSTGRES
async def test_a_connection_the_server_closed_while_it_rested_is_replaced(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.05)
    before = await _backend_pid(database)
    await _closed_by_the_server(database, before)
    after = await _backend_pid(database)  # no error: the dead connection never surfaced
    assert after != before


@ONLY_SQLITE
async def test_sqlite_reads_writes_and_rollbacks_through_one_trip_cursors(
        database: Database) -> None:
    async with database.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.dbapi_connection, OneTripConnection)
    async with database.engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE trip (n INTEGER)"))
        inserted = await conn.execute(sa.text("INSERT INTO trip (n) VALUES (1), (2), (3)"))
        assert inserted.rowcount == 3
        await conn.execute(sa.text("INSERT INTO trip (n) VALUES (:n)"), [{"n": 4}, {"n": 5}])
    with pytest.raises(RuntimeError):
        async with database.engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM trip"))
            raise RuntimeError("rolled back")
    async with database.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT n FROM trip ORDER BY n"))).scalars().all()
        assert rows == [1, 2, 3, 4, 5]
        updated = await conn.execute(sa.text("UPDATE trip SET n = n + 10 WHERE n > 3"))
        assert updated.rowcount == 2
        await conn.rollback()
        assert (await conn.execute(sa.text("SELECT max(n) FROM trip"))).scalar_one() == 5


def _path_of(database: Database) -> str:
    path = database.engine.url.database
    assert path
    return path


@contextmanager
def _locked_by_another_process(database: Database) -> Iterator[sqlite3.Connection]:
    """SQLite's write lock held by another connection, as a `sada` command beside the bot
    holds it, until the block ends (or `.commit()`)."""
    other = sqlite3.connect(_path_of(database), isolation_level=None,
                            check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO trip (n) VALUES (100)")
        yield other
        if other.in_transaction:
            other.commit()
    finally:
        other.close()


@asynccontextmanager
async def _ticks() -> AsyncIterator[list[float]]:
    """The times the event loop ran a 10 ms timer while the block ran."""
    seen: list[float] = []

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.01)
            seen.append(time.monotonic())

    ticker = asyncio.create_task(tick())
    try:
        yield seen
    finally:
        ticker.cancel()


async def _busy_timeout(conn: Any) -> int:
    return int((await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar_one())


@ONLY_SQLITE
async def test_sqlite_writes_run_on_the_loop_and_wait_for_a_lock_without_stopping_it(
        database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE trip (n INTEGER)"))
        writer = (await conn.get_raw_connection()).dbapi_connection
        assert isinstance(writer, OneTripConnection) and writer.inline
        assert await _busy_timeout(conn) == 0  # the loop never sleeps in SQLite's handler
    async with database.reader() as conn:
        reader = (await conn.get_raw_connection()).dbapi_connection
        assert isinstance(reader, OneTripConnection) and not reader.inline  # reports: thread

    async def write() -> None:
        async with database.engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO trip (n) VALUES (1)"))

    with _locked_by_another_process(database) as other:
        async with _ticks() as ticks:
            writing = asyncio.create_task(write())
            await asyncio.sleep(0.4)
            assert not writing.done()  # waiting for the lock, on the driver's thread
            other.commit()
            await asyncio.wait_for(writing, 5)
        assert len(ticks) >= 15  # the loop ran on while the write waited

    async with database.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT n FROM trip ORDER BY n"))).scalars().all()
        assert rows == [1, 100]
        assert await _busy_timeout(conn) == 0  # back on the loop's thread after the wait


@ONLY_SQLITE
async def test_sqlite_a_lock_held_past_the_wait_fails_the_write_and_the_next_one_works(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE trip (n INTEGER)"))
    monkeypatch.setattr(trips, "BUSY_WAIT_MS", 150)
    with _locked_by_another_process(database):
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="database is locked"):
            async with database.engine.begin() as conn:
                await conn.execute(sa.text("INSERT INTO trip (n) VALUES (1)"))
        assert time.monotonic() - started >= 0.1  # it waited, then gave up
    async with database.engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO trip (n) VALUES (2)"))
        assert await _busy_timeout(conn) == 0
    async with database.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT n FROM trip ORDER BY n"))).scalars().all()
        assert rows == [2, 100]


@ONLY_POSTGRES
async def test_a_restart_while_busy_fails_one_use_then_the_pool_starts_afresh(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """What docs/deploy.md promises for a restart while updates flow: the first use of a
    connection closed under it fails (the bypass window skips the check), the next works."""
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 60.0)
    before = await _backend_pid(database)
    await _closed_by_the_server(database, before)
    with pytest.raises(sa.exc.DBAPIError) as failed:
        await _backend_pid(database)
    assert failed.value.connection_invalidated
    assert await _backend_pid(database) != before


def _sqlite_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate()
            if getattr(getattr(t, "_target", None), "__name__", "") == "_connection_worker_thread"}


async def test_reads_made_inside_a_transaction_leave_no_connection_open(tmp_path: Path) -> None:
    """A report read inside a Store transaction (a staff /report in chat) uses the
    database's own readers, closed with it: each such read used to leave a SQLite
    connection and its thread open for the life of the process."""
    before = _sqlite_threads()
    database = await Database.open(sqlite_at_head(tmp_path / "sada.db"))
    store = Store(database)
    for _ in range(3):
        async with store.transaction() as tx, tx.database.reader() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
    await database.close()
    left = _sqlite_threads() - before
    for thread in left:
        thread.join(timeout=2)
    assert not [t for t in left if t.is_alive()]
