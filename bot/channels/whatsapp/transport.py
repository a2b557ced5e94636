"""The Transport on WhatsApp's Cloud API: a thin Graph API client over httpx.

pywa's async client would do, but it wraps every call in its own models and exceptions
and the transport needs only five calls and the error codes, so this is written directly
on httpx (already in the lock through python-telegram-bot).

WhatsApp names a message by a string ("wamid.…") where the Transport protocol returns an
int: `message_number` maps each to a stable 63-bit int, so the number send_text returns
and the number of the same message in a status webhook (bot.channels.whatsapp.webhook) are
equal; `Sent` also carries the string itself.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from bot.channels.whatsapp.channel import CAPABILITIES, CHANNEL
from bot.channels.whatsapp.settings import Template
from bot.messaging.keyboards import Listed
from bot.messaging.transport import (
    Blocked,
    Button,
    ChatRetryAfter,
    Keyboard,
    OutsideWindow,
    Refused,
    RetryAfter,
    Transient,
)

__all__ = ["GraphApiError", "GraphClient", "PairRateLimited", "Sent", "SpamPaused",
           "WhatsAppTransport", "message_number"]

# Error codes (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes)
OUTSIDE_WINDOW = 131047  # more than 24 hours since the person last wrote: templates only
UNREACHABLE = frozenset({
    131026,  # undeliverable: not on WhatsApp, blocked us, an old app (deliberately vague)
    131049,  # not delivered, by Meta's choice (marketing message caps)
    131050,  # the person stopped marketing messages
})
THROUGHPUT = frozenset({130429, 4, 80007})  # the number's (or the app's) rate exceeded
PAIR_RATE = 131056  # too many messages to one person in a short time
SPAM_RATE = 131048  # spam rate limit: messages were blocked or reported; pause the number
# Waits, in seconds: the throughput limit is per second; the pair rate is about one message
# every 6 s; the spam limit lifts with the number's quality, so the channel pauses long.
THROUGHPUT_WAIT = 2.0
PAIR_RATE_WAIT = 6.0
SPAM_RATE_WAIT = 3600.0
# An interactive message's body, at most (a text message takes 4096).
INTERACTIVE_BODY = 1024
LIST_BUTTON = 20  # characters of the button that opens a list
ROW_ID = 200  # characters of a list row's id


class PairRateLimited(ChatRetryAfter):
    """131056: too many messages to this one person lately. Only this person's messages
    wait; the rest of the channel goes on (a plain RetryAfter pauses the channel)."""


class SpamPaused(RetryAfter):
    """131048: Meta limits the number for spam. The whole channel pauses for long: nothing
    should wait this out in a conversation (send later, or not at all)."""


def message_number(wamid: str) -> int:
    """A stable 63-bit number for WhatsApp's message id: the Transport's message id, and an
    inbound message's update_id (a redelivery has the same one)."""
    digest = hashlib.sha256(wamid.encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


@dataclass(frozen=True)
class Sent:
    """A message sent: WhatsApp's id for it, and its number (message_number)."""

    wamid: str

    @property
    def id(self) -> int:
        return message_number(self.wamid)


class GraphApiError(Exception):
    """An error answer of the Graph API: its HTTP status, code and one-line message."""

    def __init__(self, status: int, code: int | None, message: str, details: str = "") -> None:
        super().__init__(f"WhatsApp error {code if code is not None else status}: {message}"
                         + (f" ({details})" if details and details != message else ""))
        self.status = status
        self.code = code
        self.details = details


class GraphClient:
    """The Cloud API calls a transport makes, for one business number."""

    def __init__(
        self,
        phone_number_id: str,
        access_token: str,
        *,
        api_url: str = "https://graph.facebook.com",
        api_version: str = "v21.0",
        timeout: float = 20.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.base = f"{api_url.rstrip('/')}/{api_version}/{phone_number_id}"
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._own_http = http is None
        self._headers = {"Authorization": f"Bearer {access_token}"}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def message(self, to: str, kind: str, content: dict[str, Any]) -> str:
        """Send one message of `kind` ("text", "interactive", "template" …); its wamid."""
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                "type": kind, kind: content}
        answer = await self._call("messages", json=body)
        try:
            return str(answer["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise GraphApiError(200, None, f"a send answered without a message id: "
                                f"{str(answer)[:200]}") from None

    async def mark_read(self, wamid: str) -> None:
        """Mark an inbound message read (the person sees blue ticks)."""
        await self._call("messages", json={"messaging_product": "whatsapp", "status": "read",
                                           "message_id": wamid})

    async def upload(self, filename: str, content: bytes) -> str:
        """Upload a file for a document or image message; its media id."""
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        answer = await self._call("media", data={"messaging_product": "whatsapp", "type": mime},
                                  files={"file": (filename, content, mime)})
        try:
            return str(answer["id"])
        except (KeyError, TypeError):
            raise GraphApiError(200, None, "an upload answered without a media id") from None

    async def _call(self, edge: str, **request: Any) -> dict[str, Any]:
        response = await self._http.post(f"{self.base}/{edge}", headers=self._headers,
                                         **request)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_success and isinstance(answer, dict):
            return answer
        error = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(error, dict):
            raise GraphApiError(response.status_code, None,
                                response.text[:200].replace("\n", " ") or response.reason_phrase)
        code = error.get("code")
        data = error.get("error_data")
        details = data.get("details", "") if isinstance(data, dict) else ""
        raise GraphApiError(response.status_code, code if isinstance(code, int) else None,
                            str(error.get("message", "")), str(details))


def neutral(exc: GraphApiError) -> Exception:
    """The channel-neutral error for a Graph API error (bot.messaging.transport)."""
    if exc.code == OUTSIDE_WINDOW:
        return OutsideWindow(str(exc))
    if exc.code in UNREACHABLE:
        return Blocked(str(exc))
    if exc.code == PAIR_RATE:
        return PairRateLimited(PAIR_RATE_WAIT)
    if exc.code in THROUGHPUT or exc.status == 429:
        return RetryAfter(THROUGHPUT_WAIT)
    if exc.code == SPAM_RATE:
        return SpamPaused(SPAM_RATE_WAIT)
    if exc.status >= 500:
        return Transient(str(exc))
    return Refused(str(exc))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


class WhatsAppTransport:
    """bot.messaging Transport on the Cloud API.

    `menu` labels the button that opens a list; `short_body` is the body of the buttons
    that follow a question too long for an interactive message (sent as a text first).
    Pass them in the respondent's words when known (t.gettext)."""

    channel = CHANNEL.name

    def __init__(self, client: GraphClient, *, menu: str = "☰", short_body: str = "👇",
                 templates: Mapping[str, Mapping[str, Template]] | None = None) -> None:
        self.client = client
        self.menu = _cut(menu, LIST_BUTTON)
        self.short_body = short_body
        # SADA_WHATSAPP__TEMPLATES: kind → survey language → approved template.
        self.templates = templates or {}

    def template(self, kind: str, language: str) -> Template | None:
        """The approved template for `kind` in `language`, else in English, else None."""
        by_language = self.templates.get(kind, {})
        return by_language.get(language) or by_language.get("en")

    async def _send(self, to: str, kind: str, content: dict[str, Any]) -> Sent:
        try:
            return Sent(await self.client.message(to, kind, content))
        except GraphApiError as exc:
            raise neutral(exc) from exc
        except httpx.HTTPError as exc:  # network, timeout, a lost answer
            raise Transient(f"WhatsApp unreachable: {type(exc).__name__}: {exc}") from exc

    async def send(self, chat_id: str, text: str, keyboard: Keyboard | None) -> Sent:
        """send_text, with WhatsApp's id of the message (the one with the buttons, when a
        long question goes as a text and then its buttons)."""
        to = str(chat_id)
        buttons = [button for row in keyboard or () for button in row]
        if not buttons:
            return await self._send(to, "text", {"body": text, "preview_url": False})
        action = self._action(buttons, listed=isinstance(keyboard, Listed))
        if isinstance(keyboard, Listed) and keyboard.menu and "button" in action:
            action["button"] = _cut(keyboard.menu, LIST_BUTTON)  # in the reader's words
        if len(text) > INTERACTIVE_BODY:
            await self._send(to, "text", {"body": text, "preview_url": False})
            text = self.short_body
        kind = "button" if "buttons" in action else "list"
        return await self._send(to, "interactive", {"type": kind, "body": {"text": text},
                                                    "action": action})

    async def send_text(self, chat_id: str, text: str, keyboard: Keyboard | None) -> int:
        return (await self.send(chat_id, text, keyboard)).id

    def _action(self, buttons: Sequence[Button], listed: bool = False) -> dict[str, Any]:
        """Reply buttons where they fit (and no list was asked for), else a list, else
        Refused."""
        caps = CAPABILITIES
        if not listed and len(buttons) <= caps.buttons_total and all(
                len(b.text) <= caps.button_label and len(b.data) <= caps.callback_data
                for b in buttons):
            return {"buttons": [{"type": "reply", "reply": {"id": b.data, "title": b.text}}
                                for b in buttons]}
        lists = caps.lists
        assert lists is not None
        if len(buttons) > lists.rows or any(len(b.data) > ROW_ID for b in buttons):
            raise Refused(f"{len(buttons)} buttons fit neither WhatsApp's reply buttons "
                          f"({caps.buttons_total}) nor a list ({lists.rows} rows)")
        rows = []
        for b in buttons:
            row = {"id": b.data, "title": _cut(b.text, lists.title)}
            if len(b.text) > lists.title:  # the whole label where the title is cut
                row["description"] = _cut(b.text, lists.description)
            rows.append(row)
        return {"button": self.menu, "sections": [{"rows": rows}]}

    async def send_template(
        self, chat_id: str, name: str, language: str, params: Sequence[str],
        button_payload: str | None = None,
    ) -> Sent:
        """An approved template (outside the 24-hour window): its body's placeholders in
        order, and the payload its first (quick-reply) button brings back, if it has one."""
        components: list[dict[str, Any]] = []
        if params:
            components.append({"type": "body", "parameters": [
                {"type": "text", "text": p} for p in params]})
        if button_payload is not None:
            components.append({"type": "button", "sub_type": "quick_reply", "index": "0",
                               "parameters": [{"type": "payload", "payload": button_payload}]})
        content: dict[str, Any] = {"name": name, "language": {"code": language}}
        if components:
            content["components"] = components
        return await self._send(str(chat_id), "template", content)

    async def mark_read(self, wamid: str) -> None:
        try:
            await self.client.mark_read(wamid)
        except GraphApiError as exc:
            raise neutral(exc) from exc
        except httpx.HTTPError as exc:
            raise Transient(f"WhatsApp unreachable: {type(exc).__name__}: {exc}") from exc

    async def edit(
        self, chat_id: str, message_id: int, text: str | None, keyboard: Keyboard | None
    ) -> None:
        raise Refused("WhatsApp messages cannot be edited")

    async def answer_press(self, callback_id: str, text: str | None) -> None:
        """Nothing to do: WhatsApp has no acknowledgement of a reply button."""

    async def _upload(self, filename: str, content: bytes) -> str:
        try:
            return await self.client.upload(filename, content)
        except GraphApiError as exc:
            raise neutral(exc) from exc
        except httpx.HTTPError as exc:
            raise Transient(f"WhatsApp unreachable: {type(exc).__name__}: {exc}") from exc

    async def send_document(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None:
        media: dict[str, Any] = {"id": await self._upload(filename, content),
                                 "filename": filename}
        if caption:
            media["caption"] = caption
        await self._send(str(chat_id), "document", media)

    async def send_photo(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None:
        media: dict[str, Any] = {"id": await self._upload(filename, content)}
        if caption:
            media["caption"] = caption
        await self._send(str(chat_id), "image", media)
