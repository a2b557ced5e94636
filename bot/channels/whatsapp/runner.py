"""WhatsApp in `sada run`: its webhook on the process's one HTTP server, beside the Bot API
channels. This module's CHANNEL_NAME, enabled, check and serve are the channel's run hooks,
found by bot.serving; the Bot API runner calls them with the process's shared parts.

WhatsApp has no polling: Meta posts every message and status to the webhook URL typed into
the app's settings. GET is Meta's verification; a POST's signature is checked on the raw
body before anything of it is read (401 without one, 403 when wrong). Each message joins its
sender's lane (one person's messages in order) and is answered 200 once handled, so a crash
means redelivery, which the update_id (the wamid's number) makes harmless. Statuses update
the delivery state of the outbox row sent as that message (storage.delivery).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.channels.whatsapp.transport import (
    PAIR_RATE,
    PAIR_RATE_WAIT,
    SPAM_RATE,
    SPAM_RATE_WAIT,
    THROUGHPUT,
    THROUGHPUT_WAIT,
    UNREACHABLE,
    GraphClient,
    WhatsAppTransport,
)
from bot.channels.whatsapp.webhook import (
    SIGNATURE_HEADER,
    Received,
    StatusChange,
    parse,
    signature_status,
    verify,
)
from bot.conversation.lanes import ChatLanes
from bot.messaging.transport import Blocked, Refused, RetryAfter, Transient
from bot.serving import Core, CoreFactory, Shared, StartError
from bot.settings import Settings, variable_name
from storage.delivery import OnFailure, record_delivery

__all__ = ["CHANNEL_NAME", "check", "enabled", "serve", "webhook_path_for"]

log = logging.getLogger(__name__)
CHANNEL_NAME = "whatsapp"
STOP_GRACE_SECONDS = 10.0


def enabled(settings: Settings) -> bool:
    """Whether `sada run` serves WhatsApp: any of its connection settings is set (a partial
    set is an error, `check` names what is missing)."""
    group = settings.whatsapp
    return any(value is not None for value in (group.phone_number_id, group.access_token,
                                               group.app_secret, group.verify_token))


def check(settings: Settings) -> None:
    """Raise StartError naming the first WhatsApp variable `sada run` lacks."""
    group = settings.whatsapp
    for key in ("phone_number_id", "access_token", "app_secret", "verify_token"):
        value = getattr(group, key)
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        if not text or not str(text).strip():
            raise StartError(f"{variable_name('whatsapp', key)} is not set: WhatsApp needs "
                               "the phone number id, access token, app secret and verify "
                               "token (see docs/channels.md, WhatsApp)")


def webhook_path_for(webhook_url: str | None) -> str:
    """Where WhatsApp's webhook answers: the --webhook URL's path plus /whatsapp, or
    /whatsapp without one."""
    if webhook_url is None:
        return f"/{CHANNEL_NAME}"
    from bot.channels.telegram.runner import webhook_path

    return f"{webhook_path(webhook_url).rstrip('/')}/{CHANNEL_NAME}"


def _secret(settings: Settings) -> str:
    """The key that signs button data: SADA_SECRET_KEY, or derived from the access token."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    token = settings.whatsapp.access_token
    assert token is not None
    return hmac.new(token.get_secret_value().encode(), b"callback-data",
                    hashlib.sha256).hexdigest()


def _consequence(status: StatusChange) -> tuple[OnFailure, float]:
    """What a failed status means for its row, and how long to wait before sending again."""
    code = status.error_code
    if code in UNREACHABLE:
        return "unreachable", 0.0
    if code in THROUGHPUT:
        return "retry", THROUGHPUT_WAIT
    if code == PAIR_RATE:
        return "retry", PAIR_RATE_WAIT
    if code == SPAM_RATE:
        return "retry", SPAM_RATE_WAIT
    return "keep", 0.0


