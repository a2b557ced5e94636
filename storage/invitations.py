"""Invitations: queries, and the hooks that keep them in step with sessions and delivery.

Every function takes the caller's ``AsyncSession`` and never commits: an `invite` run, a
reminder pass or a session's status change is one transaction, so an invitation, its
deep link and its outbox message exist together or not at all.

Status of an invitation (per stakeholder, so staff see which roles stayed silent):
``scheduled`` (message queued) → ``sent`` → ``started`` → ``completed``; or ``skipped``
(never sent: ``reason`` says why), ``expired`` (no answer after the last reminder) or
``cancelled`` (opt-out, block, declined consent, message not delivered).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, not_, or_, update
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.identities import (
    contact_unreachable,
    identities_of,
    mark_identity,
    unreachable_clause,
)
from storage.models import Contact, ContactIdentity, Invitation, LinkToken, Outbox, SurveySession
from storage.outbox import cancel_pending

# Invitations still waiting for an answer: reminders and completion apply to these.
OPEN_STATUSES: tuple[str, ...] = ("scheduled", "sent", "started")
# Invitations that reached (or are about to reach) the person: these count for fatigue and
# for the per-account limit. Skipped and cancelled ones never reached anyone.
COUNTED_STATUSES: tuple[str, ...] = ("scheduled", "sent", "started", "completed", "expired")
# A late answer is still an answer: these may still become started or completed.
ANSWERABLE_STATUSES: tuple[str, ...] = (*OPEN_STATUSES, "expired", "cancelled")
SKIP_REASONS: tuple[str, ...] = ("opted_out", "unreachable", "fatigue", "account_limit", "no_link")


# --- contacts selected for an invitation ------------------------------------------------


def _contact_filters(
    *,
    segment: str | None = None,
    account: str | None = None,
    role: str | None = None,
    language: str | None = None,
    opted_out: bool | None = None,
    unreachable: bool | None = None,
    reachable: bool | None = None,
    ids: Sequence[int] | None = None,
) -> list[Any]:
    conditions: list[Any] = []
    if segment is not None:
        conditions.append(col(Contact.segment) == segment)
    if account is not None:
        conditions.append(col(Contact.company) == account)
    if role is not None:
        conditions.append(col(Contact.role) == role)
    if language is not None:
        conditions.append(col(Contact.language) == language)
    if opted_out is not None:
        conditions.append(col(Contact.opted_out).is_(opted_out))
    if unreachable is not None:
        conditions.append(unreachable_clause() if unreachable else not_(unreachable_clause()))
    if reachable is True:
        conditions += [col(Contact.opted_out).is_(False), not_(unreachable_clause())]
    elif reachable is False:
        conditions.append(or_(col(Contact.opted_out).is_(True), unreachable_clause()))
    if ids is not None:
        conditions.append(col(Contact.id).in_(list(ids)))
    return conditions


async def find_contacts(
    s: AsyncSession, *, limit: int | None = None, **filters: Any
) -> list[Contact]:
    """Contacts matching every given filter (see `_contact_filters`), by account, role, id."""
    query = (
        select(Contact)
        .where(*_contact_filters(**filters))
        # NULLs last on both backends (SQLite sorts them first, PostgreSQL last)
        .order_by(col(Contact.company).is_(None), col(Contact.company),
                  col(Contact.role).is_(None), col(Contact.role), col(Contact.id))
    )
    if limit is not None:
        query = query.limit(limit)
    return list((await s.exec(query)).all())


async def count_contacts(s: AsyncSession, **filters: Any) -> int:
    query = select(func.count(col(Contact.id))).where(*_contact_filters(**filters))
    return int((await s.exec(query)).one())


async def contacts_by_key(
    s: AsyncSession, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Contact]:
    """Contacts by (channel, address); on channel "external", by the company's own id."""
    found: dict[tuple[str, str], Contact] = {}
    by_company = [address for channel, address in keys if channel == "external"]
    by_address = [(channel, address) for channel, address in keys if channel != "external"]
    for start in range(0, len(by_company), 500):
        for contact in await s.exec(select(Contact).where(
                col(Contact.external_id).in_(by_company[start:start + 500]))):
            found[("external", contact.external_id or "")] = contact
    for start in range(0, len(by_address), 500):
        chunk = by_address[start:start + 500]
        conditions = [(col(ContactIdentity.channel) == c) & (col(ContactIdentity.address) == a)
                      for c, a in chunk]
        rows = await s.exec(
            select(ContactIdentity, Contact)
            .join(Contact, col(Contact.id) == col(ContactIdentity.contact_id))
            .where(or_(*conditions)))
        for identity, contact in rows.all():
            found[(identity.channel, identity.address)] = contact
    return found


