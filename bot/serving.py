"""What the channels of one `sada run` process share, whatever their protocol: the stop
(SIGINT/SIGTERM), the one HTTP server on --listen with a path per channel, the follow-ups
(one FollowupService with every channel's transport), running the channels side by side,
and the channels served by webhook only, each declared in its own folder.

A folder under bot/channels/ whose `runner` module declares CHANNEL_NAME, enabled, check and
serve (bot/channels/whatsapp/runner.py) is run by `sada run` when its settings are set,
found here as bot.messaging.registry finds channel declarations: adding such a channel
touches nothing outside its folder and its settings. The Bot API channels (Telegram, Bale)
are run by bot/channels/telegram/runner.py, which owns the process and calls these hooks.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib
import logging
import pkgutil
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast

from aiohttp import web

from bot.conversation.events import Inbound
from bot.messaging.transport import Transport
from bot.metrics_settings import MetricsSettings
from bot.settings import Settings
from storage.db import head_revision, revision_of
from storage.repo import Store

if TYPE_CHECKING:  # imported when the follow-ups start
    from bot.followups.scheduler import FollowupService

__all__ = ["Core", "CoreFactory", "Shared", "StartError", "WebhookChannel", "stop_event",
           "together", "webhook_channels"]

log = logging.getLogger(__name__)
CHANNELS_PACKAGE = "bot.channels"
HOOK_MODULE = "runner"


class StartError(Exception):
    """The bot cannot start; the message is one line meant for a person."""


class Core(Protocol):
    async def wants(self, event: Inbound) -> bool: ...

    async def process(self, event: Inbound, transport: Transport) -> None: ...

    async def resume_pending(self, transport: Transport) -> int: ...


class CoreFactory(Protocol):
    """Controller.create's signature; tests pass a fake."""

    def __call__(
        self, store: Store, *, channel: str, flows_dir: Path, bot_username: str,
        admin_ids: frozenset[str], secret: str, alert_to: list[tuple[str, str]],
    ) -> Awaitable[Core]: ...


HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"  # Prometheus; no key (docs/operations.md: keep it private)
API_PREFIX = "/api/"  # bot.api's; not imported from there, so serving stays light
READY_PATH = "/readyz"


