"""Actions staff took because of what respondents said, the follow-ups telling each
respondent, and the feedback they send back.

A promised date is a calendar day; it is stored as that day's 00:00 UTC in
`Action.promised_at`, and the promise is overdue once that day has ended in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, update
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.cases import storable_id
from storage.db import Database, NotFound, StorageError
from storage.models import Action, Answer, Case, Contact, Feedback, Outbox, SurveySession


class AlreadyDone(StorageError):
    """The action was marked done before."""


def promised_at(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def promised_day(action: Action) -> date | None:
    return action.promised_at.astimezone(UTC).date() if action.promised_at else None


def overdue_since(action: Action) -> datetime | None:
    """When the promise became overdue: the end (UTC) of the promised day."""
    if action.promised_at is None:
        return None
    return action.promised_at + timedelta(days=1)


async def insert_action(
    s: AsyncSession,
    *,
    flow_id: str,
    texts: dict[str, str],
    now: datetime,
    question_id: str | None = None,
    segment: str | None = None,
    account: str | None = None,
    role: str | None = None,
    case_id: int | None = None,
    promised: date | None = None,
) -> Action:
    """Add an action inside the caller's transaction (NotFound for an unknown case)."""
    if case_id is not None and (not storable_id(case_id) or await s.get(Case, case_id) is None):
        raise NotFound(f"there is no case {case_id}; `sada cases list --all` shows them")
    action = Action(flow_id=flow_id, question_id=question_id, segment=segment,
                    account=account, role=role, case_id=case_id, texts=dict(texts),
                    promised_at=promised_at(promised) if promised else None, created_at=now)
    s.add(action)
    await s.flush()
    return action


@dataclass(frozen=True)
class Candidate:
    """A completed session that may be affected by an action, with its contact and answers."""

    contact: Contact
    session: SurveySession
    answers: dict[str, Answer]


def _same(column: Mapped[str | None], value: str) -> ColumnElement[bool]:
    # Staff type "acme" for "Acme": accounts and segments match regardless of case.
    return func.lower(column) == value.strip().lower()


async def candidates(s: AsyncSession, action: Action) -> list[Candidate]:
    """Completed sessions of the action's flow, filtered by segment, account and case in SQL,
    newest first. Role and question filters need the flow and are the caller's."""
    query = (
        select(SurveySession, Contact)
        .join(Contact, col(Contact.id) == col(SurveySession.contact_id))
        .where(SurveySession.flow_id == action.flow_id, SurveySession.status == "completed")
    )
    if action.segment:
        query = query.where(_same(col(Contact.segment), action.segment))
    if action.account:
        query = query.where(_same(col(Contact.company), action.account))
    if action.case_id is not None:
        case = await s.get(Case, action.case_id) if storable_id(action.case_id) else None
        if case is None:
            return []
        query = query.where(SurveySession.id == case.session_id)
    query = query.order_by(col(SurveySession.completed_at).desc(), col(SurveySession.id).desc())
    rows = (await s.exec(query)).all()
    if not rows:
        return []
    ids = [session.id for session, _ in rows]
    answers: dict[int, dict[str, Answer]] = {}
    for chunk in _chunks(ids, 500):  # keep IN lists well under driver parameter limits
        found = await s.exec(select(Answer).where(col(Answer.session_id).in_(chunk)))
        for answer in found:
            answers.setdefault(answer.session_id, {})[answer.question_id] = answer
    return [Candidate(contact, session, answers.get(session.id or 0, {}))
            for session, contact in rows]


def _chunks(items: Sequence[int | None], size: int) -> list[list[int]]:
    clean = [i for i in items if i is not None]
    return [clean[i : i + size] for i in range(0, len(clean), size)]


async def get_action(db: Database, action_id: int) -> Action | None:
    if not storable_id(action_id):
        return None
    async with db.session() as s, s.begin():
        return await s.get(Action, action_id)


async def mark_done(db: Database, action_id: int, *, now: datetime) -> Action:
    """Mark the action done (stops overdue alerts); NotFound or AlreadyDone otherwise."""
    if not storable_id(action_id):
        raise NotFound(f"there is no action {action_id}; `sada actions list` shows them")
    stmt = (
        update(Action)
        .where(col(Action.id) == action_id, col(Action.done_at).is_(None))
        .values(done_at=now)
        .returning(col(Action.id))
    )
    async with db.session() as s, s.begin():
        changed = (await s.exec(stmt)).first()
        action = await s.get(Action, action_id, populate_existing=True)
    if action is None:
        raise NotFound(f"there is no action {action_id}; `sada actions list` shows them")
    if changed is None:
        assert action.done_at is not None
        raise AlreadyDone(f"action {action_id} was already marked done on "
                          f"{action.done_at.strftime('%Y-%m-%d %H:%M UTC')}")
    return action


@dataclass
class ActionRow:
    """An action with what became of its follow-ups, for `sada actions list`."""

    action: Action
    followups: dict[str, int] = field(default_factory=dict)  # outbox status → count
    feedback: int = 0

    @property
    def told(self) -> int:
        return self.followups.get("sent", 0)


async def list_actions(db: Database, *, flow_id: str | None = None) -> list[ActionRow]:
    query = select(Action).order_by(col(Action.id))
    if flow_id is not None:
        query = query.where(Action.flow_id == flow_id)
    async with db.session() as s, s.begin():
        rows = {a.id: ActionRow(a) for a in (await s.exec(query)).all()}
        if not rows:
            return []
        counted = await s.exec(
            select(Outbox.action_id, Outbox.status, func.count(col(Outbox.id)))
            .where(col(Outbox.kind) == "followup", col(Outbox.action_id).is_not(None))
            .group_by(col(Outbox.action_id), col(Outbox.status))
        )
        for action_id, status, n in counted.all():
            if action_id in rows:
                rows[action_id].followups[status] = int(n)
        feedback = await s.exec(
            select(Feedback.action_id, func.count(col(Feedback.id))).group_by(
                col(Feedback.action_id))
        )
        for action_id, n in feedback.all():
            if action_id in rows:
                rows[action_id].feedback = int(n)
    return list(rows.values())


async def feedback_of(db: Database, action_id: int) -> list[tuple[Feedback, Contact]]:
    """Replies to an action's follow-ups, oldest first, with who sent them."""
    query = (
        select(Feedback, Contact)
        .join(Contact, col(Contact.id) == col(Feedback.contact_id))
        .where(Feedback.action_id == action_id)
        .order_by(col(Feedback.received_at), col(Feedback.id))
    )
    async with db.session() as s, s.begin():
        return [(f, c) for f, c in (await s.exec(query)).all()]
