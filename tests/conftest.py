"""Shared fixtures: a fresh, real database per test, on SQLite and on PostgreSQL.

PostgreSQL runs when SADA_TEST_POSTGRES_URL names a server; without it those tests are
skipped, except on CI, where a missing server is a failure rather than a silently smaller
test run.

Migrating costs about 0.6 s on PostgreSQL and 0.4 s on SQLite, so each test process
migrates once: a SQLite file it copies, and a PostgreSQL template database it copies with
CREATE DATABASE ... TEMPLATE (0.1 s empty, 0.65 s at head on a slow disk).

- `db_url` is an empty database of the test's own: for tests of migrations and of
  commands that migrate.
- `head_url` is a database at head with no rows, of the test's own: for commands given a
  URL. On PostgreSQL it is one database per test process, put back as it was after each
  test (rows, id counters; a test that changed the schema gets it dropped and a new one
  copied), which costs a tenth of a copy.
- `database` is an open database at head with no rows. On PostgreSQL it is one database
  per test process, emptied after each test (DELETE, which is 30 times faster than
  TRUNCATE on tables this small); on SQLite a copy of the migrated file.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import io
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, settings

# Property tests check what comes out, never how fast: on this shared machine one draw took a
# second under load and Hypothesis failed the test for being slow. Speed is bench/'s.
settings.register_profile("sada", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("sada")

# Sada's modules are imported where used: pytest-xdist's controller loads this file before
# it starts the workers, and storage alone (SQLAlchemy, alembic) is a second of CPU there.
if TYPE_CHECKING:
    from bot.flow.loader import LoadedFlow
    from storage.db import Database
    from storage.repo import Store

PG_ENV = "SADA_TEST_POSTGRES_URL"
T = TypeVar("T")

# An environment with PYTHONDONTWRITEBYTECODE=1 (some containers set it) makes every Python
# the suite starts compile Sada's modules from source again: about 0.65 s of CPU for each
# `sada` subprocess, and the suite starts well over a hundred. The run keeps bytecode
# (__pycache__ is in .gitignore): for this process, and, since this file is loaded before
# pytest-xdist starts its workers, for the workers and every subprocess they start.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
    sys.dont_write_bytecode = False


@pytest.fixture(scope="session", autouse=True)
def _aiogram_closes_plain_http_at_once() -> Iterator[None]:
    """aiogram's AiohttpSession.close, minus its 0.25 s wait for TLS connections to close
    when the bot speaks plain http (the fakes on 127.0.0.1): there is no TLS connection to
    wait for, and the suite closes hundreds of bots. An https bot still waits. A fixture,
    not an import here: this file is loaded by pytest-xdist's controller too, where
    importing aiogram would hold up the start of every worker by seconds."""
    from aiogram.client.session.aiohttp import AiohttpSession

    close = AiohttpSession.close

    async def close_plain_at_once(self: AiohttpSession) -> None:
        if self.api.base.startswith("http://"):
            if self._session is not None and not self._session.closed:
                await self._session.close()
            return
        await close(self)

    AiohttpSession.close = close_plain_at_once  # type: ignore[method-assign]
    yield
    AiohttpSession.close = close  # type: ignore[method-assign]


def _pg_server() -> str:
    server = os.environ.get(PG_ENV)
    if not server:
        message = f"{PG_ENV} is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI must run the PostgreSQL tests")
        pytest.skip(message)
    return server


async def _admin(server: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(server.replace("+asyncpg", ""), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"{PG_ENV} is set but its server is unusable: {exc}")


DB_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DB_PARAMS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database that exists only for this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sada.db'}"
        return
    server = _pg_server()
    name = f"sada_t_{os.getpid()}_{secrets.token_hex(4)}"
    url = await _create(server, name)
    try:
        yield url
    finally:
        await _drop(server, name)


@pytest.fixture(params=DB_PARAMS)
async def head_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a database at head with no rows, for this test alone (on PostgreSQL one
    kept by this test process and put back after each test, see _kept_copy)."""
    if request.param == "sqlite":
        path = tmp_path / "sada.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_at_head"), path)
        yield f"sqlite:///{path}"
        return
    async for url in _kept_copy(request, "head", request.getfixturevalue("_postgres_template")):
        yield url


async def _create(server: str, name: str, *, template: str | None = None) -> str:
    admin = await _admin(server)
    try:
        copied = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{copied}')
    finally:
        await admin.close()
    from sqlalchemy.engine import make_url

    return make_url(server).set(database=name).render_as_string(hide_password=False)


