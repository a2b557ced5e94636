"""SQLModel tables: contacts, versioned flows, survey sessions and their answers.

Every datetime is timezone-aware UTC: a plain ``datetime`` annotation makes SQLModel use its
``UTCDateTime`` column type, which rejects naive values and reads back aware UTC values on
SQLite and PostgreSQL alike. Timestamps have no defaults on purpose: the Store records the
time its caller passes in, so tests and the scheduler control the clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import JSON, BigInteger, Index, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# Named constraints let later SQLite batch migrations drop or alter them by name.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL gives indexable, compact documents; plain JSON (text) elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")

RESUMABLE_STATUSES: tuple[str, ...] = ("new", "consent", "active")


class Table(SQLModel):
    """The base of Sada's tables. Their pydantic validators are built when first used, not
    at import: rows are made and read by SQLAlchemy, and building them all cost every
    `sada` command and process start about 50 ms."""

    # SQLModel types it as its own SQLModelConfig (not exported), a ConfigDict with more keys
    model_config = ConfigDict(defer_build=True)  # type: ignore[assignment]


class Contact(Table, table=True):
    """A person we can survey. How to reach them is in their identities (one per channel
    address); `external_id` is the company's own id for them, when it gave one."""

    __tablename__ = "contact"
    __table_args__ = (UniqueConstraint("external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    external_id: str | None = None
    name: str | None = None
    first_name: str | None = None
    language: str | None = None
    timezone: str | None = None
    company: str | None = None
    role: str | None = None
    segment: str | None = None
    opted_out: bool = False
    # The channel to reach them on when they have several reachable identities.
    preferred_channel: str | None = None
    created_at: datetime
    updated_at: datetime


class ContactIdentity(Table, table=True):
    """One address (a chat, a number …) on one channel that belongs to a contact.

    Reachability is per identity: a block on one channel leaves the others usable; a contact
    is unreachable only when it has identities and none of them is reachable."""

    __tablename__ = "contact_identity"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", ondelete="CASCADE", index=True)
    channel: str
    address: str = Field(sa_type=Text)
    unreachable: bool = False
    # when they last wrote from it: invitations go where they last answered
    last_inbound_at: datetime | None = None
    created_at: datetime


class FlowVersion(Table, table=True):
    """One exact text of a flow; editing the YAML creates a new row, never changes one."""

    __tablename__ = "flow_version"
    __table_args__ = (UniqueConstraint("flow_id", "content_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    flow_id: str = Field(index=True)
    content_hash: str
    content: str = Field(sa_type=Text)
    title: str | None = None
    created_at: datetime


class SurveySession(Table, table=True):
    """One run of one flow with one contact, with the engine's state as JSON."""

    __tablename__ = "survey_session"
    # The second: the API's responses, read in (last_activity_at, id) order by helpdesks.
    __table_args__ = (Index(None, "contact_id", "flow_id", "status"),
                      Index(None, "last_activity_at", "id"))

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", ondelete="CASCADE")
    flow_version_id: int = Field(foreign_key="flow_version.id")
    flow_id: str = Field(index=True)
    status: str
    language: str
    position: str | None = None
    state: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    context: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    started_at: datetime
    last_activity_at: datetime
    completed_at: datetime | None = None
    # The question last delivered to the person, and the chat message showing it: a
    # committed step whose question was never delivered is re-sent, not answered blind.
    shown: str | None = None
    # 64 bits: WhatsApp's message numbers take 63
    prompt_message_id: int | None = Field(default=None, sa_type=BigInteger)


class Answer(Table, table=True):
    """The latest answer to one question in one session: raw text as typed, value normalised."""

    __tablename__ = "answer"
    __table_args__ = (UniqueConstraint("session_id", "question_id"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="survey_session.id", ondelete="CASCADE")
    question_id: str
    raw_text: str = Field(sa_type=Text)
    value: Any = Field(default=None, sa_type=JSONType, nullable=True)
    skipped: bool = False
    answered_at: datetime


class ProcessedUpdate(Table, table=True):
    """An incoming update already applied: a redelivery (same update_id) changes nothing."""

    __tablename__ = "processed_update"
    __table_args__ = (UniqueConstraint("source", "update_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str  # which bot (its id) or channel the update_id belongs to
    update_id: int = Field(sa_type=BigInteger)
    processed_at: datetime


class LinkToken(Table, table=True):
    """An unguessable deep-link payload bound to one flow, and to one contact when issued
    for one; the context (ticket, touchpoint …) goes to the session it opens."""

    __tablename__ = "link_token"

    token: str = Field(primary_key=True)
    flow_id: str
    contact_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="CASCADE")
    context: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    created_at: datetime
    # `sada link --confirm`: the opener must send a code (kept hashed) before the chat
    # becomes the contact; the chat last asked for it and when, and the wrong tries so far.
    code_hash: str | None = None
    code_chat: str | None = Field(default=None, index=True)
    code_asked_at: datetime | None = None
    code_failures: int = 0


class Consent(Table, table=True):
    """When a person agreed, to which text, in which language."""

    __tablename__ = "consent"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", ondelete="CASCADE")
    session_id: int = Field(foreign_key="survey_session.id", ondelete="CASCADE")
    flow_id: str
    language: str
    text: str = Field(sa_type=Text)
    given_at: datetime


class Invitation(Table, table=True):
    """One contact asked to answer one flow: sent, reminded, answered or expired.

    State is per stakeholder, so staff see which roles of an account stayed silent.
    Status: scheduled → sent → started → completed, or skipped / expired / cancelled."""

    __tablename__ = "invitation"
    __table_args__ = (Index(None, "contact_id", "flow_id"), Index(None, "status"))

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", ondelete="CASCADE")
    flow_id: str
    context: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    status: str
    # why it was skipped (opted_out, unreachable, fatigue, account_limit) or expired
    reason: str | None = None
    due_at: datetime
    sent_at: datetime | None = None
    token: str | None = None  # deep-link token, for contacts without a chat
    session_id: int | None = Field(
        default=None, foreign_key="survey_session.id", ondelete="SET NULL"
    )
    reminders_sent: int = 0
    last_reminder_at: datetime | None = None
    created_at: datetime


class Outbox(Table, table=True):
    """A message due to be sent: the scheduler claims it, sends it, records the outcome.

    `key` makes scheduling idempotent (one reminder per invitation and step, one follow-up
    per action and contact); `locked_until` returns rows stuck in "sending" after a crash."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("key"), Index(None, "status", "due_at"))

    id: int | None = Field(default=None, primary_key=True)
    key: str
    kind: str  # invitation, reminder, alert, followup, overdue
    status: str = "queued"  # queued, sending, sent, failed, cancelled
    # the channel whose transport sends it: only a process running that channel claims it
    channel: str = "telegram"
    address: str = Field(sa_type=Text)  # the identity's address on that channel
    contact_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="CASCADE")
    # Only a free staff message carries its text; the others are about their invitation,
    # action or case and are written when sent, in the language of that moment.
    text: str | None = Field(default=None, sa_type=Text)
    due_at: datetime
    attempts: int = 0
    locked_until: datetime | None = None
    sent_at: datetime | None = None
    # BigInteger: WhatsApp's message numbers take 63 bits (transport.message_number)
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    last_error: str | None = None
    # What the channel reported of the message after sending it (WhatsApp's status
    # webhooks): sent, delivered, read or failed, when, and the error of a failure.
    delivery: str | None = None
    delivery_at: datetime | None = None
    delivery_error: str | None = None
    invitation_id: int | None = Field(default=None, foreign_key="invitation.id",
                                      ondelete="CASCADE")
    action_id: int | None = Field(default=None, foreign_key="action.id", ondelete="CASCADE")
    case_id: int | None = Field(default=None, foreign_key="case.id", ondelete="CASCADE")
    created_at: datetime


class Case(Table, table=True):
    """A detractor alert opened for staff; resolving it records the time to resolve."""

    __tablename__ = "case"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", ondelete="CASCADE")
    session_id: int = Field(foreign_key="survey_session.id", ondelete="CASCADE")
    flow_id: str
    question_id: str
    score: int
    comment: str | None = Field(default=None, sa_type=Text)
    status: str = "open"  # open, resolved
    opened_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    note: str | None = Field(default=None, sa_type=Text)


class Action(Table, table=True):
    """Something staff did (or promise to do) because of what respondents said; every
    affected respondent is told, in their language."""

    __tablename__ = "action"

    id: int | None = Field(default=None, primary_key=True)
    flow_id: str
    question_id: str | None = None
    segment: str | None = None
    account: str | None = None
    role: str | None = None
    case_id: int | None = Field(default=None, foreign_key="case.id", ondelete="SET NULL")
    texts: dict[str, str] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    promised_at: datetime | None = None
    done_at: datetime | None = None
    overdue_alerted_at: datetime | None = None
    created_at: datetime


class Feedback(Table, table=True):
    """A respondent's reply to a follow-up message, kept against the action it answers."""

    __tablename__ = "feedback"

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", ondelete="CASCADE")
    contact_id: int = Field(foreign_key="contact.id", ondelete="CASCADE")
    text: str = Field(sa_type=Text)
    received_at: datetime


class ApiKey(Table, table=True):
    """A key one integration (a helpdesk, a CRM) presents to the HTTP API. Only a hash of
    its secret is kept; the prefix, shown in full, lets staff tell keys apart."""

    __tablename__ = "api_key"
    # A revoked key's name may be given again (a rotated key keeps its integration's name);
    # the prefix stays unique forever so a presented key names exactly one row.
    __table_args__ = (UniqueConstraint("prefix"),
                      Index(None, "name", unique=True,
                            sqlite_where=text("revoked_at IS NULL"),
                            postgresql_where=text("revoked_at IS NULL")))

    id: int | None = Field(default=None, primary_key=True)
    name: str
    prefix: str
    hash: str  # sha256 hex of the secret part
    scopes: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiIdempotency(Table, table=True):
    """The first answer to a request sent with an `Idempotency-Key` header, per API key: a
    retry with the same key and body gets it again instead of acting twice."""

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    api_key_id: int = Field(foreign_key="api_key.id")
    key: str
    request_hash: str  # sha256 hex of method, path and body
    status: int
    response: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    created_at: datetime


class WebhookSubscription(Table, table=True):
    """An HTTPS endpoint of an integration that receives events (response.completed,
    case.opened, case.resolved) as signed POSTs.

    The secret is kept as given out, not hashed: every delivery is signed with it (HMAC),
    so it has to be readable. `failures` counts consecutive failed attempts since the last
    success (`failing_since` is when that run of failures began); past the limit the
    subscription is disabled (`active` false, `disabled_at`) until staff enable it again."""

    __tablename__ = "webhook_subscription"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(sa_type=Text)
    events: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    secret: str
    active: bool = True
    failures: int = 0
    failing_since: datetime | None = None
    disabled_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime
    last_success_at: datetime | None = None


class WebhookDelivery(Table, table=True):
    """One event due to one subscription: the exact body to POST (fixed when the event
    happened, so every retry sends the same bytes and signature input) and its progress.

    Claimed like the outbox (`locked_until` is the lease): status queued → sending →
    delivered; a row of a disabled subscription waits, queued, until it is enabled."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (UniqueConstraint("subscription_id", "event_id"),
                      Index(None, "status", "due_at"))

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(foreign_key="webhook_subscription.id", ondelete="CASCADE")
    event_id: str  # uuid4, the same for every subscription and every retry of the event
    event_type: str
    body: str = Field(sa_type=Text)
    status: str = "queued"  # queued, sending, delivered
    due_at: datetime
    attempts: int = 0
    locked_until: datetime | None = None
    last_status: int | None = None  # the HTTP status of the last attempt, if one came back
    last_error: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None


class WebVisitor(Table, table=True):
    """A browser of the web chat (bot/channels/web): its id is the address of a contact on
    channel "web", made by the server and kept in the browser's localStorage. `opened`
    lists the links and public flows it has started ("t:<token>", "f:<flow id>"), so opening
    one again resumes instead of starting afresh."""

    __tablename__ = "web_visitor"

    id: str = Field(primary_key=True)  # secrets.token_urlsafe(16): 22 url-safe characters
    language: str | None = None  # asked for by the page (data-lang), else its Accept-Language
    opened: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    created_at: datetime


class WebMessage(Table, table=True):
    """One entry of a visitor's conversation as the browser receives it, in order (`seq`):
    a bot message, an edit of one (`message_id`: the message it changes), a press's notice,
    or the visitor's own answer. `body` is the entry's JSON without seq and id."""

    __tablename__ = "web_message"
    __table_args__ = (Index(None, "visitor_id", "seq"),)

    seq: int | None = Field(default=None, primary_key=True)
    visitor_id: str = Field(foreign_key="web_visitor.id", ondelete="CASCADE")
    message_id: int | None = None  # a message: its own seq; an edit: the message changed
    kind: str  # message, edit, notice, visitor
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    created_at: datetime


class SendRate(Table, table=True):
    """The shared pacing of sends (bot/followups/shared_rate.py): for a channel ("telegram")
    or one chat of it ("telegram:12345"), the earliest time, in epoch seconds of the
    database's clock, its next message may go (GCRA's theoretical arrival time). Disposable:
    a lost row only lets one message go early."""

    __tablename__ = "send_rate"

    key: str = Field(primary_key=True)
    tat: float


class InboundUpdate(Table, table=True):
    """An update taken by long polling and not handled yet (storage/inbox.py): kept before
    Telegram is told it arrived, deleted once handled. What a stop or a crash left here is
    handled first on the next start."""

    __tablename__ = "inbound_update"

    source: str = Field(primary_key=True)  # the bot: "telegram:<username>"
    update_id: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs={
        "autoincrement": False})
    payload: dict[str, Any] = Field(sa_type=JSONType, nullable=False)
    received_at: datetime
