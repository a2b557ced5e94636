"""Opening the database: URL mapping, engine setup, and Alembic migrations run in-process.

Users write plain URLs (``sqlite:///data/sada.db``, ``postgresql://user@host/db``); we map them
to the async drivers. SQLite is the embedded default and upgrades its own schema on first use;
PostgreSQL is upgraded explicitly with ``sada db upgrade`` and refuses to open when behind.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.sqlite_trips import one_trip_dbapi

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic itself is imported only to upgrade or make a migration: importing it costs every
# `sada` command and every process start about 100 ms, and opening a database at head needs
# only the two revisions, read below without it.

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

ACCEPTED_URLS = (
    "use sqlite:///relative/path.db, sqlite:////absolute/path.db "
    "or postgresql://user:password@host:port/dbname"
)

# Any fixed number: serialises concurrent upgrades of one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x5ADA

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
)


class StorageError(Exception):
    """Base of every error the storage layer reports to people; the message is one line."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached or opened (server down, bad credentials, bad path)."""


class SchemaOutdated(StorageError):
    """The database schema is not the revision this code needs."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"database is at revision {current or 'none (empty)'}, code needs {head}: "
            "run `sada db upgrade`"
        )


class NotFound(StorageError, LookupError):
    """A row the caller named by id does not exist."""


# Execution option marking connections that only read (see Database.reader).
READ_ONLY = "sada_read_only"

def to_async_url(url: str) -> str:
    """Map a user's plain database URL to its asyncio driver URL."""
    scheme, sep, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if sep and scheme in ("sqlite", "sqlite+aiosqlite") and len(rest) > 1 and rest[0] == "/":
        return f"sqlite+aiosqlite://{rest}"
    if sep and scheme in ("postgresql", "postgres", "postgresql+asyncpg") and rest:
        return f"postgresql+asyncpg://{rest}"
    # Never echo the URL itself: it may hold a password.
    shown = f"scheme {scheme!r}" if sep else "value (no scheme://)"
    raise ValueError(f"unsupported database URL {shown}: {ACCEPTED_URLS}")


def display_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _json_dumps(value: Any) -> str:
    # Keep Arabic and Persian readable when someone opens the SQLite file by hand.
    return json.dumps(value, ensure_ascii=False)


