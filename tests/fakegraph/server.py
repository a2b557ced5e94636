"""A fake WhatsApp Cloud API (Meta's Graph API) that Sada's real WhatsApp client talks to.

It serves `POST /<version>/<phone number id>/messages` (text, interactive reply buttons and
lists, templates, documents and images, mark-as-read) and `/media` over HTTP on 127.0.0.1
from inside the test's event loop; it checks the limits Meta checks (3 buttons of 20
characters, 10 list rows of 24/72, an interactive body of 1024, a text of 4096) and answers
with Meta's error shape; it keeps the 24-hour window of each person (131047 outside it),
injects the failures a sender must survive (131026, 130429, 131056, 131048, 500, a lost
connection), records what was sent, and POSTs signed webhooks (messages, button and list
replies, template button presses, statuses) to the URL the bot listens on.

    async with FakeGraphApi() as api:
        client = GraphClient(api.phone_number_id, api.access_token, api_url=api.base_url,
                             api_version=api.version)
        amal = api.user("971501234567", "Amal")
        await amal.send("hello")          # opens her window (and posts a webhook if a URL is set)
        ...
        [message] = api.sent("971501234567")

Anything not served answers Graph's unsupported-request error, so a test never passes
against behaviour the fake merely assumed.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import math
import re
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
from aiohttp import web

__all__ = ["WINDOW_SECONDS", "FakeGraphApi", "FakeWhatsAppUser", "GraphCall"]

JSON = dict[str, Any]
_T = TypeVar("_T")

WINDOW_SECONDS = 24 * 3600
# Meta's error codes this fake answers with: (HTTP status, type, message title, details).
ERRORS: dict[int, tuple[int, str, str, str]] = {
    100: (400, "OAuthException", "(#100) Invalid parameter", "Invalid parameter"),
    131009: (400, "OAuthException", "(#131009) Parameter value is not valid",
             "Parameter value is not valid"),
    131008: (400, "OAuthException", "(#131008) Required parameter is missing",
             "Required parameter is missing"),
    131047: (400, "OAuthException", "(#131047) Re-engagement message",
             "Message failed to send because more than 24 hours have passed since the "
             "customer last replied to this number."),
    131026: (400, "OAuthException", "(#131026) Message Undeliverable",
             "Message Undeliverable."),
    131049: (400, "OAuthException", "(#131049) This message was not delivered to maintain "
             "healthy ecosystem engagement.", "In order to maintain a healthy ecosystem "
             "engagement, the message failed to be delivered."),
    131050: (400, "OAuthException", "(#131050) Unable to deliver the message. This recipient "
             "has chosen to stop receiving marketing messages on WhatsApp from your business",
             "Unable to deliver the message."),
    130429: (400, "OAuthException", "(#130429) Rate limit hit",
             "Cloud API message throughput has been reached."),
    131056: (400, "OAuthException", "(#131056) (Business Account, Consumer Account) pair rate "
             "limit hit", "Too many messages sent from the sender phone number to the same "
             "recipient phone number in a short period of time."),
    131048: (400, "OAuthException", "(#131048) Spam rate limit hit",
             "Message failed to send because there are restrictions on how many messages "
             "can be sent from this phone number."),
    132001: (404, "OAuthException", "(#132001) Template name does not exist in the "
             "translation", "template name does not exist in the translation"),
    132000: (400, "OAuthException", "(#132000) Number of parameters does not match the "
             "expected number of params", "body: number of localizable_params does not match "
             "the expected number of params"),
    190: (401, "OAuthException", "Error validating access token: Session has expired",
          "Error validating access token"),
    131000: (500, "OAuthException", "(#131000) Something went wrong",
             "Message failed to send due to an unknown error."),
}
_INTERACTIVE_BODY = 1024
_TEXT_BODY = 4096


@dataclass
class GraphCall:
    """One request as the fake understood it."""

    path: str
    body: JSON
    status: int | None = None  # None while pending, or when the answer was lost
    answer: JSON | None = None
    at: float = 0.0  # time.monotonic()

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def error_code(self) -> int | None:
        error = (self.answer or {}).get("error")
        return error.get("code") if isinstance(error, dict) else None


@dataclass
class _Failure:
    code: int | None  # None: the connection drops after the message was taken
    to: str | None
    times: int


@dataclass
class _Pair:
    times: deque[float] = field(default_factory=deque)


class _GraphError(Exception):
    def __init__(self, code: int, details: str | None = None) -> None:
        status, kind, message, default = ERRORS[code]
        super().__init__(message)
        self.status = status
        self.body: JSON = {"error": {
            "message": message, "type": kind, "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details or default},
            "fbtrace_id": "A" + hashlib.sha1(f"{code}{time.monotonic()}".encode())
            .hexdigest()[:22],
        }}


def _invalid(details: str, code: int = 131009) -> _GraphError:
    return _GraphError(code, details)


class FakeWhatsAppUser:
    """A person on WhatsApp: what they write reaches the bot as a signed webhook (when the
    fake knows the bot's webhook URL), and opens their 24-hour window."""

    def __init__(self, api: FakeGraphApi, number: str, name: str) -> None:
        self.api = api
        self.number = number
        self.name = name

    async def send(self, text: str) -> JSON:
        return await self.api.inbound(self, "text", {"text": {"body": text}})

    async def press(self, message: JSON, button_id: str) -> JSON:
        """Press a reply button of `message` (as recorded in `api.sent`) by its id."""
        interactive = message["interactive"]
        assert interactive["type"] == "button", "not a message with reply buttons"
        [title] = [b["reply"]["title"] for b in interactive["action"]["buttons"]
                   if b["reply"]["id"] == button_id]
        return await self.api.inbound(self, "interactive", {"interactive": {
            "type": "button_reply", "button_reply": {"id": button_id, "title": title}}},
            context=message["id"])

    async def choose(self, message: JSON, row_id: str) -> JSON:
        """Pick a row of the list `message`."""
        interactive = message["interactive"]
        assert interactive["type"] == "list", "not a list message"
        rows = [r for s in interactive["action"]["sections"] for r in s["rows"]]
        [row] = [r for r in rows if r["id"] == row_id]
        reply = {"id": row_id, "title": row["title"]}
        if "description" in row:
            reply["description"] = row["description"]
        return await self.api.inbound(self, "interactive", {"interactive": {
            "type": "list_reply", "list_reply": reply}}, context=message["id"])

    async def press_template_button(self, message: JSON) -> JSON:
        """Press the quick-reply button of the template `message`."""
        payload = next(p["payload"] for c in message["template"].get("components", [])
                       if c.get("type") == "button" for p in c["parameters"])
        return await self.api.inbound(self, "button", {"button": {
            "payload": payload, "text": "Start"}}, context=message["id"])

    async def send_media(self, kind: str = "image") -> JSON:
        return await self.api.inbound(self, kind, {kind: {"id": "m1", "mime_type": "x/y"}})


class FakeGraphApi:
    def __init__(
        self,
        *,
        phone_number_id: str = "106540352242922",
        display_number: str = "15550783881",
        access_token: str = "EAAG-fake-token",
        app_secret: str = "fake-app-secret",
        version: str = "v21.0",
        enforce_window: bool = True,
        templates: dict[tuple[str, str], int] | None = None,
        messages_per_second: float | None = None,
        pair_seconds: float | None = None,
    ) -> None:
        """`templates`: approved (name, language) → its body's placeholder count (None: any
        template is approved). `messages_per_second`, `pair_seconds`: answer 130429 beyond
        that throughput, 131056 to a second message to one person within that many seconds
        (None: no limit)."""
        self.phone_number_id = phone_number_id
        self.display_number = display_number
        self.access_token = access_token
        self.app_secret = app_secret
        self.version = version
        self.enforce_window = enforce_window
        self.templates = templates
        self.messages_per_second = messages_per_second
        self.pair_seconds = pair_seconds
        self.webhook_url: str | None = None
        self.base_url = ""
        self.requests: list[GraphCall] = []
        self.reads: list[str] = []
        self.media: dict[str, tuple[str, str, bytes]] = {}  # id → (filename, type, bytes)
        # (body posted, {"raw": bytes} when posted as bytes; the status the bot answered)
        self.webhooks: list[tuple[JSON, int]] = []
        self.clock: Callable[[], float] = time.time  # the time windows are measured in
        self._sent: list[JSON] = []
        self._last_inbound: dict[str, float] = {}
        self._users: dict[str, FakeWhatsAppUser] = {}
        self._failures: list[_Failure] = []
        self._blocked: set[str] = set()
        self._recent: deque[float] = deque()
        self._pairs: dict[str, _Pair] = {}
        self._ids = itertools.count(1)
        self._watchers: set[asyncio.Event] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- people and switches -----------------------------------------------------------------

    def user(self, number: str, name: str = "") -> FakeWhatsAppUser:
        found = self._users.get(number)
        if found is None:
            found = self._users[number] = FakeWhatsAppUser(self, number, name or number)
        return found

    def wrote(self, number: str, seconds_ago: float = 0.0) -> None:
        """The person last wrote `seconds_ago`: their window runs from then."""
        self._last_inbound[number] = self.clock() - seconds_ago

    def fail_next(self, code: int, *, to: str | None = None, times: int = 1) -> None:
        """Answer the next `times` sends (to `to`, or to anyone) with error `code` (one of
        ERRORS), or with a bare HTTP 500 for code 500."""
        if code != 500 and code not in ERRORS:
            raise ValueError(f"no error {code} in the fake")
        self._failures.append(_Failure(code, to, times))

    def lose_response_next(self, *, to: str | None = None) -> None:
        """Take the next send, then drop the connection before answering."""
        self._failures.append(_Failure(None, to, 1))

    def block(self, number: str) -> None:
        """Every message to `number` is undeliverable (131026) from now on."""
        self._blocked.add(number)

    # --- what the bot did --------------------------------------------------------------------

    def sent(self, to: str | None = None) -> list[JSON]:
        """Messages accepted, oldest first, as the request's body plus the wamid as "id"."""
        return [copy.deepcopy(m) for m in self._sent if to in (None, m["to"])]

    def texts(self, to: str | None = None) -> list[str]:
        """The text each message shows: a text's body, an interactive's body, a template's
        name."""
        shown = []
        for m in self.sent(to):
            if m["type"] == "text":
                shown.append(m["text"]["body"])
            elif m["type"] == "interactive":
                shown.append(m["interactive"]["body"]["text"])
            elif m["type"] == "template":
                shown.append(f"template:{m['template']['name']}")
            else:
                shown.append(m["type"])
        return shown

    def calls(self, edge: str = "messages") -> list[GraphCall]:
        return [c for c in self.requests if c.path.endswith(f"/{edge}")]

    async def wait_for(self, predicate: Callable[[], _T], timeout: float = 10.0) -> _T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if loop.time() > deadline:
                recent = "\n".join(f"  {c.path} {c.status} {json.dumps(c.body)[:160]}"
                                   for c in self.requests[-10:])
                raise AssertionError(f"timed out after {timeout}s; recent calls:\n{recent}")
            await asyncio.sleep(0.02)

    # --- webhooks ----------------------------------------------------------------------------

    def signature(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()

    def notification(self, value: JSON) -> JSON:
        """A webhook body around one change's value, as Meta sends it."""
        return {"object": "whatsapp_business_account", "entry": [{
            "id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": self.display_number,
                             "phone_number_id": self.phone_number_id},
                **value}}]}]}

    def message_body(self, user: FakeWhatsAppUser, kind: str, content: JSON,
                     context: str | None = None, wamid: str | None = None) -> JSON:
        message: JSON = {"from": user.number, "id": wamid or self._wamid(user.number),
                         "timestamp": str(int(self.clock())), "type": kind, **content}
        if context is not None:
            message["context"] = {"from": self.display_number, "id": context}
        return self.notification({
            "contacts": [{"profile": {"name": user.name}, "wa_id": user.number}],
            "messages": [message]})

    def status_body(self, message: JSON | str, status: str, code: int | None = None) -> JSON:
        """A status webhook for a sent message (or its wamid): sent, delivered, read, or
        failed with `code`."""
        wamid = message if isinstance(message, str) else message["id"]
        to = next((m["to"] for m in self._sent if m["id"] == wamid), "0")
        entry: JSON = {"id": wamid, "status": status, "timestamp": str(int(self.clock())),
                       "recipient_id": to}
        if code is not None:
            _, _, title, details = ERRORS[code]
            entry["errors"] = [{"code": code, "title": title, "message": title,
                                "error_data": {"details": details},
                                "href": "https://developers.facebook.com/docs/whatsapp/"
                                "cloud-api/support/error-codes/"}]
        return self.notification({"statuses": [entry]})

    async def inbound(self, user: FakeWhatsAppUser, kind: str, content: JSON,
                      context: str | None = None) -> JSON:
        """The person sends a message: their window opens, and the webhook is posted when
        the fake knows the bot's URL. The body it posted (or would have)."""
        body = self.message_body(user, kind, content, context)
        self._last_inbound[user.number] = self.clock()
        if self.webhook_url is not None:
            await self.post_webhook(body)
        return body

    async def post_webhook(self, body: JSON | bytes, *, url: str | None = None,
                           signature: str | None = None) -> int:
        """POST `body` to the bot's webhook, signed with the app secret (or `signature` as
        given, to forge one); the HTTP status the bot answered."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        target = url or self.webhook_url
        if target is None:
            raise AssertionError("set api.webhook_url (or pass url=) to post webhooks")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Content-Type": "application/json",
                   "X-Hub-Signature-256": signature if signature is not None
                   else self.signature(raw)}
        async with self._session.post(target, data=raw, headers=headers) as response:
            status = response.status
        self.webhooks.append((body if isinstance(body, dict) else {"raw": raw}, status))
        return status

    # --- serving -----------------------------------------------------------------------------

    def _wamid(self, number: str) -> str:
        raw = f"{number}-{next(self._ids)}-{id(self)}".encode()
        return "wamid.HBgM" + hashlib.sha1(raw).hexdigest().upper()[:32] + "=="

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call = GraphCall(request.path, {}, at=time.monotonic())
        self.requests.append(call)
        try:
            answer = await self._serve(request, call)
        except _GraphError as exc:
            call.status, call.answer = exc.status, exc.body
            return web.json_response(exc.body, status=exc.status)
        except _Lost:
            call.status = None  # the message was taken; its answer never arrives
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError from None  # aiohttp drops it without an answer
        except _Bare500:
            call.status = 500
            return web.Response(status=500, text="Internal Server Error")
        call.status, call.answer = 200, answer
        return web.json_response(answer)

    async def _serve(self, request: web.Request, call: GraphCall) -> JSON:
        match = re.fullmatch(r"/(v[0-9]+\.[0-9]+)/([0-9]+)/(messages|media)", request.path)
        if request.method != "POST" or match is None:
            raise _invalid(f"Unsupported {request.method} request: {request.path}", 100)
        version, number_id, edge = match.groups()
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            raise _GraphError(190)
        if number_id != self.phone_number_id or version != self.version:
            raise _invalid(f"Unsupported post request. Object with ID '{number_id}' does not "
                           "exist", 100)
        if edge == "media":
            return await self._upload(request, call)
        try:
            body = await request.json()
        except ValueError:
            raise _invalid("The request body is not JSON", 100) from None
        if not isinstance(body, dict):
            raise _invalid("The request body is not a JSON object", 100)
        call.body = body
        if body.get("messaging_product") != "whatsapp":
            raise _invalid("messaging_product is required and must be whatsapp", 131008)
        if body.get("status") == "read":
            wamid = body.get("message_id")
            if not isinstance(wamid, str):
                raise _invalid("message_id is required", 131008)
            self.reads.append(wamid)
            return {"success": True}
        return self._message(body)

    async def _upload(self, request: web.Request, call: GraphCall) -> JSON:
        form = await request.post()
        file = form.get("file")
        if form.get("messaging_product") != "whatsapp" or not isinstance(file, web.FileField):
            raise _invalid("messaging_product and file are required", 131008)
        media_id = str(next(self._ids) + 10**15)
        self.media[media_id] = (file.filename, str(form.get("type", "")), file.file.read())
        call.body = {"type": form.get("type"), "filename": file.filename}
        return {"id": media_id}

    def _message(self, body: JSON) -> JSON:
        to, kind = body.get("to"), body.get("type", "text")
        if not isinstance(to, str) or not re.fullmatch(r"\+?[0-9]{8,15}", to):
            raise _invalid("to: must be a phone number", 131009 if to else 131008)
        to = to.lstrip("+")
        content = body.get(kind)
        if not isinstance(content, dict):
            raise _invalid(f"{kind}: the message's {kind} object is required", 131008)
        self._check(kind, content)
        lost = self._fail(to)
        if kind != "template" and self.enforce_window:
            last = self._last_inbound.get(to)
            if last is None or self.clock() - last > WINDOW_SECONDS:
                raise _GraphError(131047)
        self._throttle(to)
        if to in self._blocked:
            raise _GraphError(131026)
        wamid = self._wamid(to)
        self._sent.append({**copy.deepcopy(body), "to": to, "id": wamid})
        if lost:
            raise _Lost
        return {"messaging_product": "whatsapp", "contacts": [{"input": body["to"],
                                                               "wa_id": to}],
                "messages": [{"id": wamid}]}

    def _fail(self, to: str) -> bool:
        """Raise the next injected failure for `to`; True: lose the answer once sent."""
        for failure in self._failures:
            if failure.to in (None, to):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                if failure.code is None:
                    return True
                if failure.code == 500:
                    raise _Bare500
                raise _GraphError(failure.code)
        return False

    def _throttle(self, to: str) -> None:
        now = time.monotonic()
        if self.messages_per_second is not None:
            window = max(1.0, 1.0 / self.messages_per_second)
            while self._recent and self._recent[0] <= now - window:
                self._recent.popleft()
            if len(self._recent) >= max(1, math.floor(self.messages_per_second * window)):
                raise _GraphError(130429)
        if self.pair_seconds is not None:
            pair = self._pairs.setdefault(to, _Pair())
            if pair.times and now - pair.times[-1] < self.pair_seconds:
                raise _GraphError(131056)
            pair.times.append(now)
        self._recent.append(now)

    def _check(self, kind: str, content: JSON) -> None:
        """The limits Meta checks, with its codes and details."""
        if kind == "text":
            text = content.get("body")
            if not isinstance(text, str) or not text:
                raise _invalid("text['body'] is required", 131008)
            if len(text) > _TEXT_BODY:
                raise _invalid(f"text['body']: Param text['body'] must be at most {_TEXT_BODY} "
                               "characters long.", 100)
        elif kind == "interactive":
            self._check_interactive(content)
        elif kind == "template":
            name, language = content.get("name"), _dict(content.get("language")).get("code")
            if not isinstance(name, str) or not isinstance(language, str):
                raise _invalid("template: name and language.code are required", 131008)
            params = [p for c in content.get("components", []) if c.get("type") == "body"
                      for p in c.get("parameters", [])]
            if self.templates is not None:
                expected = self.templates.get((name, language))
                if expected is None:
                    raise _GraphError(132001, f"template name ({name}) does not exist in "
                                      f"{language}")
                if expected != len(params):
                    raise _GraphError(132000)
        elif kind in ("document", "image"):
            if content.get("id") not in self.media and "link" not in content:
                raise _invalid(f"{kind}: the media id is not valid", 131009)
            caption = content.get("caption")
            if isinstance(caption, str) and len(caption) > _INTERACTIVE_BODY:
                raise _invalid(f"{kind}['caption'] is too long", 100)
        else:
            raise _invalid(f"type: {kind!r} is not served by the fake", 100)

    def _check_interactive(self, content: JSON) -> None:
        kind = content.get("type")
        text = _dict(content.get("body")).get("text")
        if not isinstance(text, str) or not text:
            raise _invalid("interactive['body']['text'] is required", 131008)
        if len(text) > _INTERACTIVE_BODY:
            raise _invalid("Param interactive['body']['text'] must be at most "
                           f"{_INTERACTIVE_BODY} characters long.", 100)
        action = _dict(content.get("action"))
        if kind == "button":
            buttons = action.get("buttons")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
                raise _invalid("Param interactive['action']['buttons'] must have between 1 "
                               "and 3 items.", 100)
            ids = []
            for b in buttons:
                reply = _dict(_dict(b).get("reply"))
                title, bid = reply.get("title"), reply.get("id")
                if not isinstance(title, str) or not 1 <= len(title) <= 20:
                    raise _invalid("Param interactive['action']['buttons'][]['reply']"
                                   "['title'] must be between 1 and 20 characters long.", 100)
                if not isinstance(bid, str) or not 1 <= len(bid) <= 256:
                    raise _invalid("Param interactive['action']['buttons'][]['reply']['id'] "
                                   "must be between 1 and 256 characters long.", 100)
                ids.append(bid)
            if len(set(ids)) != len(ids):
                raise _invalid("Buttons must have unique ids", 131009)
        elif kind == "list":
            label = action.get("button")
            if not isinstance(label, str) or not 1 <= len(label) <= 20:
                raise _invalid("Param interactive['action']['button'] must be between 1 and "
                               "20 characters long.", 100)
            rows = [r for s in action.get("sections", []) for r in _dict(s).get("rows", [])]
            if not 1 <= len(rows) <= 10:
                raise _invalid("Total row count exceed max allowed count: 10", 131009)
            ids = []
            for row in rows:
                title, rid = _dict(row).get("title"), _dict(row).get("id")
                if not isinstance(title, str) or not 1 <= len(title) <= 24:
                    raise _invalid("Row title must be between 1 and 24 characters long.", 100)
                if not isinstance(rid, str) or not 1 <= len(rid) <= 200:
                    raise _invalid("Row id must be between 1 and 200 characters long.", 100)
                description = row.get("description")
                if description is not None and len(str(description)) > 72:
                    raise _invalid("Row description must be at most 72 characters long.", 100)
                ids.append(rid)
            if len(set(ids)) != len(ids):
                raise _invalid("Row ids must be unique", 131009)
        else:
            raise _invalid(f"interactive type {kind!r} is not served by the fake", 100)


class _Lost(Exception):
    pass


class _Bare500(Exception):
    pass


def _dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}
