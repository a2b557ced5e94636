"""WhatsApp's webhook as pure functions, for whatever web server the runner mounts them on.

    GET  → verify(query, verify_token) → (status, text to answer)
    POST → signature_status(raw body, X-Hub-Signature-256, app_secret): 200, else answer
           401/403 and read nothing; then parse(raw body) → events and status changes.

Meta redelivers webhooks and does not keep their order: an inbound message's update_id is
the number of its wamid (transport.message_number), so a redelivery is de-duplicated with
the original; statuses name the message by its wamid and carry their own time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.channels.whatsapp.transport import message_number
from bot.conversation.events import Inbound, Media, Pressed, Sender, Typed

__all__ = ["Parsed", "Received", "StatusChange", "parse", "signature_status", "verify"]

SIGNATURE_HEADER = "X-Hub-Signature-256"
STATUSES = frozenset({"sent", "delivered", "read", "failed"})
# A WhatsApp message type → Sada's media kind (bot.conversation.events.MEDIA_KINDS).
_MEDIA = {"image": "photo", "video": "video", "audio": "audio", "document": "document",
          "sticker": "sticker", "location": "location", "contacts": "contact"}
# Not something a person said to the bot: a reaction to a message, a number change.
_IGNORED = frozenset({"reaction", "system", "request_welcome", "ephemeral"})


def verify(query: Mapping[str, str], verify_token: str) -> tuple[int, str]:
    """Meta's verification of the webhook: echo hub.challenge when hub.verify_token is
    ours, else 403."""
    given = query.get("hub.verify_token", "")
    if query.get("hub.mode") == "subscribe" and hmac.compare_digest(
            given.encode(), verify_token.encode()):
        return 200, query.get("hub.challenge", "")
    return 403, "verification failed"


def signature(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 Meta sends with `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_status(body: bytes, header: str | None, app_secret: str) -> int:
    """200 when `header` signs the raw `body` with the app secret; 401 when there is no
    signature, 403 when it is wrong. Checked before anything of the body is read."""
    if not header or not header.startswith("sha256="):
        return 401
    if hmac.compare_digest(header.strip().lower().encode(), signature(body, app_secret).encode()):
        return 200
    return 403


@dataclass(frozen=True)
class Received:
    """An inbound message: the event for the controller, WhatsApp's id for it (to mark it
    read) and when the person sent it (the 24-hour window starts then)."""

    event: Inbound
    wamid: str
    at: datetime | None


@dataclass(frozen=True)
class StatusChange:
    """What became of a message sent: sent, delivered, read or failed (with its code)."""

    wamid: str
    recipient: str
    status: str
    at: datetime | None
    error_code: int | None = None
    error: str | None = None

    @property
    def message_id(self) -> int:
        """The number the transport returned for the message (transport.message_number)."""
        return message_number(self.wamid)


@dataclass
class Parsed:
    received: list[Received] = field(default_factory=list)
    statuses: list[StatusChange] = field(default_factory=list)
    # What could not be read, one line (None: all of it was read).
    problems: list[str] = field(default_factory=list)

    @property
    def events(self) -> list[Inbound]:
        return [r.event for r in self.received]

    @property
    def error(self) -> str | None:
        return "; ".join(self.problems) if self.problems else None


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse(body: bytes, phone_number_id: str | None = None) -> Parsed:
    """The messages and statuses of a webhook's body, for the business number
    `phone_number_id` (others of the same app are left out; None: all). Never raises: what
    cannot be read is a problem line."""
    parsed = Parsed()
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        parsed.problems.append("the webhook body is not JSON")
        return parsed
    if not isinstance(document, dict) or document.get("object") != "whatsapp_business_account":
        parsed.problems.append("the webhook body is not a whatsapp_business_account "
                               "notification (object)")
        return parsed
    for entry in _list(document.get("entry")):
        for change in _list(_dict(entry).get("changes")):
            change = _dict(change)
            if change.get("field") != "messages":
                continue  # template status, account updates …: not for the conversation
            value = _dict(change.get("value"))
            number = str(_dict(value.get("metadata")).get("phone_number_id", ""))
            if phone_number_id is not None and number != phone_number_id:
                continue
            names = {str(_dict(c).get("wa_id", "")): str(_dict(_dict(c).get("profile"))
                                                         .get("name", ""))
                     for c in _list(value.get("contacts"))}
            for message in _list(value.get("messages")):
                try:
                    received = _message(_dict(message), names)
                except (KeyError, TypeError, ValueError) as exc:
                    parsed.problems.append(f"a message without {exc} was left out")
                    continue
                if received is not None:
                    parsed.received.append(received)
            for status in _list(value.get("statuses")):
                try:
                    parsed.statuses.append(_status(_dict(status)))
                except (KeyError, TypeError, ValueError) as exc:
                    parsed.problems.append(f"a status without {exc} was left out")
            for error in _list(value.get("errors")):
                error = _dict(error)
                parsed.problems.append(f"WhatsApp reports error {error.get('code')}: "
                                       f"{error.get('title') or error.get('message')}")
    return parsed


def _required(mapping: dict[str, Any], key: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
        raise KeyError(key)
    return str(value)


def _message(message: dict[str, Any], names: Mapping[str, str]) -> Received | None:
    wamid = _required(message, "id")
    sender = _required(message, "from")
    kind = _required(message, "type")
    user = Sender(id=sender, first_name=names.get(sender, ""),
                  language_code=language_of_number(sender))
    update_id = message_number(wamid)
    at = _time(message.get("timestamp"))
    event: Inbound
    if kind == "text":
        event = Typed(update_id, sender, user, _required(_dict(message.get("text")), "body"))
    elif kind == "interactive":
        interactive = _dict(message.get("interactive"))
        reply = _dict(interactive.get(str(interactive.get("type"))))
        if interactive.get("type") not in ("button_reply", "list_reply"):
            event = Media(update_id, sender, user, "document")  # a flow's answer, …
        else:
            event = _pressed(update_id, sender, user, wamid, message, _required(reply, "id"))
    elif kind == "button":  # a template's quick-reply button
        event = _pressed(update_id, sender, user, wamid, message,
                         _required(_dict(message.get("button")), "payload"))
    elif kind in _IGNORED:
        return None
    elif kind == "audio" and _dict(message.get("audio")).get("voice"):
        event = Media(update_id, sender, user, "voice")
    else:
        # Anything else holds no text to read as an answer: "unsupported" included.
        event = Media(update_id, sender, user, _MEDIA.get(kind, "document"))
    return Received(event, wamid, at)


def _pressed(update_id: int, sender: str, user: Sender, wamid: str, message: dict[str, Any],
             data: str) -> Pressed:
    context = _dict(message.get("context")).get("id")
    return Pressed(update_id, sender, user, callback_id=wamid,
                   message_id=message_number(context) if isinstance(context, str) else None,
                   data=data)


def _status(status: dict[str, Any]) -> StatusChange:
    state = _required(status, "status")
    if state not in STATUSES:
        raise ValueError(f"a known status ({state!r})")
    errors = [_dict(e) for e in _list(status.get("errors"))]
    code = errors[0].get("code") if errors else None
    detail = None
    if errors:
        detail = str(_dict(errors[0].get("error_data")).get("details")
                     or errors[0].get("title") or errors[0].get("message") or "")
    return StatusChange(
        wamid=_required(status, "id"), recipient=str(status.get("recipient_id", "")),
        status=state, at=_time(status.get("timestamp")),
        error_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        error=detail or None,
    )


# WhatsApp tells nothing of the phone's language: the country of the number is the first
# guess, as Telegram's language_code is (never over the person's own choice, /language).
# Calling codes of countries where Persian or Arabic is what most customers read.
_LANGUAGE_BY_CODE = {
    "98": "fa", "93": "fa",
    "20": "ar", "212": "ar", "213": "ar", "216": "ar", "218": "ar", "222": "ar", "249": "ar",
    "961": "ar", "962": "ar", "963": "ar", "964": "ar", "965": "ar", "966": "ar", "967": "ar",
    "968": "ar", "970": "ar", "971": "ar", "973": "ar", "974": "ar",
}


def language_of_number(number: str) -> str | None:
    """The language a number's country suggests (E.164 digits, no +), or None."""
    for length in (3, 2):
        found = _LANGUAGE_BY_CODE.get(number[:length])
        if found is not None:
            return found
    return None
