"""The clock of the follow-ups: APScheduler ticks that dispatch the outbox and run planners.

APScheduler only decides *when* to look; *what* is due lives in the database (the outbox,
invitations, actions). Its job store is therefore the in-memory one, never a shared one
(APScheduler's FAQ: a job store shared by several processes runs jobs twice or misses them),
and every process of the bot runs the same ticks: the outbox claim keeps them apart, and
planners are idempotent (outbox keys), so two processes planning the same reminder queue it
once. A restart, even after ``kill -9``, loses nothing: the next tick finds the same rows.
After downtime, an overdue reminder is one row whose time has passed: it is sent once, on
the first tick, not once per missed tick (and ``coalesce=True`` folds missed ticks into one).

Ticks never overlap and never pile up: each tick starts its work as a background task and
returns; a tick that finds the previous run still going skips (so APScheduler's
``max_instances`` warning never fires even when a drain takes longer than the interval).

Planner hooks (run every ``plan_every`` seconds, each with ``now`` from the clock), looked up
by name so this module works before, and without, the modules that provide them:

- ``bot.followups.reminders.plan_reminders(db, now=…, flows=…)`` — invitations' reminders and
  expiry;
- ``bot.followups.actions.check_promises(db, now=…)`` — follow-ups of recorded actions and
  alerts for promises past their date.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import Clock, utc_now
from bot.followups.dispatcher import Dispatcher
from bot.followups.webhooks import WebhookSender
from bot.messaging.transport import Transport
from storage.db import Database

log = logging.getLogger(__name__)

Job = Callable[[datetime], Awaitable[object]]
JobSpec = tuple[str, Job, float]  # (name, job, interval in seconds)


@dataclass(frozen=True)
class PlannerHook:
    name: str
    module: str
    function: str
    wants_flows: bool


PLANNER_HOOKS: tuple[PlannerHook, ...] = (
    PlannerHook("reminders", "bot.followups.reminders", "plan_reminders", wants_flows=True),
    PlannerHook("promises", "bot.followups.actions", "check_promises", wants_flows=False),
)


class _Ticker:
    """One job: each tick starts a run in the background unless the previous one is going."""

    def __init__(self, name: str, job: Job, clock: Clock) -> None:
        self.name = name
        self.job = job
        self.clock = clock
        self.task: asyncio.Task[None] | None = None
        self.runs = 0
        self.skipped = 0

    async def tick(self) -> None:
        if self.task is not None and not self.task.done():
            self.skipped += 1
            return
        self.task = asyncio.create_task(self._run(), name=f"sada-{self.name}")

    async def _run(self) -> None:
        self.runs += 1
        try:
            await self.job(self.clock())
        except Exception:
            # Log and carry on: the work is in the database and the next tick retries it.
            log.exception("follow-up job %r failed; it runs again on the next tick", self.name)

    async def wait(self) -> None:
        if self.task is not None:
            with suppress(asyncio.CancelledError):
                await self.task


class _TickExecutor(AsyncIOExecutor):
    """APScheduler's asyncio executor, except that a tick cancelled by a stop is no error.
    shutdown(wait=False) cancels the ticks it submitted that have not run yet (a SIGTERM on a
    busy loop lands there), and the stock executor logs each one with a traceback."""

    def _run_job_error(self, job_id: str, exc: BaseException, traceback: Any = None) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self._run_job_success(job_id, [])  # the instance count, without an error
            return
        super()._run_job_error(job_id, exc, traceback)


class FollowupScheduler(AsyncIOScheduler):
    """An AsyncIOScheduler that also knows its tickers, to wait for their last runs."""

    def __init__(self, tickers: Sequence[_Ticker], **options: Any) -> None:
        super().__init__(**options)
        self.tickers = {t.name: t for t in tickers}

    async def drain(self) -> None:
        """Wait for runs still going (a batch being sent finishes and records its outcome)."""
        for ticker in self.tickers.values():
            await ticker.wait()


def build_scheduler(
    jobs: Sequence[JobSpec], *, clock: Clock = utc_now, first_run_now: bool = True
) -> FollowupScheduler:
    """An AsyncIOScheduler (memory job store) running each job every ``interval`` seconds.

    Each job is called with ``now=clock()``. ``coalesce=True`` and ``max_instances=1``: ticks
    missed while the event loop was busy or the machine asleep run once, late, not in a
    burst. A tick later than its grace time (twice the interval, at least 30 s) is dropped;
    the next one comes within an interval and finds the same work in the database.
    """
    # APScheduler logs two INFO lines per run: with a 1-second tick that buries the bot's log.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    names = [name for name, _, _ in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"job names must be unique, got {names}")
    tickers = [_Ticker(name, job, clock) for name, job, _ in jobs]
    # Explicitly in memory: a persistent store shared by processes runs jobs twice.
    scheduler = FollowupScheduler(tickers, timezone=UTC,
                                  jobstores={"default": MemoryJobStore()},
                                  executors={"default": _TickExecutor()})
    for ticker, (name, _, interval) in zip(tickers, jobs, strict=True):
        if interval <= 0:
            raise ValueError(f"job {name!r}: the interval must be positive, not {interval}")
        options: dict[str, Any] = {}
        if first_run_now:
            # Straight after a (re)start: catch up at once rather than an interval later.
            # APScheduler's trigger runs on its own wall clock, whatever `clock` says.
            options["next_run_time"] = datetime.now(UTC)
        scheduler.add_job(
            ticker.tick,
            IntervalTrigger(seconds=interval, timezone=UTC),
            id=name,
            name=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(int(2 * interval), 30),
            replace_existing=True,
            **options,
        )
    return scheduler


def default_planners(database: Database, *, flows: object = None) -> list[tuple[str, Job]]:
    """The planner hooks that exist in this installation, bound to ``database``."""
    planners: list[tuple[str, Job]] = []
    for hook in PLANNER_HOOKS:
        try:
            module = importlib.import_module(hook.module)
        except ModuleNotFoundError as exc:
            if exc.name != hook.module:
                raise  # the module exists but one of its own imports is missing: a real bug
            log.info("follow-up planner %s: %s is not installed, skipped", hook.name, hook.module)
            continue
        function = getattr(module, hook.function, None)
        if function is None:
            log.warning("follow-up planner %s: %s has no %s(), skipped", hook.name,
                        hook.module, hook.function)
            continue
        planners.append((hook.name, _bind(function, database, flows if hook.wants_flows
                                          else _NO_FLOWS)))
    return planners


_NO_FLOWS = object()


def _bind(function: Callable[..., Awaitable[object]], database: Database, flows: object) -> Job:
    async def planner(now: datetime) -> object:
        if flows is _NO_FLOWS:
            return await function(database, now=now)
        return await function(database, now=now, flows=flows)

    return planner


class FollowupService:
    """What `sada run` starts next to the bot: dispatching every second, planning every minute.

        async with FollowupService(database, {transport.channel: transport}, flows=flows):
            ...  # serve the bot

    ``transports`` holds the transport of each channel the process runs (by channel name):
    the outbox rows of those channels are sent, the others left for a process that runs them.

    ``planners`` defaults to :func:`default_planners`; ``flows`` is handed to the planners
    that want it (``plan_reminders``) and to the dispatcher it builds, which writes each
    message from them when it sends it; ``bot_usernames`` (channel -> the bot's username)
    puts the link to the bot into invitations on channels without buttons.
    """

    def __init__(
        self,
        database: Database,
        transports: Mapping[str, Transport],
        *,
        flows: object = None,
        clock: Clock = utc_now,
        dispatcher: Dispatcher | None = None,
        planners: Sequence[tuple[str, Job]] | None = None,
        dispatch_every: float = 1.0,
        plan_every: float = 60.0,
        stop_grace: float = 5.0,
        bot_usernames: Mapping[str, str] | None = None,
        webhooks: WebhookSender | None = None,
        webhook_every: float = 5.0,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self.database = database
        self.clock = clock
        self.dispatcher = dispatcher or Dispatcher(
            database, transports, clock=clock,
            flows=flows if isinstance(flows, Mapping) else None, bot_usernames=bot_usernames,
            lease=lease)
        self.planners = list(planners) if planners is not None else default_planners(
            database, flows=flows
        )
        self.dispatch_every = dispatch_every
        self.plan_every = plan_every
        # How long stop() lets a send already on the wire finish: well inside the 10 s a
        # service manager commonly gives between SIGTERM and SIGKILL.
        self.stop_grace = stop_grace
        # outgoing webhooks (storage.webhooks): their own queue, POSTed every few seconds
        self.webhooks = webhooks or WebhookSender(database, clock=clock)
        self.webhook_every = webhook_every
        self.scheduler: FollowupScheduler | None = None

    async def dispatch(self, now: datetime) -> None:
        """Send everything due: batch after batch while full batches keep coming."""
        while True:
            report = await self.dispatcher.run_once()
            if report.sent or report.failed or report.skipped:
                log.info("outbox: %d sent, %d failed, %d retried, %d rate-limited, %d "
                         "cancelled (subject gone)", report.sent, report.failed,
                         report.retried, report.rate_limited, report.skipped)
            if (report.claimed < self.dispatcher.batch or self.dispatcher.paused()
                    or self.dispatcher.stopping):
                return

    async def plan(self, now: datetime) -> None:
        """Run every planner; one failing does not keep the others from running."""
        for name, planner in self.planners:
            try:
                await planner(now)
            except Exception:
                log.exception("follow-up planner %r failed; it runs again in %gs", name,
                              self.plan_every)

    async def deliver_webhooks(self, now: datetime) -> None:
        """POST the webhook events due, round after round while full rounds keep coming."""
        report = await self.webhooks.drain()
        if report.delivered or report.retried:
            log.info("webhooks: %d delivered, %d to retry, %d subscriptions disabled",
                     report.delivered, report.retried, report.disabled)

    def start(self) -> FollowupScheduler:
        """Start the ticks (call inside the running event loop)."""
        if self.scheduler is not None:
            raise RuntimeError("the follow-up service is already running")
        self.dispatcher.start()  # after a stop(), the same service may start again
        self.webhooks.start()
        jobs: list[JobSpec] = [("dispatch", self.dispatch, self.dispatch_every),
                               ("webhooks", self.deliver_webhooks, self.webhook_every)]
        if self.planners:
            jobs.append(("plan", self.plan, self.plan_every))
        self.scheduler = build_scheduler(jobs, clock=self.clock)
        self.scheduler.start()
        log.info("follow-ups: dispatching every %gs, planning every %gs (%s)",
                 self.dispatch_every, self.plan_every,
                 ", ".join(name for name, _ in self.planners) or "no planners installed")
        return self.scheduler

    async def stop(self) -> None:
        """Stop ticking, finish the sends in flight and give the rest back to the queue.

        Not a drain: with thousands of messages due, sending them all at Telegram's pace
        would outlast any service manager's stop timeout (and its SIGKILL then cuts a send
        off anyway). The dispatcher starts no new send; those on the wire get ``stop_grace``
        seconds; the rest of the claimed batch goes back unsent, attempts unchanged, for the
        next start. A planner run in progress finishes (it only writes rows)."""
        if self.scheduler is None:
            return
        scheduler, self.scheduler = self.scheduler, None
        scheduler.shutdown(wait=False)
        self.dispatcher.stop(self.stop_grace)
        await self.webhooks.stop(self.stop_grace)
        await scheduler.drain()
        await self.webhooks.close()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


__all__ = [
    "PLANNER_HOOKS",
    "FollowupScheduler",
    "FollowupService",
    "Job",
    "JobSpec",
    "PlannerHook",
    "build_scheduler",
    "default_planners",
]
