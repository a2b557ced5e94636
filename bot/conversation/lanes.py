"""One lane per chat: a chat's updates run one at a time, in the order they arrived; different
chats' updates run side by side, a bounded number at once.

Why lanes: Telegram allows about one message a second per chat, and a 429 is waited out
inside the update that got it (Controller's delivery). Handling every update in turn made
one person's flood stall everybody; in a lane, such a wait delays only that person.

Order within a chat is kept because `submit` is synchronous: the order of the calls is the
order of the work, whatever the work awaits. Each update is still one transaction of its own
(Controller commits an update's changes together with its processed-update row), so two
chats' updates interleaving changes nothing either would see.

Bounded: at most `concurrency` updates run at once (each holds database connections); a
chat's lane exists only while it has work, so idle chats cost nothing. How many updates wait
in lanes is bounded by whoever feeds them: getUpdates hands out at most 100, a webhook at
most Telegram's max_connections at once. Long polling asks for more only when nothing taken
waits for a place (`placed`): under load, each poll then brings a batch rather than the one
or two updates that came in since the last, and a poll costs a Bot API call and two writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["DEFAULT_CONCURRENCY", "ChatLanes", "wait_out"]

log = logging.getLogger(__name__)
# Below SQLAlchemy's default pool (5 + 10 overflow on PostgreSQL), with room for the
# follow-ups' sends, which use the same pool.
DEFAULT_CONCURRENCY = 8
Work = Callable[[], Awaitable[object]]


@dataclass(eq=False)
class _Slot:
    """The place among the `concurrency` that one running update holds."""

    lanes: ChatLanes
    held: bool = False

    async def take(self) -> None:
        lanes = self.lanes
        lanes.ready += 1
        try:
            await lanes._slots.acquire()
        finally:
            lanes._no_longer_ready()
        self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self.lanes._slots.release()


_CURRENT: ContextVar[_Slot | None] = ContextVar("sada_lane_slot", default=None)


async def wait_out(
    seconds: float, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
) -> bool:
    """Wait `seconds` (a 429's retry_after, a backoff) on behalf of the running update.

    Meanwhile its place goes to another chat's update: waiting needs no database. False when
    the lanes began to close during the wait, which is then cut short: stopping does not sit
    out a rate limit (the caller gives up that send; a question not shown is shown again on
    the next start). Outside a lane it just sleeps."""
    slot = _CURRENT.get()
    if slot is None:
        await sleep(seconds)
        return True
    lanes = slot.lanes
    if lanes.closing:
        return False
    slot.give_back()
    napping = asyncio.ensure_future(sleep(seconds))
    closing = asyncio.ensure_future(lanes._closing.wait())
    try:
        await asyncio.wait({napping, closing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        napping.cancel()
        closing.cancel()
    await slot.take()  # not when cancelled: the lane is ending and holds no place then
    return not lanes.closing


@dataclass(eq=False)
class _Item:
    work: Work
    done: asyncio.Future[bool]


class ChatLanes:
    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._lanes: dict[Hashable, deque[_Item]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self.running = 0
        self.peak = 0  # the most updates that ever ran at once (tests read it)
        self.ready = 0  # updates that could run now but wait for a place
        self._none_ready = asyncio.Event()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    @property
    def chats(self) -> int:
        """Chats with work running or waiting."""
        return len(self._lanes)

    async def placed(self) -> None:
        """Until no update waits for a place (or the lanes close). Work behind its own chat's
        running update does not count: it could not start anyway."""
        while self.ready and not self.closing:
            self._none_ready.clear()
            await self._none_ready.wait()

    def _no_longer_ready(self) -> None:
        self.ready -= 1
        if self.ready == 0:
            self._none_ready.set()

    def submit(self, chat: Hashable | None, work: Work) -> asyncio.Future[bool]:
        """Queue `work` behind the chat's earlier work.

        The future becomes True once the work ran (an exception it raises is logged here:
        the next update of the chat still runs), False if it never ran or was cancelled
        because the lanes closed. Without a chat there is no order to keep: a lane of its
        own."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.closing:
            done.set_result(False)
            return done
        key: Hashable = chat if chat is not None else object()
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
            self.ready += 1  # its first update, from now: the worker has not run yet
            worker = asyncio.create_task(self._drain(key, lane), name=f"sada-lane-{chat}")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        lane.append(_Item(work, done))
        return done

    async def _drain(self, key: Hashable, lane: deque[_Item]) -> None:
        slot = _Slot(self)
        self._no_longer_ready()  # submit counted the first update: take() counts it now
        try:
            while lane and not self.closing:
                item = lane[0]
                await slot.take()
                if self.closing:  # closed while this update waited for a place
                    break
                self.running += 1
                self.peak = max(self.peak, self.running)
                token = _CURRENT.set(slot)
                try:
                    await item.work()
                except Exception:
                    log.exception("an update failed")
                finally:
                    _CURRENT.reset(token)
                    self.running -= 1
                    slot.give_back()
                lane.popleft()
                _settle(item.done, True)
        finally:
            slot.give_back()
            # No await between the last look at `lane` and this: a submit() for this chat
            # either landed in `lane` (and is settled below) or will start a new lane.
            del self._lanes[key]
            for item in lane:
                _settle(item.done, False)

    async def close(self, grace: float) -> None:
        """Start nothing more (waiting work is settled False); give the running updates
        `grace` seconds to finish, then cancel them."""
        self._closing.set()
        self._none_ready.set()
        workers = set(self._workers)
        if not workers:
            return
        _, late = await asyncio.wait(workers, timeout=grace)
        if late:
            log.warning("%d update(s) still running %gs after the stop: cancelled (Telegram "
                        "delivers again those not yet applied)", len(late), grace)
            for worker in late:
                worker.cancel()
            await asyncio.wait(late)


def _settle(done: asyncio.Future[bool], ran: bool) -> None:
    if not done.done():  # a webhook request whose client went away cancels its future
        done.set_result(ran)
