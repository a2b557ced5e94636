"""What arrives from a person (events) and what leaves for them (outs), whatever the channel.

An address is a channel's own id for a chat, as text (a Telegram or Bale chat id, later a
phone number or a web visitor id); the controller handling the events knows its channel.
A channel's shell translates its API's updates into these and a Transport sends the outs."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.engine.normalize import without_controls
from bot.messaging.transport import Keyboard


@dataclass(frozen=True)
class Sender:
    id: str
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None


@dataclass(frozen=True)
class Typed:
    """A text message in a private chat (commands included)."""

    update_id: int | None  # None: the channel never delivers an event twice
    chat_id: str
    user: Sender
    text: str


@dataclass(frozen=True)
class Pressed:
    """An inline button pressed."""

    update_id: int | None  # None: the channel never delivers an event twice
    chat_id: str
    user: Sender
    callback_id: str
    message_id: int | None
    data: str


@dataclass(frozen=True)
class Media:
    """A message in a private chat that holds no text Sada could read as an answer: a
    photo, sticker, voice message, document … (`kind` is one of MEDIA_KINDS)."""

    update_id: int | None  # None: the channel never delivers an event twice
    chat_id: str
    user: Sender
    kind: str


Inbound = Typed | Pressed | Media

# What people send instead of typing, by the Bot API's Message field that holds it; service
# messages (a pinned message, a payment) are none of these and are left alone. In this
# order: an animation also fills `document`, a venue also `location`.
MEDIA_KINDS = (
    "animation", "photo", "live_photo", "video", "video_note", "voice", "audio", "sticker",
    "document", "venue", "location", "contact", "poll", "dice", "story", "paid_media",
    "checklist", "game",
)


def media_kind(message: object) -> str | None:
    """Which of MEDIA_KINDS a framework's Message holds (both name the fields as the Bot
    API does), or None."""
    return next((kind for kind in MEDIA_KINDS if getattr(message, kind, None)), None)


def cleaned(event: Inbound) -> Inbound:
    """The event without control characters in anything a person typed or chose (text,
    button data, names): NUL breaks PostgreSQL and the rest hide or garble text, so they
    are dropped here, at the edge, before anything is looked up or stored."""
    user = event.user
    user = replace(user, first_name=without_controls(user.first_name),
                   last_name=_clean(user.last_name), username=_clean(user.username),
                   language_code=_clean(user.language_code))
    if isinstance(event, Typed):
        return replace(event, user=user, text=without_controls(event.text))
    if isinstance(event, Pressed):
        return replace(event, user=user, data=without_controls(event.data))
    return replace(event, user=user)


def _clean(value: str | None) -> str | None:
    return None if value is None else without_controls(value)


@dataclass(frozen=True)
class SendText:
    chat_id: str
    text: str
    keyboard: Keyboard | None = None
    # set when this message shows a question: once sent, the session records it as shown
    session_id: int | None = None
    question_id: str | None = None


@dataclass(frozen=True)
class EditMessage:
    chat_id: str
    message_id: int
    text: str | None = None  # None: change only the keyboard
    keyboard: Keyboard | None = None


@dataclass(frozen=True)
class AnswerPress:
    callback_id: str
    text: str | None = None


@dataclass(frozen=True)
class SendDocument:
    chat_id: str
    filename: str
    content: bytes
    caption: str | None = None


@dataclass(frozen=True)
class SendPhoto:
    chat_id: str
    filename: str
    content: bytes  # PNG
    caption: str | None = None


Out = SendText | EditMessage | AnswerPress | SendDocument | SendPhoto
