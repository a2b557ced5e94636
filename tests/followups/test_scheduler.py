"""The APScheduler shell: job options, ticks that never overlap, planner hooks found by name,
and the service that dispatches what planners queue, surviving a restart.

Waiting here is for events ("the job ran", "the message arrived"), with generous time-outs
that only bound a broken run; no assertion depends on how long anything took."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import types
from datetime import datetime, timedelta

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import select

from bot.followups import scheduler as sched
from bot.followups.dispatcher import Dispatcher
from bot.followups.ratelimit import RateLimiter
from bot.followups.scheduler import (
    FollowupService,
    PlannerHook,
    build_scheduler,
    default_planners,
)
from bot.messaging.transport import RetryAfter
from storage import outbox
from storage.db import Database
from storage.models import Outbox
from tests.followups.outbox_fakes import FakeClock, RecordingTransport, unpaced

WAIT = 20.0  # seconds: only a broken run gets anywhere near this


async def _until(predicate: object, what: str) -> None:
    async def poll() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), WAIT)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_jobs_use_a_memory_store_coalesce_and_never_overlap() -> None:
    async def job(now: datetime) -> None: ...

    scheduler = build_scheduler([("dispatch", job, 1.0), ("plan", job, 60.0)])
    jobs = {j.id: j for j in scheduler.get_jobs()}
    assert set(jobs) == {"dispatch", "plan"}
    for job_id, interval, grace in [("dispatch", 1, 30), ("plan", 60, 120)]:
        found = jobs[job_id]
        assert (found.coalesce, found.max_instances, found.misfire_grace_time) == (
            True, 1, grace)
        assert isinstance(found.trigger, IntervalTrigger)
        assert found.trigger.interval == timedelta(seconds=interval)
    assert isinstance(scheduler._jobstores["default"], MemoryJobStore)  # never shared
    with pytest.raises(ValueError, match="unique"):
        build_scheduler([("a", job, 1.0), ("a", job, 2.0)])
    with pytest.raises(ValueError, match="must be positive"):
        build_scheduler([("a", job, 0)])


async def test_the_scheduler_calls_jobs_with_now_from_the_clock() -> None:
    clock = FakeClock()
    seen: list[datetime] = []

    async def job(now: datetime) -> None:
        seen.append(now)

    scheduler = build_scheduler([("tick", job, 0.05)], clock=clock.now)
    scheduler.start()
    try:
        await _until(lambda: len(seen) >= 2, "two ticks")
    finally:
        scheduler.shutdown(wait=False)
        await scheduler.drain()
    assert seen[0] == clock.now()


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_a_stop_between_a_tick_and_its_run_logs_nothing(
        caplog: pytest.LogCaptureFixture, turns: int) -> None:
    """A SIGTERM can land after APScheduler submitted a tick and before the tick ran (more
    likely on a busy loop): shutdown(wait=False) cancels it, which is no error to log."""
    async def job(now: datetime) -> None: ...

    scheduler = build_scheduler([("dispatch", job, 1.0), ("plan", job, 60.0)])
    scheduler.start()
    for _ in range(turns):
        await asyncio.sleep(0)
    scheduler.shutdown(wait=False)
    await scheduler.drain()
    for _ in range(3):
        await asyncio.sleep(0)  # the cancelled runs' callbacks
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_tick_skips_while_the_previous_run_is_still_going() -> None:
    release = asyncio.Event()
    runs = 0

    async def slow(now: datetime) -> None:
        nonlocal runs
        runs += 1
        await release.wait()

    scheduler = build_scheduler([("slow", slow, 3600)], first_run_now=False)
    ticker = scheduler.tickers["slow"]
    await ticker.tick()
    await asyncio.sleep(0)
    await ticker.tick()
    await ticker.tick()
    assert (runs, ticker.skipped) == (1, 2)
    release.set()
    await scheduler.drain()
    await ticker.tick()
    await scheduler.drain()
    assert runs == 2


async def test_a_failing_job_is_logged_and_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def broken(now: datetime) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("planner bug")

    scheduler = build_scheduler([("broken", broken, 3600)], first_run_now=False)
    for _ in range(2):
        await scheduler.tickers["broken"].tick()
        await scheduler.drain()
    assert calls == 2
    assert "follow-up job 'broken' failed" in caplog.text


def _fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: object) -> None:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


async def test_planner_hooks_are_found_by_name_and_optional(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[str, object, datetime, object]] = []

    async def plan_reminders(db: object, *, now: datetime, flows: object) -> None:
        calls.append(("reminders", db, now, flows))

    async def check_promises(db: object, *, now: datetime) -> None:
        calls.append(("promises", db, now, None))

    _fake_module(monkeypatch, "bot.followups.reminders", plan_reminders=plan_reminders)
    _fake_module(monkeypatch, "bot.followups.actions", check_promises=check_promises)
    db, flows, now = object(), {"f": "flow"}, datetime(2026, 1, 1)
    planners = default_planners(db, flows=flows)  # type: ignore[arg-type]
    assert [name for name, _ in planners] == ["reminders", "promises"]
    for _, planner in planners:
        await planner(now)
    assert calls == [("reminders", db, now, flows), ("promises", db, now, None)]

    monkeypatch.setattr(sched, "PLANNER_HOOKS", (
        PlannerHook("ghost", "bot.followups.no_such_planner", "plan", wants_flows=False),
        PlannerHook("nameless", "bot.followups.reminders", "no_such_function", False),
    ))
    assert default_planners(db) == []  # type: ignore[arg-type]
    assert "no_such_function" in caplog.text


async def test_the_service_dispatches_what_planners_queue_once_across_a_restart(
    database: Database,
) -> None:
    clock = FakeClock()
    transport = RecordingTransport(clock)
    planned: list[datetime] = []

    async def planner(now: datetime) -> None:
        # A planner as A and C write them: idempotent by key, so every tick may run it.
        planned.append(now)
        async with database.session() as s, s.begin():
            await outbox.enqueue(s, key="reminder:1:1", kind="reminder", address="5",
                                 contact_id=None, text="Still there?",
                                 due_at=now - timedelta(days=3), now=now, channel="telegram")

    async def broken(now: datetime) -> None:
        raise RuntimeError("another planner's bug")

    def service() -> FollowupService:
        dispatcher = Dispatcher(database, {"telegram": transport}, limiters={"telegram": unpaced()},
                                clock=clock.now)
        return FollowupService(database, {"telegram": transport}, clock=clock.now,
                               dispatcher=dispatcher,
                               planners=[("broken", broken), ("reminders", planner)],
                               dispatch_every=0.02, plan_every=0.02)

    async with service():
        await _until(lambda: transport.delivered and len(planned) >= 3,
                     "the reminder and three planning rounds")
    # "Restart": a new service on the same database plans the same reminder again.
    async with service():
        await _until(lambda: len(planned) >= 6, "three more planning rounds")
    assert transport.texts() == ["Still there?"]  # overdue by days, sent once
    summary = await outbox.status_summary(database, clock.now())
    assert summary.counts == {("reminder", "sent"): 1}


async def test_the_service_drains_a_backlog_larger_than_a_batch(database: Database) -> None:
    clock = FakeClock()
    transport = RecordingTransport(clock)
    async with database.session() as s, s.begin():
        for i in range(25):
            await outbox.enqueue(s, key=f"inv:{i}", kind="invitation", address=str(i),
                                 contact_id=None, text=f"hello {i}",
                                 due_at=clock.now(), now=clock.now(), channel="telegram")
    dispatcher = Dispatcher(database, {"telegram": transport}, limiters={"telegram": unpaced()},
                            clock=clock.now, batch=10)
    service = FollowupService(database, {"telegram": transport}, clock=clock.now,
                              dispatcher=dispatcher,
                              planners=[], dispatch_every=3600)
    await service.dispatch(clock.now())  # one tick: batch after batch until it runs dry
    assert len(transport.delivered) == 25
    await service.stop()  # never started: nothing to stop


# --- stopping (SIGTERM) under a full queue -----------------------------------------------------


class SlowTransport(RecordingTransport):
    """Each send takes ``delay`` real seconds (``None``: never answers)."""

    def __init__(self, clock: FakeClock, delay: float | None) -> None:
        super().__init__(clock)
        self.delay = delay
        self.started = 0

    async def send_text(self, chat_id: str, text: str, keyboard: object) -> int:
        self.started += 1
        if self.delay is None:
            await asyncio.Event().wait()
        await asyncio.sleep(self.delay or 0)
        return await super().send_text(chat_id, text, None)


async def _fill(database: Database, clock: FakeClock, count: int) -> None:
    async with database.session() as s, s.begin():
        for i in range(count):
            await outbox.enqueue(s, key=f"inv:{i}", kind="invitation", address=str(1000 + i),
                                 contact_id=None, text=f"m{i:04d}",
                                 due_at=clock.now(), now=clock.now(), channel="telegram")


async def _by_status(database: Database) -> dict[str, list[Outbox]]:
    async with database.session() as s, s.begin():
        rows = (await s.exec(select(Outbox))).all()
    grouped: dict[str, list[Outbox]] = {}
    for row in rows:
        grouped.setdefault(row.status, []).append(row)
    return grouped


async def _stop_timed(service: FollowupService) -> float:
    started = time.monotonic()
    # bounds a broken stop only (before the fix it drained the queue: minutes here)
    await asyncio.wait_for(service.stop(), WAIT)
    return time.monotonic() - started


async def test_stop_finishes_the_send_in_flight_and_gives_the_rest_back(
    database: Database,
) -> None:
    clock = FakeClock()
    transport = SlowTransport(clock, delay=0.2)
    await _fill(database, clock, 400)  # 80 s of sending at this pace, 10 s for a batch of 50
    dispatcher = Dispatcher(database, {"telegram": transport}, limiters={"telegram": unpaced()},
                            clock=clock.now, batch=50)
    service = FollowupService(database, {"telegram": transport}, clock=clock.now,
                              dispatcher=dispatcher,
                              planners=[], dispatch_every=0.02)
    service.start()
    await _until(lambda: len(transport.delivered) >= 5, "five messages sent")
    took = await _stop_timed(service)
    # far below finishing the batch in hand (10 s), with room for a busy machine
    assert took < 5.0, f"stopping took {took:.1f}s"
    rows = await _by_status(database)
    assert set(rows) == {"sent", "queued"}  # nothing left "sending", failed or lost
    assert len(rows["sent"]) + len(rows["queued"]) == 400
    assert sorted(r.text for r in rows["sent"]) == sorted(transport.texts())  # each once
    assert transport.started == len(transport.delivered)  # the one in flight finished
    assert {r.attempts for r in rows["queued"]} == {0}  # handed back untouched
    assert {r.locked_until for r in rows["queued"]} == {None}
    # the next start sends what was given back
    service.start()
    await _until(lambda: len(transport.delivered) > len(rows["sent"]), "sending again")
    await service.stop()


async def test_stop_cuts_off_a_hanging_send_after_the_grace_period(database: Database) -> None:
    clock = FakeClock()
    transport = SlowTransport(clock, delay=None)
    await _fill(database, clock, 3)
    dispatcher = Dispatcher(database, {"telegram": transport}, limiters={"telegram": unpaced()},
                            clock=clock.now)
    service = FollowupService(database, {"telegram": transport}, clock=clock.now,
                              dispatcher=dispatcher,
                              planners=[], dispatch_every=0.02, stop_grace=0.2)
    service.start()
    await _until(lambda: transport.started == 1, "a send on the wire")
    took = await _stop_timed(service)
    assert 0.15 < took < 1.0, f"stopping took {took:.1f}s"
    rows = await _by_status(database)
    assert list(rows) == ["queued"]
    # m0000 may have reached Telegram: retried later, and that attempt counts
    assert sorted((r.text, r.attempts, r.last_error) for r in rows["queued"]) == [
        ("m0000", 1, "TimeoutError"), ("m0001", 0, None), ("m0002", 0, None)]


async def test_stop_does_not_wait_out_a_rate_limit(database: Database) -> None:
    clock = FakeClock()
    transport = RecordingTransport(clock)
    await _fill(database, clock, 2)
    transport.fail(1000, RetryAfter(30))  # the first send: 429, retry after 30 s
    # one message a second: the second row is already waiting for its slot when the 429
    # comes, and the limiter then holds it for 30 s
    limiter = RateLimiter(rate=1, per_chat=0)
    dispatcher = Dispatcher(database, {"telegram": transport}, limiters={"telegram": limiter},
                            clock=clock.now,
                            concurrency=2)
    service = FollowupService(database, {"telegram": transport}, clock=clock.now,
                              dispatcher=dispatcher,
                              planners=[], dispatch_every=0.02)
    service.start()
    await _until(lambda: transport.attempts, "the 429")
    took = await _stop_timed(service)
    assert took < 1.0, f"stopping took {took:.1f}s"
    rows = await _by_status(database)
    assert list(rows) == ["queued"]
    assert sorted((r.text, r.attempts) for r in rows["queued"]) == [("m0000", 0), ("m0001", 0)]
