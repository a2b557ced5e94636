"""Migration 0012 adds the webhook tables to a 0011 database and takes them away again."""

from __future__ import annotations

import sqlalchemy as sa

from storage.db import _create_engine, to_async_url
from tests.test_migration_identities import _alembic


async def _tables(url: str) -> set[str]:
    engine = _create_engine(to_async_url(url))
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_0012_up_and_down(db_url: str) -> None:
    ours = {"webhook_subscription", "webhook_delivery"}
    await _alembic(db_url, "upgrade", "0011")
    assert not ours & await _tables(db_url)
    await _alembic(db_url, "upgrade", "0012")
    assert ours <= await _tables(db_url)
    await _alembic(db_url, "downgrade", "0011")
    tables = await _tables(db_url)
    assert not ours & tables and "api_idempotency" in tables