async def _drop(server: str, name: str) -> None:
    admin = await _admin(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _at_head(url: str) -> None:
    from storage.db import Database

    async with await Database.open(url, auto_upgrade=True):
        pass


# Empties every table but alembic_version and sets every id counter back to its start, in
# one round trip. Replica mode skips the foreign keys' triggers, so the order of the
# deletes does not matter; it needs a superuser, and _empty_tables falls back to TRUNCATE.
_DELETE_ALL = """
DO $$
DECLARE
    name text;
BEGIN
    PERFORM set_config('session_replication_role', 'replica', true);
    FOR name IN SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
                WHERE schemaname = 'public' AND tablename <> 'alembic_version' LOOP
        EXECUTE 'DELETE FROM ' || name;
    END LOOP;
    PERFORM setval(format('%I.%I', schemaname, sequencename), start_value, false)
        FROM pg_sequences WHERE schemaname = 'public';
END $$
"""


async def _empty_tables(url: str) -> None:
    """Every row gone and every id counter back at 1; the schema stays. Connections a test
    left open are ended first, so a forgotten one cannot block the next test."""
    conn = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=10)
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        try:
            await conn.execute(_DELETE_ALL)
        except asyncpg.InsufficientPrivilegeError:
            tables = [row["tablename"] for row in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'")]
            if tables:
                listed = ", ".join(f'"{table}"' for table in tables)
                await conn.execute(f"TRUNCATE {listed} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


def _run_apart(work: Coroutine[object, object, T]) -> T:
    """Run `work` on a loop of its own: session fixtures are first asked for from inside a
    test's running loop, where asyncio.run() is refused."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


@pytest.fixture(scope="session")
def _sqlite_at_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("head") / "sada.db"
    _run_apart(_at_head(f"sqlite:///{path}"))
    return path


_HEAD_FILES: dict[str, Path] = {}


def sqlite_at_head(path: Path) -> str:
    """The URL of the SQLite database at `path`, made a database at head with no rows when
    the file does not exist yet: for a test whose code under test would otherwise migrate a
    new file itself (0.3 s of CPU each time). A copy of one file migrated once per test
    process."""
    if "head" not in _HEAD_FILES:
        folder = Path(tempfile.mkdtemp(prefix="sada-head-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _run_apart(_at_head(f"sqlite:///{folder / 'sada.db'}"))
        _HEAD_FILES["head"] = folder / "sada.db"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_HEAD_FILES["head"], path)
    return f"sqlite:///{path}"


async def _seal(server: str, name: str) -> None:
    """No connections to `name` from now on: PostgreSQL copies only a database nobody is
    connected to, and a stray connection would fail the next copy."""
    admin = await _admin(server)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = $1", name)
    finally:
        await admin.close()


# The databases these fixtures name after the test process: sada_t_[tmpl_|head_]PID_...
_OURS = re.compile(r"sada_t_(?:tmpl_|head_)?(\d+)_[0-9a-f]+")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


async def _drop_orphans(server: str) -> None:
    """Drop what killed test runs left behind: databases named after a process that no
    longer exists. Only for a server on this machine, where those process ids mean
    something."""
    from sqlalchemy.engine import make_url

    if make_url(server).host not in ("127.0.0.1", "localhost", "::1", None):
        return
    admin = await _admin(server)
    try:
        for row in await admin.fetch("SELECT datname FROM pg_database "
                                     "WHERE datname LIKE 'sada\\_t\\_%'"):
            found = _OURS.fullmatch(row["datname"])
            if found and not _alive(int(found[1])):
                await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def _postgres_template() -> Iterator[str]:
    """The name of a database migrated to head once for this test process (each xdist
    worker has its own, so no worker copies while another migrates), only ever copied."""
    server = _pg_server()
    _run_apart(_drop_orphans(server))
    name = f"sada_t_tmpl_{os.getpid()}_{secrets.token_hex(3)}"
    url = _run_apart(_create(server, name))
    try:
        _run_apart(_at_head(url))
        _run_apart(_seal(server, name))
        yield name
    finally:
        _run_apart(_drop(server, name))


@pytest.fixture(scope="session")
def _postgres_at_head(_postgres_template: str) -> Iterator[str]:
    """One database at head for this test process, reused by `database` test after test."""
    server = _pg_server()
    name = f"sada_t_head_{os.getpid()}_{secrets.token_hex(3)}"
    url = _run_apart(_create(server, name, template=_postgres_template))
    try:
        yield url
    finally:
        _run_apart(_drop(server, name))


@pytest.fixture(params=DB_PARAMS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An open database with the schema at head and no rows, for this test only."""
    async for db in open_database(request, tmp_path):
        yield db


async def open_database(request: pytest.FixtureRequest, tmp_path: Path
                        ) -> AsyncIterator[Database]:
    """`database`'s own work, for a module that overrides it (request.param: the backend)."""
    from storage.db import Database

    if request.param == "sqlite":
        path = tmp_path / "sada.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_at_head"), path)
        async with await Database.open(f"sqlite:///{path}", auto_upgrade=True) as db:
            yield db
        return
    url = request.getfixturevalue("_postgres_at_head")
    try:
        async with await Database.open(url) as db:
            yield db
    finally:
        await _empty_tables(url)


