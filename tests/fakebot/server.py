"""A fake Telegram Bot API server that real aiogram and python-telegram-bot clients talk to.

It serves `/bot<token>/<method>` over HTTP on 127.0.0.1 from inside the test's event loop,
answers with the shapes and error texts Telegram uses, records every request, builds
realistic updates for long polling or webhooks, and injects the failures a survey bot must
survive: 429 flood waits, users who blocked the bot, lost responses and Telegram's own limits
on texts and buttons.

    async with FakeBotApi() as api:
        bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url)))
        sara = api.user(1001)
        await sara.send("/start")
        await api.wait_for(lambda: api.sent(sara.id))

Only the methods a survey bot uses are served; anything else answers 404 like an unknown
method, so a test never passes against behaviour the fake merely assumed.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import inspect
import json
import math
import random
import re
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
from aiohttp import web

from .entities import EntityParseError, parse_text, utf16_len

__all__ = ["Call", "FakeBotApi", "FakeUser", "UploadedFile"]

JSON = dict[str, Any]
_T = TypeVar("_T")

BLOCKED = "Forbidden: bot was blocked by the user"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
TERMINATED = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
QUERY_INVALID = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: BLOCKED,
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

# Update types Telegram leaves out unless allowed_updates names them.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_INLINE_BUTTON_ACTIONS = frozenset({
    "url", "callback_data", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
})
_CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})
# Form fields arrive as strings; these stay strings even when they look like numbers or JSON.
_STRING_PARAMS = frozenset({
    "text", "caption", "parse_mode", "url", "secret_token", "ip_address", "callback_query_id",
    "inline_message_id", "action", "language_code", "description", "short_description",
    "name", "business_connection_id", "message_effect_id", "custom_emoji_id", "emoji", "title",
    "question", "explanation", "query", "photo", "document", "audio", "video", "voice",
    "animation", "sticker", "video_note", "file_id", "phone_number", "first_name", "last_name",
    "payload", "currency", "start_parameter",
})
_TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
_PATH = re.compile(r"/bot([^/]*)/([^/]*)")
_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+")
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")
_BOT_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")

Handler = Callable[[JSON, "Call"], Awaitable[Any]]


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One request as the fake understood it."""

    method: str  # the canonical name ("sendMessage"), whatever case the client used
    params: JSON  # decoded: numbers, booleans and JSON fields such as reply_markup as objects
    encoding: str = "empty"  # "json", "form", "multipart", "query" or "empty"
    status: int | None = None  # HTTP status of the answer; None while pending or if abandoned
    result: Any = None  # the "result" of an ok answer
    error: str | None = None  # the "description" of an error answer
    at: float = 0.0  # time.monotonic() when it arrived

    @property
    def ok(self) -> bool:
        return self.status == 200

    def __str__(self) -> str:
        shown = {k: v for k, v in self.params.items() if k != "reply_markup"}
        if "reply_markup" in self.params:
            shown["reply_markup"] = "…"
        text = ", ".join(f"{k}={_short(v)}" for k, v in shown.items())
        outcome = "pending" if self.status is None else str(self.status)
        if self.error:
            outcome += f" {self.error}"
        return f"{self.method}({text}) -> {outcome}"


class _ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class _Failure:
    method: str  # lower-case
    times: int
    error: _ApiError | None  # None: lose the response after the method took effect


@dataclass
class _Queued:
    update: JSON
    forced: bool = False  # a redelivery: handed out once even below the confirmed offset
    delivered: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


@dataclass(eq=False)
class _Poll:
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    terminated: bool = False


@dataclass
class _Chat:
    info: JSON
    chat_instance: str
    user: FakeUser | None = None
    next_message_id: int = 1
    messages: dict[int, JSON] = field(default_factory=dict)
    bot_messages: set[int] = field(default_factory=set)

    def new_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


