"""Delivering webhooks: signed POSTs of the events queued in storage.webhooks, with retries.

:class:`WebhookSender` runs inside `sada run`'s follow-ups service (an interval job of the
scheduler): each round claims due deliveries (several processes never take the same row),
POSTs each one and records the outcome. A 2xx is delivered; anything else (another status,
a timeout, a refused connection) is retried after an exponential backoff with jitter, until
the subscription's limits disable it (storage.webhooks). A process killed mid-send leaves
its rows "sending" until their lease ends; they are then sent again with the same event id
(at-least-once: receivers de-duplicate by ``Sada-Event-Id``).

Each request carries::

    Content-Type: application/json
    Sada-Event-Id: <the event's uuid>
    Sada-Timestamp: <unix seconds of this attempt>
    Sada-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>

:func:`webhook_hook` is the survey step hook that queues ``response.completed`` in the
step's own transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import metrics
from bot.clock import Clock, utc_now
from bot.flow.model import CesQuestion, CsatQuestion, NpsQuestion
from bot.survey import Step
from storage import webhooks
from storage.db import Database
from storage.models import Contact, SurveySession, WebhookDelivery

log = logging.getLogger(__name__)

TIMEOUT = 10.0  # seconds a receiver has to answer
# A claim outlives the slowest send of its batch: timeout × batch / concurrency, with room.
LEASE = timedelta(minutes=2)
USER_AGENT = "Sada-Webhooks/1"
PRUNE_EVERY = timedelta(hours=1)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Sada-Signature`` header's value for ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def headers(event_id: str, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
            "Sada-Event-Id": event_id, "Sada-Timestamp": str(timestamp),
            "Sada-Signature": sign(secret, timestamp, body)}


@dataclass
class WebhookReport:
    """What one or more rounds did; reports add up with ``+``."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    disabled: int = 0  # subscriptions disabled by a failure of this round
    released: int = 0  # claimed but handed back unsent (a stop)
    lost_lease: int = 0  # outcome not recorded: another worker had taken the row over

    def __add__(self, other: WebhookReport) -> WebhookReport:
        total = WebhookReport()
        for f in fields(self):
            setattr(total, f.name, getattr(self, f.name) + getattr(other, f.name))
        return total


@dataclass(frozen=True)
class _Outcome:
    status: int | None
    error: str | None  # None: delivered