async def serve(shared: Shared, settings: Settings, make_core: CoreFactory,
                webhook_url: str | None) -> None:
    """Serve WhatsApp until the stop: its controller, lanes and webhook routes."""
    check(settings)
    group = settings.whatsapp
    assert group.phone_number_id is not None and group.access_token is not None
    assert group.app_secret is not None and group.verify_token is not None
    app_secret = group.app_secret.get_secret_value()
    verify_token = group.verify_token.get_secret_value()
    phone_number_id = group.phone_number_id
    client = GraphClient(phone_number_id, group.access_token.get_secret_value(),
                         api_url=group.api_url, api_version=group.api_version)
    lanes = ChatLanes()
    try:
        core = await make_core(
            shared.store, channel=CHANNEL_NAME, flows_dir=settings.flows_dir,
            bot_username=group.business_number or "", admin_ids=group.staff_ids,
            secret=_secret(settings), alert_to=settings.alert_to(),
        )
        # the approved templates: what reaches a person outside the 24-hour window
        transport = WhatsAppTransport(client, templates=group.templates)
        shown = await core.resume_pending(transport)
        if shown:
            log.info("WhatsApp: re-sent %d question(s) committed before the last stop but "
                     "never shown", shown)
        receive = _receiver(shared, core, transport, lanes, app_secret, phone_number_id)

        async def verification(request: web.Request) -> web.StreamResponse:
            status, text = verify(request.query, verify_token)
            if status != 200:
                log.warning("WhatsApp webhook verification with a wrong verify token from %s",
                            request.remote)
            return web.Response(status=status, text=text)

        path = webhook_path_for(webhook_url)
        await shared.route(path, receive)
        await shared.route(path, verification, method="GET")
        shared.join(transport, getattr(core, "flows", {}))
        host, port = shared.listen
        log.info("WhatsApp: webhook on http://%s:%d%s; in the Meta app's WhatsApp "
                 "configuration, set the callback URL to your public https address with the "
                 "path %s and the verify token of %s", host, port, path, path,
                 variable_name(CHANNEL_NAME, "verify_token"))
        await shared.stop.wait()
        await lanes.close(STOP_GRACE_SECONDS)
    finally:
        await shared.stop_followups()
        await lanes.close(STOP_GRACE_SECONDS)
        await client.aclose()


def _receiver(
    shared: Shared, core: Core, transport: WhatsAppTransport, lanes: ChatLanes,
    app_secret: str, phone_number_id: str,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(received: Received) -> None:
        await core.process(received.event, transport)
        try:  # the two blue ticks: best effort, the answer is already committed
            await transport.mark_read(received.wamid)
        except (Blocked, Refused, RetryAfter, Transient) as exc:
            log.info("WhatsApp: could not mark a message read: %s", exc)

    async def receive(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        status = signature_status(body, request.headers.get(SIGNATURE_HEADER), app_secret)
        if status != 200:
            log.warning("WhatsApp webhook request with %s signature from %s",
                        "no" if status == 401 else "a wrong", request.remote)
            return web.Response(status=status, text="bad signature")
        parsed = parse(body, phone_number_id)
        if parsed.error is not None:
            log.warning("WhatsApp webhook: %s", parsed.error)
        waiting = [lanes.submit(r.event.chat_id, functools.partial(handle, r))
                   for r in parsed.received]
        for change in parsed.statuses:
            await _status(shared, change)
        # shielded: Meta hanging up must not cancel a message's place in its lane
        done = await asyncio.shield(asyncio.gather(*waiting)) if waiting else []
        if not all(done):
            return web.Response(status=503, text="stopping; send it again")
        return web.json_response({})

    return receive


async def _status(shared: Shared, change: StatusChange) -> None:
    now = datetime.now(UTC)
    on_failure, wait = _consequence(change) if change.status == "failed" else ("keep", 0.0)
    outcome = await record_delivery(
        shared.store.database, channel=CHANNEL_NAME, message_id=change.message_id,
        status=change.status, at=change.at, now=now,
        error=None if change.status != "failed" else
        f"WhatsApp error {change.error_code}: {change.error or ''}".strip(": "),
        on_failure=on_failure, retry_at=now + timedelta(seconds=wait),
        address=change.recipient or None,
    )
    if outcome.unreachable:
        log.info("WhatsApp: a contact is unreachable (error %s)", change.error_code)
        log.debug("WhatsApp: %s is unreachable", change.recipient)  # a phone number: DEBUG
    if change.status == "failed" and change.error_code == SPAM_RATE:
        followups = shared.followups
        if followups is not None:
            until = followups.dispatcher.pause(CHANNEL_NAME, SPAM_RATE_WAIT)
            log.warning("WhatsApp: Meta's spam rate limit (131048): sending nothing on "
                        "WhatsApp until %s", until.isoformat(timespec="seconds"))
