"""Outbox rows become messages at send time: one renderer for every kind of follow-up.

Planners queue intents (an invitation, a reminder, the follow-up of an action, a case's
alert, an overdue promise) addressed to an identity; the dispatcher asks :func:`render` for
each row just before sending it. So the message is in the contact's language *now* (a
``/language`` since planning counts), says what is true now (a reminder offers to continue
a survey begun since; an alert quotes the comment typed after the score), and is laid out
for the row's channel (a start button where the channel has buttons, else the link in the
text). On a channel with a messaging window (Capabilities.window: WhatsApp's 24 hours) a row
to someone who has not written within it goes as the channel's approved template for its
kind and language (:class:`TemplateMessage`), its parameters filled from the same subject
(:data:`TEMPLATE_VALUES`); without one configured the row fails (:class:`Fail`) with the
setting to add, rather than being sent blind.

A row whose subject is gone (the invitation completed or cancelled, the action deleted or
done, the contact opted out, the flow no longer loaded) renders as a :class:`Skip`: the
dispatcher cancels it with that one-line reason instead of sending it or failing it.

Only free staff messages (a refused question's alert) carry their text in the row; it is
sent as stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

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
from bot.followups.dates import format_date
from bot.followups.invite import flow_title, invitation_message, language_for, start_keyboard
from bot.followups.reminders import invitation_session, reminder_message
from bot.i18n import Translator
from bot.messaging.keyboards import fitted
from bot.messaging.registry import CHANNELS, Channel, Registry, UnknownChannel
from bot.messaging.transport import Keyboard, TemplateSpec
from bot.survey import contact_fields
from storage.actions import promised_day
from storage.identities import find_identity
from storage.models import Action, Case, Contact, Invitation, Outbox, SurveySession

# An invitation in one of these needs no message any more.
CLOSED_INVITATIONS: tuple[str, ...] = ("completed", "cancelled", "expired", "skipped")

Flows = Mapping[str, Flow | LoadedFlow]


@dataclass(frozen=True)
class TemplateMessage:
    """An approved template, filled: the channel's name and language code for it, its
    placeholders' values in order, and the payload of its quick-reply button (the start
    press that opens the survey, DeepLinks.press) or None."""

    name: str
    language: str
    parameters: tuple[str, ...] = ()
    button: str | None = None


@dataclass(frozen=True)
class Message:
    """What to send for a row: its text, and the buttons the row's channel carries.

    On a channel with a messaging window: `template` is the row as the channel's template,
    sent instead of the text when `outside_window` (the person has not written within the
    window), or when a free-form send is refused as outside it after all (clock skew, the
    window closed meanwhile). `no_template` says why there is none, in one line."""

    text: str
    keyboard: Keyboard | None = None
    template: TemplateMessage | None = None
    outside_window: bool = False
    no_template: str | None = None


@dataclass(frozen=True)
class Fail:
    """The row cannot be sent as it is configured, and why (one line, naming what to set):
    the dispatcher fails it without an attempt."""

    reason: str


@dataclass(frozen=True)
class Skip:
    """The row is not to be sent, and why (one line, kept as the row's last_error)."""

    reason: str


def _flow(flows: Flows, flow_id: str) -> Flow | None:
    found = flows.get(flow_id)
    return found.flow if isinstance(found, LoadedFlow) else found


# A channel's configured templates: (kind, language) → the template, or None.
Templates = Callable[[str, str], TemplateSpec | None]

# The values a template's parameters may name, per kind (documented in docs/followups.md).
CONTACT_VALUES = ("first_name", "name", "company", "role", "segment")
TEMPLATE_VALUES: Mapping[str, tuple[str, ...]] = {
    "invitation": (*CONTACT_VALUES, "survey"),
    "reminder": (*CONTACT_VALUES, "survey"),
    "followup": (*CONTACT_VALUES, "survey", "action", "summary", "due"),
    "alert": ("contact", "score", "survey", "question", "comment", "case"),
    "overdue": ("action", "due", "survey", "told", "action_id"),
}
# What a parameter with no value shows: WhatsApp refuses an empty one (error 131008).
EMPTY_VALUE = "–"
# A parameter's characters, at most: the template's body takes 1024 in all.
VALUE_CHARS = 200
# WhatsApp refuses parameters with new lines, tabs or more than four spaces in a row.
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class _Draft:
    """A row's free-form message, and what its template would be filled from."""

    message: Message
    lang: str
    values: Mapping[str, str | None] = field(default_factory=dict)
    press: str | None = None  # the start press a template's button carries


def _value(value: str | None) -> str:
    text = _WHITESPACE.sub(" ", value or "").strip()
    if len(text) > VALUE_CHARS:
        text = text[:VALUE_CHARS - 1].rstrip() + "…"
    return text or EMPTY_VALUE


async def render(
    s: AsyncSession,
    row: Outbox,
    *,
    flows: Flows,
    now: datetime,
    registry: Registry = CHANNELS,
    bot_usernames: Mapping[str, str] | None = None,
    templates: Templates | None = None,
) -> Message | Skip | Fail:
    """The message of ``row`` for its channel, or why it is not to be sent.

    ``flows`` are the flows the process has loaded (invitations, reminders and follow-ups
    speak in their titles and questions); ``bot_usernames`` names the bot on each channel,
    for the link written into the text where the channel has no buttons; ``templates``
    are the row's channel's approved templates, where it has a messaging window."""
    if row.text:
        return Message(row.text)
    usernames = bot_usernames or {}
    drafted: _Draft | Skip
    if row.kind in ("invitation", "reminder") and row.invitation_id is not None:
        drafted = await _invitation(s, row, flows, registry, usernames)
    elif row.kind == "followup" and row.action_id is not None:
        drafted = await _followup(s, row, flows)
    elif row.kind == "alert" and row.case_id is not None:
        drafted = await _alert(s, row, flows)
    elif row.kind == "overdue" and row.action_id is not None:
        drafted = await _overdue(s, row)
    else:
        return Skip(f"a {row.kind} row with neither a text nor a subject to render it from")
    if isinstance(drafted, Skip):
        return drafted
    return await _windowed(s, row, drafted, now, registry, templates)


async def _windowed(
    s: AsyncSession, row: Outbox, draft: _Draft, now: datetime, registry: Registry,
    templates: Templates | None,
) -> Message | Fail:
    """The draft as it can go on a channel with a messaging window: its template filled,
    and whether the person is outside the window now (staff included: outside unless they
    wrote to the bot from that address)."""
    try:
        window = registry.get(row.channel).capabilities.window
    except UnknownChannel:
        window = None
    if window is None:
        return draft.message
    identity = await find_identity(s, row.channel, row.address)
    last = identity.last_inbound_at if identity is not None else None
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    # A minute's margin: a message queued just inside the window is not refused on arrival.
    outside = last is None or now - last >= window - timedelta(minutes=1)
    spec = templates(row.kind, draft.lang) if templates is not None else None
    if spec is None:
        missing = (f"{row.address} on {row.channel} has not written within "
                   f"{_hours(window)} and no {row.kind} template is configured for "
                   f"{draft.lang} or en: add one to SADA_{row.channel.upper()}__TEMPLATES")
        if outside:
            return Fail(missing)
        return replace(draft.message, no_template=missing)
    known = TEMPLATE_VALUES.get(row.kind, ())
    unknown = [name for name in spec.parameters if name not in known]
    if unknown:
        return Fail(f"the {row.kind} template {spec.name} ({spec.language}) names "
                    f"{', '.join(unknown)}, which a {row.kind} does not have: use "
                    f"{', '.join(known)} in SADA_{row.channel.upper()}__TEMPLATES")
    template = TemplateMessage(
        name=spec.name, language=spec.language,
        parameters=tuple(_value(draft.values.get(name)) for name in spec.parameters),
        button=draft.press if spec.button else None)
    return replace(draft.message, template=template, outside_window=outside)


def _hours(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} hours"


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
) -> _Draft | Skip:
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
    values = {**contact_fields(contact), "survey": flow_title(flow, lang)}
    press = _press(registry, row.channel, invitation.token)
    if row.kind == "invitation":
        if start.line is not None:
            message = Message(invitation_message(flow, contact, lang, start=start.line))
        else:
            message = Message(invitation_message(flow, contact, lang),
                              start.keyboard(t.gettext("Start the survey")))
        return _Draft(message, lang, values, press)
    sessions = (await s.exec(
        select(SurveySession)
        .where(SurveySession.contact_id == invitation.contact_id,
               SurveySession.flow_id == invitation.flow_id)
        .order_by(col(SurveySession.started_at).desc(), col(SurveySession.id).desc()))).all()
    session = invitation_session(invitation, sessions)
    text, label = reminder_message(flow, contact, lang, started=session is not None)
    if start.line is not None:
        return _Draft(Message(text + "\n" + t.line(start.line)), lang, values, press)
    return _Draft(Message(text, start.keyboard(label)), lang, values, press)