@pytest.fixture
def store(database: Database) -> Store:
    from storage.repo import Store

    return Store(database)


# --- a data set built once per test process, then copied ---------------------------------

Build = Callable[["Database"], Awaitable[Any]]


@pytest.fixture(scope="session")
def _built() -> Iterator[dict[tuple[str, Build], tuple[str, Any]]]:
    """Per backend and builder: where its data set was built once for this test process (a
    SQLite file; a PostgreSQL database nobody connects to, only copied), and what the
    builder returned."""
    built: dict[tuple[str, Build], tuple[str, Any]] = {}
    yield built
    for (backend, _), (name, _) in built.items():
        if backend == "postgres":
            _run_apart(_drop(_pg_server(), name))


async def _build_at(url: str, build: Build) -> Any:
    from storage.db import Database

    async with await Database.open(url) as db:
        return await build(db)


async def open_built(request: pytest.FixtureRequest, tmp_path: Path, build: Build
                     ) -> AsyncIterator[Database]:
    """For a fixture parametrized with DB_PARAMS: an open database at head holding what
    `build` writes, for this test only, as if `build(database)` had run on the `database`
    fixture (ids and id counters included). `build` runs once per test process and
    backend; each test gets a copy, which costs a fraction of building the rows again (on
    PostgreSQL a copy kept for the next test and put back, see _kept_copy)."""
    from storage.db import Database

    built = request.getfixturevalue("_built")
    key = (request.param, build)
    if request.param == "sqlite":
        if key not in built:
            factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
            source = factory.mktemp("built") / "sada.db"
            shutil.copyfile(request.getfixturevalue("_sqlite_at_head"), source)
            built[key] = (str(source), _run_apart(_build_at(f"sqlite:///{source}", build)))
        path = tmp_path / "sada.db"
        shutil.copyfile(built[key][0], path)
        async with await Database.open(f"sqlite:///{path}") as db:
            yield db
        return
    server = _pg_server()
    if key not in built:
        name = f"sada_t_tmpl_{os.getpid()}_{secrets.token_hex(3)}"
        url = _run_apart(_create(server, name, template=request.getfixturevalue(
            "_postgres_template")))
        try:
            result = _run_apart(_build_at(url, build))
            _run_apart(_seal(server, name))
        except BaseException:
            _run_apart(_drop(server, name))
            raise
        built[key] = (name, result)
    async for url in _kept_copy(request, key, built[key][0]):
        async with await Database.open(url) as db:
            yield db


# --- PostgreSQL copies kept for the next test, put back as they were ------------------------

# What a test could change in a database beyond its rows and id counters: then it is not
# put back but dropped, and the next test gets a new copy.
_SCHEMA = """
SELECT md5(coalesce(string_agg(line, E'\\n' ORDER BY line), '')) FROM (
    SELECT format('column %s.%s %s %s %s', table_name, column_name, data_type, is_nullable,
                  column_default) AS line
        FROM information_schema.columns WHERE table_schema = 'public'
    UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid))
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL SELECT 'sequence ' || sequencename FROM pg_sequences WHERE schemaname = 'public'
    UNION ALL SELECT 'version ' || version_num FROM alembic_version
) AS schema
"""
_TABLES = ("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
           "AND tablename <> 'alembic_version'")


@dataclass
class _Kept:
    """A database a test process reuses, and what it held when it was copied: each table's
    rows (binary COPY), each id counter (value, is_called), the schema's fingerprint."""

    name: str
    url: str
    rows: dict[str, bytes]
    counters: dict[str, tuple[int, bool]]
    schema: str


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url.replace("+asyncpg", ""), timeout=10)


async def _keep(server: str, template: str) -> _Kept:
    name = f"sada_t_head_{os.getpid()}_{secrets.token_hex(3)}"
    url = await _create(server, name, template=template)
    try:
        conn = await _connect(url)
        try:
            rows: dict[str, bytes] = {}
            for record in await conn.fetch(_TABLES):
                out = io.BytesIO()
                copied = await conn.copy_from_table(
                    record["tablename"], output=out, schema_name="public", format="binary")
                if copied != "COPY 0":
                    rows[record["tablename"]] = out.getvalue()
            counters: dict[str, tuple[int, bool]] = {}
            for record in await conn.fetch(
                    "SELECT format('%I.%I', schemaname, sequencename) AS name "
                    "FROM pg_sequences WHERE schemaname = 'public'"):
                value, called = await conn.fetchrow(
                    f"SELECT last_value, is_called FROM {record['name']}")
                counters[record["name"]] = (value, called)
            return _Kept(name, url, rows, counters, await conn.fetchval(_SCHEMA))
        finally:
            await conn.close()
    except BaseException:
        await _drop(server, name)
        raise