class WebhookSender:
    """Claims due deliveries and POSTs them, ``concurrency`` at a time.

    ``staff`` ((channel, address) pairs) are alerted when a subscription is disabled; by
    default the settings' alert destinations. ``jitter`` gives each retry's spread (a
    fraction of its backoff); ``transport`` replaces httpx's network transport (tests)."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock = utc_now,
        staff: Sequence[tuple[str, str]] | None = None,
        batch: int = 20,
        concurrency: int = 5,
        timeout: float = TIMEOUT,
        lease: timedelta = LEASE,
        jitter: Callable[[], float] = lambda: random.uniform(-0.1, 0.1),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self._staff = staff
        self.batch = batch
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.lease = lease
        self.jitter = jitter
        self.transport = transport
        self.stopping = False
        # set `grace` seconds after a stop: POSTs still on the wire are cut off then
        self._cut = asyncio.Event()
        self._cut_timer: asyncio.TimerHandle | None = None
        self._client: httpx.AsyncClient | None = None
        self._pruned_at: datetime | None = None

    @property
    def staff(self) -> Sequence[tuple[str, str]]:
        if self._staff is None:
            from bot.settings import get_settings

            self._staff = get_settings().alert_to()
        return self._staff

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # redirects are not followed: a webhook URL that moved is the receiver's to fix,
            # and a redirect must not carry the signed body elsewhere
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                             transport=self.transport)
        return self._client

    def start(self) -> None:
        self.stopping = False
        self._cut = asyncio.Event()

    async def stop(self, grace: float = 5.0) -> None:
        """Start no new send, and give the POSTs on the wire ``grace`` seconds: one cut off
        then goes back to the queue, due at once, its attempt counted (it may have arrived:
        the receiver de-duplicates by event id). Claimed rows not yet sent go back as they
        were."""
        self.stopping = True
        if self._cut_timer is None:
            self._cut_timer = asyncio.get_running_loop().call_later(grace, self._cut.set)

    async def close(self) -> None:
        if self._cut_timer is not None:
            self._cut_timer.cancel()
            self._cut_timer = None
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def run_once(self) -> WebhookReport:
        """One round: claim a batch, send it, record each outcome."""
        report = WebhookReport()
        if self.stopping:
            return report
        claimed = await webhooks.claim_due(self.database, now=self.clock(), limit=self.batch,
                                           lease=self.lease)
        report.claimed = len(claimed)
        if not claimed:
            return report
        gate = asyncio.Semaphore(self.concurrency)
        unsent: list[WebhookDelivery] = []

        async def one(item: webhooks.Claimed) -> None:
            async with gate:
                if self.stopping:
                    unsent.append(item.delivery)
                    return
                await self._deliver(item, report)

        await asyncio.gather(*(one(item) for item in claimed))
        report.released += await webhooks.release(self.database, unsent)
        return report

    async def drain(self) -> WebhookReport:
        """Rounds until nothing is due (or a stop): what the scheduler's job runs. Once an
        hour it also deletes deliveries delivered long ago (webhooks.KEEP_DELIVERED)."""
        now = self.clock()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            await webhooks.prune_delivered(self.database, now=now)
        total = WebhookReport()
        while True:
            report = await self.run_once()
            total += report
            if report.claimed < self.batch or self.stopping:
                return total

    async def _deliver(self, item: webhooks.Claimed, report: WebhookReport) -> None:
        row = item.delivery
        attempts = await webhooks.start_send(self.database, row)
        if attempts is None:
            report.lost_lease += 1
            return
        outcome = await self._post(item)
        if outcome is None:  # cut off by a stop
            report.released += await webhooks.release(self.database, [row])
            return
        now = self.clock()
        if outcome.error is None:
            if await webhooks.mark_delivered(self.database, row, status=outcome.status or 200,
                                             now=now):
                report.delivered += 1
                metrics.WEBHOOK_DELIVERIES.labels("ok").inc()
            else:
                report.lost_lease += 1
            return
        failure = await webhooks.mark_failed_attempt(
            self.database, row, attempts=attempts, error=outcome.error, status=outcome.status,
            now=now, jitter=self.jitter(), staff=self.staff)
        if failure is None:
            report.lost_lease += 1
            return
        report.retried += 1
        metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
        if failure.disabled:
            report.disabled += 1
            log.warning("webhook %d disabled after %d failed attempts of event %s: %s",
                        row.subscription_id, attempts, row.event_id, outcome.error)
        else:
            log.info("webhook %d: event %s attempt %d failed (%s); retry at %s",
                     row.subscription_id, row.event_id, attempts, outcome.error,
                     failure.retry_at.isoformat())

    async def _post(self, item: webhooks.Claimed) -> _Outcome | None:
        """The POST's outcome, or None when a stop's grace ran out first."""
        body = item.delivery.body.encode()
        # the timestamp is the attempt's: a receiver's 5-minute window holds for retries too
        timestamp = int(self.clock().timestamp())
        request = asyncio.ensure_future(self._http().post(
            item.url, content=body,
            headers=headers(item.delivery.event_id, item.secret, timestamp, body)))
        cut = asyncio.ensure_future(self._cut.wait())
        try:
            await asyncio.wait({request, cut}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cut.cancel()
        if not request.done():
            request.cancel()
            with suppress(asyncio.CancelledError, httpx.HTTPError):
                await request
            return None
        try:
            response = request.result()
        except httpx.TimeoutException:
            return _Outcome(None, f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return _Outcome(None, f"{type(exc).__name__}: {exc}" if str(exc)
                            else type(exc).__name__)
        if 200 <= response.status_code < 300:
            return _Outcome(response.status_code, None)
        return _Outcome(response.status_code,
                        f"HTTP {response.status_code}: {response.text[:200]}")


async def send_test(url: str, secret: str, *, now: datetime, timeout: float = TIMEOUT,
                    transport: httpx.AsyncBaseTransport | None = None) -> tuple[int | None, str]:
    """POST one signed ``ping`` event to ``url`` now, outside the queue (`sada webhooks
    test`): the HTTP status (None when none came back) and what happened, in one line."""
    import uuid

    event_id = str(uuid.uuid4())
    body = webhooks.event_body(event_id, "ping", now, {"message": "test from sada webhooks "
                                                               "test"}).encode()
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                 transport=transport) as client:
        try:
            response = await client.post(url, content=body, headers=headers(
                event_id, secret, int(now.timestamp()), body))
        except httpx.TimeoutException:
            return None, f"no answer within {timeout:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return response.status_code, f"HTTP {response.status_code}"


# --- response.completed ---------------------------------------------------------------

_SCORED = (NpsQuestion, CsatQuestion, CesQuestion)


async def response_data(s: AsyncSession, step: Step) -> dict[str, Any]:
    """What response.completed says: the flow, session, contact, every answer, the scores."""
    session = await s.get(SurveySession, step.session_id)
    contact = await s.get(Contact, step.contact_id)
    answers: dict[str, Any] = {}
    scores: dict[str, Any] = {}
    for question in step.flow.questions:
        answer = step.after.answers.get(question.id)
        # answers left on a branch the person went /back from are not part of the response
        if answer is None or question.id not in step.after.history:
            continue
        answers[question.id] = {"type": question.type, "value": answer.value,
                                "text": answer.raw, "skipped": answer.skipped}
        if (isinstance(question, _SCORED) and not answer.skipped
                and isinstance(answer.value, int) and not isinstance(answer.value, bool)):
            scores[question.id] = {"type": question.type, "score": answer.value}
    return {
        "flow": {"id": step.flow.id,
                 "version_id": session.flow_version_id if session else None},
        "session_id": step.session_id,
        "contact": webhooks.contact_data(contact, step.contact_id),
        "language": step.after.language,
        "context": session.context if session else {},
        "started_at": session.started_at.isoformat().replace("+00:00", "Z")
        if session else None,
        "completed_at": step.now.isoformat().replace("+00:00", "Z"),
        "answers": answers,
        "scores": scores,
    }


async def webhook_hook(s: AsyncSession, step: Step) -> None:
    """Queue response.completed when a step completes the session (in its transaction)."""
    if step.after.status != "completed" or step.before.status == "completed":
        return
    if not await webhooks.wanted(s, "response.completed"):
        return
    await webhooks.emit(s, "response.completed", await response_data(s, step), now=step.now)


__all__ = [
    "LEASE",
    "TIMEOUT",
    "WebhookReport",
    "WebhookSender",
    "headers",
    "response_data",
    "send_test",
    "sign",
    "webhook_hook",
]
