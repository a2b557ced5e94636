"""Shared fixtures: a fresh, real database per test, on SQLite and on PostgreSQL.

PostgreSQL runs when SADA_TEST_POSTGRES_URL names a server (each test gets its own
throw-away database on it); without it those tests are skipped, except on CI, where a
missing server is a failure rather than a silently smaller test run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from storage.db import Database
from storage.repo import Store

PG_ENV = "SADA_TEST_POSTGRES_URL"


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


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database that exists only for this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sada.db'}"
        return
    server = _pg_server()
    name = f"sada_t_{secrets.token_hex(6)}"
    admin = await _admin(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await _admin(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """An open database with the schema at head."""
    async with await Database.open(db_url, auto_upgrade=True) as db:
        yield db


@pytest.fixture
def store(database: Database) -> Store:
    return Store(database)
