"""Run Sada as a Telegram bot on aiogram or python-telegram-bot, by long polling or webhook.

Start-up order: database, getMe (the bot's username), the core, questions committed but never
shown (`resume_pending`), then updates. Updates are handled one at a time in both modes, so
two quick answers from one person are applied in the order they were typed.

Stopping (the `stop` event, or SIGINT/SIGTERM when none is given): no new updates are taken,
the update being handled is finished, then the connections close. A second Ctrl-C aborts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import urlsplit

from aiohttp import web

from bot.channels.telegram import DEFAULT_LISTEN
from bot.channels.telegram.events import Blocked, Refused, RetryAfter, TgEvent, Transient, Transport
from bot.settings import Settings
from storage.db import Database
from storage.repo import Store

if TYPE_CHECKING:  # each framework is imported only when it runs
    from aiogram import Bot, Dispatcher

    from bot.channels.telegram.ptb_shell import PtbApplication
    from bot.followups.scheduler import FollowupService

__all__ = [
    "ALLOWED_UPDATES",
    "DEFAULT_LISTEN",
    "SECRET_HEADER",
    "Core",
    "CoreFactory",
    "Framework",
    "StartError",
    "run_bot",
    "signing_secret",
    "webhook_path",
    "webhook_secret",
]

log = logging.getLogger(__name__)
Framework = Literal["aiogram", "ptb"]
# my_chat_member: a person blocking or restarting the bot (reachability).
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class StartError(Exception):
    """The bot cannot start; the message is one line meant for a person."""


class Core(Protocol):
    async def wants(self, event: TgEvent) -> bool: ...

    async def process(self, event: TgEvent, transport: Transport) -> None: ...

    async def resume_pending(self, transport: Transport) -> int: ...


class CoreFactory(Protocol):
    """TelegramCore.create's signature; tests pass a fake."""

    def __call__(
        self, store: Store, *, flows_dir: Path, bot_username: str, admin_ids: frozenset[int],
        secret: str, alert_chats: list[int],
    ) -> Awaitable[Core]: ...


# --- secrets ----------------------------------------------------------------------------------


def _derived(token: str, purpose: str) -> str:
    # Stable across restarts without another setting, and useless to anyone without the token.
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def _token(settings: Settings) -> str:
    if settings.telegram_token is None:
        raise StartError("SADA_TELEGRAM_TOKEN is not set")
    token = settings.telegram_token.get_secret_value().strip()
    # Loose on purpose (test servers use short tokens; `sada run` checks the real shape), but
    # aiogram's Bot() would raise its own error on a token without "<digits>:".
    if not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
        raise StartError("SADA_TELEGRAM_TOKEN is not a bot token (digits, a colon, then "
                         "letters, digits, _ or -)")
    return token


def webhook_secret(settings: Settings) -> str:
    """SADA_WEBHOOK_SECRET, or one derived from the token (64 hex characters: Telegram allows
    1-256 of A-Za-z0-9_-)."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    return _derived(_token(settings), "webhook")


def signing_secret(settings: Settings) -> str:
    """The key that signs button data: SADA_SECRET_KEY, or derived from the token."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return _derived(_token(settings), "callback-data")


def webhook_path(url: str) -> str:
    """The path our HTTP server answers on: the path of the public webhook URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StartError(
            f"the webhook must be a full URL such as https://bot.example.com/telegram, not {url!r}"
        )
    return parts.path or "/"


# --- one run ----------------------------------------------------------------------------------


@dataclass
class _Run:
    settings: Settings
    token: str
    store: Store
    make_core: CoreFactory
    webhook_url: str | None
    listen: tuple[str, int]
    stop: asyncio.Event
    polling_timeout: int
    followups: FollowupService | None = None

    @property
    def api_url(self) -> str:
        return self.settings.telegram_api_url

    async def core(self, username: str | None) -> Core:
        configured = self.settings.bot_username
        if configured and username and configured.lower() != username.lower():
            log.warning("SADA_BOT_USERNAME is @%s but the token belongs to @%s; using @%s",
                        configured, username, username)
        return await self.make_core(
            self.store,
            flows_dir=self.settings.flows_dir,
            bot_username=username or configured or "",
            admin_ids=frozenset(self.settings.admin_ids),
            secret=signing_secret(self.settings),
            alert_chats=self.settings.alert_chats,
        )

    async def resume(self, core: Core, transport: Transport) -> None:
        """Re-send what a crash left unshown, then start the follow-ups (invitations,
        reminders, alerts, loop-closing messages) through the same transport."""
        shown = await core.resume_pending(transport)
        if shown:
            log.info("re-sent %d question(s) committed before the last stop but never shown",
                     shown)
        from bot.followups.scheduler import FollowupService

        self.followups = FollowupService(self.store.database, transport,
                                         flows=getattr(core, "flows", {}))
        self.followups.start()

    async def stop_followups(self) -> None:
        """Before the bot's connection closes: no message is cut off half-sent."""
        if self.followups is not None:
            await self.followups.stop()
            self.followups = None

    def one_line(self, text: str) -> str:
        return " ".join(text.replace(self.token, "<token>").split())

    @contextmanager
    def step(self, what: str, *, checks_token: bool = False) -> Iterator[None]:
        """Turn a failed start-up call (already mapped by the shell) into one line."""
        try:
            yield
        except Transient as exc:
            raise StartError(self.one_line(
                f"cannot reach the Telegram Bot API at {self.api_url} to {what} ({exc}); "
                "check the network or SADA_TELEGRAM_API_URL"
            )) from None
        except RetryAfter as exc:
            raise StartError(
                f"Telegram asks to wait {exc.seconds:g}s before we {what}; try again then"
            ) from None
        except (Refused, Blocked) as exc:
            if checks_token:
                raise StartError(self.one_line(
                    f"Telegram did not accept SADA_TELEGRAM_TOKEN ({exc}); check the token "
                    "with @BotFather"
                )) from None
            raise StartError(self.one_line(f"Telegram refused to {what}: {exc}")) from None

    def started(self, framework: str, username: str | None) -> None:
        mode = f"webhook {self.webhook_url}" if self.webhook_url else "long polling"
        log.info("Sada is running as @%s (%s, %s); Ctrl-C stops it", username, framework, mode)


