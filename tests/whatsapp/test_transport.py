"""The WhatsApp transport against the fake Graph API: what each keyboard becomes (reply
buttons, a list, a long question split), templates, files, and every error code mapped
onto bot.messaging's channel-neutral errors."""

from __future__ import annotations

import json
import socket

import pytest

from bot.channels.whatsapp.transport import (
    PAIR_RATE_WAIT,
    SPAM_RATE_WAIT,
    THROUGHPUT_WAIT,
    GraphApiError,
    GraphClient,
    PairRateLimited,
    SpamPaused,
    WhatsAppTransport,
    message_number,
)
from bot.channels.whatsapp.webhook import parse
from bot.messaging.registry import CHANNELS
from bot.messaging.transport import (
    Blocked,
    Button,
    Keyboard,
    OutsideWindow,
    Refused,
    RetryAfter,
    Transient,
)
from tests.fakegraph import WINDOW_SECONDS, FakeGraphApi
from tests.whatsapp.conftest import client_of

AMAL = "971501234567"
YES_NO: Keyboard = ((Button("Yes", "s1:a:1:0:yes:sig"), Button("No", "s1:a:1:0:no:sig")),)


def _buttons(count: int, label: str = "Option") -> Keyboard:
    return tuple((Button(f"{label} {i}", f"s1:a:1:0:{i}:sig"),) for i in range(count))


async def test_it_is_the_registered_whatsapp_channel(transport: WhatsAppTransport) -> None:
    assert transport.channel == "whatsapp" and "whatsapp" in CHANNELS


async def test_text_and_reply_buttons(graph: FakeGraphApi, transport: WhatsAppTransport) -> None:
    graph.wrote(AMAL)
    plain = await transport.send_text(AMAL, "Hello <b> & *you*", None)
    asked = await transport.send(AMAL, "Would you recommend us?", YES_NO)
    first, second = graph.sent(AMAL)
    assert first["type"] == "text" and first["text"]["body"] == "Hello <b> & *you*"
    assert plain == message_number(first["id"])
    assert asked.wamid == second["id"] and asked.id == message_number(second["id"])
    assert second["interactive"] == {
        "type": "button", "body": {"text": "Would you recommend us?"},
        "action": {"buttons": [
            {"type": "reply", "reply": {"id": "s1:a:1:0:yes:sig", "title": "Yes"}},
            {"type": "reply", "reply": {"id": "s1:a:1:0:no:sig", "title": "No"}}]}}


