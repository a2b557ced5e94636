"""Long polling's inbox: updates kept from the moment they are taken until they are handled.

getUpdates confirms an update only by asking for the ones after it, and the runner must
not confirm one it has not handled (a crash would lose it). Without a place of its own to
keep them, every poll while updates are being handled returned them all again: at 150
respondents a third of the bot's CPU went into fetching and parsing updates it already
held (bench/README.md). Kept here, committed before the next getUpdates confirms them, the
offset moves on at once: each update comes once, a long poll waits for new ones, and a stop
or a crash leaves what was not handled here for the next start, which handles it first.

A row is deleted once its update is handled; deletions are gathered and made together.
A crash after handling and before the deletion hands the update out again at the next
start, and the controller recognises it (processed_update) and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import ARRAY, BigInteger, any_, bindparam, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from storage.db import Database
from storage.models import InboundUpdate

__all__ = ["Inbox"]

JSON = dict[str, Any]


# One statement text whatever the number of updates: PostgreSQL connections prepare each
# text they meet and keep the last 100, and one text per batch size was prepared again
# nearly every time and pushed the survey step's statements out.
@cache
def _keep(dialect: str) -> Any:
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(
        InboundUpdate).on_conflict_do_nothing()  # executemany: one row's text, many rows


@cache
def _forget(dialect: str) -> Any:
    ids = col(InboundUpdate.update_id)
    match = (ids == any_(bindparam("ids", type_=ARRAY(BigInteger)))
             if dialect == "postgresql" else ids.in_(bindparam("ids", expanding=True)))
    return delete(InboundUpdate).where(col(InboundUpdate.source) == bindparam("source"), match)


class Inbox:
    """The updates of one bot (`source`, e.g. "telegram:sada_bot") taken and not handled."""

    def __init__(self, database: Database, source: str) -> None:
        self.database = database
        self.source = source
        self._handled: set[int] = set()

    async def keep(self, updates: Iterable[JSON], now: datetime | None = None) -> None:
        """Store `updates` (each with an int update_id) in one transaction; one already
        here stays as it is (Telegram hands an unconfirmed update out again)."""
        rows = [{"source": self.source, "update_id": u["update_id"], "payload": u,
                 "received_at": now or datetime.now(UTC)} for u in updates]
        if not rows:
            return
        async with self.database.alone() as conn:
            await conn.execute(_keep(self.database.engine.dialect.name), rows)

    async def waiting(self) -> list[JSON]:
        """The updates kept and not handled, oldest first."""
        async with self.database.session() as s, s.begin():
            found = await s.exec(select(InboundUpdate.payload)
                                 .where(InboundUpdate.source == self.source)
                                 .order_by(col(InboundUpdate.update_id)))
            return [dict(payload) for payload in found.all()]

    def handled(self, update_id: int) -> None:
        """`update_id` needs keeping no more: deleted at the next `forget_handled`."""
        self._handled.add(update_id)

    async def forget_handled(self) -> None:
        """Delete the rows of the updates handled since the last call, in one statement."""
        if not self._handled:
            return
        ids, self._handled = self._handled, set()
        try:
            async with self.database.alone() as conn:
                await conn.execute(_forget(self.database.engine.dialect.name),
                                   {"source": self.source, "ids": sorted(ids)})
        except BaseException:
            self._handled |= ids  # tried again next time
            raise
