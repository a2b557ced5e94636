"""Run Sada as a Telegram bot on aiogram or python-telegram-bot, by long polling or webhook.

Start-up order: database, getMe (the bot's username), the core, questions committed but never
shown (`resume_pending`), then updates.

Updates go through per-chat lanes (lanes.py), the same for both frameworks and both modes:
one person's updates are applied one at a time, in the order Telegram handed them out (two
quick answers count in the order they were typed), while other people's run beside them, a
bounded number at once. So a rate limit (429) waited out for one chat, or one person's flood,
delays only that person. Each update is still one transaction, committed with its
processed-update row, so a redelivered update is recognised and skipped.

Nothing confirmed is lost: getUpdates confirms every update below its offset, so the offset
stays at the oldest update not yet handled; what Telegram hands out again from there while a
busy chat catches up is skipped by id. A webhook request is answered only after its update
was handled (a stop answers those still waiting 503). A crash therefore means redelivery,
never loss. The price: getUpdates hands out at most 100 updates from the offset, so a chat
with 100 updates still waiting holds newer ones back until it has caught up a little.

Stopping (the `stop` event, or SIGINT/SIGTERM when none is given): no new updates are taken,
the updates being handled are finished (without sitting out rate limits), those still waiting
in a lane are left to Telegram to deliver again, the handled ones are confirmed, then the
connections close. A second Ctrl-C aborts.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from bot.channels.telegram import DEFAULT_LISTEN
from bot.conversation.events import Inbound
from bot.conversation.lanes import ChatLanes
from bot.messaging.transport import Blocked, Refused, RetryAfter, Transient, Transport
from bot.settings import Settings, variable_name
from storage.db import Database
from storage.repo import Store

if TYPE_CHECKING:  # each framework is imported only when it runs
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
U = TypeVar("U")
# my_chat_member: a person blocking or restarting the bot (reachability).
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# How long a stop waits for the updates being handled (they no longer sit out rate limits,
# so this bounds only a stuck database or network call).
STOP_GRACE_SECONDS = 10.0
# While a busy chat holds the getUpdates offset back, Telegram answers at once with updates
# already in hand: ask again when one of them is done, or after this long for new ones.
RECHECK_SECONDS = 0.3
MAX_BACKOFF_SECONDS = 30.0


class StartError(Exception):
    """The bot cannot start; the message is one line meant for a person."""


class Core(Protocol):
    async def wants(self, event: Inbound) -> bool: ...

    async def process(self, event: Inbound, transport: Transport) -> None: ...

    async def resume_pending(self, transport: Transport) -> int: ...


class Intake(Protocol[U]):
    """What a framework's shell gives the runner to take updates (aiogram_shell.AiogramIntake,
    ptb_shell.PtbIntake)."""

    async def fetch(
        self, offset: int | None, timeout: int, allowed: list[str], limit: int = 100
    ) -> Sequence[U]:
        """getUpdates, raising events.py's errors."""
        ...

    def parse(self, data: dict[str, Any]) -> U:
        """A webhook body as the framework's update; ValueError when it is none."""
        ...

    def identify(self, update: U) -> tuple[int, int | None]:
        """(update_id, chat id or None)."""
        ...

    async def feed(self, update: U) -> None:
        """Through the framework's handlers (Sada's, then a host's)."""
        ...


class CoreFactory(Protocol):
    """Controller.create's signature; tests pass a fake."""

    def __call__(
        self, store: Store, *, channel: str, flows_dir: Path, bot_username: str,
        admin_ids: frozenset[str], secret: str, alert_to: list[tuple[str, str]],
    ) -> Awaitable[Core]: ...


# --- secrets ----------------------------------------------------------------------------------


def _derived(token: str, purpose: str) -> str:
    # Stable across restarts without another setting, and useless to anyone without the token.
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def _token(settings: Settings) -> str:
    if settings.telegram.token is None:
        raise StartError(f"{variable_name('telegram', 'token')} is not set")
    token = settings.telegram.token.get_secret_value().strip()
    # Loose on purpose (test servers use short tokens; `sada run` checks the real shape), but
    # aiogram's Bot() would raise its own error on a token without "<digits>:".
    if not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
        raise StartError(f"{variable_name('telegram', 'token')} is not a bot token (digits, "
                         "a colon, then letters, digits, _ or -)")
    return token


