"""/healthz and /readyz on the one HTTP server `sada run` serves webhooks on: alive, and ready
only with a reachable database at the schema this code needs; 503 once stopping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from bot.serving import HEALTH_PATH, READY_PATH, Shared
from storage.db import Database, _create_engine, head_revision, to_async_url, upgrade
from storage.repo import Store
from tests.bale.test_run import free_port
from tests.test_migration_identities import _alembic


async def _nothing(request: web.Request) -> web.StreamResponse:
    return web.Response()


@asynccontextmanager
async def serving(database: Database) -> AsyncIterator[tuple[Shared, str]]:
    port = free_port()
    shared = Shared(Store(database), asyncio.Event(), channels=1, listen=("127.0.0.1", port))
    await shared.route("/whatsapp", _nothing)  # the first webhook starts the server
    try:
        yield shared, f"http://127.0.0.1:{port}"
    finally:
        await shared.close()


async def get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        return answer.status, await answer.json()


def unchecked(url: str) -> Database:
    """The database at `url` as it is: no schema check, no connection yet."""
    return Database(_create_engine(to_async_url(url)), url)


async def test_alive_and_ready_then_503_once_stopping(db_url: str) -> None:
    await upgrade(db_url)
    async with await Database.open(db_url) as database, serving(database) as (shared, base):
        assert await get(base + HEALTH_PATH) == (200, {"status": "ok"})
        assert await get(base + READY_PATH) == (200, {"status": "ready",
                                                      "schema": head_revision()})
        shared.stop.set()
        assert (await get(base + HEALTH_PATH))[0] == 503
        assert (await get(base + READY_PATH))[0] == 503


async def test_not_ready_on_an_outdated_schema_says_how_to_fix_it(db_url: str) -> None:
    await _alembic(db_url, "upgrade", "0005")
    async with unchecked(db_url) as database, serving(database) as (_, base):
        status, body = await get(base + READY_PATH)
        assert status == 503
        assert body == {"status": "schema outdated", "database": "0005",
                        "needed": head_revision(), "fix": "run `sada db upgrade`"}
        assert (await get(base + HEALTH_PATH))[0] == 200  # alive all the same


async def test_not_ready_when_the_database_cannot_be_reached() -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/sada"  # nothing listens there
    async with unchecked(nowhere) as database, serving(database) as (_, base):
        status, body = await get(base + READY_PATH)
        assert status == 503 and body["status"] == "database unreachable"
        assert body["error"]
        assert (await get(base + HEALTH_PATH))[0] == 200
