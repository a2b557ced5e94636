"""Reminders to the silent: planned from the database, idempotent, catch-up safe.

`plan_reminders` runs on every scheduler tick (any process, any number of times). For each
invitation that went out and is not completed, it queues the next reminder step once its
time (`sent_at + after[k]`, moved into the contact's local window and working days) is at
most `lookahead` away. Its text is written when it is sent (bot.followups.render), so
someone who started in the meantime is offered to continue where they stopped. Each step
has a fixed outbox key (`reminder:<invitation id>:<k>`): running twice, or in two
processes, queues it once.

After downtime, only the latest step that came due is queued (once, at the next slot
inside the window); the earlier missed steps are dropped: one nudge, not a burst.

An invitation still unanswered `grace` (2 days by default) after its last reminder's slot
is marked expired; a late answer still completes it.

Invitations of contacts without a chat (a personal link) get no message from here: their
due steps are exported for staff by `sada remind` (bot.followups.link_reminders, with the
same `reminder_plan`) and recorded under the same keys, as sent on the channel ``link``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, false, or_, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import metrics
from bot.flow.loader import LoadedFlow
from bot.flow.model import Flow, duration
from bot.followups.invite import flow_title, language_for
from bot.followups.timing import next_slot
from bot.i18n import Translator
from bot.messaging.registry import CHANNELS
from bot.survey import contact_fields
from storage.db import Database
from storage.identities import identities_of, is_unreachable, pick_identity
from storage.invitations import invitation_messages, reminder_steps
from storage.models import Contact, ContactIdentity, Invitation, SurveySession
from storage.outbox import cancel_pending, enqueue

EXPIRY_GRACE = timedelta(days=2)
LOOKAHEAD = timedelta(minutes=15)
# Any fixed number: one planner at a time on a PostgreSQL database (others skip the tick).
_PG_PLANNER_LOCK = 0x5ADA_0401
_PENDING = ("queued", "sending")


@dataclass
class ReminderReport:
    planned: int = 0
    dropped: int = 0  # steps missed during downtime, replaced by a later one
    expired: int = 0
    sent: int = 0  # invitations found delivered since the last pass
    undelivered: int = 0  # invitations whose message failed or was cancelled
    started: int = 0
    completed: int = 0
    stopped: int = 0  # opted out, unreachable or declined, found by this pass
    busy: bool = False  # another process was planning: this pass did nothing

    def summary(self) -> str:
        parts = [f"{n} {label}" for n, label in (
            (self.planned, "reminders queued"), (self.dropped, "missed steps dropped"),
            (self.expired, "invitations expired")) if n]
        return ", ".join(parts) or "nothing to do"


@dataclass(frozen=True)
class StakeholderState:
    """One stakeholder of an account and their latest invitation to a flow."""

    account: str | None
    role: str | None
    contact_id: int
    name: str | None
    status: str  # an invitation status, or "not invited"
    reason: str | None = None
    sent_at: datetime | None = None
    reminders_sent: int = 0

    @property
    def silent(self) -> bool:
        """Asked, and no answer yet (or ever)."""
        return self.status in ("scheduled", "sent", "expired")


@dataclass
class _Candidate:
    invitation: Invitation
    contact: Contact
    steps: list[tuple[int, str, datetime | None]] = field(default_factory=list)
    identities: list[ContactIdentity] = field(default_factory=list)


def reminder_message(
    flow: Flow, contact: Contact, lang: str, *, started: bool
) -> tuple[str, str]:
    """(text, button label) of a reminder: resume for those who began, start otherwise."""
    t = Translator(lang)
    first = contact_fields(contact).get("first_name")
    title = flow_title(flow, lang)
    lines = [t.gettext("Hello {name},", name=first) if first else t.gettext("Hello,")]
    if started:
        lines.append(t.gettext("You started {title} but did not finish it. Would you like to "
                               "continue where you stopped? Your earlier answers are kept.",
                               title=title))
        label = t.gettext("Continue the survey")
    else:
        lines.append(t.gettext("A gentle reminder: we would still value your opinion on "
                               "{title}. It takes only a few minutes.", title=title))
        label = t.gettext("Start the survey")
    lines.append(t.gettext("Send /stop if you prefer not to receive surveys."))
    return "\n".join(t.line(line) for line in lines), label


async def _sync_delivery(s: AsyncSession, report: ReminderReport) -> None:
    """Invitations whose message the dispatcher has since sent (or given up on).

    A person may open the survey before this pass notices the delivery (status started,
    no sent_at yet): the send time is still what reminders count from."""
    waiting = list((await s.exec(
        select(Invitation)
        .where(col(Invitation.status).in_(("scheduled", "started")),
               col(Invitation.sent_at).is_(None))
        .with_for_update())).all())
    messages = await invitation_messages(s, [i.id for i in waiting if i.id is not None])
    for invitation in waiting:
        status, sent_at = messages.get(invitation.id or 0, ("queued", None))
        if status == "sent":
            invitation.sent_at = sent_at or invitation.due_at
            if invitation.status == "scheduled":
                invitation.status = "sent"
                report.sent += 1
        elif status in ("failed", "cancelled") and invitation.status == "scheduled":
            invitation.status, invitation.reason = "cancelled", "not_delivered"
            report.undelivered += 1


def _ripe(flows: Mapping[str, Flow], now: datetime, lookahead: timedelta,
          grace: timedelta) -> Any:
    """Invitations that may have something to do: sent long enough ago for their flow's
    first reminder (or, without reminders, for expiry). A reminder is never due before
    sent_at + after[0], so the rest are skipped without being read."""
    conditions = []
    for flow_id, flow in flows.items():
        first = duration(flow.reminders.after[0]) - lookahead \
            if flow.reminders and flow.reminders.after else grace
        conditions.append(and_(col(Invitation.flow_id) == flow_id,
                               col(Invitation.sent_at) <= now - first))
    return or_(*conditions) if conditions else false()


async def _candidates(
    s: AsyncSession, flows: Mapping[str, Flow], now: datetime, lookahead: timedelta,
    grace: timedelta,
) -> list[_Candidate]:
    rows = (await s.exec(
        select(Invitation, Contact)
        .join(Contact, col(Contact.id) == col(Invitation.contact_id))
        .where(col(Invitation.status).in_(("sent", "started")),
               _ripe(flows, now, lookahead, grace))
        .order_by(col(Invitation.id))
        .with_for_update(of=Invitation))).all()
    found = [_Candidate(invitation, contact) for invitation, contact in rows]
    steps = await reminder_steps(s, [c.invitation.id for c in found
                                     if c.invitation.id is not None])
    identities = await identities_of(s, [c.contact.id for c in found if c.contact.id])
    for candidate in found:
        candidate.steps = steps.get(candidate.invitation.id or 0, [])
        candidate.identities = identities.get(candidate.contact.id or 0, [])
    return found


async def _sessions(
    s: AsyncSession, candidates: Sequence[_Candidate]
) -> dict[tuple[int, str], list[SurveySession]]:
    """Sessions of the candidates' contacts and flows, latest first."""
    contact_ids = sorted({c.contact.id for c in candidates if c.contact.id is not None})
    flow_ids = sorted({c.invitation.flow_id for c in candidates})
    found: dict[tuple[int, str], list[SurveySession]] = {}
    for start in range(0, len(contact_ids), 500):
        rows = await s.exec(
            select(SurveySession)
            .where(col(SurveySession.contact_id).in_(contact_ids[start:start + 500]),
                   col(SurveySession.flow_id).in_(flow_ids))
            .order_by(col(SurveySession.started_at).desc(), col(SurveySession.id).desc()))
        for session in rows.all():
            found.setdefault((session.contact_id, session.flow_id), []).append(session)
    return found


