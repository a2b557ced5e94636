"""Detractor alerts: a score past the flow's threshold opens a case and alerts staff.

`crossings` is pure: which answers just given cross the flow's `alerts` thresholds.
`open_cases` runs inside the transaction that commits those answers (Store.save_state's
``within``), so a case and its alerts exist exactly when the answer does. Alerts are queued
in the outbox ``ALERT_GRACE`` after the score: the "why" question usually follows within a
minute, and an alert's text is written when it is sent (bot.followups.render), so it quotes
that comment. `note_comments` keeps the case's own comment up to date for `sada cases`.

Alert texts are for staff and in English. Their outbox rows carry no contact_id: the
recipient is a staff chat, and the respondent blocking the bot must neither cancel them nor
be blamed for a staff chat that refuses messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import bindparam
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import metrics
from bot.engine.state import Answered, Value
from bot.flow.loader import FlowError, load_flow_text
from bot.flow.model import (
    CesQuestion,
    ChoiceQuestion,
    CsatQuestion,
    Flow,
    NpsQuestion,
    TextQuestion,
)
from bot.staff_text import staff_line
from storage.models import Answer, Case, Contact, FlowVersion, SurveySession
from storage.outbox import enqueue
from storage.webhooks import emit_case

# Long enough for the comment that usually follows a low score to be in the alert, short
# enough that staff still hear "at once".
ALERT_GRACE = timedelta(minutes=2)

# Choice questions whose answer says which stakeholder someone is, when the contact record
# has no role (flows/b2b_supplier.yaml asks `stakeholder`; `role` itself is a contact field).
ROLE_QUESTIONS: tuple[str, ...] = ("stakeholder", "stakeholder_role", "role")

# A comment longer than this is cut in the alert (Telegram allows 4096 characters); the
# case keeps it whole.
_COMMENT_IN_ALERT = 1500

Kind = Literal["nps", "csat", "ces"]
_SCORED = (NpsQuestion, CsatQuestion, CesQuestion)


@dataclass(frozen=True)
class Crossing:
    """One answer past its threshold: NPS ≤ alerts.nps, CSAT ≤ alerts.csat, CES ≥ alerts.ces."""

    question_id: str
    kind: Kind
    score: int
    threshold: int


def _score(value: Value) -> int | None:
    # bool is an int in Python; a yes/no answer is never a score.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def threshold_of(flow: Flow, kind: str) -> int | None:
    """The flow's alert threshold for a kind of question (None: alerts disabled)."""
    return {"nps": flow.alerts.nps, "csat": flow.alerts.csat, "ces": flow.alerts.ces}.get(kind)


def crosses(kind: str, score: int, threshold: int) -> bool:
    # CES in Sada runs 1 = very easy … 7 = very difficult: high effort is the bad end.
    return score >= threshold if kind == "ces" else score <= threshold


def crossings(
    flow: Flow, before: Mapping[str, Value], after: Mapping[str, Value]
) -> list[Crossing]:
    """Answers to nps/csat/ces questions given (or changed) between ``before`` and ``after``
    that cross the flow's thresholds, in flow order. A threshold set to null disables it."""
    found: list[Crossing] = []
    for question in flow.questions:
        if not isinstance(question, _SCORED):
            continue
        threshold = threshold_of(flow, question.type)
        if threshold is None or question.id not in after:
            continue
        score = _score(after[question.id])
        if score is None or (question.id in before and before[question.id] == after[question.id]):
            continue
        if crosses(question.type, score, threshold):
            found.append(Crossing(question.id, question.type, score, threshold))
    return found


# --- reading what a session said ------------------------------------------------------


_FLOWS: dict[str, Flow] = {}


async def session_flow(s: AsyncSession, version_id: int) -> Flow | None:
    """The flow version a session ran on (cached by content); None if it no longer loads."""
    version = await s.get(FlowVersion, version_id)
    if version is None:
        return None
    if version.content_hash not in _FLOWS:
        try:
            flow = load_flow_text(version.content, f"<{version.flow_id}>").flow
        except FlowError:
            return None
        _FLOWS[version.content_hash] = flow
    return _FLOWS[version.content_hash]


