"""Run Sada as a Telegram bot on aiogram or python-telegram-bot, by long polling or webhook.

Every channel on Telegram's Bot API protocol that has a token (Telegram, Bale: their settings
groups are BotApiSettings) runs in the one process, each with its own bot client (its base
URL), controller, lanes and polling loop or webhook path; the follow-ups of all of them go
through one FollowupService, a transport per channel.

Start-up order: database, getMe (the bot's username), the core, questions committed but never
shown (`resume_pending`), then updates.

Updates go through per-chat lanes (lanes.py), the same for both frameworks and both modes:
one person's updates are applied one at a time, in the order Telegram handed them out (two
quick answers count in the order they were typed), while other people's run beside them, a
bounded number at once. So a rate limit (429) waited out for one chat, or one person's flood,
delays only that person. Each update is still one transaction, committed with its
processed-update row, so a redelivered update is recognised and skipped.

Nothing confirmed is lost. Long polling keeps each batch in the database (storage/inbox.py)
before the next getUpdates confirms it, and deletes an update's row once it is handled; what
a stop or a crash left there is handled first at the next start. A webhook request is
answered only after its update was handled (a stop answers those still waiting 503). A crash
therefore means redelivery, never loss, and a redelivered update changes nothing.

Stopping (the `stop` event, or SIGINT/SIGTERM when none is given): no new updates are taken,
the updates being handled are finished (without sitting out rate limits), those still waiting
in a lane stay in the inbox (polling) or are left to Telegram to deliver again (webhook), the
taken ones are confirmed, then the connections close. A second Ctrl-C aborts.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from bot.channels.telegram import DEFAULT_LISTEN
from bot.channels.telegram.intake import Rejected, parse_each, update_id_of
from bot.channels.telegram.settings import BotApiSettings
from bot.conversation.lanes import ChatLanes
from bot.messaging.registry import CHANNELS
from bot.messaging.transport import Blocked, Refused, RetryAfter, Transient, Transport
from bot.serving import Core, CoreFactory, StartError
from bot.serving import Shared as _Shared
from bot.serving import stop_event as _stop_event
from bot.serving import together as _together
from bot.settings import Settings, channel_groups, variable_name
from storage.db import Database
from storage.inbox import Inbox
from storage.repo import Store

if TYPE_CHECKING:  # each framework is imported only when it runs
    pass

__all__ = [
    "ALLOWED_UPDATES",
    "DEFAULT_LISTEN",
    "SECRET_HEADER",
    "Core",
    "CoreFactory",
    "Framework",
    "StartError",
    "bot_api_channels",
    "bot_api_groups",
    "channel_webhook_url",
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
MAX_BACKOFF_SECONDS = 30.0


class Intake(Protocol[U]):
    """What a framework's shell gives the runner to take updates (aiogram_shell.AiogramIntake,
    ptb_shell.PtbIntake)."""

    async def fetch(
        self, offset: int | None, timeout: int, allowed: list[str], limit: int = 100
    ) -> list[Any]:
        """getUpdates's raw JSON array (parsed by the runner, intake.parse_each, only the
        updates it has not taken yet), raising events.py's errors."""
        ...

    def parse(self, data: dict[str, Any]) -> U:
        """A webhook body as the framework's update; ValueError when it is none."""
        ...

    def identify(self, update: U) -> tuple[int, int | None]:
        """(update_id, chat id or None); an update the framework rejected has no chat."""
        ...

    async def feed(self, update: U) -> None:
        """Through the framework's handlers (Sada's, then a host's)."""
        ...


# --- secrets ----------------------------------------------------------------------------------


def _derived(token: str, purpose: str) -> str:
    # Stable across restarts without another setting, and useless to anyone without the token.
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def bot_api_groups(settings: Settings) -> list[str]:
    """The channels on the Bot API protocol, token or not, in the settings' order."""
    return [name for name, model in channel_groups(type(settings)).items()
            if issubclass(model, BotApiSettings)]


def bot_api_channels(settings: Settings) -> list[str]:
    """The channels on the Bot API protocol that have a token, in the settings' order."""
    return [name for name in bot_api_groups(settings)
            if _group(settings, name).token is not None]


def _group(settings: Settings, channel: str) -> BotApiSettings:
    group = getattr(settings, channel, None)
    if not isinstance(group, BotApiSettings):
        raise StartError(f"{channel!r} is no channel on the Bot API protocol; those are "
                         f"{', '.join(bot_api_groups(settings))}")
    return group


