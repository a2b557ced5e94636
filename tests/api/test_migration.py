"""Migration 0011 on a database filled by the 0010 schema: the api_idempotency table, one
row per API key and Idempotency-Key, keys kept, and back down to 0010."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from storage.db import head_revision, upgrade
from tests.test_api_keys import API_KEY, T0, _run, _table, _tables
from tests.test_migration_identities import _alembic

IDEMPOTENCY = _table("api_idempotency", "api_key_id", "key", "request_hash", "status",
                     times=("created_at",), json=("response",))


async def test_migration_0011_adds_the_table_and_goes_back(db_url: str) -> None:
    await _alembic(db_url, "upgrade", "0010")
    await _run(db_url, (sa.insert(API_KEY), [
        {"name": "helpdesk", "prefix": "00000001", "hash": "h", "scopes": ["invite"],
         "created_at": T0, "revoked_at": None}]))
    assert "api_idempotency" not in await _tables(db_url)
    assert await upgrade(db_url) == ("0010", head_revision())
    row = {"api_key_id": 1, "key": "k", "request_hash": "x", "status": 201,
           "response": {"id": 1}, "created_at": T0}
    await _run(db_url, (sa.insert(IDEMPOTENCY), [row, {**row, "key": "other"}]))
    with pytest.raises(IntegrityError):  # one answer per key of one API key
        await _run(db_url, (sa.insert(IDEMPOTENCY), [row]))
    await _alembic(db_url, "downgrade", "0010")
    assert "api_idempotency" not in await _tables(db_url)
    assert "api_key" in await _tables(db_url)
    await upgrade(db_url)
    assert "api_idempotency" in await _tables(db_url)
