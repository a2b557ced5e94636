"""Each visitor's conversation, kept in the database as the browser receives it.

Every entry (a bot message, an edit of one, a press's notice, the visitor's own answer) is a
`web_message` row numbered by `seq`; the browser asks for what follows the last number it
has, so a reload, a dropped stream or a second tab miss nothing. Writers commit, then wake
the streams of this process (`Waiters`); streams also look again every few seconds, so a
message written by another process (the follow-ups of a second `sada run`) arrives too.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, update
from sqlmodel import col, select

from storage.db import Database
from storage.models import WebMessage, WebVisitor

Entry = dict[str, Any]  # one Message of the contract (docs/web-chat.md)
Buttons = list[list[dict[str, str]]]


def direction(text: str) -> str:
    """"rtl" when the first letter of `text` is written right to left (Persian, Arabic),
    else "ltr": what the browser needs to align a message."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return "rtl"
        if kind == "L":
            return "ltr"
    return "ltr"


# Letters Persian writes and Arabic does not: پ چ ژ گ ک ی.
_PERSIAN = frozenset("\u067e\u0686\u0698\u06af\u06a9\u06cc")


def language_of(text: str) -> str:
    """The language a message is written in, as far as its script tells: fa, ar or en."""
    if direction(text) == "ltr":
        return "en"
    return "fa" if any(char in _PERSIAN for char in text) else "ar"


def entry(row: WebMessage) -> Entry:
    """The row as the browser gets it: seq, id (messages and edits), kind, and its body."""
    found: Entry = {"seq": row.seq}
    if row.kind in ("message", "edit"):
        found["id"] = row.message_id
    found["kind"] = row.kind
    found.update(row.body)
    return found


async def visitor(database: Database, visitor_id: str) -> WebVisitor | None:
    async with database.session() as s, s.begin():
        return await s.get(WebVisitor, visitor_id)


async def add_visitor(database: Database, visitor_id: str, *, language: str | None,
                      now: datetime) -> WebVisitor:
    found = WebVisitor(id=visitor_id, language=language, opened=[], created_at=now)
    async with database.session() as s, s.begin():
        s.add(found)
    return found


async def set_language(database: Database, visitor_id: str, language: str) -> None:
    async with database.session() as s, s.begin():
        await s.exec(update(WebVisitor).where(col(WebVisitor.id) == visitor_id)
                     .values(language=language))


async def first_open(database: Database, visitor_id: str, key: str) -> bool:
    """Record that the visitor opened `key` ("t:<token>", "f:<flow>"): True the first time,
    False when it had opened it before (then the page resumes, nothing is started)."""
    async with database.session() as s, s.begin():
        found = await s.get(WebVisitor, visitor_id, with_for_update=True)
        if found is None or key in found.opened:
            return False
        found.opened = [*found.opened, key]
        s.add(found)
        return True


async def append(database: Database, visitor_id: str, kind: str, body: Entry, *,
                 now: datetime, message_id: int | None = None) -> int:
    """Store one entry; its seq (a message's id is its seq)."""
    row = WebMessage(visitor_id=visitor_id, kind=kind, body=body, message_id=message_id,
                     created_at=now)
    async with database.session() as s, s.begin():
        s.add(row)
        await s.flush()
        assert row.seq is not None
        if kind == "message":
            row.message_id = row.seq
            s.add(row)
        return row.seq


@dataclass(frozen=True)
class Load:
    """How full a visitor's history is: entries in all, and since a moment."""

    total: int
    recent: int


async def load(database: Database, visitor_id: str, since: datetime) -> Load:
    recent = func.count(col(WebMessage.seq)).filter(col(WebMessage.created_at) >= since)
    query = select(func.count(col(WebMessage.seq)), recent).where(
        WebMessage.visitor_id == visitor_id)
    async with database.session() as s, s.begin():
        total, since_then = (await s.exec(query)).one()
    return Load(int(total), int(since_then))


async def entries_after(database: Database, visitor_id: str, after: int,
                        limit: int = 500) -> list[Entry]:
    query = (select(WebMessage).where(WebMessage.visitor_id == visitor_id,
                                      col(WebMessage.seq) > after)
             .order_by(col(WebMessage.seq)).limit(limit))
    async with database.session() as s, s.begin():
        return [entry(row) for row in (await s.exec(query)).all()]