def _token(settings: Settings, channel: str = "telegram") -> str:
    group = _group(settings, channel)
    if group.token is None:
        raise StartError(f"{variable_name(channel, 'token')} is not set")
    token = group.token.get_secret_value().strip()
    # Loose on purpose (test servers use short tokens; `sada run` checks the real shape), but
    # aiogram's Bot() would raise its own error on a token without "<digits>:".
    if not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
        raise StartError(f"{variable_name(channel, 'token')} is not a bot token (digits, "
                         "a colon, then letters, digits, _ or -)")
    return token


def webhook_secret(settings: Settings, channel: str = "telegram") -> str:
    """SADA_<CHANNEL>__WEBHOOK_SECRET, or one derived from the channel's token (64 hex
    characters: the Bot API allows 1-256 of A-Za-z0-9_-)."""
    group = _group(settings, channel)
    if group.webhook_secret is not None:
        return group.webhook_secret.get_secret_value()
    return _derived(_token(settings, channel), "webhook")


def signing_secret(settings: Settings, channel: str = "telegram") -> str:
    """The key that signs button data: SADA_SECRET_KEY, or derived from the channel's
    token."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return _derived(_token(settings, channel), "callback-data")


def webhook_path(url: str) -> str:
    """The path our HTTP server answers on: the path of the public webhook URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StartError(
            f"the webhook must be a full URL such as https://bot.example.com/telegram, not {url!r}"
        )
    return parts.path or "/"


def channel_webhook_url(url: str, channel: str, first: bool) -> str:
    """Where `channel`'s updates are posted: the first channel run (Telegram when it runs)
    on the --webhook URL itself, every other one on that path and its name (…/sada/bale),
    all served on the one --listen address."""
    return url if first else f"{url.rstrip('/')}/{channel}"


# --- one run ----------------------------------------------------------------------------------


@dataclass
class _Run:
    """One channel of a process."""

    settings: Settings
    channel: str
    token: str
    shared: _Shared
    make_core: CoreFactory
    webhook_url: str | None
    polling_timeout: int

    @property
    def store(self) -> Store:
        return self.shared.store

    @property
    def stop(self) -> asyncio.Event:
        return self.shared.stop

    @property
    def listen(self) -> tuple[str, int]:
        return self.shared.listen

    @property
    def group(self) -> BotApiSettings:
        return _group(self.settings, self.channel)

    @property
    def title(self) -> str:
        return CHANNELS.get(self.channel).title if self.channel in CHANNELS else self.channel

    @property
    def api_url(self) -> str:
        return self.group.api_url

    def variable(self, key: str) -> str:
        return variable_name(self.channel, key)

    async def core(self, username: str | None) -> Core:
        configured = self.group.bot_username
        if configured and username and configured.lower() != username.lower():
            log.warning("%s is @%s but the token belongs to @%s; using @%s",
                        self.variable("bot_username"), configured, username, username)
        return await self.make_core(
            self.store,
            channel=self.channel,
            flows_dir=self.settings.flows_dir,
            bot_username=username or configured or "",
            admin_ids=self.group.staff_ids,
            secret=signing_secret(self.settings, self.channel),
            alert_to=self.settings.alert_to(),
        )

    async def resume(self, core: Core, transport: Transport) -> None:
        """Re-send what a crash left unshown, then join the follow-ups (invitations,
        reminders, alerts, loop-closing messages), which go through this transport for this
        channel."""
        shown = await core.resume_pending(transport)
        if shown:
            log.info("%s: re-sent %d question(s) committed before the last stop but never "
                     "shown", self.title, shown)
        self.shared.join(transport, getattr(core, "flows", {}))

    async def stop_followups(self) -> None:
        await self.shared.stop_followups()

    def one_line(self, text: str) -> str:
        return " ".join(text.replace(self.token, "<token>").split())

    @contextmanager
    def step(self, what: str, *, checks_token: bool = False) -> Iterator[None]:
        """Turn a failed start-up call (already mapped by the shell) into one line."""
        try:
            yield
        except Transient as exc:
            raise StartError(self.one_line(
                f"cannot reach the {self.title} Bot API at {self.api_url} to {what} ({exc}); "
                f"check the network or {self.variable('api_url')}"
            )) from None
        except RetryAfter as exc:
            raise StartError(
                f"{self.title} asks to wait {exc.seconds:g}s before we {what}; try again then"
            ) from None
        except (Refused, Blocked) as exc:
            if checks_token:
                raise StartError(self.one_line(
                    f"{self.title} did not accept {self.variable('token')} ({exc}); "
                    f"check the token with {self.title}'s @BotFather"
                )) from None
            raise StartError(self.one_line(f"{self.title} refused to {what}: {exc}")) from None

    async def report_pending(self, count: Callable[[], Awaitable[int]]) -> None:
        """Log how many updates wait from before the start. They are people's answers, so
        they are never dropped (deleteWebhook keeps them, and Bale is reported to keep them
        even when asked not to): polling handles them first, in order. A server without
        getWebhookInfo only loses the log line."""
        try:
            waiting = await count()
        except (Refused, Blocked, Transient, RetryAfter) as exc:
            log.info("%s: cannot tell how many updates wait (%s); polling takes them all",
                     self.title, self.one_line(str(exc)))
            return
        if waiting:
            log.info("%s: %d update(s) waiting from before the start; handling them first",
                     self.title, waiting)

    def started(self, framework: str, username: str | None) -> None:
        mode = f"webhook {self.webhook_url}" if self.webhook_url else "long polling"
        log.info("Sada is running as @%s on %s (%s, %s); Ctrl-C stops it", username,
                 self.title, framework, mode)


