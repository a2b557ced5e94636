"""Outgoing webhooks: subscriptions, and the events due to them as an outbox of their own.

Writers call :func:`emit` inside the transaction of the change that causes the event (a
response completed, a case opened or resolved): one ``webhook_delivery`` row per
subscription that wants it, carrying the exact body to POST. The event exists exactly when
the change was committed, and every retry sends the same bytes with the same event id.

Deliveries are claimed like the outbox (storage.outbox): one ``WITH due AS (SELECT … FOR
UPDATE SKIP LOCKED) UPDATE … RETURNING`` statement, a lease in ``locked_until`` that a
worker dying mid-send lets run out (the row is then sent again: at-least-once, which is
what the event id is for), and that lease end as a fencing token for the outcome.

A subscription fails when a delivery of it fails its :data:`MAX_ATTEMPTS`-th attempt, or
when nothing has been delivered to it for :data:`FAILING_FOR` since its failures began: it
is disabled (its deliveries wait, queued) and staff are alerted once, through the outbox,
in the same transaction. :func:`enable_subscription` resumes it.

The secret is kept readable (not hashed, unlike API keys): each delivery is signed with it.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import BindParameter, and_, bindparam, delete, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import Database, NotFound, StorageError
from storage.models import Case, Contact, WebhookDelivery, WebhookSubscription
from storage.outbox import enqueue

EVENTS: tuple[str, ...] = ("response.completed", "case.opened", "case.resolved")

# Retries: 30 s, 1 min, 2 min … doubling, never more than an hour apart.
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
# A delivery failing this many times disables its subscription (about 3 h of retries) …
MAX_ATTEMPTS = 10
# … and so does a subscription failing, with no delivery succeeding, for this long.
FAILING_FOR = timedelta(hours=24)

# Delivered rows are kept this long (for `sada webhooks list` and for looking into a
# receiver's complaint), then deleted: the table must not grow forever.
KEEP_DELIVERED = timedelta(days=30)

_MAX_ERROR = 300
# ids are 32-bit on PostgreSQL: a larger one is refused by the driver, not just not found
_MAX_ID = 2**31 - 1


def storable_id(value: int) -> bool:
    return 0 < value <= _MAX_ID


class BadWebhookInput(StorageError, ValueError):
    """A URL or an event list that cannot make a subscription."""


def check_url(url: str) -> str:
    """The URL, stripped, if deliveries can go to it; BadWebhookInput saying why otherwise."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BadWebhookInput(f"{url!r} is not a web address: give a full http:// or "
                              "https:// URL, e.g. https://crm.example.com/hooks/sada")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        host = None
    if not host or any(c.isspace() for c in url):
        raise BadWebhookInput(f"{url!r} has no valid host: give a full URL such as "
                              "https://crm.example.com/hooks/sada")
    return url


def parse_events(text: str | Sequence[str]) -> list[str]:
    """Event names from "a,b" (or a list), in EVENTS order; unknown names refused."""
    names = text.split(",") if isinstance(text, str) else list(text)
    wanted = [n.strip() for n in names if n.strip()]
    unknown = [n for n in wanted if n not in EVENTS]
    if unknown or not wanted:
        what = f"unknown event {', '.join(unknown)}" if unknown else "no event given"
        raise BadWebhookInput(f"{what}: use one or more of {', '.join(EVENTS)}")
    return [e for e in EVENTS if e in wanted]


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def backoff(attempts: int, jitter: float = 0.0) -> timedelta:
    """How long after its ``attempts``-th failed attempt a delivery is tried again:
    30 s doubling per attempt, capped at an hour, stretched by ``jitter`` (e.g. ±0.1) so
    deliveries failing together do not all come back in the same second."""
    base = BACKOFF_FIRST * (2 ** max(attempts - 1, 0)) if attempts < 20 else BACKOFF_CAP
    return min(base, BACKOFF_CAP) * (1 + jitter)


