"""The python-telegram-bot 22 shell: PTB updates in, events.py out; a Transport on PTB's Bot.

PTB filters are synchronous, so `core.wants` (which may read the database) is asked inside
the callbacks. The handlers go in their own group, SURVEY_GROUP (-1), that PTB runs before
the default group 0: an update Sada does not want returns early and reaches the host bot's
handlers; an update Sada handles raises ApplicationHandlerStop, so no host handler answers it
too. To add Sada to an existing PTB bot:

    add_survey_handlers(application, core)
    await core.resume_pending(PtbTransport(application.bot))   # e.g. in post_init

A host keeps one chat's updates in order its own way (PTB handles them in turn unless
concurrent_updates is set); `sada run` feeds the Application through PtbIntake instead, one
lane per chat (lanes.py).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import Any, Protocol

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram import User as PtbUser
from telegram.constants import ChatType
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    TelegramError,
)
from telegram.error import RetryAfter as PtbRetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.channels.telegram.channel import CHANNEL as TELEGRAM
from bot.channels.telegram.intake import Rejected
from bot.channels.telegram.settings import TELEGRAM_API_URL
from bot.channels.telegram.transport import BotApiTransport
from bot.conversation.events import Inbound, Media, Pressed, Sender, Typed, media_kind
from bot.messaging.transport import Blocked, Keyboard, Refused, RetryAfter, Transient, Transport

__all__ = [
    "SURVEY_GROUP",
    "PtbApplication",
    "PtbIntake",
    "PtbTransport",
    "SurveyCore",
    "add_survey_handlers",
    "build_application",
    "media_event",
    "press_event",
    "survey_handlers",
    "telegram_errors",
    "text_event",
]

log = logging.getLogger(__name__)
SURVEY_GROUP = -1  # before PTB's default group 0, where host bots put their handlers
# Seconds a long poll's read may take beyond its timeout (PTB's own default read timeout).
POLL_READ_MARGIN = 5.0
PtbApplication = Application[Any, Any, Any, Any, Any, Any]
PtbHandler = BaseHandler[Update, Any, Any]


class SurveyCore(Protocol):
    """The part of Controller a shell needs."""

    async def wants(self, event: Inbound) -> bool: ...

    async def process(self, event: Inbound, transport: Transport) -> None: ...


# --- updates in -------------------------------------------------------------------------------


def _user(user: PtbUser) -> Sender:
    return Sender(
        id=str(user.id),
        first_name=user.first_name,
        last_name=user.last_name,
        username=user.username,
        language_code=user.language_code,
    )


def text_event(update: Update) -> Typed | None:
    """A new text message (commands included) in a private chat; anything else is not ours."""
    message = update.message  # not edited_message: an edit is no new answer
    if (message is None or message.chat.type != ChatType.PRIVATE or message.text is None
            or message.from_user is None):
        return None
    return Typed(update.update_id, str(message.chat.id), _user(message.from_user), message.text)


def media_event(update: Update) -> Media | None:
    """A photo, sticker, voice message … in a private chat: not an answer, yet answered."""
    message = update.message
    kind = None if message is None else media_kind(message)
    if (message is None or kind is None or message.chat.type != ChatType.PRIVATE
            or message.from_user is None):
        return None
    return Media(update.update_id, str(message.chat.id), _user(message.from_user), kind)


def press_event(update: Update) -> Pressed | None:
    """A button pressed on a message in a private chat (inline-mode presses have no message)."""
    query = update.callback_query
    if query is None or query.data is None or query.message is None:
        return None
    message = query.message  # a Message, or an InaccessibleMessage when older than 48 hours
    if message.chat.type != ChatType.PRIVATE:
        return None
    return Pressed(
        update.update_id, str(message.chat.id), _user(query.from_user), query.id,
        message.message_id, query.data,
    )


def survey_handlers(core: SurveyCore) -> list[PtbHandler]:
    """A MessageHandler for private texts and a CallbackQueryHandler; add them to a group
    that runs before the host bot's own handlers (SURVEY_GROUP, see add_survey_handlers)."""

    # the core's channel (Telegram, Bale …) is the one its replies go out on
    channel: str = getattr(core, "channel", TELEGRAM.name)

    async def on_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        event: Inbound | None = text_event(update) or press_event(update) or media_event(update)
        if event is None or not await core.wants(event):
            return  # not ours: PTB goes on to the next group, the host bot's handlers
        await core.process(event, PtbTransport(context.bot, channel))
        raise ApplicationHandlerStop  # ours and answered: no later group may answer it too

    private = filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE
    return [MessageHandler(private & (filters.TEXT | filters.ATTACHMENT), on_update),
            CallbackQueryHandler(on_update)]


