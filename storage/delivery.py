"""What a channel reports of a message after sending it (WhatsApp's status webhooks), kept
on its outbox row: sent, delivered, read or failed, with the time and a failure's error.

Reports come out of order and more than once, so the state only moves forward (sent →
delivered → read); a failure reported after a delivery (another of the person's devices)
keeps the delivery and records the error. What a failure means for the row is the
channel's call (`on_failure`): the identity is unreachable, or the row is sent again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func
from sqlmodel import col, select

from storage.db import Database
from storage.invitations import on_unreachable
from storage.models import Outbox

__all__ = ["DELIVERY_STATES", "DeliveryOutcome", "OnFailure", "delivery_counts",
           "record_delivery"]

DELIVERY_STATES: tuple[str, ...] = ("sent", "delivered", "read", "failed")
_RANK = {"sent": 1, "delivered": 2, "read": 3}
_MAX_ERROR = 500
OnFailure = Literal["unreachable", "retry", "keep"]


@dataclass(frozen=True)
class DeliveryOutcome:
    found: bool  # an outbox row sent as that message
    delivery: str | None  # its delivery state afterwards
    unreachable: bool = False  # the identity was marked unreachable
    requeued: bool = False  # the row waits to be sent again


async def record_delivery(
    db: Database, *, channel: str, message_id: int, status: str, at: datetime | None,
    now: datetime, error: str | None = None, on_failure: OnFailure = "keep",
    retry_at: datetime | None = None, address: str | None = None,
) -> DeliveryOutcome:
    """Record `status` of the message `message_id` sent on `channel`, in one transaction.

    A failure with on_failure="unreachable" marks the identity the row was sent to (or
    `address`, the recipient, for a message sent outside the outbox) unreachable, and the row
    failed; "retry" puts a row not delivered back in the queue for `retry_at`."""
    if status not in DELIVERY_STATES:
        raise ValueError(f"unknown delivery state {status!r}")
    when = at or now
    async with db.session() as s, s.begin():
        row = (await s.exec(
            select(Outbox).where(col(Outbox.channel) == channel,
                                 col(Outbox.message_id) == message_id)
            .with_for_update()
        )).first()
        if row is None:
            unreachable = status == "failed" and on_failure == "unreachable" \
                and address is not None
            if unreachable:
                await on_unreachable(s, channel=channel, address=address, now=now)
            return DeliveryOutcome(found=False, delivery=None, unreachable=unreachable)
        current = row.delivery
        if status != "failed":
            if current not in _RANK or _RANK[current] < _RANK[status]:
                row.delivery, row.delivery_at = status, when
            s.add(row)
            return DeliveryOutcome(found=True, delivery=row.delivery)
        row.delivery_error = (error or "failed")[:_MAX_ERROR]
        if current in ("delivered", "read"):
            # another device got it: it reached the person
            s.add(row)
            return DeliveryOutcome(found=True, delivery=current)
        row.delivery, row.delivery_at = "failed", when
        unreachable = requeued = False
        if on_failure == "unreachable":
            row.status, row.last_error, row.locked_until = "failed", row.delivery_error, None
            s.add(row)
            await s.flush()
            await on_unreachable(s, channel=channel, address=row.address, now=now)
            unreachable = True
        elif on_failure == "retry" and row.status == "sent":
            row.status, row.locked_until = "queued", None
            row.due_at = retry_at or now
            row.last_error = row.delivery_error
            s.add(row)
            requeued = True
        else:
            s.add(row)
        return DeliveryOutcome(found=True, delivery="failed", unreachable=unreachable,
                               requeued=requeued)


async def delivery_counts(db: Database) -> dict[tuple[str, str], int]:
    """(channel, delivery state) → how many outbox rows the channel reported so, for the
    channels that report (WhatsApp)."""
    async with db.session() as s, s.begin():
        counted = await s.exec(
            select(Outbox.channel, Outbox.delivery, func.count(col(Outbox.id)))
            .where(col(Outbox.delivery).is_not(None))
            .group_by(col(Outbox.channel), col(Outbox.delivery)))
        return {(channel, state): int(n) for channel, state, n in counted.all()
                if state is not None}
