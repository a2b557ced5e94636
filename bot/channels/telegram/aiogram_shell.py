"""The aiogram 3 shell: aiogram updates in, events.py out; a Transport on aiogram's Bot.

Nothing of aiogram leaves this module except the Router and Bot that a host builds with.
To add Sada to an existing aiogram bot, include its router *before* the bot's own routers:

    dp.include_router(survey_router(core))   # takes only what core.wants(); the rest falls through
    dp.include_router(my_router)
    await core.resume_pending(AiogramTransport(bot))

A host keeps one chat's updates in order its own way (aiogram handles them in turn with
`handle_as_tasks=False`); `sada run` feeds the Dispatcher through AiogramIntake instead, one
lane per chat (lanes.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from aiogram import Bot, Dispatcher, Router, methods
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.enums import ChatType
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import GetUpdates
from aiogram.methods.base import Response
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from aiogram.types import User as AiogramUser

from bot.channels.telegram import aiogram_deferred
from bot.channels.telegram.aiogram_session import LeanSession
from bot.channels.telegram.channel import CHANNEL as TELEGRAM
from bot.channels.telegram.intake import Rejected
from bot.channels.telegram.settings import TELEGRAM_API_URL
from bot.channels.telegram.transport import BotApiTransport
from bot.conversation.events import Inbound, Media, Pressed, Sender, Typed, media_kind
from bot.messaging.transport import Blocked, Keyboard, Refused, RetryAfter, Transient, Transport

__all__ = [
    "AiogramIntake",
    "AiogramTransport",
    "SurveyCore",
    "build_bot",
    "media_event",
    "press_event",
    "survey_router",
    "telegram_errors",
    "text_event",
]

log = logging.getLogger(__name__)
# How long shutdown waits for updates still being handled before the session closes.
DRAIN_SECONDS = 30.0
_EVENT_KEY = "sada_event"  # what the filter hands the handler, so the update is converted once


class SurveyCore(Protocol):
    """The part of Controller a shell needs."""

    async def wants(self, event: Inbound) -> bool: ...

    async def process(self, event: Inbound, transport: Transport) -> None: ...


# --- updates in -------------------------------------------------------------------------------


def _user(user: AiogramUser) -> Sender:
    return Sender(
        id=str(user.id),
        first_name=user.first_name,
        last_name=user.last_name,
        username=user.username,
        language_code=user.language_code,
    )


def text_event(message: Message, update_id: int) -> Typed | None:
    """A text message (commands included) in a private chat; anything else is not ours."""
    if message.chat.type != ChatType.PRIVATE or message.text is None or message.from_user is None:
        return None
    return Typed(update_id, str(message.chat.id), _user(message.from_user), message.text)


def media_event(message: Message, update_id: int) -> Media | None:
    """A photo, sticker, voice message … in a private chat: not an answer, yet answered."""
    kind = media_kind(message)
    if message.chat.type != ChatType.PRIVATE or message.from_user is None or kind is None:
        return None
    return Media(update_id, str(message.chat.id), _user(message.from_user), kind)


def press_event(query: CallbackQuery, update_id: int) -> Pressed | None:
    """A button pressed on a message in a private chat.

    Presses on inline-mode messages carry no message and no chat: Sada never sends those."""
    message = query.message  # a Message, or an InaccessibleMessage when older than 48 hours
    if message is None or message.chat.type != ChatType.PRIVATE or query.data is None:
        return None
    return Pressed(
        update_id, str(message.chat.id), _user(query.from_user), query.id, message.message_id,
        query.data,
    )


def survey_router(core: SurveyCore, *, name: str = "sada") -> Router:
    """Private texts and button presses that `core.wants`; everything else falls through to
    the routers included after this one.

    Stopping polling cancels the handler that is running; the update itself is finished in a
    shielded task and awaited on shutdown (before aiogram closes the session), so an answer
    that was committed still gets its reply."""
    router = Router(name=name)
    running: set[asyncio.Task[None]] = set()

    async def wanted_message(message: Message, event_update: Update) -> dict[str, Any] | bool:
        event = (text_event(message, event_update.update_id)
                 or media_event(message, event_update.update_id))
        if event is None or not await core.wants(event):
            return False
        return {_EVENT_KEY: event}

    async def wanted_press(query: CallbackQuery, event_update: Update) -> dict[str, Any] | bool:
        event = press_event(query, event_update.update_id)
        if event is None or not await core.wants(event):
            return False
        return {_EVENT_KEY: event}

    # the core's channel (Telegram, Bale …) is the one its replies go out on
    channel: str = getattr(core, "channel", TELEGRAM.name)

    async def handle(_: Message | CallbackQuery, bot: Bot, sada_event: Inbound) -> None:
        task = asyncio.create_task(core.process(sada_event, AiogramTransport(bot, channel)))
        running.add(task)
        task.add_done_callback(running.discard)
        await asyncio.shield(task)

    async def drain() -> None:
        if running:
            log.info("finishing %d update(s) before shutdown", len(running))
            await asyncio.wait(set(running), timeout=DRAIN_SECONDS)

    router.message.register(handle, wanted_message)
    router.callback_query.register(handle, wanted_press)
    router.shutdown.register(drain)
    return router


# What a survey uses of aiogram's models, built here, before the process says it is ready,
# not at the first update (aiogram_deferred builds none at import): a reply that booked its
# slot in the shared limits must not then wait for a build. Parts first: a model reuses the
# schemas of the built models it holds (about 0.4 s of CPU, against 3.5 s for all of them).
aiogram_deferred.build(
    AiogramUser, InlineKeyboardButton, InlineKeyboardMarkup, Message, CallbackQuery, Update,
    methods.SendMessage, methods.EditMessageText,
    methods.EditMessageReplyMarkup, methods.AnswerCallbackQuery, methods.SendPhoto,
    methods.SendDocument, methods.SetWebhook, methods.DeleteWebhook, methods.GetWebhookInfo,
    methods.GetMe)


class _RawUpdates(GetUpdates):
    """getUpdates answered as JSON objects, parsed one by one (intake.py)."""

    __returning__ = list[dict[str, Any]]


# aiogram builds `Response[T]` for every call and pydantic caches those generic models only
# weakly, so each garbage collection throws them away and the next call rebuilds one (5 ms).
# Holding the ones our calls return keeps them built: 10–15% of an update's time
# (bench/README.md).
_RESPONSE_MODELS = (Response[Message], Response[bool], Response[Message | bool],
                    Response[_RawUpdates.__returning__])


class AiogramIntake:
    """runner.Intake on aiogram: raw updates fetched, parsed and fed to the Dispatcher."""

    def __init__(self, dp: Dispatcher, bot: Bot, channel: str = TELEGRAM.name) -> None:
        self.dp = dp
        self.bot = bot
        self.channel = channel

    async def fetch(
        self, offset: int | None, timeout: int, allowed: list[str], limit: int = 100
    ) -> list[Any]:
        with telegram_errors():
            # the HTTP timeout must outlast the long poll, or every quiet poll is an error
            raw = await self.bot(
                _RawUpdates(offset=offset, limit=limit, timeout=timeout,
                            allowed_updates=allowed),
                request_timeout=int(self.bot.session.timeout + timeout),
            )
        return raw if isinstance(raw, list) else []

    def parse(self, data: dict[str, Any]) -> Update:
        """A webhook body as an Update; ValueError (pydantic's) when it is none."""
        return Update.model_validate(data, context={"bot": self.bot})

    @staticmethod
    def identify(update: Update | Rejected) -> tuple[int, int | None]:
        """The update's id and its chat (the user, for a press on an inline-mode message)."""
        if isinstance(update, Rejected):
            return update.update_id, None
        context = UserContextMiddleware.resolve_event_context(update)
        return update.update_id, context.chat_id or context.user_id

    async def feed(self, update: Update | Rejected) -> None:
        if isinstance(update, Rejected):
            update.skip(self.channel)
            return
        await self.dp.feed_update(self.bot, update)


def build_bot(token: str, api_url: str = TELEGRAM_API_URL) -> Bot:
    """An aiogram Bot on Telegram's API server or another one (a local telegram-bot-api, the
    test fake). No default parse_mode: flow texts are plain and may contain < & *."""
    base = api_url.rstrip("/")
    if base == TELEGRAM_API_URL:
        return Bot(token, session=LeanSession())
    return Bot(token, session=LeanSession(api=TelegramAPIServer.from_base(base)))


# --- messages out -----------------------------------------------------------------------------


@contextmanager
def telegram_errors() -> Iterator[None]:
    """aiogram's exceptions as the four the core understands."""
    try:
        yield
    except TelegramRetryAfter as exc:
        raise RetryAfter(float(exc.retry_after)) from exc
    except TelegramForbiddenError as exc:
        raise Blocked(exc.message) from exc
    except TelegramEntityTooLarge as exc:  # a subclass of TelegramNetworkError, yet final
        raise Refused(exc.message) from exc
    except (TelegramNetworkError, TelegramServerError) as exc:
        raise Transient(exc.message) from exc
    except ClientDecodeError as exc:  # e.g. a proxy's HTML error page instead of JSON
        raise Transient(str(exc)) from exc
    except TelegramBadRequest as exc:
        raise Refused(exc.message) from exc
    except TelegramAPIError as exc:  # 401, 404, 409, migrated chats: retrying will not help
        raise Refused(exc.message) from exc


class AiogramTransport(BotApiTransport):
    """bot.messaging Transport on an aiogram Bot (bot.channels.telegram.transport)."""

    def __init__(self, bot: Bot, channel: str = TELEGRAM.name) -> None:
        super().__init__(bot, channel)

    def errors(self) -> AbstractContextManager[None]:
        return telegram_errors()

    def markup(self, keyboard: Keyboard) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(inline_keyboard=[
            [InlineKeyboardButton(text=b.text, callback_data=b.data) for b in row]
            for row in keyboard
        ])

    def upload(self, filename: str, content: bytes) -> BufferedInputFile:
        return BufferedInputFile(content, filename=filename)
