"""Outbox rows become messages at send time: one renderer for every kind of follow-up.

Planners queue intents (an invitation, a reminder, the follow-up of an action, a case's
alert, an overdue promise) addressed to an identity; the dispatcher asks :func:`render` for
each row just before sending it. So the message is in the contact's language *now* (a
``/language`` since planning counts), says what is true now (a reminder offers to continue
a survey begun since; an alert quotes the comment typed after the score), and is laid out
for the row's channel (a start button where the channel has buttons, else the link in the
text), which is where a channel with a messaging window can choose a template.

A row whose subject is gone (the invitation completed or cancelled, the action deleted or
done, the contact opted out, the flow no longer loaded) renders as a :class:`Skip`: the
dispatcher cancels it with that one-line reason instead of sending it or failing it.

Only free staff messages (a refused question's alert) carry their text in the row; it is
sent as stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.flow.loader import LoadedFlow
from bot.flow.model import Flow
from bot.followups.actions import (
    followup_language,
    followup_text,
    overdue_text,
    summary_line,
    summary_question,
)
from bot.followups.alerts import alert_text, session_answers, session_flow
from bot.followups.invite import invitation_message, language_for, start_keyboard
from bot.followups.reminders import invitation_session, reminder_message
from bot.i18n import Translator
from bot.messaging.keyboards import fitted
from bot.messaging.registry import CHANNELS, Channel, Registry, UnknownChannel
from bot.messaging.transport import Keyboard
from bot.survey import contact_fields
from storage.actions import promised_day
from storage.models import Action, Case, Contact, Invitation, Outbox, SurveySession

# An invitation in one of these needs no message any more.
CLOSED_INVITATIONS: tuple[str, ...] = ("completed", "cancelled", "expired", "skipped")

Flows = Mapping[str, Flow | LoadedFlow]


@dataclass(frozen=True)
class Message:
    """What to send for a row: its text, and the buttons the row's channel carries."""

    text: str
    keyboard: Keyboard | None = None


@dataclass(frozen=True)
class Skip:
    """The row is not to be sent, and why (one line, kept as the row's last_error)."""

    reason: str


def _flow(flows: Flows, flow_id: str) -> Flow | None:
    found = flows.get(flow_id)
    return found.flow if isinstance(found, LoadedFlow) else found


async def render(
    s: AsyncSession,
    row: Outbox,
    *,
    flows: Flows,
    now: datetime,
    registry: Registry = CHANNELS,
    bot_usernames: Mapping[str, str] | None = None,
) -> Message | Skip:
    """The message of ``row`` for its channel, or why it is not to be sent.

    ``flows`` are the flows the process has loaded (invitations, reminders and follow-ups
    speak in their titles and questions); ``bot_usernames`` names the bot on each channel,
    for the link written into the text where the channel has no buttons."""
    if row.text:
        return Message(row.text)
    usernames = bot_usernames or {}
    if row.kind in ("invitation", "reminder") and row.invitation_id is not None:
        return await _invitation(s, row, flows, registry, usernames)
    if row.kind == "followup" and row.action_id is not None:
        return await _followup(s, row, flows)
    if row.kind == "alert" and row.case_id is not None:
        return await _alert(s, row, flows)
    if row.kind == "overdue" and row.action_id is not None:
        return await _overdue(s, row)
    return Skip(f"a {row.kind} row with neither a text nor a subject to render it from")


async def _respondent(s: AsyncSession, contact_id: int | None) -> Contact | Skip:
    contact = await s.get(Contact, contact_id) if contact_id is not None else None
    if contact is None:
        return Skip(f"contact #{contact_id} no longer exists")
    if contact.opted_out:
        return Skip(f"contact #{contact.id} opted out before it went")
    return contact


async def _invitation(
    s: AsyncSession, row: Outbox, flows: Flows, registry: Registry,
    usernames: Mapping[str, str],
) -> Message | Skip:
    invitation = await s.get(Invitation, row.invitation_id)
    if invitation is None:
        return Skip(f"invitation #{row.invitation_id} no longer exists")
    if invitation.status in CLOSED_INVITATIONS:
        return Skip(f"invitation #{invitation.id} is {invitation.status} "
                    f"({invitation.reason or 'no reason given'}): its {row.kind} is not needed")
    if not invitation.token:
        return Skip(f"invitation #{invitation.id} has no link token to start the survey with")
    contact = await _respondent(s, invitation.contact_id)
    if isinstance(contact, Skip):
        return contact
    flow = _flow(flows, invitation.flow_id)
    if flow is None:
        return Skip(f"flow {invitation.flow_id} is no longer loaded: load it again and "
                    "re-invite")
    lang = language_for(flow, contact)
    t = Translator(lang)
    start = _start(registry, row.channel, usernames, invitation.token, t)
    if row.kind == "invitation":
        if start.line is not None:
            return Message(invitation_message(flow, contact, lang, start=start.line))
        return Message(invitation_message(flow, contact, lang),
                       start.keyboard(t.gettext("Start the survey")))
    sessions = (await s.exec(
        select(SurveySession)
        .where(SurveySession.contact_id == invitation.contact_id,
               SurveySession.flow_id == invitation.flow_id)
        .order_by(col(SurveySession.started_at).desc(), col(SurveySession.id).desc()))).all()
    session = invitation_session(invitation, sessions)
    text, label = reminder_message(flow, contact, lang, started=session is not None)
    if start.line is not None:
        return Message(text + "\n" + t.line(start.line))
    return Message(text, start.keyboard(label))


