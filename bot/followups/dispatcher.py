"""Sending what the outbox holds: claim due rows, send each through its channel's Transport,
record the outcome. Every process that runs the bot runs one Dispatcher; the claim keeps them
apart.

Each row names its channel. A dispatcher is given one transport per channel its process runs,
and keeps each channel's own limits: a rate limiter per channel, built from the channel's
declared capabilities, and a 429 pauses only the channel that answered it (a limit of one
chat, ChatRetryAfter, puts back only that row). Rows of a channel the process does not run
are never claimed, so they wait, attempts untouched, for a process that runs it.

On a channel with a messaging window, a row rendered outside it goes as the channel's
template (its transport is Templated); a free text the channel refuses as outside the window
after all is sent once more as the template within the same attempt.

Delivery is at-least-once, and the one gap is narrow on purpose. Telegram has no idempotency
key, so a worker killed after Telegram accepted a message but before ``mark_sent`` committed
leaves that row "sending"; when its lease ends another worker sends it again. Each send is
followed at once by its own ``mark_sent`` transaction (nothing batched in between), so a
crash duplicates at most the messages in flight: one per worker with the default
``concurrency=1``, at most ``concurrency`` otherwise. Nothing is ever lost: a row leaves
"sending" only by being marked sent, rescheduled or failed, or by its lease ending.

A send never outlives its lease: each waits for the rate limiter, then starts only if the
lease still has ``send_timeout`` left, and is cut off after ``send_timeout`` (counted as a
transient error, since the message may or may not have gone). So no other worker can take
over a row while this one may still be sending it, given clocks that agree (NTP) to within
the margin between ``send_timeout`` and ``lease``.

An attempt is counted when a send starts (``outbox.start_send``, committed just before the
transport call), not when a batch is claimed: rows a dead worker held but never sent come
back exactly as they were. :meth:`Dispatcher.stop` (SIGTERM) takes no new row, lets the
sends in flight finish (cut off after a grace period) and hands the rest of the batch back
to the queue in one transaction, so stopping takes about one send, not the whole queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import logs, metrics
from bot.clock import Clock, utc_now
from bot.followups.ratelimit import RateLimiter
from bot.followups.render import Fail, Flows, Message, Skip, TemplateMessage, render
from bot.followups.shared_rate import SharedRateLimiter, installed
from bot.messaging.registry import CHANNELS, Registry
from bot.messaging.transport import (
    Blocked,
    ChatRetryAfter,
    OutsideWindow,
    Refused,
    RetryAfter,
    Templated,
    Transient,
    Transport,
)
from storage import outbox
from storage.db import Database
from storage.models import Outbox

log = logging.getLogger(__name__)

# A 429 asking longer than this (WhatsApp's spam limit: an hour) re-queues its row instead
# of holding it claimed until its retry (Dispatcher._booked_retry).
LONGEST_BOOKED_RETRY = 30.0

Sleep = Callable[[float], Awaitable[None]]
Backoff = Callable[[int], timedelta]


def exponential_backoff(
    base: timedelta = timedelta(seconds=30), cap: timedelta = timedelta(minutes=30)
) -> Backoff:
    """Delay before retry number ``attempt`` (1, 2, …): base, 2×base, 4×base … up to cap."""

    def delay(attempt: int) -> timedelta:
        return min(base * (2 ** max(attempt - 1, 0)), cap)

    return delay


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class DispatchReport:
    """What one or more dispatch rounds did; reports add up with ``+``."""

    claimed: int = 0
    sent: int = 0
    rate_limited: int = 0  # 429s: rescheduled after retry_after, not counted as attempts
    retried: int = 0  # transient errors rescheduled with backoff
    failed: int = 0  # given up: refused, blocked, or out of attempts
    blocked: int = 0  # 403s among the failed
    cancelled: int = 0  # other queued messages cancelled because their chat blocked us
    skipped: int = 0  # cancelled when their turn came: their subject was gone (render.Skip)
    released: int = 0  # claimed but handed back unsent (a 429 pause, lease running out, stop)
    lost_lease: int = 0  # outcome not recorded: the lease had passed to another worker
    paused_until: datetime | None = None  # every channel paused until then (a 429)

    def __add__(self, other: DispatchReport) -> DispatchReport:
        total = DispatchReport()
        for f in fields(self):
            if f.name == "paused_until":
                continue
            setattr(total, f.name, getattr(self, f.name) + getattr(other, f.name))
        total.paused_until = other.paused_until or self.paused_until
        return total


class Dispatcher:
    """Claims due outbox rows of the channels it has transports for and sends them, in due
    order, each through its channel's transport within that channel's limits.

    ``transports`` maps a channel's name to its transport; ``limiters`` replaces the rate
    limiter of a channel (tests, the bench), the others follow the channel's declaration in
    ``registry``."""

    def __init__(
        self,
        database: Database,
        transports: Mapping[str, Transport],
        *,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
        limiters: Mapping[str, RateLimiter] | None = None,
        registry: Registry = CHANNELS,
        lease: timedelta = timedelta(seconds=60),
        batch: int = 50,
        max_attempts: int = 5,
        worker_id: str | None = None,
        concurrency: int = 1,
        send_timeout: timedelta | None = None,
        backoff: Backoff | None = None,
        flows: Flows | None = None,
        bot_usernames: Mapping[str, str] | None = None,
    ) -> None:
        if batch < 1 or concurrency < 1 or max_attempts < 1:
            raise ValueError("batch, concurrency and max_attempts must be at least 1")
        if not transports:
            raise ValueError("a dispatcher needs the transport of at least one channel")
        for name, transport in transports.items():
            if transport.channel != name:
                raise ValueError(f"the transport given for channel {name!r} sends on "
                                 f"{transport.channel!r}: key each transport by its channel")
        unknown = set(limiters or {}) - set(transports)
        if unknown:
            raise ValueError(f"rate limiters for channels without a transport: "
                             f"{', '.join(sorted(unknown))}")
        self.database = database
        self.transports = dict(transports)
        self.registry = registry
        # Held, not copied: flows the bot reloads are the ones messages are written from.
        self.flows: Flows = flows if flows is not None else {}
        self.bot_usernames: Mapping[str, str] = bot_usernames or {}
        self.clock = clock
        self.sleep = sleep
        given = limiters or {}
        # With PostgreSQL, `sada run` installs limiters shared by all its processes.
        self.limiters = {
            name: given[name] if name in given
            else installed(name) or RateLimiter.for_channel(registry.get(name).capabilities,
                                                            sleep=sleep)
            for name in self.transports
        }
        self.lease = lease
        self.batch = batch
        self.max_attempts = max_attempts
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency
        # Half the lease: the other half is the margin for slow commits and clock skew.
        self.send_timeout = send_timeout if send_timeout is not None else lease / 2
        if self.send_timeout >= lease:
            raise ValueError("send_timeout must be shorter than the lease")
        self.backoff = backoff or exponential_backoff()
        self._paused: dict[str, datetime] = {}  # channel -> end of its 429 pause
        self.stopping = False
        self._stop_at: float | None = None  # loop time by which sends in flight are cut off
        self._in_flight: set[asyncio.Timeout] = set()  # the time-outs of sends on the wire
        self._waiting: set[asyncio.Future[None]] = set()  # turns awaited from the limiter

    def stop(self, grace: float = 5.0) -> None:
        """Stop sending (SIGTERM): claim nothing more, start no new send, and hand the rest
        of the claimed batch back unsent. Sends already on the wire may finish for ``grace``
        seconds; then they are cut off like a time-out (the message may have gone: that
        attempt counts, and the row is retried later). Call from the dispatcher's loop."""
        self.stopping = True
        self._stop_at = asyncio.get_running_loop().time() + max(grace, 0.0)
        for timeout in self._in_flight:
            when = timeout.when()
            if not timeout.expired() and (when is None or when > self._stop_at):
                timeout.reschedule(self._stop_at)
        for turn in self._waiting:  # a wait for the limiter (maybe a long 429 pause)
            turn.cancel()

    def start(self) -> None:
        """Send again after :meth:`stop` (a dispatcher starts out sending)."""
        self.stopping = False
        self._stop_at = None

    @property
    def channels(self) -> frozenset[str]:
        """The channels this dispatcher sends on (and the only ones whose rows it claims)."""
        return frozenset(self.transports)

    def channel_paused_until(self, channel: str) -> datetime | None:
        """When a 429 pause of ``channel`` ends; None when it is not paused."""
        until = self._paused.get(channel)
        return until if until is not None and self.clock() < until else None

    def sending(self) -> frozenset[str]:
        """The channels not paused by a 429 right now."""
        return frozenset(c for c in self.transports if self.channel_paused_until(c) is None)

    @property
    def paused_until(self) -> datetime | None:
        """When every channel is paused: when the first of them may send again; else None."""
        ends = [self.channel_paused_until(c) for c in self.transports]
        if any(end is None for end in ends):
            return None
        return min(end for end in ends if end is not None)

    def paused(self) -> bool:
        """True when every channel is paused by a 429: nothing can be sent now."""
        return self.paused_until is not None

    def pause(self, channel: str, seconds: float) -> datetime:
        """Send nothing on `channel` for `seconds` (or longer, if already paused longer):
        for what the channel reports apart from a send, such as WhatsApp's spam limit in a
        status webhook. Returns when the pause ends."""
        if channel not in self.transports:
            return self.clock()
        return self._pause(channel, seconds)

    def _pause(self, channel: str, seconds: float, *, share: bool = True) -> datetime:
        until = self.clock() + timedelta(seconds=seconds)
        known = self._paused.get(channel)
        if known is None or until > known:
            self._paused[channel] = until
        if share:
            self.limiters[channel].pause(seconds)
        return self._paused[channel]

    async def run_once(self) -> DispatchReport:
        """Claim one batch of due messages and send them; return what happened."""
        report = DispatchReport()
        if self.stopping:
            return report
        if self.paused():
            report.paused_until = self.paused_until
            return report
        # Only channels that may send now: a paused channel's rows wait in the queue.
        rows = await outbox.claim_due(
            self.database, now=self.clock(), limit=self.batch, lease=self.lease,
            worker=self.worker_id, channels=self.sending(),
        )
        report.claimed = len(rows)
        if not rows:
            return report
        log.debug("%s claimed %d message(s)", self.worker_id, len(rows))
        unsent: list[Outbox] = []  # left when a stop came: released together at the end
        if self.concurrency == 1:
            pending = list(rows)
            while pending and not self.stopping:
                row = self._next(pending)
                await self._deliver(row, report)
            unsent = pending
        else:
            gate = asyncio.Semaphore(self.concurrency)
            # One task per chat, its rows one after another: a chat's messages arrive in due
            # order whatever the concurrency (and each send is awaited before the next).
            by_chat: dict[tuple[str, str], list[Outbox]] = {}
            for row in rows:
                by_chat.setdefault((row.channel, row.address), []).append(row)

            async def chat(queue: list[Outbox]) -> None:
                for row in queue:
                    async with gate:
                        if self.stopping:
                            unsent.append(row)
                        else:
                            await self._deliver(row, report)

            async with asyncio.TaskGroup() as group:
                for queue in by_chat.values():
                    group.create_task(chat(queue))
        if unsent:
            await self._release(unsent, report, "stopping")
        if self.paused():
            report.paused_until = self.paused_until
        return report

    def _next(self, pending: list[Outbox]) -> Outbox:
        """The earliest-due row whose chat may receive a message now; else the earliest.

        A chat that just got a message must wait a second; rather than hold the whole queue
        behind it, later rows for other chats go first. Rows of one chat keep their order
        (they share the same readiness, so the earliest of them is always picked first)."""
        for index, row in enumerate(pending):
            if self.limiters[row.channel].chat_wait(row.address) <= 0:
                return pending.pop(index)
        return pending.pop(0)

    def _lease_left(self, row: Outbox) -> timedelta:
        assert row.locked_until is not None
        return row.locked_until - self.clock()

    async def _release(self, rows: list[Outbox], report: DispatchReport, why: str) -> None:
        # Back to the queue as they were: neither a failure nor an attempt; a paused
        # channel's rows no earlier than its pause ends.
        by_channel: dict[str, list[Outbox]] = {}
        for row in rows:
            by_channel.setdefault(row.channel, []).append(row)
        released = 0
        for channel, group in by_channel.items():
            released += await outbox.release(
                self.database, group, not_before=self.channel_paused_until(channel)
            )
        report.released += released
        report.lost_lease += len(rows) - released
        log.debug("%s released %d message(s) unsent: %s", self.worker_id, released, why)

    async def _turn(self, row: Outbox) -> bool:
        """Wait for the go of the rate limiter of ``row``'s channel for its chat; False when a
        stop came first."""
        if self.stopping:
            return False
        return await self._until_stop(self.limiters[row.channel].acquire(row.address))

    async def _until_stop(self, waiting: Awaitable[None]) -> bool:
        """Wait for `waiting`; False when a stop came first."""
        turn = asyncio.ensure_future(waiting)
        self._waiting.add(turn)
        try:
            await asyncio.wait({turn})
        finally:
            self._waiting.discard(turn)
            turn.cancel()  # only does something when we are cancelled ourselves
        if turn.cancelled():
            return False
        turn.result()  # a bug in the limiter surfaces here
        return not self.stopping

    def _send_deadline(self) -> float:
        """When the send starting now is cut off, in loop time."""
        deadline = asyncio.get_running_loop().time() + self.send_timeout.total_seconds()
        return deadline if self._stop_at is None else min(deadline, self._stop_at)

    @logs.scoped
    async def _deliver(self, row: Outbox, report: DispatchReport) -> None:
        logs.bind(channel=row.channel, update_id=None, contact_id=row.contact_id,
                  session_id=None)
        if self.channel_paused_until(row.channel) is not None:
            await self._release([row], report, "paused by a rate limit")
            return
        if row.attempts >= self.max_attempts:
            # Sends started again and again without an outcome (workers dying during them).
            await self._fail(row, report, f"gave up after {row.attempts} attempts")
            return
        if not await self._turn(row):
            await self._release([row], report, "stopping")
            return
        if self.channel_paused_until(row.channel) is not None:  # a 429 came while we waited
            await self._release([row], report, "paused by a rate limit")
            return
        if self._lease_left(row) <= self.send_timeout:
            await self._release([row], report, "lease too short to send safely")
            return
        # Written now, not when planned: the contact's language and the subject as they are.
        message = await self._render(row, report)
        if message is None:
            return
        # Durable before the send: a crash from here on counts this attempt, and no earlier.
        attempts = await outbox.start_send(self.database, _id(row),
                                           claimed_until=row.locked_until)
        if attempts is None:
            report.lost_lease += 1
            return
        row.attempts = attempts
        # The at-least-once window opens here and closes when mark_sent commits.
        retried = False
        while True:
            try:
                async with asyncio.timeout_at(self._send_deadline()) as timeout:
                    self._in_flight.add(timeout)
                    try:
                        message_id = await self._send(row, message)
                    finally:
                        self._in_flight.discard(timeout)
            except ChatRetryAfter as exc:
                await self._chat_rate_limited(row, report, exc.seconds)
            except RetryAfter as exc:
                if not retried and await self._booked_retry(row, exc.seconds):
                    report.rate_limited += 1
                    retried = True
                    continue
                await self._rate_limited(row, report, exc.seconds)
            except Blocked as exc:
                await self._blocked(row, report, str(exc) or "blocked by the user")
            except Refused as exc:
                await self._fail(row, report, f"refused: {exc}")
            except (Transient, TimeoutError) as exc:
                await self._transient(row, report, str(exc) or type(exc).__name__)
            except Exception as exc:  # a bug in a transport must not stop the whole queue
                log.exception("unexpected error sending outbox message %s", row.id)
                await self._transient(row, report, f"{type(exc).__name__}: {exc}")
            else:
                if await outbox.mark_sent(self.database, _id(row), message_id, self.clock(),
                                          claimed_until=row.locked_until):
                    report.sent += 1
                else:
                    report.lost_lease += 1
                    log.warning("outbox message %s was sent but its lease had passed to "
                                "another worker: it may be delivered twice", row.id)
            return

    async def _booked_retry(self, row: Outbox, seconds: float) -> bool:
        """Under limits shared through the database, a 429 books the row's retry at once,
        behind a clear gap (SharedRateLimiter.retry), and this worker waits for it and sends
        again, the row still claimed: re-queued and booked later, by whichever worker, the
        retry could meet the channel's window full again. False: the 429 is handled as
        usual (the row re-queued, the channel paused)."""
        limiter = self.limiters.get(row.channel)
        if not isinstance(limiter, SharedRateLimiter) or self.stopping \
                or seconds > LONGEST_BOOKED_RETRY:
            return False
        wait = await limiter.retry(row.address, seconds)
        if wait is None or self._lease_left(row) <= timedelta(seconds=wait) + self.send_timeout:
            return False
        # The rest of this process's sends on the channel wait, as after any 429 (the
        # retry's booking paused the other processes).
        self._pause(row.channel, seconds, share=False)
        return await self._until_stop(self.sleep(wait))

    @metrics.counts_sends("outbox", lambda self, row, message: row.channel)
    async def _send(self, row: Outbox, message: Message) -> int:
        """Send the row's message: as its template when the person is outside the channel's
        window, else free-form, and once more as the template when the channel refuses it as
        outside the window after all (clock skew, or the window closed meanwhile)."""
        transport = self.transports[row.channel]
        if message.outside_window and message.template is not None:
            return await self._send_template(row, message.template)
        try:
            return await transport.send_text(row.address, message.text, message.keyboard)
        except OutsideWindow as exc:
            if message.template is None:
                if message.no_template is not None:
                    raise Refused(message.no_template) from exc
                raise
            log.info("outbox message %s (%s on %s) was outside the window: sending its "
                     "template", row.id, row.kind, row.channel)
            return await self._send_template(row, message.template)

    async def _send_template(self, row: Outbox, template: TemplateMessage) -> int:
        transport = self.transports[row.channel]
        if not isinstance(transport, Templated):
            raise Refused(f"the {row.channel} transport cannot send templates")
        sent = await transport.send_template(row.address, template.name, template.language,
                                             template.parameters, template.button)
        return sent.id

    def _templates(self, channel: str) -> Templated | None:
        transport = self.transports.get(channel)
        return transport if isinstance(transport, Templated) else None

    async def _render(self, row: Outbox, report: DispatchReport) -> Message | None:
        """The row's message, from reads that stand alone; None when the row was
        handled here instead (cancelled, rescheduled or failed)."""
        try:
            # Reads only, each standing alone (no BEGIN and COMMIT on PostgreSQL): a message
            # is written from what its rows say as it goes, not from one snapshot of them.
            async with self.database.glance() as conn, \
                    AsyncSession(bind=conn, expire_on_commit=False) as s:
                templated = self._templates(row.channel)
                rendered = await render(s, row, flows=self.flows, now=self.clock(),
                                        registry=self.registry,
                                        bot_usernames=self.bot_usernames,
                                        templates=templated.template if templated else None)
        except (DBAPIError, OSError) as exc:
            # The database, not the message: try again later, no attempt spent.
            log.warning("could not read what outbox message %s is about: %s", row.id, exc)
            due = self.clock() + self.backoff(row.attempts + 1)
            if not await outbox.reschedule(self.database, _id(row), due,
                                           f"render: {type(exc).__name__}: {exc}",
                                           claimed_until=row.locked_until):
                report.lost_lease += 1
            else:
                report.retried += 1
            return None
        except Exception as exc:  # a bug in rendering must not stop the whole queue
            log.exception("could not render outbox message %s", row.id)
            await self._fail(row, report, f"could not render it: {type(exc).__name__}: {exc}")
            return None
        if isinstance(rendered, Skip):
            if await outbox.mark_cancelled(self.database, _id(row), rendered.reason,
                                           claimed_until=row.locked_until):
                report.skipped += 1
                log.info("outbox message %s (%s on %s) cancelled: %s", row.id, row.kind,
                         row.channel, rendered.reason)
            else:
                report.lost_lease += 1
            return None
        if isinstance(rendered, Fail):  # not sendable as configured: no attempt spent
            await self._fail(row, report, rendered.reason)
            return None
        return rendered

    async def _rate_limited(self, row: Outbox, report: DispatchReport, seconds: float) -> None:
        # A 429 concerns the whole bot on this channel, not this message: everything of the
        # channel waits, nobody gives up; other channels go on.
        until = self._pause(row.channel, seconds)
        report.rate_limited += 1
        if not await outbox.reschedule(self.database, _id(row), until,
                                       f"429: retry after {seconds:g}s",
                                       claimed_until=row.locked_until, count_attempt=False):
            report.lost_lease += 1

    async def _chat_rate_limited(
        self, row: Outbox, report: DispatchReport, seconds: float
    ) -> None:
        # Too many messages to this one person (WhatsApp's pair rate): only this row waits,
        # the channel goes on sending to everyone else.
        report.rate_limited += 1
        if not await outbox.reschedule(self.database, _id(row),
                                       self.clock() + timedelta(seconds=seconds),
                                       f"rate limit for this chat: retry after {seconds:g}s",
                                       claimed_until=row.locked_until, count_attempt=False):
            report.lost_lease += 1

    async def _blocked(self, row: Outbox, report: DispatchReport, error: str) -> None:
        report.failed += 1
        report.blocked += 1
        report.cancelled += await outbox.mark_blocked(
            self.database, _id(row), f"403: {error}", self.clock(),
            channel=row.channel, claimed_until=row.locked_until,
        )

    async def _transient(self, row: Outbox, report: DispatchReport, error: str) -> None:
        if row.attempts >= self.max_attempts:
            await self._fail(row, report, f"{error} (after {row.attempts} attempts)")
            return
        due = self.clock() + self.backoff(row.attempts)
        if await outbox.reschedule(self.database, _id(row), due, error,
                                   claimed_until=row.locked_until):
            report.retried += 1
        else:
            report.lost_lease += 1

    async def _fail(self, row: Outbox, report: DispatchReport, error: str) -> None:
        if await outbox.mark_failed(self.database, _id(row), error, self.clock(),
                                    claimed_until=row.locked_until):
            report.failed += 1
            log.warning("outbox message %s (%s on %s) failed: %s", row.id, row.kind,
                        row.channel, error)
        else:
            report.lost_lease += 1