# --- creating and finding invitations ---------------------------------------------------


async def create_invitation(
    s: AsyncSession,
    *,
    contact_id: int,
    flow_id: str,
    context: dict[str, Any],
    status: str,
    due_at: datetime,
    now: datetime,
    token: str | None = None,
    reason: str | None = None,
    sent_at: datetime | None = None,
) -> Invitation:
    row = Invitation(contact_id=contact_id, flow_id=flow_id, context=context, status=status,
                     reason=reason, due_at=due_at, sent_at=sent_at, token=token,
                     created_at=now)
    s.add(row)
    await s.flush()  # the id names the outbox message
    return row


async def create_link_token(
    s: AsyncSession,
    *,
    token: str,
    flow_id: str,
    contact_id: int | None,
    context: dict[str, Any],
    now: datetime,
) -> LinkToken:
    """The deep-link row `Store.create_link` writes, inside the caller's transaction (an
    `invite` run must create invitations, links and messages all together)."""
    row = LinkToken(token=token, flow_id=flow_id, contact_id=contact_id, context=context,
                    created_at=now)
    s.add(row)
    return row


async def insert_invitations(
    s: AsyncSession, invitations: Sequence[Invitation], links: Sequence[LinkToken]
) -> None:
    """Add many invitations and their links at once (batched INSERTs); ids are set after."""
    s.add_all(links)
    s.add_all(invitations)
    await s.flush()


async def invitation_by_token(s: AsyncSession, token: str) -> Invitation | None:
    query = select(Invitation).where(Invitation.token == token).limit(1)
    return (await s.exec(query)).first()


async def list_invitations(
    s: AsyncSession,
    *,
    flow_id: str | None = None,
    statuses: Sequence[str] | None = None,
    contact_id: int | None = None,
    account: str | None = None,
) -> list[Invitation]:
    query = select(Invitation).order_by(col(Invitation.id))
    if flow_id is not None:
        query = query.where(Invitation.flow_id == flow_id)
    if statuses is not None:
        query = query.where(col(Invitation.status).in_(list(statuses)))
    if contact_id is not None:
        query = query.where(Invitation.contact_id == contact_id)
    if account is not None:
        query = query.join(Contact, col(Contact.id) == col(Invitation.contact_id)).where(
            col(Contact.company) == account)
    return list((await s.exec(query)).all())


def _reached_at() -> Any:
    # A scheduled invitation counts from when it is due, a sent one from when it went out.
    return func.coalesce(col(Invitation.sent_at), col(Invitation.due_at))


async def last_surveyed(
    s: AsyncSession, *, flow_id: str, contact_ids: Sequence[int]
) -> dict[int, datetime]:
    """Per contact: the latest time they were invited to, or started, this flow.

    Both count for survey fatigue: someone who answered through a public link last week
    is as tired of the survey as someone we invited."""
    latest: dict[int, datetime] = {}

    def keep(contact_id: int, when: datetime | None) -> None:
        if when is not None and (contact_id not in latest or when > latest[contact_id]):
            latest[contact_id] = when

    for start in range(0, len(contact_ids), 500):
        chunk = list(contact_ids[start:start + 500])
        invited = await s.exec(
            select(Invitation.contact_id, Invitation.sent_at, Invitation.due_at).where(
                Invitation.flow_id == flow_id,
                col(Invitation.contact_id).in_(chunk),
                col(Invitation.status).in_(COUNTED_STATUSES),
            ))
        for contact_id, sent_at, due_at in invited.all():
            keep(contact_id, sent_at or due_at)
        started = await s.exec(
            select(SurveySession.contact_id, func.max(col(SurveySession.started_at)))
            .where(SurveySession.flow_id == flow_id, col(SurveySession.contact_id).in_(chunk))
            .group_by(col(SurveySession.contact_id)))
        for contact_id, when in started.all():
            keep(contact_id, _aware(when))
    return latest


async def account_invitees(
    s: AsyncSession, *, flow_id: str, accounts: Sequence[str], since: datetime
) -> dict[str, dict[int, str | None]]:
    """Per account: the stakeholders (contact id → role) invited to this flow since `since`
    — what the flow's `account_limit` counts."""
    if not accounts:
        return {}
    query = (
        select(Contact.company, Contact.id, Contact.role)
        .join(Invitation, col(Invitation.contact_id) == col(Contact.id))
        .where(
            Invitation.flow_id == flow_id,
            col(Contact.company).in_(list(accounts)),
            col(Invitation.status).in_(COUNTED_STATUSES),
            _reached_at() >= since,
        )
        .distinct()
    )
    found: dict[str, dict[int, str | None]] = {}
    for company, contact_id, role in (await s.exec(query)).all():
        # the WHERE keeps listed companies only, and a stored row always has its id
        assert company is not None and contact_id is not None
        found.setdefault(company, {})[contact_id] = role
    return found