async def run_bot(
    settings: Settings,
    *,
    framework: Framework,
    webhook_url: str | None,
    listen: tuple[str, int] = DEFAULT_LISTEN,
    stop: asyncio.Event | None = None,
    polling_timeout: int = 25,
    core_factory: CoreFactory | None = None,
    channels: Sequence[str] | None = None,
    freeze_when_up: bool = False,
) -> None:
    """Serve every channel in `channels` (default: each Bot API channel with a token) until
    `stop` is set (or SIGINT/SIGTERM when `stop` is None).

    `freeze_when_up` (`sada run`, a process of its own): once every channel is up, what the
    start made is left out of Python's garbage collections (Shared.join).

    Raises StartError (one line) when a channel's API or the listening port is unusable, and
    the storage layer's StorageError when the database is. A channel that fails to start
    stops the others: a process runs all its channels or none."""
    from bot.serving import webhook_channels

    # Channels served by webhook only (WhatsApp), each declared in its own folder.
    hooks = [hook for hook in webhook_channels()
             if (hook.enabled(settings) if channels is None else hook.CHANNEL_NAME in channels)]
    others = {hook.CHANNEL_NAME for hook in webhook_channels()}
    names = [name for name in (bot_api_channels(settings) if channels is None else channels)
             if name not in others]
    for hook in hooks:
        hook.check(settings)
    if not names and not hooks:
        names = ["telegram"]  # _token names the variable to set
    tokens = {name: _token(settings, name) for name in names}
    if webhook_url is not None:
        webhook_path(webhook_url)  # fail before opening anything
    if framework not in ("aiogram", "ptb"):
        raise StartError(f"the framework must be aiogram or ptb, not {framework!r}")
    if core_factory is None:
        from bot.conversation.controller import standalone_controller

        core_factory = standalone_controller
    serve = _serve_aiogram if framework == "aiogram" else _serve_ptb
    async with (
        _stop_event(stop) as stopping,
        await Database.open(settings.effective_database_url) as database,
    ):
        shared = _Shared(Store(database), stopping, len(names) + len(hooks), listen,
                         metrics=settings.metrics,
                         lease=timedelta(seconds=settings.outbox_lease_seconds),
                         freeze_when_up=freeze_when_up)
        from bot.api.mount import mount_api
        from bot.followups.shared_rate import install

        # Several processes on one PostgreSQL send within one budget per channel and chat.
        install(database, {name: CHANNELS.get(name).capabilities
                           for name in [*names, *(h.CHANNEL_NAME for h in hooks)]
                           if name in CHANNELS})

        try:
            await mount_api(shared, settings)  # listens now when an API key is in use
            await shared.serve_metrics()  # its own address, with SADA_METRICS__LISTEN
        except BaseException:
            await shared.close()
            raise
        runs = [
            _Run(settings, name, tokens[name], shared, core_factory,
                 None if webhook_url is None else channel_webhook_url(webhook_url, name, i == 0),
                 polling_timeout)
            for i, name in enumerate(names)
        ]
        try:
            serving: list[Awaitable[None]] = [serve(run) for run in runs]
            serving += [hook.serve(shared, settings, core_factory, webhook_url)
                        for hook in hooks]
            await _together(stopping, serving)
        finally:
            await shared.stop_followups()
            await shared.close()