def _error(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


# --- subscriptions --------------------------------------------------------------------


async def add_subscription(
    db: Database, url: str, events: Sequence[str], *, now: datetime
) -> WebhookSubscription:
    """A new active subscription with a new secret (on the returned row: show it once)."""
    sub = WebhookSubscription(url=check_url(url), events=parse_events(events),
                              secret=new_secret(), active=True, failures=0, created_at=now)
    async with db.session() as s, s.begin():
        s.add(sub)
    return sub


@dataclass(frozen=True)
class SubscriptionRow:
    """A subscription with how many of its deliveries wait, as `sada webhooks list` shows."""

    subscription: WebhookSubscription
    pending: int


async def list_subscriptions(db: Database) -> list[SubscriptionRow]:
    pending = (
        select(col(WebhookDelivery.subscription_id), func.count())
        .where(col(WebhookDelivery.status) != "delivered")
        .group_by(col(WebhookDelivery.subscription_id))
    )
    async with db.session() as s, s.begin():
        subs = list(await s.exec(select(WebhookSubscription)
                                 .order_by(col(WebhookSubscription.id))))
        counts = {sid: n for sid, n in (await s.exec(pending)).all()}
    return [SubscriptionRow(sub, int(counts.get(sub.id or 0, 0))) for sub in subs]


def _missing(subscription_id: int) -> NotFound:
    return NotFound(f"there is no webhook {subscription_id}; `sada webhooks list` shows them")


async def get_subscription(db: Database, subscription_id: int) -> WebhookSubscription:
    if not storable_id(subscription_id):
        raise _missing(subscription_id)
    async with db.session() as s, s.begin():
        sub = await s.get(WebhookSubscription, subscription_id)
    if sub is None:
        raise _missing(subscription_id)
    return sub


async def remove_subscription(db: Database, subscription_id: int) -> WebhookSubscription:
    """Delete a subscription and its deliveries (queued ones are never sent)."""
    if not storable_id(subscription_id):
        raise _missing(subscription_id)
    async with db.session() as s, s.begin():
        sub = await s.get(WebhookSubscription, subscription_id)
        if sub is None:
            raise _missing(subscription_id)
        # explicitly: SQLite enforces ON DELETE CASCADE only with its foreign keys pragma on
        await s.exec(delete(WebhookDelivery)
                     .where(col(WebhookDelivery.subscription_id) == subscription_id))
        await s.delete(sub)
    return sub


async def enable_subscription(
    db: Database, subscription_id: int, *, now: datetime
) -> SubscriptionRow:
    """Make a subscription active again with a clean slate: its waiting deliveries are due
    now, each with its attempts back at zero."""
    if not storable_id(subscription_id):
        raise _missing(subscription_id)
    async with db.session() as s, s.begin():
        sub = await s.get(WebhookSubscription, subscription_id, with_for_update=True)
        if sub is None:
            raise _missing(subscription_id)
        sub.sqlmodel_update({"active": True, "failures": 0, "failing_since": None,
                             "disabled_at": None})
        resumed = await s.exec(
            update(WebhookDelivery)
            .where(col(WebhookDelivery.subscription_id) == subscription_id,
                   col(WebhookDelivery.status) == "queued")
            .values(due_at=now, attempts=0)
            .returning(col(WebhookDelivery.id))
        )
        pending = len(resumed.all())
    return SubscriptionRow(sub, pending)


# --- events ---------------------------------------------------------------------------


def event_body(event_id: str, event_type: str, created_at: datetime,
               data: Mapping[str, Any]) -> str:
    """The JSON document POSTed for an event: {"id", "type", "created_at", "data"}."""
    return json.dumps({"id": event_id, "type": event_type, "created_at": _stamp(created_at),
                       "data": data}, ensure_ascii=False, separators=(",", ":"), default=str)


async def emit(
    s: AsyncSession, event_type: str, data: Mapping[str, Any], *, now: datetime
) -> str | None:
    """Queue an event for every subscription wanting it, inside the caller's transaction;
    return its id, or None when no subscription wants it.

    Disabled subscriptions get it too: it waits for them to be enabled again."""
    if event_type not in EVENTS:
        raise ValueError(f"unknown webhook event {event_type!r}: use one of {', '.join(EVENTS)}")
    # Few rows, JSON lists: filtered here, the same on both backends.
    subs = [sub for sub in await s.exec(select(WebhookSubscription))
            if event_type in sub.events]
    if not subs:
        return None
    event_id = str(uuid.uuid4())
    body = event_body(event_id, event_type, now, data)
    for sub in subs:
        assert sub.id is not None
        s.add(WebhookDelivery(subscription_id=sub.id, event_id=event_id,
                              event_type=event_type, body=body, status="queued",
                              due_at=now, attempts=0, created_at=now))
    await s.flush()
    return event_id


def contact_data(contact: Contact | None, contact_id: int) -> dict[str, Any]:
    return {"id": contact_id, "external_id": contact.external_id if contact else None}


async def case_data(s: AsyncSession, case: Case) -> dict[str, Any]:
    """What a case event says of the case: who, which score, why, and how it was closed."""
    contact = await s.get(Contact, case.contact_id)
    return {
        "case": {"id": case.id, "status": case.status, "opened_at": _stamp(case.opened_at),
                 "resolved_at": _stamp(case.resolved_at), "resolved_by": case.resolved_by,
                 "note": case.note},
        "flow": {"id": case.flow_id},
        "session_id": case.session_id,
        "contact": contact_data(contact, case.contact_id),
        "reason": {"question_id": case.question_id, "score": case.score,
                   "comment": case.comment},
    }


async def emit_case(s: AsyncSession, event_type: str, case: Case, *,
                    now: datetime) -> str | None:
    """case.opened / case.resolved for ``case``, in the caller's transaction."""
    if not await wanted(s, event_type):
        return None
    return await emit(s, event_type, await case_data(s, case), now=now)


async def wanted(s: AsyncSession, event_type: str) -> bool:
    """Whether any subscription wants ``event_type``: building a payload costs queries,
    skipped when nobody listens."""
    return any(event_type in sub.events for sub in await s.exec(select(WebhookSubscription)))


# --- delivering -----------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A claimed delivery with where it goes and the secret it is signed with."""

    delivery: WebhookDelivery
    url: str
    secret: str


def _claimable(now: Any) -> Any:
    return or_(
        and_(col(WebhookDelivery.status) == "queued", col(WebhookDelivery.due_at) <= now),
        # a worker died (or stalled) holding it: its lease is over, take it back
        and_(col(WebhookDelivery.status) == "sending", col(WebhookDelivery.locked_until) < now),
    )


def _of_active() -> Any:
    return col(WebhookDelivery.subscription_id).in_(
        select(col(WebhookSubscription.id)).where(col(WebhookSubscription.active)))


# Built once, with bound parameters, and a read before the claim's write transaction, as
# storage.outbox.claim_due: every process polls, and most polls find nothing.
_NOW: BindParameter[datetime] = bindparam("now")
_ANY_DUE = select(col(WebhookDelivery.id)).where(_claimable(_NOW), _of_active()).limit(1)
_DUE = (
    select(col(WebhookDelivery.id))
    .where(_claimable(_NOW), _of_active())
    .order_by(col(WebhookDelivery.due_at), col(WebhookDelivery.id))
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True, of=WebhookDelivery)
    .cte("due")
)
_CLAIM = (
    update(WebhookDelivery)
    .where(col(WebhookDelivery.id).in_(select(_DUE.c.id)))
    .where(_claimable(_NOW))
    .values(status="sending", locked_until=bindparam("until"))
    .returning(WebhookDelivery)
    .execution_options(synchronize_session=False)
)