def _aware(value: Any) -> datetime | None:
    # Aggregates skip the column type: SQLite hands back text, PostgreSQL an aware value.
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- delivery and session hooks ---------------------------------------------------------


async def mark_invitation_sent(
    s: AsyncSession, *, invitation_id: int, sent_at: datetime
) -> bool:
    """The invitation's message was delivered (the dispatcher may call this; the reminder
    planner also catches up from the outbox on its own)."""
    stmt = (
        update(Invitation)
        .where(col(Invitation.id) == invitation_id, col(Invitation.status) == "scheduled")
        .values(status="sent", sent_at=sent_at)
        .returning(col(Invitation.id))
    )
    return (await s.exec(stmt)).first() is not None


async def mark_started(s: AsyncSession, *, token: str, session_id: int, now: datetime) -> None:
    """The deep link (or `s1:g:<token>` button) of an invitation opened this session."""
    invitation = await invitation_by_token(s, token)
    if invitation is None or invitation.status not in ANSWERABLE_STATUSES:
        return
    if invitation.status == "started" and invitation.session_id == session_id:
        return
    invitation.status = "started"
    invitation.reason = None
    invitation.session_id = session_id
    # Opened before its message went out (a link sent by other means): the message is moot.
    await cancel_pending(s, invitation_id=invitation.id, kinds=("invitation",), now=now)


async def _open_invitations(
    s: AsyncSession, contact_id: int, flow_id: str | None, statuses: Sequence[str]
) -> list[Invitation]:
    query = select(Invitation).where(
        Invitation.contact_id == contact_id, col(Invitation.status).in_(list(statuses)))
    if flow_id is not None:
        query = query.where(Invitation.flow_id == flow_id)
    return list((await s.exec(query.with_for_update())).all())


async def on_session_status(
    s: AsyncSession,
    *,
    session_id: int,
    contact_id: int,
    flow_id: str,
    status: str,
    now: datetime,
) -> None:
    """Keep invitations in step with a session, in the transaction that commits its status.

    completed: the contact's invitations to this flow are completed and their queued
    messages cancelled. stopped (opt-out): every queued invitation, reminder and follow-up
    of the contact is cancelled. declined (said no to consent): this flow's invitations
    are cancelled. new/consent/active: an invitation to this flow that was not started yet
    is started by this session (opened from the menu rather than its link).
    """
    if status == "completed":
        for invitation in await _open_invitations(s, contact_id, flow_id,
                                                  ANSWERABLE_STATUSES):
            if invitation.session_id not in (None, session_id):
                continue  # another session of the same flow: that one has to finish
            invitation.status, invitation.reason = "completed", None
            invitation.session_id = session_id
            await cancel_pending(s, invitation_id=invitation.id,
                                 kinds=("invitation", "reminder"), now=now)
    elif status == "stopped":
        await on_opt_out(s, contact_id=contact_id, now=now)
    elif status == "declined":
        for invitation in await _open_invitations(s, contact_id, flow_id, OPEN_STATUSES):
            invitation.status, invitation.reason = "cancelled", "declined"
            await cancel_pending(s, invitation_id=invitation.id, now=now)
    elif status in ("new", "consent", "active"):
        for invitation in await _open_invitations(s, contact_id, flow_id,
                                                  ("scheduled", "sent")):
            if invitation.session_id is None:
                invitation.status, invitation.session_id = "started", session_id
                await cancel_pending(s, invitation_id=invitation.id, kinds=("invitation",),
                                     now=now)


async def on_opt_out(s: AsyncSession, *, contact_id: int, now: datetime) -> int:
    """The contact opted out with no survey open (/stop, or "stop" typed): the same as a
    session stopped — open invitations cancelled, queued messages to them too."""
    for invitation in await _open_invitations(s, contact_id, None, OPEN_STATUSES):
        invitation.status, invitation.reason = "cancelled", "opted_out"
    return await cancel_pending(s, contact_id=contact_id, now=now)