async def run_bot(
    settings: Settings,
    *,
    framework: Framework,
    webhook_url: str | None,
    listen: tuple[str, int] = DEFAULT_LISTEN,
    stop: asyncio.Event | None = None,
    polling_timeout: int = 25,
    core_factory: CoreFactory | None = None,
) -> None:
    """Serve until `stop` is set (or SIGINT/SIGTERM when `stop` is None).

    Raises StartError (one line) when Telegram or the listening port is unusable, and the
    storage layer's StorageError when the database is."""
    token = _token(settings)
    if webhook_url is not None:
        webhook_path(webhook_url)  # fail before opening anything
    if framework not in ("aiogram", "ptb"):
        raise StartError(f"the framework must be aiogram or ptb, not {framework!r}")
    if core_factory is None:
        from bot.channels.telegram.core import TelegramCore

        core_factory = TelegramCore.create
    async with (
        _stop_event(stop) as stopping,
        await Database.open(settings.effective_database_url) as database,
    ):
        run = _Run(settings, token, Store(database), core_factory, webhook_url, listen,
                   stopping, polling_timeout)
        if framework == "aiogram":
            await _serve_aiogram(run)
        else:
            await _serve_ptb(run)


@asynccontextmanager
async def _stop_event(stop: asyncio.Event | None) -> AsyncIterator[asyncio.Event]:
    if stop is not None:
        yield stop
        return
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def first_signal(sig: signal.Signals) -> None:
        log.info("%s: stopping after the update being handled", sig.name)
        event.set()
        # the next one gets Python's default: Ctrl-C twice aborts a shutdown that hangs
        loop.remove_signal_handler(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):  # Windows; not the main thread
            loop.add_signal_handler(sig, first_signal, sig)
            installed.append(sig)
    try:
        yield event
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


# --- aiogram ----------------------------------------------------------------------------------


async def _serve_aiogram(run: _Run) -> None:
    from aiogram import Dispatcher
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler

    from bot.channels.telegram import aiogram_shell as shell

    bot = shell.build_bot(run.token, run.api_url)
    try:
        with run.step("check the token", checks_token=True), shell.telegram_errors():
            me = await bot.me()
        core = await run.core(me.username)
        await run.resume(core, shell.AiogramTransport(bot))
        dp = Dispatcher()
        dp.include_router(shell.survey_router(core))
        if run.webhook_url is None:
            # aiogram's polling does not remove a webhook, and getUpdates answers 409 while
            # one is set.
            with run.step("remove the webhook"), shell.telegram_errors():
                await bot.delete_webhook(drop_pending_updates=False)
            run.started("aiogram", me.username)
            await _poll_aiogram(dp, bot, run)
            return
        url, secret = run.webhook_url, webhook_secret(run.settings)
        # handle_in_background=False: answer 200 only after the update was handled, so a
        # crash makes Telegram deliver it again instead of losing it.
        handler = SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token=secret)

        async def set_webhook() -> None:
            with run.step(f"set the webhook {url}"), shell.telegram_errors():
                await bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)

        await dp.emit_startup(bot=bot)
        try:
            await _serve_webhook(run, secret, handler.handle, set_webhook, "aiogram",
                                 me.username)
        finally:
            await dp.emit_shutdown(bot=bot)  # finishes updates still being handled
    finally:
        await run.stop_followups()
        await bot.session.close()


