"""The web chat's HTTP side (docs/web-chat.md is the contract with static/sada.js): the /s/
page, the widget file, and the JSON API under /web/v1 the widget calls.

Inbound, a visitor's words and presses become the controller's events, exactly as a chat
channel's updates do (one event, one transaction), queued in the visitor's lane so one
visitor's events are handled in order; the answer is 202 at once and the bot's replies
arrive on the stream. Every request is checked before anything is read from the database:
its origin (CORS), its size and JSON shape, the visitor id's form, and its rate.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from aiohttp import web

from bot.channels.web import history
from bot.channels.web.channel import CHANNEL, VISITOR, new_visitor
from bot.channels.web.history import Entry, Waiters
from bot.channels.web.limits import Buckets
from bot.channels.web.page import SECURITY_HEADERS, accepted_language, chat_page, direction_of
from bot.channels.web.settings import WebSettings, origin_of
from bot.channels.web.transport import WebTransport, press_id
from bot.channels.web.words import with_words
from bot.conversation.events import Pressed, Sender, Typed
from bot.conversation.lanes import ChatLanes
from bot.engine.normalize import without_controls
from bot.flow.model import LANGUAGES
from bot.messaging import links
from bot.messaging.keyboards import PREFIX
from bot.serving import Core
from storage.repo import Store

log = logging.getLogger(__name__)

API = "/web/v1"
SCRIPT_PATH = "/web/sada.js"
PAGE_PREFIX = "/s/"
FLOW_PREFIX = "/s/flow/"
MAX_BODY = 16 * 1024  # bytes of a request body: a 4096-character answer in any script fits
MAX_TEXT = 4096  # characters of a typed answer, as a chat message
_FLOW_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FORGET_YES = f"{PREFIX}:x:yes"  # the controller's /forget confirmation button
PING_SECONDS = 15.0
LOOK_AGAIN_SECONDS = 2.0  # a stream's look at the database for other processes' writes
POLL_SECONDS = 25.0
# How fast one visitor may say or press (a burst, then per second), and one IP open chats
# or streams (a burst, then per second: 30 a minute).
VISITOR_BURST, VISITOR_RATE = 10, 2.0
IP_BURST, IP_RATE = 30, 0.5
POLL_BURST, POLL_RATE = 30, 4.0  # long polls of one visitor


class Refusal(Exception):
    """A request answered with `status` and one line; `retry_after` for 429."""

    def __init__(self, status: int, code: str, message: str,
                 retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
          ) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=headers)


def _script() -> bytes | None:
    try:
        return (resources.files("bot.channels.web") / "static" / "sada.js").read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebChat:
    """The web chat's endpoints over one controller and one transport."""

    def __init__(self, store: Store, core: Core, transport: WebTransport,
                 settings: WebSettings, *, stop: asyncio.Event | None = None,
                 lanes: ChatLanes | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store, self.core, self.transport, self.settings = store, core, transport, settings
        self.database = store.database
        self.waiters: Waiters = transport.waiters
        self.stop = stop or asyncio.Event()
        self.lanes = lanes or ChatLanes()
        self.clock = clock
        self.visitors = Buckets(VISITOR_BURST, VISITOR_RATE)
        self.ips = Buckets(IP_BURST, IP_RATE)
        self.polls = Buckets(POLL_BURST, POLL_RATE)
        self.look_again = LOOK_AGAIN_SECONDS
        self.allowed = frozenset(settings.allowed_origins)
        self.public_origin = (origin_of(settings.public_url) if settings.public_url
                              else None)

    # --- routes ----------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, exact path, handler); the pages are under PAGE_PREFIX (prefix_routes)."""
        found: list[tuple[str, str, Handler]] = [("GET", SCRIPT_PATH, self.script)]
        for name, method, handler in (("open", "POST", self.open), ("say", "POST", self.say),
                                      ("press", "POST", self.press),
                                      ("stream", "GET", self.stream),
                                      ("poll", "GET", self.poll)):
            found.append((method, f"{API}/{name}", self._api(handler)))
            found.append(("OPTIONS", f"{API}/{name}", self.preflight))
        return found

    def prefix_routes(self) -> list[tuple[str, str, Handler]]:
        return [("GET", PAGE_PREFIX, self.page)]

    def application(self) -> web.Application:
        """The endpoints as an aiohttp application of their own (tests, embedding)."""
        app = web.Application()
        for method, path, handler in self.routes():
            app.router.add_route(method, path, handler)
        app.router.add_route("GET", PAGE_PREFIX + "{rest:.*}", self.page)
        return app

    # --- origins -----------------------------------------------------------------------------

    def own_origin(self, request: web.Request) -> str:
        """The origin the browser reached this server at: the forwarded one when a trusted
        proxy says so, else the request's own."""
        scheme, host = request.scheme, request.host
        if self.settings.trust_proxy:
            forwarded_proto = request.headers.get("X-Forwarded-Proto", "")
            forwarded_host = request.headers.get("X-Forwarded-Host", "")
            scheme = forwarded_proto.split(",")[0].strip().lower() or scheme
            host = forwarded_host.split(",")[0].strip() or host
        return origin_of(f"{scheme}://{host}")

    def _origin_allowed(self, request: web.Request, origin: str) -> bool:
        origin = origin.lower()
        return (origin in self.allowed or origin == self.own_origin(request)
                or origin == self.public_origin)

    def _cors(self, request: web.Request) -> dict[str, str]:
        """The CORS headers of an answer, or Refusal 403 for an origin not allowed. No
        Origin header: not a cross-origin browser call, nothing to add."""
        origin = request.headers.get("Origin")
        if origin is None:
            return {}
        if not self._origin_allowed(request, origin):
            raise Refusal(403, "origin", f"the origin {origin} may not use this chat; add "
                          "it to SADA_WEB__ALLOWED_ORIGINS on the server")
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        try:
            headers = self._cors(request)
        except Refusal as refusal:
            return error(refusal.status, refusal.code, str(refusal))
        headers.update({"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                        "Access-Control-Allow-Headers": "Content-Type, Last-Event-ID",
                        "Access-Control-Max-Age": "600"})
        return web.Response(status=204, headers=headers)

    def _api(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
             ) -> Handler:
        async def answer(request: web.Request) -> web.StreamResponse:
            try:
                cors = self._cors(request)
            except Refusal as refusal:
                return error(refusal.status, refusal.code, str(refusal))
            try:
                response = await handler(request)
            except Refusal as refusal:
                headers = dict(cors)
                if refusal.retry_after is not None:
                    headers["Retry-After"] = refusal.retry_after
                return error(refusal.status, refusal.code, str(refusal), headers)
            except (web.HTTPException, asyncio.CancelledError):
                raise
            except Exception:  # logged with its traceback; the browser gets one line
                log.exception("web chat: %s %s failed", request.method, request.path)
                return error(500, "failed", "the server failed to answer; try again "
                             "shortly", cors)
            if not response.prepared:
                response.headers.update(cors)
            return response

        return answer

    # --- checks ------------------------------------------------------------------------------

    def _limit(self, buckets: Buckets, key: str, what: str) -> None:
        wait = buckets.take(key)
        if wait > 0:
            seconds = Buckets.retry_after(wait)
            raise Refusal(429, "rate_limited",
                          f"too many {what}; try again in {seconds} s", seconds)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise Refusal(413, "too_large", f"the body is over {MAX_BODY} bytes")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise Refusal(413, "too_large", f"the body is over {MAX_BODY} bytes")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise Refusal(400, "bad_json", "the body must be a JSON object in UTF-8, "
                          'such as {"visitor": "…", "text": "…"}') from None
        if not isinstance(body, dict):
            raise Refusal(400, "bad_json", "the body must be a JSON object, not "
                          f"{type(body).__name__}")
        return body

    @staticmethod
    def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
        value = body.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise Refusal(400, "bad_field", f"{name} must be a string"
                          + ("" if required else " or null"))
        return value

    async def _visitor(self, value: str | None) -> str:
        """A known visitor's id, or Refusal naming what is wrong with it."""
        if value is None or not VISITOR.accepts(value):
            raise Refusal(400, "bad_visitor", f"visitor must be {VISITOR.hint}, as open "
                          "returned it")
        if await history.visitor(self.database, value) is None:
            raise Refusal(404, "unknown_visitor", "no such visitor: call open first")
        return value

    def _after(self, request: web.Request) -> int:
        written = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
        if not written.isascii() or not written.isdigit() or len(written) > 18:
            raise Refusal(400, "bad_after", "after must be a whole number: the last seq the "
                          "browser has")
        return int(written)

    def _ip(self, request: web.Request) -> str:
        if self.settings.trust_proxy:
            # the last address: the one the proxy added; earlier ones the client may forge
            forwarded = request.headers.get("X-Forwarded-For", "")
            if forwarded.strip():
                return forwarded.split(",")[-1].strip()
        return request.remote or "?"

    # --- the page and the widget ------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        token: str | None = None
        flow: str | None = None
        if path.startswith(FLOW_PREFIX):
            flow = path.removeprefix(FLOW_PREFIX)
            if not _FLOW_ID.fullmatch(flow) or not self._public(flow):
                return self._not_found("no survey here: check the address")
        else:
            token = path.removeprefix(PAGE_PREFIX)
            if not links.is_token(token):
                return self._not_found("no survey here: the link is incomplete")
        language, pinned = None, False
        if token is not None:
            link = await self.store.get_link(token)
            if link is not None and link.contact_id is not None:
                contact = await self.store.get_contact(link.contact_id)
                if contact is not None and contact.language in LANGUAGES:
                    language, pinned = contact.language, True
        if language is None:
            language = accepted_language(request.headers.get("Accept-Language")) or "en"
        html = chat_page(origin=self.own_origin(request), language=language, token=token,
                         flow=flow, pinned=pinned)
        return web.Response(text=html, content_type="text/html", charset="utf-8",
                            headers=SECURITY_HEADERS)

    def _public(self, flow: str) -> bool:
        """Whether anyone may open `flow` without a link (`public: true`)."""
        loaded = getattr(self.core, "flows", {}).get(flow)
        return loaded is not None and bool(loaded.flow.public)

    @staticmethod
    def _not_found(text: str) -> web.Response:
        return web.Response(status=404, text=text + "\n", content_type="text/plain",
                            headers=SECURITY_HEADERS)

    async def script(self, request: web.Request) -> web.StreamResponse:
        content = _script()
        if content is None:
            return web.Response(status=404, text="// the web chat's widget is not installed\n",
                                content_type="application/javascript")
        response = web.Response(body=with_words(content), content_type="application/javascript",
                                charset="utf-8",
                                headers={"Cache-Control": "public, max-age=300",
                                         "X-Content-Type-Options": "nosniff",
                                         "Access-Control-Allow-Origin": "*"})
        response.enable_compression()
        return response

    # --- the API ------------------------------------------------------------------------------

    async def open(self, request: web.Request) -> web.StreamResponse:
        self._limit(self.ips, self._ip(request), "chats opened from this address")
        body = await self._body(request)
        written = self._text(body, "visitor", required=False)
        token = self._text(body, "token", required=False)
        flow = self._text(body, "flow", required=False)
        lang = self._text(body, "lang", required=False)
        if token is not None and flow is not None:
            raise Refusal(400, "bad_field", "give token or flow, not both")
        if token is not None and not links.is_token(token):
            raise Refusal(400, "bad_token", "token must be the link's token: up to 64 "
                          "letters, digits, _ or -")
        if flow is not None and not _FLOW_ID.fullmatch(flow):
            raise Refusal(400, "bad_flow", "flow must be a flow id such as b2b-supplier")
        if lang is not None and lang not in LANGUAGES:
            raise Refusal(400, "bad_lang", f"lang must be one of {', '.join(LANGUAGES)} "
                          "or null")
        if flow is not None and not self._public(flow):
            raise Refusal(404, "unknown_flow", f"there is no public survey {flow!r}")
        if written is not None and not VISITOR.accepts(written):
            written = None  # a stale or damaged id: a new visitor, as for none
        found = None if written is None else await history.visitor(self.database, written)
        now = self.clock()
        if found is None:
            guessed = lang or accepted_language(request.headers.get("Accept-Language"))
            found = await history.add_visitor(self.database, new_visitor(), language=guessed,
                                              now=now)
        elif lang is not None and lang != found.language:
            await history.set_language(self.database, found.id, lang)
            found.language = lang
        visitor_id = found.id
        shown, last = await history.conversation(self.database, visitor_id)
        key = f"t:{token}" if token is not None else f"f:{flow}" if flow is not None else None
        if key is not None and await history.first_open(self.database, visitor_id, key):
            start = token if token is not None else flow
            self._submit(Typed(None, visitor_id, self._sender(visitor_id, found.language),
                               f"/start {start}"))
        contact = None if lang or found.language else \
            await self.store.find_contact(CHANNEL.name, visitor_id)
        language = lang or found.language or (contact.language if contact else None) or "en"
        return web.json_response({"visitor": visitor_id, "lang": language,
                                  "dir": direction_of(language), "messages": shown,
                                  "last": last})

    async def say(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        visitor_id = await self._visitor(self._text(body, "visitor"))
        written = self._text(body, "text")
        assert written is not None
        # NUL and other controls: PostgreSQL refuses the one, the rest garble text
        text = without_controls(written)
        if not text.strip():
            raise Refusal(400, "empty_text", "text is empty: type an answer")
        if len(text) > MAX_TEXT:
            raise Refusal(413, "too_long", f"text is {len(text)} characters; at most "
                          f"{MAX_TEXT}")
        self._limit(self.visitors, visitor_id, "messages; slow down")
        await self._remember(visitor_id, text)
        self._submit(Typed(None, visitor_id, self._sender(visitor_id), text))
        return web.json_response({"ok": True}, status=202)

    async def press(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        visitor_id = await self._visitor(self._text(body, "visitor"))
        written = self._text(body, "data")
        assert written is not None
        data = without_controls(written)
        if not data or len(data) > CHANNEL.capabilities.callback_data:
            raise Refusal(400, "bad_data", "data must be a button's data as the server "
                          "sent it")
        self._limit(self.visitors, visitor_id, "presses; slow down")
        shown, _ = await history.conversation(self.database, visitor_id)
        message_id = None
        for message in reversed(shown):
            if history.label_of([message], data) is not None:
                message_id = message.get("id")
                await self._remember(visitor_id, history.label_of([message], data) or "")
                break
        self._submit(Pressed(None, visitor_id, self._sender(visitor_id), press_id(visitor_id),
                             message_id, data))
        return web.json_response({"ok": True}, status=202)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self._limit(self.ips, self._ip(request), "connections from this address")
        visitor_id = await self._visitor(request.query.get("visitor"))
        after = self._after(request)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            **self._cors(request)})
        await response.prepare(request)
        pinged = time.monotonic()
        try:
            with self.waiters.watching(visitor_id):
                await response.write(b"retry: 2000\n\n")
                while not self.stop.is_set():
                    seen = self.waiters.written(visitor_id)
                    for found in await history.entries_after(self.database, visitor_id, after):
                        data = json.dumps(found, ensure_ascii=False)
                        await response.write(
                            f"id: {found['seq']}\nevent: message\ndata: {data}\n\n".encode())
                        after = found["seq"]
                    if time.monotonic() - pinged >= PING_SECONDS:
                        await response.write(b": ping\n\n")
                        pinged = time.monotonic()
                    await self._wait(visitor_id, seen, self.look_again)
        except ConnectionResetError:
            pass  # the browser went away: it reconnects with the last id it got
        return response

    async def poll(self, request: web.Request) -> web.StreamResponse:
        visitor_id = await self._visitor(request.query.get("visitor"))
        # one poll per reply received: limited per visitor, apart from their answers
        self._limit(self.polls, visitor_id, "polls; slow down")
        after = self._after(request)
        deadline = time.monotonic() + POLL_SECONDS
        found: list[Entry] = []
        with self.waiters.watching(visitor_id):
            while not self.stop.is_set():
                seen = self.waiters.written(visitor_id)
                found = await history.entries_after(self.database, visitor_id, after)
                left = deadline - time.monotonic()
                if found or left <= 0:
                    break
                await self._wait(visitor_id, seen, min(self.look_again, left))
        last = found[-1]["seq"] if found else after
        return web.json_response({"messages": found, "last": last})

    async def _wait(self, visitor_id: str, seen: int, seconds: float) -> None:
        stopping = asyncio.ensure_future(self.stop.wait())
        woken = asyncio.ensure_future(self.waiters.wait(visitor_id, seen, seconds))
        try:
            await asyncio.wait((stopping, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stopping, woken):
                task.cancel()
            await asyncio.gather(stopping, woken, return_exceptions=True)

    # --- into the controller ------------------------------------------------------------------

    @staticmethod
    def _sender(visitor_id: str, language: str | None = None) -> Sender:
        return Sender(id=visitor_id, language_code=language)

    async def _remember(self, visitor_id: str, text: str) -> None:
        """The visitor's own words (or a pressed button's label), so a reload shows them."""
        await history.append(self.database, visitor_id, "visitor",
                             {"text": text, "dir": history.direction(text)}, now=self.clock())
        await self.waiters.wake(visitor_id)

    def _submit(self, event: Typed | Pressed) -> None:
        """The event into the visitor's lane: handled after their earlier ones."""
        self.lanes.submit(event.chat_id, functools.partial(self._handle, event))

    async def _handle(self, event: Typed | Pressed) -> None:
        erasing = isinstance(event, Pressed) and event.data == FORGET_YES
        before = await history.last_seq(self.database, event.chat_id) if erasing else 0
        await self.core.process(event, self.transport)
        if erasing and await self.store.find_contact(CHANNEL.name, event.chat_id) is None:
            # /forget confirmed and done: the conversation holds their answers too
            await history.erase(self.database, event.chat_id, before)
