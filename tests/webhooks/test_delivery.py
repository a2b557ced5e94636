"""Webhook delivery against a real local HTTP endpoint, on SQLite and PostgreSQL: the
signature checked by an independent implementation, exactly once across a restart and
again (same event id) after a crash mid-send, retries with backoff, the subscription
disabled with one staff alert, and enabled again. The delivery loop is driven directly
with a fake clock: no test waits for a retry."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from bot.followups.webhooks import WebhookSender
from storage import webhooks
from storage.db import Database
from storage.models import Outbox, WebhookDelivery, WebhookSubscription
from tests.webhooks.receiver import Receiver, receiving

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
STAFF = [("telegram", "-1001"), ("telegram", "4242")]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as r:
        yield r


def sender(database: Database, clock: Clock, **options: object) -> WebhookSender:
    return WebhookSender(database, clock=clock, staff=STAFF, jitter=lambda: 0.0,
                         **options)  # type: ignore[arg-type]


async def subscribe(database: Database, url: str, *events: str) -> WebhookSubscription:
    return await webhooks.add_subscription(database, url, list(events) or ["case.opened"],
                                           now=T0)


async def emit(database: Database, data: dict[str, object], now: datetime = T0,
               event: str = "case.opened") -> str | None:
    async with database.session() as s, s.begin():
        return await webhooks.emit(s, event, data, now=now)


async def deliveries(database: Database) -> list[WebhookDelivery]:
    async with database.session() as s, s.begin():
        return list(await s.exec(select(WebhookDelivery).order_by(col(WebhookDelivery.id))))


async def subscription(database: Database, sub_id: int | None) -> WebhookSubscription:
    async with database.session() as s, s.begin():
        sub = await s.get(WebhookSubscription, sub_id)
    assert sub is not None
    return sub


def verify(secret: str, headers: dict[str, str], body: bytes, *, now: float) -> bool:
    """What a receiver does, written from docs/webhooks.md with the hmac module alone."""
    timestamp = headers["Sada-Timestamp"]
    if abs(now - int(timestamp)) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                        hashlib.sha256).hexdigest()
    given = headers["Sada-Signature"].removeprefix("v1=")
    return hmac.compare_digest(expected, given)


async def test_signed_post_verified_independently(database: Database,
                                                  receiver: Receiver) -> None:
    sub = await subscribe(database, receiver.url)
    other = await subscribe(database, receiver.url, "case.resolved")  # not this event
    assert sub.secret.startswith("whsec_") and sub.secret != other.secret
    event_id = await emit(database, {"case": {"id": 7}, "reason": "نمره ۳"})
    clock = Clock()
    report = await sender(database, clock).drain()
    assert (report.claimed, report.delivered) == (1, 1)
    [got] = receiver.received
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Sada-Event-Id"] == event_id
    assert int(got.headers["Sada-Timestamp"]) == int(T0.timestamp())
    assert got.headers["Sada-Signature"].startswith("v1=")
    assert verify(sub.secret, got.headers, got.body, now=T0.timestamp())
    assert not verify(other.secret, got.headers, got.body, now=T0.timestamp())
    assert not verify(sub.secret, got.headers, got.body + b" ", now=T0.timestamp())
    # too old for the receiver's five minutes
    assert not verify(sub.secret, got.headers, got.body, now=T0.timestamp() + 301)
    payload = json.loads(got.body)
    assert payload == {"id": event_id, "type": "case.opened", "created_at": "2026-11-30T09:00:00Z",
                       "data": {"case": {"id": 7}, "reason": "نمره ۳"}}
    [row] = await deliveries(database)
    assert (row.status, row.attempts, row.last_status, row.delivered_at) == (
        "delivered", 1, 200, T0)
    assert (await subscription(database, sub.id)).last_success_at == T0


async def test_exactly_once_across_a_restart(database: Database, receiver: Receiver) -> None:
    await subscribe(database, receiver.url)
    first_id = await emit(database, {"n": 1})
    clock = Clock()
    # the service is started and stopped before its first round: nothing is sent …
    gone = sender(database, clock)
    await gone.stop()
    assert (await gone.run_once()).claimed == 0
    await gone.close()
    # … and a new process delivers it, once
    second_id = await emit(database, {"n": 2})
    new = sender(database, clock)
    assert (await new.drain()).delivered == 2
    clock.now += timedelta(hours=2)
    assert (await new.drain()).claimed == 0
    assert (await sender(database, clock).drain()).claimed == 0
    assert [r.headers["Sada-Event-Id"] for r in receiver.received] == [first_id, second_id]
    await new.close()


async def test_a_crash_mid_send_sends_again_with_the_same_event_id(
    database: Database, receiver: Receiver
) -> None:
    await subscribe(database, receiver.url)
    event_id = await emit(database, {"n": 1})
    clock = Clock()
    # a worker claims the row and starts the send, then dies before recording the outcome
    [claimed] = await webhooks.claim_due(database, now=clock(), limit=10,
                                         lease=timedelta(minutes=2))
    assert await webhooks.start_send(database, claimed.delivery) == 1
    assert (await sender(database, clock).run_once()).claimed == 0  # the lease holds it
    clock.now += timedelta(minutes=3)
    report = await sender(database, clock).drain()
    assert report.delivered == 1
    [row] = await deliveries(database)
    assert (row.status, row.attempts) == ("delivered", 2)
    # the dead worker's late outcome changes nothing: its claim is gone
    assert not await webhooks.mark_delivered(database, claimed.delivery, status=200,
                                             now=clock())
    assert [r.headers["Sada-Event-Id"] for r in receiver.received] == [event_id]


async def test_retried_on_500_then_delivered(database: Database, receiver: Receiver) -> None:
    sub = await subscribe(database, receiver.url)
    await emit(database, {"n": 1})
    receiver.answers = [500, 503]
    clock = Clock()
    deliver = sender(database, clock)
    assert (await deliver.drain()).retried == 1
    [row] = await deliveries(database)
    assert (row.status, row.attempts, row.last_status, row.due_at) == (
        "queued", 1, 500, T0 + timedelta(seconds=30))
    assert row.last_error == "HTTP 500: broken"
    failing = await subscription(database, sub.id)
    assert (failing.failures, failing.failing_since, failing.active) == (1, T0, True)
    clock.now += timedelta(seconds=29)
    assert (await deliver.drain()).claimed == 0  # not before its backoff
    clock.now += timedelta(seconds=1)
    assert (await deliver.drain()).retried == 1
    [row] = await deliveries(database)
    assert row.due_at == clock.now + timedelta(minutes=1)
    clock.now = row.due_at
    assert (await deliver.drain()).delivered == 1
    [row] = await deliveries(database)
    assert (row.status, row.attempts, row.last_status, row.last_error) == (
        "delivered", 3, 200, None)
    healed = await subscription(database, sub.id)
    assert (healed.failures, healed.failing_since, healed.last_success_at) == (
        0, None, clock.now)
    bodies = {r.body for r in receiver.received}
    ids = {r.headers["Sada-Event-Id"] for r in receiver.received}
    assert len(receiver.received) == 3 and len(bodies) == 1 and len(ids) == 1
    await deliver.close()


async def test_a_slow_endpoint_is_retried(database: Database, receiver: Receiver) -> None:
    await subscribe(database, receiver.url)
    await emit(database, {"n": 1})
    receiver.delay = 0.6
    deliver = sender(database, Clock(), timeout=0.3)
    assert (await deliver.drain()).retried == 1
    [slow] = await deliveries(database)
    assert slow.last_error == "no answer within 0.3 s" and slow.last_status is None
    await deliver.close()


async def test_an_absent_endpoint_is_retried(database: Database) -> None:
    # A timeout far beyond a refusal's round trip: on a loaded machine a short one ran out
    # before the refusal came back, and the test read a timeout instead.
    await webhooks.add_subscription(database, "http://127.0.0.1:9/nothing-listens",
                                    ["case.opened"], now=T0)
    await emit(database, {"n": 1})
    deliver = sender(database, Clock(), timeout=30)
    assert (await deliver.drain()).retried == 1
    [absent] = await deliveries(database)
    assert absent.last_error is not None and "Connect" in absent.last_error
    assert absent.last_status is None
    await deliver.close()


def test_backoff_schedule() -> None:
    seconds = [webhooks.backoff(n).total_seconds() for n in range(1, 12)]
    assert seconds == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]
    assert webhooks.backoff(1000) == timedelta(hours=1)
    assert webhooks.backoff(1, 0.1) == timedelta(seconds=33)
    assert webhooks.backoff(9, -0.1) == timedelta(minutes=54)


async def test_disabled_after_repeated_failures_with_one_staff_alert(
    database: Database, receiver: Receiver
) -> None:
    sub = await subscribe(database, receiver.url)
    healthy_ids = [await emit(database, {"n": n}) for n in range(2)]
    receiver.answers = [500] * 100
    clock = Clock()
    deliver = sender(database, clock)
    disabled = 0
    for _ in range(webhooks.MAX_ATTEMPTS):
        disabled += (await deliver.drain()).disabled
        clock.now = min(r.due_at for r in await deliveries(database))
    assert disabled == 1
    off = await subscription(database, sub.id)
    assert not off.active and off.disabled_at is not None
    assert off.failures == 2 * webhooks.MAX_ATTEMPTS
    async with database.session() as s, s.begin():
        alerts = list(await s.exec(select(Outbox)))
    assert sorted((a.kind, a.address) for a in alerts) == [("alert", "-1001"),
                                                            ("alert", "4242")]
    assert alerts[0].text is not None and f"Webhook #{sub.id} disabled" in alerts[0].text
    assert f"sada webhooks enable {sub.id}" in alerts[0].text
    # disabled: nothing more is claimed, however late, and no second alert
    clock.now += timedelta(days=2)
    assert (await deliver.drain()).claimed == 0
    await emit(database, {"n": 2}, now=clock.now)  # events keep coming: they wait
    assert (await deliver.drain()).claimed == 0
    sent = len(receiver.received)

    # enabled again: every waiting event goes, with fresh retries
    receiver.answers = []
    row = await webhooks.enable_subscription(database, sub.id or 0, now=clock.now)
    assert row.pending == 3 and row.subscription.active
    assert (await deliver.drain()).delivered == 3
    assert len(receiver.received) == sent + 3
    assert {r.headers["Sada-Event-Id"] for r in receiver.received[-3:]} >= set(healthy_ids)
    async with database.session() as s, s.begin():
        assert len(list(await s.exec(select(Outbox)))) == 2
    await deliver.close()


async def test_disabled_after_a_day_of_failures(database: Database,
                                                receiver: Receiver) -> None:
    sub = await subscribe(database, receiver.url)
    receiver.answers = [500] * 10
    clock = Clock()
    deliver = sender(database, clock)
    await emit(database, {"n": 1})
    assert (await deliver.drain()).retried == 1
    # a day later a new event fails its first attempt: the subscription has failed 24 h
    clock.now += webhooks.FAILING_FOR
    await emit(database, {"n": 2}, now=clock.now)
    report = await deliver.drain()
    assert report.disabled == 1
    assert not (await subscription(database, sub.id)).active
    await deliver.close()


async def test_two_senders_side_by_side_send_each_event_once(
    database: Database, receiver: Receiver
) -> None:
    await subscribe(database, receiver.url)
    ids = [str(await emit(database, {"n": n})) for n in range(12)]
    receiver.delay = 0.01
    clock = Clock()
    a, b = sender(database, clock, batch=3), sender(database, clock, batch=3)
    await asyncio.gather(a.drain(), b.drain())
    got = [r.headers["Sada-Event-Id"] for r in receiver.received]
    assert sorted(got) == sorted(ids)  # each once
    assert {r.status for r in await deliveries(database)} == {"delivered"}
    await a.close()
    await b.close()


async def test_a_stopped_sender_hands_its_claim_back(database: Database,
                                                     receiver: Receiver) -> None:
    await subscribe(database, receiver.url)
    for n in range(3):
        await emit(database, {"n": n})
    receiver.delay = 0.05
    clock = Clock()
    deliver = sender(database, clock, concurrency=1)
    started = time.monotonic()
    run = asyncio.create_task(deliver.run_once())
    while not receiver.received:
        await asyncio.sleep(0.005)
    await deliver.stop()
    report = await run
    # The POST on the wire ends in 0.05 s, and the stop does not wait out its 5 s grace:
    # well under the grace, however loaded the machine (1 s ran out once on a busy one).
    assert time.monotonic() - started < 4
    assert (report.claimed, report.delivered, report.released) == (3, 1, 2)
    assert sorted(r.status for r in await deliveries(database)) == [
        "delivered", "queued", "queued"]
    assert [r.attempts for r in await deliveries(database) if r.status == "queued"] == [0, 0]
    await deliver.close()


async def test_a_stop_cuts_off_a_slow_post_after_its_grace(
    database: Database, receiver: Receiver
) -> None:
    await subscribe(database, receiver.url)
    event_id = await emit(database, {"n": 1})
    receiver.delay = 0.15
    clock = Clock()
    deliver = sender(database, clock)
    run = asyncio.create_task(deliver.run_once())
    while not receiver.received:
        await asyncio.sleep(0.005)
    await deliver.stop(grace=0.02)
    report = await run
    assert (report.claimed, report.delivered, report.released) == (1, 0, 1)
    [row] = await deliveries(database)
    # back in the queue at once, the attempt counted: it may have arrived
    assert (row.status, row.attempts, row.due_at, row.locked_until) == (
        "queued", 1, T0, None)
    await deliver.close()
    receiver.delay = 0
    again = sender(database, clock)
    assert (await again.drain()).delivered == 1
    assert [r.headers["Sada-Event-Id"] for r in receiver.received] == [event_id, event_id]
    await again.close()


async def test_the_followup_service_delivers_webhooks(database: Database,
                                                      receiver: Receiver) -> None:
    from bot.followups.scheduler import FollowupService
    from tests.followups.outbox_fakes import FakeClock, RecordingTransport

    await subscribe(database, receiver.url)
    event_id = await emit(database, {"n": 1})
    transports = {"telegram": RecordingTransport(FakeClock())}
    service = FollowupService(database, transports, planners=[], clock=Clock(),
                              webhook_every=0.05, webhooks=sender(database, Clock()))
    async with service:
        for _ in range(100):
            if receiver.received:
                break
            await asyncio.sleep(0.01)
    assert [r.headers["Sada-Event-Id"] for r in receiver.received] == [event_id]
    [row] = await deliveries(database)
    assert row.status == "delivered"


async def test_deliveries_delivered_long_ago_are_deleted(database: Database,
                                                         receiver: Receiver) -> None:
    await subscribe(database, receiver.url)
    await emit(database, {"n": 1})
    clock = Clock()
    deliver = sender(database, clock)
    assert (await deliver.drain()).delivered == 1
    await emit(database, {"n": 2}, now=clock.now)
    receiver.answers = [500]
    clock.now += webhooks.KEEP_DELIVERED + timedelta(seconds=1)
    assert (await deliver.drain()).retried == 1  # the pruning round runs first
    [waiting] = await deliveries(database)  # the delivered one is gone, the other stays
    assert waiting.status == "queued"
    await deliver.close()
