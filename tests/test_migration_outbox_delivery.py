"""Migration 0008 (outbox delivery) on a database filled by the 0007 schema: every row is
kept with no delivery known; message_id takes WhatsApp's 63-bit message numbers; the
downgrade forgets only the numbers its narrower column cannot hold."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from bot.channels.whatsapp.transport import message_number
from storage.db import Database, _create_engine, head_revision, to_async_url, upgrade
from storage.delivery import record_delivery
from tests.test_migration_identities import _alembic, _table
from tests.test_migration_outbox_intents import _outbox

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
OUTBOX = _table("outbox", "id", "key", "kind", "status", "channel", "address", "text",
                "attempts", "message_id", times=("due_at", "created_at", "sent_at"))


async def _fill(url: str) -> None:
    engine = _create_engine(to_async_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(OUTBOX), [
                {"id": 1, "key": "alert:1", "kind": "alert", "status": "sent",
                 "channel": "telegram", "address": "-1001", "text": "تنبيه", "attempts": 1,
                 "message_id": 4242, "due_at": T0, "created_at": T0, "sent_at": T0},
                {"id": 2, "key": "alert:2", "kind": "alert", "status": "queued",
                 "channel": "bale", "address": "77", "text": "هشدار", "attempts": 0,
                 "message_id": None, "due_at": T0, "created_at": T0, "sent_at": None},
            ])
            if url.startswith("postgres"):
                await conn.execute(sa.text(
                    "SELECT setval(pg_get_serial_sequence('outbox', 'id'), 2)"))
    finally:
        await engine.dispose()


async def test_upgrade_keeps_every_row_and_holds_whatsapp_message_numbers(
    db_url: str,
) -> None:
    await _alembic(db_url, "upgrade", "0007")
    await _fill(db_url)
    assert await upgrade(db_url) == ("0007", head_revision())
    wamid = "wamid.HBgMOTcxNTAxMjM0NTY3FQIAERgSQzQ1RjE3"
    async with await Database.open(db_url, auto_upgrade=False) as db:
        rows = await _outbox(db)
        assert [(k, r.status, r.text, r.message_id, r.delivery) for k, r in rows.items()] == [
            ("alert:1", "sent", "تنبيه", 4242, None),
            ("alert:2", "queued", "هشدار", None, None),
        ]
        async with db.session() as s, s.begin():
            await s.exec(sa.text(  # type: ignore[call-overload]
                "UPDATE outbox SET channel = 'whatsapp', message_id = :n WHERE id = 1"
            ).bindparams(n=message_number(wamid)))
        outcome = await record_delivery(db, channel="whatsapp",
                                        message_id=message_number(wamid), status="delivered",
                                        at=T0, now=T0)
        assert outcome.found and outcome.delivery == "delivered"
        row = (await _outbox(db))["alert:1"]
        assert (row.message_id, row.delivery, row.delivery_at) == (
            message_number(wamid), "delivered", T0)
    await _alembic(db_url, "downgrade", "0007")
    engine = _create_engine(to_async_url(db_url))
    try:
        async with engine.begin() as conn:
            found = (await conn.execute(sa.text(
                "SELECT key, status, message_id FROM outbox ORDER BY id"))).all()
    finally:
        await engine.dispose()
    # the 63-bit number cannot stay in a 32-bit column: forgotten, the row kept
    assert [tuple(r) for r in found] == [("alert:1", "sent", None), ("alert:2", "queued", None)]
    await upgrade(db_url)  # and up again