def _sqlite_path(async_url: str) -> Path | None:
    database = make_url(async_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


# What this process's PostgreSQL connections are called (pg_stat_activity): `sada run` names
# itself per process (storage.locks.name_this_run) so a process can see the others.
APPLICATION_NAME = "sada"


# A process's PostgreSQL connections: opened as needed, then kept. A 17th at once waits for
# one to come back (as the 16th did with SQLAlchemy's 5 + 10 overflow).
PG_POOL_SIZE = 16


def _create_engine(
    async_url: str, *, foreign_keys: bool = True, one_writer: bool = False
) -> AsyncEngine:
    if not async_url.startswith("sqlite"):
        engine = create_async_engine(
            async_url,
            json_serializer=_json_dumps,
            # asyncpg waits 60 s by default; the name tells the processes of one bot apart
            connect_args={"timeout": 10,
                          "server_settings": {"application_name": APPLICATION_NAME}},
            # Room for what a busy process holds at once (the lanes' transactions, their
            # bookings, the inbox, the scheduler), so connections are kept, not closed on
            # return and opened again (a new server process, and every statement prepared
            # again on it): with SQLAlchemy's default of 5 kept, Sada and the floor opened
            # 187 over a 50-person bench.
            # LIFO: the few connections in use stay warm, the spare ones rest.
            pool_size=PG_POOL_SIZE, max_overflow=0, pool_use_lifo=True,
        )
        _ping_when_idle(engine)
        return engine
    # one_writer (a file database): one connection, so writers queue for it in order inside
    # the process instead of polling SQLite's lock in its busy handler, whose sleeps (up to
    # 100 ms each) made p99 seconds and, under load, "database is locked" after busy_timeout.
    # Readers (Database.reader) get their own engine and still run beside the writer.
    # Its statements run on the event loop's thread (storage/sqlite_trips.py): a trip to
    # aiosqlite's costs five times a short write transaction.
    one_writer = one_writer and _sqlite_path(async_url) is not None
    sizing: dict[str, Any] = {"pool_size": 1, "max_overflow": 0} if one_writer else {}
    engine = create_async_engine(async_url, json_serializer=_json_dumps,
                                 module=one_trip_dbapi(inline=one_writer), **sizing)
    pragmas = (*_SQLITE_PRAGMAS, f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's legacy mode begins transactions only before DML, so a read-then-write
        # could lose updates and DDL would not be transactional; SQLAlchemy begins instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Take the write lock up front: SQLite has one writer anyway, and a deferred
        # transaction that later needs to write fails instead of waiting (busy_timeout).
        # Readers (Database.reader) never write: a deferred BEGIN lets them run beside the
        # writer under WAL, so a long report does not hold the bot's answers back.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# A pooled connection that rested longer than this is pinged before use (HikariCP's
# "alive bypass window"). SQLAlchemy's pool_pre_ping pings every time, and its asyncpg ping
# is three round trips (BEGIN, ";", ROLLBACK): a third of an answer's round trips on
# PostgreSQL, spent on connections used a few milliseconds before.
IDLE_PING_SECONDS = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Survive server restarts between quiet hours at no cost while the bot is busy: a
    connection idle for IDLE_PING_SECONDS or more is pinged at checkout, and a dead one is
    replaced (the pool retries the checkout on DisconnectionError)."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _rested_from(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RESTING_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _alive(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_RESTING_SINCE)
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return  # new, or back from use a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            raise DisconnectionError("the connection was closed while it rested in the pool")


_RESTING_SINCE = "sada_resting_since"


def _unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(orig).strip().splitlines()
    if isinstance(orig, ConnectionRefusedError):
        reason = "connection refused (is the server running, and on this port?)"
    elif isinstance(orig, TimeoutError):
        reason = "no answer from the server (timed out)"
    else:
        reason = lines[0] if lines else type(orig).__name__
    return DatabaseUnavailable(f"cannot open database {display_url(url)}: {reason}")


# What connecting can raise: socket errors, timeouts, driver errors (asyncpg raises its own
# PostgresError subclasses for bad credentials or a missing database before SQLAlchemy wraps).
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, DBAPIError)
try:
    import asyncpg

    _CONNECT_ERRORS += (asyncpg.PostgresError, asyncpg.InterfaceError)
except ImportError:  # pragma: no cover - asyncpg is a pinned dependency
    pass


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    # ConfigParser interpolates "%": escape it in case the install path has one.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


# A migration's `revision = "0015"` and `down_revision = "0014"` (or None) lines.
_REVISION_LINE = re.compile(
    r"""^(down_)?revision\b[^=\n]*=\s*(?:['"]([^'"]+)['"]|None)\s*$""", re.M)


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The Alembic head revision this code needs: the one no migration names as the one
    before it (tests/test_storage.py checks it is Alembic's own answer)."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for down, name in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            if name:
                (followed if down else revisions).add(name)
    heads = revisions - followed
    if len(heads) != 1:  # pragma: no cover - the migrations ship with the package
        raise StorageError(f"expected one head revision in {MIGRATIONS_DIR}, found "
                           f"{sorted(heads) or 'none'}")
    return heads.pop()


def revision_of(connection: Connection) -> str | None:
    """The database's revision (Alembic's version table), None for an empty one."""
    if not sa_inspect(connection).has_table("alembic_version"):
        return None
    found = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return None if found is None else str(found)


def _run_upgrade(connection: Connection) -> tuple[str | None, str]:
    from alembic import command
    from alembic.util import CommandError

    before = revision_of(connection)
    try:
        command.upgrade(_alembic_config(connection), "head")
    except CommandError as exc:
        raise StorageError(
            f"database is at revision {before}, which this version of Sada does not know "
            f"(it needs {head_revision()}): use a newer Sada or another database"
        ) from exc
    if connection.dialect.name == "sqlite":
        # Migrations ran with foreign keys off (a batch table rebuild would cascade-delete).
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
        if broken is not None:
            raise StorageError(f"migration left a broken foreign key in table {broken[0]}")
    after = revision_of(connection)
    assert after is not None
    return before, after


def _prepare_sqlite(async_url: str) -> None:
    path = _sqlite_path(async_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


async def _upgrade(url: str) -> tuple[str | None, str]:
    async_url = to_async_url(url)
    engine = _create_engine(async_url, foreign_keys=False)
    try:
        if engine.dialect.name == "sqlite":
            _prepare_sqlite(async_url)
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            return await conn.run_sync(_run_upgrade)
    finally:
        await engine.dispose()


async def upgrade(url: str) -> tuple[str | None, str]:
    """Apply all pending migrations; return the (before, after) revisions."""
    try:
        return await _upgrade(url)
    except _CONNECT_ERRORS as exc:
        raise _unavailable(url, exc) from exc


async def current_revision(url: str) -> str | None:
    """The database's Alembic revision, or None when it has no schema yet."""
    async_url = to_async_url(url)
    path = _sqlite_path(async_url) if async_url.startswith("sqlite") else None
    if path is not None and not path.exists():
        return None  # don't create an empty file just to look at it
    engine = _create_engine(async_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(revision_of)
    except _CONNECT_ERRORS as exc:
        raise _unavailable(url, exc) from exc
    finally:
        await engine.dispose()


class Database:
    """An open database: an async engine plus sessions on it."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._reader_engine: AsyncEngine | None = None
        self._autocommit: AsyncEngine | None = None
        self._glancer: AsyncEngine | None = None

    @classmethod
    async def open(cls, url: str, *, auto_upgrade: bool | None = None) -> Database:
        """Open ``url``; upgrade the schema (default for SQLite) or insist it is at head."""
        async_url = to_async_url(url)
        is_sqlite = async_url.startswith("sqlite")
        if auto_upgrade is None:
            auto_upgrade = is_sqlite
        engine = _create_engine(async_url, one_writer=True)
        try:
            if is_sqlite:
                _prepare_sqlite(async_url)
            async with engine.connect() as conn:
                current = await conn.run_sync(revision_of)
            if current != head_revision():
                if not auto_upgrade:
                    raise SchemaOutdated(current, head_revision())
                await _upgrade(url)
        except _CONNECT_ERRORS as exc:
            await engine.dispose()
            raise _unavailable(url, exc) from exc
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, url)

    def session(self) -> AsyncSession:
        """A new session; objects stay readable after commit (expire_on_commit=False)."""
        return AsyncSession(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def alone(self) -> AsyncIterator[AsyncConnection]:
        """A connection whose statements each stand alone, committed as they run: on
        PostgreSQL in autocommit, one round trip a statement instead of three (BEGIN, the
        statement, COMMIT); on SQLite, where a write takes the one writer's lock anyway, in
        a transaction committed when the block ends. Statements that must commit together
        belong in `engine.begin()` or a Store transaction."""
        if self.engine.dialect.name == "postgresql":
            if self._autocommit is None:
                self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            async with self._autocommit.connect() as conn:
                yield conn
        else:
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def glance(self) -> AsyncIterator[AsyncConnection]:
        """A connection for a read that stands alone, such as a poll for due work: on
        PostgreSQL in autocommit (one round trip, as `alone`); on SQLite the writers' own
        connection, on the loop's thread, in a deferred transaction that takes no write lock
        (a short read has no reason to wait for a thread as a report's reader does)."""
        if self.engine.dialect.name == "postgresql":
            async with self.alone() as conn:
                yield conn
        else:
            if self._glancer is None:
                self._glancer = self.engine.execution_options(**{READ_ONLY: True})
            async with self._glancer.connect() as conn:
                yield conn

    def reader(self) -> AsyncConnection:
        """A connection for reads only (reports): on SQLite it takes no write lock."""
        return self._readers().execution_options(**{READ_ONLY: True}).connect()

    def _readers(self) -> AsyncEngine:
        # SQLite's writers share one connection (one_writer); readers must not queue for it
        pool = self.engine.pool
        if self.engine.dialect.name != "sqlite" or not (
                isinstance(pool, AsyncAdaptedQueuePool) and pool.size() == 1):
            return self.engine
        if self._reader_engine is None:
            self._reader_engine = _create_engine(
                self.engine.url.render_as_string(hide_password=False))
        return self._reader_engine

    async def close(self) -> None:
        await self.engine.dispose()
        if self._reader_engine is not None:
            await self._reader_engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def new_revision(message: str) -> Path:
    """Autogenerate the next migration (``NNNN_<slug>.py``) by diffing the models against a
    scratch SQLite database at head; review it, and check it on PostgreSQL, before committing.
    """
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'autogenerate.db'}"
        await _upgrade(url)
        engine = _create_engine(to_async_url(url), foreign_keys=False)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(_autogenerate, message)
        finally:
            await engine.dispose()


def _autogenerate(connection: Connection, message: str) -> Path:
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(connection)
    count = sum(1 for _ in ScriptDirectory.from_config(cfg).walk_revisions())
    script = command.revision(cfg, message=message, autogenerate=True, rev_id=f"{count + 1:04d}")
    assert script is not None and not isinstance(script, list)
    return Path(script.path)