def add_survey_handlers(
    application: PtbApplication, core: SurveyCore, group: int = SURVEY_GROUP
) -> None:
    application.add_handlers(survey_handlers(core), group=group)


class PtbIntake:
    """runner.Intake on python-telegram-bot: raw updates fetched, parsed and handed to the
    Application's handlers (not through its Updater and update queue)."""

    def __init__(self, application: PtbApplication, channel: str = TELEGRAM.name) -> None:
        self.application = application
        self.channel = channel

    async def fetch(
        self, offset: int | None, timeout: int, allowed: list[str], limit: int = 100
    ) -> list[Any]:
        # Bot.get_updates parses the batch whole (intake.py); do_api_request answers the raw
        # JSON, and warns that get_updates exists.
        with telegram_errors(), warnings.catch_warnings():
            warnings.simplefilter("ignore", PTBUserWarning)
            raw = await self.application.bot.do_api_request(
                "getUpdates",
                api_kwargs={"offset": offset, "limit": limit, "timeout": timeout,
                            "allowed_updates": allowed},
                # the read must outlast the long poll, or every quiet poll is an error
                read_timeout=timeout + POLL_READ_MARGIN,
            )
        return raw if isinstance(raw, list) else []

    def parse(self, data: dict[str, Any]) -> Update:
        """A webhook body as an Update; ValueError when it is none."""
        try:
            return Update.de_json(data, self.application.bot)
        except (TypeError, KeyError, AttributeError) as exc:  # PTB checks nothing itself
            raise ValueError(f"not a Telegram update ({type(exc).__name__}: {exc})") from exc

    @staticmethod
    def identify(update: Update | Rejected) -> tuple[int, int | None]:
        """The update's id and its chat (the user, for a press on an inline-mode message)."""
        if isinstance(update, Rejected):
            return update.update_id, None
        chat, user = update.effective_chat, update.effective_user
        return update.update_id, chat.id if chat else user.id if user else None

    async def feed(self, update: Update | Rejected) -> None:
        if isinstance(update, Rejected):
            update.skip(self.channel)
            return
        await self.application.process_update(update)


def build_application(token: str, api_url: str = TELEGRAM_API_URL) -> PtbApplication:
    """An Application on Telegram's API server or another one, with an Updater for polling.

    Its own update queue handles updates one at a time (concurrent_updates off), so a host
    that polls with it applies two quick answers from one person in the order they were
    typed; `sada run` takes updates through PtbIntake and keeps that order per chat."""
    base = api_url.rstrip("/")
    return (
        ApplicationBuilder()
        .token(token)
        .base_url(base + "/bot")
        .base_file_url(base + "/file/bot")
        .concurrent_updates(False)
        # PTB starts an APScheduler JobQueue whenever APScheduler is installed; Sada's own
        # scheduler owns time, so none here.
        .job_queue(None)
        .build()
    )


# --- messages out -----------------------------------------------------------------------------


def _seconds(exc: PtbRetryAfter) -> float:
    # `retry_after` warns (int -> timedelta migration) unless PTB_TIMEDELTA is set; PTB's own
    # retry loop reads the timedelta it keeps underneath.
    delay: Any = getattr(exc, "_retry_after", None)
    if isinstance(delay, timedelta):
        return delay.total_seconds()
    value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@contextmanager
def telegram_errors() -> Iterator[None]:
    """PTB's exceptions as the four the core understands. Order matters: BadRequest and
    TimedOut are subclasses of NetworkError."""
    try:
        yield
    except PtbRetryAfter as exc:
        raise RetryAfter(_seconds(exc)) from exc
    except Forbidden as exc:
        raise Blocked(exc.message) from exc
    except BadRequest as exc:
        raise Refused(exc.message) from exc
    except NetworkError as exc:  # connection errors, TimedOut, 5xx
        raise Transient(exc.message) from exc
    except TelegramError as exc:
        if type(exc) is TelegramError:  # "Invalid server response": not JSON, e.g. a proxy
            raise Transient(exc.message) from exc
        raise Refused(exc.message) from exc  # InvalidToken, Conflict, ChatMigrated …


class PtbTransport(BotApiTransport):
    """bot.messaging Transport on a PTB Bot (bot.channels.telegram.transport)."""

    def __init__(self, bot: Bot, channel: str = TELEGRAM.name) -> None:
        super().__init__(bot, channel)

    def errors(self) -> AbstractContextManager[None]:
        return telegram_errors()

    def markup(self, keyboard: Keyboard) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup([
            [InlineKeyboardButton(b.text, callback_data=b.data) for b in row] for row in keyboard
        ])

    def upload(self, filename: str, content: bytes) -> InputFile:
        # what PTB itself makes of bytes and filename=: the same multipart upload
        return InputFile(content, filename=filename)
