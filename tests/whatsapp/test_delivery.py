"""storage.delivery on SQLite and PostgreSQL: the delivery state only moves forward, a
failure's consequence (unreachable, sent again later) applies once and only to a message not
delivered, and a message sent outside the outbox still marks its recipient unreachable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from storage.db import Database
from storage.delivery import record_delivery
from storage.models import ContactIdentity, Outbox
from storage.outbox import enqueue
from storage.repo import Store

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NUMBER = "971501234567"


async def _sent(database: Database, key: str, message_id: int, address: str = NUMBER) -> None:
    async with database.session() as s, s.begin():
        await enqueue(s, key=key, kind="alert", channel="whatsapp", address=address,
                      contact_id=None, text="hello", due_at=T0, now=T0)
        row = (await s.exec(select(Outbox).where(col(Outbox.key) == key))).one()
        row.status, row.message_id, row.sent_at = "sent", message_id, T0
        s.add(row)


async def _row(database: Database, key: str) -> Outbox:
    async with database.session() as s, s.begin():
        return (await s.exec(select(Outbox).where(col(Outbox.key) == key))).one()


async def _unreachable(database: Database, channel: str, address: str) -> bool:
    async with database.session() as s, s.begin():
        identity = (await s.exec(select(ContactIdentity).where(
            col(ContactIdentity.channel) == channel,
            col(ContactIdentity.address) == address))).one()
        return identity.unreachable


async def test_states_move_forward_only(database: Database) -> None:
    await _sent(database, "a", 2**62 + 5)
    for status, at in (("read", T0 + timedelta(seconds=3)), ("delivered", T0),
                       ("sent", T0), ("read", T0 + timedelta(seconds=9))):
        await record_delivery(database, channel="whatsapp", message_id=2**62 + 5,
                              status=status, at=at, now=T0)
    row = await _row(database, "a")
    assert (row.delivery, row.delivery_at) == ("read", T0 + timedelta(seconds=3))
    # another channel's message with the same number is another message
    outcome = await record_delivery(database, channel="telegram", message_id=2**62 + 5,
                                    status="read", at=T0, now=T0)
    assert not outcome.found


async def test_retry_later_only_when_not_delivered(database: Database) -> None:
    await _sent(database, "busy", 11)
    await _sent(database, "got-it", 12)
    later = T0 + timedelta(seconds=6)
    await record_delivery(database, channel="whatsapp", message_id=12, status="delivered",
                          at=T0, now=T0)
    for message_id in (11, 12):
        await record_delivery(database, channel="whatsapp", message_id=message_id,
                              status="failed", at=T0, now=T0, error="WhatsApp error 131056",
                              on_failure="retry", retry_at=later)
    busy, got = await _row(database, "busy"), await _row(database, "got-it")
    assert (busy.status, busy.due_at, busy.delivery) == ("queued", later, "failed")
    assert (got.status, got.delivery, got.delivery_error) == (
        "sent", "delivered", "WhatsApp error 131056")
    # the same failure twice: already queued, not pushed again
    outcome = await record_delivery(database, channel="whatsapp", message_id=11,
                                    status="failed", at=T0, now=T0, on_failure="retry",
                                    retry_at=later + timedelta(hours=1))
    assert not outcome.requeued and (await _row(database, "busy")).due_at == later


async def test_undeliverable_marks_only_that_identity(database: Database) -> None:
    store = Store(database)
    contact = await store.upsert_contact("whatsapp", NUMBER, now=T0)
    assert contact.id is not None
    await store.upsert_contact("telegram", "5005", now=T0)
    async with database.session() as s, s.begin():  # the same person on Telegram
        identity = (await s.exec(select(ContactIdentity).where(
            col(ContactIdentity.address) == "5005"))).one()
        identity.contact_id = contact.id
        s.add(identity)
    await _sent(database, "lost", 21)
    outcome = await record_delivery(database, channel="whatsapp", message_id=21,
                                    status="failed", at=T0, now=T0,
                                    error="WhatsApp error 131026", on_failure="unreachable")
    assert outcome.unreachable and (await _row(database, "lost")).status == "failed"
    assert await _unreachable(database, "whatsapp", NUMBER)
    assert not await _unreachable(database, "telegram", "5005")


async def test_undeliverable_conversation_message_marks_its_recipient(
    database: Database,
) -> None:
    other = "966551234567"
    await Store(database).upsert_contact("whatsapp", other, now=T0)
    outcome = await record_delivery(database, channel="whatsapp", message_id=99,
                                    status="failed", at=T0, now=T0,
                                    on_failure="unreachable", address=other)
    assert not outcome.found and outcome.unreachable
    assert await _unreachable(database, "whatsapp", other)