def webhook_secret(settings: Settings) -> str:
    """SADA_TELEGRAM__WEBHOOK_SECRET, or one derived from the token (64 hex characters:
    Telegram allows 1-256 of A-Za-z0-9_-)."""
    if settings.telegram.webhook_secret is not None:
        return settings.telegram.webhook_secret.get_secret_value()
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
    _stopping_followups: asyncio.Task[None] | None = None
    _stop_watch: asyncio.Task[None] | None = None

    @property
    def api_url(self) -> str:
        return self.settings.telegram.api_url

    async def core(self, username: str | None) -> Core:
        configured = self.settings.telegram.bot_username
        if configured and username and configured.lower() != username.lower():
            log.warning("%s is @%s but the token belongs to @%s; using @%s",
                        variable_name("telegram", "bot_username"), configured, username,
                        username)
        return await self.make_core(
            self.store,
            channel="telegram",
            flows_dir=self.settings.flows_dir,
            bot_username=username or configured or "",
            admin_ids=self.settings.telegram.staff_ids,
            secret=signing_secret(self.settings),
            alert_to=self.settings.alert_to(),
        )

    async def resume(self, core: Core, transport: Transport) -> None:
        """Re-send what a crash left unshown, then start the follow-ups (invitations,
        reminders, alerts, loop-closing messages) through the same transport."""
        shown = await core.resume_pending(transport)
        if shown:
            log.info("re-sent %d question(s) committed before the last stop but never shown",
                     shown)
        from bot.followups.scheduler import FollowupService

        self.followups = FollowupService(self.store.database, {transport.channel: transport},
                                         flows=getattr(core, "flows", {}))
        self.followups.start()
        # The dispatcher stops when the stop comes, side by side with the updates in hand:
        # one after the other, the two graces would add up past a service manager's patience.
        self._stop_watch = asyncio.create_task(self._stop_followups_on_stop())

    async def _stop_followups_on_stop(self) -> None:
        await self.stop.wait()
        await self.stop_followups()

    async def stop_followups(self) -> None:
        """Before the bot's connection closes: no message is cut off half-sent. Safe to call
        twice at once (the stop watch and the shutdown): both wait for the one stop."""
        if self._stop_watch is not None and self._stop_watch is not asyncio.current_task() \
                and not self.stop.is_set():
            self._stop_watch.cancel()  # serving ended without a stop (an error): no watch
        if self._stopping_followups is None:
            self._stopping_followups = asyncio.ensure_future(self._stop_followups_now())
        await asyncio.shield(self._stopping_followups)

    async def _stop_followups_now(self) -> None:
        if self.followups is not None:
            followups, self.followups = self.followups, None
            await followups.stop()

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
                f"check the network or {variable_name('telegram', 'api_url')}"
            )) from None
        except RetryAfter as exc:
            raise StartError(
                f"Telegram asks to wait {exc.seconds:g}s before we {what}; try again then"
            ) from None
        except (Refused, Blocked) as exc:
            if checks_token:
                raise StartError(self.one_line(
                    f"Telegram did not accept {variable_name('telegram', 'token')} ({exc}); "
                    "check the token with @BotFather"
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
        from bot.conversation.controller import standalone_controller

        core_factory = standalone_controller
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
            # getUpdates answers 409 while a webhook is set
            with run.step("remove the webhook"), shell.telegram_errors():
                await bot.delete_webhook(drop_pending_updates=False)
        url, secret = run.webhook_url or "", webhook_secret(run.settings)

        async def set_webhook() -> None:  # webhook mode only
            with run.step(f"set the webhook {url}"), shell.telegram_errors():
                await bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)

        await dp.emit_startup(bot=bot)
        try:
            await _take_updates(run, shell.AiogramIntake(dp, bot), set_webhook, "aiogram",
                                me.username)
        finally:
            await dp.emit_shutdown(bot=bot)  # the router finishes what it still handles
    finally:
        await run.stop_followups()
        await bot.session.close()


# --- python-telegram-bot ----------------------------------------------------------------------


async def _serve_ptb(run: _Run) -> None:
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
            with run.step("remove the webhook"), shell.telegram_errors():
                await application.bot.delete_webhook(drop_pending_updates=False)
        url, secret = run.webhook_url or "", webhook_secret(run.settings)

        async def set_webhook() -> None:  # webhook mode only
            with run.step(f"set the webhook {url}"), shell.telegram_errors():
                await application.bot.set_webhook(
                    url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
                )

        await _take_updates(run, shell.PtbIntake(application), set_webhook,
                            "python-telegram-bot", username)
    finally:
        await run.stop_followups()
        if application.running:
            await application.stop()
        await application.shutdown()
        # A failed initialize() (a rejected token) leaves the bot's HTTP clients open, and
        # application.shutdown() skips an application that never finished initializing.
        await application.bot.shutdown()


# --- updates, for both ------------------------------------------------------------------------


async def _take_updates(
    run: _Run, intake: Intake[Any], set_webhook: Callable[[], Awaitable[None]],
    framework: str, username: str | None,
) -> None:
    lanes = ChatLanes()
    try:
        if run.webhook_url is None:
            run.started(framework, username)
            await _poll(run, intake, lanes)
        else:
            await _serve_webhook(run, intake, lanes, set_webhook, framework, username)
    finally:
        await lanes.close(STOP_GRACE_SECONDS)


@dataclass
class _Offset:
    """getUpdates's offset, kept at the oldest update not yet handled.

    Telegram may hand out again every update from the offset on: `take` recognises those
    already in a lane or done. Ids below the offset never come back and are forgotten."""

    taken: set[int] = field(default_factory=set)
    unfinished: set[int] = field(default_factory=set)
    top: int | None = None

    @property
    def value(self) -> int | None:
        if self.unfinished:
            return min(self.unfinished)
        return None if self.top is None else self.top + 1

    def take(self, update_id: int) -> bool:
        """True for an update not seen before, now in hand."""
        if update_id in self.taken:
            return False
        self.taken.add(update_id)
        self.unfinished.add(update_id)
        self.top = update_id if self.top is None else max(self.top, update_id)
        return True

    def finished(self, update_id: int) -> None:
        self.unfinished.discard(update_id)

    def forget_confirmed(self) -> None:
        floor = self.value
        if floor is not None:
            self.taken = {i for i in self.taken if i >= floor}


async def _until_stopped(run: _Run, work: Awaitable[U], timeout: float | None = None) -> U | None:
    """`work`'s result (or its exception); None when the stop or `timeout` came first, and
    `work` is then cancelled."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(run.stop.wait())
    try:
        await asyncio.wait({task, stopping}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


async def _poll(run: _Run, intake: Intake[Any], lanes: ChatLanes) -> None:
    """Long polling into the lanes until the stop; then confirm what was handled."""
    offset = _Offset()
    progress = asyncio.Event()  # an update finished: the offset may move on
    backoff = 0.0

    def finished(update_id: int, done: asyncio.Future[bool]) -> None:
        # False: never handled (the stop came first); Telegram delivers it again
        if not done.cancelled() and done.result():
            offset.finished(update_id)
        progress.set()

    while not run.stop.is_set():
        offset.forget_confirmed()
        progress.clear()
        try:
            updates = await _until_stopped(run, intake.fetch(
                offset.value, run.polling_timeout, ALLOWED_UPDATES))
        except RetryAfter as exc:
            await _until_stopped(run, asyncio.sleep(exc.seconds))
            continue
        except (Transient, Refused, Blocked) as exc:
            # e.g. the network is down, or 409 while another instance polls: keep trying
            backoff = min(max(backoff * 2, 1.0), MAX_BACKOFF_SECONDS)
            log.warning("%s; trying again in %gs", run.one_line(
                f"getUpdates failed: {exc}"), backoff)
            await _until_stopped(run, asyncio.sleep(backoff))
            continue
        if updates is None:
            break
        backoff = 0.0
        fresh = 0
        for update in updates:
            update_id, chat = intake.identify(update)
            if not offset.take(update_id):
                continue
            fresh += 1
            done = lanes.submit(chat, functools.partial(intake.feed, update))
            done.add_done_callback(functools.partial(finished, update_id))
        if updates and not fresh:
            # All of them are still in a lane: poll again when one is done, or soon for
            # other people's new updates.
            await _until_stopped(run, progress.wait(), RECHECK_SECONDS)
    await lanes.close(STOP_GRACE_SECONDS)
    if offset.value is not None:
        try:
            # confirms the handled updates; what the lanes left is delivered again
            await intake.fetch(offset.value, 0, ALLOWED_UPDATES, limit=1)
        except (Transient, Refused, Blocked, RetryAfter) as exc:
            log.warning("%s", run.one_line(f"could not confirm the handled updates to "
                                           f"Telegram ({exc}): they come again and are "
                                           "skipped"))


async def _serve_webhook(
    run: _Run,
    intake: Intake[Any],
    lanes: ChatLanes,
    set_webhook: Callable[[], Awaitable[None]],
    framework: str,
    username: str | None,
) -> None:
    """An aiohttp server on `run.listen` answering POSTs on the webhook URL's path.

    Checked here for both frameworks: a missing or wrong secret header is 401 and nothing is
    handled (PTB's own server would say 403). A body that is not a JSON update is 400 with a
    one-line warning in the log. Telegram posts on several connections at once: each update
    joins its chat's lane, and the request is answered after the update was handled, so a
    crash means redelivery; one left unhandled by a stop is 503, and Telegram sends it
    again. The webhook stays set on exit: Telegram keeps updates until we are back."""
    assert run.webhook_url is not None
    expected = webhook_secret(run.settings).encode()

    async def receive(request: web.Request) -> web.StreamResponse:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            log.warning("webhook request without the right secret from %s", request.remote)
            return web.Response(status=401, text="Unauthorized")
        try:
            data = await request.json()
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            log.warning("webhook request from %s is not JSON: %s", request.remote,
                        " ".join(str(exc).split()))
            return web.Response(status=400, text="the body must be a JSON update")
        try:
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
            update = intake.parse(data)
        except ValueError as exc:
            reason = " ".join(str(exc).split())
            log.warning("webhook request from %s is not a Telegram update: %s", request.remote,
                        reason[:200])
            return web.Response(status=400, text="the body must be a JSON update")
        _, chat = intake.identify(update)
        # shielded: a client that hangs up must not cancel the update's place in its lane
        if not await asyncio.shield(lanes.submit(chat, functools.partial(intake.feed, update))):
            return web.Response(status=503, text="stopping; send it again")
        return web.json_response({})

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
        await lanes.close(STOP_GRACE_SECONDS)  # before the server: requests waiting get 503
    finally:
        await runner.cleanup()