async def session_answers(s: AsyncSession, session_id: int) -> dict[str, Answer]:
    rows = await s.exec(select(Answer).where(Answer.session_id == session_id))
    return {a.question_id: a for a in rows}


def comment_of(flow: Flow,
               answers: Mapping[str, Answer] | Mapping[str, Answered]) -> str | None:
    """The session's text answers so far, in flow order, one per line."""
    texts = []
    for question in flow.questions:
        answer = answers.get(question.id)
        if (isinstance(question, TextQuestion) and answer is not None and not answer.skipped
                and isinstance(answer.value, str) and answer.value.strip()):
            texts.append(answer.value.strip())
    return "\n".join(texts) or None


def _role_choice(flow: Flow, answers: Mapping[str, Answer]) -> tuple[str, str] | None:
    for qid in ROLE_QUESTIONS:
        answer = answers.get(qid)
        if answer is None or answer.skipped or not isinstance(answer.value, str):
            continue
        try:
            question = flow.question(qid)
        except KeyError:
            continue
        if isinstance(question, ChoiceQuestion):
            return qid, answer.value
    return None


def role_answer(flow: Flow, answers: Mapping[str, Answer]) -> str | None:
    """The option id a respondent chose for the flow's role-like question, if any."""
    found = _role_choice(flow, answers)
    return found[1] if found else None


def _option_label(flow: Flow, qid: str, option_id: str) -> str:
    question = flow.question(qid)
    for option in getattr(question, "options", []):
        if option.id == option_id:
            label = option.label.get("en") or option.label.get(flow.default_language)
            return label or option_id
    return option_id


def _role(contact: Contact, flow: Flow, answers: Mapping[str, Answer]) -> str | None:
    if contact.role:
        return contact.role
    found = _role_choice(flow, answers)
    if found is None:
        return None
    qid, chosen = found
    label = _option_label(flow, qid, chosen)
    return chosen if label == chosen else f"{chosen} ({label})"


# --- the alert text -------------------------------------------------------------------


def score_with_scale(flow: Flow, question_id: str, score: int) -> str:
    """"NPS 3 on 0–10", with the question id when it is not the kind's own name."""
    try:
        question = flow.question(question_id)
    except KeyError:
        return f"{question_id} {score}"
    kind = question.type
    low, high = question.bounds if isinstance(question, _SCORED) else (None, None)
    name = kind.upper() if kind in ("nps", "csat", "ces") else kind
    if question_id != kind:
        name += f" ({question_id})"
    text = f"{name} {score}" + (f" on {low}–{high}" if low is not None else "")
    if kind == "ces":
        text += f", {high} = most effort"
    return text


def alert_text(
    case: Case, contact: Contact, session: SurveySession, flow: Flow,
    answers: Mapping[str, Answer],
) -> str:
    """The staff alert for a case: who, which score against which threshold, what they
    wrote, and how to close it."""
    kind = _kind(flow, case.question_id)
    threshold = threshold_of(flow, kind)
    rule = ""
    if threshold is not None:
        rule = f" (alert at {'≥' if kind == 'ces' else '≤'} {threshold})"
    # Every value a respondent or a CRM supplied goes through staff_line: one line each,
    # no bidi override or line separator that could forge or reverse a line of the alert.
    who = staff_line(contact.name or contact.first_name or contact.external_id
                     or f"#{contact.id}")
    details = [f"{who} (contact {contact.id})"]
    role = _role(contact, flow, answers)
    for label, value in (("account", contact.company), ("role", role),
                         ("segment", contact.segment), ("language", session.language)):
        if value:
            details.append(f"{label}: {staff_line(value)}")
    lines = [
        f"Detractor alert · case #{case.id} · flow {case.flow_id}",
        score_with_scale(flow, case.question_id, case.score) + rule,
        "Contact: " + " · ".join(details),
    ]
    if session.context:
        context = ", ".join(f"{staff_line(str(k))}={staff_line(str(v))}"
                            for k, v in sorted(session.context.items()))
        lines.append(f"Context: {context}")
    comment = comment_of(flow, answers)
    if comment:
        comment = staff_line(comment)
        if len(comment) > _COMMENT_IN_ALERT:
            comment = comment[: _COMMENT_IN_ALERT - 1] + "…"
        lines.append("Comment: " + comment)
    else:
        lines.append("Comment: (none yet)")
    lines.append(f'Resolve: /resolve {case.id} <note>  or  sada cases resolve {case.id} '
                 '--note "…"')
    return "\n".join(lines)


