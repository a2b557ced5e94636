"""Migration 0007 (outbox intents) on a database filled by the 0006 schema: every row is
kept; rows still to be sent about an invitation, action or case lose the text and keyboard
planned for them and are written when sent (in the contact's language then); free staff
messages and rows already sent keep their text; the downgrade cancels what it cannot
write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from bot.followups.render import Message
from bot.messaging.transport import Button
from storage.db import Database, _create_engine, head_revision, to_async_url, upgrade
from storage.models import Outbox
from tests.followups.outbox_fakes import rendered
from tests.followups.test_invite import flow
from tests.test_migration_identities import _alembic, _table

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

# The 0006 schema, as plain tables: what a database of the previous release holds.
CONTACT = _table("contact", "id", "first_name", "language", "opted_out",
                 times=("created_at", "updated_at"))
IDENTITY = _table("contact_identity", "id", "contact_id", "channel", "address", "unreachable",
                  times=("created_at",))
INVITATION = _table("invitation", "id", "contact_id", "flow_id", "status", "token",
                    "reminders_sent", times=("due_at", "created_at"), json=("context",))
OUTBOX = _table("outbox", "id", "key", "kind", "status", "channel", "address", "contact_id",
                "text", "attempts", "invitation_id", times=("due_at", "created_at"),
                json=("keyboard",))

PLANNED_KEYBOARD = [[{"text": "شروع نظرسنجی", "data": "s1:g:tok1"}]]


def _row(id: int, key: str, kind: str, status: str, text: str, *,
         invitation_id: int | None = None, contact_id: int | None = None,
         keyboard: list[Any] | None = None) -> dict[str, Any]:
    return {"id": id, "key": key, "kind": kind, "status": status, "channel": "telegram",
            "address": "1001" if contact_id else "-1001", "contact_id": contact_id,
            "text": text, "attempts": 0, "invitation_id": invitation_id, "due_at": T0,
            "created_at": T0, "keyboard": keyboard}


async def _fill(url: str) -> None:
    engine = _create_engine(to_async_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(CONTACT), [{
                "id": 1, "first_name": "Sara", "language": "fa", "opted_out": False,
                "created_at": T0, "updated_at": T0}])
            await conn.execute(sa.insert(IDENTITY), [{
                "id": 1, "contact_id": 1, "channel": "telegram", "address": "1001",
                "unreachable": False, "created_at": T0}])
            await conn.execute(sa.insert(INVITATION), [
                {"id": i, "contact_id": 1, "flow_id": "account-review", "status": "sent",
                 "token": f"tok{i}", "reminders_sent": 0, "due_at": T0, "created_at": T0,
                 "context": {}} for i in (1, 2)])
            await conn.execute(sa.insert(OUTBOX), [
                # planned in Persian with its keyboard, not sent yet
                _row(1, "reminder:1:0", "reminder", "queued", "یادآوری", invitation_id=1,
                     contact_id=1, keyboard=PLANNED_KEYBOARD),
                # sent: the record of what went
                _row(2, "invitation:2", "invitation", "sent", "سلام", invitation_id=2,
                     contact_id=1, keyboard=PLANNED_KEYBOARD),
                # a free staff message: nothing to write it from but its text
                _row(3, "refused:x:q1", "alert", "queued", "Telegram refused question q1"),
            ])
            if url.startswith("postgres"):  # explicit ids leave the sequences behind
                for table in ("contact", "contact_identity", "invitation", "outbox"):
                    await conn.execute(sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"))
    finally:
        await engine.dispose()


async def _outbox(db: Database) -> dict[str, Outbox]:
    async with db.session() as s, s.begin():
        return {o.key: o for o in (await s.exec(select(Outbox).order_by(col(Outbox.id)))).all()}


async def test_upgrade_keeps_every_row_and_writes_pending_intents_when_sent(
    db_url: str
) -> None:
    await _alembic(db_url, "upgrade", "0006")
    await _fill(db_url)
    assert await upgrade(db_url) == ("0006", head_revision())
    async with await Database.open(db_url, auto_upgrade=False) as db:
        rows = await _outbox(db)
        assert [(k, r.status, r.text) for k, r in rows.items()] == [
            ("reminder:1:0", "queued", None),  # re-written when sent
            ("invitation:2", "sent", "سلام"),
            ("refused:x:q1", "queued", "Telegram refused question q1"),
        ]
        assert not hasattr(rows["reminder:1:0"], "keyboard")
        flows = {"account-review": flow(account_limit=None)}
        async with db.session() as s, s.begin():  # they switched to English since
            await s.exec(sa.text("UPDATE contact SET language = 'en'"))  # type: ignore[call-overload]
        reminder = await rendered(db, rows["reminder:1:0"], flows)
        assert isinstance(reminder, Message)
        assert "Account review" in reminder.text and reminder.text.startswith("Hello Sara,")
        assert reminder.keyboard == ((Button("Start the survey", "s1:g:tok1"),),)
        free = await rendered(db, rows["refused:x:q1"], flows)
        assert free == Message("Telegram refused question q1")


async def test_downgrade_cancels_what_it_cannot_write(db_url: str) -> None:
    await _alembic(db_url, "upgrade", "0006")
    await _fill(db_url)
    await upgrade(db_url)
    await _alembic(db_url, "downgrade", "0006")
    engine = _create_engine(to_async_url(db_url))
    try:
        async with engine.begin() as conn:
            found = (await conn.execute(sa.text(
                "SELECT key, status, text, keyboard, last_error FROM outbox ORDER BY id"))).all()
    finally:
        await engine.dispose()
    assert [(key, status, text, keyboard) for key, status, text, keyboard, _ in found] == [
        ("reminder:1:0", "cancelled", "", None),
        ("invitation:2", "sent", "سلام", None),
        ("refused:x:q1", "queued", "Telegram refused question q1", None),
    ]
    assert "downgrade below 0007" in found[0][4]
    await upgrade(db_url)  # and up again