async def _poll_aiogram(dp: Dispatcher, bot: Bot, run: _Run) -> None:
    polling = asyncio.create_task(dp.start_polling(
        bot,
        polling_timeout=run.polling_timeout,
        handle_as_tasks=False,  # one update at a time, in order
        allowed_updates=ALLOWED_UPDATES,
        handle_signals=False,  # ours: the same for both frameworks and for webhooks
        close_bot_session=False,  # closed by the caller, after the router drained
    ))
    stopping = asyncio.create_task(run.stop.wait())
    try:
        done, _ = await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if polling not in done:
            try:
                # Cancels the long poll and the handler awaiting an update; the router's
                # shutdown hook (run by start_polling) then finishes that update.
                await dp.stop_polling()
            except RuntimeError:  # stopped before polling began
                polling.cancel()
        with suppress(asyncio.CancelledError):
            await polling
    finally:
        stopping.cancel()
        if not polling.done():
            polling.cancel()
            with suppress(asyncio.CancelledError):
                await polling


# --- python-telegram-bot ----------------------------------------------------------------------


async def _serve_ptb(run: _Run) -> None:
    from telegram import Update

    from bot.channels.telegram import ptb_shell as shell

    application = shell.build_application(run.token, run.api_url)
    try:
        with run.step("check the token", checks_token=True), shell.telegram_errors():
            await application.initialize()  # getMe
        username = application.bot.username
        core = await run.core(username)
        await run.resume(core, shell.PtbTransport(application.bot))
        shell.add_survey_handlers(application, core)
        await application.start()
        if run.webhook_url is None:
            await _poll_ptb(application, run, username)
            return
        url, secret = run.webhook_url, webhook_secret(run.settings)

        async def receive(request: web.Request) -> web.StreamResponse:
            try:
                data = await request.json()
            except ValueError:
                data = None
            if not isinstance(data, dict):
                return web.Response(status=400, text="the body must be a JSON update")
            # Answered after processing, so a crash of the process means redelivery rather
            # than a lost update (PTB itself logs a handler's exception and carries on).
            await application.process_update(Update.de_json(data, application.bot))
            return web.json_response({})

        async def set_webhook() -> None:
            with run.step(f"set the webhook {url}"), shell.telegram_errors():
                await application.bot.set_webhook(
                    url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
                )

        await _serve_webhook(run, secret, receive, set_webhook, "python-telegram-bot", username)
    finally:
        await run.stop_followups()
        if application.running:
            await application.stop()  # handles the updates still queued, then returns
        await application.shutdown()
        # A failed initialize() (a rejected token) leaves the bot's HTTP clients open, and
        # application.shutdown() skips an application that never finished initializing.
        await application.bot.shutdown()


async def _poll_ptb(application: PtbApplication, run: _Run, username: str | None) -> None:
    from bot.channels.telegram.ptb_shell import telegram_errors

    updater = application.updater
    assert updater is not None  # build_application keeps PTB's Updater
    # PTB removes any webhook first (deleteWebhook), then polls.
    with run.step("start polling"), telegram_errors():
        await updater.start_polling(timeout=run.polling_timeout, allowed_updates=ALLOWED_UPDATES)
    try:
        run.started("python-telegram-bot", username)
        await run.stop.wait()
    finally:
        # Stops fetching and confirms what was fetched to Telegram: the caller's
        # application.stop() then handles the updates still queued.
        await updater.stop()


# --- webhooks, for both -----------------------------------------------------------------------


async def _serve_webhook(
    run: _Run,
    secret: str,
    endpoint: Callable[[web.Request], Awaitable[web.StreamResponse]],
    set_webhook: Callable[[], Awaitable[None]],
    framework: str,
    username: str | None,
) -> None:
    """An aiohttp server on `run.listen` answering POSTs on the webhook URL's path.

    Checked here for both frameworks: a missing or wrong secret header is 401 and nothing is
    handled (PTB's own server would say 403; aiogram's checks again, harmlessly). Requests
    are handled one at a time, as polling does, although Telegram may open several
    connections at once. The webhook stays set on exit: Telegram keeps updates until we
    are back."""
    assert run.webhook_url is not None
    expected = secret.encode()
    one_at_a_time = asyncio.Lock()

    async def receive(request: web.Request) -> web.StreamResponse:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            log.warning("webhook request without the right secret from %s", request.remote)
            return web.Response(status=401, text="Unauthorized")
        async with one_at_a_time:
            return await endpoint(request)

    app = web.Application()
    app.router.add_post(webhook_path(run.webhook_url), receive)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        host, port = run.listen
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise StartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        await set_webhook()
        log.info("listening on http://%s:%d%s", host, port, webhook_path(run.webhook_url))
        run.started(framework, username)
        await run.stop.wait()
    finally:
        await runner.cleanup()  # lets requests being handled finish