def invitation_session(
    invitation: Invitation, sessions: Sequence[SurveySession]
) -> SurveySession | None:
    """The invitation's session: the one it recorded, else one begun since it was made (the
    person may have opened the survey from the menu rather than the invitation)."""
    for session in sessions:
        if session.id == invitation.session_id:
            return session
    if invitation.session_id is not None:
        return None
    return next((x for x in sessions if x.started_at >= invitation.created_at), None)


async def _follow_session(
    s: AsyncSession, candidate: _Candidate, session: SurveySession | None, now: datetime,
    report: ReminderReport,
) -> bool:
    """Bring the invitation up to date with its session; False when it is closed now."""
    invitation = candidate.invitation
    if session is None:
        return True
    if session.status == "completed":
        invitation.status, invitation.session_id, invitation.reason = "completed", session.id, None
        await cancel_pending(s, invitation_id=invitation.id, kinds=("invitation", "reminder"),
                             now=now)
        report.completed += 1
        return False
    if session.status == "declined":
        invitation.status, invitation.reason = "cancelled", "declined"
        await cancel_pending(s, invitation_id=invitation.id, now=now)
        report.stopped += 1
        return False
    if invitation.status != "started":
        invitation.status, invitation.session_id = "started", session.id
        report.started += 1
    return True


