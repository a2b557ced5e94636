"""The Store: every read and write the bot makes.

An unbound Store runs each call in its own short transaction, committed on return. One
inbound event is applied in one transaction: `Store.transaction()` yields a Store bound to
it, whose every call (and every helper handed its `database`) joins that transaction, so
the event's de-duplication, contact, state, answers, hooks and opt-out commit together or
not at all.

Times are passed in (``now``) so callers own the clock; ``None`` means the current UTC time,
read here and nowhere else in the storage layer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar
from sqlmodel.sql.sqltypes import UTCDateTime

from storage.db import Database, NotFound, StorageError
from storage.detached import detached, set_stored
from storage.identities import (
    EXTERNAL,
    as_address,
    contact_and_identity_at,
    contact_at,
    find_identity,
    identities_of,
    pick_identity,
)
from storage.locks import LOCK_SQL, SEED, address_key
from storage.models import (
    RESUMABLE_STATUSES,
    Answer,
    Consent,
    Contact,
    ContactIdentity,
    FlowVersion,
    LinkToken,
    ProcessedUpdate,
    SurveySession,
)

# Fields a caller may set on a contact; the key and the timestamps are the Store's business.
CONTACT_FIELDS = frozenset(Contact.model_fields) - {
    "id",
    "external_id",
    "created_at",
    "updated_at",
}


def _same_json(a: object, b: object) -> bool:
    # Python says 1 == 1.0 == True; the stored JSON does not, and a changed type is a change.
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _column(name: str) -> Any:
    return col(getattr(Contact, name))


# The hot path's statements are built once, with bound parameters: building a SELECT
# with SQLAlchemy's operators cost as much CPU as running it.
@cache
def _latest_query(newest: str, by_flow: bool) -> SelectOfScalar[SurveySession]:
    query = select(SurveySession).where(
        col(SurveySession.contact_id) == bindparam("contact_id"),
        col(SurveySession.status).in_(bindparam("statuses", expanding=True)))
    if by_flow:
        query = query.where(col(SurveySession.flow_id) == bindparam("flow_id"))
    return query.order_by(col(getattr(SurveySession, newest)).desc(),
                          col(SurveySession.id).desc()).limit(1)


@cache
def _save_state_query(completed: bool) -> Any:
    return (
        update(SurveySession)
        .where(col(SurveySession.id) == bindparam("p_id"))
        .values(state=bindparam("p_state"), status=bindparam("p_status"),
                position=bindparam("p_position"), language=bindparam("p_language"),
                last_activity_at=bindparam("p_now"),
                # Keep the first completion time when a completed session is saved again.
                completed_at=func.coalesce(col(SurveySession.completed_at),
                                           bindparam("p_now", type_=UTCDateTime()))
                if completed else None)
        .returning(col(SurveySession.contact_id), col(SurveySession.flow_id))
        .execution_options(synchronize_session=False))


def _dialect_insert(dialect: str, model: type[SQLModel]) -> Any:
    # Both dialects share the INSERT … ON CONFLICT API; the generic insert lacks it.
    return pg_insert(model) if dialect == "postgresql" else sqlite_insert(model)


@cache
def _upsert_answer(dialect: str) -> Any:
    insert = _dialect_insert(dialect, Answer)
    return insert.on_conflict_do_update(
        index_elements=["session_id", "question_id"],
        set_={name: getattr(insert.excluded, name)
              for name in ("raw_text", "value", "skipped", "answered_at")})


@cache
def _claim_query(dialect: str) -> Any:
    return (_dialect_insert(dialect, ProcessedUpdate)
            .values(source=bindparam("source"), update_id=bindparam("update_id"),
                    processed_at=bindparam("processed_at"))
            .on_conflict_do_nothing().returning(col(ProcessedUpdate.id)))


# The person's lock (storage/locks.py), then the claim: the lock is taken as the INSERT
# reads its one row, before the conflict is looked for.
_LOCKED_CLAIM = text(f"""
WITH held AS (SELECT {LOCK_SQL})
INSERT INTO processed_update (source, update_id, processed_at)
SELECT :source, CAST(:update_id AS BIGINT), CAST(:processed_at AS TIMESTAMPTZ) FROM held
ON CONFLICT DO NOTHING RETURNING id
""")

_MARK_SHOWN = (update(SurveySession)
               .where(col(SurveySession.id) == bindparam("p_id"))
               .values(shown=bindparam("p_shown"), prompt_message_id=bindparam("p_message"))
               .execution_options(synchronize_session=False))


def _differs(old: tuple[str, object, bool], new: tuple[str, object, bool]) -> bool:
    return old[0] != new[0] or old[2] != new[2] or not _same_json(old[1], new[1])


class DuplicateUpdate(StorageError):
    """This update was already applied (a redelivery): nothing was changed."""


class _InTransaction(Database):
    """The Database of one open transaction: each session it hands out joins it, and only
    the owner commits.

    A helper's session joins without a savepoint of its own ("conditional_savepoint"): a
    failed step rolls the whole transaction back, which is what every caller does anyway
    (the update fails, or is a redelivery). Savepoints cost two round trips a helper — 11 of
    the 25 statements of a survey step. A helper that recovers from its own failure says so
    with `begin_nested()` (_create_contact's race), which still
    makes one."""

    def __init__(self, database: Database, connection: AsyncConnection) -> None:
        super().__init__(database.engine, database.url)
        self.connection = connection
        self._shared: _JoinedSession | None = None
        self._outer = database

    def _readers(self) -> AsyncEngine:
        # The database's own readers, which it closes: an engine made here was never
        # disposed, and each staff /report in chat on SQLite left a connection and its
        # thread open for the life of the process.
        return self._outer._readers()

    def session(self) -> AsyncSession:
        # One session for the whole transaction: building and closing one per helper was
        # a third of a statement's CPU (about 0.35 ms, five times an update).
        if self._shared is None:
            self._shared = _JoinedSession(bind=self.connection,
                                          join_transaction_mode="conditional_savepoint",
                                          expire_on_commit=False)
        return self._shared

    @asynccontextmanager
    async def alone(self) -> AsyncIterator[AsyncConnection]:
        # Within the transaction: what the helpers wrote first, then committed with it.
        if self._shared is not None:
            await self._shared.flush_pending()
        yield self.connection

    async def close(self) -> None:
        if self._shared is not None:
            shared, self._shared = self._shared, None
            await shared.really_close()


class _JoinedSession(AsyncSession):
    """The session every helper of one transaction gets. A helper's `async with
    database.session() as s, s.begin():` neither opens nor closes it: the block's end
    flushes, and (outermost block only) empties the identity map, so each helper reads
    fresh rows and hands back detached objects, as a session of its own did."""

    _depth = 0

    async def __aenter__(self) -> _JoinedSession:
        return self

    async def connection(
        self, bind_arguments: Any = None, execution_options: Any = None, **kw: Any,
    ) -> AsyncConnection:
        # The transaction's own connection, which the session is bound to: asking the
        # session for it is a trip through a greenlet (about 19 µs, three times a step).
        bind = self.bind
        if bind_arguments or execution_options or kw or not isinstance(bind, AsyncConnection):
            return await super().connection(bind_arguments, execution_options, **kw)
        return bind

    async def flush_pending(self) -> None:
        """Flush, when there is anything to flush: an empty flush is a trip through a
        greenlet all the same (about 15 µs, three or four times a step)."""
        if self.new or self.dirty or self.deleted:
            await self.flush()

    async def __aexit__(self, *exc: object) -> None:
        return None

    def begin(self) -> _HelperBlock:  # type: ignore[override]
        return _HelperBlock(self)

    async def really_close(self) -> None:
        await super().close()


class _HelperBlock:
    def __init__(self, session: _JoinedSession) -> None:
        self.session = session

    async def __aenter__(self) -> _HelperBlock:
        self.session._depth += 1
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.session._depth -= 1
        if kind is None:
            await self.session.flush_pending()
        else:
            # As a helper's own session did: a failure rolls the whole transaction back.
            await self.session.rollback()
        if self.session._depth == 0:
            self.session.expunge_all()


# An identity's last_inbound_at is written again only when this much older than a new
# inbound event: not on every answer. Never later than the truth by more than this, so a
# channel's messaging window is judged closed a little early, never late (render.py keeps a
# minute's margin too).
SEEN_GRANULARITY = timedelta(seconds=30)


def _identity_changes(identity: ContactIdentity, *, seen_at: datetime | None,
                      unreachable: bool | None) -> dict[str, Any]:
    """What an inbound event (`seen_at`) or a delivery's outcome (`unreachable`) changes in
    an identity: they wrote from it, so it is reachable and the one they use now."""
    changes: dict[str, Any] = {}
    if seen_at is not None and (identity.unreachable or _stale(identity.last_inbound_at,
                                                              seen_at)):
        changes.update(unreachable=False, last_inbound_at=seen_at)
    if unreachable is not None and unreachable != changes.get("unreachable",
                                                              identity.unreachable):
        changes["unreachable"] = unreachable
    return changes


def _stale(seen: datetime | None, now: datetime) -> bool:
    if seen is None:
        return True
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    return now - seen >= SEEN_GRANULARITY


class Store:
    """Storage operations over an open Database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Store]:
        """A Store bound to one new transaction: committed when the block ends, rolled back
        when it raises. Inside a bound Store, the same transaction. Readers
        (`database.reader()`) stay apart: they see what is committed."""
        if isinstance(self.database, _InTransaction):
            yield self
            return
        async with self.database.engine.connect() as conn, conn.begin():
            bound = _InTransaction(self.database, conn)
            try:
                yield Store(bound)
            finally:
                await bound.close()

    @staticmethod
    def _now(now: datetime | None) -> datetime:
        return now if now is not None else datetime.now(UTC)

    def _insert(self, model: type[SQLModel]) -> Any:
        return _dialect_insert(self.database.engine.dialect.name, model)

    # Contacts

    async def upsert_contact(
        self, channel: str, address: str, *, now: datetime | None = None,
        seen_at: datetime | None = None, unreachable: bool | None = None,
        defaults: Mapping[str, Any] | None = None, **fields: Any
    ) -> Contact:
        """The contact at (channel, address), created (with that identity) when new, updated
        with the given non-None fields. ``defaults``: more fields, for a new contact only.
        ``seen_at``: they wrote from that address then (an inbound event), so the identity
        is reachable again and the last one they used. ``unreachable`` sets that identity's
        reachability. On channel "external" the address is the company's own id
        (Contact.external_id) and there is no identity."""
        unknown = (fields.keys() | (defaults or {}).keys()) - CONTACT_FIELDS
        if unknown:
            raise TypeError(f"unknown contact field(s): {', '.join(sorted(unknown))}")
        changes = {k: v for k, v in fields.items() if v is not None}
        ts = self._now(now)
        address = as_address(address)
        async with self.database.session() as s, s.begin():
            found = await contact_and_identity_at(s, channel, address)
            if found is None:
                fresh = {**{k: v for k, v in (defaults or {}).items() if v is not None},
                         **changes}
                contact = await self._create_contact(s, channel, address, ts, fresh)
                identity = await find_identity(s, channel, address) if channel != EXTERNAL \
                    and (seen_at is not None or unreachable is not None) else None
            else:
                # Detached objects (read with Core): what changes is written here, by id.
                contact, identity = found
                if any(not _same_json(getattr(contact, k), v) for k, v in changes.items()):
                    # Leave updated_at alone when nothing actually changed.
                    await self._write_row(s, contact, {**changes, "updated_at": ts})
                if identity is not None:
                    await self._write_row(s, identity, _identity_changes(
                        identity, seen_at=seen_at, unreachable=unreachable))
                return contact
            if identity is not None:
                identity.sqlmodel_update(_identity_changes(identity, seen_at=seen_at,
                                                           unreachable=unreachable))
            await s.flush()  # nothing changed, nothing written
            return contact

    @staticmethod
    async def _write_row(s: AsyncSession, row: SQLModel, values: dict[str, Any]) -> None:
        """Set `values` on a detached object and on its row (nothing when empty)."""
        if not values:
            return
        table = type(row).__table__  # type: ignore[attr-defined]
        await (await s.connection()).execute(
            update(table).where(table.c.id == row.id).values(values))  # type: ignore[attr-defined]
        set_stored(row, values)

    async def _create_contact(
        self, s: AsyncSession, channel: str, address: str, ts: datetime,
        fields: dict[str, Any],
    ) -> Contact:
        # Two first messages from one new address may race: the identity's unique key
        # decides, and the loser's contact is undone with its savepoint.
        try:
            async with s.begin_nested():
                if channel == EXTERNAL:
                    contact = Contact(external_id=address, created_at=ts, updated_at=ts,
                                      **fields)
                    s.add(contact)
                    await s.flush()
                else:
                    contact = Contact(created_at=ts, updated_at=ts, **fields)
                    s.add(contact)
                    await s.flush()
                    assert contact.id is not None
                    s.add(ContactIdentity(contact_id=contact.id, channel=channel,
                                          address=address, created_at=ts))
                    await s.flush()
                return contact
        except IntegrityError:
            found = await contact_at(s, channel, address)
            if found is None:
                raise
            if fields:
                found.sqlmodel_update({**fields, "updated_at": ts})
                await s.flush()
            return found

    async def get_contact(self, contact_id: int) -> Contact | None:
        async with self.database.session() as s, s.begin():
            return await s.get(Contact, contact_id)

    async def find_contact(self, channel: str, address: str) -> Contact | None:
        """The contact at (channel, address); on "external", the one with that company id."""
        async with self.database.session() as s, s.begin():
            return await contact_at(s, channel, address)

    async def identities(self, contact_id: int) -> list[ContactIdentity]:
        """The contact's identities, oldest first."""
        async with self.database.session() as s, s.begin():
            return (await identities_of(s, [contact_id])).get(contact_id, [])

    async def contact_address(
        self, contact_id: int, channels: Iterable[str] | None = None
    ) -> ContactIdentity | None:
        """Where to send to the contact now (see `identities.pick_identity`); None: nowhere
        reachable (of `channels`, when given)."""
        async with self.database.session() as s, s.begin():
            contact = await s.get(Contact, contact_id)
            if contact is None:
                return None
            mine = (await identities_of(s, [contact_id])).get(contact_id, [])
            return pick_identity(mine, contact.preferred_channel, channels)

    async def adoptable(self, contact_id: int, channel: str, *, several: bool = False) -> bool:
        """Whether a chat on `channel` could still become this contact: it exists and has no
        identity on that channel (`adopt_chat` takes only such contacts), or the channel is
        one where a person has `several` (a browser each)."""
        async with self.database.session() as s, s.begin():
            if await s.get(Contact, contact_id) is None:
                return False
            if several:
                return True
            taken = (await s.exec(select(ContactIdentity.id).where(
                ContactIdentity.contact_id == contact_id,
                ContactIdentity.channel == channel))).first()
            return taken is None

    async def set_contact_flags(
        self,
        contact_id: int,
        *,
        opted_out: bool | None = None,
        unreachable: bool | None = None,
        language: str | None = None,
        now: datetime | None = None,
    ) -> Contact:
        """Set the given flags; None leaves a flag as it is. ``unreachable`` applies to every
        identity of the contact (one identity: `storage.invitations.on_unreachable`)."""
        changes = {
            k: v
            for k, v in {
                "opted_out": opted_out,
                "language": language,
            }.items()
            if v is not None
        }
        async with self.database.session() as s, s.begin():
            contact = await s.get(Contact, contact_id, with_for_update=True)
            if contact is None:
                raise NotFound(f"no contact with id {contact_id}")
            if any(getattr(contact, k) != v for k, v in changes.items()):
                contact.sqlmodel_update({**changes, "updated_at": self._now(now)})
            if unreachable is not None:
                for identity in (await identities_of(s, [contact_id])).get(contact_id, []):
                    if identity.unreachable != unreachable:
                        identity.unreachable = unreachable
                        contact.updated_at = self._now(now)
            return contact

    # Flows

    async def flow_version(
        self, flow_id: str, content: str, title: str | None = None, *, now: datetime | None = None
    ) -> FlowVersion:
        """The version row for this exact flow text, created on first sight."""
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
        stmt = (
            self._insert(FlowVersion)
            .values(
                flow_id=flow_id,
                content_hash=digest,
                content=content,
                title=title,
                created_at=self._now(now),
            )
            .on_conflict_do_nothing(index_elements=["flow_id", "content_hash"])
        )
        async with self.database.session() as s, s.begin():
            await s.exec(stmt)
            found = await s.exec(
                select(FlowVersion).where(
                    FlowVersion.flow_id == flow_id, FlowVersion.content_hash == digest
                )
            )
            return found.one()

    async def get_flow_version(self, version_id: int) -> FlowVersion:
        async with self.database.session() as s, s.begin():
            version = await s.get(FlowVersion, version_id)
        if version is None:
            raise NotFound(f"no flow version with id {version_id}")
        return version

    # Sessions and answers

    async def open_session(
        self,
        *,
        contact_id: int,
        flow_version_id: int,
        flow_id: str,
        language: str,
        context: dict[str, Any],
        state: dict[str, Any],
        status: str,
        position: str | None,
        now: datetime | None = None,
    ) -> SurveySession:
        ts = self._now(now)
        row = SurveySession(
            contact_id=contact_id,
            flow_version_id=flow_version_id,
            flow_id=flow_id,
            status=status,
            language=language,
            position=position,
            state=state,
            context=context,
            started_at=ts,
            last_activity_at=ts,
            completed_at=ts if status == "completed" else None,
        )
        async with self.database.session() as s, s.begin():
            s.add(row)
        return row

    async def resumable_session(self, contact_id: int, flow_id: str) -> SurveySession | None:
        """The contact's latest unfinished session of this flow (latest started), if any."""
        return await self._latest_session(contact_id, RESUMABLE_STATUSES, flow_id=flow_id,
                                          newest="started_at")

    async def _latest_session(
        self, contact_id: int, statuses: tuple[str, ...], *, flow_id: str | None,
        newest: str,
    ) -> SurveySession | None:
        params: dict[str, Any] = {"contact_id": contact_id, "statuses": list(statuses)}
        if flow_id is not None:
            params["flow_id"] = flow_id
        # Core and `detached`, not an ORM query: this runs on nearly every inbound event.
        async with self.database.alone() as conn:
            row = (await conn.execute(_latest_query(newest, flow_id is not None),
                                      params)).first()
        return None if row is None else detached(SurveySession, row._mapping)

    async def get_session(self, session_id: int) -> SurveySession | None:
        async with self.database.session() as s, s.begin():
            return await s.get(SurveySession, session_id)

    async def save_state(
        self,
        session_id: int,
        *,
        state: dict[str, Any],
        status: str,
        position: str | None,
        language: str,
        answers: Mapping[str, tuple[str, object, bool]],
        now: datetime | None = None,
        contact: Mapping[str, Any] | None = None,
        consent: tuple[str, str] | None = None,
        within: Callable[[AsyncSession], Awaitable[None]] | None = None,
        stored: Mapping[str, tuple[str, object, bool]] | None = None,
    ) -> None:
        """Store the session's full state and its complete set of answers, atomically.

        ``answers`` maps question id to (raw text, value, skipped) and is the whole set:
        missing questions are deleted, so repeating a call after a crash changes nothing.
        ``stored``: the answers the session's stored state already holds, when the caller
        read them with it (a survey step); only the difference is written, without reading
        the rows back. ``contact`` fields
        (opted_out …) are set on the session's contact in it too; ``within`` runs last inside
        the same transaction, for work that must commit with the step (cases, invitations).
        """
        ts = self._now(now)
        async with self.database.session() as s, s.begin():
            # Written first, in one UPDATE without a read: its row lock keeps two saves of one
            # session from both inserting the same new answer. On the connection, as Core:
            # the ORM's bulk UPDATE path costs more than the statement.
            saved = (await (await s.connection()).execute(
                _save_state_query(status == "completed"),
                {"p_id": session_id, "p_state": state, "p_status": status,
                 "p_position": position, "p_language": language, "p_now": ts},
            )).first()
            if saved is None:
                raise NotFound(f"no survey session with id {session_id}")
            contact_id, flow_id = saved
            if consent is not None:  # (language, text) agreed to, recorded with the step
                s.add(Consent(contact_id=contact_id, session_id=session_id,
                              flow_id=flow_id, language=consent[0], text=consent[1],
                              given_at=ts))
            if contact:
                person = await s.get(Contact, contact_id)
                if person is not None:
                    person.sqlmodel_update({**contact, "updated_at": ts})
            if stored is None:  # the caller does not know them: read what the rows hold
                rows = await s.exec(select(Answer).where(Answer.session_id == session_id))
                stored = {a.question_id: (a.raw_text, a.value, a.skipped) for a in rows}
            await self._write_answers(s, session_id, stored, answers, ts)
            if within is not None:
                await s.flush()
                await within(s)

    async def _write_answers(
        self, s: AsyncSession, session_id: int,
        stored: Mapping[str, tuple[str, object, bool]],
        answers: Mapping[str, tuple[str, object, bool]], ts: datetime,
    ) -> None:
        changed = [
            {"session_id": session_id, "question_id": question_id, "raw_text": raw_text,
             "value": value, "skipped": skipped, "answered_at": ts}
            for question_id, (raw_text, value, skipped) in answers.items()
            if question_id not in stored
            or _differs(stored[question_id], (raw_text, value, skipped))]
        dropped = [question_id for question_id in stored if question_id not in answers]
        connection = await s.connection()
        if changed:
            # An upsert: a row the state did not know of is overwritten, never doubled.
            await connection.execute(_upsert_answer(self.database.engine.dialect.name),
                                     changed)
        if dropped:
            await connection.execute(delete(Answer).where(
                col(Answer.session_id) == session_id, col(Answer.question_id).in_(dropped)))

    async def answers(self, session_id: int) -> list[Answer]:
        async with self.database.session() as s, s.begin():
            found = await s.exec(
                select(Answer).where(Answer.session_id == session_id).order_by(col(Answer.id))
            )
            return list(found.all())

    # Incoming updates, delivery, links, consent, personal data

    async def claim_update(
        self, source: str, update_id: int, *, now: datetime | None = None,
        lock: tuple[str, str] | None = None,
    ) -> None:
        """Mark an inbound update applied; DuplicateUpdate when it already was. Claimed in
        the event's transaction (`transaction()`), it commits with all the event changed:
        a redelivery finds it and changes nothing, a crash before the commit leaves no trace
        of it and the redelivery is applied in full. ``lock``: (channel, address) to take
        `storage.locks.lock_address` on first, in the same statement (PostgreSQL)."""
        # ON CONFLICT rather than a failed INSERT: no savepoint (two more round trips on
        # every update) is needed for the transaction to go on after a duplicate.
        # On the connection, as Core: the ORM's bulk INSERT path cost more than the INSERT.
        params = {"source": source, "update_id": update_id, "processed_at": self._now(now)}
        dialect = self.database.engine.dialect.name
        if lock is not None and dialect == "postgresql":
            if not isinstance(self.database, _InTransaction):
                raise RuntimeError("a claim with its lock needs Store.transaction()")
            statement = _LOCKED_CLAIM
            params.update(key=address_key(*lock), seed=SEED)
        else:
            statement = _claim_query(dialect)  # SQLite: one writer, no lock to take
        async with self.database.alone() as conn:
            claimed = (await conn.execute(statement, params)).first()
        if claimed is None:
            raise DuplicateUpdate(f"update {update_id} from {source} was already applied")

    async def mark_shown(
        self, session_id: int, question_id: str | None, message_id: int | None
    ) -> None:
        # one UPDATE, no read first, no ORM session: this runs after every question sent
        async with self.database.alone() as conn:
            await conn.execute(_MARK_SHOWN, {
                "p_id": session_id, "p_shown": question_id, "p_message": message_id})

    async def undelivered_sessions(self, channel: str) -> list[tuple[SurveySession, str]]:
        """Open sessions whose current question was committed but never shown, with the
        address on `channel` to show it at: only sessions whose contact last wrote from a
        reachable identity on `channel`."""
        query = (
            select(SurveySession)
            .join(Contact, col(Contact.id) == col(SurveySession.contact_id))
            .where(
                col(Contact.opted_out).is_(False),
                SurveySession.status == "active",
                col(SurveySession.position).is_not(None),
                or_(
                    col(SurveySession.shown).is_(None),
                    col(SurveySession.shown) != col(SurveySession.position),
                ),
                col(Contact.id).in_(select(ContactIdentity.contact_id).where(
                    ContactIdentity.channel == channel,
                    col(ContactIdentity.unreachable).is_(False))),
            )
        )
        async with self.database.session() as s, s.begin():
            rows = list((await s.exec(query)).all())
            found = await identities_of(s, [session.contact_id for session in rows])
        undelivered: list[tuple[SurveySession, str]] = []
        for session in rows:
            # the chat they are answering in, not their preferred one
            target = pick_identity(found.get(session.contact_id, []), None)
            if target is not None and target.channel == channel:
                undelivered.append((session, target.address))
        return undelivered

    async def latest_open_session(
        self, contact_id: int, statuses: tuple[str, ...] = RESUMABLE_STATUSES
    ) -> SurveySession | None:
        """The contact's most recently active session in one of these statuses, any flow."""
        return await self._latest_session(contact_id, statuses, flow_id=None,
                                          newest="last_activity_at")

    async def create_link(
        self,
        token: str,
        *,
        flow_id: str,
        contact_id: int | None,
        context: dict[str, Any],
        now: datetime | None = None,
        code_hash: str | None = None,
    ) -> LinkToken:
        row = LinkToken(
            token=token, flow_id=flow_id, contact_id=contact_id, context=context,
            created_at=self._now(now), code_hash=code_hash,
        )
        async with self.database.session() as s, s.begin():
            s.add(row)
        return row

    async def get_link(self, token: str) -> LinkToken | None:
        async with self.database.session() as s, s.begin():
            return await s.get(LinkToken, token)

    async def record_consent(
        self, *, contact_id: int, session_id: int, flow_id: str, language: str, text: str,
        now: datetime | None = None,
    ) -> None:
        async with self.database.session() as s, s.begin():
            s.add(Consent(contact_id=contact_id, session_id=session_id, flow_id=flow_id,
                          language=language, text=text, given_at=self._now(now)))

    async def export_contact(self, contact_id: int) -> dict[str, Any]:
        """Everything stored about one person, as a JSON-ready document."""
        async with self.database.session() as s, s.begin():
            contact = await s.get(Contact, contact_id)
            if contact is None:
                raise NotFound(f"no contact with id {contact_id}")
            sessions = (await s.exec(select(SurveySession).where(
                SurveySession.contact_id == contact_id).order_by(col(SurveySession.id)))).all()
            consents = (await s.exec(select(Consent).where(
                Consent.contact_id == contact_id))).all()
            identities = (await identities_of(s, [contact_id])).get(contact_id, [])
            document: dict[str, Any] = {
                "contact": contact.model_dump(mode="json"),
                "identities": [i.model_dump(mode="json", exclude={"id", "contact_id"})
                               for i in identities],
                "consents": [c.model_dump(mode="json", exclude={"id"}) for c in consents],
                "sessions": [],
            }
            for session in sessions:
                answers = (await s.exec(select(Answer).where(
                    Answer.session_id == session.id).order_by(col(Answer.id)))).all()
                item = session.model_dump(mode="json", exclude={"state", "shown",
                                                                "prompt_message_id"})
                item["answers"] = [a.model_dump(mode="json", exclude={"id", "session_id"})
                                   for a in answers]
                document["sessions"].append(item)
            return document

    async def forget_contact(self, contact_id: int) -> bool:
        """Erase a person: contact, sessions, answers, consents and links, in one go."""
        sessions = select(SurveySession.id).where(SurveySession.contact_id == contact_id)
        async with self.database.session() as s, s.begin():
            if await s.get(Contact, contact_id) is None:
                return False
            # explicit statements, children first: no reliance on the ORM's flush order
            await s.exec(delete(Answer).where(col(Answer.session_id).in_(sessions)))
            await s.exec(delete(Consent).where(col(Consent.contact_id) == contact_id))
            await s.exec(delete(SurveySession).where(col(SurveySession.contact_id) == contact_id))
            await s.exec(delete(LinkToken).where(col(LinkToken.contact_id) == contact_id))
            await s.exec(delete(ContactIdentity).where(
                col(ContactIdentity.contact_id) == contact_id))
            await s.exec(delete(Contact).where(col(Contact.id) == contact_id))
        return True

    async def session_counts(self) -> dict[str, tuple[int, int]]:
        """Per flow id: (completed, started) sessions."""
        query = select(
            SurveySession.flow_id,
            func.count(col(SurveySession.id)),
            func.count(col(SurveySession.completed_at)),
        ).group_by(SurveySession.flow_id)
        async with self.database.session() as s, s.begin():
            rows = (await s.exec(query)).all()
        return {flow: (int(done), int(total)) for flow, total, done in rows}