@dataclass(frozen=True)
class _Start:
    """How the person starts the survey on a channel: a button (its data, and the channel's
    capabilities to fit it to), or a line of text where the channel has no buttons."""

    line: str | None = None
    token: str = ""
    channel: str = ""
    registry: Registry = CHANNELS

    def keyboard(self, label: str) -> Keyboard | None:
        return fitted(start_keyboard(label, self.token, self.channel, self.registry),
                      self.registry.get(self.channel).capabilities)


def _start(
    registry: Registry, channel: str, usernames: Mapping[str, str], token: str, t: Translator
) -> _Start:
    """A start button where the channel carries one, else the link to the bot in the text,
    else (no link known) what to send."""
    try:
        known: Channel | None = registry.get(channel)
    except UnknownChannel:
        known = None
    links = known.links if known is not None else None
    if known is not None and links is not None:
        if fitted(start_keyboard("?", token, channel, registry),
                  known.capabilities) is not None:
            return _Start(token=token, channel=channel, registry=registry)
        username = usernames.get(channel)
        if username:
            return _Start(t.gettext("Open this link when you are ready: {link}",
                                    link=links.link(username, token)))
    # The command as one value: one left-to-right run in ar and fa, never "TOKEN /start"
    return _Start(t.gettext("Send {command} when you are ready.", command=f"/start {token}"))


async def _followup(s: AsyncSession, row: Outbox, flows: Flows) -> Message | Skip:
    action = await s.get(Action, row.action_id)
    if action is None:
        return Skip(f"action #{row.action_id} no longer exists")
    contact = await _respondent(s, row.contact_id)
    if isinstance(contact, Skip):
        return contact
    flow = _flow(flows, action.flow_id)
    if flow is None:
        return Skip(f"flow {action.flow_id} is no longer loaded: load it again to tell "
                    f"respondents about action #{action.id}")
    case = await s.get(Case, action.case_id) if action.case_id is not None else None
    query = select(SurveySession).where(SurveySession.contact_id == contact.id,
                                        SurveySession.flow_id == action.flow_id,
                                        SurveySession.status == "completed")
    if case is not None:
        query = query.where(SurveySession.id == case.session_id)
    session = (await s.exec(query.order_by(col(SurveySession.completed_at).desc(),
                                           col(SurveySession.id).desc()).limit(1))).first()
    if session is None or session.id is None:
        return Skip(f"contact #{contact.id} has no completed survey of flow {action.flow_id} "
                    "left to recall")
    answers = await session_answers(s, session.id)
    ran_on = await session_flow(s, session.flow_version_id) or flow
    _, lang = followup_language(action, flow, contact, session)
    t = Translator(lang)
    values = {**contact_fields(contact), **session.context}
    question = summary_question(ran_on, action, answers, case.question_id if case else None)
    title = ran_on.title
    survey = title.get(lang) or next(iter(title.values()), "")  # type: ignore[call-overload]
    return Message(followup_text(
        lang=lang, survey=survey,
        summary=summary_line(ran_on, question, answers, values, t),
        action=action.texts[lang], promised=promised_day(action)))


async def _alert(s: AsyncSession, row: Outbox, flows: Flows) -> Message | Skip:
    case = await s.get(Case, row.case_id)
    if case is None:
        return Skip(f"case #{row.case_id} no longer exists")
    session = await s.get(SurveySession, case.session_id)
    contact = await s.get(Contact, case.contact_id)
    if session is None or session.id is None or contact is None:
        return Skip(f"the session or contact of case #{case.id} no longer exists")
    # The version the person answered, so the alert names its questions as they saw them.
    flow = await session_flow(s, session.flow_version_id) or _flow(flows, case.flow_id)
    if flow is None:
        return Skip(f"flow {case.flow_id} of case #{case.id} no longer loads")
    answers = await session_answers(s, session.id)
    return Message(alert_text(case, contact, session, flow, answers))


async def _overdue(s: AsyncSession, row: Outbox) -> Message | Skip:
    action = await s.get(Action, row.action_id)
    if action is None:
        return Skip(f"action #{row.action_id} no longer exists")
    if action.done_at is not None:
        return Skip(f"action #{action.id} was marked done before its overdue alert went")
    told = (await s.exec(select(func.count(col(Outbox.id))).where(
        Outbox.action_id == action.id, Outbox.kind == "followup",
        Outbox.status == "sent"))).one()
    return Message(overdue_text(action, int(told)))


__all__ = ["CLOSED_INVITATIONS", "Message", "Skip", "render"]