async def plan_reminders(
    db: Database,
    *,
    now: datetime,
    flows: Mapping[str, Flow | LoadedFlow],
    lookahead: timedelta = LOOKAHEAD,
    grace: timedelta = EXPIRY_GRACE,
) -> ReminderReport:
    """Queue the reminders that are due (or due within `lookahead`), expire invitations
    unanswered `grace` after their last reminder; one transaction, safe to repeat.

    `flows` maps flow ids to Flow (or LoadedFlow); invitations of other flows are left
    alone. On PostgreSQL one process plans at a time; the others find it busy and skip.
    """
    report = ReminderReport()
    # Accept the bot's loaded flows ({id: LoadedFlow}) as well as plain Flows.
    plain = {key: value.flow if isinstance(value, LoadedFlow) else value
             for key, value in flows.items()}
    async with db.session() as s, s.begin():
        if db.engine.dialect.name == "postgresql":
            locked = await s.exec(text(f"SELECT pg_try_advisory_xact_lock({_PG_PLANNER_LOCK})"))  # type: ignore[call-overload]
            if not locked.scalar():
                report.busy = True
                return report
        await _sync_delivery(s, report)
        candidates = await _candidates(s, plain, now, lookahead, grace)
        sessions = await _sessions(s, candidates)
        for candidate in candidates:
            invitation, contact = candidate.invitation, candidate.contact
            key = (contact.id or 0, invitation.flow_id)
            session = invitation_session(invitation, sessions.get(key, []))
            if not await _follow_session(s, candidate, session, now, report):
                continue
            if contact.opted_out or is_unreachable(candidate.identities):
                invitation.status = "cancelled"
                invitation.reason = "opted_out" if contact.opted_out else "unreachable"
                await cancel_pending(s, invitation_id=invitation.id, now=now)
                report.stopped += 1
                continue
            await _plan_one(s, candidate, plain[invitation.flow_id], session, now=now,
                            lookahead=lookahead, grace=grace, report=report)
    metrics.REMINDERS_PLANNED.inc(report.planned)  # committed
    return report


@dataclass(frozen=True)
class DueStep:
    """The reminder step an invitation is due for: `step`, sent at `due_at` (its slot, or
    the next slot from now when that has passed), replacing `dropped` earlier missed ones."""

    step: int
    due_at: datetime
    dropped: int


@dataclass(frozen=True)
class ReminderPlan:
    """Where an invitation stands in its flow's reminder steps (chat or link alike)."""

    slots: list[datetime]  # step k's local slot: sent_at + after[k] in window and days
    done: int  # steps already queued, sent or exported (the next one is this)
    pending: bool  # a step is queued or being sent
    sent: list[datetime]  # when each step went out (or was exported)
    due: DueStep | None  # the step due within the lookahead, if any

    def expires_at(self, sent_at: datetime, grace: timedelta) -> datetime:
        """A reminder sent late (catch-up after downtime, a link exported late) gets its
        full grace period too."""
        return max([self.slots[-1] if self.slots else sent_at, *self.sent]) + grace


def reminder_plan(
    candidate: _Candidate, flow: Flow, lang: str, *, now: datetime, lookahead: timedelta
) -> ReminderPlan:
    """The steps of `candidate`'s (sent) invitation: the one planner both the chat
    reminders and the exported link reminders (bot.followups.link_reminders) use."""
    invitation, contact = candidate.invitation, candidate.contact
    assert invitation.sent_at is not None
    sent = [when for _, status, when in candidate.steps if status == "sent" and when]
    rules = flow.reminders
    after = [duration(a) for a in rules.after] if rules else []

    def slot(at: datetime) -> datetime:
        assert rules is not None
        return next_slot(at, tz=contact.timezone, window=rules.window, days=rules.days,
                         lang=lang)

    slots = [slot(invitation.sent_at + delay) for delay in after]
    done = max((step for step, _, _ in candidate.steps), default=-1) + 1
    pending = any(status in _PENDING for _, status, _ in candidate.steps)
    due_steps = [k for k in range(done, len(slots)) if slots[k] - lookahead <= now]
    due = None
    if due_steps and not pending:
        step = due_steps[-1]
        due = DueStep(step, slots[step] if slots[step] >= now else slot(now),
                      len(due_steps) - 1)
    return ReminderPlan(slots, done, pending, sent, due)


