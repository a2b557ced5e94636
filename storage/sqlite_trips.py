"""SQLAlchemy's aiosqlite driver, making one trip to SQLite's thread per statement.

aiosqlite runs each SQLite connection in a thread of its own; every call crosses to it and
back (a queue, a future, a wake-up of the event loop). SQLAlchemy's adapter makes four such
trips for a SELECT (open a cursor, execute, fetch, close) and three for a write, and one more
when a connection goes back to the pool (a ROLLBACK with nothing to roll back). An update
took 42.5 trips; at 13 it takes a fifth less CPU (bench/README.md, "Fourth round").

Here a statement is opened, run, fetched and closed in one function on that thread, and the
pool's rollback is skipped when SQLite says no transaction is open. The driver is otherwise
SQLAlchemy's own (``module=`` of ``create_async_engine``), so URLs, dialect and errors are
unchanged.

A trip still costs about 80 µs of CPU (a queue, a thread's wake-up, the loop's self-pipe),
while a whole write transaction on a WAL file with ``synchronous=NORMAL`` costs about 17 µs
run where it is (no fsync at commit). So the writer's connection (``inline=True``) runs its
statements, commits and rollbacks on the event loop's thread, and goes to aiosqlite's only
to wait: it runs with ``busy_timeout=0``, and a statement SQLite answers SQLITE_BUSY (another
process holds the write lock: a `sada` command beside `sada run`) is run again on the thread
with the real timeout, so the loop never sleeps in SQLite's busy handler. Readers (reports)
keep the thread: a long query there must not stop the loop.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import immutabledict
from sqlalchemy.util.concurrency import await_

# How long a statement waits for another process's write lock (SQLite's busy_timeout).
BUSY_WAIT_MS = 5000
_T = TypeVar("_T")


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement runs, is fetched and is closed in one call on the thread.

    What the caller reads afterwards (description, rowcount, lastrowid, the rows) is kept
    here; the SQLite cursor itself never leaves the thread.
    """

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    _adapt_connection: OneTripConnection

    def __init__(self, adapt_connection: OneTripConnection) -> None:
        # The base class opens an aiosqlite cursor here: one trip saved by not calling it.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = immutabledict()
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None  # the SQLite cursor was closed on the thread already

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return self._adapt_connection.call(self._run, operation, parameters, False)
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        try:
            return self._adapt_connection.call(self._run, operation, seq_of_parameters, True)
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def _run(self, operation: str, parameters: Any, many: bool) -> None:
        """On aiosqlite's thread: the whole statement, then what the caller will read."""
        connection: sqlite3.Connection = self._connection._conn
        cursor = connection.cursor()
        try:
            if many:
                cursor.executemany(operation, parameters)
            else:
                cursor.execute(operation, () if parameters is None else parameters)
            self._description = cursor.description
            if cursor.description:
                self._rows = collections.deque(cursor.fetchall())
            self._rowcount = cursor.rowcount
            self._lastrowid = cursor.lastrowid
        finally:
            cursor.close()
            self._adapt_connection._in_transaction = connection.in_transaction


async def _ready() -> None:
    return None


def _busy(error: sqlite3.OperationalError) -> bool:
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """The adapted connection: its cursors are one-trip ones, and it knows (after every
    statement) whether SQLite has a transaction open. ``inline``: it runs them on the
    calling thread, and on aiosqlite's only to wait for a lock (see the module's doc)."""

    __slots__ = ("_in_transaction", "inline")
    _cursor_cls = _OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any, *, inline: bool = False) -> None:
        super().__init__(dbapi, connection)
        self._in_transaction = False
        self.inline = inline
        raw: sqlite3.Connection = self._connection._conn
        await_(self._connection._execute(
            raw.execute, f"PRAGMA busy_timeout={0 if inline else BUSY_WAIT_MS}"))

    def call(self, function: Callable[..., _T], *args: Any) -> _T:
        """`function(*args)` against the SQLite connection: here when inline, else (or to
        wait for another process's lock) on aiosqlite's thread."""
        if self.inline:
            try:
                result = function(*args)
            except sqlite3.OperationalError as error:
                if not _busy(error):
                    raise
            else:
                # SQLAlchemy's AsyncConnection.execute insists its statement awaited: this
                # passes through the loop's side of the greenlet and back, without yielding.
                await_(_ready())
                return result
            return await_(self._connection._execute(self._waiting, function, *args))
        return await_(self._connection._execute(function, *args))

    def _waiting(self, function: Callable[..., _T], *args: Any) -> _T:
        connection: sqlite3.Connection = self._connection._conn
        connection.execute(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")
        try:
            return function(*args)
        finally:
            connection.execute("PRAGMA busy_timeout=0")

    def rollback(self) -> None:
        # The pool rolls back every connection it gets back; with no transaction open (the
        # usual case: it was committed) that is a no-op SQLite need not be asked about.
        if self._in_transaction:
            self._end(sqlite3.Connection.rollback)

    def commit(self) -> None:
        if self._in_transaction:
            self._end(sqlite3.Connection.commit)

    def _end(self, ending: Callable[[sqlite3.Connection], None]) -> None:
        connection: sqlite3.Connection = self._connection._conn
        try:
            self.call(ending, connection)
        except Exception as error:
            self._handle_exception(error)
        self._in_transaction = connection.in_transaction


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI adapter, handing out OneTripConnections."""

    def __init__(self, *, inline: bool) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.inline = inline

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection, inline=self.inline)


def one_trip_dbapi(*, inline: bool = False) -> OneTripDBAPI:
    """The ``module=`` for ``create_async_engine`` on a ``sqlite+aiosqlite`` URL;
    ``inline`` for the writer's engine (see the module's doc)."""
    return OneTripDBAPI(inline=inline)


__all__ = ["OneTripConnection", "OneTripDBAPI", "one_trip_dbapi"]