async def claim_due(db: Database, *, now: datetime, limit: int,
                    lease: timedelta) -> list[Claimed]:
    """Atomically take up to ``limit`` due deliveries of active subscriptions, earliest
    first, for ``lease`` (see storage.outbox.claim_due for why a CTE and FOR UPDATE SKIP
    LOCKED: several processes claim side by side, never the same row)."""
    if limit <= 0:
        return []
    async with db.glance() as conn:
        if (await conn.execute(_ANY_DUE, {"now": now})).first() is None:
            return []
    params = {"now": now, "limit": limit, "until": now + lease}
    async with db.session() as s, s.begin():
        rows = list((await s.exec(_CLAIM, params=params)).scalars().all())
        ids = {r.subscription_id for r in rows}
        subs = {sub.id: sub for sub in await s.exec(
            select(WebhookSubscription).where(col(WebhookSubscription.id).in_(ids)))} \
            if ids else {}
    rows.sort(key=lambda r: (r.due_at, r.id))
    return [Claimed(r, subs[r.subscription_id].url, subs[r.subscription_id].secret)
            for r in rows if r.subscription_id in subs]


def _held(row: WebhookDelivery) -> list[Any]:
    return [col(WebhookDelivery.id) == row.id, col(WebhookDelivery.status) == "sending",
            col(WebhookDelivery.locked_until) == row.locked_until]