class Shared:
    """What the channels of one process share: the store, the stop, the follow-ups (one
    FollowupService with every channel's transport, started once all of them are up) and
    the webhook server (one --listen address, a path per channel)."""

    def __init__(self, store: Store, stop: asyncio.Event, channels: int,
                 listen: tuple[str, int], metrics: MetricsSettings | None = None,
                 lease: timedelta = timedelta(seconds=60), freeze_when_up: bool = False
                 ) -> None:
        self.store = store
        self.freeze_when_up = freeze_when_up
        self.lease = lease  # the outbox's (Dispatcher's)
        self.metrics = metrics or MetricsSettings()
        self._metrics_server: web.AppRunner | None = None
        # bot.metrics.OutboxDepth and a registry holding it, made on the first scrape
        self._outbox_depth: tuple[Any, Any] | None = None
        self.stop = stop
        self.channels = channels
        self.listen = listen
        self.transports: dict[str, Transport] = {}
        self.followups: FollowupService | None = None
        self._stopping_followups: asyncio.Task[None] | None = None
        self._stop_watch: asyncio.Task[None] | None = None
        self._routes: dict[tuple[str, str],
                           Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}
        # (method, path prefix): for paths that carry a value (the web chat's /s/<token>)
        self._prefixes: dict[tuple[str, str],
                             Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}
        self._server: web.AppRunner | None = None
        self._server_lock = asyncio.Lock()
        # Answers every path under API_PREFIX (bot.api.Api.handle), mounted with the server.
        self.api: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None

    def join(self, transport: Transport, flows: Any) -> None:
        """A channel is up: the follow-ups start with the last one, so a row queued for any
        channel finds its transport."""
        self.transports[transport.channel] = transport
        if len(self.transports) < self.channels or self.followups is not None:
            return
        from bot.followups.scheduler import FollowupService

        self.followups = FollowupService(self.store.database, dict(self.transports),
                                         flows=flows, lease=self.lease)
        self.followups.start()
        if self.freeze_when_up:
            # Python's full collections walk every object the start made (some 300,000:
            # aiogram's pydantic models, SQLAlchemy, the flows), each for ~0.3 s of CPU on a
            # small machine during which no conversation moves. Frozen, they are skipped.
            # No collection first: it would cost as much, and what the start left
            # unreachable is small and made once.
            gc.freeze()
        # The dispatcher stops when the stop comes, side by side with the updates in hand:
        # one after the other, the two graces would add up past a service manager's patience.
        self._stop_watch = asyncio.create_task(self._stop_followups_on_stop())

    async def _stop_followups_on_stop(self) -> None:
        await self.stop.wait()
        await self.stop_followups()

    async def stop_followups(self) -> None:
        """Before any bot's connection closes: no message is cut off half-sent. Safe to call
        from every channel at once, and from the stop watch: all wait for the one stop."""
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

    async def route(
        self, path: str, receive: Callable[[web.Request], Awaitable[web.StreamResponse]],
        method: str = "POST",
    ) -> None:
        """Answer `method` requests (POST: updates; GET: a channel's webhook verification)
        on `path` with `receive`, on the one server (started by the first channel that
        asks)."""
        await self.start_server()
        self._routes[method, path] = receive

    async def route_prefix(
        self, prefix: str, receive: Callable[[web.Request], Awaitable[web.StreamResponse]],
        method: str = "GET",
    ) -> None:
        """Answer `method` requests on every path under `prefix` (exact routes win)."""
        await self.start_server()
        self._prefixes[method, prefix] = receive

    async def start_server(self) -> None:
        """Listen on `listen` unless already listening: for the first webhook, or for the
        HTTP API when the channels all poll."""
        async with self._server_lock:
            if self._server is None:
                app = web.Application()
                app.router.add_route("*", "/{path:.*}", self._dispatch)
                runner = web.AppRunner(app, handle_signals=False)
                await runner.setup()
                host, port = self.listen
                try:
                    await web.TCPSite(runner, host, port).start()
                except OSError as exc:
                    await runner.cleanup()
                    raise StartError(
                        f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
                self._server = runner
                # For a load balancer in front of the webhooks: alive, and able to serve.
                self._routes["GET", HEALTH_PATH] = self._health
                self._routes["GET", READY_PATH] = self._ready
                if self.metrics.enabled and self.metrics.address is None:
                    self._routes["GET", METRICS_PATH] = self._scrape

    async def serve_metrics(self) -> None:
        """With SADA_METRICS__LISTEN: /metrics alone on a server of its own (a private
        address), started now whatever the channels do."""
        address = self.metrics.address
        if not self.metrics.enabled or address is None or self._metrics_server is not None:
            return
        app = web.Application()
        app.router.add_get(METRICS_PATH, self._scrape)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, *address).start()
        except OSError as exc:
            await runner.cleanup()
            raise StartError(f"cannot listen on {address[0]}:{address[1]} for metrics "
                             f"(SADA_METRICS__LISTEN): {exc.strerror or exc}") from None
        self._metrics_server = runner
        log.info("metrics: http://%s:%d%s", *address, METRICS_PATH)

    async def _scrape(self, request: web.Request) -> web.StreamResponse:
        """Prometheus's text format: the process's counters, and the outbox's depth read
        from the database (cached a few seconds)."""
        from prometheus_client import CollectorRegistry

        from bot import metrics

        if self._outbox_depth is None:
            depth = metrics.OutboxDepth(functools.partial(metrics.outbox_depths,
                                                          self.store.database))
            registry = CollectorRegistry(auto_describe=False)
            registry.register(depth)
            self._outbox_depth = depth, registry
        depth, registry = self._outbox_depth
        try:
            await depth.refresh()
        except Exception as exc:  # the counters still count: serve them, say why not this
            log.warning("metrics: could not read the outbox depth: %s", exc)
        return web.Response(body=metrics.exposition(registry),
                            headers={"Content-Type": metrics.CONTENT_TYPE})

    async def _health(self, request: web.Request) -> web.StreamResponse:
        """Alive: the process answers. 503 once stopping, so no new traffic comes."""
        if self.stop.is_set():
            return web.json_response({"status": "stopping"}, status=503)
        return web.json_response({"status": "ok"})

    async def _ready(self, request: web.Request) -> web.StreamResponse:
        """Ready: the database answers and its schema is the one this code needs."""
        if self.stop.is_set():
            return web.json_response({"status": "stopping"}, status=503)
        try:
            async with self.store.database.engine.connect() as conn:
                revision = await conn.run_sync(revision_of)
        except Exception as exc:  # any failure to reach it means "not ready", said why
            return web.json_response(
                {"status": "database unreachable", "error": f"{type(exc).__name__}: {exc}"},
                status=503)
        head = head_revision()
        if revision != head:
            return web.json_response(
                {"status": "schema outdated", "database": revision, "needed": head,
                 "fix": "run `sada db upgrade`"}, status=503)
        return web.json_response({"status": "ready", "schema": revision})

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        receive = self._routes.get((request.method, request.path))
        if receive is None:
            receive = next((r for (method, prefix), r in self._prefixes.items()
                            if method == request.method and request.path.startswith(prefix)),
                           None)
        if receive is None and self.api is not None and request.path.startswith(API_PREFIX):
            return await self.api(request)
        if receive is None:
            if any(path == request.path for _, path in self._routes):
                raise web.HTTPMethodNotAllowed(
                    request.method, [m for m, path in self._routes if path == request.path])
            raise web.HTTPNotFound()
        return await receive(request)

    async def close(self) -> None:
        if self._metrics_server is not None:
            metrics_server, self._metrics_server = self._metrics_server, None
            await metrics_server.cleanup()
        if self._server is not None:
            server, self._server = self._server, None
            await server.cleanup()


