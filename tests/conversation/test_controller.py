"""Telegram behaviour without a framework: a recording transport stands in for the Bot API
(the end-to-end tests run the real frameworks against the fake HTTP server)."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from bot.conversation.controller import Controller
from bot.conversation.events import Media, Pressed, Sender, Typed
from bot.conversation.staff import record_id
from bot.i18n import Translator
from bot.messaging.transport import Blocked, ChatRetryAfter, Keyboard, RetryAfter
from storage.repo import Store
from tests.bookings import count_bookings
from tests.conftest import project_flows

ROOT = Path(__file__).resolve().parents[2]
RLM = "\u200f"


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, Keyboard | None, int]] = []
        self.edits: list[tuple[int, int, str | None, Keyboard | None]] = []
        self.answers: list[tuple[str, str | None]] = []
        self.documents: list[tuple[int, str, bytes]] = []
        self.ids = itertools.count(100)
        self.fail: list[Exception] = []

    async def send_text(self, chat_id: int, text: str, keyboard: Keyboard | None) -> int:
        if self.fail:
            raise self.fail.pop(0)
        message_id = next(self.ids)
        self.sent.append((chat_id, text, keyboard, message_id))
        return message_id

    async def edit(self, chat_id: int, message_id: int, text: str | None,
                   keyboard: Keyboard | None) -> None:
        self.edits.append((chat_id, message_id, text, keyboard))

    async def answer_press(self, callback_id: str, text: str | None) -> None:
        self.answers.append((callback_id, text))

    async def send_document(self, chat_id: int, filename: str, content: bytes,
                            caption: str | None) -> None:
        self.documents.append((chat_id, filename, content))

    async def send_photo(self, chat_id: int, filename: str, content: bytes,
                         caption: str | None) -> None:
        self.documents.append((chat_id, filename, content))


class Chat:
    """One person talking to the core."""

    updates = itertools.count(5000)

    def __init__(self, core: Controller, transport: Recorder, chat_id: int, lang: str) -> None:
        self.core, self.transport, self.chat_id = core, transport, str(chat_id)
        self.user = Sender(str(chat_id), "Sara" if lang == "en" else "سارا", language_code=lang)

    async def send(self, text: str, update_id: int | None = None) -> Typed:
        event = Typed(update_id or next(self.updates), self.chat_id, self.user, text)
        await self.core.process(event, self.transport)
        return event

    async def press(self, label: str) -> None:
        """Press the button with this label on the last message that has a keyboard."""
        for _, _, keyboard, message_id in reversed(self.transport.sent):
            if keyboard:
                for row in keyboard:
                    for button in row:
                        if button.text == label or button.text.endswith(" " + label):
                            event = Pressed(next(self.updates), self.chat_id, self.user,
                                            f"cb{message_id}", message_id, button.data)
                            await self.core.process(event, self.transport)
                            return
                raise AssertionError(f"no button {label!r} in {keyboard}")
        raise AssertionError("no keyboard sent")

    async def media(self, kind: str = "photo") -> None:
        await self.core.process(Media(next(self.updates), self.chat_id, self.user, kind),
                                self.transport)

    async def press_data(self, data: str, message_id: int | None = 1) -> str | None:
        """Press a button with this callback data; the answer's text (the press is always
        answered)."""
        callback = f"cb{next(self.updates)}"
        answered = len(self.transport.answers)
        await self.core.process(Pressed(next(self.updates), self.chat_id, self.user, callback,
                                        message_id, data), self.transport)
        [answer] = [a for a in self.transport.answers[answered:] if a[0] == callback]
        return answer[1]

    def last(self) -> str:
        return self.transport.sent[-1][1]


@pytest.fixture
async def core(store: Store) -> Controller:
    return Controller(store, project_flows(), channel="telegram",
                      bot_username="sada_test_bot",
                        admin_ids=frozenset({"1"}), secret="test-secret", sleep=_no_sleep)


@pytest.fixture
async def solo(store: Store) -> Controller:
    """The core as `sada run` builds it: the bot is Sada alone."""
    return Controller(store, project_flows(), channel="telegram",
                      bot_username="sada_test_bot",
                        admin_ids=frozenset({"1"}), secret="test-secret", sleep=_no_sleep,
                        standalone=True)


async def _no_sleep(_: float) -> None:
    return None


async def test_persian_buttons_survey_end_to_end(core: Controller, store: Store) -> None:
    tr = Recorder()
    chat = Chat(core, tr, 42, "fa")
    await chat.send("/start")
    assert "کدام" in chat.last()  # the public flows menu, in Persian
    await chat.press("نظرسنجی همکاری با ما")
    assert chat.last().startswith(RLM)
    for label in ("خرید و تدارکات", "۹"):
        await chat.press(label)
    await chat.send("تحویل به‌موقع")
    await chat.press("۴")
    await chat.press("کیفیت محصول")
    await chat.press("تأیید ✓")
    await chat.press("همیشه")
    await chat.press("۲")
    contact = await store.find_contact("telegram", "42")
    assert contact is not None and contact.id is not None
    export = await store.export_contact(contact.id)
    [session] = export["sessions"]
    assert session["status"] == "completed"
    answers = {a["question_id"]: a["value"] for a in session["answers"]}
    assert answers["nps"] == 9 and answers["stakeholder"] == "buyer"
    # every message was Persian: no Latin letters outside commands
    for _, text, _, _ in tr.sent:
        assert not any("a" <= ch.lower() <= "z" for ch in text.replace("/skip", "")), text
    assert tr.edits, "answered questions lose their keyboards"


async def test_redelivered_update_changes_nothing(core: Controller, store: Store) -> None:
    tr = Recorder()
    chat = Chat(core, tr, 43, "en")
    await chat.send("/start")
    await chat.press("Supplier relationship review")
    await chat.send("1", update_id=999001)
    sent = len(tr.sent)
    await chat.send("1", update_id=999001)  # the same update again
    assert len(tr.sent) == sent
    contact = await store.find_contact("telegram", "43")
    assert contact is not None and contact.id is not None
    [session] = (await store.export_contact(contact.id))["sessions"]
    assert [a["question_id"] for a in session["answers"]] == ["stakeholder"]


async def test_forged_and_stale_buttons(core: Controller) -> None:
    tr = Recorder()
    chat = Chat(core, tr, 44, "en")
    await chat.send("/start")
    await chat.press("Supplier relationship review")
    first = tr.sent[-1]
    await chat.press("Purchasing")
    data = first[2][0][0].data  # type: ignore[index]
    await core.process(Pressed(1, "44", chat.user, "stale", first[3], data), tr)
    assert tr.answers[-1][1] and "earlier question" in tr.answers[-1][1]
    await core.process(Pressed(2, "44", chat.user, "forged", first[3], data[:-3] + "AAA"), tr)
    assert tr.answers[-1][1] and "not part of this survey" in tr.answers[-1][1]
    other_chat = Sender("45", "Eve")
    await core.process(Pressed(3, "45", other_chat, "other", first[3], data), tr)
    assert "not part of this survey" in (tr.answers[-1][1] or "")


async def test_stop_export_forget_and_admin(core: Controller, store: Store) -> None:
    tr = Recorder()
    chat = Chat(core, tr, 46, "ar")
    await chat.send("/start")
    await chat.press("تقييم علاقة العمل معنا")
    await chat.press("المشتريات")
    await chat.send("توقف")
    contact = await store.find_contact("telegram", "46")
    assert contact is not None and contact.opted_out
    await chat.send("/start")
    contact = await store.find_contact("telegram", "46")
    assert contact is not None and not contact.opted_out
    await chat.send("/export")
    document = json.loads(tr.documents[-1][2])
    assert [(i["channel"], i["address"]) for i in document["identities"]] == [("telegram", "46")]
    await chat.send("/report")
    assert "للفريق" in chat.last() or "فريق" in chat.last()
    await chat.send("/forget")
    await chat.press("نعم، احذفوا بياناتي")
    assert await store.find_contact("telegram", "46") is None


async def test_429_is_retried_and_403_marks_unreachable(core: Controller, store: Store) -> None:
    tr = Recorder()
    chat = Chat(core, tr, 47, "en")
    tr.fail = [RetryAfter(1)]
    await chat.send("/start")
    assert "Which survey" in chat.last()
    tr.fail = [Blocked()]
    await chat.send("/help")
    contact = await store.find_contact("telegram", "47")
    assert contact is not None and contact.id is not None
    assert [i.unreachable for i in await store.identities(contact.id)] == [True]


@pytest.mark.parametrize("error", [RetryAfter(1), ChatRetryAfter(1)],
                         ids=["channel", "one person"])
async def test_a_429_under_shared_limits_books_its_retry_with_the_pause(
        store: Store, error: RetryAfter) -> None:
    # several processes on PostgreSQL: the retry's time is booked when the 429 comes, behind
    # a clear gap (bot/followups/shared_rate.py), not booked again after the wait; a limit
    # of one person (WhatsApp's pair rate) holds back only them, and pauses nobody
    if store.database.engine.dialect.name != "postgresql":
        pytest.skip("shared limits live in PostgreSQL; SQLite is one process")
    from bot.channels.telegram.channel import CHANNEL
    from bot.followups import shared_rate

    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # real waits: the bookings are the database's
        waits.append(seconds)
        await asyncio.sleep(seconds)

    core = Controller(store, project_flows(), channel="telegram", bot_username="sada_test_bot",
                      admin_ids=frozenset({"1"}), secret="test-secret", sleep=sleep)
    assert shared_rate.install(store.database, {"telegram": CHANNEL.capabilities})
    limiter = shared_rate.installed("telegram")
    assert limiter is not None
    booked = count_bookings(limiter)
    try:
        tr = Recorder()
        chat = Chat(core, tr, 49, "en")
        tr.fail = [error]
        await chat.send("/start")
    finally:
        shared_rate.uninstall()
    assert "Which survey" in chat.last()
    if isinstance(error, ChatRetryAfter):
        # waited, then booked as any send; nobody paused (here or in the database)
        assert booked == ["49", "49"] and waits[0] == 1, (booked, waits)
        assert limiter.paused_until == 0.0
    else:
        assert booked == ["49"], booked  # the retry's time came with the 429
        assert max(waits) >= 1 + shared_rate.RETRY_GAP - 0.05, waits


async def test_crash_between_commit_and_send_shows_the_question(core: Controller) -> None:
    tr = Recorder()
    chat = Chat(core, tr, 48, "en")
    await chat.send("/start")
    await chat.press("Supplier relationship review")
    tr.fail = [OSError("process died")]  # the next question never reaches the person
    with pytest.raises(OSError):
        await core.deliver(await core.handle(Typed(777, "48", chat.user, "1")), tr)
    await chat.send("9")  # typed before seeing the NPS question: not taken as its answer
    assert "recommend" in chat.last().lower()
    assert await core.resume_pending(tr) == 0


async def test_deep_link_opens_its_flow_with_context(core: Controller, store: Store) -> None:
    from bot.messaging.links import create_link, parse_context

    url = await create_link(store, channel="telegram", flow_id="post-support", contact_id=None,
                            context=parse_context(["ticket=T-1042"]), bot_username="sada_test_bot")
    token = url.rsplit("=", 1)[1]
    assert url.startswith("https://t.me/sada_test_bot?start=") and len(token) >= 22
    tr = Recorder()
    chat = Chat(core, tr, 50, "en")
    await chat.send(f"/start {token}")
    assert any("T-1042" in text for _, text, _, _ in tr.sent)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_context(["ticket"])
    mine = await store.upsert_contact("telegram", "51")
    url = await create_link(store, flow_id="post-support", contact_id=mine.id, context={},
                            channel="telegram", bot_username="sada_test_bot")
    await chat.send(f"/start {url.rsplit('=', 1)[1]}")
    assert "someone else" in chat.last()
    await chat.send("/start not-a-token")
    assert "not valid" in chat.last()


async def test_consent_is_recorded_with_text_language_and_time(
    core: Controller, store: Store
) -> None:
    from bot.messaging.links import create_link

    url = await create_link(store, channel="telegram", flow_id="post-support", contact_id=None,
                            context={"ticket": "T-7"}, bot_username="sada_test_bot")
    tr = Recorder()
    chat = Chat(core, tr, 60, "fa")
    await chat.send(f"/start {url.rsplit('=', 1)[1]}")
    assert "موافقید" in chat.last()
    await chat.send("۵")  # an answer before consent is not stored
    contact = await store.find_contact("telegram", "60")
    assert contact is not None and contact.id is not None
    export = await store.export_contact(contact.id)
    assert export["sessions"][0]["answers"] == [] and export["consents"] == []
    await chat.press("موافقم")
    await chat.press("۵")
    export = await store.export_contact(contact.id)
    [consent] = export["consents"]
    assert consent["language"] == "fa" and "موافقید" in consent["text"] and consent["given_at"]
    assert [a["question_id"] for a in export["sessions"][0]["answers"]] == ["csat"]


async def test_an_invitation_button_opens_its_survey_like_the_deep_link(
    core: Controller, store: Store
) -> None:
    from bot.conversation.events import Pressed
    from bot.messaging.links import create_link

    url = await create_link(store, flow_id="b2b-supplier", contact_id=None, context={},
                            channel="telegram", bot_username="sada_test_bot")
    tr = Recorder()
    chat = Chat(core, tr, 70, "en")
    token = url.rsplit("=", 1)[1]
    await core.process(Pressed(8801, "70", chat.user, "inv", 1, f"s1:g:{token}"), tr)
    assert "role" in chat.last().lower() or "Question 1" in chat.last()
    await core.process(Pressed(8802, "70", chat.user, "inv2", 1, "s1:g:forged-token"), tr)
    assert "not valid" in chat.last()


async def test_a_detractor_score_opens_a_case_and_queues_staff_alerts(store: Store) -> None:
    from datetime import UTC, datetime

    from sqlmodel import select

    from bot.followups.render import Message, render
    from storage.cases import list_cases
    from storage.models import Outbox

    core = await Controller.create(store, channel="telegram",
                                   flows_dir=ROOT / "flows", bot_username="sada_test_bot",
                                   admin_ids=frozenset({"1"}), secret="s",
                                   alert_to=[("telegram", "901"), ("telegram", "902")])
    tr = Recorder()
    chat = Chat(core, tr, 80, "en")
    await chat.send("/start")
    await chat.press("Supplier relationship review")
    await chat.press("Purchasing")
    await chat.press("3")
    await chat.send("Deliveries are always late")  # the comment reaches the queued alert
    [row] = await list_cases(store.database, open_only=True)
    assert (row.case.question_id, row.case.score) == ("nps", 3)
    async with store.database.session() as s:
        alerts = (await s.exec(select(Outbox).where(Outbox.kind == "alert"))).all()
        assert sorted((a.channel, a.address) for a in alerts) == [("telegram", "901"),
                                                                 ("telegram", "902")]
        # written when sent: with the comment typed after the score
        texts = [await render(s, a, flows=core.flows,
                              now=datetime.now(UTC)) for a in alerts]
    assert all(isinstance(m, Message) and "Deliveries are always late" in m.text
               for m in texts)


async def test_staff_resolve_a_case_in_telegram(store: Store) -> None:
    core = await Controller.create(store, channel="telegram",
                                   flows_dir=ROOT / "flows", bot_username="sada_test_bot",
                                   admin_ids=frozenset({"1"}), secret="s",
                                   alert_to=[("telegram", "1")])
    tr = Recorder()
    chat = Chat(core, tr, 81, "en")
    await chat.send("/start")
    await chat.press("Supplier relationship review")
    await chat.press("Purchasing")
    await chat.press("2")
    from storage.cases import list_cases

    [row] = await list_cases(store.database, open_only=True)
    await chat.send(f"/resolve {row.case.id} called them")
    assert "survey team only" in chat.last()
    staff = Chat(core, tr, 1, "en")
    await staff.send("/resolve x")
    assert "Usage" in staff.last()
    await staff.send(f"/resolve {row.case.id} Called the buyer, delivery plan agreed")
    assert f"Case {row.case.id} resolved, 0 hours after the alert" in staff.last()
    await staff.send(f"/resolve {row.case.id} again")
    assert "already" in staff.last().lower()
    assert await list_cases(store.database, open_only=True) == []


# --- what Sada cannot read: media, unknown commands, other buttons -------------------------


async def test_media_during_a_survey_says_what_is_expected_and_asks_again(
    core: Controller, store: Store
) -> None:
    tr = Recorder()
    chat = Chat(core, tr, 90, "en")
    await chat.send("/start")
    await chat.press("Supplier relationship review")
    question = tr.sent[-1]
    # a host bot's core takes media from the people it is surveying
    assert await core.wants(Media(1, "90", chat.user, "photo"))
    for kind in ("photo", "sticker", "voice", "document"):
        sent = len(tr.sent)
        await chat.media(kind)
        notice, again = tr.sent[sent:]
        assert "only read typed text and buttons" in notice[1] and "question below" in notice[1]
        assert again[1] == question[1] and again[2] is not None  # the question, with buttons
    await chat.press("Purchasing")  # the buttons of the repeated question work
    contact = await store.find_contact("telegram", "90")
    assert contact is not None and contact.id is not None
    [session] = (await store.export_contact(contact.id))["sessions"]
    assert [a["question_id"] for a in session["answers"]] == ["stakeholder"]


async def test_media_at_consent_asks_for_consent_again(core: Controller, store: Store) -> None:
    from bot.messaging.links import create_link

    url = await create_link(store, channel="telegram", flow_id="post-support", contact_id=None,
                            context={"ticket": "T-9"}, bot_username="sada_test_bot")
    tr = Recorder()
    chat = Chat(core, tr, 91, "en")
    await chat.send(f"/start {url.rsplit('=', 1)[1]}")
    consent = tr.sent[-1]
    await chat.media("voice")
    assert "question below" in tr.sent[-2][1]
    assert tr.sent[-1][1] == consent[1] and tr.sent[-1][2] == consent[2]


async def test_media_and_unknown_commands_outside_a_survey(
    core: Controller, solo: Controller
) -> None:
    user = Sender("92", "Sara", language_code="en")
    photo = Media(1, "92", user, "photo")
    unknown = Typed(2, "92", user, "/weather")
    # in a host bot they are the host's: Sada lets them through
    assert not await core.wants(photo) and not await core.wants(unknown)
    # `sada run` has no host: Sada answers them
    assert await solo.wants(photo) and await solo.wants(unknown)
    tr = Recorder()
    chat = Chat(solo, tr, 92, "en")
    await chat.media("sticker")
    assert "only read typed text" in chat.last() and "/start" in chat.last()
    await chat.send("/weather")
    assert chat.last() == ("I do not know the command /weather. Send /help to see the "
                           "commands I understand.")


async def test_unknown_command_during_a_survey_is_named_and_the_question_asked_again(
    solo: Controller, store: Store
) -> None:
    tr = Recorder()
    chat = Chat(solo, tr, 93, "fa")
    await chat.send("/start")
    await chat.press("نظرسنجی همکاری با ما")
    question = tr.sent[-1]
    await chat.send("/menu@sada_test_bot")
    assert "/menu" in tr.sent[-2][1] and "/help" in tr.sent[-2][1]
    assert tr.sent[-1][1] == question[1]
    # a slash that is no command, typed as an answer, is read as an answer
    await chat.press("خرید و تدارکات")
    await chat.press("۳")
    await chat.send("/etc/hosts is down, again")
    contact = await store.find_contact("telegram", "93")
    assert contact is not None and contact.id is not None
    [session] = (await store.export_contact(contact.id))["sessions"]
    raw = {a["question_id"]: a["raw_text"] for a in session["answers"]}
    assert raw["nps_why"] == "/etc/hosts is down, again"


async def test_every_button_press_is_answered_even_when_not_ours(
    core: Controller, solo: Controller, store: Store
) -> None:
    user = Sender("94", "Sara", language_code="en")
    assert not await core.wants(Pressed(1, "94", user, "cb", 1, "menu:open"))  # a host's
    tr = Recorder()
    chat = Chat(solo, tr, 94, "en")
    await chat.send("/start")
    await chat.press("Supplier relationship review")
    before = len(tr.sent)
    for data in ("menu:open", "s1", "s1:zz", "x" * 64, "٣", "", "s1:a:1:0:7:forged",
                 "s1:f:no-such-flow"):
        # answered (press_data checks), with a notice, and nothing else happens
        assert await chat.press_data(data) == "That button is not part of this survey."
    assert len(tr.sent) == before
    for data in ("s1:", "s1:l:de", "s1:g:", "s1:g:" + "A" * 59, "s1:g:../x"):
        await chat.press_data(data)  # answered; a dead link or the survey again says why
    contact = await store.find_contact("telegram", "94")
    assert contact is not None and contact.id is not None
    [session] = (await store.export_contact(contact.id))["sessions"]
    assert session["status"] == "active" and session["answers"] == []


async def test_a_failed_update_is_still_answered(solo: Controller) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("database went away")

    solo._contact = broken  # type: ignore[method-assign]
    tr = Recorder()
    chat = Chat(solo, tr, 95, "ar")
    await chat.send("مرحبا")
    assert chat.last() == Translator("ar").gettext(
        "Sorry, something unexpected happened. Please try again.")
    assert await chat.press_data("s1:noop") == Translator("ar").gettext(
        "Sorry, something unexpected happened. Please try again.")


# --- control characters ----------------------------------------------------------------------


async def test_nul_and_control_characters_never_reach_storage(
    core: Controller, store: Store
) -> None:
    """PostgreSQL refuses NUL in text and JSON: before, the update failed without a reply
    there (SQLite stored it)."""
    from bot.messaging.links import create_link

    tr = Recorder()
    chat = Chat(core, tr, 96, "en")
    chat.user = Sender("96", "Sa\x00ra\x07", last_name="\x00", username="s\x00",
                       language_code="en\x00")
    await chat.send("/start\x00")
    await chat.press("Supplier relationship review")
    await chat.press("Purchasing")
    await chat.press("3")
    await chat.send("late\x00 deliveries\x1b[31m\r\nand\tmore")
    assert "expectations" in chat.last()  # taken as the answer; the next question came
    contact = await store.find_contact("telegram", "96")
    assert contact is not None and contact.id is not None
    assert contact.name == "Sara" and contact.language == "en"
    [session] = (await store.export_contact(contact.id))["sessions"]
    raw = {a["question_id"]: a["raw_text"] for a in session["answers"]}
    assert raw["nps_why"] == "late deliveries[31m\nand\tmore"
    # a deep-link payload with a NUL is no token: refused before any lookup
    url = await create_link(store, channel="telegram", flow_id="post-support", contact_id=None,
                            context={"ticket": "T-1"}, bot_username="sada_test_bot")
    token = url.rsplit("=", 1)[1]
    await chat.send(f"/start {token[:5]}\x00{token[5:]}")
    assert "T-1" in "".join(text for _, text, _, _ in tr.sent[-3:])  # the NUL was dropped
    await chat.send("/start " + "\x00" * 10 + "../../etc")
    assert "not valid" in chat.last()
    await chat.press_data("s1:g:ab\x00cd")
    assert "not valid" in chat.last()


# --- staff commands with ids -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12", 12), ("۱۲", 12), ("١٢", 12), (" 7 ", 7), ("0", 0), ("²", None), ("1²", None),
     ("①", None), ("-3", None), ("+3", None), ("1e3", None), ("", None), ("9" * 20, None),
     ("99999999999999999999999", None), ("9" * 5000, None)],
)
def test_record_ids_as_staff_type_them(text: str, expected: int | None) -> None:
    assert record_id(text) == expected


async def test_resolve_with_an_impossible_case_number_is_one_line(store: Store) -> None:
    core = await Controller.create(store, channel="telegram",
                                   flows_dir=ROOT / "flows", bot_username="sada_test_bot",
                                   admin_ids=frozenset({"1"}), secret="s",
                                   alert_to=[("telegram", "1")])
    tr = Recorder()
    staff = Chat(core, tr, 1, "en")
    for number in ("99999999999999999999999", "²", "1180591620717411303424", "٢" * 30):
        await staff.send(f"/resolve {number} called them")
        assert staff.last() == "Usage: /resolve CASE_NUMBER what was done"
    for number in ("9223372036854775807", "4294967296", "۹۹"):
        await staff.send(f"/resolve {number} called them")
        assert staff.last().startswith("there is no case "), staff.last()
        assert "\n" not in staff.last()
    await staff.send("/report " + "x" * 5000)
    assert len(staff.last()) < 300 and staff.last().startswith("No flow xxxx")


# --- the shells make media events -------------------------------------------------------------


def test_both_shells_turn_photos_and_stickers_into_media_events() -> None:
    from aiogram.types import Message
    from telegram import Bot, Update

    from bot.channels.telegram import aiogram_shell, ptb_shell

    chat = {"id": 97, "type": "private", "first_name": "Sara"}
    sender = {"id": 97, "is_bot": False, "first_name": "Sara", "language_code": "fa"}
    photo = {"message_id": 5, "date": 0, "chat": chat, "from": sender, "caption": "x",
             "photo": [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]}
    sticker = {**photo, "sticker": {"file_id": "f", "file_unique_id": "u", "type": "regular",
                                    "width": 1, "height": 1, "is_animated": False,
                                    "is_video": False}}
    del sticker["photo"]
    for payload, kind in ((photo, "photo"), (sticker, "sticker")):
        event = aiogram_shell.media_event(Message.model_validate(payload), 7)
        assert event == Media(7, "97", Sender("97", "Sara", language_code="fa"), kind)
        update = Update.de_json({"update_id": 7, "message": payload}, Bot("1:x"))
        assert ptb_shell.media_event(update) == event
    text = {**photo, "text": "hi"}
    del text["photo"]
    assert aiogram_shell.media_event(Message.model_validate(text), 8) is None
    group = {**photo, "chat": {"id": -5, "type": "group", "title": "g"}}
    assert aiogram_shell.media_event(Message.model_validate(group), 9) is None


async def test_staff_commands_answer_in_channel_neutral_messages(store: Store) -> None:
    """bot/conversation/staff.py takes who, the command and its text, and returns plain
    messages: no chat ids, no Telegram types; the core only recognises staff."""
    from datetime import UTC, datetime

    from bot.conversation import staff

    flows = project_flows()

    async def run(command: str, argument: str) -> list[staff.Outbound]:
        return await staff.run(command, argument, staff="console:ops", store=store,
                               flows=flows, lang="en", now=datetime(2026, 3, 1, tzinfo=UTC))

    assert await run("report", "") == [staff.Text("No survey sessions yet.")]
    assert await run("resolve", "x") == [staff.Text("Usage: /resolve CASE_NUMBER what was done")]
    assert await run("resolve", "7 called them") == [staff.Text(
        "there is no case 7; `sada cases list --all` shows them")]
    [missing] = await run("report", "nope")
    assert isinstance(missing, staff.Text) and missing.text.startswith("No flow nope. Flows: ")
    assert staff.refused(Translator("en")) == [
        staff.Text("Sorry, this command is for the survey team only.")]