async def on_unreachable(
    s: AsyncSession, *, channel: str | None = None, address: str | None = None,
    contact_id: int | None = None, now: datetime,
) -> int:
    """A channel answered that (channel, address) is blocked or gone: that identity is
    unreachable and the messages queued to it are cancelled. When the contact has no
    reachable identity left, it is unreachable: its open invitations are cancelled and all
    its queued messages too. Returns how many messages were cancelled.

    Given only ``contact_id`` (no address), every identity of that contact is marked."""
    cancelled = 0
    if channel is not None and address is not None:
        contact_id = await mark_identity(s, channel, address, unreachable=True)
        cancelled += await cancel_pending(s, channel=channel, address=address, now=now)
    elif contact_id is not None:
        await s.exec(update(ContactIdentity)
                     .where(col(ContactIdentity.contact_id) == contact_id)
                     .values(unreachable=True))
    else:
        raise ValueError("on_unreachable needs channel and address, or contact_id")
    if contact_id is None:
        return cancelled
    contact = await s.get(Contact, contact_id, with_for_update=True)
    if contact is None or not await contact_unreachable(s, contact_id):
        return cancelled
    contact.updated_at = now
    for invitation in await _open_invitations(s, contact_id, None, ("scheduled", "sent")):
        invitation.status, invitation.reason = "cancelled", "unreachable"
    return cancelled + await cancel_pending(s, contact_id=contact_id, now=now)


async def adopt_chat(
    s: AsyncSession, *, contact_id: int, chat_contact_id: int, now: datetime,
    several: frozenset[str] = frozenset(),
) -> bool:
    """An invited contact opened their personal link in a chat: from now on that chat is
    one of the contact's identities. Returns False (nothing changed) unless `contact_id` has
    no identity on the chat's channel(s), but for the channels in `several`, where one
    person has an identity per browser (the web chat's visitors).

    The contact the bot created for the chat on its first update (`chat_contact_id`) is
    merged into the invited one, whose id the invitations, links and reports hold: its
    identities, sessions, consents and messages move over, the name and language it learned
    fill gaps, then it is deleted.
    """
    if contact_id == chat_contact_id:
        return False
    invited = await s.get(Contact, contact_id, with_for_update=True)
    chat = await s.get(Contact, chat_contact_id, with_for_update=True)
    if invited is None or chat is None:
        return False
    found = await identities_of(s, [contact_id, chat_contact_id])
    theirs = {i.channel for i in found.get(chat_contact_id, [])}
    if not theirs or (theirs - several) & {i.channel for i in found.get(contact_id, [])}:
        return False
    # Every table that names a contact, found in the metadata so tables added later move
    # too (all are plain contact_id foreign keys); identities are one of them.
    for table in SQLModel.metadata.sorted_tables:
        if table.name != "contact" and "contact_id" in table.c:
            await s.exec(update(table).where(table.c.contact_id == chat_contact_id)
                         .values(contact_id=contact_id))
    for name in ("name", "first_name", "language", "timezone", "preferred_channel"):
        if getattr(invited, name) is None and getattr(chat, name) is not None:
            setattr(invited, name, getattr(chat, name))
    await s.delete(chat)
    invited.updated_at = now
    await s.flush()
    return True


# --- reminders' view of the outbox ------------------------------------------------------


async def reminder_steps(
    s: AsyncSession, invitation_ids: Sequence[int]
) -> dict[int, list[tuple[int, str, datetime | None]]]:
    """Per invitation: its reminder messages as (step, outbox status, sent_at)."""
    steps: dict[int, list[tuple[int, str, datetime | None]]] = {}
    for start in range(0, len(invitation_ids), 500):
        chunk = list(invitation_ids[start:start + 500])
        rows = await s.exec(
            select(Outbox.invitation_id, Outbox.key, Outbox.status, Outbox.sent_at).where(
                col(Outbox.invitation_id).in_(chunk), Outbox.kind == "reminder"))
        for invitation_id, key, status, sent_at in rows.all():
            if invitation_id is None:
                continue
            step = int(key.rsplit(":", 1)[1])
            steps.setdefault(invitation_id, []).append((step, status, sent_at))
    return steps


async def invitation_messages(
    s: AsyncSession, invitation_ids: Sequence[int]
) -> dict[int, tuple[str, datetime | None]]:
    """Per invitation: its invitation message's outbox (status, sent_at)."""
    found: dict[int, tuple[str, datetime | None]] = {}
    for start in range(0, len(invitation_ids), 500):
        chunk = list(invitation_ids[start:start + 500])
        rows = await s.exec(
            select(Outbox.invitation_id, Outbox.status, Outbox.sent_at).where(
                col(Outbox.invitation_id).in_(chunk), Outbox.kind == "invitation"))
        for invitation_id, status, sent_at in rows.all():
            if invitation_id is not None:
                found[invitation_id] = (status, sent_at)
    return found
