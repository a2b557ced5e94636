"""Migration 0009 on a database filled by the 0008 schema: every session is kept with the
message that shows its question, and the column then holds WhatsApp's 63-bit numbers (a
32-bit column made PostgreSQL refuse a WhatsApp answer); the downgrade forgets only the
numbers its narrower column cannot hold."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from bot.channels.whatsapp.transport import message_number
from storage.db import _create_engine, head_revision, to_async_url, upgrade
from tests.test_migration_identities import _alembic, _table

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
CONTACT = _table("contact", "id", "opted_out", times=("created_at", "updated_at"))
FLOW_VERSION = _table("flow_version", "id", "flow_id", "content_hash", "content",
                      times=("created_at",))
SESSION = _table("survey_session", "id", "contact_id", "flow_version_id", "flow_id", "status",
                 "language", "prompt_message_id", times=("started_at", "last_activity_at"),
                 json=("state", "context"))


async def _rows(url: str) -> list[tuple[object, ...]]:
    engine = _create_engine(to_async_url(url))
    try:
        async with engine.begin() as conn:
            return [tuple(r) for r in (await conn.execute(sa.text(
                "SELECT id, status, prompt_message_id FROM survey_session ORDER BY id"))).all()]
    finally:
        await engine.dispose()


async def test_sessions_kept_and_whatsapp_message_numbers_fit(db_url: str) -> None:
    await _alembic(db_url, "upgrade", "0008")
    engine = _create_engine(to_async_url(db_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(CONTACT), [
                {"id": 1, "opted_out": False, "created_at": T0, "updated_at": T0}])
            await conn.execute(sa.insert(FLOW_VERSION), [
                {"id": 1, "flow_id": "f", "content_hash": "h", "content": "id: f",
                 "created_at": T0}])
            await conn.execute(sa.insert(SESSION), [
                {"id": i, "contact_id": 1, "flow_version_id": 1, "flow_id": "f",
                 "status": status, "language": "ar", "prompt_message_id": message,
                 "started_at": T0, "last_activity_at": T0, "state": {}, "context": {}}
                for i, status, message in ((1, "active", 4242), (2, "completed", None))])
    finally:
        await engine.dispose()
    assert await upgrade(db_url) == ("0008", head_revision())
    assert await _rows(db_url) == [(1, "active", 4242), (2, "completed", None)]
    big = message_number("wamid.HBgMOTcxNTAxMjM0NTY3FQIAERgSQzQ1RjE3")
    assert big > 2**31
    engine = _create_engine(to_async_url(db_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "UPDATE survey_session SET prompt_message_id = :n WHERE id = 2"
            ).bindparams(n=big))
    finally:
        await engine.dispose()
    assert await _rows(db_url) == [(1, "active", 4242), (2, "completed", big)]
    await _alembic(db_url, "downgrade", "0008")
    assert await _rows(db_url) == [(1, "active", 4242), (2, "completed", None)]
    await upgrade(db_url)  # and up again
