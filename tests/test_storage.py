"""Storage on real databases: URL mapping, opening and migrating, every Store operation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlmodel import delete, func, select
from sqlmodel.sql.sqltypes import UTCDateTime

from storage.db import (
    MIGRATIONS_DIR,
    Database,
    DatabaseUnavailable,
    NotFound,
    SchemaOutdated,
    StorageError,
    _alembic_config,
    _create_engine,
    current_revision,
    display_url,
    head_revision,
    to_async_url,
    upgrade,
)
from storage.models import Contact, Outbox, SurveySession
from storage.repo import Store

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
FLOW_V1 = "id: nps\ntitle: NPS\nquestions:\n  - id: score\n"
FLOW_V2 = FLOW_V1 + "  - id: why\n"


async def _open(store: Store, contact_id: int, flow_id: str = "nps", **overrides: Any) -> int:
    version = await store.flow_version(flow_id, f"id: {flow_id}\n")
    args: dict[str, Any] = {
        "contact_id": contact_id,
        "flow_version_id": version.id,
        "flow_id": flow_id,
        "language": "en",
        "context": {},
        "state": {},
        "status": "active",
        "position": "score",
        "now": T0,
    }
    session = await store.open_session(**{**args, **overrides})
    assert session.id is not None
    return session.id


async def _contact(store: Store, external_id: str = "42") -> int:
    contact = await store.upsert_contact("telegram", external_id, now=T0)
    assert contact.id is not None
    return contact.id


# URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/sada.db", "sqlite+aiosqlite:///data/sada.db"),
        ("sqlite:////var/lib/sada/sada.db", "sqlite+aiosqlite:////var/lib/sada/sada.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p@db:5432/sada", "postgresql+asyncpg://u:p@db:5432/sada"),
        ("postgres://u@db/sada", "postgresql+asyncpg://u@db/sada"),
        ("postgresql+asyncpg://u@db/sada", "postgresql+asyncpg://u@db/sada"),
    ],
)
def test_to_async_url_maps_plain_urls(url: str, expected: str) -> None:
    assert to_async_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["mysql://root:hunter2@db/sada", "sqlite://", "postgresql+psycopg2://u:hunter2@db/x", "x.db"],
)
def test_to_async_url_rejects_other_forms_in_one_line(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///") as caught:
        to_async_url(url)
    message = str(caught.value)
    assert "postgresql://" in message
    assert "\n" not in message
    assert "hunter2" not in message


def test_display_url_masks_the_password() -> None:
    assert (
        display_url("postgresql://sada:s3cret@db:5432/sada") == "postgresql://sada:***@db:5432/sada"
    )
    assert display_url("sqlite:///data/sada.db") == "sqlite:///data/sada.db"


# Opening and migrating


async def test_sqlite_upgrades_itself_on_first_use_in_a_new_folder(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "sada.db"
    url = f"sqlite:///{path}"
    assert await current_revision(url) is None
    assert not path.exists()  # looking does not create the file
    async with await Database.open(url) as db:
        contact = await Store(db).upsert_contact("console", "me", now=T0)
        assert contact.id is not None
    assert path.exists()
    assert await current_revision(url) == head_revision()


async def test_upgrade_is_idempotent(db_url: str) -> None:
    head = head_revision()
    assert await current_revision(db_url) is None
    assert await upgrade(db_url) == (None, head)
    assert await upgrade(db_url) == (head, head)
    assert await current_revision(db_url) == head


async def _upgrade_to(url: str, revision: str) -> None:
    """Migrate up to ``revision`` only (storage.db's upgrade always goes to head)."""
    engine = _create_engine(to_async_url(url), foreign_keys=False)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda c: command.upgrade(_alembic_config(c), revision)  # type: ignore[arg-type]
            )
    finally:
        await engine.dispose()


