"""The dispatcher with a controllable clock and a recording Transport (no network), on
SQLite and PostgreSQL; the rate limiter on virtual time."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import datetime, timedelta
from typing import cast

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from bot.channels.telegram.channel import CHANNEL as TELEGRAM
from bot.followups.dispatcher import Dispatcher, DispatchReport, dispatch_until_idle
from bot.followups.ratelimit import RateLimiter
from bot.followups.shared_rate import RETRY_GAP, SharedRateLimiter
from bot.messaging.capabilities import Capabilities
from bot.messaging.registry import Channel, Registry
from bot.messaging.transport import Blocked, ChatRetryAfter, Refused, RetryAfter, Transient
from storage import outbox
from storage.db import Database
from storage.models import Contact, Outbox
from storage.repo import Store
from tests.bookings import count_bookings
from tests.followups.outbox_fakes import (
    FakeClock,
    RecordingTransport,
    VirtualTimeLoop,
    max_in_window,
    min_gap_per_chat,
    run_virtual,
    unpaced,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transport(clock: FakeClock) -> RecordingTransport:
    return RecordingTransport(clock)


def _dispatcher(
    database: Database, transport: RecordingTransport, clock: FakeClock, **kwargs: object
) -> Dispatcher:
    limiter = kwargs.pop("limiter", None) or RateLimiter.for_channel(
        TELEGRAM.capabilities, clock=clock.monotonic, sleep=clock.sleep
    )
    return Dispatcher(database, {"telegram": transport}, clock=clock.now, sleep=clock.sleep,
                      limiters={"telegram": limiter},  # type: ignore[dict-item]
                      worker_id="test", **kwargs)  # type: ignore[arg-type]


async def _queue(
    db: Database, clock: FakeClock, key: str, *, chat_id: int = 1, kind: str = "invitation",
    contact_id: int | None = None, due: datetime | None = None, text: str | None = None,
    channel: str = "telegram",
) -> None:
    async with db.session() as s, s.begin():
        assert await outbox.enqueue(
            s, key=key, kind=kind, channel=channel, address=str(chat_id), contact_id=contact_id,
            text=text or key, due_at=due or clock.now(), now=clock.now(),
        )


async def _rows(db: Database) -> dict[str, Outbox]:
    async with db.session() as s, s.begin():
        return {r.key: r for r in (await s.exec(select(Outbox))).all()}


async def test_sends_due_messages_in_due_order(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    now = clock.now()
    await _queue(database, clock, "late", chat_id=3, due=now - timedelta(minutes=1))
    await _queue(database, clock, "early", chat_id=2, due=now - timedelta(hours=1))
    await _queue(database, clock, "future", chat_id=4, due=now + timedelta(hours=1))
    report = await _dispatcher(database, transport, clock).run_once()
    assert (report.claimed, report.sent, report.failed) == (2, 2, 0)
    assert transport.texts() == ["early", "late"]
    assert [d.keyboard for d in transport.delivered] == [None, None]  # free texts
    rows = await _rows(database)
    assert rows["early"].status == "sent"
    assert rows["early"].message_id == transport.delivered[0].message_id
    assert rows["early"].sent_at == transport.delivered[0].at
    assert rows["future"].status == "queued"


async def test_429_waits_retry_after_and_is_not_a_failure(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    start = clock.now()
    for i in range(3):
        await _queue(database, clock, f"m{i}", chat_id=10 + i)
    transport.fail(10, RetryAfter(7))
    dispatcher = _dispatcher(database, transport, clock, max_attempts=1)
    report = await dispatcher.run_once()
    # The 429 is global: nothing else went out, the batch went back to the queue.
    assert (report.rate_limited, report.released, report.sent, report.failed) == (1, 2, 0, 0)
    assert report.paused_until == start + timedelta(seconds=7)
    rows = await _rows(database)
    assert {k: (r.status, r.attempts) for k, r in rows.items()} == {
        "m0": ("queued", 0), "m1": ("queued", 0), "m2": ("queued", 0)}
    assert rows["m0"].due_at == start + timedelta(seconds=7)
    assert rows["m0"].last_error == "429: retry after 7s"
    # Still paused: a round does nothing, not even a claim.
    clock.advance(seconds=6)
    assert (await dispatcher.run_once()).claimed == 0
    clock.advance(seconds=1)
    report = await dispatch_until_idle(dispatcher)
    assert report.sent == 3 and report.failed == 0
    assert sorted(transport.texts()) == ["m0", "m1", "m2"]
    # max_attempts=1, yet the message was not given up: a 429 is not an attempt
    assert [r.attempts for r in (await _rows(database)).values()] == [1, 1, 1]


async def test_under_shared_limits_a_429_is_sent_again_at_the_time_it_booked(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    # several processes on PostgreSQL: the retry is booked with the 429's pause, behind a
    # clear gap (SharedRateLimiter.retry), and sent by this worker, the row still claimed,
    # not re-queued to be booked again later into a window as full as the first
    if database.engine.dialect.name != "postgresql":
        pytest.skip("shared limits live in PostgreSQL; SQLite is one process")
    limiter = SharedRateLimiter(database, "telegram", rate=1000, per_chat=0.001,
                                sleep=clock.sleep)
    booked = count_bookings(limiter)
    await _queue(database, clock, "m0", chat_id=10)
    transport.fail(10, RetryAfter(1))
    dispatcher = _dispatcher(database, transport, clock, limiter=limiter, max_attempts=1)
    report = await dispatcher.run_once()
    assert (report.rate_limited, report.sent, report.released, report.failed) == (1, 1, 0, 0)
    assert transport.texts() == ["m0"] and len(transport.attempts) == 2
    assert booked == ["10"]  # the first send's booking; the retry's came with the 429
    assert max(clock.slept) >= 1 + RETRY_GAP - 0.05, clock.slept
    rows = await _rows(database)
    assert (rows["m0"].status, rows["m0"].attempts) == ("sent", 1)


async def test_403_marks_the_contact_unreachable_and_cancels_its_queue(
    database: Database, store: Store, clock: FakeClock, transport: RecordingTransport
) -> None:
    now = clock.now()
    ann = await store.upsert_contact("telegram", "21", name="Ann", now=now)
    bob = await store.upsert_contact("telegram", "22", name="Bob", now=now)
    await _queue(database, clock, "ann-inv", chat_id=21, contact_id=ann.id)
    await _queue(database, clock, "bob-inv", chat_id=22, contact_id=bob.id)
    await _queue(database, clock, "ann-rem", kind="reminder", chat_id=21, contact_id=ann.id,
                 due=now + timedelta(days=2))
    await _queue(database, clock, "ann-fu", kind="followup", chat_id=21, contact_id=ann.id,
                 due=now + timedelta(days=5))
    transport.fail(21, Blocked("Forbidden: bot was blocked by the user"))
    report = await _dispatcher(database, transport, clock).run_once()
    assert (report.sent, report.failed, report.blocked, report.cancelled) == (1, 1, 1, 2)
    rows = await _rows(database)
    assert {k: r.status for k, r in rows.items()} == {
        "ann-inv": "failed", "bob-inv": "sent", "ann-rem": "cancelled", "ann-fu": "cancelled"}
    assert rows["ann-inv"].last_error == "403: Forbidden: bot was blocked by the user"
    assert ann.id is not None and bob.id is not None
    assert [i.unreachable for i in await store.identities(ann.id)] == [True]
    assert [i.unreachable for i in await store.identities(bob.id)] == [False]
    # Days later nothing more goes to Ann.
    clock.advance(days=10)
    await dispatch_until_idle(_dispatcher(database, transport, clock))
    assert transport.texts(21) == []


async def test_transient_errors_back_off_then_fail_after_max_attempts(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    await _queue(database, clock, "flaky", chat_id=31)
    transport.fail(31, Transient("Bad Gateway"), times=10)
    dispatcher = _dispatcher(database, transport, clock, max_attempts=4)
    starts = []
    for attempt in range(1, 5):
        starts.append(clock.now())
        report = await dispatcher.run_once()
        row = (await _rows(database))["flaky"]
        assert row.attempts == attempt
        if attempt < 4:
            assert (report.retried, row.status) == (1, "queued")
            # exponential backoff from the default 30 s: 30, 60, 120
            assert row.due_at == clock.now() + timedelta(seconds=30 * 2 ** (attempt - 1))
            clock.at = row.due_at
    assert (report.failed, row.status) == (1, "failed")
    assert row.last_error == "Bad Gateway (after 4 attempts)"
    assert [at for _, _, at in transport.attempts] == starts
    clock.advance(days=1)
    assert (await dispatcher.run_once()).claimed == 0


async def test_a_send_that_never_answers_is_cut_off_and_retried(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    class Hanging(RecordingTransport):
        async def send_text(self, chat_id: str, text: str, keyboard: object) -> int:
            await asyncio.Event().wait()  # the request hangs forever
            return 0

    await _queue(database, clock, "slow", chat_id=41)
    dispatcher = _dispatcher(database, Hanging(clock), clock,
                             send_timeout=timedelta(milliseconds=20))
    report = await dispatcher.run_once()  # real 20 ms: the timeout is asyncio's own
    assert report.retried == 1
    row = (await _rows(database))["slow"]
    assert (row.status, row.attempts, row.last_error) == ("queued", 1, "TimeoutError")


async def test_refused_fails_at_once_and_a_row_about_nothing_is_cancelled(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    await _queue(database, clock, "refused", chat_id=51)
    await _queue(database, clock, "empty", chat_id=52)
    async with database.session() as s, s.begin():  # neither a text nor a subject
        await s.exec(update(Outbox).where(col(Outbox.key) == "empty")  # type: ignore[call-overload]
                     .values(text=None))
    transport.fail(51, Refused("Bad Request: chat not found"))
    report = await _dispatcher(database, transport, clock).run_once()
    assert (report.failed, report.skipped) == (1, 1)
    rows = await _rows(database)
    assert rows["refused"].last_error == "refused: Bad Request: chat not found"
    assert (rows["empty"].status, rows["empty"].attempts) == ("cancelled", 0)
    assert "neither a text nor a subject" in (rows["empty"].last_error or "")
    assert [chat for chat, _, _ in transport.attempts] == ["51"]  # the empty one never went


async def test_rows_of_a_crashed_worker_are_sent_after_its_lease(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    for i in range(3):
        await _queue(database, clock, f"m{i}", chat_id=60 + i)
    lease = timedelta(seconds=60)
    # A worker claimed the batch and died before sending anything.
    await outbox.claim_due(database, now=clock.now(), limit=10, lease=lease, worker="dead",
                           channels={"telegram"})
    dispatcher = _dispatcher(database, transport, clock, lease=lease)
    assert (await dispatcher.run_once()).claimed == 0
    clock.advance(seconds=61)
    assert (await dispatcher.run_once()).sent == 3
    # the dead worker's claim was no attempt: each was sent once, on its first attempt
    assert [r.attempts for r in (await _rows(database)).values()] == [1, 1, 1]


async def test_a_row_whose_sends_keep_dying_is_given_up_without_sending_again(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    await _queue(database, clock, "poison", chat_id=70)
    lease = timedelta(seconds=10)
    for _ in range(3):  # three workers died while sending it (it may have gone each time)
        [row] = await outbox.claim_due(database, now=clock.now(), limit=1, lease=lease,
                                       worker="x", channels={"telegram"})
        assert row.id is not None
        await outbox.start_send(database, row.id, claimed_until=row.locked_until)
        clock.advance(seconds=11)
    report = await _dispatcher(database, transport, clock, lease=lease,
                               send_timeout=timedelta(seconds=5), max_attempts=3).run_once()
    assert report.failed == 1 and transport.attempts == []
    assert (await _rows(database))["poison"].last_error == "gave up after 3 attempts"


async def test_a_crash_loop_that_never_sends_uses_up_no_attempts(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    """Workers killed again and again while holding a batch, before sending any of it (or
    during the send of its first row only): only that row's attempts grow."""
    for i in range(10):
        await _queue(database, clock, f"inv{i}", chat_id=700 + i)
    lease = timedelta(seconds=10)
    for _ in range(7):  # more kills than max_attempts
        rows = await outbox.claim_due(database, now=clock.now(), limit=50, lease=lease,
                                      worker="doomed", channels={"telegram"})
        assert len(rows) == 10
        clock.advance(seconds=11)
    report = await dispatch_until_idle(_dispatcher(database, transport, clock, lease=lease,
                                                   send_timeout=timedelta(seconds=5)))
    assert (report.sent, report.failed) == (10, 0)
    assert sorted(transport.texts()) == sorted(f"inv{i}" for i in range(10))
    assert {r.attempts for r in (await _rows(database)).values()} == {1}


