"""Messages outside the 24-hour window go as the configured template, chosen when the row is
written (bot.followups.render), through the real WhatsApp transport against the fake Graph
API; the template's button opens the survey; rate errors of one person or of the channel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.channels.whatsapp.settings import Template
from bot.channels.whatsapp.transport import (
    PAIR_RATE,
    SPAM_RATE,
    GraphClient,
    WhatsAppTransport,
)
from bot.channels.whatsapp.webhook import parse
from bot.conversation.controller import Controller
from bot.flow.loader import load_flow
from bot.flow.model import ChoiceQuestion, Flow
from bot.followups.dispatcher import Dispatcher, dispatch_until_idle
from bot.followups.invite import Audience, invite_contacts
from bot.i18n import Translator
from storage.db import Database
from storage.models import Invitation, Outbox
from storage.repo import Store
from tests.fakegraph import FakeGraphApi
from tests.followups.outbox_fakes import FakeClock, unpaced

# A Tuesday noon in UTC (the contacts here have no time zone): inside the default sending
# window (09:00-18:00) whatever the hour the tests run at, so each invitation is due at once.
# With the clock's time they failed from 18:00 to 09:00 UTC.
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

ROOT = Path(__file__).resolve().parents[2]
B2B = ROOT / "flows" / "b2b_supplier.yaml"
AMAL = "971501234567"
OMID = "971507654321"
DAY = 24 * 3600

INVITATION = {
    "en": Template(name="sada_invitation", language="en",
                   parameters=("first_name", "survey"), button=True),
    "ar": Template(name="sada_invitation", language="ar",
                   parameters=("first_name", "survey"), button=True),
}


@pytest.fixture
def b2b() -> Flow:
    return load_flow(B2B).flow


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphApi]:
    async with FakeGraphApi() as fake:
        yield fake


@pytest.fixture
async def client(graph: FakeGraphApi) -> AsyncIterator[GraphClient]:
    async with GraphClient(graph.phone_number_id, graph.access_token, api_url=graph.base_url,
                           api_version=graph.version) as client:
        yield client


def transport_of(client: GraphClient,
                 templates: Mapping[str, Mapping[str, Template]] | None = None
                 ) -> WhatsAppTransport:
    return WhatsAppTransport(client, menu="Choose", templates={"invitation": INVITATION}
                             if templates is None else templates)


def dispatcher(database: Database, transport: WhatsAppTransport, clock: FakeClock,
               b2b: Flow) -> Dispatcher:
    return Dispatcher(database, {"whatsapp": transport}, clock=clock.now, sleep=clock.sleep,
                      limiters={"whatsapp": unpaced()}, worker_id="test", flows={b2b.id: b2b})


async def invite(database: Database, store: Store, b2b: Flow, number: str, *, lang: str,
                 wrote: datetime | None, now: datetime) -> Invitation:
    """A WhatsApp contact who last wrote at `wrote` (None: never), invited now."""
    contact = await store.upsert_contact("whatsapp", number, first_name="Amal", language=lang,
                                         now=now, seen_at=wrote)
    assert contact.id is not None
    await invite_contacts(database, flow=b2b, audience=Audience(contact_ids=(contact.id,)),
                          at=now, context={}, now=now, bot_username=None, links_out=None)
    async with database.session() as s, s.begin():
        return (await s.exec(select(Invitation).where(
            Invitation.contact_id == contact.id))).one()


async def outbox_rows(database: Database) -> list[Outbox]:
    async with database.session() as s, s.begin():
        return list((await s.exec(select(Outbox).order_by(col(Outbox.id)))).all())


async def test_outside_the_window_the_invitation_goes_as_its_template_and_its_button_opens_the_survey(  # noqa: E501
    database: Database, store: Store, graph: FakeGraphApi, client: GraphClient, b2b: Flow
) -> None:
    now = NOW
    graph.wrote(AMAL, seconds_ago=2 * DAY)
    invitation = await invite(database, store, b2b, AMAL, lang="ar",
                              wrote=now - timedelta(days=2), now=now)
    transport = transport_of(client)
    report = await dispatch_until_idle(dispatcher(database, transport, FakeClock(now), b2b))
    assert (report.sent, report.failed) == (1, 0)
    [sent] = graph.sent(AMAL)
    assert sent["type"] == "template"
    assert sent["template"] == {
        "name": "sada_invitation", "language": {"code": "ar"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Amal"},
                                            {"type": "text", "text": b2b.title["ar"]}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0",
             "parameters": [{"type": "payload", "payload": f"s1:g:{invitation.token}"}]}]}
    [row] = await outbox_rows(database)
    assert row.status == "sent" and row.message_id is not None

    # Pressing its button opens the survey, through the controller, in Arabic.
    controller = await Controller.create(store, channel="whatsapp", flows_dir=ROOT / "flows",
                                         bot_username=graph.display_number,
                                         admin_ids=frozenset(), secret="test-secret")
    body = await graph.user(AMAL, "Amal").press_template_button(sent)
    [event] = parse(json.dumps(body).encode()).events
    assert getattr(event, "data", None) == f"s1:g:{invitation.token}"
    await controller.process(event, transport)
    shown = graph.texts(AMAL)[1:]
    assert any(b2b.questions[0].text["ar"][:12] in text for text in shown), shown

    # Its first question has six options: a list, under a menu button in the reader's words.
    question = graph.sent(AMAL)[-1]
    assert question["interactive"]["type"] == "list"
    assert question["interactive"]["action"]["button"] == Translator("ar").gettext("Choose")
    rows = question["interactive"]["action"]["sections"][0]["rows"]
    first = b2b.questions[0]
    assert isinstance(first, ChoiceQuestion) and len(rows) == len(first.options)
    body = await graph.user(AMAL, "Amal").choose(question, rows[0]["id"])
    [event] = parse(json.dumps(body).encode()).events
    await controller.process(event, transport)
    # The 0–10 question is asked to be typed; Arabic-Indic digits answer it.
    nps = graph.sent(AMAL)[-1]
    assert nps["type"] == "text" and "١٠" in nps["text"]["body"]
    body = await graph.user(AMAL, "Amal").send("٩")
    [event] = parse(json.dumps(body).encode()).events
    await controller.process(event, transport)
    export = await store.export_contact(invitation.contact_id)
    assert [(a["question_id"], a["value"]) for a in export["sessions"][0]["answers"]] == [
        (first.id, first.options[0].id), ("nps", 9)]


async def test_inside_the_window_the_invitation_is_free_text_with_its_start_button(
    database: Database, store: Store, graph: FakeGraphApi, client: GraphClient, b2b: Flow
) -> None:
    now = NOW
    graph.wrote(AMAL, seconds_ago=3600)
    invitation = await invite(database, store, b2b, AMAL, lang="en",
                              wrote=now - timedelta(hours=1), now=now)
    report = await dispatch_until_idle(dispatcher(database, transport_of(client),
                                                  FakeClock(now), b2b))
    assert report.sent == 1
    [sent] = graph.sent(AMAL)
    assert sent["type"] == "interactive" and sent["interactive"]["type"] == "button"
    assert "Hello Amal" in sent["interactive"]["body"]["text"]
    [button] = sent["interactive"]["action"]["buttons"]
    assert button["reply"] == {"id": f"s1:g:{invitation.token}", "title": "Start the survey"}


async def test_without_a_template_for_the_kind_the_row_fails_with_the_setting_to_add(
    database: Database, store: Store, graph: FakeGraphApi, client: GraphClient, b2b: Flow
) -> None:
    now = NOW
    await invite(database, store, b2b, AMAL, lang="ar", wrote=None, now=now)
    transport = transport_of(client, templates={"reminder": INVITATION})
    report = await dispatch_until_idle(dispatcher(database, transport, FakeClock(now), b2b))
    assert (report.sent, report.failed) == (0, 1)
    assert graph.sent(AMAL) == []  # nothing sent blindly
    [row] = await outbox_rows(database)
    assert (row.status, row.attempts) == ("failed", 0)
    assert row.last_error == (
        f"{AMAL} on whatsapp has not written within 24 hours and no invitation template is "
        "configured for ar or en: add one to SADA_WHATSAPP__TEMPLATES")
    assert "\n" not in row.last_error


async def test_an_english_template_stands_in_for_a_language_without_its_own(
    database: Database, store: Store, graph: FakeGraphApi, client: GraphClient, b2b: Flow
) -> None:
    now = NOW
    await invite(database, store, b2b, AMAL, lang="fa", wrote=None, now=now)
    report = await dispatch_until_idle(dispatcher(database, transport_of(client),
                                                  FakeClock(now), b2b))
    assert report.sent == 1
    [sent] = graph.sent(AMAL)
    assert sent["template"]["language"] == {"code": "en"}
    # the parameters still speak the contact's language: the survey's Persian title
    assert sent["template"]["components"][0]["parameters"][1]["text"] == b2b.title["fa"]


async def test_a_free_text_refused_as_outside_the_window_is_sent_again_as_the_template(
    database: Database, store: Store, graph: FakeGraphApi, client: GraphClient, b2b: Flow
) -> None:
    now = NOW
    # Sada saw them write an hour ago; WhatsApp counts otherwise (clock skew, a lost webhook)
    graph.wrote(AMAL, seconds_ago=DAY + 600)
    await invite(database, store, b2b, AMAL, lang="en", wrote=now - timedelta(hours=1),
                 now=now)
    report = await dispatch_until_idle(dispatcher(database, transport_of(client),
                                                  FakeClock(now), b2b))
    assert (report.sent, report.failed) == (1, 0)
    [sent] = graph.sent(AMAL)  # the refused text was not stored as sent
    assert sent["type"] == "template" and sent["template"]["name"] == "sada_invitation"
    assert [c.body["type"] for c in graph.calls() if c.body.get("to") == AMAL] == [
        "interactive", "template"]
    [row] = await outbox_rows(database)
    assert (row.status, row.attempts) == ("sent", 1)


async def test_a_pair_rate_limit_delays_only_its_row(
    database: Database, store: Store, graph: FakeGraphApi, client: GraphClient, b2b: Flow
) -> None:
    now = NOW
    for number in (AMAL, OMID):
        graph.wrote(number, seconds_ago=60)
        await invite(database, store, b2b, number, lang="en", wrote=now - timedelta(minutes=1),
                     now=now)
    graph.fail_next(PAIR_RATE, to=AMAL)
    clock = FakeClock(now)
    sender = dispatcher(database, transport_of(client), clock, b2b)
    report = await sender.run_once()
    assert (report.rate_limited, report.sent, report.failed) == (1, 1, 0)
    assert sender.channel_paused_until("whatsapp") is None  # the channel went on
    assert len(graph.sent(OMID)) == 1 and graph.sent(AMAL) == []
    rows = {r.address: r for r in await outbox_rows(database)}
    assert (rows[AMAL].status, rows[AMAL].attempts) == ("queued", 0)
    assert rows[AMAL].due_at == now + timedelta(seconds=6)
    clock.advance(seconds=6)
    assert (await dispatch_until_idle(sender)).sent == 1
    assert len(graph.sent(AMAL)) == 1


async def test_a_spam_rate_limit_pauses_the_channel(
    database: Database, store: Store, graph: FakeGraphApi, client: GraphClient, b2b: Flow
) -> None:
    now = NOW
    for number in (AMAL, OMID):
        graph.wrote(number, seconds_ago=60)
        await invite(database, store, b2b, number, lang="en", wrote=now - timedelta(minutes=1),
                     now=now)
    graph.fail_next(SPAM_RATE)
    sender = dispatcher(database, transport_of(client), FakeClock(now), b2b)
    report = await sender.run_once()
    assert (report.rate_limited, report.sent, report.released) == (1, 0, 1)
    assert sender.channel_paused_until("whatsapp") == now + timedelta(hours=1)
    assert graph.sent() == []
    assert {(r.status, r.attempts) for r in await outbox_rows(database)} == {("queued", 0)}


async def test_a_spam_pause_is_not_sat_out_in_the_chat_and_the_question_comes_back_next_time(
    database: Database, store: Store, graph: FakeGraphApi, client: GraphClient, b2b: Flow
) -> None:
    now = NOW
    invitation = await invite(database, store, b2b, AMAL, lang="en", wrote=None, now=now)
    transport = transport_of(client)
    controller = await Controller.create(store, channel="whatsapp", flows_dir=ROOT / "flows",
                                         bot_username=graph.display_number,
                                         admin_ids=frozenset(), secret="test-secret")
    amal = graph.user(AMAL, "Amal")
    graph.fail_next(SPAM_RATE, to=AMAL, times=2)  # the greeting and the question
    [event] = parse(json.dumps(await amal.send(f"/start {invitation.token}")).encode()).events
    async with asyncio.timeout(10):  # an hour's wait inside the lane would never end here
        await controller.process(event, transport)
    assert graph.sent(AMAL) == []
    assert [c.status for c in graph.calls()] == [400, 400]  # tried once each, not waited
    # their next message shows the question that did not go, instead of answering it
    [event] = parse(json.dumps(await amal.send("hello?")).encode()).events
    await controller.process(event, transport)
    question = graph.sent(AMAL)[-1]
    assert question["interactive"]["type"] == "list"
    assert b2b.questions[0].text["en"][:20] in question["interactive"]["body"]["text"]
    export = await store.export_contact(invitation.contact_id)
    assert export["sessions"][0]["answers"] == []


async def test_a_detractor_alert_to_a_staff_number_goes_as_the_alert_template(
    database: Database, store: Store, graph: FakeGraphApi, client: GraphClient, b2b: Flow
) -> None:
    now = NOW
    staff = "971509998877"  # never wrote to the bot: outside the window
    invitation = await invite(database, store, b2b, AMAL, lang="en", wrote=None, now=now)
    alert = Template(name="sada_staff_alert", language="en",
                     parameters=("contact", "score", "survey", "comment"))
    transport = transport_of(client, templates={"invitation": INVITATION,
                                                "alert": {"en": alert}})
    controller = await Controller.create(store, channel="whatsapp", flows_dir=ROOT / "flows",
                                         bot_username=graph.display_number,
                                         admin_ids=frozenset(), secret="test-secret",
                                         alert_to=[("whatsapp", staff)])
    amal = graph.user(AMAL, "Amal")

    async def says(body: dict[str, object]) -> None:
        [event] = parse(json.dumps(body).encode()).events
        await controller.process(event, transport)

    await says(await amal.send(f"/start {invitation.token}"))
    question = graph.sent(AMAL)[-1]
    await says(await amal.choose(question, question["interactive"]["action"]["sections"][0]
                                 ["rows"][0]["id"]))
    await says(await amal.send("3"))
    await says(await amal.send("Deliveries are\nalways late"))
    # the alert waits a little for the comment that follows a score
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=5))
    report = await dispatch_until_idle(dispatcher(database, transport, clock, b2b))
    assert (report.sent, report.failed) == (1, 0)
    [sent] = graph.sent(staff)
    assert sent["template"]["name"] == "sada_staff_alert"
    assert [p["text"] for p in sent["template"]["components"][0]["parameters"]] == [
        "Amal", "3", b2b.title["en"], "Deliveries are always late"]
    assert len(sent["template"]["components"]) == 1  # no button: staff open nothing
