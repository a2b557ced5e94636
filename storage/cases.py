"""Cases: detractor alerts staff must close. Listing them, and resolving one exactly once.

Time to resolve (TTR) is `resolved_at − opened_at`, both written by the callers' clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from storage.db import Database, NotFound, StorageError
from storage.models import Case, Contact
from storage.webhooks import emit_case

# The largest id a row can have: ids are INTEGER columns, 32 bits on PostgreSQL (64 on
# SQLite). Asked for a larger one, the drivers raise (asyncpg "out of int32 range",
# sqlite3 OverflowError past 64 bits) instead of finding nothing, so it is checked first.
MAX_ID = 2**31 - 1


def storable_id(value: int) -> bool:
    """Whether ``value`` can be a row's id at all (1 … MAX_ID)."""
    return 0 < value <= MAX_ID


class AlreadyResolved(StorageError):
    """The case was resolved before; resolving it again would rewrite its time to resolve."""


class EmptyNote(StorageError, ValueError):
    """A case is closed with a note saying what was done."""


@dataclass(frozen=True)
class CaseRow:
    """A case with the contact it is about, as `sada cases list` shows it."""

    case: Case
    contact: Contact

    @property
    def time_to_resolve(self) -> timedelta | None:
        return time_to_resolve(self.case)


def time_to_resolve(case: Case) -> timedelta | None:
    if case.resolved_at is None:
        return None
    return case.resolved_at - case.opened_at


async def list_cases(
    db: Database, *, open_only: bool = True, flow_id: str | None = None
) -> list[CaseRow]:
    """Cases, oldest first (the ones waiting longest matter most), with their contacts."""
    query = select(Case, Contact).join(Contact, col(Contact.id) == col(Case.contact_id))
    if open_only:
        query = query.where(Case.status == "open")
    if flow_id is not None:
        query = query.where(Case.flow_id == flow_id)
    query = query.order_by(col(Case.opened_at), col(Case.id))
    async with db.session() as s, s.begin():
        return [CaseRow(case, contact) for case, contact in (await s.exec(query)).all()]


async def get_case(db: Database, case_id: int) -> Case | None:
    if not storable_id(case_id):
        return None
    async with db.session() as s, s.begin():
        return await s.get(Case, case_id)


async def resolve_case(
    db: Database, case_id: int, *, note: str, by: str | None, now: datetime
) -> Case:
    """Close an open case with a note; raises NotFound, AlreadyResolved or EmptyNote.

    One conditional UPDATE: two staff resolving the same case at once (CLI and Telegram,
    two bot processes) cannot both win, and the loser is told who did.
    """
    note = note.strip()
    if not note:
        raise EmptyNote(f"say what was done: a note is required to resolve case {case_id}")
    if not storable_id(case_id):
        raise NotFound(f"there is no case {case_id}; `sada cases list --all` shows them")
    stmt = (
        update(Case)
        .where(col(Case.id) == case_id, col(Case.status) == "open")
        .values(status="resolved", resolved_at=now, resolved_by=by or None, note=note)
        .returning(col(Case.id))
    )
    async with db.session() as s, s.begin():
        done = (await s.exec(stmt)).first()
        case = await s.get(Case, case_id, populate_existing=True)
        if done is not None and case is not None:
            await emit_case(s, "case.resolved", case, now=now)  # with the resolution
    if case is None:
        raise NotFound(f"there is no case {case_id}; `sada cases list --all` shows them")
    if done is None:
        when = case.resolved_at.strftime("%Y-%m-%d %H:%M UTC") if case.resolved_at else "before"
        who = f" by {case.resolved_by}" if case.resolved_by else ""
        raise AlreadyResolved(f"case {case_id} was already resolved{who} on {when}: "
                              f"{case.note or ''}".rstrip(": "))
    return case
