"""Follow-ups written when they are sent: the contact's language at that moment, the
subject as it is then (a row whose invitation was completed is cancelled, not sent), and the
row's channel (a start button where it has buttons, else the link in the text)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from bot.channels.telegram.channel import CHANNEL as TELEGRAM_CHANNEL
from bot.channels.whatsapp.settings import Template
from bot.flow.loader import load_flow
from bot.flow.model import Flow
from bot.followups.actions import add_action
from bot.followups.dates import format_date
from bot.followups.dispatcher import Dispatcher, DispatchReport, dispatch_until_idle
from bot.followups.invite import Audience, invite_contacts
from bot.followups.reminders import plan_reminders
from bot.followups.render import Fail, Message, Skip, TemplateMessage, Templates, render
from bot.i18n import Translator
from bot.messaging.capabilities import Capabilities
from bot.messaging.registry import CHANNELS, Channel, DeepLinks, Registry
from bot.messaging.transport import Button
from storage.db import Database
from storage.models import Invitation, Outbox
from storage.repo import Store
from tests.followups.outbox_fakes import FakeClock, RecordingTransport, rendered, unpaced
from tests.followups.test_actions import B2B, TEXTS, population, spec
from tests.followups.test_invite import flow

SUNDAY_10 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # inside the 09:00-18:00 window


@pytest.fixture
def review() -> Flow:
    return flow(account_limit=None)


# A channel without buttons that links to its bot (a WhatsApp-like one, for the test only).
SMS = Channel("sms", "SMS", Capabilities(
    text_length=1600, text_counting="characters", buttons_per_row=0, buttons_total=0,
    button_label=0, callback_data=0, editable=False, messages_per_second=10.0,
    messages_per_chat_per_second=1.0),
    links=DeepLinks(url="https://sms.example/{bot}?start={payload}",
                    payload_characters="A-Za-z0-9_-", payload_length=64, button="x:{payload}"))


def dispatcher(database: Database, transport: RecordingTransport, clock: FakeClock,
               flows: dict[str, Flow], **options: object) -> Dispatcher:
    return Dispatcher(database, {transport.channel: transport}, clock=clock.now,
                      sleep=clock.sleep, limiters={transport.channel: unpaced()},
                      worker_id="test", flows=flows, **options)  # type: ignore[arg-type]


async def invited(database: Database, store: Store, the_flow: Flow, chat: str,
                  lang: str) -> Invitation:
    contact = await store.upsert_contact("telegram", chat, first_name="Sara", language=lang,
                                         now=SUNDAY_10)
    assert contact.id is not None
    await invite_contacts(database, flow=the_flow, audience=Audience(contact_ids=(contact.id,)),
                          at=SUNDAY_10, context={}, now=SUNDAY_10, bot_username="sada_test_bot",
                          links_out=None)
    async with database.session() as s, s.begin():
        return (await s.exec(select(Invitation).where(
            Invitation.contact_id == contact.id))).one()


async def rows(database: Database, kind: str) -> list[Outbox]:
    async with database.session() as s, s.begin():
        return list((await s.exec(select(Outbox).where(Outbox.kind == kind)
                                  .order_by(col(Outbox.id)))).all())


async def test_a_language_changed_after_planning_is_the_one_written_in(
    database: Database, store: Store, review: Flow
) -> None:
    invitation = await invited(database, store, review, "501", "fa")
    [row] = await rows(database, "invitation")
    assert row.text is None  # planned as an intent
    await store.set_contact_flags(invitation.contact_id, language="en", now=SUNDAY_10)
    clock = FakeClock(SUNDAY_10 + timedelta(minutes=1))
    transport = RecordingTransport(clock)
    flows = {review.id: review}
    assert (await dispatch_until_idle(dispatcher(database, transport, clock, flows))).sent == 1
    [sent] = transport.delivered
    assert "Account review" in sent.text and "بازبینی" not in sent.text
    assert sent.keyboard == ((Button("Start the survey", f"s1:g:{invitation.token}"),),)

    # two days on, the reminder is planned; before it goes they switch to Arabic
    tuesday = SUNDAY_10 + timedelta(days=2, minutes=5)
    assert (await plan_reminders(database, now=tuesday, flows=flows)).planned == 1
    await store.set_contact_flags(invitation.contact_id, language="ar", now=tuesday)
    clock.at = tuesday + timedelta(minutes=1)
    assert (await dispatch_until_idle(dispatcher(database, transport, clock, flows))).sent == 1
    reminder = transport.delivered[-1]
    assert "مراجعة الحساب" in reminder.text and "Account review" not in reminder.text
    assert reminder.keyboard == ((Button(Translator("ar").gettext("Start the survey"),
                                         f"s1:g:{invitation.token}"),),)


async def test_a_follow_up_is_written_in_the_language_they_have_when_it_goes(
    database: Database, store: Store
) -> None:
    people = await population(store)
    b2b = load_flow(B2B).flow
    await add_action(database, spec(segment="gold"), flow=b2b, now=SUNDAY_10)
    [row] = [r for r in await rows(database, "followup") if r.contact_id == people.sara]
    flows = {b2b.id: b2b}
    before = await rendered(database, row, flows)
    assert isinstance(before, Message) and "اکنون برای هر ارسال" in before.text  # Persian
    await store.set_contact_flags(people.sara, language="en", now=SUNDAY_10)
    after = await rendered(database, row, flows)
    assert isinstance(after, Message) and after.keyboard is None
    assert after.text.startswith("Thank you for answering")
    assert "We now send SMS tracking for every delivery." in after.text


async def test_a_reminder_whose_invitation_was_completed_is_cancelled_with_its_reason(
    database: Database, store: Store, review: Flow
) -> None:
    invitation = await invited(database, store, review, "502", "fa")
    clock = FakeClock(SUNDAY_10 + timedelta(minutes=1))
    transport = RecordingTransport(clock)
    flows = {review.id: review}
    await dispatch_until_idle(dispatcher(database, transport, clock, flows))
    tuesday = SUNDAY_10 + timedelta(days=2, minutes=5)
    assert (await plan_reminders(database, now=tuesday, flows=flows)).planned == 1
    # completed in a way that left its reminder queued (the row was already claimed, say)
    async with database.session() as s, s.begin():
        await s.exec(update(Invitation).where(col(Invitation.id) == invitation.id)  # type: ignore[call-overload]
                     .values(status="completed"))
    clock.at = tuesday + timedelta(minutes=1)
    report = await dispatch_until_idle(dispatcher(database, transport, clock, flows))
    assert (report.claimed, report.sent, report.skipped, report.failed) == (1, 0, 1, 0)
    assert len(transport.delivered) == 1  # the invitation only
    [reminder] = await rows(database, "reminder")
    assert (reminder.status, reminder.attempts, reminder.locked_until) == ("cancelled", 0, None)
    assert reminder.last_error == (f"invitation #{invitation.id} is completed (no reason "
                                   "given): its reminder is not needed")


async def test_a_flow_no_longer_loaded_cancels_its_invitation(
    database: Database, store: Store, review: Flow
) -> None:
    await invited(database, store, review, "503", "en")
    clock = FakeClock(SUNDAY_10 + timedelta(days=1))  # Monday: English weeks
    transport = RecordingTransport(clock)
    report = await dispatch_until_idle(dispatcher(database, transport, clock, {}))
    assert report == DispatchReport(claimed=1, skipped=1)
    [row] = await rows(database, "invitation")
    assert row.status == "cancelled" and transport.delivered == []
    assert "flow account-review is no longer loaded" in (row.last_error or "")


async def test_a_channel_without_buttons_gets_the_link_in_the_text(
    database: Database, store: Store, review: Flow
) -> None:
    invitation = await invited(database, store, review, "504", "en")
    async with database.session() as s, s.begin():  # as if its identity were on SMS
        await s.exec(update(Outbox).values(channel="sms"))  # type: ignore[call-overload]
    clock = FakeClock(SUNDAY_10 + timedelta(days=1))  # Monday: English weeks
    transport = RecordingTransport(clock, channel="sms")
    registry = Registry([TELEGRAM_CHANNEL, SMS])
    sends = dispatcher(database, transport, clock, {review.id: review}, registry=registry,
                       bot_usernames={"sms": "sada_sms_bot"})
    assert (await dispatch_until_idle(sends)).sent == 1
    [sent] = transport.delivered
    assert sent.keyboard is None
    link = f"https://sms.example/sada_sms_bot?start={invitation.token}"
    assert f"Open this link when you are ready: {link}" in sent.text
    assert "Tap the button" not in sent.text

    # no username known for it, or a channel without links (the console): what to send
    [row] = await rows(database, "invitation")
    for channel, usernames, chosen in (("sms", {}, registry), ("console", {}, CHANNELS)):
        row.channel = channel
        message = await rendered(database, row, {review.id: review}, registry=chosen,
                                 bot_usernames=usernames)
        assert isinstance(message, Message) and message.keyboard is None
        assert f"Send /start {invitation.token} when you are ready." in message.text


async def test_a_row_about_a_deleted_action_is_skipped(
    database: Database, store: Store
) -> None:
    people = await population(store)
    b2b = load_flow(B2B).flow
    action, _ = await add_action(database, spec(segment="gold"), flow=b2b, now=SUNDAY_10)
    [row] = [r for r in await rows(database, "followup") if r.contact_id == people.sara]
    row.action_id = (action.id or 0) + 1000  # as if deleted (the foreign key would cascade)
    message = await rendered(database, row, {b2b.id: b2b})
    assert message == Skip(f"action #{row.action_id} no longer exists")


# A channel's templates as its settings give them (WhatsApp's SADA_WHATSAPP__TEMPLATES).
def templates_of(book: dict[str, dict[str, Template]]) -> Templates:
    def lookup(kind: str, language: str) -> Template | None:
        found = book.get(kind, {})
        return found.get(language) or found.get("en")
    return lookup


async def windowed(database: Database, row: Outbox, flows: dict[str, Flow],
                   book: dict[str, dict[str, Template]], now: datetime) -> object:
    async with database.session() as s, s.begin():
        return await render(s, row, flows=flows, now=now, templates=templates_of(book))


async def test_a_follow_up_outside_the_window_is_its_template_filled_from_the_action(
    database: Database, store: Store
) -> None:
    people = await population(store)
    b2b = load_flow(B2B).flow
    await add_action(database, spec(segment="gold", promised="2026-12-12"), flow=b2b,
                     now=SUNDAY_10)
    [row] = [r for r in await rows(database, "followup") if r.contact_id == people.sara]
    row.channel, row.address = "whatsapp", "971501112233"  # never wrote from it
    book = {"followup": {"fa": Template(name="sada_followup", language="fa", parameters=(
        "first_name", "survey", "action", "due", "segment"))}}
    message = await windowed(database, row, {b2b.id: b2b}, book, SUNDAY_10)
    assert isinstance(message, Message) and message.outside_window
    assert message.template == TemplateMessage(
        name="sada_followup", language="fa", button=None, parameters=(
            "1001", b2b.title["fa"], TEXTS["fa"], format_date(date(2026, 12, 12), "fa"),
            "gold"))
    assert "\n" not in "".join(message.template.parameters)
    # the free text is still written, for the moment they write again
    assert TEXTS["fa"] in message.text

    # a parameter a follow-up does not have is a configuration error, in one line
    book["followup"]["fa"] = Template(name="sada_followup", language="fa",
                                      parameters=("first_name", "score"))
    failed = await windowed(database, row, {b2b.id: b2b}, book, SUNDAY_10)
    assert failed == Fail(
        "the followup template sada_followup (fa) names score, which a followup does not "
        "have: use first_name, name, company, role, segment, survey, action, summary, due "
        "in SADA_WHATSAPP__TEMPLATES")


async def test_within_the_window_the_text_goes_and_the_template_waits_as_the_fallback(
    database: Database, store: Store
) -> None:
    people = await population(store)
    b2b = load_flow(B2B).flow
    await add_action(database, spec(segment="gold"), flow=b2b, now=SUNDAY_10)
    [row] = [r for r in await rows(database, "followup") if r.contact_id == people.sara]
    await store.upsert_contact("whatsapp", "971501112233", now=SUNDAY_10,
                               seen_at=SUNDAY_10 - timedelta(hours=23))
    row.channel, row.address = "whatsapp", "971501112233"
    book = {"followup": {"en": Template(name="sada_followup", language="en",
                                        parameters=("due",))}}
    message = await windowed(database, row, {b2b.id: b2b}, book, SUNDAY_10)
    assert isinstance(message, Message) and not message.outside_window
    assert message.template == TemplateMessage("sada_followup", "en", ("–",))  # no date
    # an hour later the window has closed: the same row goes as the template
    later = await windowed(database, row, {b2b.id: b2b}, book, SUNDAY_10 + timedelta(hours=1))
    assert isinstance(later, Message) and later.outside_window
    # and with no template, the text goes while it may, with the reason kept for a refusal
    bare = await windowed(database, row, {b2b.id: b2b}, {}, SUNDAY_10)
    assert isinstance(bare, Message) and bare.template is None and not bare.outside_window
    assert bare.no_template is not None and "SADA_WHATSAPP__TEMPLATES" in bare.no_template


async def test_an_overdue_alert_to_a_staff_number_is_outside_the_window_unless_they_wrote(
    database: Database, store: Store
) -> None:
    await population(store)
    b2b = load_flow(B2B).flow
    action, _ = await add_action(database, spec(segment="gold", promised="2026-12-12"),
                                 flow=b2b, now=SUNDAY_10)
    staff = "971509998877"
    row = Outbox(key="overdue:test", kind="overdue", channel="whatsapp", address=staff,
                 due_at=SUNDAY_10, action_id=action.id, created_at=SUNDAY_10)
    book = {"overdue": {"en": Template(name="sada_action_overdue", language="en",
                                       parameters=("action", "due", "told", "action_id"))}}
    message = await windowed(database, row, {b2b.id: b2b}, book, SUNDAY_10)
    assert isinstance(message, Message) and message.outside_window
    assert message.template == TemplateMessage("sada_action_overdue", "en", (
        TEXTS["en"], format_date(date(2026, 12, 12), "en"), "0", f"#{action.id}"))
    # a staff member who wrote to the bot from that number an hour ago gets the text
    await store.upsert_contact("whatsapp", staff, now=SUNDAY_10,
                               seen_at=SUNDAY_10 - timedelta(hours=1))
    message = await windowed(database, row, {b2b.id: b2b}, book, SUNDAY_10)
    assert isinstance(message, Message) and not message.outside_window
    # on a channel without a window nothing of this applies
    row.channel = "telegram"
    plain = await windowed(database, row, {b2b.id: b2b}, book, SUNDAY_10)
    assert isinstance(plain, Message) and plain.template is None and not plain.outside_window