def _id(row: Outbox) -> int:
    assert row.id is not None
    return row.id


async def dispatch_until_idle(
    dispatcher: Dispatcher, *, follow_future: bool = False, max_rounds: int = 1_000_000
) -> DispatchReport:
    """Run rounds until nothing is due (tests, the bench, a one-off drain).

    With ``follow_future`` it also sleeps (through the dispatcher's sleep) until rows due
    later — retries, 429s, leases of a crashed worker — become due, and stops only when the
    outbox holds nothing queued or sending.
    """
    total = DispatchReport()
    for _ in range(max_rounds):
        if dispatcher.stopping:
            break
        if dispatcher.paused():
            assert dispatcher.paused_until is not None
            await dispatcher.sleep((dispatcher.paused_until - dispatcher.clock()).total_seconds())
            continue
        report = await dispatcher.run_once()
        total = total + report
        if report.claimed:
            continue
        if not follow_future:
            break
        wake = await outbox.next_wakeup(dispatcher.database, channels=dispatcher.channels)
        if wake is None:
            break
        # Past a lease end, claim_due needs now > locked_until: step just beyond it.
        wait = (wake - dispatcher.clock()).total_seconds() + 0.001
        await dispatcher.sleep(max(wait, 0.001))
    total.paused_until = dispatcher.paused_until if dispatcher.paused() else None
    return total