async def test_catch_up_after_downtime_sends_each_overdue_message_once(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    start = clock.now()
    for day in range(3):  # reminders due during three days of downtime
        await _queue(database, clock, f"r{day}", kind="reminder", chat_id=80 + day,
                     due=start + timedelta(days=day, hours=1))
    clock.advance(days=4)  # the bot comes back
    dispatcher = _dispatcher(database, transport, clock)
    for _ in range(5):  # several ticks in a row, as after a restart
        await dispatcher.run_once()
    assert sorted(transport.texts()) == ["r0", "r1", "r2"]


async def test_no_message_is_sent_when_the_lease_would_run_out_while_waiting(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    for i in range(6):  # six messages to one chat: one per second at most
        await _queue(database, clock, f"m{i}", chat_id=90, due=clock.now())
    dispatcher = _dispatcher(database, transport, clock, lease=timedelta(seconds=8),
                             send_timeout=timedelta(seconds=4))
    report = await dispatcher.run_once()
    # m0 at t=0 … m3 at t=3; m4 would start with 4 s of lease left: too close, released
    assert (report.sent, report.released) == (4, 2)
    assert transport.texts() == ["m0", "m1", "m2", "m3"]
    report = await dispatch_until_idle(dispatcher)
    assert transport.texts() == [f"m{i}" for i in range(6)]
    assert min_gap_per_chat([(d.chat_id, d.at.timestamp()) for d in transport.delivered]) >= 1


async def test_dispatch_stays_within_telegram_limits(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    rng = random.Random(7)
    for i in range(150):  # 150 messages to 60 chats: some chats get several
        await _queue(database, clock, f"m{i:03d}", chat_id=1000 + rng.randrange(60))
    report = await dispatch_until_idle(_dispatcher(database, transport, clock, batch=40))
    assert report.sent == 150
    times = [(d.at - transport.delivered[0].at).total_seconds() for d in transport.delivered]
    assert max_in_window(times) <= 30
    assert min_gap_per_chat([(d.chat_id, t) for d, t in zip(transport.delivered, times,
                                                             strict=True)]) >= 1.0 - 1e-6
    # and not needlessly slow: one busy chat does not hold up the others
    busiest = max(Counter(d.chat_id for d in transport.delivered).values())
    # (in order, chat by chat, it would take 14 s; the bound is 7 s; we get about 10 s)
    assert times[-1] < 1.5 * max(150 / 29, busiest - 1) + 2


async def test_concurrent_sending_keeps_due_order_per_chat(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    for i in range(20):
        await _queue(database, clock, f"m{i:02d}", chat_id=200 + i % 4,
                     due=clock.now() - timedelta(seconds=100 - i))
    dispatcher = Dispatcher(database, {"telegram": transport},
                            limiters={"telegram": unpaced()}, clock=clock.now,
                            sleep=clock.sleep, concurrency=5)
    report = await dispatch_until_idle(dispatcher)
    assert report.sent == 20
    for chat in range(200, 204):
        texts = transport.texts(chat)
        assert texts == sorted(texts) and len(texts) == 5


# --- several channels: each row through its own channel's transport and limits ------------

# A Bale-shaped second channel, declared by the test (no folder under bot/channels/ needed).
BALE = Channel("bale", "Bale", Capabilities(
    text_length=4096, text_counting="utf16", buttons_per_row=8, buttons_total=100,
    button_label=64, callback_data=64, editable=True, messages_per_second=20,
    messages_per_chat_per_second=1))
TWO_CHANNELS = Registry([TELEGRAM, BALE])


def _two_channel_dispatcher(
    database: Database, clock: FakeClock, telegram: RecordingTransport,
    bale: RecordingTransport, **kwargs: object,
) -> Dispatcher:
    # each channel's limiter from its declaration, on the test's clock
    limiters = {
        channel.name: RateLimiter.for_channel(channel.capabilities, clock=clock.monotonic,
                                              sleep=clock.sleep)
        for channel in TWO_CHANNELS
    }
    return Dispatcher(database, {"telegram": telegram, "bale": bale}, clock=clock.now,
                      sleep=clock.sleep, registry=TWO_CHANNELS, worker_id="test",
                      limiters=limiters, **kwargs)  # type: ignore[arg-type]


async def test_each_row_goes_through_its_own_channels_transport_and_limiter(
    database: Database, clock: FakeClock
) -> None:
    telegram, bale = RecordingTransport(clock), RecordingTransport(clock, channel="bale")
    # the same chat id on both channels: two different chats, each gets its own message
    for i in range(3):
        await _queue(database, clock, f"tg{i}", chat_id=7 + i)
        await _queue(database, clock, f"bale{i}", chat_id=7 + i, channel="bale")
    # left to itself, a dispatcher paces each channel by that channel's declaration
    paced = Dispatcher(database, {"telegram": telegram, "bale": bale},
                       registry=TWO_CHANNELS).limiters
    assert (paced["telegram"].rate, paced["bale"].rate) == (
        RateLimiter.for_channel(TELEGRAM.capabilities).rate,
        RateLimiter.for_channel(BALE.capabilities).rate)
    assert paced["telegram"].rate != paced["bale"].rate
    dispatcher = _two_channel_dispatcher(database, clock, telegram, bale)
    report = await dispatch_until_idle(dispatcher)
    assert (report.sent, report.failed) == (6, 0)
    assert telegram.texts() == ["tg0", "tg1", "tg2"]
    assert bale.texts() == ["bale0", "bale1", "bale2"]
    assert {r.key: (r.channel, r.status) for r in (await _rows(database)).values()} == {
        **{f"tg{i}": ("telegram", "sent") for i in range(3)},
        **{f"bale{i}": ("bale", "sent") for i in range(3)}}


async def test_a_429_pauses_only_the_channel_that_answered_it(
    database: Database, clock: FakeClock
) -> None:
    telegram, bale = RecordingTransport(clock), RecordingTransport(clock, channel="bale")
    start = clock.now()
    for i in range(3):
        await _queue(database, clock, f"tg{i}", chat_id=10 + i)
        await _queue(database, clock, f"bale{i}", chat_id=10 + i, channel="bale")
    telegram.fail(10, RetryAfter(30))
    dispatcher = _two_channel_dispatcher(database, clock, telegram, bale)
    report = await dispatcher.run_once()
    assert (report.rate_limited, report.sent) == (1, 3)
    assert bale.texts() == ["bale0", "bale1", "bale2"]  # Bale went on
    assert telegram.texts() == []
    assert dispatcher.channel_paused_until("telegram") == start + timedelta(seconds=30)
    assert dispatcher.channel_paused_until("bale") is None
    assert not dispatcher.paused() and report.paused_until is None  # one channel may send
    rows = await _rows(database)
    assert {k: (r.status, r.attempts) for k, r in rows.items() if k.startswith("tg")} == {
        "tg0": ("queued", 0), "tg1": ("queued", 0), "tg2": ("queued", 0)}
    assert all(rows[f"tg{i}"].due_at >= start + timedelta(seconds=30) for i in range(3))
    # Bale keeps sending during Telegram's pause; Telegram's rows are not even claimed.
    await _queue(database, clock, "bale-later", chat_id=99, channel="bale")
    clock.advance(seconds=5)
    report = await dispatcher.run_once()
    assert (report.claimed, report.sent) == (1, 1)
    assert bale.texts()[-1] == "bale-later"
    # once the pause is over, Telegram's rows go out
    clock.advance(seconds=26)
    report = await dispatch_until_idle(dispatcher)
    assert report.sent == 3 and telegram.texts() == ["tg0", "tg1", "tg2"]


async def test_rows_of_a_channel_this_process_does_not_run_stay_queued_untouched(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    await _queue(database, clock, "tg")
    await _queue(database, clock, "bale", channel="bale")
    dispatcher = Dispatcher(database, {"telegram": transport}, clock=clock.now,
                            sleep=clock.sleep, registry=TWO_CHANNELS, worker_id="test",
                            limiters={"telegram": unpaced()})
    # follow_future: it must not wait for the Bale row either (it is not this process's)
    report = await dispatch_until_idle(dispatcher, follow_future=True, max_rounds=20)
    assert (report.claimed, report.sent) == (1, 1)
    assert transport.texts() == ["tg"]
    rows = await _rows(database)
    bale = rows["bale"]
    assert (bale.channel, bale.status, bale.attempts, bale.locked_until) == (
        "bale", "queued", 0, None)
    assert bale.last_error is None


def test_a_transport_must_be_keyed_by_its_own_channel(
    clock: FakeClock, transport: RecordingTransport
) -> None:
    database = cast(Database, None)  # refused before the database is used
    with pytest.raises(ValueError, match="the transport given for channel 'bale' sends on "
                                         "'telegram'"):
        Dispatcher(database, {"bale": transport}, registry=TWO_CHANNELS)
    with pytest.raises(ValueError, match="at least one channel"):
        Dispatcher(database, {}, registry=TWO_CHANNELS)
    with pytest.raises(ValueError, match="rate limiters for channels without a transport: bale"):
        Dispatcher(database, {"telegram": transport}, registry=TWO_CHANNELS,
                   limiters={"bale": unpaced()})


def test_reports_add_up() -> None:
    total = DispatchReport(claimed=2, sent=1) + DispatchReport(claimed=3, failed=1)
    assert (total.claimed, total.sent, total.failed) == (5, 1, 1)


# --- the rate limiter, on virtual time ------------------------------------------------------


def _limited_sends(
    loop: VirtualTimeLoop, limiter: RateLimiter, chats: list[int]
) -> list[tuple[int, float]]:
    sends: list[tuple[int, float]] = []

    async def one(chat: int) -> None:
        await limiter.acquire(chat)
        sends.append((chat, loop.time()))

    async def main() -> None:
        await asyncio.gather(*(one(chat) for chat in chats))

    loop.run_until_complete(main())
    return sends


@pytest.mark.parametrize(("rate", "burst"), [(29.0, 1), (30.0, 1), (25.0, 5)])
def test_limiter_keeps_the_global_rate_and_one_message_per_second_per_chat(
    rate: float, burst: int
) -> None:
    rng = random.Random(3)
    chats = [rng.randrange(40) for _ in range(400)]
    loop = VirtualTimeLoop()
    try:
        limiter = RateLimiter(rate=rate, per_chat=1.0, burst=burst, clock=loop.time)
        sends = _limited_sends(loop, limiter, chats)
    finally:
        loop.close()
    times = [t for _, t in sends]
    assert len(sends) == 400
    assert max_in_window(times) <= int(rate) + burst - 1 <= 30 + burst - 1
    assert min_gap_per_chat(sends) >= 1.0 - 1e-9
    # no time is wasted: the end is set by the global rate or by the busiest chat
    busiest = max(Counter(chats).values())
    assert max(times) < 1.25 * max(400 / rate, busiest - 1) + 2


def test_limiter_does_not_hold_other_chats_behind_a_busy_one() -> None:
    async def main(loop: VirtualTimeLoop) -> list[tuple[int, float]]:
        limiter = RateLimiter(rate=30, per_chat=1.0, clock=loop.time)
        sends: list[tuple[int, float]] = []

        async def one(chat: int) -> None:
            await limiter.acquire(chat)
            sends.append((chat, loop.time()))

        await asyncio.gather(*(one(1) for _ in range(5)), *(one(c) for c in range(2, 12)))
        return sends

    sends = run_virtual(main)
    others = [t for chat, t in sends if chat != 1]
    assert max(others) < 1.0  # ten other chats went out within the first second
    assert sorted(t for chat, t in sends if chat == 1) == pytest.approx([0, 1, 2, 3, 4])


def test_limiter_pause_holds_everyone_until_retry_after() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = RateLimiter(rate=30, per_chat=1.0, clock=loop.time)
        await limiter.acquire(1)
        limiter.pause(5)
        times: list[float] = []

        async def one(chat: int) -> None:
            await limiter.acquire(chat)
            times.append(loop.time())

        await asyncio.gather(*(one(c) for c in range(2, 5)))
        return times

    times = run_virtual(main)
    assert min(times) >= 5.0 and max(times) < 5.2


def test_limiter_with_a_fake_clock() -> None:
    clock = FakeClock()
    limiter = RateLimiter.for_channel(TELEGRAM.capabilities, clock=clock.monotonic,
                                      sleep=clock.sleep)

    async def main() -> list[float]:
        times = []
        for i in range(90):
            await limiter.acquire(i % 45)
            times.append(clock.monotonic())
        return times

    times = asyncio.run(main())
    assert max_in_window(times) <= 29
    assert min_gap_per_chat([(i % 45, t) for i, t in enumerate(times)]) >= 1.0 - 1e-9


def test_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate must be a positive"):
        RateLimiter(rate=0, per_chat=1)
    with pytest.raises(ValueError, match="burst must be at least 1"):
        RateLimiter(rate=1, per_chat=1, burst=0)
    with pytest.raises(ValueError, match="processes must be at least 1"):
        RateLimiter.for_channel(TELEGRAM.capabilities, processes=0)


async def test_contact_model_untouched_by_plain_sends(
    database: Database, store: Store, clock: FakeClock, transport: RecordingTransport
) -> None:
    contact = await store.upsert_contact("telegram", "300", name="Cy", now=clock.now())
    await _queue(database, clock, "hello", chat_id=300, contact_id=contact.id)
    await _dispatcher(database, transport, clock).run_once()
    async with database.session() as s, s.begin():
        row = (await s.exec(select(Contact).where(Contact.id == contact.id))).one()
    assert contact.id is not None
    assert [i.unreachable for i in await store.identities(contact.id)] == [False]
    assert row.updated_at == contact.updated_at


async def test_a_rate_limit_of_one_chat_puts_back_only_its_row(
    database: Database, clock: FakeClock, transport: RecordingTransport
) -> None:
    start = clock.now()
    for i in range(3):
        await _queue(database, clock, f"m{i}", chat_id=20 + i)
    transport.fail(20, ChatRetryAfter(6))
    dispatcher = _dispatcher(database, transport, clock, max_attempts=1)
    report = await dispatcher.run_once()
    assert (report.rate_limited, report.sent, report.released, report.failed) == (1, 2, 0, 0)
    assert dispatcher.channel_paused_until("telegram") is None and report.paused_until is None
    assert transport.texts() == ["m1", "m2"]
    row = (await _rows(database))["m0"]
    assert (row.status, row.attempts) == ("queued", 0)  # max_attempts=1: still not spent
    assert row.due_at == start + timedelta(seconds=6)
    assert row.last_error == "rate limit for this chat: retry after 6s"
    clock.advance(seconds=6)
    assert (await dispatch_until_idle(dispatcher)).sent == 1
    assert transport.texts() == ["m1", "m2", "m0"]