async def start_send(db: Database, row: WebhookDelivery) -> int | None:
    """One more attempt, committed right before the POST (as storage.outbox.start_send);
    the attempts so far, or None when the claim no longer holds (do not send)."""
    stmt = (update(WebhookDelivery).where(*_held(row))
            .values(attempts=col(WebhookDelivery.attempts) + 1)
            .returning(col(WebhookDelivery.attempts)))
    async with db.session() as s, s.begin():
        attempts = (await s.exec(stmt)).scalar()
    return None if attempts is None else int(attempts)


async def release(db: Database, rows: Sequence[WebhookDelivery]) -> int:
    """Hand claimed rows back unsent, as they were (a stop in the middle of a batch)."""
    if not rows:
        return 0
    claims = [and_(col(WebhookDelivery.id) == r.id,
                   col(WebhookDelivery.locked_until) == r.locked_until) for r in rows]
    stmt = (update(WebhookDelivery)
            .where(col(WebhookDelivery.status) == "sending", or_(*claims))
            .values(status="queued", locked_until=None)
            .returning(col(WebhookDelivery.id)))
    async with db.session() as s, s.begin():
        return len((await s.exec(stmt)).all())


async def mark_delivered(db: Database, row: WebhookDelivery, *, status: int,
                         now: datetime) -> bool:
    """Record a 2xx; the subscription's run of failures ends. False when the claim was lost
    (another worker has the row: its outcome counts)."""
    async with db.session() as s, s.begin():
        done = (await s.exec(
            update(WebhookDelivery).where(*_held(row))
            .values(status="delivered", delivered_at=now, locked_until=None,
                    last_status=status, last_error=None)
            .returning(col(WebhookDelivery.id)))).first()
        if done is None:
            return False
        await s.exec(update(WebhookSubscription)
                     .where(col(WebhookSubscription.id) == row.subscription_id)
                     .values(failures=0, failing_since=None, last_success_at=now,
                             last_error=None))
    return True


@dataclass(frozen=True)
class Failure:
    """What a failed attempt led to: when it is tried again, and whether the subscription
    was disabled by it (and staff alerted)."""

    retry_at: datetime
    disabled: bool