class _RateWindow:
    """At most `per_second` accepted calls in a rolling window (≥ 1 s, longer for slow rates)."""

    def __init__(self, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.window = max(1.0, 1.0 / per_second)
        self.capacity = max(1, int(per_second * self.window))
        self.times: deque[float] = deque()

    def retry_after(self, now: float) -> int | None:
        while self.times and self.times[0] <= now - self.window:
            self.times.popleft()
        if len(self.times) < self.capacity:
            return None
        return max(1, math.ceil(self.times[0] + self.window - now))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _coerce(name: str, value: Any) -> Any:
    """Decode one form value the way the Bot API reads it: JSON, numbers and booleans."""
    if name in _STRING_PARAMS:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    if stripped in ("true", "false"):
        return stripped == "true"
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _FLOAT.fullmatch(stripped):
        return float(stripped)
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except ValueError:
            return value  # the method decides whether that is an error
    return value


def _update_type(update: JSON) -> str:
    return next((key for key in update if key != "update_id"), "")


def _callback_datas(markup: Any) -> list[str]:
    if not isinstance(markup, dict):
        return []
    rows = markup.get("inline_keyboard") or []
    return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


def _now() -> int:
    return int(time.time())


class FakeUser:
    """A Telegram user in a private chat with the bot; every action queues a real update."""

    def __init__(
        self, api: FakeBotApi, user_id: int, first_name: str, language_code: str | None,
        username: str | None, last_name: str | None,
    ) -> None:
        self.api = api
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.language_code = language_code
        self.username = username
        self.started = False  # has written to the bot, so the bot may write first

    @property
    def info(self) -> JSON:
        """The User object Telegram puts in `from`."""
        user: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    @property
    def chat(self) -> JSON:
        """The private Chat object of the conversation with this user."""
        chat: JSON = {"id": self.id, "first_name": self.first_name}
        if self.last_name:
            chat["last_name"] = self.last_name
        if self.username:
            chat["username"] = self.username
        chat["type"] = "private"
        return chat

    def inbox(self) -> list[JSON]:
        """What the bot has sent this user so far."""
        return self.api.sent(self.id)

    async def send(self, text: str, *, reply_to: JSON | None = None) -> JSON:
        """The user writes `text`; "/start x" carries a bot_command entity as from Telegram."""
        self.started = True
        chat = self.api._chat(self.id)
        message: JSON = {
            "message_id": chat.new_message_id(),
            "from": self.info,
            "chat": self.chat,
            "date": _now(),
            "text": text,
        }
        command = _COMMAND.match(text)
        if command:
            message["entities"] = [
                {"offset": 0, "length": utf16_len(command.group()), "type": "bot_command"}
            ]
        if reply_to is not None:
            replied = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
            message["reply_to_message"] = replied
        chat.messages[message["message_id"]] = copy.deepcopy(message)
        return self.api.queue_update({"message": message})

    async def press(self, message: JSON, callback_data: str) -> JSON:
        """The user taps the button carrying `callback_data` on `message` (a bot message)."""
        offered = _callback_datas(message.get("reply_markup"))
        if callback_data not in offered:
            raise AssertionError(
                f"message {message.get('message_id')} has no button with callback_data "
                f"{callback_data!r} (it offers {offered}); use forge() for a forged press"
            )
        current = self.api.message(self.id, int(message["message_id"]))
        return self._callback(current if current is not None else message, callback_data)

    async def forge(self, callback_data: str, message_id: int | None = None) -> JSON:
        """A press with data no button carries, as a modified client can send."""
        chat = self.api._chat(self.id)
        if message_id is None:
            message_id = max(chat.bot_messages, default=1)
        current = self.api.message(self.id, message_id)
        if current is None:  # Telegram's InaccessibleMessage
            current = {"chat": self.chat, "message_id": message_id, "date": 0}
        return self._callback(current, callback_data)

    def _callback(self, message: JSON, data: str) -> JSON:
        self.started = True
        query_id = str(self.api._rng.randrange(10**18, 10**19))
        self.api._callbacks[query_id] = False
        return self.api.queue_update({
            "callback_query": {
                "id": query_id,
                "from": self.info,
                "message": copy.deepcopy(message),
                "chat_instance": self.api._chat(self.id).chat_instance,
                "data": data,
            }
        })

    async def block(self) -> JSON:
        """The user blocks the bot: sends now fail with 403 and a my_chat_member update comes."""
        self.api.block(self.id)
        return self._member_update("member", "kicked")

    async def unblock(self) -> JSON:
        """The user unblocks (restarts) the bot."""
        self.api.unblock(self.id)
        self.started = True
        return self._member_update("kicked", "member")

    def _member_update(self, old: str, new: str) -> JSON:
        def member(status: str) -> JSON:
            body: JSON = {"user": self.api.me, "status": status}
            if status == "kicked":
                body["until_date"] = 0
            return body

        return self.api.queue_update({
            "my_chat_member": {
                "chat": self.chat,
                "from": self.info,
                "date": _now(),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            }
        })


class FakeBotApi:
    """The fake server and its state. Use as `async with FakeBotApi() as api:`."""

    def __init__(
        self,
        token: str = "123456:TEST-token",
        username: str = "sada_test_bot",
        first_name: str = "Sada Test",
        *,
        require_known_chats: bool = False,
        seed: int | None = None,
    ) -> None:
        """`require_known_chats`: sending to a chat no `user()` created is 400 "chat not
        found", and to a user who never wrote is 403 "bot can't initiate conversation"."""
        if not _TOKEN.fullmatch(token):
            raise ValueError(f"not a bot token: {token!r}")
        self.token = token
        self.username = username
        self.first_name = first_name
        self.bot_id = int(token.split(":", 1)[0])
        self.require_known_chats = require_known_chats
        self.base_url = ""
        self.requests: list[Call] = []
        self.rejected_429 = 0
        self.updates_confirmed = 0  # the highest offset a getUpdates call confirmed
        self.documents: list[tuple[int, UploadedFile]] = []  # (chat id, file) sent
        self.photos: list[tuple[int, UploadedFile]] = []
        self.deliveries: list[int] = []  # update_ids in the order they were handed out
        self.filtered_updates: list[JSON] = []  # dropped because allowed_updates left them out
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.server_errors: list[BaseException] = []  # bugs in the fake itself
        self._rng = random.Random(seed)
        self._next_update_id = self._rng.randrange(100_000_000, 900_000_000)
        self._queue: list[_Queued] = []
        self._allowed: frozenset[str] | None = None
        self._polls: set[_Poll] = set()
        self._watchers: set[asyncio.Event] = set()
        self._users: dict[int, FakeUser] = {}
        self._chats: dict[int, _Chat] = {}
        self._sent: list[JSON] = []
        self._sent_by_chat: dict[Any, list[JSON]] = {}
        self._edits: list[JSON] = []
        self._answers: list[JSON] = []
        self._deleted: list[tuple[int, int]] = []
        self._callbacks: dict[str, bool] = {}  # query id -> answered
        self._failures: list[_Failure] = []
        self._blocked: set[int] = set()
        self._global_rate: _RateWindow | None = None
        self._chat_rate: float | None = None
        self._chat_rates: dict[int, _RateWindow] = {}
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._menu_buttons: dict[int | None, JSON] = {}
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._handlers: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "sendMessage": self._send_message,
                "sendDocument": self._send_document,
                "sendPhoto": self._send_photo,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "answerCallbackQuery": self._answer_callback_query,
                "deleteMessage": self._delete_message,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "setChatMenuButton": self._set_chat_menu_button,
                "getChatMenuButton": self._get_chat_menu_button,
                "sendChatAction": self._send_chat_action,
                "close": self._true,
                "logOut": self._true,
            }.items()
        }

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if self.server_errors and exc_type is None:
            raise AssertionError(f"the fake Bot API itself failed: {self.server_errors!r}")

    async def start(self) -> None:
        self._closing = False
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that gives up a long poll frees its handler at once
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0,
            handler_cancellation=True,
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        self._closing = True
        for poll in self._polls:
            poll.wake.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- what the bot did -------------------------------------------------------------------

    @property
    def me(self) -> JSON:
        """The bot's own User object."""
        return {
            "id": self.bot_id, "is_bot": True, "first_name": self.first_name,
            "username": self.username,
        }

    def calls(self, method: str) -> list[Call]:
        """Every request to `method` (case-insensitive), answered or not."""
        wanted = method.lower()
        return [call for call in self.requests if call.method.lower() == wanted]

    def sent(self, chat_id: int | None = None) -> list[JSON]:
        """Messages the bot sent, oldest first, as first sent (later edits are in `edits()`).

        Each is the Message Telegram returned, with `reply_markup` as the bot sent it, reply
        keyboards included (Telegram itself echoes only inline keyboards)."""
        chosen = self._sent if chat_id is None else self._sent_by_chat.get(chat_id, [])
        return [copy.deepcopy(m) for m in chosen]

    def sent_chats(self) -> list[Any]:
        """The chat of each message sent, oldest first: `sent()` without copying every
        message, for a condition re-checked after each request the fake answers."""
        return [m["chat"]["id"] for m in self._sent]

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [m["text"] for m in self.sent(chat_id)]

    def edits(self, chat_id: int | None = None) -> list[JSON]:
        """Messages as they stood after each successful edit, oldest first."""
        return [copy.deepcopy(m) for m in self._edits if chat_id in (None, m["chat"]["id"])]

    def deleted(self, chat_id: int | None = None) -> list[tuple[int, int]]:
        """(chat_id, message_id) of every message the bot deleted."""
        return [d for d in self._deleted if chat_id in (None, d[0])]

    def callback_answers(self) -> list[JSON]:
        """Parameters of every successful answerCallbackQuery."""
        return copy.deepcopy(self._answers)

    def message(self, chat_id: int, message_id: int) -> JSON | None:
        """The current state of a message (after edits), or None if unknown or deleted."""
        chat = self._chats.get(chat_id)
        found = chat.messages.get(message_id) if chat else None
        return copy.deepcopy(found) if found is not None else None

    def commands(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        return copy.deepcopy(self._commands.get(self._commands_key(scope, language_code), []))

    @property
    def pending_updates(self) -> list[JSON]:
        """Queued updates not yet confirmed by an offset (delivered or not)."""
        return [copy.deepcopy(q.update) for q in self._queue]

    async def wait_for(
        self, predicate: Callable[[], _T], timeout: float = 10.0, what: str | None = None
    ) -> _T:
        """Wait until `predicate()` is truthy and return its value.

        It is re-checked after every request the fake receives or answers (and every 50 ms,
        for conditions that depend on the bot's own state). On timeout an AssertionError
        shows the recent calls and the updates the bot has not fetched."""
        wake = asyncio.Event()
        self._watchers.add(wake)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                wake.clear()
                value = predicate()
                if value:
                    return value
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise AssertionError(self._timeout_report(predicate, timeout, what))
                try:
                    async with asyncio.timeout(min(remaining, 0.05)):
                        await wake.wait()
                except TimeoutError:
                    pass
        finally:
            self._watchers.discard(wake)

    async def wait_sent(self, chat_id: int, count: int, timeout: float = 10.0) -> list[JSON]:
        """Wait until the bot has sent at least `count` messages to the chat; return them all."""
        await self.wait_for(
            lambda: len(self.sent(chat_id)) >= count, timeout,
            what=f"{count} message(s) sent to chat {chat_id}",
        )
        return self.sent(chat_id)

    def _timeout_report(
        self, predicate: Callable[[], Any], timeout: float, what: str | None
    ) -> str:
        if what is None:
            try:
                what = inspect.getsource(predicate).strip()
            except (OSError, TypeError):
                what = repr(predicate)
        recent = self.requests[-20:]
        lines = [f"timed out after {timeout:g}s waiting for: {what}",
                 f"last {len(recent)} of {len(self.requests)} calls:"]
        lines += [f"  {call}" for call in recent] or ["  (none: is the bot running?)"]
        unfetched = [q for q in self._queue if not q.delivered]
        if unfetched:
            lines.append(f"{len(unfetched)} queued update(s) never fetched (is the bot polling?)")
        if self.filtered_updates:
            kinds = sorted({_update_type(u) for u in self.filtered_updates})
            lines.append(
                f"{len(self.filtered_updates)} update(s) dropped because the bot's "
                f"allowed_updates left out {kinds} (no handler registered for them?)"
            )
        if self.server_errors:
            lines.append(f"the fake itself failed: {self.server_errors!r}")
        return "\n".join(lines)

    # --- users and updates ------------------------------------------------------------------

    def user(
        self, user_id: int, first_name: str = "Sara", language_code: str | None = "fa",
        username: str | None = None, last_name: str | None = None,
    ) -> FakeUser:
        """A user who can write to the bot; the private chat's id is the user's id."""
        user = FakeUser(self, user_id, first_name, language_code, username, last_name)
        old = self._users.get(user_id)
        if old is not None:
            user.started = old.started
        self._users[user_id] = user
        chat = self._chat(user_id)
        chat.user = user
        chat.info = user.chat
        return user

    def queue_update(self, payload: JSON) -> JSON:
        """Give `payload` (e.g. {"message": {...}}) the next update_id and queue it."""
        update = {"update_id": self._next_update_id, **copy.deepcopy(payload)}
        self._next_update_id += 1
        self._enqueue(_Queued(update))
        return copy.deepcopy(update)

    def redeliver(self, update: JSON) -> None:
        """Queue the same update (same update_id) again, as Telegram does when an offset was
        not confirmed; it is handed out once even if a later offset already confirmed it."""
        self._enqueue(_Queued(copy.deepcopy(update), forced=True))

    def _enqueue(self, queued: _Queued) -> None:
        keys = [q.update_id for q in self._queue]
        self._queue.insert(bisect.bisect_right(keys, queued.update_id), queued)
        for poll in self._polls:
            poll.wake.set()
        self._notify()

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id > 0:
                info: JSON = {"id": chat_id, "first_name": f"User {chat_id}", "type": "private"}
            else:
                info = {"id": chat_id, "title": f"Group {chat_id}", "type": "group"}
            chat = _Chat(info=info, chat_instance=str(self._rng.randrange(-(2**63), 2**63)))
            self._chats[chat_id] = chat
        return chat

    # --- fault injection --------------------------------------------------------------------

    def fail_next(
        self, method: str, error_code: int = 429, description: str | None = None,
        retry_after: int | None = 2, times: int = 1,
    ) -> None:
        """The next `times` calls of `method` fail before taking effect. A 429 carries
        `parameters.retry_after`; descriptions default to Telegram's usual text."""
        if description is None:
            if error_code == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(error_code, f"Error {error_code}")
        error = _ApiError(error_code, description, retry_after if error_code == 429 else None)
        self._failures.append(_Failure(method.lower(), times, error))

    def lose_response_next(self, method: str, times: int = 1) -> None:
        """The next `times` calls of `method` take effect (the message is sent) but the
        connection drops before the answer: the client sees a network error and may send
        again. Telegram has no idempotency key, so this is how duplicates happen."""
        self._failures.append(_Failure(method.lower(), times, None))

    def block(self, chat_id: int) -> None:
        """Every send or edit to this chat answers 403 "bot was blocked by the user"."""
        self._blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        self._blocked.discard(chat_id)

    def rate_limit(self, per_second: float | None, *, per_chat: float | None = None) -> None:
        """Limit sends and edits: globally to `per_second`, and per chat to `per_chat`
        (Telegram: about 30/s overall, 1/s per chat). Calls over a limit in the rolling
        window get 429 with retry_after and are counted in `rejected_429`. None: no limit."""
        self._global_rate = _RateWindow(per_second) if per_second is not None else None
        self._chat_rate = per_chat
        self._chat_rates.clear()

    # --- webhooks ---------------------------------------------------------------------------

    async def post_update_to_webhook(
        self, update: JSON, url: str | None = None, secret_token: str | None = None
    ) -> int:
        """POST `update` to the bot's webhook as Telegram does; return the HTTP status.

        Without `url`, the webhook set through setWebhook is used, with its secret token
        unless `secret_token` is given. A 2xx answer counts as delivered."""
        if url is None:
            if not self.webhook_url:
                raise AssertionError("no webhook is set (the bot never called setWebhook)")
            url = self.webhook_url
            secret_token = secret_token if secret_token is not None else self.webhook_secret
        headers = {"Content-Type": "application/json"}
        if secret_token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
        async with aiohttp.ClientSession() as session, session.post(
            url, data=json.dumps(update), headers=headers,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response:
            await response.read()
            status = response.status
        if 200 <= status < 300:
            self.deliveries.append(int(update["update_id"]))
            self._queue = [q for q in self._queue if q.update_id != update["update_id"]]
        self._notify()
        return status

    # --- HTTP -------------------------------------------------------------------------------

    def _notify(self) -> None:
        for wake in self._watchers:
            wake.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        match = _PATH.fullmatch(request.path)
        token, name = match.groups() if match else ("", "")
        known = self._handlers.get(name.lower())
        call = Call(method=known[0] if known else name or request.path, params={},
                    at=time.monotonic())
        self.requests.append(call)
        lose = False
        try:
            if match is None:
                raise _ApiError(404, "Not Found")
            call.params, call.encoding = await self._read_params(request)
            self._notify()
            if token != self.token:
                raise _ApiError(401, "Unauthorized")
            if known is None:
                raise _ApiError(404, "Not Found: method not found")
            lose = self._take_failure(call.method)
            self._check_chat_faults(call.method, call.params)
            result = await known[1](call.params, call)
            body: JSON = {"ok": True, "result": result}
            call.status, call.result = 200, copy.deepcopy(result)
        except _ApiError as error:
            body = error.payload()
            call.status, call.error = error.code, error.description
        except asyncio.CancelledError:  # the client went away (handler_cancellation)
            call.error = "abandoned by the client"
            self._notify()
            raise
        except Exception as exc:  # a bug in the fake: answer 500 and fail the test at exit
            self.server_errors.append(exc)
            body = {"ok": False, "error_code": 500, "description": f"fake Bot API bug: {exc!r}"}
            call.status, call.error = 500, body["description"]
        self._notify()
        if lose and call.status == 200:
            call.status, call.error = None, "response lost (injected)"
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp drops the connection without an answer
        return web.json_response(body, status=call.status or 200)

    async def _read_params(self, request: web.Request) -> tuple[JSON, str]:
        params: JSON = dict(request.query)
        encoding = "query" if params else "empty"
        if request.body_exists:
            content_type = request.content_type
            if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        params[key] = UploadedFile(
                            value.filename, value.content_type, value.file.read()
                        )
                    else:
                        params[key] = value
                encoding = "multipart" if content_type == "multipart/form-data" else "form"
            else:
                raw = await request.read()
                if raw.strip():
                    try:
                        body = json.loads(raw)
                    except ValueError as exc:
                        raise _ApiError(400, "Bad Request: can't parse JSON encoded request") \
                            from exc
                    if not isinstance(body, dict):
                        raise _ApiError(400, "Bad Request: JSON request must be an object")
                    params.update(body)
                    encoding = "json"
        return {key: _coerce(key, value) for key, value in params.items()}, encoding

    def _take_failure(self, method: str) -> bool:
        """Raise an injected failure for `method`; return True if its response must be lost."""
        for failure in self._failures:
            if failure.method == method.lower() and failure.times > 0:
                failure.times -= 1
                if failure.error is None:
                    return True
                raise _ApiError(
                    failure.error.code, failure.error.description, failure.error.retry_after
                )
        return False

    def _check_chat_faults(self, method: str, params: JSON) -> None:
        sends = method.startswith("send") or method.startswith("edit")
        if not sends:
            return
        chat_id = params.get("chat_id")
        if isinstance(chat_id, int) and chat_id in self._blocked:
            raise _ApiError(403, BLOCKED)
        if method == "sendChatAction":
            return  # chat actions have their own, looser limits
        now = time.monotonic()
        windows = [self._global_rate] if self._global_rate else []
        if self._chat_rate is not None and isinstance(chat_id, int):
            windows.append(self._chat_rates.setdefault(chat_id, _RateWindow(self._chat_rate)))
        for window in windows:
            wait = window.retry_after(now)
            if wait is not None:
                self.rejected_429 += 1
                raise _ApiError(429, f"Too Many Requests: retry after {wait}", wait)
        for window in windows:
            window.times.append(now)

    # --- methods ----------------------------------------------------------------------------

    async def _true(self, params: JSON, call: Call) -> bool:
        return True

    async def _get_me(self, params: JSON, call: Call) -> JSON:
        return {
            **self.me, "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False, "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JSON, call: Call) -> list[JSON]:
        if self.webhook_url:
            raise _ApiError(409, WEBHOOK_ACTIVE)
        offset = _int_param(params, "offset", 0)
        limit = min(max(_int_param(params, "limit", 100), 1), 100)
        timeout = params.get("timeout") or 0
        if not isinstance(timeout, int | float) or isinstance(timeout, bool):
            raise _ApiError(400, "Bad Request: wrong parameter timeout")
        if "allowed_updates" in params:
            self._set_allowed(params["allowed_updates"])
        self._confirm(offset)
        for other in self._polls:  # Telegram answers the older long poll with 409
            other.terminated = True
            other.wake.set()
        poll = _Poll()
        self._polls.add(poll)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(float(timeout), 0.0)
        try:
            while True:
                if poll.terminated:
                    raise _ApiError(409, TERMINATED)
                if self.webhook_url:
                    raise _ApiError(409, WEBHOOK_ACTIVE)
                batch = self._take_batch(limit)
                if batch:
                    return batch
                remaining = deadline - loop.time()
                if self._closing or remaining <= 0:
                    return []
                poll.wake.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await poll.wake.wait()
                except TimeoutError:
                    pass
        finally:
            self._polls.discard(poll)

    def _set_allowed(self, allowed: Any) -> None:
        if allowed in (None, ""):
            return
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            raise _ApiError(400, "Bad Request: can't parse allowed updates JSON array")
        self._allowed = frozenset(allowed) if allowed else None

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self.updates_confirmed = max(self.updates_confirmed, offset)
            self._queue = [
                q for q in self._queue
                if q.update_id >= offset or (q.forced and not q.delivered)
            ]
        elif offset < 0:  # the last -offset updates only
            self._queue = self._queue[offset:]

    def _allows(self, update: JSON) -> bool:
        kind = _update_type(update)
        if self._allowed is None:
            return kind not in _OPT_IN_UPDATES
        return kind in self._allowed

    def _take_batch(self, limit: int) -> list[JSON]:
        kept: list[_Queued] = []
        for queued in self._queue:
            if self._allows(queued.update):
                kept.append(queued)
            else:
                self.filtered_updates.append(queued.update)
        self._queue = kept
        batch = kept[:limit]
        for queued in batch:
            queued.delivered = True
            self.deliveries.append(queued.update_id)
        return [copy.deepcopy(q.update) for q in batch]

    def _target_chat(self, params: JSON) -> _Chat:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise _ApiError(400, "Bad Request: chat_id is empty")
        if not isinstance(chat_id, int):
            raise _ApiError(400, "Bad Request: chat not found")
        chat = self._chats.get(chat_id)
        if self.require_known_chats:
            if chat is None or chat.user is None:
                raise _ApiError(400, "Bad Request: chat not found")
            if not chat.user.started:
                raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return chat or self._chat(chat_id)

    def _text(self, params: JSON, too_long: str) -> tuple[str, list[JSON]]:
        text = params.get("text")
        if text is None or text == "":
            raise _ApiError(400, "Bad Request: message text is empty")
        if not isinstance(text, str):
            raise _ApiError(400, "Bad Request: wrong parameter text")
        entities = params.get("entities")
        if entities is not None:
            if not isinstance(entities, list) or not all(
                isinstance(e, dict) and isinstance(e.get("type"), str)
                and isinstance(e.get("offset"), int) and isinstance(e.get("length"), int)
                for e in entities
            ):
                raise _ApiError(400, "Bad Request: can't parse entities JSON object")
            plain = text
        else:
            mode = params.get("parse_mode")
            if mode and str(mode).lower() not in ("html", "markdown", "markdownv2"):
                raise _ApiError(400, "Bad Request: unsupported parse_mode")
            try:
                plain, entities = parse_text(text, mode)
            except EntityParseError as error:
                raise _ApiError(400, f"Bad Request: can't parse entities: {error}") from error
        if not plain.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(plain) > 4096:
            raise _ApiError(400, too_long)
        return plain, entities

    def _reply_markup(self, params: JSON, inline_only: bool = False) -> JSON | None:
        markup = params.get("reply_markup")
        if markup in (None, ""):
            return None
        if not isinstance(markup, dict):
            raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            _check_inline_keyboard(markup["inline_keyboard"])
        elif inline_only:
            raise _ApiError(400, "Bad Request: inline keyboard expected")
        elif "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise _ApiError(
                    400, 'Bad Request: field "keyboard" of the ReplyKeyboardMarkup must be an '
                    "Array of Arrays"
                )
            for row in rows:
                for button in row:
                    text = button.get("text") if isinstance(button, dict) else button
                    if not isinstance(text, str) or not text:
                        raise _ApiError(400, "Bad Request: can't parse keyboard button: "
                                        'Field "text" must be of type String')
        elif not ("remove_keyboard" in markup or "force_reply" in markup):
            raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        return markup

    def _reply_to(self, chat: _Chat, params: JSON) -> JSON | None:
        reply = params.get("reply_parameters")
        message_id = reply.get("message_id") if isinstance(reply, dict) else None
        message_id = message_id or params.get("reply_to_message_id")
        if not message_id:
            return None
        replied = chat.messages.get(int(message_id))
        if replied is None:
            allow = params.get("allow_sending_without_reply") or (
                isinstance(reply, dict) and reply.get("allow_sending_without_reply")
            )
            if allow:
                return None
            raise _ApiError(400, "Bad Request: message to be replied not found")
        return {k: v for k, v in replied.items() if k != "reply_to_message"}

    async def _send_message(self, params: JSON, call: Call) -> JSON:
        chat = self._target_chat(params)
        text, entities = self._text(params, "Bad Request: message is too long")
        markup = self._reply_markup(params)
        reply_to = self._reply_to(chat, params)
        message: JSON = {
            "message_id": chat.new_message_id(),
            "from": self.me,
            "chat": copy.deepcopy(chat.info),
            "date": _now(),
        }
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message["text"] = text
        if entities:
            message["entities"] = entities
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = markup  # Telegram echoes inline keyboards only
        chat.messages[message["message_id"]] = copy.deepcopy(message)
        chat.bot_messages.add(message["message_id"])
        record = copy.deepcopy(message)
        if markup is not None:
            record["reply_markup"] = copy.deepcopy(markup)
        self._sent.append(record)
        self._sent_by_chat.setdefault(record["chat"]["id"], []).append(record)
        return message

    async def _send_document(self, params: JSON, call: Call) -> JSON:
        chat = self._target_chat(params)
        upload = params.get("document")
        if isinstance(upload, str) and upload.startswith("attach://"):
            upload = params.get(upload.removeprefix("attach://"))  # aiogram's way
        if not isinstance(upload, UploadedFile):
            raise _ApiError(400, "Bad Request: there is no document in the request")
        message: JSON = {
            "message_id": chat.new_message_id(),
            "from": self.me,
            "chat": copy.deepcopy(chat.info),
            "date": _now(),
            "document": {
                "file_id": f"doc{len(self.documents) + 1}",
                "file_unique_id": f"u{len(self.documents) + 1}",
                "file_name": upload.filename,
                "mime_type": upload.content_type,
                "file_size": len(upload.data),
            },
        }
        if params.get("caption"):
            message["caption"] = str(params["caption"])
        chat.messages[message["message_id"]] = copy.deepcopy(message)
        chat.bot_messages.add(message["message_id"])
        self.documents.append((chat.info["id"], upload))
        return message

    async def _send_photo(self, params: JSON, call: Call) -> JSON:
        chat = self._target_chat(params)
        upload = params.get("photo")
        if isinstance(upload, str) and upload.startswith("attach://"):
            upload = params.get(upload.removeprefix("attach://"))
        if not isinstance(upload, UploadedFile):
            raise _ApiError(400, "Bad Request: there is no photo in the request")
        if not upload.data.startswith(b"\x89PNG") and not upload.data.startswith(b"\xff\xd8"):
            raise _ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        message: JSON = {
            "message_id": chat.new_message_id(),
            "from": self.me,
            "chat": copy.deepcopy(chat.info),
            "date": _now(),
            "photo": [{"file_id": f"photo{len(self.photos) + 1}",
                       "file_unique_id": f"p{len(self.photos) + 1}", "width": 900,
                       "height": 540, "file_size": len(upload.data)}],
        }
        if params.get("caption"):
            message["caption"] = str(params["caption"])
        chat.messages[message["message_id"]] = copy.deepcopy(message)
        chat.bot_messages.add(message["message_id"])
        self.photos.append((chat.info["id"], upload))
        return message

    def _editable(self, params: JSON) -> tuple[_Chat, JSON]:
        if params.get("inline_message_id"):
            raise _ApiError(400, "Bad Request: MESSAGE_ID_INVALID")  # no inline mode here
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _ApiError(400, "Bad Request: message identifier is not specified")
        message = chat.messages.get(message_id)
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        if message_id not in chat.bot_messages:
            raise _ApiError(400, "Bad Request: message can't be edited")
        return chat, message

    def _store_edit(self, chat: _Chat, before: JSON, after: JSON) -> JSON:
        same = (
            before.get("text") == after.get("text")
            and (before.get("entities") or []) == (after.get("entities") or [])
            and before.get("reply_markup") == after.get("reply_markup")
        )
        if same:
            raise _ApiError(400, NOT_MODIFIED)
        after["edit_date"] = _now()
        chat.messages[after["message_id"]] = copy.deepcopy(after)
        self._edits.append(copy.deepcopy(after))
        return after

    async def _edit_message_text(self, params: JSON, call: Call) -> JSON:
        chat, message = self._editable(params)
        text, entities = self._text(params, "Bad Request: MESSAGE_TOO_LONG")
        markup = self._reply_markup(params, inline_only=True)
        edited = {k: v for k, v in message.items() if k not in ("entities", "reply_markup")}
        edited["text"] = text
        if entities:
            edited["entities"] = entities
        if markup is not None:  # no reply_markup in an edit removes the keyboard, as on Telegram
            edited["reply_markup"] = markup
        return self._store_edit(chat, message, edited)

    async def _edit_message_reply_markup(self, params: JSON, call: Call) -> JSON:
        chat, message = self._editable(params)
        markup = self._reply_markup(params, inline_only=True)
        edited = {k: v for k, v in message.items() if k != "reply_markup"}
        if markup is not None:
            edited["reply_markup"] = markup
        return self._store_edit(chat, message, edited)

    async def _delete_message(self, params: JSON, call: Call) -> bool:
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int) or chat.messages.pop(message_id, None) is None:
            raise _ApiError(400, "Bad Request: message to delete not found")
        chat.bot_messages.discard(message_id)
        self._deleted.append((chat.info["id"], message_id))
        return True

    async def _answer_callback_query(self, params: JSON, call: Call) -> bool:
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or self._callbacks.get(query_id) is not False:
            raise _ApiError(400, QUERY_INVALID)
        text = params.get("text")
        if isinstance(text, str) and len(text) > 200:
            raise _ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._callbacks[query_id] = True
        self._answers.append(copy.deepcopy(params))
        return True

    async def _set_webhook(self, params: JSON, call: Call) -> bool:
        url = params.get("url")
        if url is None:
            raise _ApiError(400, "Bad Request: parameter \"url\" is required")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET.fullmatch(str(secret)):
            raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._queue.clear()
        if "allowed_updates" in params:
            self._set_allowed(params["allowed_updates"])
        self.webhook_url = str(url)
        self.webhook_secret = secret if url else None
        for poll in self._polls:
            poll.wake.set()
        return True

    async def _delete_webhook(self, params: JSON, call: Call) -> bool:
        if params.get("drop_pending_updates"):
            self._queue.clear()
        self.webhook_url, self.webhook_secret = "", None
        return True

    async def _get_webhook_info(self, params: JSON, call: Call) -> JSON:
        info: JSON = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if self.webhook_url:
            info["max_connections"] = 40
            info["ip_address"] = "127.0.0.1"
            if self._allowed is not None:
                info["allowed_updates"] = sorted(self._allowed)
        return info

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
        scope = scope if isinstance(scope, dict) and scope else {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(language_code or "")

    def _commands_params(self, params: JSON) -> tuple[str, str]:
        language = params.get("language_code") or ""
        if language and not re.fullmatch(r"[a-z]{2}", str(language)):
            raise _ApiError(400, "Bad Request: invalid language code specified")
        scope = params.get("scope")
        if scope is not None and not (isinstance(scope, dict) and "type" in scope):
            raise _ApiError(400, "Bad Request: can't parse BotCommandScope JSON object")
        return self._commands_key(scope, language)

    async def _set_my_commands(self, params: JSON, call: Call) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _ApiError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict):
                raise _ApiError(400, "Bad Request: can't parse BotCommand JSON object")
            if not _BOT_COMMAND_NAME.fullmatch(str(command.get("command", "")).lstrip("/")):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _ApiError(400, "Bad Request: command description is empty or too long")
        key = self._commands_params(params)
        if commands:
            self._commands[key] = copy.deepcopy(commands)
        else:
            self._commands.pop(key, None)
        return True

    async def _get_my_commands(self, params: JSON, call: Call) -> list[JSON]:
        return copy.deepcopy(self._commands.get(self._commands_params(params), []))

    async def _delete_my_commands(self, params: JSON, call: Call) -> bool:
        self._commands.pop(self._commands_params(params), None)
        return True

    async def _set_chat_menu_button(self, params: JSON, call: Call) -> bool:
        button = params.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in (
            "default", "commands", "web_app"
        ):
            raise _ApiError(400, "Bad Request: can't parse menu button JSON object")
        chat_id = params.get("chat_id")
        self._menu_buttons[chat_id if isinstance(chat_id, int) else None] = copy.deepcopy(button)
        return True

    async def _get_chat_menu_button(self, params: JSON, call: Call) -> JSON:
        chat_id = params.get("chat_id")
        key = chat_id if isinstance(chat_id, int) else None
        button = self._menu_buttons.get(key) or self._menu_buttons.get(None)
        return copy.deepcopy(button or {"type": "default"})

    async def _send_chat_action(self, params: JSON, call: Call) -> bool:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        return True


def _int_param(params: JSON, name: str, default: int) -> int:
    value = params.get(name, default)
    if value in (None, ""):
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _ApiError(400, f"Bad Request: wrong parameter {name}")
    return value


def _check_inline_keyboard(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _ApiError(
            400, 'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an '
            "Array of Arrays"
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict):
                raise _ApiError(400, "Bad Request: can't parse inline keyboard button: "
                                "InlineKeyboardButton must be an Object")
            if not isinstance(button.get("text"), str):
                raise _ApiError(400, "Bad Request: can't parse inline keyboard button: "
                                'Field "text" must be of type String')
            if not _INLINE_BUTTON_ACTIONS & button.keys():
                raise _ApiError(400, "Bad Request: can't parse inline keyboard button: "
                                "Text buttons are unallowed in the inline keyboard")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                    raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            if "url" in button and not re.match(r"(https?|tg)://\S", str(button["url"])):
                raise _ApiError(400, "Bad Request: BUTTON_URL_INVALID")