async def test_migration_0005_keeps_every_outbox_row_as_telegrams(db_url: str) -> None:
    """Outbox rows queued before messages named their channel were all Telegram's: the
    migration keeps each one, as it was, on channel 'telegram'."""
    await _upgrade_to(db_url, "0004")
    outbox_0004 = sa.table(
        "outbox", sa.column("key"), sa.column("kind"), sa.column("status"),
        sa.column("chat_id"), sa.column("text"), sa.column("due_at", UTCDateTime()),
        sa.column("attempts"), sa.column("created_at", UTCDateTime()),
    )
    rows = [
        {"key": f"reminder:{i}", "kind": "reminder", "status": status, "chat_id": 1000 + i,
         "text": f"سلام {i}", "due_at": T0 + timedelta(minutes=i), "attempts": i,
         "created_at": T0}
        for i, status in enumerate(["queued", "sending", "sent", "failed", "cancelled"])
    ]
    engine = _create_engine(to_async_url(db_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(outbox_0004), rows)
    finally:
        await engine.dispose()
    assert await upgrade(db_url) == ("0004", head_revision())
    async with await Database.open(db_url, auto_upgrade=False) as db, db.session() as s:
        kept = (await s.exec(select(Outbox).order_by(Outbox.key))).all()
    assert [(r.key, r.status, r.address, r.text, r.due_at, r.attempts, r.channel)
            for r in kept] == [
        (row["key"], row["status"], str(row["chat_id"]), row["text"], row["due_at"],
         row["attempts"], "telegram") for row in rows]


async def test_open_without_upgrade_refuses_an_empty_schema(db_url: str) -> None:
    with pytest.raises(SchemaOutdated, match=r"run `sada db upgrade`") as caught:
        await Database.open(db_url, auto_upgrade=False)
    assert caught.value.current is None
    assert caught.value.head == head_revision()
    if db_url.startswith("postgres"):
        with pytest.raises(SchemaOutdated):
            await Database.open(db_url)  # PostgreSQL never upgrades unasked
    await upgrade(db_url)
    async with await Database.open(db_url, auto_upgrade=False):
        pass


@pytest.mark.parametrize(
    "call", [Database.open, upgrade, current_revision], ids=["open", "upgrade", "current"]
)
async def test_closed_port_is_database_unavailable(call: Any) -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        await call("postgresql://sada:hunter2@127.0.0.1:1/sada")
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "\n" not in message
    assert "hunter2" not in message


async def test_unusable_sqlite_path_is_database_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DatabaseUnavailable, match="cannot open database"):
        await Database.open(f"sqlite:///{blocker / 'sada.db'}")


async def test_bad_url_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        await Database.open("mysql://db/sada")


def test_the_head_revision_is_alembics_own() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


