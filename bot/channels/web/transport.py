"""The web chat as a Transport: each message is written to the visitor's history (history.py)
and committed, then this process's streams are woken; the browser reads it from there.

Failures map onto the channel-neutral errors like any channel's: the database unreachable
or failing is Transient (retried, the question shown again later); a visitor id no browser
holds is Blocked; a message over the channel's length, an edit of a message the visitor
never got, or a history full beyond any conversation's size is Refused; a visitor flooded
with more entries in a minute than any survey sends waits (ChatRetryAfter), so a runaway
loop cannot fill the database.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bot.channels.web import history
from bot.channels.web.channel import CHANNEL
from bot.channels.web.history import Buttons, Entry, Waiters
from bot.messaging.transport import Blocked, ChatRetryAfter, Keyboard, Refused, Transient
from storage.db import Database

T = TypeVar("T")

# Entries a visitor's history may hold: a long survey is a few hundred.
MOST_ENTRIES = 5000
# Entries to one visitor within history.RECENT before sends wait FLOOD_WAIT seconds.
MOST_RECENT = 120
FLOOD_WAIT = 5.0


def keyboard_json(keyboard: Keyboard | None) -> Buttons | None:
    if not keyboard:
        return None
    return [[{"label": b.text, "data": b.data} for b in row] for row in keyboard]


def press_id(visitor_id: str) -> str:
    """A press's callback id: the visitor it came from, so its answer finds them."""
    return f"{visitor_id}.{secrets.token_urlsafe(6)}"


class WebTransport:
    channel = CHANNEL.name

    def __init__(self, database: Database, waiters: Waiters | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.database = database
        self.waiters = waiters or Waiters()
        self.clock = clock

    async def _guarded(self, work: Callable[[], Awaitable[T]]) -> T:
        try:
            return await work()
        except (Blocked, Refused, ChatRetryAfter):
            raise
        except (SQLAlchemyError, DBAPIError, OSError) as exc:
            raise Transient(f"the web chat's database failed: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc

    async def _write(self, visitor_id: str, kind: str, body: Entry,
                     message_id: int | None = None) -> int:
        async def write() -> int:
            now = self.clock()
            if await history.visitor(self.database, visitor_id) is None:
                raise Blocked(f"no web visitor {visitor_id!r}: no browser holds this id")
            load = await history.load(self.database, visitor_id, now - history.RECENT)
            if load.total >= MOST_ENTRIES:
                raise Refused(f"the history of web visitor {visitor_id} is full "
                              f"({load.total} entries)")
            if load.recent >= MOST_RECENT:
                raise ChatRetryAfter(FLOOD_WAIT)
            if kind == "edit" and (message_id is None or not await history.has_message(
                    self.database, visitor_id, message_id)):
                raise Refused(f"message to edit not found: {message_id}")
            return await history.append(self.database, visitor_id, kind, body, now=now,
                                        message_id=message_id)

        seq = await self._guarded(write)
        await self.waiters.wake(visitor_id)
        return seq

    def _fits(self, text: str) -> None:
        limit = CHANNEL.capabilities.text_length
        if CHANNEL.capabilities.length(text) > limit:
            raise Refused(f"message is too long: {len(text)} characters, at most {limit}")

    async def send_text(self, chat_id: str, text: str, keyboard: Keyboard | None) -> int:
        self._fits(text)
        return await self._write(str(chat_id), "message", {
            "text": text, "lang": history.language_of(text), "dir": history.direction(text),
            "buttons": keyboard_json(keyboard)})

    async def edit(
        self, chat_id: str, message_id: int, text: str | None, keyboard: Keyboard | None
    ) -> None:
        if text is not None:
            self._fits(text)
        await self._write(str(chat_id), "edit", {"text": text,
                                                 "buttons": keyboard_json(keyboard)},
                          message_id=message_id)

    async def answer_press(self, callback_id: str, text: str | None) -> None:
        visitor_id, dot, _ = callback_id.partition(".")
        if not dot:
            raise Refused(f"not a web press: {callback_id!r}")
        if text is None:
            return  # nothing to show: the press is answered by what it changes
        await self._write(visitor_id, "notice", {"text": text})

    async def _file(self, chat_id: str, filename: str, content: bytes,
                    caption: str | None, media: str) -> None:
        try:  # a text file (/export's JSON) shows as text as well
            shown = "\n".join(filter(None, [caption, content.decode()]))
        except UnicodeDecodeError:
            shown = caption or filename
        if CHANNEL.capabilities.length(shown) > CHANNEL.capabilities.text_length:
            shown = caption or filename
        await self._write(str(chat_id), "message", {
            "text": shown, "lang": history.language_of(shown), "dir": history.direction(shown),
            "buttons": None,
            "file": {"name": filename, "type": media,
                     "data": base64.b64encode(content).decode()}})

    async def send_document(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None:
        media = "application/json" if filename.endswith(".json") else "application/octet-stream"
        await self._file(chat_id, filename, content, caption, media)

    async def send_photo(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None:
        await self._file(chat_id, filename, content, caption, "image/png")