# --- aiogram ----------------------------------------------------------------------------------


async def _serve_aiogram(run: _Run) -> None:
    from aiogram import Dispatcher

    from bot.channels.telegram import aiogram_shell as shell

    bot = shell.build_bot(run.token, run.api_url)
    try:
        with run.step("check the token", checks_token=True), shell.telegram_errors():
            me = await bot.me()
        core = await run.core(me.username)
        await run.resume(core, shell.AiogramTransport(bot, run.channel))
        # Sada keeps each conversation in its database: aiogram's FSM would only look up (and,
        # in its memory storage, keep) a record per person on every update.
        dp = Dispatcher(disable_fsm=True)
        dp.include_router(shell.survey_router(core))
        if run.webhook_url is None:
            # getUpdates answers 409 while a webhook is set
            with run.step("remove the webhook"), shell.telegram_errors():
                await bot.delete_webhook(drop_pending_updates=False)

            async def pending() -> int:
                with shell.telegram_errors():
                    return (await bot.get_webhook_info()).pending_update_count

            await run.report_pending(pending)
        url, secret = run.webhook_url or "", webhook_secret(run.settings, run.channel)

        async def set_webhook() -> None:  # webhook mode only
            with run.step(f"set the webhook {url}"), shell.telegram_errors():
                await bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)

        await dp.emit_startup(bot=bot)
        try:
            await _take_updates(run, shell.AiogramIntake(dp, bot, run.channel), set_webhook,
                                "aiogram", me.username)
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
        await run.resume(core, shell.PtbTransport(application.bot, run.channel))
        shell.add_survey_handlers(application, core)
        await application.start()
        if run.webhook_url is None:
            with run.step("remove the webhook"), shell.telegram_errors():
                await application.bot.delete_webhook(drop_pending_updates=False)

            async def pending() -> int:
                with shell.telegram_errors():
                    return (await application.bot.get_webhook_info()).pending_update_count

            await run.report_pending(pending)
        url, secret = run.webhook_url or "", webhook_secret(run.settings, run.channel)

        async def set_webhook() -> None:  # webhook mode only
            with run.step(f"set the webhook {url}"), shell.telegram_errors():
                await application.bot.set_webhook(
                    url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
                )

        await _take_updates(run, shell.PtbIntake(application, run.channel), set_webhook,
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
            await _poll(run, intake, lanes,
                        Inbox(run.shared.store.database, f"{run.channel}:{username}"))
        else:
            await _serve_webhook(run, intake, lanes, set_webhook, framework, username)
    finally:
        await lanes.close(STOP_GRACE_SECONDS)


@dataclass
class _Offset:
    """getUpdates's offset: one past the newest update kept in the inbox.

    An update Telegram hands out again (kept, but the poll confirming it never came: a stop
    or a crash in between) is recognised by `take`. Ids below what the last poll confirmed
    never come back and are forgotten."""

    taken: set[int] = field(default_factory=set)
    top: int | None = None

    @property
    def value(self) -> int | None:
        return None if self.top is None else self.top + 1

    def take(self, update_id: int) -> bool:
        """True for an update not seen before, now in hand."""
        if update_id in self.taken:
            return False
        self.taken.add(update_id)
        self.top = update_id if self.top is None else max(self.top, update_id)
        return True

    def confirmed(self, below: int | None) -> None:
        if below is not None:
            self.taken = {i for i in self.taken if i >= below}


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


async def _poll(run: _Run, intake: Intake[Any], lanes: ChatLanes, inbox: Inbox) -> None:
    """Long polling into the lanes until the stop. Each batch is kept in the inbox before the
    next getUpdates confirms it (storage/inbox.py); what a stop or a crash left there is
    handled first."""
    offset = _Offset()
    backoff = 0.0

    def finished(update_id: int, done: asyncio.Future[bool]) -> None:
        # False: never handled (the stop came first); the next start handles it
        if not done.cancelled() and done.result():
            inbox.handled(update_id)

    def submit(raw: list[Any]) -> None:
        for update in parse_each(raw, intake.parse, offset.take):
            update_id, chat = intake.identify(update)
            done = lanes.submit(chat, functools.partial(intake.feed, update))
            done.add_done_callback(functools.partial(finished, update_id))

    kept = await inbox.waiting()
    if kept:
        log.info("%s: %d update(s) taken before the last stop and not handled; handling them "
                 "first", run.title, len(kept))
    submit(kept)
    while not run.stop.is_set():
        # While updates already taken wait for a place, another getUpdates would only move
        # more from Telegram's queue to this one, at the cost of a call and two writes.
        if lanes.ready:
            await _until_stopped(run, lanes.placed())
        try:
            await inbox.forget_handled()
        except Exception as exc:  # the database is away: kept rows only come again
            log.warning("%s", run.one_line(f"{run.title}: could not clear handled updates "
                                           f"from the inbox: {exc}"))
        asked = offset.value
        try:
            updates = await _until_stopped(run, intake.fetch(
                asked, run.polling_timeout, ALLOWED_UPDATES))
        except RetryAfter as exc:
            await _until_stopped(run, asyncio.sleep(exc.seconds))
            continue
        except (Transient, Refused, Blocked) as exc:
            # e.g. the network is down, or 409 while another instance polls: keep trying
            backoff = min(max(backoff * 2, 1.0), MAX_BACKOFF_SECONDS)
            log.warning("%s; trying again in %gs", run.one_line(
                f"{run.title}: getUpdates failed: {exc}"), backoff)
            await _until_stopped(run, asyncio.sleep(backoff))
            continue
        if updates is None:
            break
        backoff = 0.0
        offset.confirmed(asked)
        numbered = [u for u in updates if update_id_of(u) is not None]
        try:
            await inbox.keep(numbered)
        except Exception as exc:
            # Not kept, so not confirmed: Telegram hands them out again.
            backoff = min(max(backoff * 2, 1.0), MAX_BACKOFF_SECONDS)
            log.warning("%s; trying again in %gs", run.one_line(
                f"{run.title}: could not keep the updates taken: {exc}"), backoff)
            await _until_stopped(run, asyncio.sleep(backoff))
            continue
        submit(updates)
    await lanes.close(STOP_GRACE_SECONDS)
    with suppress(Exception):
        await inbox.forget_handled()
    if offset.value is not None:
        try:
            # confirms what the inbox holds: Telegram need not hand it out again
            await intake.fetch(offset.value, 0, ALLOWED_UPDATES, limit=1)
        except (Transient, Refused, Blocked, RetryAfter) as exc:
            log.warning("%s", run.one_line(f"could not confirm the updates taken to "
                                           f"{run.title} ({exc}): they come again and are "
                                           "skipped"))


async def _serve_webhook(
    run: _Run,
    intake: Intake[Any],
    lanes: ChatLanes,
    set_webhook: Callable[[], Awaitable[None]],
    framework: str,
    username: str | None,
) -> None:
    """The process's server on `run.listen` answering POSTs on this channel's webhook path
    (channel_webhook_url: each channel has its own path on the one server).

    Checked here for both frameworks: a missing or wrong secret header is 401 and nothing is
    handled (PTB's own server would say 403). A body that is not a JSON update is 400 with a
    one-line warning in the log. Telegram posts on several connections at once: each update
    joins its chat's lane, and the request is answered after the update was handled, so a
    crash means redelivery; one left unhandled by a stop is 503, and Telegram sends it
    again. The webhook stays set on exit: Telegram keeps updates until we are back."""
    assert run.webhook_url is not None
    expected = webhook_secret(run.settings, run.channel).encode()

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
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            what = "no update_id" if isinstance(data, dict) else \
                f"a JSON {type(data).__name__}, not an object"
            log.warning("webhook request from %s is not a %s update: %s", request.remote,
                        run.title, what)
            return web.Response(status=400, text="the body must be a JSON update")
        [update] = parse_each([data], intake.parse)
        if isinstance(update, Rejected):
            # An update of the server's own shape that the framework cannot read: skipped and
            # confirmed (200), as when polling, or the server would post it again and again.
            update.skip(run.channel)
            return web.json_response({})
        _, chat = intake.identify(update)
        # shielded: a client that hangs up must not cancel the update's place in its lane
        if not await asyncio.shield(lanes.submit(chat, functools.partial(intake.feed, update))):
            return web.Response(status=503, text="stopping; send it again")
        return web.json_response({})

    path = webhook_path(run.webhook_url)
    await run.shared.route(path, receive)
    await set_webhook()
    host, port = run.listen
    log.info("%s: listening on http://%s:%d%s", run.title, host, port, path)
    run.started(framework, username)
    await run.stop.wait()
    # before the server closes (when every channel is done): requests still waiting get 503
    await lanes.close(STOP_GRACE_SECONDS)
