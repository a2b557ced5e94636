"""WhatsApp's webhook: Meta's verification, the signature checked on the raw body before
anything is read, and bodies parsed into Sada's events and status changes, posted by the
fake Graph API to a small server mounting the functions as the runner will."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.channels.whatsapp import webhook
from bot.channels.whatsapp.transport import WhatsAppTransport, message_number
from bot.channels.whatsapp.webhook import Parsed, parse, signature_status, verify
from bot.conversation.events import Media, Pressed, Typed
from bot.messaging.transport import Button
from tests.fakegraph import FakeGraphApi

AMAL = "971501234567"


@dataclass
class Endpoint:
    """What a runner does with the functions: verify, check the signature, then parse."""

    graph: FakeGraphApi
    parsed: list[Parsed] = field(default_factory=list)
    parse_calls: int = 0

    async def get(self, request: web.Request) -> web.Response:
        status, text = verify(request.query, "the-verify-token")
        return web.Response(status=status, text=text)

    async def post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        status = signature_status(raw, request.headers.get(webhook.SIGNATURE_HEADER),
                                  self.graph.app_secret)
        if status != 200:
            return web.Response(status=status)
        self.parse_calls += 1
        self.parsed.append(parse(raw, self.graph.phone_number_id))
        return web.Response(status=200)


@pytest.fixture
async def endpoint(graph: FakeGraphApi) -> AsyncIterator[Endpoint]:
    found = Endpoint(graph)
    app = web.Application()
    app.router.add_get("/whatsapp", found.get)
    app.router.add_post("/whatsapp", found.post)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    graph.webhook_url = str(server.make_url("/whatsapp"))
    try:
        yield found
    finally:
        await server.close()


async def test_meta_verifies_the_webhook_with_our_token() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert verify(query, "tok") == (200, "1158201444")
    assert verify({**query, "hub.verify_token": "other"}, "tok")[0] == 403
    assert verify({**query, "hub.mode": "unsubscribe"}, "tok")[0] == 403
    assert verify({}, "tok")[0] == 403


async def test_verification_over_http(graph: FakeGraphApi, endpoint: Endpoint) -> None:
    assert graph.webhook_url is not None
    async with aiohttp.ClientSession() as session:
        async with session.get(graph.webhook_url, params={
                "hub.mode": "subscribe", "hub.verify_token": "the-verify-token",
                "hub.challenge": "42"}) as answer:
            assert (answer.status, await answer.text()) == (200, "42")
        async with session.get(graph.webhook_url, params={
                "hub.mode": "subscribe", "hub.verify_token": "guess",
                "hub.challenge": "42"}) as answer:
            assert answer.status == 403


async def test_messages_presses_and_media_become_events(
    graph: FakeGraphApi, endpoint: Endpoint, transport: WhatsAppTransport
) -> None:
    amal = graph.user(AMAL, "Amal")
    await amal.send("۹ عالی")
    await transport.send_text(AMAL, "Again?", ((Button("Yes", "s1:yes"),
                                                Button("No", "s1:no")),))
    await transport.send_text(AMAL, "Why?", tuple((Button(f"R{i}", f"s1:{i}"),)
                                                   for i in range(5)))
    buttons, rows = graph.sent(AMAL)
    await amal.press(buttons, "s1:no")
    await amal.choose(rows, "s1:3")
    await amal.send_media("sticker")
    await amal.send_media("image")
    events = [e for p in endpoint.parsed for e in p.events]
    assert all(p.error is None for p in endpoint.parsed)
    typed, pressed, chosen, sticker, image = events
    assert isinstance(typed, Typed) and typed.text == "۹ عالی" and typed.chat_id == AMAL
    assert typed.user.id == AMAL and typed.user.first_name == "Amal"
    assert isinstance(pressed, Pressed) and pressed.data == "s1:no"
    assert pressed.message_id == message_number(buttons["id"])
    assert isinstance(chosen, Pressed) and chosen.data == "s1:3"
    assert chosen.message_id == message_number(rows["id"])
    assert isinstance(sticker, Media) and sticker.kind == "sticker"
    assert isinstance(image, Media) and image.kind == "photo"
    received = endpoint.parsed[0].received[0]
    assert received.event.update_id == message_number(received.wamid)
    assert received.at is not None


async def test_a_redelivered_message_has_the_same_update_id(
    graph: FakeGraphApi, endpoint: Endpoint
) -> None:
    body = graph.message_body(graph.user(AMAL), "text", {"text": {"body": "hi"}})
    assert await graph.post_webhook(body) == 200
    assert await graph.post_webhook(body) == 200
    first, again = (p.events[0] for p in endpoint.parsed)
    assert first.update_id == again.update_id is not None
    other = graph.message_body(graph.user(AMAL), "text", {"text": {"body": "hi"}})
    assert await graph.post_webhook(other) == 200
    assert endpoint.parsed[-1].events[0].update_id != first.update_id


async def test_a_forged_or_missing_signature_is_refused_before_parsing(
    graph: FakeGraphApi, endpoint: Endpoint
) -> None:
    body = graph.message_body(graph.user(AMAL), "text", {"text": {"body": "hi"}})
    raw = json.dumps(body).encode()
    forged = "sha256=" + "0" * 64
    assert await graph.post_webhook(raw, signature=forged) == 403
    assert await graph.post_webhook(raw, signature="") == 401
    assert await graph.post_webhook(raw, signature="md5=abc") == 401
    # signed for another body: the signature covers the exact bytes
    assert await graph.post_webhook(raw + b" ", signature=graph.signature(raw)) == 403
    assert await graph.post_webhook(b"not json", signature=forged) == 403
    assert endpoint.parse_calls == 0
    assert await graph.post_webhook(raw) == 200 and endpoint.parse_calls == 1


def test_signature_status_without_a_server() -> None:
    body = b'{"object": "whatsapp_business_account"}'
    good = webhook.signature(body, "secret")
    assert signature_status(body, good, "secret") == 200
    assert signature_status(body, good.upper().replace("SHA256", "sha256"), "secret") == 200
    assert signature_status(body, good, "another secret") == 403
    assert signature_status(body, None, "secret") == 401


async def test_statuses_with_their_codes(
    graph: FakeGraphApi, endpoint: Endpoint, transport: WhatsAppTransport
) -> None:
    graph.wrote(AMAL)
    sent = await transport.send(AMAL, "Hello", None)
    for status, code in (("sent", None), ("delivered", None), ("read", None),
                         ("failed", 131026), ("failed", 131049), ("failed", 131050),
                         ("failed", 130429), ("failed", 131056), ("failed", 131048)):
        assert await graph.post_webhook(graph.status_body(sent.wamid, status, code)) == 200
    changes = [s for p in endpoint.parsed for s in p.statuses]
    assert [(s.status, s.error_code) for s in changes] == [
        ("sent", None), ("delivered", None), ("read", None), ("failed", 131026),
        ("failed", 131049), ("failed", 131050), ("failed", 130429), ("failed", 131056),
        ("failed", 131048)]
    assert {s.wamid for s in changes} == {sent.wamid}
    assert {s.message_id for s in changes} == {sent.id}  # what send_text returned
    assert {s.recipient for s in changes} == {AMAL}
    assert changes[3].error == "Message Undeliverable."
    assert all(p.events == [] and p.error is None for p in endpoint.parsed)


@pytest.mark.parametrize(("body", "says"), [
    (b"", "the webhook body is not JSON"),
    (b"\xff\xfe", "the webhook body is not JSON"),
    (b"[1, 2]", "not a whatsapp_business_account notification"),
    (b'{"object": "page"}', "not a whatsapp_business_account notification"),
    (b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",'
     b' "value": {"messages": [{"from": "9715", "type": "text"}]}}]}]}',
     "a message without 'id' was left out"),
    (b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",'
     b' "value": {"messages": [{"id": "w", "from": "9715", "type": "text", "text": 3}]}}]}]}',
     "a message without 'body' was left out"),
    (b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",'
     b' "value": {"statuses": [{"id": "w", "status": "exploded"}]}}]}]}',
     "a status without a known status ('exploded') was left out"),
    (b'{"object": "whatsapp_business_account", "entry": "x"}', None),
    (b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",'
     b' "value": {"errors": [{"code": 131000, "title": "Something went wrong"}]}}]}]}',
     "WhatsApp reports error 131000: Something went wrong"),
])
def test_a_malformed_body_is_one_line_never_an_exception(body: bytes, says: str | None) -> None:
    parsed = parse(body)
    assert parsed.events == [] and parsed.statuses == []
    if says is None:
        assert parsed.error is None
    else:
        assert parsed.error is not None and says in parsed.error
    assert parsed.error is None or "\n" not in parsed.error


def test_other_numbers_and_fields_are_left_out(graph: FakeGraphApi) -> None:
    body = graph.message_body(graph.user(AMAL), "text", {"text": {"body": "hi"}})
    raw = json.dumps(body).encode()
    assert len(parse(raw, graph.phone_number_id).events) == 1
    assert parse(raw, "999").events == []
    body["entry"][0]["changes"][0]["field"] = "message_template_status_update"
    assert parse(json.dumps(body).encode()).events == []


def test_reactions_are_not_answers_and_voice_is_voice(graph: FakeGraphApi) -> None:
    amal = graph.user(AMAL)
    reaction = graph.message_body(amal, "reaction", {"reaction": {"message_id": "w",
                                                                  "emoji": "👍"}})
    assert parse(json.dumps(reaction).encode()).events == []
    voice = graph.message_body(amal, "audio", {"audio": {"id": "1", "voice": True}})
    [event] = parse(json.dumps(voice).encode()).events
    assert isinstance(event, Media) and event.kind == "voice"
    unsupported = graph.message_body(amal, "unsupported", {"errors": [{"code": 131051}]})
    [event] = parse(json.dumps(unsupported).encode()).events
    assert isinstance(event, Media)


@pytest.mark.parametrize(("number", "language"), [
    ("989121234567", "fa"), ("93701234567", "fa"), ("966551234567", "ar"),
    ("201001234567", "ar"), ("971501234567", "ar"), ("212612345678", "ar"),
    ("447700900123", None), ("15551234567", None), ("2348012345678", None),
])
def test_the_numbers_country_is_the_first_guess_of_the_language(
    number: str, language: str | None
) -> None:
    assert webhook.language_of_number(number) == language
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": "1"},
            "contacts": [{"wa_id": number, "profile": {"name": "Sara"}}],
            "messages": [{"from": number, "id": "wamid.X", "timestamp": "1764490000",
                          "type": "text", "text": {"body": "سلام"}}]}}]}]}).encode()
    [received] = parse(body, "1").received
    assert received.event.user.language_code == language