async def together(stop: asyncio.Event, channels: Sequence[Awaitable[None]]) -> None:
    """Run the channels side by side; the first to fail stops the others, which wind down
    as on a stop, and its error is raised."""
    tasks = [asyncio.ensure_future(channel) for channel in channels]
    failed: BaseException | None = None
    try:
        for done in asyncio.as_completed(tasks):
            try:
                await done
            except Exception as exc:
                if failed is None:
                    failed = exc
                    stop.set()
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if failed is not None:
        raise failed


@asynccontextmanager
async def stop_event(stop: asyncio.Event | None) -> AsyncIterator[asyncio.Event]:
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


class WebhookChannel(Protocol):
    """What a channel's `runner` module declares (bot/channels/whatsapp/runner.py)."""

    CHANNEL_NAME: str

    def enabled(self, settings: Settings) -> bool:
        """Whether its settings ask `sada run` to serve it."""
        ...

    def check(self, settings: Settings) -> None:
        """Raise the runner's StartError naming the first variable it lacks."""
        ...

    def serve(self, shared: Shared, settings: Settings, make_core: CoreFactory,
              webhook_url: str | None) -> Awaitable[None]:
        """Serve the channel until the shared stop."""
        ...


def _declares(module: ModuleType) -> bool:
    return all(hasattr(module, name) for name in ("CHANNEL_NAME", "enabled", "check", "serve"))


@cache
def webhook_channels() -> tuple[WebhookChannel, ...]:
    """Every channel folder's run hooks, in name order."""
    package = importlib.import_module(CHANNELS_PACKAGE)
    found: list[WebhookChannel] = []
    for folder in sorted(pkgutil.iter_modules(package.__path__, f"{CHANNELS_PACKAGE}."),
                         key=lambda f: f.name):
        if not folder.ispkg:
            continue
        try:
            module = importlib.import_module(f"{folder.name}.{HOOK_MODULE}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{folder.name}.{HOOK_MODULE}":
                raise
            continue
        if _declares(module):
            found.append(cast(WebhookChannel, module))
    return tuple(found)