async def _put_back(kept: _Kept) -> bool:
    """`kept` holding again what it held when copied, as a new copy would; False when the
    schema changed (or this cannot be done: PostgreSQL applies the foreign keys unless a
    superuser says otherwise), and it must be dropped instead. Connections a test left open
    are ended first."""
    conn = await _connect(kept.url)
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        if await conn.fetchval(_SCHEMA) != kept.schema:
            return False
        async with conn.transaction():
            await conn.execute(_DELETE_ALL)  # in replica mode until the commit
            for table, rows in kept.rows.items():
                await conn.copy_to_table(table, source=io.BytesIO(rows), schema_name="public",
                                         format="binary")
            for counter, (value, called) in kept.counters.items():
                await conn.execute("SELECT setval($1, $2, $3)", counter, value, called)
        return True
    except asyncpg.InsufficientPrivilegeError:
        return False
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def _kept() -> Iterator[dict[object, _Kept]]:
    kept: dict[object, _Kept] = {}
    yield kept
    for each in kept.values():
        _run_apart(_drop(_pg_server(), each.name))


async def _kept_copy(request: pytest.FixtureRequest, key: object, template: str
                     ) -> AsyncIterator[str]:
    """The URL of a copy of the PostgreSQL database `template` for this test, as if copied
    for it: one copy per test process and `key`, put back after each test (a DELETE and a
    COPY of a few rows instead of CREATE DATABASE, 0.65 s on a slow disk)."""
    server = _pg_server()
    kept: dict[object, _Kept] = request.getfixturevalue("_kept")
    if key not in kept:
        kept[key] = await _keep(server, template)
    restored = False
    try:
        yield kept[key].url
        restored = await _put_back(kept[key])
    finally:
        if not restored:  # or the test's own copy ended with it: the next gets a new one
            await _drop(server, kept.pop(key).name)


def built_value(request: pytest.FixtureRequest, backend: str, build: Build) -> Any:
    """What `build` returned when it built, on `backend` ("sqlite" or "postgres"), the data
    set open_built copied for this test (ids, say; its objects are not this test's)."""
    return request.getfixturevalue("_built")[(backend, build)][1]


ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _project_flows() -> dict[str, LoadedFlow]:
    from bot.conversation.controller import load_flows

    return load_flows(ROOT / "flows")


def project_flows() -> dict[str, LoadedFlow]:
    """`load_flows(ROOT / "flows")`, parsed once per test process (0.1 s each time): as
    `sada run` serves every update from the flows it loaded once. A LoadedFlow and its Flow
    are frozen; each caller gets a dict of its own."""
    return dict(_project_flows())


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker per core, and one more. The three-process test
    (tests/multiprocess) holds its worker for nearly three minutes while it mostly waits on
    Telegram's 30 messages a second; without the extra worker the rest of the suite would
    have one core for all that time."""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked `slow(seconds=N)` starts first, the longest first; the rest keep their
    order. The run cannot end before its longest test, and one collected half-way starts
    half-way and holds up the end. Mark only a test that is a large part of a worker's
    share: with --dist worksteal (Makefile) the first worker is handed the front of the
    list, so the marked tests run one after another there, while a worker left idle takes
    the unmarked ones still queued behind them."""

    def place(item: pytest.Item) -> tuple[float, bool]:
        slow = item.get_closest_marker("slow")
        seconds = 0.0 if slow is None else float(slow.kwargs.get("seconds", 0))
        # A module marked `together` shares a costly module-scoped setup (a server and a
        # browser, a built wheel): right behind the marked tests, in the first worker's
        # queue, where work stealing (which takes from the end of a queue) leaves it whole.
        # Left where it was collected, it was split between workers at the end of the run,
        # and each worker paid for the setup again.
        return seconds, item.get_closest_marker("together") is not None

    items.sort(key=place, reverse=True)  # stable: the rest keep their order


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line for the skipped tests, by reason, instead of one line per test."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{count} skipped: {reason}")


@pytest.fixture(scope="session")
def forks() -> Iterator[Any]:
    """One outbox fork server per test process (tests.faults.test_dispatch_faults.ForkServer),
    shared by the kill -9 tests of the dispatcher and the multi-process outbox tests: it
    imports the bot and aiogram once and forks each worker from there."""
    from tests.faults.test_dispatch_faults import ForkServer

    server = ForkServer()
    try:
        yield server
    finally:
        server.close()
