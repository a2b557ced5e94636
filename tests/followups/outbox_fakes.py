"""Test doubles for the outbox and dispatcher: a controllable clock, a recording Transport,
and an event loop that runs on virtual time (for code that only sleeps, never does I/O)."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bot.followups.ratelimit import RateLimiter
from bot.messaging.transport import Keyboard

T = TypeVar("T")
EPOCH = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


def unpaced() -> RateLimiter:
    """A limiter that never waits, for tests that are not about pacing."""
    return RateLimiter(rate=1e9, burst=10**6, per_chat=0)


class FakeClock:
    """Wall clock (aware UTC) and monotonic clock in one; ``sleep`` advances both at once.

    Exact for code that sleeps one task at a time (the dispatcher with concurrency 1)."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self.at = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return (self.at - EPOCH).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds > 0:
            self.at += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@dataclass
class Delivery:
    chat_id: str  # the outbox address
    text: str
    keyboard: Keyboard | None
    at: datetime
    message_id: int


@dataclass
class RecordingTransport:
    """A Transport that records every send; ``fail(chat, exc, times)`` scripts errors."""

    clock: FakeClock
    channel: str = "telegram"
    delivered: list[Delivery] = field(default_factory=list)
    attempts: list[tuple[str, str, datetime]] = field(default_factory=list)
    scripted: dict[str, list[BaseException]] = field(default_factory=dict)
    next_id: int = 100

    def fail(self, chat_id: int | str, error: BaseException, times: int = 1) -> None:
        self.scripted.setdefault(str(chat_id), []).extend([error] * times)

    def texts(self, chat_id: int | str | None = None) -> list[str]:
        wanted = None if chat_id is None else str(chat_id)
        return [d.text for d in self.delivered if wanted in (None, d.chat_id)]

    async def send_text(self, chat_id: str, text: str, keyboard: Keyboard | None) -> int:
        self.attempts.append((chat_id, text, self.clock.now()))
        queue = self.scripted.get(chat_id)
        if queue:
            raise queue.pop(0)
        self.next_id += 1
        self.delivered.append(Delivery(chat_id, text, keyboard, self.clock.now(), self.next_id))
        return self.next_id

    async def edit(
        self, chat_id: str, message_id: int, text: str | None, keyboard: Keyboard | None
    ) -> None:
        raise AssertionError("the dispatcher never edits")

    async def answer_press(self, callback_id: str, text: str | None) -> None:
        raise AssertionError("the dispatcher never answers presses")

    async def send_document(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None:
        raise AssertionError("the dispatcher never sends documents")

    async def send_photo(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None:
        raise AssertionError("the dispatcher never sends photos")


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks: a wait for the next timer jumps virtual time forward instead."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("virtual time: every task is waiting and no timer is set")
        assert self.loop is not None
        self.loop.virtual_now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """asyncio on virtual time: ``asyncio.sleep(100)`` returns at once with ``time()`` 100 s
    later, and concurrent sleepers wake in deadline order, exactly as on a real clock."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self.virtual_now = 0.0

    def time(self) -> float:
        return self.virtual_now


def run_virtual(main: Callable[[VirtualTimeLoop], Awaitable[T]]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.close()


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events in any half-open window [t, t + window) (small float slack)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window + 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


def min_gap_per_chat(sends: Sequence[tuple[int | str, float]]) -> float:
    """The shortest time between two sends to the same chat (inf if none repeats)."""
    last: dict[int | str, float] = {}
    gap = float("inf")
    for chat, t in sorted(sends, key=lambda s: s[1]):
        if chat in last:
            gap = min(gap, t - last[chat])
        last[chat] = t
    return gap


async def rendered(
    database: Any, row: Any, flows: Any = None, *, registry: Any = None,
    bot_usernames: Any = None,
) -> Any:
    """What the dispatcher would send for ``row`` now: a render.Message, or a render.Skip."""
    from bot.followups.render import render
    from bot.messaging.registry import CHANNELS

    async with database.session() as s, s.begin():
        return await render(s, row, flows=flows or {}, now=row.due_at,
                            registry=registry or CHANNELS, bot_usernames=bot_usernames)


async def rendered_text(database: Any, row: Any, flows: Any = None) -> str:
    """The text the dispatcher would send for ``row`` now (fails on a Skip)."""
    from bot.followups.render import Message

    message = await rendered(database, row, flows)
    assert isinstance(message, Message), message
    return message.text
