"""The outbox: every message the scheduler sends, as a row that survives restarts.

Writers (invitations, reminders, alerts, follow-ups) call :func:`enqueue` inside their own
transaction, so a message exists exactly when the state that caused it was committed. The
dispatcher then claims due rows atomically (:func:`claim_due`), records each send as it
starts (:func:`start_send`), sends, and records the outcome (:func:`mark_sent`,
:func:`reschedule`, :func:`mark_failed`), cancels rows whose subject is gone
(:func:`mark_cancelled`), or hands rows it did not send back (:func:`release`).

Claiming works the same on both backends, in one statement: ``WITH due AS (SELECT id …
ORDER BY due_at, id LIMIT n [FOR UPDATE SKIP LOCKED]) UPDATE … WHERE id IN (SELECT id FROM
due) RETURNING …``. On PostgreSQL the row locks let several processes claim side by side,
each skipping what another holds; SQLite (whose transactions here begin IMMEDIATE, so one
writer at a time) ignores ``FOR UPDATE`` and runs the same statement atomically. A claimed
row carries a lease (``locked_until``): a worker that dies mid-batch leaves rows in
"sending", and they become claimable again once it expires.

The lease end a claim wrote is also its fencing token: the outcome functions accept it as
``claimed_until`` and then change the row only if that claim still holds, so a worker whose
lease ran out cannot overwrite the result of the worker that took the row over.

``attempts`` counts sends really started, never claims: a claim may hold up to a whole batch
while only one message is on the wire, and a process that is killed again and again (a crash
loop, a service manager's stop timeout) must not use up the attempts of messages it never
sent. :func:`start_send` commits the attempt before the transport is called, so what survives
``kill -9`` is right either way: a crash during a send counts toward giving up (the message
may have gone), a crash before it leaves the row exactly as it was.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, BindParameter, and_, bindparam, case, func, literal, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.sqltypes import UTCDateTime

from storage.db import Database
from storage.identities import as_address, contact_unreachable, mark_identity
from storage.models import Contact, Outbox

KINDS: tuple[str, ...] = ("invitation", "reminder", "alert", "followup", "overdue")
STATUSES: tuple[str, ...] = ("queued", "sending", "sent", "failed", "cancelled")
# Messages addressed to the contact themself (alerts and overdue promises go to staff chats).
RESPONDENT_KINDS: tuple[str, ...] = ("invitation", "reminder", "followup")

# Telegram refuses longer texts; an error text longer than this is only noise in `status`.
_MAX_ERROR = 500


def _dialect(s: AsyncSession) -> str:
    return s.sync_session.get_bind().dialect.name


def _error(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


async def enqueue(
    s: AsyncSession,
    *,
    key: str,
    kind: str,
    channel: str,
    address: str | None = None,
    contact_id: int | None,
    text: str | None = None,
    due_at: datetime,
    now: datetime,
    invitation_id: int | None = None,
    action_id: int | None = None,
    case_id: int | None = None,
    chat_id: int | str | None = None,
) -> bool:
    """Queue one message inside the caller's transaction; False when ``key`` already exists.

    The key makes scheduling idempotent: a planner that runs twice (two processes, a retry
    after a crash, catch-up after downtime) queues each message once. ``channel`` names the
    channel whose transport sends it, ``address`` an identity's address on that channel
    (``chat_id`` is its former name, still accepted).

    A row is an intent: its kind and what it is about (``invitation_id``, ``action_id``,
    ``case_id``), written into a message only when it is sent (bot.followups.render). Only a
    free message about no such subject (a staff notice) carries its ``text``.
    """
    if address is None and chat_id is not None:
        address = str(chat_id)
    if address is not None:
        address = as_address(address)
    if kind not in KINDS:
        raise ValueError(f"unknown outbox kind {kind!r}: use one of {', '.join(KINDS)}")
    subject = (invitation_id, action_id, case_id) != (None, None, None)
    if text is not None and subject:
        raise ValueError("an outbox message is either about a subject (rendered when sent) "
                         "or a free text, not both")
    if not subject and not text:
        raise ValueError("an outbox message needs a non-empty text, or a subject "
                         "(invitation_id, action_id, case_id) to render it from")
    if not channel:
        raise ValueError("an outbox message needs the name of its channel")
    if not address:
        raise ValueError("an outbox message needs the address it goes to")
    insert = pg_insert if _dialect(s) == "postgresql" else sqlite_insert
    stmt = (
        insert(Outbox)
        .values(
            key=key,
            kind=kind,
            status="queued",
            channel=channel,
            address=address,
            contact_id=contact_id,
            text=text,
            due_at=due_at,
            attempts=0,
            invitation_id=invitation_id,
            action_id=action_id,
            case_id=case_id,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        # RETURNING tells both drivers apart reliably: a row back means it was inserted.
        .returning(col(Outbox.id))
    )
    return (await s.exec(stmt)).first() is not None


async def record_handed_over(
    s: AsyncSession,
    *,
    key: str,
    kind: str,
    channel: str,
    address: str,
    contact_id: int | None,
    invitation_id: int | None,
    now: datetime,
) -> bool:
    """Record, inside the caller's transaction, a message staff send themselves (a reminder
    link exported for e-mail or SMS) as already sent under ``key``; False when the key exists
    (queued or sent another way): then it is not handed over again. No dispatcher claims it
    (only queued rows are claimed), and the planners read it as a step that went out."""
    insert = pg_insert if _dialect(s) == "postgresql" else sqlite_insert
    stmt = (
        insert(Outbox)
        .values(key=key, kind=kind, status="sent", channel=channel, address=as_address(address),
                contact_id=contact_id, due_at=now, sent_at=now, attempts=0,
                invitation_id=invitation_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(col(Outbox.id))
    )
    return (await s.exec(stmt)).first() is not None


async def cancel_pending(
    s: AsyncSession,
    *,
    contact_id: int | None = None,
    invitation_id: int | None = None,
    channel: str | None = None,
    address: str | None = None,
    kinds: tuple[str, ...] = RESPONDENT_KINDS,
    now: datetime,
) -> int:
    """Cancel queued messages of a contact, an invitation and/or an address (channel and
    address; all given must match); return how many. Rows already being sent, or sent, are
    never touched."""
    if (address is None) != (channel is None):
        raise ValueError("cancel_pending needs both channel and address, or neither")
    if contact_id is None and invitation_id is None and address is None:
        raise ValueError("cancel_pending needs contact_id, invitation_id or an address")
    conditions = [col(Outbox.status) == "queued", col(Outbox.kind).in_(kinds)]
    if contact_id is not None:
        conditions.append(col(Outbox.contact_id) == contact_id)
    if invitation_id is not None:
        conditions.append(col(Outbox.invitation_id) == invitation_id)
    if address is not None:
        conditions += [col(Outbox.channel) == channel,
                       col(Outbox.address) == as_address(address)]
    stmt = (
        update(Outbox)
        .where(*conditions)
        .values(status="cancelled", last_error=f"cancelled at {now.isoformat()}")
        .returning(col(Outbox.id))
    )
    return len((await s.exec(stmt)).all())


def _claimable(now: Any) -> Any:
    return or_(
        and_(col(Outbox.status) == "queued", col(Outbox.due_at) <= now),
        # a worker died (or stalled) holding it: its lease is over, take it back
        and_(col(Outbox.status) == "sending", col(Outbox.locked_until) < now),
    )


# The claim and its probe are built once, with bound parameters: the dispatcher polls every
# second in every process, and building these statements was most of an idle process's CPU.
_NOW: BindParameter[datetime] = bindparam("now")
_OF_CHANNELS = col(Outbox.channel).in_(bindparam("channels", expanding=True))
_ANY_DUE = select(col(Outbox.id)).where(_claimable(_NOW), _OF_CHANNELS).limit(1)
_DUE = (
    select(col(Outbox.id))
    .where(_claimable(_NOW), _OF_CHANNELS)
    .order_by(col(Outbox.due_at), col(Outbox.id))
    .limit(bindparam("limit"))
    # PostgreSQL: lock what we pick, skip what another worker holds; SQLite drops this
    # clause and relies on its single writer (BEGIN IMMEDIATE) for the same guarantee.
    .with_for_update(skip_locked=True)
    # A CTE, not a plain IN (subquery): PostgreSQL may re-run an uncorrelated subquery
    # per outer row, and a re-run skips the rows this very UPDATE already changed, so
    # LIMIT would hand out more rows than asked. A data-modifying statement's CTE with
    # FOR UPDATE is evaluated exactly once.
    .cte("due")
)
_CLAIM = (
    update(Outbox)
    .where(col(Outbox.id).in_(select(_DUE.c.id)))
    # The CTE picked rows under lock, but re-check: a row's state is what counts.
    .where(_claimable(_NOW), _OF_CHANNELS)
    .values(status="sending", locked_until=bindparam("until"))
    .returning(Outbox)
    .execution_options(synchronize_session=False)
)


async def claim_due(
    db: Database,
    *,
    now: datetime,
    limit: int,
    lease: timedelta,
    worker: str,
    channels: Collection[str],
) -> list[Outbox]:
    """Atomically take up to ``limit`` due rows of ``channels``, earliest first, for ``lease``.

    Each returned row is "sending", with ``locked_until = now + lease``; no other claim
    returns it until the lease ends. A claim is not an attempt (see :func:`start_send`).
    Rows of other channels stay queued untouched: a process that does not run a channel
    never claims (nor spends the attempts of) its messages. ``worker`` names the claimer
    in logs.

    A read comes first and the claim's write transaction only when it finds a due row: most
    polls find nothing, and on SQLite a write transaction takes the one writer's lock.
    """
    if limit <= 0 or not channels:
        return []
    of = sorted(channels)
    async with db.glance() as conn:
        if (await conn.execute(_ANY_DUE, {"now": now, "channels": of})).first() is None:
            return []
    params = {"now": now, "channels": of, "limit": limit, "until": now + lease}
    async with db.session() as s, s.begin():
        rows = list((await s.exec(_CLAIM, params=params)).scalars().all())
    # RETURNING has no order of its own: hand rows back in due order.
    rows.sort(key=lambda r: (r.due_at, r.id))
    return rows


def _held(claimed: bool) -> list[Any]:
    """The row is still this claim's: its id, "sending", and (when the caller names its
    claim) the lease the claim set. Bound as ``outbox_id`` and ``claimed_until``."""
    conditions = [col(Outbox.id) == bindparam("outbox_id"), col(Outbox.status) == "sending"]
    if claimed:
        conditions.append(col(Outbox.locked_until) == bindparam("claimed_until"))
    return conditions


def _held_params(outbox_id: int, claimed_until: datetime | None) -> dict[str, Any]:
    params: dict[str, Any] = {"outbox_id": outbox_id}
    if claimed_until is not None:
        params["claimed_until"] = claimed_until
    return params


# A send's own writes (start_send, _finish, release) are one statement each, made for every
# message: they go through Database.alone (one round trip on PostgreSQL, no ORM session),
# which costs a message a good part less CPU than a session's transaction. The two every
# sent message makes are built once, as the claim is: building them was a third of the
# dispatcher's CPU a message. Keyed by whether the caller names its claim.
_START = {
    claimed: update(Outbox)
    .where(*_held(claimed))
    .values(attempts=col(Outbox.attempts) + 1)
    .returning(col(Outbox.attempts))
    for claimed in (False, True)
}
_SENT = {
    claimed: update(Outbox)
    .where(*_held(claimed))
    .values(status="sent", locked_until=None,
            sent_at=bindparam("sent_at", type_=UTCDateTime()),
            message_id=bindparam("message_id", type_=BigInteger()))
    .returning(col(Outbox.id))
    for claimed in (False, True)
}


async def _finish(db: Database, outbox_id: int, claimed_until: datetime | None,
                  values: dict[str, Any], *, stmt: Any = None, **params: Any) -> bool:
    """A held row's finishing UPDATE: built here from ``values``, or prebuilt (``stmt``
    with its own bound ``params``). False when the claim no longer held."""
    if stmt is None:
        stmt = (update(Outbox).where(*_held(claimed_until is not None)).values(**values)
                .returning(col(Outbox.id)))
    async with db.alone() as conn:
        found = await conn.execute(stmt, _held_params(outbox_id, claimed_until) | params)
        return found.first() is not None


async def start_send(
    db: Database, outbox_id: int, *, claimed_until: datetime | None = None
) -> int | None:
    """Record that a send of a claimed row starts now: one more attempt, committed.

    Call it right before the transport, never earlier: the count must survive a ``kill -9``
    during the send, and must not grow when the process dies before sending. Returns the
    row's attempts including this one, or None when the claim no longer holds (do not send).
    """
    async with db.alone() as conn:
        attempts = (await conn.execute(_START[claimed_until is not None],
                                       _held_params(outbox_id, claimed_until))).scalar()
    return None if attempts is None else int(attempts)


async def release(
    db: Database, rows: Sequence[Outbox], *, not_before: datetime | None = None
) -> int:
    """Hand claimed rows back to the queue unsent, as they were: no attempt, no error.

    ``rows`` are rows as :func:`claim_due` returned them (their ``locked_until`` is the claim
    that must still hold); ``not_before`` moves their due time no earlier than it (a 429
    pause). One transaction for all of them: a stop releases a whole batch at once. Returns
    how many were still held by these claims.
    """
    if not rows:
        return 0
    claims = [
        and_(col(Outbox.id) == row.id, col(Outbox.locked_until) == row.locked_until)
        for row in rows
    ]
    values: dict[str, Any] = {"status": "queued", "locked_until": None}
    if not_before is not None:
        due = col(Outbox.due_at)
        # typed like the column, so SQLite compares and stores it in the column's own format
        floor = literal(not_before, type_=UTCDateTime())
        values["due_at"] = case((due < floor, floor), else_=due)
    stmt = (
        update(Outbox)
        .where(col(Outbox.status) == "sending", or_(*claims))
        .values(**values)
        .returning(col(Outbox.id))
    )
    async with db.alone() as conn:
        return len((await conn.execute(stmt)).all())


async def mark_sent(
    db: Database,
    outbox_id: int,
    message_id: int | None,
    now: datetime,
    *,
    claimed_until: datetime | None = None,
) -> bool:
    """Record a delivered message; False when the row was no longer held by this claim."""
    return await _finish(db, outbox_id, claimed_until, {},
                         stmt=_SENT[claimed_until is not None], sent_at=now,
                         message_id=message_id)


async def reschedule(
    db: Database,
    outbox_id: int,
    due_at: datetime,
    error: str,
    *,
    claimed_until: datetime | None = None,
    count_attempt: bool = True,
) -> bool:
    """Put a claimed row whose send was tried back in the queue for ``due_at`` (429,
    network error …).

    ``count_attempt=False`` gives back the attempt :func:`start_send` recorded: a rate limit
    is Telegram pacing us, not the message failing, and must not bring it closer to giving
    up. (A row never sent goes back through :func:`release`.)
    """
    values: dict[str, Any] = {
        "status": "queued",
        "due_at": due_at,
        "locked_until": None,
        "last_error": _error(error),
    }
    if not count_attempt:
        values["attempts"] = case(
            (col(Outbox.attempts) > 0, col(Outbox.attempts) - 1), else_=0
        )
    return await _finish(db, outbox_id, claimed_until, values)


async def mark_failed(
    db: Database,
    outbox_id: int,
    error: str,
    now: datetime,
    *,
    claimed_until: datetime | None = None,
) -> bool:
    """Give up on a claimed row, keeping the reason."""
    return await _finish(
        db, outbox_id, claimed_until,
        {"status": "failed", "locked_until": None, "last_error": _error(error)},
    )


async def mark_cancelled(
    db: Database,
    outbox_id: int,
    reason: str,
    *,
    claimed_until: datetime | None = None,
) -> bool:
    """Cancel a claimed row that is not to be sent (its subject is gone), keeping why; no
    attempt is spent on it."""
    return await _finish(
        db, outbox_id, claimed_until,
        {"status": "cancelled", "locked_until": None, "last_error": _error(reason)},
    )


async def mark_blocked(
    db: Database,
    outbox_id: int,
    error: str,
    now: datetime,
    *,
    channel: str | None = None,
    claimed_until: datetime | None = None,
) -> int:
    """A 403 (blocked, deactivated): fail the row, mark the identity at its address
    unreachable and cancel every message still queued to that address, in one transaction;
    when that leaves the identity's contact with no reachable identity, every message queued
    for the contact is cancelled too. Returns how many queued messages were cancelled.

    The row's own channel is the one that answered (``channel`` is ignored, kept for
    callers). An alert to a staff chat marks only that chat's identity, if it has one, never
    the respondent it is about.
    """
    async with db.session() as s, s.begin():
        row = (
            await s.exec(
                update(Outbox)
                .where(*_held(claimed_until is not None))
                .values(status="failed", locked_until=None, last_error=_error(error))
                .returning(col(Outbox.channel), col(Outbox.address)),
                params=_held_params(outbox_id, claimed_until),
            )
        ).first()
        if row is None:
            return 0
        sent_on, address = row
        owner = await mark_identity(s, sent_on, address, unreachable=True)
        cancelled = await cancel_pending(s, channel=sent_on, address=address, kinds=KINDS,
                                         now=now)
        if owner is not None and await contact_unreachable(s, owner):
            await s.exec(update(Contact).where(col(Contact.id) == owner)
                         .values(updated_at=now))
            cancelled += await cancel_pending(s, contact_id=owner, now=now)
    return cancelled


async def next_wakeup(db: Database, *, channels: Collection[str] | None = None) -> datetime | None:
    """When something next becomes claimable: the earliest queued due time or lease end
    (of rows of ``channels`` only, when given: the others are not this process's to send)."""
    mine = [] if channels is None else [col(Outbox.channel).in_(sorted(channels))]
    async with db.session() as s, s.begin():
        due = (
            await s.exec(
                select(func.min(Outbox.due_at)).where(col(Outbox.status) == "queued", *mine)
            )
        ).one()
        lease = (
            await s.exec(
                select(func.min(Outbox.locked_until)).where(
                    col(Outbox.status) == "sending", *mine
                )
            )
        ).one()
    times = [t for t in (_aware(due), _aware(lease)) if t is not None]
    return min(times) if times else None


@dataclass(frozen=True)
class Failure:
    id: int
    kind: str
    channel: str
    address: str
    attempts: int
    due_at: datetime
    error: str


@dataclass(frozen=True)
class OutboxStatus:
    """What `sada status` shows: counts by (kind, status) and the queue's timing."""

    now: datetime
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    next_due_at: datetime | None = None  # earliest queued row, possibly already overdue
    overdue: int = 0  # queued rows whose time has come (a backlog when it stays high)
    oldest_queued_at: datetime | None = None  # creation time of the oldest queued row
    failures: list[Failure] = field(default_factory=list)  # latest first

    def count(self, *, kind: str | None = None, status: str | None = None) -> int:
        return sum(
            n
            for (k, st), n in self.counts.items()
            if (kind is None or k == kind) and (status is None or st == status)
        )


async def status_summary(db: Database, now: datetime, *, failures: int = 10) -> OutboxStatus:
    """Counts by kind and status, the next due time, the backlog and the latest failures."""
    queued = col(Outbox.status) == "queued"
    async with db.session() as s, s.begin():
        counted = await s.exec(
            select(Outbox.kind, Outbox.status, func.count(col(Outbox.id))).group_by(
                col(Outbox.kind), col(Outbox.status)
            )
        )
        counts = {(kind, st): int(n) for kind, st, n in counted.all()}
        first = select(func.min(Outbox.due_at), func.min(Outbox.created_at)).where(queued)
        timing = (await s.exec(first)).one()
        overdue = (
            await s.exec(
                select(func.count(col(Outbox.id))).where(queued, col(Outbox.due_at) <= now)
            )
        ).one()
        failed = (
            await s.exec(
                select(Outbox)
                .where(col(Outbox.status) == "failed")
                .order_by(col(Outbox.due_at).desc(), col(Outbox.id).desc())
                .limit(failures)
            )
        ).all()
    return OutboxStatus(
        now=now,
        counts=counts,
        next_due_at=_aware(timing[0]),
        overdue=int(overdue),
        oldest_queued_at=_aware(timing[1]),
        failures=[
            Failure(
                id=r.id or 0,
                kind=r.kind,
                channel=r.channel,
                address=r.address,
                attempts=r.attempts,
                due_at=r.due_at,
                error=r.last_error or "",
            )
            for r in failed
        ],
    )


def _aware(value: Any) -> datetime | None:
    # Aggregates bypass the column type: SQLite hands back text, PostgreSQL an aware value.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