def _kind(flow: Flow, question_id: str) -> str:
    try:
        return flow.question(question_id).type
    except KeyError:
        return ""


# --- cases and their alerts -----------------------------------------------------------


async def open_cases(
    s: AsyncSession,
    *,
    session_id: int,
    contact_id: int,
    flow: Flow,
    crossings: list[Crossing],
    now: datetime,
    staff: Sequence[tuple[str, str]],
) -> list[int]:
    """Open a case per crossing and queue its alert to every staff address ((channel,
    address) pairs), inside the caller's transaction; return the ids of the cases opened.

    A session has at most one case per question: answering again after /back updates the
    score of a case still open (and its queued alerts) instead of opening another.
    """
    if not crossings:
        return []
    session = await s.get(SurveySession, session_id)
    contact = await s.get(Contact, contact_id)
    if session is None or contact is None:
        return []
    answers = await session_answers(s, session_id)
    comment = comment_of(flow, answers)
    existing = {
        c.question_id: c
        for c in await s.exec(select(Case).where(Case.session_id == session_id))
    }
    opened: list[int] = []
    for crossing in crossings:
        case = existing.get(crossing.question_id)
        if case is not None:
            if case.status == "open" and case.score != crossing.score:
                # its queued alerts are written when sent: they show the new score
                case.score = crossing.score
                case.comment = comment
                await s.flush()
            continue
        case = Case(contact_id=contact_id, session_id=session_id, flow_id=flow.id,
                    question_id=crossing.question_id, score=crossing.score, comment=comment,
                    status="open", opened_at=now)
        s.add(case)
        await s.flush()
        assert case.id is not None
        for channel, address in dict.fromkeys(staff):
            await enqueue(s, key=_alert_key(case.id, channel, address), kind="alert",
                          channel=channel, address=address, contact_id=None,
                          due_at=now + ALERT_GRACE, now=now, case_id=case.id)
        await emit_case(s, "case.opened", case, now=now)  # webhooks, in this transaction
        opened.append(case.id)
        metrics.CASES_OPENED.labels(flow.id).inc()
    return opened


def _alert_key(case_id: int, channel: str, address: str) -> str:
    # Telegram's keys keep the form they had before there were other channels.
    return f"alert:{case_id}:{address}" if channel == "telegram" else \
        f"alert:{case_id}:{channel}:{address}"


# Built once: it runs after every answer, and building a select cost about as much CPU as
# running it (bench/README.md, third round).
_OPEN_CASES = select(Case).where(col(Case.session_id) == bindparam("p_session"),
                                 col(Case.status) == "open")


async def note_comments(s: AsyncSession, session_id: int, *, flow: Flow | None = None) -> int:
    """After a later answer in the same session (the "why"), put the comment into the
    session's open cases; return how many changed. Cheap when the session has no case, so
    it can run on every answer. (Their alerts need nothing: they are written when sent.)"""
    cases = list(await s.exec(_OPEN_CASES, params={"p_session": session_id}))
    if not cases:
        return 0
    if flow is None:
        session = await s.get(SurveySession, session_id)
        flow = await session_flow(s, session.flow_version_id) if session else None
    if flow is None:
        return 0
    comment = comment_of(flow, await session_answers(s, session_id))
    changed = 0
    for case in cases:
        if case.comment != comment:
            case.comment = comment
            changed += 1
    await s.flush()
    return changed