def test_opening_a_database_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    """Every `sada` command and process start opens the database: Alembic (~100 ms to
    import) is for upgrades only. The database is made at head first, in another process."""
    url = f"sqlite:///{tmp_path / 'sada.db'}"
    script = f"""
import asyncio, sys
from storage.db import Database, revision_of
async def main():
    async with await Database.open({url!r}, auto_upgrade=False) as db:
        async with db.engine.connect() as conn:
            print(await conn.run_sync(revision_of))
asyncio.run(main())
print("alembic" in sys.modules)
"""
    made = subprocess.run([sys.executable, "-c", f"import asyncio; from storage.db import "
                           f"upgrade; asyncio.run(upgrade({url!r}))"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert made.returncode == 0, made.stderr
    opened = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.split() == [head_revision(), "False"]


def test_storage_errors_share_a_base() -> None:
    assert issubclass(DatabaseUnavailable, StorageError)
    assert issubclass(SchemaOutdated, StorageError)
    assert issubclass(NotFound, LookupError)


# Contacts


async def test_upsert_contact_creates_once_and_updates_given_fields(store: Store) -> None:
    created = await store.upsert_contact(
        "telegram", "42", name="Ali", language="fa", company="Acme", now=T0
    )
    assert created.created_at == created.updated_at == T0
    assert created.created_at.tzinfo is not None

    later = T0 + timedelta(hours=1)
    updated = await store.upsert_contact("telegram", "42", language="ar", name=None, now=later)
    assert updated.id == created.id
    assert (updated.name, updated.language, updated.company) == ("Ali", "ar", "Acme")
    assert updated.created_at == T0
    assert updated.updated_at == later

    same = await store.upsert_contact("telegram", "42", language="ar", now=later + timedelta(1))
    assert same.updated_at == later  # nothing changed, so no new timestamp

    other_channel = await store.upsert_contact("console", "42", now=T0)
    assert other_channel.id != created.id
    assert await store.find_contact("telegram", "42") == same
    assert await store.get_contact(other_channel.id or 0) == other_channel
    assert await store.find_contact("telegram", "nobody") is None
    assert await store.get_contact(999_999) is None

    with pytest.raises(TypeError, match="colour"):
        await store.upsert_contact("telegram", "42", colour="red")


async def test_an_inbound_event_makes_its_identity_reachable_and_stamps_it_coarsely(
        store: Store) -> None:
    """upsert_contact's writes to an existing contact and identity, read back from the rows
    (the objects it returns are built from a Core read, so nothing is flushed for them)."""
    await store.upsert_contact("telegram", "42", name="Ali", seen_at=T0, now=T0)
    await store.upsert_contact("telegram", "42", unreachable=True, now=T0)
    [identity] = await store.identities((await store.find_contact("telegram", "42")).id or 0)
    assert identity.unreachable and identity.last_inbound_at == T0

    back = T0 + timedelta(seconds=5)  # within SEEN_GRANULARITY, but it was unreachable
    contact = await store.upsert_contact("telegram", "42", seen_at=back, name="Ali R.",
                                         now=back)
    assert (contact.name, contact.updated_at) == ("Ali R.", back)
    [identity] = await store.identities(contact.id or 0)
    assert (identity.unreachable, identity.last_inbound_at) == (False, back)

    await store.upsert_contact("telegram", "42", seen_at=back + timedelta(seconds=10))
    [identity] = await store.identities(contact.id or 0)
    assert identity.last_inbound_at == back  # reachable and recent: not written again
    later = back + timedelta(minutes=5)
    await store.upsert_contact("telegram", "42", seen_at=later)
    [identity] = await store.identities(contact.id or 0)
    assert identity.last_inbound_at == later
    stored = await store.get_contact(contact.id or 0)
    assert stored is not None and (stored.name, stored.updated_at) == ("Ali R.", back)


async def test_concurrent_upserts_make_one_contact(store: Store) -> None:
    contacts = await asyncio.gather(
        *(store.upsert_contact("telegram", "7", name=f"n{i}", now=T0) for i in range(8))
    )
    assert len({c.id for c in contacts}) == 1
    async with store.database.session() as s:
        count = (await s.exec(select(func.count()).select_from(Contact))).one()
    assert count == 1


async def test_set_contact_flags(store: Store) -> None:
    contact_id = await _contact(store)
    later = T0 + timedelta(minutes=5)

    async def unreachable() -> list[bool]:
        return [i.unreachable for i in await store.identities(contact_id)]

    contact = await store.set_contact_flags(contact_id, unreachable=True, now=later)
    assert (await unreachable(), contact.opted_out, contact.updated_at) == ([True], False, later)
    contact = await store.set_contact_flags(contact_id, opted_out=True, language="ar", now=later)
    assert (await unreachable(), contact.opted_out, contact.language) == ([True], True, "ar")
    contact = await store.set_contact_flags(contact_id, unreachable=False, now=later)
    stored = await store.get_contact(contact_id)
    assert stored is not None and await unreachable() == [False] and stored.opted_out
    with pytest.raises(NotFound):
        await store.set_contact_flags(999_999, opted_out=True)


# Flow versions


async def test_flow_version_is_idempotent_and_edits_make_new_versions(store: Store) -> None:
    contact_id = await _contact(store)
    v1 = await store.flow_version("nps", FLOW_V1, title="NPS", now=T0)
    again = await asyncio.gather(*(store.flow_version("nps", FLOW_V1) for _ in range(4)))
    assert {v.id for v in again} == {v1.id}
    assert len(v1.content_hash) == 64
    session = await store.open_session(
        contact_id=contact_id,
        flow_version_id=v1.id or 0,
        flow_id="nps",
        language="en",
        context={},
        state={},
        status="new",
        position=None,
        now=T0,
    )

    v2 = await store.flow_version("nps", FLOW_V2, title="NPS")
    assert v2.id != v1.id
    assert (await store.flow_version("other", FLOW_V1)).id not in (v1.id, v2.id)

    reloaded = await store.get_session(session.id or 0)
    assert reloaded is not None and reloaded.flow_version_id == v1.id
    assert (await store.get_flow_version(v1.id or 0)).content == FLOW_V1
    with pytest.raises(NotFound):
        await store.get_flow_version(999_999)


# Sessions and answers


@pytest.mark.parametrize("diff", [False, True], ids=["read back", "diff of the state"])
async def test_save_state_round_trip_update_delete_and_repeat(store: Store, diff: bool) -> None:
    """Both ways of writing the answers leave the same rows: reading them back, or (a
    survey step) writing the difference from the answers the loaded state held."""
    def known(answers: dict[str, tuple[str, object, bool]]) -> dict[str, Any]:
        return {"stored": answers} if diff else {}

    session_id = await _open(store, await _contact(store))
    t1, t2, t3 = (T0 + timedelta(minutes=m) for m in (1, 2, 3))

    state1 = {"current": "why", "history": ["score"]}
    first: dict[str, tuple[str, object, bool]] = {
        "score": ("٩", 9, False),
        "why": ("", None, True),
        "flag": ("yes", True, False),
    }
    await store.save_state(
        session_id,
        state=state1,
        status="active",
        position="why",
        language="fa",
        answers=first,
        now=t1,
        **known({}),
    )
    rows = await store.answers(session_id)
    assert [(a.question_id, a.raw_text, a.value, a.skipped) for a in rows] == [
        ("score", "٩", 9, False),
        ("why", "", None, True),
        ("flag", "yes", True, False),
    ]
    assert all(a.answered_at == t1 for a in rows)

    # "score" unchanged, "flag" changes type only (True -> 1), "why" dropped, "topics" new.
    second: dict[str, tuple[str, object, bool]] = {
        "score": ("٩", 9, False),
        "flag": ("yes", 1, False),
        "topics": ("1,3", ["price", "speed"], False),
    }
    for now in (t2, t2):  # the repeat, as after a crash, must change nothing
        await store.save_state(
            session_id,
            state={"done": True},
            status="completed",
            position=None,
            language="fa",
            answers=second,
            now=now,
            **known(first),  # the repeat: the crashed first try's state was rolled back
        )
        rows = await store.answers(session_id)
        by_question = {a.question_id: a for a in rows}
        assert list(by_question) == ["score", "flag", "topics"]
        assert by_question["score"].answered_at == t1
        assert (by_question["flag"].value, by_question["flag"].answered_at) == (1, t2)
        assert type(by_question["flag"].value) is int
        assert by_question["topics"].value == ["price", "speed"]

    ids_before = [a.id for a in rows]
    await store.save_state(
        session_id,
        state={"done": True},
        status="completed",
        position=None,
        language="fa",
        answers=second,
        now=t3,
        **known(second),
    )
    rows = await store.answers(session_id)
    assert [a.id for a in rows] == ids_before
    assert {a.question_id: a.answered_at for a in rows} == {"score": t1, "flag": t2, "topics": t2}

    session = await store.get_session(session_id)
    assert session is not None
    assert (session.status, session.position, session.language) == ("completed", None, "fa")
    assert session.state == {"done": True}
    await store.save_state(
        session_id,
        state={"done": 1},
        status="completed",
        position=None,
        language="fa",
        answers=second,
        now=t3,
    )
    session = await store.get_session(session_id)
    assert session is not None and type(session.state["done"]) is int
    assert session.last_activity_at == t3
    assert session.completed_at == t2  # the first completion is kept
    assert session.started_at == T0

    with pytest.raises(NotFound):
        await store.save_state(
            999_999, state={}, status="active", position=None, language="en", answers={}
        )


async def test_concurrent_saves_of_one_session_do_not_collide(store: Store) -> None:
    session_id = await _open(store, await _contact(store))
    await asyncio.gather(
        *(
            store.save_state(
                session_id,
                state={"n": i},
                status="active",
                position="q",
                language="en",
                answers={"q": (str(i), i, False)},
                now=T0,
            )
            for i in range(5)
        )
    )
    assert len(await store.answers(session_id)) == 1


async def test_resumable_session_picks_the_latest_unfinished_one(store: Store) -> None:
    me, other = await _contact(store, "1"), await _contact(store, "2")
    at = [T0 + timedelta(hours=h) for h in range(6)]
    await _open(store, me, status="completed", now=at[5])
    older = await _open(store, me, status="active", now=at[1])
    newer = await _open(store, me, status="consent", now=at[2])
    await _open(store, me, status="stopped", now=at[4])
    await _open(store, me, flow_id="csat", status="active", now=at[3])
    await _open(store, other, status="active", now=at[4])

    found = await store.resumable_session(me, "nps")
    assert found is not None and found.id == newer
    await store.save_state(
        newer, state={}, status="completed", position=None, language="en", answers={}
    )
    found = await store.resumable_session(me, "nps")
    assert found is not None and found.id == older
    assert await store.resumable_session(me, "ces") is None


async def test_json_and_text_round_trip_in_arabic_and_persian(db_url: str) -> None:
    context = {
        "ticket": "T-1",
        "agent": "فاطمة الزهراء",
        "note": "سلام، خیلی ممنون\u200cام",
        "nested": {"scores": [0, 2.5, True, None], "empty": {}},
    }
    state = {"answers": {"why": {"raw": "الخدمة ممتازة 👍", "value": "الخدمة ممتازة 👍"}}}
    async with await Database.open(db_url, auto_upgrade=True) as db:
        store = Store(db)
        contact = await store.upsert_contact("telegram", "9", name="مریم", now=T0)
        session_id = await _open(
            store, contact.id or 0, context=context, state=state, language="ar", now=T0
        )
        await store.save_state(
            session_id,
            state=state,
            status="active",
            position="why",
            language="ar",
            answers={"why": ("الخدمة ممتازة 👍", "الخدمة ممتازة 👍", False)},
        )
    # A fresh engine: nothing comes from an identity map or a cache.
    async with await Database.open(db_url, auto_upgrade=True) as db:
        store = Store(db)
        session = await store.get_session(session_id)
        assert session is not None
        assert session.context == context
        assert session.state == state
        [answer] = await store.answers(session_id)
        assert answer.raw_text == answer.value == "الخدمة ممتازة 👍"
        assert (await store.find_contact("telegram", "9")) is not None


async def test_timestamps_are_stored_as_utc(store: Store) -> None:
    tehran = timezone(timedelta(hours=3, minutes=30))
    contact = await store.upsert_contact(
        "telegram", "5", now=datetime(2025, 3, 1, 12, 30, tzinfo=tehran)
    )
    stored = await store.get_contact(contact.id or 0)
    assert stored is not None
    assert stored.created_at == datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    assert stored.created_at.utcoffset() == timedelta(0)


async def test_deleting_a_contact_removes_its_sessions_and_answers(store: Store) -> None:
    keep, gone = await _contact(store, "keep"), await _contact(store, "gone")
    kept_session = await _open(store, keep)
    sessions = [await _open(store, gone), await _open(store, gone, flow_id="csat")]
    for session_id in [kept_session, *sessions]:
        await store.save_state(
            session_id,
            state={},
            status="active",
            position="q",
            language="en",
            answers={"q": ("5", 5, False)},
            now=T0,
        )

    async with store.database.session() as s, s.begin():
        await s.exec(delete(Contact).where(Contact.id == gone))

    assert await store.get_contact(gone) is None
    for session_id in sessions:
        assert await store.get_session(session_id) is None
        assert await store.answers(session_id) == []
    assert len(await store.answers(kept_session)) == 1
    async with store.database.session() as s:
        remaining = (await s.exec(select(SurveySession.contact_id))).all()
    assert list(remaining) == [keep]


async def test_a_reader_does_not_hold_the_writers_back(store: Store) -> None:
    """A long report (Database.reader) runs beside the bot's writes: on SQLite it must not
    take the write lock, or every answer would wait for the report."""
    from sqlalchemy import text

    async with store.database.reader() as conn:
        await conn.execute(text("select count(*) from contact"))  # its transaction is open
        # a writer commits while the reader's transaction is still open
        contact = await store.upsert_contact("console", "writer-beside-reader")
        assert contact.id is not None
        rows = (await conn.execute(text("select count(*) from contact"))).scalar_one()
        assert rows in (0, 1)  # snapshot or not, it reads without error


async def test_helpers_of_one_transaction_share_it_whatever_their_nesting(store: Store) -> None:
    """Every helper called in an update's transaction gets the same session: a helper
    called inside another's block does not detach the outer one's objects, each block's
    end writes what it changed, and a helper's failure undoes the whole transaction."""
    contact_id = await _contact(store)
    async with store.transaction() as tx:
        async with tx.database.session() as s, s.begin():
            person = await s.get(Contact, contact_id)
            assert person is not None
            inner = await tx.get_session(await _open(tx, contact_id))  # nested helpers
            assert inner is not None
            person.company = "Acme"  # still attached: written at the block's end
        async with tx.database.session() as s, s.begin():
            found = await s.get(Contact, contact_id)
            assert found is not None and found is not person  # each helper reads fresh
    found_after = await store.find_contact("telegram", "42")
    assert found_after is not None and found_after.company == "Acme"

    with pytest.raises(ZeroDivisionError):
        async with store.transaction() as tx:
            await tx.set_contact_flags(contact_id, opted_out=True)  # a helper that ended
            async with tx.database.session() as s, s.begin():
                person = await s.get(Contact, contact_id)
                assert person is not None
                person.company = "Other"
                raise ZeroDivisionError
    found_after = await store.find_contact("telegram", "42")
    assert found_after is not None
    assert (found_after.company, found_after.opted_out) == ("Acme", False)
