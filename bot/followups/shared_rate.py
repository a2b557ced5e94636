"""Send limits shared by every process of one bot, kept in PostgreSQL.

One process paces its sends in memory (bot.followups.ratelimit.RateLimiter). N processes on
one database would each keep their own budget and together send N times too fast, so with
PostgreSQL every send reserves its time in the table ``send_rate`` instead: one row per
channel (the overall rate) and one per chat (the per-chat rate), each holding the GCRA
"theoretical arrival time" of the next message in seconds of the *database's* clock (the
processes' clocks never need to agree). A booking is one statement, a transaction of its own:

1. the chat's row is locked, made first if it is new (two processes sending to one chat
   queue here, briefly);
2. if the chat is not free yet, nothing is booked: the caller waits until it is and asks
   again (booking the channel's slot that far ahead would hold back every other chat);
3. else the channel's row moves on by one interval from the later of itself and now
   (INSERT … ON CONFLICT DO UPDATE … RETURNING): the send's time; and the chat's row is set
   one per-chat interval after it.

The caller then sleeps until its time, wherever it is (a lane gives its place to another
chat meanwhile: bot.conversation.lanes.wait_out). There is no leader to elect and nothing
to fail over: a process that dies holds no lock past its transaction, and a reservation it
made but never used only leaves one slot unused. A 429 moves the channel's row to
now + retry_after, so every process waits it out.

SQLite means one process (one writer): it keeps the in-memory limiter. :func:`install` is
called by `sada run` on PostgreSQL; the dispatcher (invitations, reminders, alerts,
follow-ups) and the replies (Controller's delivery) then pace through :func:`installed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from bot.followups.ratelimit import Chat, RateLimiter
from bot.messaging.capabilities import Capabilities
from storage.db import Database

__all__ = ["SharedRateLimiter", "install", "installed", "uninstall"]

log = logging.getLogger(__name__)

# A booking is made before the caller sleeps and sends; between processes on a busy machine
# the moments their requests reach the channel wander by a good part of a second from the
# booked ones (scheduling, the HTTP round trip). The channel counts what arrives: pace one
# message in ten below its overall rate, and a quarter second more apart within a chat.
SHARED_HEADROOM = 0.9
CHAT_MARGIN = 0.25

# A retry after a 429 has this much of the second before it kept free of other sends: the
# moments sends reach the channel wander from their bookings (above), and on a loaded machine
# by enough to fill the channel's window again; the retry must not meet a second 429.
RETRY_GAP = 0.5

# The longest per-chat spacing replies keep (with CHAT_MARGIN): see acquire_reply.
REPLY_CHAT_SPACING = 1.0 + CHAT_MARGIN

# Chats' rows older than this are deleted now and then: their next message may go at once.
_PRUNE_AFTER = 60.0
_PRUNE_EVERY = 60.0

_NOW = "extract(epoch from clock_timestamp())"
_CREATE_CHAT = text("INSERT INTO send_rate (key, tat) VALUES (:chat, 0) "
                    "ON CONFLICT (key) DO NOTHING")
_RESERVE = text(f"""
WITH c AS (
    SELECT tat AS chat_tat, {_NOW} AS now FROM send_rate WHERE key = :chat FOR UPDATE
), g AS (
    INSERT INTO send_rate (key, tat) SELECT :channel, c.now + :interval FROM c
    WHERE c.chat_tat <= c.now
    ON CONFLICT (key) DO UPDATE
        SET tat = GREATEST(send_rate.tat, (SELECT now FROM c)) + :interval
    RETURNING tat - :interval AS slot
), u AS (
    UPDATE send_rate SET tat = (SELECT slot FROM g) + :per_chat
    WHERE key = :chat AND EXISTS (SELECT 1 FROM g)
)
SELECT (SELECT slot FROM g) AS slot, c.chat_tat - c.now AS chat_wait, c.now FROM c
""")
_RESERVE_OVERALL = text(f"""
INSERT INTO send_rate (key, tat) VALUES (:channel, {_NOW} + :interval)
ON CONFLICT (key) DO UPDATE SET tat = GREATEST(send_rate.tat, {_NOW}) + :interval
RETURNING tat - :interval - {_NOW} AS wait
""")
_PAUSE = text(f"""
INSERT INTO send_rate (key, tat) VALUES (:channel, {_NOW} + :seconds)
ON CONFLICT (key) DO UPDATE SET tat = GREATEST(send_rate.tat, EXCLUDED.tat)
""")
# A message's retry after a 429, booked at once (SharedRateLimiter.retry): the channel waits
# the 429 out, then keeps RETRY_GAP free before the retry's slot; later bookings go after it.
_RETRY = text(f"""
WITH n AS (SELECT {_NOW} AS now),
c AS (SELECT tat AS chat_tat FROM send_rate WHERE key = :chat AND :chat_too FOR UPDATE),
g AS (
    INSERT INTO send_rate (key, tat)
    SELECT :channel, GREATEST(n.now + :seconds + :gap,
                              COALESCE((SELECT chat_tat FROM c), 0)) + :interval FROM n
    ON CONFLICT (key) DO UPDATE
        SET tat = GREATEST(GREATEST(send_rate.tat, (SELECT now FROM n) + :seconds) + :gap,
                           COALESCE((SELECT chat_tat FROM c), 0)) + :interval
    RETURNING tat - :interval AS slot
), u AS (
    INSERT INTO send_rate (key, tat) SELECT :chat, g.slot + :per_chat FROM g WHERE :chat_too
    ON CONFLICT (key) DO UPDATE SET tat = GREATEST(send_rate.tat, EXCLUDED.tat)
)
SELECT g.slot - n.now FROM g, n
""")
_PRUNE = text(f"DELETE FROM send_rate WHERE key LIKE :chats AND tat < {_NOW} - :age")


class SharedRateLimiter(RateLimiter):
    """A RateLimiter whose budget lives in PostgreSQL, shared with the other processes.

    ``rate`` and ``per_chat`` as RateLimiter's (messages a second overall; seconds between
    two messages to one chat). :meth:`book` tries to book a send; :meth:`acquire` books and
    sleeps until its time."""

    def __init__(self, database: Database, channel: str, *, rate: float, per_chat: float,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        super().__init__(rate=rate, per_chat=per_chat, sleep=sleep)
        self.database = database
        self.channel = channel
        self._last_prune = time.monotonic()

    @classmethod
    def for_capabilities(cls, database: Database, channel: str,
                         capabilities: Capabilities) -> SharedRateLimiter:
        return cls(database, channel,
                   rate=capabilities.messages_per_second * SHARED_HEADROOM,
                   per_chat=1.0 / capabilities.messages_per_chat_per_second + CHAT_MARGIN)

    def _chat_key(self, chat: Chat) -> str:
        return f"{self.channel}:{chat}"

    async def book(self, chat: Chat) -> tuple[float | None, float]:
        """Try to book the next send to `chat`. Its chat free now: the send's time on the
        database's clock (epoch seconds) and the seconds until it. Else (None, the seconds
        until the chat is free): nothing is booked, ask again then."""
        key = self._chat_key(chat)
        params = {"chat": key, "channel": self.channel, "interval": self._interval,
                  "per_chat": self.per_chat}
        async with self.database.alone() as conn:
            # Each statement a transaction of its own (Database.alone): _RESERVE's row lock
            # lasts for its one statement, which is all it needs. A chat spoken to within
            # the last minute has its row (one statement); a new one gets it first: _RESERVE
            # books nothing and returns no row without it.
            row = (await conn.execute(_RESERVE, params)).first()
            if row is None:
                await conn.execute(_CREATE_CHAT, {"chat": key})
                row = (await conn.execute(_RESERVE, params)).one()
            slot, chat_wait, now = row
        await self._prune()
        if slot is None:
            return None, max(float(chat_wait), 0.001)
        wait = max(float(slot) - float(now), 0.0)
        # What chat_wait() answers the dispatcher's pick of the next row (this process's view).
        self._chat_last[chat] = self.clock() + wait
        return float(slot), wait

    async def acquire(self, chat_id: Chat,
                      sleep: Callable[[float], Awaitable[object]] | None = None) -> None:
        """Wait until one more message to `chat_id` is within the limits of all processes
        (`sleep`: how to wait, by default this limiter's)."""
        nap = sleep or self.sleep
        # This process's own last booking for the chat says when the database would let the
        # next one go: waiting that out here first spares the booking that could only say
        # "not yet" (a step's edit follows its question by the chat's spacing). Another
        # process's booking meanwhile is still seen, by the database, below.
        mine = self.chat_wait(chat_id)
        if mine > 0:
            await nap(mine)
        while True:
            slot, wait = await self.book(chat_id)
            if wait > 0:
                await nap(wait)
            if slot is not None:
                return

    async def acquire_reply(self, chat_id: Chat,
                            sleep: Callable[[float], Awaitable[object]] | None = None) -> None:
        """Wait for a reply's turn: within the chat's spacing where the channel asks a second
        or less between messages to one chat (Telegram, Bale); where it asks more
        (WhatsApp's six seconds, which it lets a conversation's bursts exceed), within the
        overall rate only, or every step of a survey would wait that long."""
        if self.per_chat <= REPLY_CHAT_SPACING:
            await self.acquire(chat_id, sleep)
            return
        async with self.database.alone() as conn:
            wait = (await conn.execute(_RESERVE_OVERALL, {
                "channel": self.channel, "interval": self._interval})).scalar_one()
        if float(wait) > 0:
            await (sleep or self.sleep)(float(wait))

    async def retry(self, chat_id: Chat, seconds: float, *, reply: bool = False
                    ) -> float | None:
        """A message to `chat_id` met a 429 asking `seconds`: pause every process that long
        and book the message's retry now, RETRY_GAP after the pause and after what the
        others had booked already, so that the second before it is not full again. The
        seconds until the retry may go, without booking again; None when the database could
        not be asked (then: pause, wait and book as any send). `reply`: the chat's spacing
        as acquire_reply keeps it."""
        chat_too = not reply or self.per_chat <= REPLY_CHAT_SPACING
        try:
            async with self.database.alone() as conn:
                wait = (await conn.execute(_RETRY, {
                    "chat": self._chat_key(chat_id), "chat_too": chat_too,
                    "channel": self.channel, "seconds": seconds, "gap": RETRY_GAP,
                    "interval": self._interval, "per_chat": self.per_chat})).scalar_one()
        except Exception as exc:  # the database: the caller falls back to pause and book
            log.warning("could not book the retry of a message on %s: %s", self.channel, exc)
            return None
        wait = max(float(wait), 0.0)
        if chat_too:
            self._chat_last[chat_id] = self.clock() + wait
        return wait

    def chat_wait(self, chat_id: Chat) -> float:
        last = self._chat_last.get(chat_id)
        return 0.0 if last is None else max(0.0, last + self.per_chat - self.clock())

    def pause(self, seconds: float) -> None:
        """Every process waits `seconds` (a 429): written to the database in the background,
        and kept here at once."""
        super().pause(seconds)
        task = asyncio.get_running_loop().create_task(self.pause_all(seconds))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def pause_all(self, seconds: float) -> None:
        try:
            async with self.database.alone() as conn:
                await conn.execute(_PAUSE, {"channel": self.channel, "seconds": seconds})
        except Exception as exc:  # the pause is an optimisation; the next 429 says it again
            log.warning("could not share a %gs pause of %s: %s", seconds, self.channel, exc)

    async def _prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < _PRUNE_EVERY:
            return
        self._last_prune = now
        self._forget_idle()
        async with self.database.alone() as conn:
            await conn.execute(_PRUNE, {"chats": f"{self.channel}:%", "age": _PRUNE_AFTER})


_BACKGROUND: set[asyncio.Task[None]] = set()
_INSTALLED: dict[str, SharedRateLimiter] = {}


def install(database: Database, channels: dict[str, Capabilities]) -> bool:
    """Pace every send of these channels through the database, when it is PostgreSQL (on
    SQLite nothing changes: one process, its own limiter). True when installed."""
    if database.engine.dialect.name != "postgresql":
        return False
    for channel, capabilities in channels.items():
        _INSTALLED[channel] = SharedRateLimiter.for_capabilities(database, channel,
                                                                 capabilities)
    return True


def installed(channel: str) -> SharedRateLimiter | None:
    """The shared limiter of `channel` in this process, if `sada run` installed one."""
    return _INSTALLED.get(channel)


def uninstall() -> None:
    _INSTALLED.clear()