async def has_message(database: Database, visitor_id: str, message_id: int) -> bool:
    """Whether the visitor was sent message `message_id` (what an edit may change)."""
    query = select(col(WebMessage.seq)).where(
        WebMessage.visitor_id == visitor_id, WebMessage.seq == message_id,
        WebMessage.kind == "message")
    async with database.session() as s, s.begin():
        return (await s.exec(query)).first() is not None


async def last_seq(database: Database, visitor_id: str) -> int:
    query = select(func.max(col(WebMessage.seq))).where(WebMessage.visitor_id == visitor_id)
    async with database.session() as s, s.begin():
        return int((await s.exec(query)).one() or 0)


async def erase(database: Database, visitor_id: str, through: int) -> None:
    """Forget the visitor's conversation up to seq `through`, and what they opened: after
    /forget nothing of what they said stays, here either."""
    async with database.session() as s, s.begin():
        await s.exec(delete(WebMessage).where(
            col(WebMessage.visitor_id) == visitor_id, col(WebMessage.seq) <= through))
        found = await s.get(WebVisitor, visitor_id, with_for_update=True)
        if found is not None:
            found.opened, found.language = [], None
            s.add(found)


def applied(entries: Sequence[Entry]) -> list[Entry]:
    """The conversation as it shows now: edits applied to their messages, notices (passing
    acknowledgements) left out."""
    shown: list[Entry] = []
    messages: dict[int, Entry] = {}
    for found in entries:
        if found["kind"] == "message":
            message = dict(found)
            messages[message["id"]] = message
            shown.append(message)
        elif found["kind"] == "edit":
            target = messages.get(found["id"])
            if target is not None:
                if found.get("text") is not None:
                    target["text"] = found["text"]
                    target["dir"] = direction(found["text"])
                target["buttons"] = found.get("buttons")
        elif found["kind"] == "visitor":
            shown.append(dict(found))
    return shown


async def conversation(database: Database, visitor_id: str) -> tuple[list[Entry], int]:
    """The visitor's history as it shows now, and the last seq it holds (notices included:
    a stream goes on after it)."""
    found: list[Entry] = []
    after = 0
    while True:
        page = await entries_after(database, visitor_id, after, limit=1000)
        found += page
        if len(page) < 1000:
            break
        after = page[-1]["seq"]
    last = found[-1]["seq"] if found else 0
    return applied(found), last


def label_of(shown: Sequence[Entry], data: str) -> str | None:
    """The label of the button carrying `data` among the buttons shown now (the latest
    message first), or None when no shown button carries it."""
    for message in reversed(shown):
        for row in message.get("buttons") or []:
            for button in row:
                if button.get("data") == data:
                    return str(button.get("label", ""))
    return None


class Waiters:
    """The streams of this process waiting for visitors' next entries: one Condition per
    visitor watched, and a count of the entries written for them since, so a wake between
    a stream's read and its wait is not lost. Nothing is kept for visitors nobody watches."""

    def __init__(self) -> None:
        self._conditions: dict[str, asyncio.Condition] = {}
        self._written: dict[str, int] = {}
        self._watchers: dict[str, int] = {}

    @contextmanager
    def watching(self, visitor_id: str) -> Iterator[None]:
        """While a stream serves the visitor: its wakes are counted."""
        self._conditions.setdefault(visitor_id, asyncio.Condition())
        self._watchers[visitor_id] = self._watchers.get(visitor_id, 0) + 1
        try:
            yield
        finally:
            self._watchers[visitor_id] -= 1
            if not self._watchers[visitor_id]:
                del self._watchers[visitor_id], self._conditions[visitor_id]
                self._written.pop(visitor_id, None)

    def written(self, visitor_id: str) -> int:
        return self._written.get(visitor_id, 0)

    async def wake(self, visitor_id: str) -> None:
        condition = self._conditions.get(visitor_id)
        if condition is None:
            return  # nobody here watches: a stream elsewhere finds it on its next look
        self._written[visitor_id] = self.written(visitor_id) + 1
        async with condition:
            condition.notify_all()

    async def wait(self, visitor_id: str, seen: int, timeout: float) -> None:
        """Inside `watching`: until an entry is written for the visitor after `seen` (a
        `written` count), or `timeout` seconds."""
        condition = self._conditions[visitor_id]
        try:
            async with condition:
                await asyncio.wait_for(
                    condition.wait_for(lambda: self.written(visitor_id) != seen), timeout)
        except TimeoutError:
            pass


RECENT = timedelta(seconds=60)
