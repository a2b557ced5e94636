"""GET /metrics on the one HTTP server of `sada run`: a survey handled through the controller
moves the update, answer, reply-time, send and case counters; the dispatcher's sends and 429s
count by channel; the outbox depth gauge is the database's rows; the endpoint can be turned
off or moved to an address of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func
from sqlmodel import col, select

from bot.channels.telegram.channel import CHANNEL as TELEGRAM
from bot.conversation.controller import Controller
from bot.followups.dispatcher import Dispatcher
from bot.followups.ratelimit import RateLimiter
from bot.messaging.transport import RetryAfter
from bot.metrics_settings import MetricsSettings
from bot.serving import METRICS_PATH, Shared
from storage import outbox
from storage.db import Database
from storage.models import Outbox
from storage.repo import Store
from tests.bale.test_run import free_port
from tests.conversation.test_controller import Chat, Recorder
from tests.followups.outbox_fakes import FakeClock, RecordingTransport

ROOT = Path(__file__).resolve().parents[1]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Telegram(Recorder):
    channel = "telegram"


@asynccontextmanager
async def serving(database: Database, metrics: MetricsSettings | None = None,
                  ) -> AsyncIterator[tuple[Shared, str]]:
    port = free_port()
    shared = Shared(Store(database), asyncio.Event(), channels=1, listen=("127.0.0.1", port),
                    metrics=metrics)
    await shared.start_server()
    try:
        yield shared, f"http://127.0.0.1:{port}"
    finally:
        await shared.close()


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(url + METRICS_PATH) as answer:
        assert answer.status == 200, await answer.text()
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await answer.text()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_a_survey_moves_the_counters(database: Database) -> None:
    store = Store(database)
    # as `sada run` builds it: the step hooks open cases
    core = await Controller.create(store, channel="telegram", flows_dir=ROOT / "flows",
                                   bot_username="sada_test_bot", admin_ids=frozenset({"1"}),
                                   secret="test-secret", alert_to=[("telegram", "1")])
    async with serving(database) as (_, base):
        before = await scrape(base)
        chat = Chat(core, Telegram(), 4201, "en")
        await chat.send("/start")
        await chat.press("Supplier relationship review")
        await chat.press("Purchasing")
        await chat.press("2")  # a detractor: a case opens
        await chat.send("late deliveries", update_id=880001)
        await chat.send("late deliveries", update_id=880001)  # redelivered
        after = await scrape(base)
    updates = moved(before, after, "sada_updates_total", channel="telegram", outcome="ok")
    assert updates == 6
    assert moved(before, after, "sada_updates_redelivered_total", channel="telegram") == 1
    assert moved(before, after, "sada_reply_seconds_count", channel="telegram") == updates
    assert moved(before, after, "sada_reply_seconds_sum", channel="telegram") > 0
    assert moved(before, after, "sada_answers_total", flow="b2b-supplier") == 3
    assert moved(before, after, "sada_cases_opened_total", flow="b2b-supplier") == 1
    sent = moved(before, after, "sada_sends_total", channel="telegram", source="reply",
                 outcome="ok")
    transport = chat.transport
    assert sent == len(transport.sent) + len(transport.edits) + len(transport.answers)
    # the case's alert waits in the outbox, but the depth read by the first scrape is
    # kept a few seconds: a scrape does not query the database each time
    assert value(after, "sada_outbox_depth", kind="alert", channel="telegram") == 0


async def test_dispatcher_sends_and_429s_count_by_channel(database: Database) -> None:
    clock = FakeClock()
    transport = RecordingTransport(clock)
    limiter = RateLimiter.for_channel(TELEGRAM.capabilities, clock=clock.monotonic,
                                      sleep=clock.sleep)
    dispatcher = Dispatcher(database, {"telegram": transport}, clock=clock.now,
                            sleep=clock.sleep, limiters={"telegram": limiter},
                            worker_id="test")
    for key, chat in (("one", 11), ("two", 12)):
        async with database.session() as s, s.begin():
            await outbox.enqueue(s, key=key, kind="alert", channel="telegram",
                                 address=str(chat), contact_id=None, text="hello",
                                 due_at=clock.now(), now=clock.now())
    transport.fail(12, RetryAfter(7))
    async with serving(database) as (_, base):
        before = await scrape(base)
        await dispatcher.run_once()
        after = await scrape(base)
    labels = {"channel": "telegram", "source": "outbox"}
    assert moved(before, after, "sada_sends_total", **labels, outcome="ok") == 1
    assert moved(before, after, "sada_sends_total", **labels, outcome="rate_limited") == 1


async def test_outbox_depth_is_the_rows_waiting(database: Database) -> None:
    clock = FakeClock()

    async def queue(key: str, kind: str, channel: str) -> None:
        async with database.session() as s, s.begin():
            await outbox.enqueue(s, key=key, kind=kind, channel=channel, address=key,
                                 contact_id=None, text="x", due_at=clock.now(), now=clock.now())

    for kind, channel, count in (("alert", "telegram", 3), ("alert", "bale", 1),
                                 ("invitation", "telegram", 2)):
        for n in range(count):
            await queue(f"{kind}:{channel}:{n}", kind, channel)
    await queue("done", "alert", "telegram")
    async with database.session() as s, s.begin():
        row = (await s.exec(select(Outbox).where(col(Outbox.key) == "done"))).one()
        row.status = "sent"  # sent rows are not waiting

    async def waiting() -> dict[tuple[str, str], float]:
        async with database.session() as s:
            counted = (await s.exec(
                select(Outbox.kind, Outbox.channel, func.count(col(Outbox.id)))
                .where(col(Outbox.status).in_(("queued", "sending")))
                .group_by(col(Outbox.kind), col(Outbox.channel)))).all()
        return {(kind, channel): float(n) for kind, channel, n in counted}

    def gauge(samples: Samples) -> dict[tuple[str, str], float]:
        return {(dict(labels)["kind"], dict(labels)["channel"]): v
                for (name, labels), v in samples.items() if name == "sada_outbox_depth"}

    async with serving(database) as (shared, base):
        first = await scrape(base)
        assert gauge(first) == await waiting() == {
            ("alert", "telegram"): 3, ("alert", "bale"): 1, ("invitation", "telegram"): 2}
        await queue("later", "alert", "bale")
        assert gauge(await scrape(base)) == gauge(first)  # read again only after a while
        assert shared._outbox_depth is not None
        shared._outbox_depth[0].ttl = 0  # that while is over
        assert gauge(await scrape(base)) == await waiting()
        assert (await waiting())["alert", "bale"] == 2


async def test_metrics_can_be_off_or_on_an_address_of_their_own(database: Database) -> None:
    async with serving(database, MetricsSettings(enabled=False)) as (_, base), \
            aiohttp.ClientSession() as session, session.get(base + METRICS_PATH) as answer:
        assert answer.status == 404
    port = free_port()
    own = MetricsSettings(listen=f"127.0.0.1:{port}")
    async with serving(database, own) as (shared, base):
        await shared.serve_metrics()
        async with aiohttp.ClientSession() as session, \
                session.get(base + METRICS_PATH) as answer:
            assert answer.status == 404  # not on the public server
        assert "sada_updates_total" in str(await scrape(f"http://127.0.0.1:{port}"))