async def test_more_than_three_buttons_or_long_labels_become_a_list(
    graph: FakeGraphApi, transport: WhatsAppTransport
) -> None:
    graph.wrote(AMAL)
    await transport.send_text(AMAL, "Which area?", _buttons(10))
    long = "Delivery times and the way orders are tracked"  # 46 characters
    await transport.send_text(AMAL, "Why?", ((Button(long, "s1:x"), Button("Price", "s1:y")),))
    ten, cut = (m["interactive"] for m in graph.sent(AMAL))
    assert ten["type"] == "list" and ten["action"]["button"] == "Choose"
    rows = ten["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows] == [f"Option {i}" for i in range(10)]
    assert all("description" not in r for r in rows)
    [long_row, price] = cut["action"]["sections"][0]["rows"]
    assert long_row == {"id": "s1:x", "title": "Delivery times and the…", "description": long}
    assert len(long_row["title"]) <= 24 and price == {"id": "s1:y", "title": "Price"}


async def test_more_than_ten_options_is_refused(
    graph: FakeGraphApi, transport: WhatsAppTransport
) -> None:
    graph.wrote(AMAL)
    with pytest.raises(Refused, match="11 buttons fit neither"):
        await transport.send_text(AMAL, "0-10?", _buttons(11))
    assert graph.requests == []  # refused before anything was sent


async def test_a_long_question_goes_as_text_then_its_buttons(
    graph: FakeGraphApi, transport: WhatsAppTransport
) -> None:
    graph.wrote(AMAL)
    question = "ق" * 1500
    sent = await transport.send(AMAL, question, YES_NO)
    text, buttons = graph.sent(AMAL)
    assert text["text"]["body"] == question
    assert buttons["interactive"]["body"]["text"] == "Your answer:"
    assert sent.wamid == buttons["id"]  # a press refers to the message with the buttons


async def test_the_fake_enforces_metas_limits(graph: FakeGraphApi) -> None:
    """What the fake refuses is what Meta refuses, so the transport's choices are tested."""
    graph.wrote(AMAL)
    async with client_of(graph) as client:
        transport = WhatsAppTransport(client, menu="A menu label over twenty characters")
        await transport.send_text(AMAL, "x", _buttons(4))
        assert len(graph.sent(AMAL)[0]["interactive"]["action"]["button"]) == 20
        with pytest.raises(GraphApiError, match=r"131009.*10"):
            await client.message(AMAL, "interactive", {
                "type": "list", "body": {"text": "x"}, "action": {
                    "button": "Pick", "sections": [{"rows": [
                        {"id": str(i), "title": str(i)} for i in range(11)]}]}})
        with pytest.raises(GraphApiError, match="1024"):
            await client.message(AMAL, "interactive", {
                "type": "button", "body": {"text": "x" * 1025}, "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "a", "title": "A"}}]}})
        with pytest.raises(GraphApiError, match="20 characters"):
            await client.message(AMAL, "interactive", {
                "type": "button", "body": {"text": "x"}, "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "a", "title": "t" * 21}}]}})
        with pytest.raises(Refused, match="4096"):
            await transport.send_text(AMAL, "x" * 4097, None)


async def test_templates_go_outside_the_window_where_text_is_refused(
    graph: FakeGraphApi, transport: WhatsAppTransport
) -> None:
    graph.wrote(AMAL, seconds_ago=WINDOW_SECONDS + 60)
    with pytest.raises(OutsideWindow, match="131047"):
        await transport.send_text(AMAL, "Your survey", None)
    sent = await transport.send_template(AMAL, "sada_invitation", "ar", ["أمل", "B2B"],
                                         button_payload="s1:g:TOKEN")
    [template] = graph.sent(AMAL)
    assert template["id"] == sent.wamid
    assert template["template"] == {
        "name": "sada_invitation", "language": {"code": "ar"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "أمل"},
                                            {"type": "text", "text": "B2B"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0",
             "parameters": [{"type": "payload", "payload": "s1:g:TOKEN"}]}]}
    # pressing its button comes back as a press carrying the payload, and opens the window
    body = await graph.user(AMAL).press_template_button(graph.sent(AMAL)[0])
    [event] = parse(json.dumps(body).encode()).events
    assert getattr(event, "data", None) == "s1:g:TOKEN"
    await transport.send_text(AMAL, "Welcome", None)


async def test_an_unapproved_template_is_refused() -> None:
    async with FakeGraphApi(templates={("sada_reminder", "en"): 1}) as graph, \
            client_of(graph) as client:
        transport = WhatsAppTransport(client)
        with pytest.raises(Refused, match="132001"):
            await transport.send_template(AMAL, "sada_reminder", "fa", ["x"])
        with pytest.raises(Refused, match="132000"):
            await transport.send_template(AMAL, "sada_reminder", "en", [])
        await transport.send_template(AMAL, "sada_reminder", "en", ["Amal"])


async def test_files_are_uploaded_then_sent(
    graph: FakeGraphApi, transport: WhatsAppTransport
) -> None:
    graph.wrote(AMAL)
    await transport.send_document(AMAL, "sada-my-data.json", b'{"a": 1}', "Yours")
    await transport.send_photo(AMAL, "trend.png", b"\x89PNG....", None)
    document, image = graph.sent(AMAL)
    assert graph.media[document["document"]["id"]] == (
        "sada-my-data.json", "application/json", b'{"a": 1}')
    assert document["document"]["filename"] == "sada-my-data.json"
    assert document["document"]["caption"] == "Yours"
    assert graph.media[image["image"]["id"]] == ("trend.png", "image/png", b"\x89PNG....")
    assert "caption" not in image["image"]


async def test_no_edits_and_presses_need_no_answer(
    graph: FakeGraphApi, transport: WhatsAppTransport
) -> None:
    with pytest.raises(Refused, match="cannot be edited"):
        await transport.edit(AMAL, 1, "x", None)
    await transport.answer_press("wamid.X", "Noted")
    await transport.mark_read("wamid.IN")
    assert graph.reads == ["wamid.IN"] and graph.sent() == []


@pytest.mark.parametrize(("code", "error", "seconds"), [
    (131047, OutsideWindow, None),
    (131026, Blocked, None),
    (131049, Blocked, None),
    (131050, Blocked, None),
    (130429, RetryAfter, THROUGHPUT_WAIT),
    (131056, PairRateLimited, PAIR_RATE_WAIT),  # a RetryAfter for this person only
    (131048, SpamPaused, SPAM_RATE_WAIT),  # a RetryAfter pausing the channel long
    (132001, Refused, None),
    (131000, Transient, None),
    (500, Transient, None),
    (190, Refused, None),
])
async def test_each_error_code_is_a_channel_neutral_error(
    graph: FakeGraphApi, transport: WhatsAppTransport, code: int,
    error: type[Exception], seconds: float | None,
) -> None:
    graph.wrote(AMAL)
    graph.fail_next(code)
    with pytest.raises(error) as raised:
        await transport.send_text(AMAL, "x", YES_NO)
    assert type(raised.value) is error  # not merely a subclass (OutsideWindow is a Refused)
    if error in (PairRateLimited, SpamPaused):
        assert isinstance(raised.value, RetryAfter)  # whoever knows only RetryAfter waits
    if seconds is not None:
        assert isinstance(raised.value, RetryAfter) and raised.value.seconds == seconds
    await transport.send_text(AMAL, "and then it goes", None)  # one failure, then fine


async def test_an_undeliverable_number_stays_blocked(
    graph: FakeGraphApi, transport: WhatsAppTransport
) -> None:
    graph.wrote(AMAL)
    graph.block(AMAL)
    for _ in range(2):
        with pytest.raises(Blocked, match="131026"):
            await transport.send_text(AMAL, "x", None)


async def test_the_fakes_rate_limits_answer_with_their_codes() -> None:
    async with FakeGraphApi(enforce_window=False, pair_seconds=6.0,
                            messages_per_second=2) as graph, client_of(graph) as client:
        transport = WhatsAppTransport(client)
        await transport.send_text(AMAL, "1", None)
        with pytest.raises(RetryAfter) as pair:
            await transport.send_text(AMAL, "2", None)
        assert pair.value.seconds == PAIR_RATE_WAIT
        await transport.send_text("966551234567", "1", None)
        with pytest.raises(RetryAfter) as throughput:
            await transport.send_text("201001234567", "1", None)
        assert throughput.value.seconds == THROUGHPUT_WAIT


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_lost_answer_or_no_server_is_transient(
    graph: FakeGraphApi, transport: WhatsAppTransport
) -> None:
    graph.wrote(AMAL)
    graph.lose_response_next()
    with pytest.raises(Transient):
        await transport.send_text(AMAL, "taken, but the answer was lost", None)
    assert graph.texts(AMAL) == ["taken, but the answer was lost"]
    async with GraphClient("1", "t", api_url=f"http://127.0.0.1:{_closed_port()}") as nowhere:
        with pytest.raises(Transient, match="unreachable"):
            await WhatsAppTransport(nowhere).send_text(AMAL, "x", None)
    async with client_of(graph, f"http://127.0.0.1:{_closed_port()}") as closed:
        with pytest.raises(Transient):
            await WhatsAppTransport(closed).send_document(AMAL, "a.json", b"{}", None)