async def _plan_one(
    s: AsyncSession, candidate: _Candidate, flow: Flow, session: SurveySession | None, *,
    now: datetime, lookahead: timedelta, grace: timedelta, report: ReminderReport,
) -> None:
    invitation, contact = candidate.invitation, candidate.contact
    sent = [when for _, status, when in candidate.steps if status == "sent" and when]
    invitation.reminders_sent = len(sent)
    invitation.last_reminder_at = max(sent) if sent else None
    if invitation.sent_at is None:
        return
    lang = session.language if session is not None else language_for(flow, contact)
    plan = reminder_plan(candidate, flow, lang, now=now, lookahead=lookahead)
    # each reminder goes where an invitation would go now (a block since moves it on)
    target = pick_identity(candidate.identities, contact.preferred_channel,
                           CHANNELS.reaching_absent())
    if plan.due is not None and target is not None and invitation.token:
        # written when sent (bot.followups.render): resume or start is decided then
        queued = await enqueue(s, key=reminder_key(invitation.id, plan.due.step),
                               kind="reminder", channel=target.channel,
                               address=target.address, contact_id=contact.id,
                               due_at=plan.due.due_at, now=now, invitation_id=invitation.id)
        if queued:
            report.planned += 1
            report.dropped += plan.due.dropped
            return
    if plan.pending or (target is not None and invitation.token
                        and plan.done < len(plan.slots)):
        return  # a reminder is still to come (or on its way): not expired yet
    # Without a chat, steps are exported for staff to send (bot.followups.link_reminders):
    # an exported step counts as sent, so expiry waits its grace after it.
    if now >= plan.expires_at(invitation.sent_at, grace):
        invitation.status = "expired"
        invitation.reason = "unfinished" if session is not None else "no_answer"
        report.expired += 1


def reminder_key(invitation_id: int | None, step: int) -> str:
    """The outbox key of step `step`: one row per invitation and step, however it goes."""
    return f"reminder:{invitation_id}:{step}"


async def silent_by_role(
    db: Database, flow_id: str, account: str | None = None
) -> list[StakeholderState]:
    """Every stakeholder of `account` (all accounts when None) with their latest invitation
    to `flow_id`, by account, role and name: staff see which roles stayed silent."""
    query = select(Contact).where(col(Contact.company).is_not(None))
    if account is not None:
        query = query.where(col(Contact.company) == account)
    async with db.session() as s, s.begin():
        contacts = list((await s.exec(query)).all())
        latest: dict[int, Invitation] = {}
        ids = [c.id for c in contacts if c.id is not None]
        for start in range(0, len(ids), 500):
            rows = await s.exec(
                select(Invitation).where(Invitation.flow_id == flow_id,
                                         col(Invitation.contact_id).in_(ids[start:start + 500]),
                                         col(Invitation.status) != "skipped")
                .order_by(col(Invitation.id)))
            for found in rows.all():
                latest[found.contact_id] = found
        # The planner notices deliveries on its next pass; staff should see them now.
        delivered = await invitation_messages(
            s, [i.id for i in latest.values() if i.status == "scheduled" and i.id is not None])
    states = []
    for contact in contacts:
        assert contact.id is not None
        invitation = latest.get(contact.id)
        status = invitation.status if invitation else "not invited"
        sent_at = invitation.sent_at if invitation else None
        message = delivered.get(invitation.id or 0) if invitation else None
        if message is not None and message[0] == "sent":
            status, sent_at = "sent", message[1]
        states.append(StakeholderState(
            account=contact.company, role=contact.role, contact_id=contact.id,
            name=contact.name, status=status,
            reason=invitation.reason if invitation else None,
            sent_at=sent_at,
            reminders_sent=invitation.reminders_sent if invitation else 0))
    states.sort(key=lambda x: (x.account or "", x.role or "\uffff", x.name or "",
                               x.contact_id))
    return states


def roles_summary(states: Sequence[StakeholderState]) -> dict[tuple[str, str], Counter[str]]:
    """(account, role) → count of stakeholders per status."""
    summary: dict[tuple[str, str], Counter[str]] = {}
    for state in states:
        summary.setdefault((state.account or "", state.role or "-"), Counter())[state.status] += 1
    return summary
