"""Closing the loop: tell every respondent an action affects what we did about what they said.

Staff record an action (`ActionSpec`, from `sada actions add` or a YAML file). In the same
transaction, every affected respondent gets ONE follow-up queued in the outbox, in their
language: what they told us (one line), what was done, and what comes next (the promised
date in their calendar and digits). The outbox key `followup:<action>:<contact>` makes
re-running `send_followups` add only respondents who were not told yet.

Affected respondents: contacts with a completed session of the action's flow (the newest
one counts), who answered `question` when one is given, filtered by segment, account
(contact.company) and role (contact.role, or their answer to the flow's role-like question
such as `stakeholder`), or exactly the contact of `case`. Only Telegram contacts can be
written to; opted-out and unreachable contacts get nothing. Each group is counted in the
FollowupReport so staff are told who was not reached and why.

`check_promises` (run by the scheduler) alerts staff once when a promised date passes
without the action being marked done; `record_feedback` keeps a respondent's reply to a
follow-up as Feedback on its action.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.words import YESNO_WORDS
from bot.flow import placeholders
from bot.flow.model import (
    ChoiceQuestion,
    Flow,
    FlowId,
    Identifier,
    Lang,
    MultiQuestion,
    Question,
    TextQuestion,
    YesNoQuestion,
    by_code,
)
from bot.flow.recap import recap
from bot.followups.alerts import role_answer, session_flow
from bot.followups.dates import format_date, parse_day
from bot.i18n import Translator
from bot.settings import get_settings
from bot.staff_text import staff_line
from storage.actions import (
    Candidate,
    candidates,
    insert_action,
    overdue_since,
    promised_day,
)
from storage.cases import storable_id
from storage.db import Database, NotFound
from storage.identities import identities_of, is_unreachable, pick_identity
from storage.models import (
    RESUMABLE_STATUSES,
    Action,
    Answer,
    Contact,
    Feedback,
    Outbox,
    SurveySession,
)
from storage.outbox import enqueue

# Staff alerts to Telegram keep the outbox keys they had before there were other channels.
TELEGRAM = "telegram"
# A reply this long after the follow-up is a new conversation, not feedback on the action.
FEEDBACK_WINDOW = timedelta(days=14)
# A text answer quoted back to its author is cut here: the summary is one line.
_QUOTE = 120
_SCORED_KINDS = ("nps", "csat", "ces")

NonEmpty = Annotated[str, Field(min_length=1)]


class ActionSpec(BaseModel):
    """One action as staff write it (CLI options or one entry of an actions YAML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    flow: FlowId
    question: Identifier | None = None
    segment: NonEmpty | None = None
    account: NonEmpty | None = None
    role: NonEmpty | None = None
    case: int | None = Field(default=None, ge=1)
    text: dict[Lang, NonEmpty] = Field(min_length=1)
    promised: date | None = None

    @field_validator("promised", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        # Only YYYY-MM-DD, in any digits, as every date option reads it (parse_day):
        # pydantic would read 20261212 as seconds since 1970.
        if value is None:
            return value
        if isinstance(value, date):
            value = value.isoformat()
        if not isinstance(value, str):
            raise ValueError(f"expected a date like 2026-12-31, got {value!r}")
        return parse_day(value)

    @model_validator(mode="after")
    def _case_alone(self) -> ActionSpec:
        if self.case is not None and (self.segment or self.account or self.role):
            raise ValueError("case names one respondent: leave out segment, account and role")
        return self


@dataclass(frozen=True)
class Issue:
    """A problem with a spec: `where` is the field ("question", "text.fa" …)."""

    where: str
    message: str
    severity: str = "error"


def _near(word: str, choices: list[str]) -> str | None:
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if found:
        return found[0]
    # "b2b" for "b2b-supplier": a typed prefix is a likelier intent than any near miss
    started = [c for c in choices if c.startswith(word)]
    return started[0] if len(started) == 1 else None


def check_spec(spec: ActionSpec, flows: dict[str, Flow], *, today: date) -> list[Issue]:
    """What the schema cannot see: the flow and question exist, the flow's default language
    has a text (the fallback for everyone else), the promise is not already past."""
    issues: list[Issue] = []
    flow = flows.get(spec.flow)
    if flow is None:
        known = ", ".join(sorted(flows)) or "none"
        near = _near(spec.flow, sorted(flows))
        hint = f"did you mean '{near}'? " if near else ""
        issues.append(Issue("flow", f"there is no flow '{spec.flow}'; {hint}flows: {known}"))
        return issues
    if spec.question is not None:
        ids = [q.id for q in flow.questions]
        if spec.question not in ids:
            near = _near(spec.question, ids)
            hint = f"did you mean '{near}'? " if near else ""
            issues.append(Issue("question", f"flow '{flow.id}' has no question "
                                f"'{spec.question}'; {hint}questions: {', '.join(ids)}"))
    default = flow.default_language
    if default not in spec.text:
        issues.append(Issue(f"text.{default}", f"no '{default}' text: flow '{flow.id}' falls "
                            f"back to its default language '{default}', so that text is "
                            "required"))
    for lang in flow.languages:
        if lang != default and lang not in spec.text and default in spec.text:
            issues.append(Issue(f"text.{lang}", f"no '{lang}' text: respondents who answered "
                                f"in '{lang}' will get the '{default}' text", "warning"))
    for lang in spec.text:
        if lang not in flow.languages:
            issues.append(Issue(f"text.{lang}", f"'{lang}' text, but flow '{flow.id}' is not "
                                f"offered in '{lang}': nobody will read it", "warning"))
    if spec.promised is not None and spec.promised < today:
        issues.append(Issue("promised", f"the promised date {spec.promised.isoformat()} is "
                            "already past: give a date from today on, or leave it out"))
    return issues


# --- the follow-up message ---------------------------------------------------------------


def _text(text: Mapping[Lang, str], lang: str) -> str:
    return by_code(text).get(lang) or next(iter(text.values()), "")


def _quoted(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _QUOTE else line[: _QUOTE - 1] + "…"


def answer_shown(question: Question, answer: Answer, t: Translator) -> str | None:
    """An answer as its author would say it: labels in their language, their digits."""
    value = answer.value
    lang = t.lang
    if answer.skipped or value is None:
        return None
    if isinstance(question, YesNoQuestion) or isinstance(value, bool):
        yes, no = YESNO_WORDS.get(lang, YESNO_WORDS["en"])
        return yes if value in (True, "yes") else no
    if isinstance(question, ChoiceQuestion | MultiQuestion):
        labels = {o.id: _text(o.label, lang) for o in question.options}
        picked = value if isinstance(value, list) else [value]
        return t.join([labels.get(str(v), str(v)) for v in picked])
    if isinstance(question, TextQuestion):
        return _quoted(str(value)) or None
    bounds = getattr(question, "bounds", None)
    if bounds is not None and isinstance(value, int | float):
        return t.gettext("{score} out of {high}", score=value, high=bounds[1])
    if isinstance(value, int | float):
        return t.number(value)
    return _quoted(str(value))


def summary_question(flow: Flow, action: Action, answers: dict[str, Answer],
                     case_question: str | None) -> Question | None:
    """The answer the follow-up recalls: the action's question, the case's, or else the
    respondent's first NPS, CSAT or CES answer."""
    wanted = action.question_id or case_question
    if wanted is not None:
        try:
            return flow.question(wanted)
        except KeyError:
            return None
    for question in flow.questions:
        answer = answers.get(question.id)
        if question.type in _SCORED_KINDS and answer is not None and not answer.skipped:
            return question
    return None


def summary_line(flow: Flow, question: Question | None, answers: dict[str, Answer],
                 values: dict[str, Any], t: Translator) -> str | None:
    if question is None or question.id not in answers:
        return None
    shown = answer_shown(question, answers[question.id], t)
    if shown is None:
        return None
    asked = placeholders.render(recap(question, t, flow.default_language), values)
    return t.gettext("When we asked “{question}”, you answered: {answer}",
                     question=asked, answer=shown)


def followup_text(
    *, lang: str, survey: str, summary: str | None, action: str, promised: date | None
) -> str:
    """Thanks, what they told us, what was done, what comes next: every line in their
    language, RTL lines marked so a leading digit or Latin word cannot flip them."""
    t = Translator(lang)
    lines = [t.gettext("Thank you for answering “{survey}”.", survey=survey)]
    if summary:
        lines.append(summary)
    if promised is None:
        lines.append(t.gettext("What we did: {action}", action=action))
    else:
        lines.append(t.gettext("What we are doing: {action}", action=action))
        lines.append(t.gettext("What comes next: this will be done by {date}.",
                               date=format_date(promised, lang)))
    lines.append(t.gettext("Reply to this message if you would like to tell us more."))
    return "\n".join(t.line(line) for line in "\n".join(lines).splitlines())


# --- who is affected, and queueing their follow-ups -----------------------------------


def followup_language(
    action: Action, flow: Flow, contact: Contact, session: SurveySession
) -> tuple[str, str]:
    """(the language a respondent reads, the language of the action text they get): their
    language now when the flow has it, else the one they answered in, else the flow's; the
    flow's default text (or any) when the action has no text in it."""
    wanted: str = flow.default_language
    for known in (contact.language, session.language):
        if known in flow.languages:
            wanted = str(known)
            break
    lang = wanted
    if lang not in action.texts:
        lang = flow.default_language if flow.default_language in action.texts else next(
            iter(action.texts))
    return wanted, lang


@dataclass
class FollowupReport:
    """What `send_followups` did, for staff: who was told, who not and why."""

    action_id: int
    # the same action (flow, filters, case, texts, promise) was recorded before: it was
    # reused rather than added twice, so re-running an actions file tells nobody twice
    existing: bool = False
    queued: Counter[str] = field(default_factory=Counter)  # language → follow-ups queued
    already: int = 0  # told by an earlier run
    not_telegram: int = 0  # no reachable identity (imported without a chat, or all blocked)
    opted_out: int = 0
    unreachable: int = 0
    fallback: Counter[str] = field(default_factory=Counter)  # language lacking a text → count

    @property
    def total_queued(self) -> int:
        return sum(self.queued.values())

    @property
    def affected(self) -> int:
        return (self.total_queued + self.already + self.not_telegram + self.opted_out
                + self.unreachable)


def _matches_role(role: str | None, candidate: Candidate, flow: Flow | None) -> bool:
    if role is None:
        return True
    wanted = role.strip().casefold()
    if candidate.contact.role and candidate.contact.role.strip().casefold() == wanted:
        return True
    chosen = role_answer(flow, candidate.answers) if flow is not None else None
    return chosen is not None and chosen.casefold() == wanted


def _answered(question_id: str | None, candidate: Candidate) -> bool:
    if question_id is None:
        return True
    answer = candidate.answers.get(question_id)
    return answer is not None and not answer.skipped and answer.value is not None


async def _queue_followups(
    s: AsyncSession, action: Action, flow: Flow, now: datetime
) -> FollowupReport:
    assert action.id is not None
    report = FollowupReport(action.id)
    seen: set[int] = set()
    found = await candidates(s, action)
    identities = await identities_of(s, [c.contact.id for c in found if c.contact.id])
    for candidate in found:
        contact = candidate.contact
        assert contact.id is not None
        if contact.id in seen:
            continue  # an older session of someone already considered
        ran_on = await session_flow(s, candidate.session.flow_version_id) or flow
        if not _answered(action.question_id, candidate):
            continue
        if not _matches_role(action.role, candidate, ran_on):
            continue
        seen.add(contact.id)
        mine = identities.get(contact.id, [])
        target = pick_identity(mine, contact.preferred_channel)
        if contact.opted_out:
            report.opted_out += 1
            continue
        if is_unreachable(mine):
            report.unreachable += 1
            continue
        if target is None:
            report.not_telegram += 1
            continue
        wanted, lang = followup_language(action, flow, contact, candidate.session)
        # The text is written when it is sent (bot.followups.render), in their language then.
        added = await enqueue(s, key=f"followup:{action.id}:{contact.id}", kind="followup",
                              channel=target.channel, address=target.address,
                              contact_id=contact.id, due_at=now, now=now,
                              action_id=action.id)
        if not added:
            report.already += 1
            continue
        report.queued[lang] += 1
        if lang != wanted:
            report.fallback[wanted] += 1
    return report


async def add_action(
    db: Database, spec: ActionSpec, *, flow: Flow, now: datetime
) -> tuple[Action, FollowupReport]:
    """Record the action and queue its follow-ups, atomically (NotFound for an unknown
    case). The caller has checked the spec with `check_spec`."""
    result = await add_actions(db, [(spec, flow)], now=now)
    return result[0]


async def add_actions(
    db: Database, specs: list[tuple[ActionSpec, Flow]], *, now: datetime
) -> list[tuple[Action, FollowupReport]]:
    """Several actions (an actions file) in one transaction: all of them or none."""
    done: list[tuple[Action, FollowupReport]] = []
    async with db.session() as s, s.begin():
        for spec, flow in specs:
            action = await _recorded(s, spec, flow)
            existing = action is not None
            if action is None:
                action = await insert_action(
                    s, flow_id=flow.id, texts=by_code(spec.text), now=now,
                    question_id=spec.question, segment=spec.segment, account=spec.account,
                    role=spec.role, case_id=spec.case, promised=spec.promised,
                )
            report = await _queue_followups(s, action, flow, now)
            report.existing = existing
            done.append((action, report))
    return done


async def _recorded(s: AsyncSession, spec: ActionSpec, flow: Flow) -> Action | None:
    """An action recorded before with exactly this scope, texts and promise."""
    found = await s.exec(select(Action).where(
        Action.flow_id == flow.id, Action.question_id == spec.question,
        Action.segment == spec.segment, Action.account == spec.account,
        Action.role == spec.role, Action.case_id == spec.case,
    ).order_by(col(Action.id)))
    for action in found:
        if action.texts == dict(spec.text) and promised_day(action) == spec.promised:
            return action
    return None


async def send_followups(
    db: Database, action_id: int, *, flow: Flow, now: datetime
) -> FollowupReport:
    """Queue follow-ups for respondents affected since the action was added (those who
    completed the survey later); everyone already told is skipped."""
    async with db.session() as s, s.begin():
        action = await s.get(Action, action_id) if storable_id(action_id) else None
        if action is None:
            raise NotFound(f"there is no action {action_id}; `sada actions list` shows them")
        return await _queue_followups(s, action, flow, now)


# --- promises and feedback -------------------------------------------------------------


def overdue_text(action: Action, told: int) -> str:
    """Staff-facing (English): which promise slipped, to how many people, how to close it."""
    day = promised_day(action)
    what = _quoted(staff_line(action.texts.get("en") or next(iter(action.texts.values()), "")))
    scope = [f"{k} {staff_line(str(v))}" for k, v in (("question", action.question_id),
                                      ("segment", action.segment),
                                      ("account", action.account), ("role", action.role),
                                      ("case", action.case_id)) if v is not None]
    return "\n".join([
        f"Promise overdue · action #{action.id} · flow {action.flow_id}"
        + (f" ({', '.join(scope)})" if scope else ""),
        f"“{what}” was promised for {format_date(day, 'en') if day else '?'} and is not "
        "marked done.",
        f"{told} respondent{'s' if told != 1 else ''} were told about it.",
        f"Mark it done: sada actions done {action.id}",
    ])


async def check_promises(
    db: Database, *, now: datetime, staff: Sequence[tuple[str, str]] | None = None
) -> int:
    """Alert staff once about every promise whose date has passed without the action being
    marked done; return how many actions were alerted.

    ``staff`` ((channel, address) pairs) defaults to the settings' alert destinations of
    every channel (Settings.alert_to), for the scheduler's planner hook that passes only
    ``now``.
    Safe to run from several processes at once: an action is claimed by a conditional
    UPDATE of overdue_alerted_at, and the outbox keys `overdue:<action>:<chat>` dedupe
    anyway. Without staff chats nothing is claimed, so the alert waits for one to be set.
    """
    if staff is None:
        staff = get_settings().alert_to()
    if not staff:
        return 0
    due = select(Action).where(
        col(Action.promised_at).is_not(None),
        col(Action.done_at).is_(None),
        col(Action.overdue_alerted_at).is_(None),
        col(Action.promised_at) <= now - timedelta(days=1),
    ).order_by(col(Action.id))
    alerted = 0
    async with db.session() as s, s.begin():
        for action in list(await s.exec(due)):
            ends = overdue_since(action)
            if ends is None or ends > now:
                continue
            claimed = (await s.exec(
                update(Action)
                .where(col(Action.id) == action.id, col(Action.overdue_alerted_at).is_(None),
                       col(Action.done_at).is_(None))
                .values(overdue_alerted_at=now)
                .returning(col(Action.id))
            )).first()
            if claimed is None:
                continue  # another process took it, or it was marked done meanwhile
            for channel, address in dict.fromkeys(staff):
                # Telegram's keys keep the form they had before there were other channels
                key = f"overdue:{action.id}:{address}" if channel == TELEGRAM else \
                    f"overdue:{action.id}:{channel}:{address}"
                # written when sent (bot.followups.render): the count told is the count then
                await enqueue(s, key=key, kind="overdue", channel=channel, address=address,
                              contact_id=None, due_at=now, now=now, action_id=action.id)
            alerted += 1
    return alerted


async def record_feedback(db: Database, *, contact_id: int, text: str, now: datetime) -> bool:
    """Keep a respondent's message as feedback on the latest follow-up they were sent in
    the last FEEDBACK_WINDOW, when no survey of theirs is open (then it is an answer).
    True when kept: the caller thanks them."""
    text = text.strip()
    if not text:
        return False
    async with db.session() as s, s.begin():
        open_session = (await s.exec(select(SurveySession.id).where(
            SurveySession.contact_id == contact_id,
            col(SurveySession.status).in_(RESUMABLE_STATUSES)).limit(1))).first()
        if open_session is not None:
            return False
        latest = (await s.exec(
            select(Outbox.action_id)
            .where(Outbox.contact_id == contact_id, Outbox.kind == "followup",
                   Outbox.status == "sent", col(Outbox.action_id).is_not(None),
                   col(Outbox.sent_at) >= now - FEEDBACK_WINDOW, col(Outbox.sent_at) <= now)
            .order_by(col(Outbox.sent_at).desc(), col(Outbox.id).desc())
            .limit(1)
        )).first()
        if latest is None:
            return False
        s.add(Feedback(action_id=latest, contact_id=contact_id, text=text, received_at=now))
    return True


__all__ = [
    "ActionSpec",
    "FollowupReport",
    "Issue",
    "add_action",
    "add_actions",
    "check_promises",
    "check_spec",
    "followup_text",
    "record_feedback",
    "send_followups",
]