def _press(registry: Registry, channel: str, token: str) -> str | None:
    """The data of the channel's start button for `token` (a template's quick reply)."""
    try:
        links = registry.get(channel).links
    except UnknownChannel:
        return None
    return links.press(token) if links is not None else None


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


async def _followup(s: AsyncSession, row: Outbox, flows: Flows) -> _Draft | Skip:
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
    summary = summary_line(ran_on, question, answers, values, t)
    promised = promised_day(action)
    text = followup_text(lang=lang, survey=survey, summary=summary,
                         action=action.texts[lang], promised=promised)
    return _Draft(Message(text), lang, {
        **contact_fields(contact), "survey": survey, "action": action.texts[lang],
        "summary": summary, "due": format_date(promised, lang) if promised else None})


async def _alert(s: AsyncSession, row: Outbox, flows: Flows) -> _Draft | Skip:
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
    # Staff messages are in English (alert_text), so is their template.
    return _Draft(Message(alert_text(case, contact, session, flow, answers)), "en", {
        "contact": contact.name or contact.first_name or contact.company or f"#{contact.id}",
        "score": str(case.score), "survey": flow_title(flow, "en"),
        "question": case.question_id, "comment": case.comment, "case": f"#{case.id}"})


async def _overdue(s: AsyncSession, row: Outbox) -> _Draft | Skip:
    action = await s.get(Action, row.action_id)
    if action is None:
        return Skip(f"action #{row.action_id} no longer exists")
    if action.done_at is not None:
        return Skip(f"action #{action.id} was marked done before its overdue alert went")
    told = (await s.exec(select(func.count(col(Outbox.id))).where(
        Outbox.action_id == action.id, Outbox.kind == "followup",
        Outbox.status == "sent"))).one()
    day = promised_day(action)
    return _Draft(Message(overdue_text(action, int(told))), "en", {
        "action": action.texts.get("en") or next(iter(action.texts.values()), ""),
        "due": format_date(day, "en") if day else None, "survey": action.flow_id,
        "told": str(int(told)), "action_id": f"#{action.id}"})


__all__ = ["CLOSED_INVITATIONS", "TEMPLATE_VALUES", "Fail", "Message", "Skip",
           "TemplateMessage", "Templates", "render"]
