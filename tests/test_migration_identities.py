"""Migration 0006 (identities) on a database filled by the schema before it: every row is
kept, each chat becomes its contact's identity, outbox chats become text addresses; and the
downgrade gives the one-chat-per-contact schema back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlmodel import col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from storage.db import (
    Database,
    _alembic_config,
    _create_engine,
    head_revision,
    to_async_url,
    upgrade,
)
from storage.invitations import count_contacts
from storage.models import (
    Answer,
    Contact,
    ContactIdentity,
    Invitation,
    LinkToken,
    Outbox,
    SurveySession,
)
from storage.repo import Store

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


async def _alembic(url: str, action: str, revision: str) -> None:
    engine = _create_engine(to_async_url(url), foreign_keys=False)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda c: getattr(command, action)(_alembic_config(c), revision)
            )
    finally:
        await engine.dispose()


def _table(name: str, *columns: str, times: tuple[str, ...] = (),
           json: tuple[str, ...] = ()) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in columns),
                    *(sa.column(t, UTCDateTime()) for t in times),
                    *(sa.column(j, sa.JSON()) for j in json))


# The 0005 schema, as plain tables: what a database of the previous release holds.
CONTACT = _table("contact", "id", "channel", "external_id", "name", "language", "opted_out",
                 "unreachable", times=("created_at", "updated_at"))
FLOW_VERSION = _table("flow_version", "id", "flow_id", "content_hash", "content",
                      times=("created_at",))
SESSION = _table("survey_session", "id", "contact_id", "flow_version_id", "flow_id", "status",
                 "language", "position", times=("started_at", "last_activity_at"),
                 json=("state", "context"))
ANSWER = _table("answer", "session_id", "question_id", "raw_text", "skipped",
                times=("answered_at",), json=("value",))
INVITATION = _table("invitation", "id", "contact_id", "flow_id", "status", "reason", "token",
                    "session_id", "reminders_sent", times=("due_at", "created_at"),
                    json=("context",))
LINK = _table("link_token", "token", "flow_id", "contact_id", "code_failures", "code_chat",
              times=("created_at",), json=("context",))
OUTBOX = _table("outbox", "key", "kind", "status", "channel", "chat_id", "contact_id", "text",
                "attempts", "invitation_id", times=("due_at", "created_at"))

PEOPLE = [  # id, channel, external_id, name, unreachable
    (1, "telegram", "1001", "Sara", False),
    (2, "telegram", "1002", "Reza", True),
    (3, "external", "CRM-17", "Minh", False),
    (4, "telegram", "-1009", None, False),
]


async def _fill(url: str) -> None:
    contacts = [{"id": i, "channel": c, "external_id": e, "name": n, "language": "fa",
                 "opted_out": i == 4, "unreachable": u, "created_at": T0,
                 "updated_at": T0 + timedelta(hours=i)} for i, c, e, n, u in PEOPLE]
    sessions = [{"id": 10 + i, "contact_id": i, "flow_version_id": 1, "flow_id": "nps",
                 "status": "active" if i == 1 else "completed", "language": "fa",
                 "position": "q1", "started_at": T0, "last_activity_at": T0,
                 "state": {"history": ["q1"]}, "context": {"ticket": f"T-{i}"}}
                for i in (1, 2, 3)]
    answers = [{"session_id": 10 + i, "question_id": "q1", "raw_text": str(i), "skipped": False,
                "answered_at": T0, "value": i} for i in (1, 2, 3)]
    invitations: list[dict[str, Any]] = [
        {"id": 20 + i, "contact_id": i, "flow_id": "nps", "status": "sent", "reason": None,
         "token": f"tok{i}", "session_id": 10 + i, "reminders_sent": 1, "due_at": T0,
         "created_at": T0, "context": {}}
        for i in (1, 2, 3)]
    outbox = [{"key": f"invitation:{20 + i}", "kind": "invitation", "status": status,
               "channel": "telegram", "chat_id": chat, "contact_id": i, "text": f"سلام {i}",
               "attempts": 1, "invitation_id": 20 + i, "due_at": T0, "created_at": T0}
              for i, chat, status in ((1, 1001, "sent"), (2, 1002, "failed"))]
    outbox.append({"key": "alert:1:-1001", "kind": "alert", "status": "queued",
                   "channel": "telegram", "chat_id": -1001, "contact_id": None,
                   "text": "alert", "attempts": 0, "invitation_id": None, "due_at": T0,
                   "created_at": T0})
    engine = _create_engine(to_async_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(CONTACT), contacts)
            await conn.execute(sa.insert(FLOW_VERSION), [{
                "id": 1, "flow_id": "nps", "content_hash": "h", "content": "id: nps",
                "created_at": T0}])
            await conn.execute(sa.insert(SESSION), sessions)
            await conn.execute(sa.insert(ANSWER), answers)
            await conn.execute(sa.insert(INVITATION), invitations)
            await conn.execute(sa.insert(LINK), [
                {"token": "tok3", "flow_id": "nps", "contact_id": 3, "code_failures": 0,
                 "code_chat": "1003", "created_at": T0, "context": {}},
                {"token": "tok1", "flow_id": "nps", "contact_id": 1, "code_failures": 0,
                 "code_chat": None, "created_at": T0, "context": {}}])
            await conn.execute(sa.insert(OUTBOX), outbox)
            if url.startswith("postgres"):  # explicit ids leave the sequences behind
                for table in ("contact", "survey_session", "invitation", "flow_version"):
                    await conn.execute(sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"))
    finally:
        await engine.dispose()


async def _rows(db: Database, model: type[Any], order: Any) -> list[Any]:
    async with db.session() as s, s.begin():
        return list((await s.exec(select(model).order_by(order))).all())


async def test_upgrade_keeps_every_row_and_maps_chats_to_identities(db_url: str) -> None:
    await _alembic(db_url, "upgrade", "0005")
    await _fill(db_url)
    assert await upgrade(db_url) == ("0005", head_revision())

    async with await Database.open(db_url, auto_upgrade=False) as db:
        contacts = await _rows(db, Contact, col(Contact.id))
        assert [(c.id, c.external_id, c.name, c.opted_out, c.preferred_channel, c.updated_at)
                for c in contacts] == [
            (1, None, "Sara", False, None, T0 + timedelta(hours=1)),
            (2, None, "Reza", False, None, T0 + timedelta(hours=2)),
            (3, "CRM-17", "Minh", False, None, T0 + timedelta(hours=3)),
            (4, None, None, True, None, T0 + timedelta(hours=4)),
        ]
        identities = await _rows(db, ContactIdentity, col(ContactIdentity.contact_id))
        assert [(i.contact_id, i.channel, i.address, i.unreachable, i.last_inbound_at,
                 i.created_at) for i in identities] == [
            (1, "telegram", "1001", False, None, T0),
            (2, "telegram", "1002", True, None, T0),
            (4, "telegram", "-1009", False, None, T0),
        ]
        sessions = await _rows(db, SurveySession, col(SurveySession.id))
        assert [(s.id, s.contact_id, s.status, s.state, s.context) for s in sessions] == [
            (10 + i, i, "active" if i == 1 else "completed", {"history": ["q1"]},
             {"ticket": f"T-{i}"}) for i in (1, 2, 3)]
        answers = await _rows(db, Answer, col(Answer.session_id))
        assert [(a.session_id, a.raw_text, a.value) for a in answers] == [
            (10 + i, str(i), i) for i in (1, 2, 3)]
        invitations = await _rows(db, Invitation, col(Invitation.id))
        assert [(i.id, i.contact_id, i.token, i.session_id) for i in invitations] == [
            (20 + i, i, f"tok{i}", 10 + i) for i in (1, 2, 3)]
        outbox = await _rows(db, Outbox, col(Outbox.key))
        assert [(o.key, o.channel, o.address, o.contact_id, o.status, o.text) for o in outbox] == [
            ("alert:1:-1001", "telegram", "-1001", None, "queued", "alert"),
            ("invitation:21", "telegram", "1001", 1, "sent", "سلام 1"),
            ("invitation:22", "telegram", "1002", 2, "failed", "سلام 2"),
        ]

        links = await _rows(db, LinkToken, col(LinkToken.token))
        assert [(k.token, k.contact_id, k.code_chat) for k in links] == [
            ("tok1", 1, None), ("tok3", 3, "telegram:1003")]  # codes were asked on Telegram

        # the storage API reads the migrated rows as it writes new ones
        store = Store(db)
        assert (await store.find_contact("telegram", "1001")).id == 1  # type: ignore[union-attr]
        assert (await store.find_contact("external", "CRM-17")).id == 3  # type: ignore[union-attr]
        async with db.session() as s, s.begin():
            assert await count_contacts(s, unreachable=True) == 1  # Reza, blocked before
            assert await count_contacts(s, reachable=True) == 2  # Sara, Minh (by link)
        assert [(s.id, a) for s, a in await store.undelivered_sessions("telegram")] == [
            (11, "1001")]
        newcomer = await store.upsert_contact("telegram", "1003", name="New", now=T0)
        assert newcomer.id == 5


async def test_downgrade_gives_each_contact_one_chat_back(db_url: str) -> None:
    await _alembic(db_url, "upgrade", "0005")
    await _fill(db_url)
    await upgrade(db_url)
    async with await Database.open(db_url, auto_upgrade=False) as db:
        store = Store(db)
        # what only the new schema can say: a second identity, a company id next to a chat
        await store.upsert_contact("bale", "2001", name="Bale only", now=T0)
        await store.upsert_contact("external", "CRM-99", name="Nobody yet", now=T0)
        async with db.session() as s, s.begin():  # Sara prefers her Bale chat
            s.add(ContactIdentity(contact_id=1, channel="bale", address="2002", created_at=T0))
            sara = await s.get(Contact, 1)
            assert sara is not None
            sara.preferred_channel = "bale"
    await _alembic(db_url, "downgrade", "0005")

    engine = _create_engine(to_async_url(db_url))
    try:
        async with engine.connect() as conn:
            contacts = (await conn.execute(sa.select(
                CONTACT.c.id, CONTACT.c.channel, CONTACT.c.external_id, CONTACT.c.unreachable
            ).order_by(CONTACT.c.id))).all()
            chats = (await conn.execute(sa.select(OUTBOX.c.key, OUTBOX.c.chat_id)
                                        .order_by(OUTBOX.c.key))).all()
            codes = (await conn.execute(sa.select(LINK.c.token, LINK.c.code_chat)
                                        .order_by(LINK.c.token))).all()
    finally:
        await engine.dispose()
    assert [tuple(c) for c in contacts] == [
        (1, "bale", "2002", False), (2, "telegram", "1002", True),
        (3, "external", "CRM-17", False), (4, "telegram", "-1009", False),
        (5, "bale", "2001", False), (6, "external", "CRM-99", False),
    ]
    assert [tuple(c) for c in chats] == [
        ("alert:1:-1001", -1001), ("invitation:21", 1001), ("invitation:22", 1002)]
    assert [tuple(c) for c in codes] == [("tok1", None), ("tok3", "1003")]
    assert await upgrade(db_url) == ("0005", head_revision())  # and up again
