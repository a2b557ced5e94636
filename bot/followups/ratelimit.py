"""Pacing outgoing messages under a channel's send limits, which the channel declares in its
capabilities (bot.messaging.capabilities): on Telegram about 30 messages a second overall and
about one a second to any one chat (Telegram's bot FAQ; beyond them it answers 429).

Global pacing is a token bucket kept as a "theoretical arrival time" (the GCRA form): each
caller reserves the next free slot synchronously, then sleeps until it, so concurrent callers
never race for tokens and no lock is needed. A small burst lets the first few messages after
a quiet spell go at once; after that they are spaced 1/rate apart. Messages to one chat
queue behind each other (FIFO) and each waits until `per_chat` seconds after the slot of the
previous one, without holding up messages to other chats.

A 429 is the channel's verdict on the whole bot, so :meth:`RateLimiter.pause` stops every
caller until `retry_after` has passed. Clock and sleep are injected: tests run on virtual
time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bot.messaging.capabilities import Capabilities

MonotonicClock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# A chat as the limiter knows it: an outbox address (text); plain ints in older callers.
Chat = str | int

# The channel counts on its side of the network, where latency jitter can bunch our evenly
# spaced requests together: pace one message in thirty below its ceiling (29/s on Telegram).
HEADROOM = 29 / 30


class RateLimiter:
    """Global token bucket plus per-chat spacing; ``await acquire(chat_id)`` before each send.

    ``rate``: messages per second overall; ``per_chat``: seconds between two messages to the
    same chat; ``burst``: how many may go back to back after a quiet spell (1 means strictly
    evenly spaced). :meth:`for_channel` takes the first two from a channel's capabilities.
    """

    def __init__(
        self,
        *,
        rate: float,
        per_chat: float,
        burst: int = 1,
        clock: MonotonicClock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be a positive number of messages per second, not {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        if per_chat < 0:
            raise ValueError(f"per_chat must be zero or more seconds, not {per_chat}")
        self.rate = rate
        self.burst = burst
        self.per_chat = per_chat
        self.clock = clock
        self.sleep = sleep
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._tat: float | None = None  # theoretical arrival time of the next message
        self._paused_until = 0.0
        self._chat_locks: dict[Chat, asyncio.Lock] = {}
        self._chat_last: dict[Chat, float] = {}  # slot of the last message to each chat
        self._chat_users: dict[Chat, int] = {}  # callers inside acquire(), per chat

    @classmethod
    def for_channel(
        cls,
        capabilities: Capabilities,
        *,
        processes: int = 1,
        burst: int = 1,
        clock: MonotonicClock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> RateLimiter:
        """Within the channel's declared rates, with HEADROOM. The limiter is per process:
        ``processes`` sending for the same bot share its overall rate."""
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        return cls(
            rate=capabilities.messages_per_second * HEADROOM / processes,
            per_chat=1.0 / capabilities.messages_per_chat_per_second,
            burst=burst, clock=clock, sleep=sleep,
        )

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def chat_wait(self, chat_id: Chat) -> float:
        """Seconds until ``chat_id`` may get its next message (0: now), ignoring the rest."""
        if chat_id in self._chat_users:
            return self.per_chat  # someone is already waiting for this chat
        last = self._chat_last.get(chat_id)
        return 0.0 if last is None else max(0.0, last + self.per_chat - self.clock())

    def pause(self, seconds: float) -> None:
        """Nobody sends for ``seconds`` from now (a 429's retry_after); pauses only extend."""
        self._paused_until = max(self._paused_until, self.clock() + max(seconds, 0.0))

    def _reserve(self) -> float:
        """The next global slot, reserved now (no await between reading and writing)."""
        now = self.clock()
        tat = now if self._tat is None else max(self._tat, now)
        slot = max(now, tat - self._tolerance, self._paused_until)
        self._tat = max(tat, slot) + self._interval
        return slot

    async def _global(self) -> float:
        while True:
            slot = self._reserve()
            wait = slot - self.clock()
            if wait > 0:
                await self.sleep(wait)
            # A 429 that arrived while we slept moves everyone back: reserve again.
            if self.clock() >= self._paused_until:
                return slot

    async def acquire(self, chat_id: Chat) -> None:
        """Wait until one more message, to ``chat_id``, is within the limits."""
        lock = self._chat_locks.setdefault(chat_id, asyncio.Lock())
        self._chat_users[chat_id] = self._chat_users.get(chat_id, 0) + 1
        try:
            async with lock:
                last = self._chat_last.get(chat_id)
                if last is not None:
                    wait = last + self.per_chat - self.clock()
                    if wait > 0:
                        await self.sleep(wait)
                slot = await self._global()
                self._chat_last[chat_id] = max(slot, self.clock())
        finally:
            self._chat_users[chat_id] -= 1
            if not self._chat_users[chat_id]:
                del self._chat_users[chat_id]
        self._forget_idle()

    def _forget_idle(self) -> None:
        # Keep memory bounded over millions of chats: a chat nobody is waiting for, past its
        # spacing, needs no entry (its next message may go at once anyway).
        if len(self._chat_last) < 4096:
            return
        horizon = self.clock() - self.per_chat
        for chat, last in list(self._chat_last.items()):
            if last < horizon and chat not in self._chat_users:
                del self._chat_last[chat]
                self._chat_locks.pop(chat, None)
