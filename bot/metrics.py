"""Prometheus metrics of one `sada run` process, served at GET /metrics (bot/serving.py).

One registry per process (REGISTRY, not prometheus_client's global one, so importing a
library that registers its own metrics changes nothing here). Counters move where the work
is done: the controller counts updates and reply times, the survey service answers, the
controller and the dispatcher sends, the planners reminders, the alerts cases, the webhook
sender deliveries. The outbox's depth is read from the database when scraped (OutboxDepth),
at most once per `ttl` seconds, never on an update's path. Names, labels and meaning:
docs/operations.md.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.messaging.transport import Blocked, Refused, RetryAfter

__all__ = ["ANSWERS", "CASES_OPENED", "CONTENT_TYPE", "REGISTRY", "REMINDERS_PLANNED",
           "REPLY_SECONDS", "SENDS", "UPDATES", "UPDATES_REDELIVERED", "WEBHOOK_DELIVERIES",
           "OutboxDepth", "counts_sends", "exposition", "handled"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REGISTRY = CollectorRegistry(auto_describe=True)

UPDATES = Counter(
    "sada_updates", "Inbound events handled (a message, a press), by channel and outcome "
    "(ok, or failed: handled with an apology or not delivered)",
    ["channel", "outcome"], registry=REGISTRY)
UPDATES_REDELIVERED = Counter(
    "sada_updates_redelivered", "Inbound events already handled, received again and "
    "ignored (a channel's redelivery)", ["channel"], registry=REGISTRY)
REPLY_SECONDS = Histogram(
    "sada_reply_seconds", "From an inbound event's arrival to its replies sent, by channel",
    ["channel"], registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
ANSWERS = Counter(
    "sada_answers", "Survey answers saved (new or changed), by flow", ["flow"],
    registry=REGISTRY)
SENDS = Counter(
    "sada_sends", "Messages, edits and button answers sent to a channel's API, by channel, "
    "source (reply: to an inbound event; outbox: follow-ups) and outcome (ok, rate_limited: "
    "a 429, blocked: a 403, refused: a 400, failed: network or server errors)",
    ["channel", "source", "outcome"], registry=REGISTRY)
REMINDERS_PLANNED = Counter(
    "sada_reminders_planned", "Reminders queued by the planner", registry=REGISTRY)
CASES_OPENED = Counter(
    "sada_cases_opened", "Follow-up cases opened (a detractor's answer), by flow", ["flow"],
    registry=REGISTRY)
WEBHOOK_DELIVERIES = Counter(
    "sada_webhook_deliveries", "Outgoing webhook POSTs, by outcome (ok: a 2xx; failed: "
    "anything else, retried later)", ["outcome"], registry=REGISTRY)

P = ParamSpec("P")
R = TypeVar("R")


def handled(channel: str, outcome: str, started: float) -> None:
    """One inbound event done: counted, and its reply time observed. `started` is
    time.perf_counter() when it came in."""
    UPDATES.labels(channel, outcome).inc()
    REPLY_SECONDS.labels(channel).observe(time.perf_counter() - started)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, RetryAfter):
        return "rate_limited"
    if isinstance(exc, Blocked):
        return "blocked"
    if isinstance(exc, Refused):
        return "refused"
    return "failed"  # Transient, a timeout, a cancellation, a bug


def counts_sends(
    source: str, channel_of: Callable[..., str],
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Count each call of the decorated send in SENDS, by the channel `channel_of(*args)`
    names and its outcome (the exception it raised, if any)."""

    def decorate(send: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(send)
        async def counted(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                channel = channel_of(*args, **kwargs)
            except AttributeError:  # a stand-in transport that names no channel
                channel = "unknown"
            try:
                result = await send(*args, **kwargs)
            except BaseException as exc:
                SENDS.labels(channel, source, _outcome(exc)).inc()
                raise
            SENDS.labels(channel, source, "ok").inc()
            return result

        return counted

    return decorate


Depths = dict[tuple[str, str], int]


class OutboxDepth(Collector):
    """sada_outbox_depth{kind, channel}: outbox rows waiting (queued or being sent), read by
    `refresh` at scrape time and kept `ttl` seconds, so scrapes close together (several
    Prometheus servers) cost one query."""

    def __init__(self, read: Callable[[], Awaitable[Depths]], ttl: float = 5.0) -> None:
        self.read = read
        self.ttl = ttl
        self.depths: Depths = {}
        self.read_at: float | None = None

    async def refresh(self) -> None:
        now = time.monotonic()
        if self.read_at is not None and now - self.read_at < self.ttl:
            return
        self.depths = await self.read()
        self.read_at = now

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "sada_outbox_depth", "Outbox rows waiting to be sent (queued or sending), by kind "
            "and channel", labels=["kind", "channel"])
        for (kind, channel), count in sorted(self.depths.items()):
            gauge.add_metric([kind, channel], count)
        yield gauge


async def outbox_depths(database: Any) -> Depths:
    """Rows queued or sending, by (kind, channel): one grouped count."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from storage.models import Outbox

    query = (select(Outbox.kind, Outbox.channel, func.count(col(Outbox.id)))
             .where(col(Outbox.status).in_(("queued", "sending")))
             .group_by(col(Outbox.kind), col(Outbox.channel)))
    async with database.session() as s:
        rows = (await s.exec(query)).all()
    return {(str(kind), str(channel)): int(count) for kind, channel, count in rows}


def exposition(*extra: CollectorRegistry) -> bytes:
    """The text format of REGISTRY and of `extra` registries (a server's outbox depth)."""
    return b"".join(generate_latest(registry) for registry in (REGISTRY, *extra))