async def mark_failed_attempt(
    db: Database,
    row: WebhookDelivery,
    *,
    attempts: int,
    error: str,
    status: int | None,
    now: datetime,
    jitter: float = 0.0,
    staff: Sequence[tuple[str, str]] = (),
) -> Failure | None:
    """Record a failed attempt (a non-2xx answer, a timeout, a refused connection): the row
    goes back to the queue after :func:`backoff`; past the limits its subscription is
    disabled and each ``staff`` (channel, address) gets one alert, in the same transaction.
    None when the claim was lost."""
    retry_at = now + backoff(attempts, jitter)
    error = _error(error)
    async with db.session() as s, s.begin():
        done = (await s.exec(
            update(WebhookDelivery).where(*_held(row))
            .values(status="queued", due_at=retry_at, locked_until=None,
                    last_status=status, last_error=error)
            .returning(col(WebhookDelivery.id)))).first()
        if done is None:
            return None
        sub = await s.get(WebhookSubscription, row.subscription_id, with_for_update=True)
        if sub is None:
            return Failure(retry_at, False)
        failing_since = sub.failing_since or now
        sub.sqlmodel_update({"failures": sub.failures + 1, "failing_since": failing_since,
                             "last_error": error})
        disabled = False
        if sub.active and (attempts >= MAX_ATTEMPTS or now - failing_since >= FAILING_FOR):
            # the row lock above makes this the one failure that disables it
            sub.sqlmodel_update({"active": False, "disabled_at": now})
            await _alert_staff(s, sub, attempts=attempts, now=now, staff=staff)
            disabled = True
        await s.flush()
    return Failure(retry_at, disabled)


async def prune_delivered(db: Database, *, now: datetime) -> int:
    """Delete deliveries delivered more than KEEP_DELIVERED ago; return how many."""
    stmt = (delete(WebhookDelivery)
            .where(col(WebhookDelivery.status) == "delivered",
                   col(WebhookDelivery.delivered_at) < now - KEEP_DELIVERED)
            .returning(col(WebhookDelivery.id)))
    async with db.session() as s, s.begin():
        return len((await s.exec(stmt)).all())


def disabled_text(sub: WebhookSubscription, *, attempts: int) -> str:
    """The staff alert sent when a subscription is disabled."""
    since = sub.failing_since.strftime("%Y-%m-%d %H:%M UTC") if sub.failing_since else "?"
    return "\n".join([
        f"Webhook #{sub.id} disabled · {sub.url}",
        f"Failing since {since}: {sub.failures} failed attempts, the last delivery tried "
        f"{attempts} times.",
        f"Last error: {sub.last_error or '(none)'}",
        "Its events are kept and wait. When the endpoint works again: "
        f"sada webhooks enable {sub.id}",
    ])


async def _alert_staff(s: AsyncSession, sub: WebhookSubscription, *, attempts: int,
                       now: datetime, staff: Sequence[tuple[str, str]]) -> None:
    text = disabled_text(sub, attempts=attempts)
    stamp = now.strftime("%Y%m%dT%H%M%S")
    for channel, address in dict.fromkeys(staff):
        # one alert per disabling: the key names the subscription and the moment
        await enqueue(s, key=f"webhook-disabled:{sub.id}:{stamp}:{channel}:{address}",
                      kind="alert", channel=channel, address=address, contact_id=None,
                      text=text, due_at=now, now=now)


__all__ = [
    "BACKOFF_CAP",
    "BACKOFF_FIRST",
    "EVENTS",
    "FAILING_FOR",
    "KEEP_DELIVERED",
    "MAX_ATTEMPTS",
    "BadWebhookInput",
    "Claimed",
    "Failure",
    "SubscriptionRow",
    "add_subscription",
    "backoff",
    "case_data",
    "check_url",
    "claim_due",
    "contact_data",
    "disabled_text",
    "emit",
    "emit_case",
    "enable_subscription",
    "event_body",
    "get_subscription",
    "list_subscriptions",
    "mark_delivered",
    "mark_failed_attempt",
    "new_secret",
    "parse_events",
    "prune_delivered",
    "release",
    "remove_subscription",
    "start_send",
    "wanted",
]
