"""Fuzzed chat input through the real Controller on a real database (SQLite, and a smaller
run on PostgreSQL): hostile texts, forged and foreign button data, media.

Every event must get an answer (a message to its chat, or the press's callback answered),
within Telegram's limits; no exception may escape or be swallowed on the way (a logged
"update … failed" counts as a crash); a redelivered update changes nothing; and the stored
state stays consistent: no control characters, sessions agree with their answers, at most
one open session per person and flow, and a link that asks for a code is never taken
without it. The figures (tried, crashed, unanswered, over a limit) are printed and
asserted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from bot.conversation.controller import Controller
from bot.conversation.events import MEDIA_KINDS, Inbound, Media, Pressed, Sender, Typed
from bot.messaging import links
from bot.messaging.transport import Keyboard, Refused
from storage.models import Answer, Contact, ContactIdentity, LinkToken, SurveySession
from storage.repo import Store
from tests.conftest import project_flows

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
ADMIN = 1
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Telegram's limits (Bot API): a message 1–4096 characters, a callback answer's text 0–200,
# a button's data 1–64 bytes.
TEXT_LIMIT, ANSWER_LIMIT, DATA_LIMIT = 4096, 200, 64
# every script's decimal digits (Nd): ٣, ۳, ३, ๓, ３ …
DIGITS = st.characters(categories=("Nd",))
BIDI = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"


# --- what Telegram would accept and what the bot sent ------------------------------------------


@dataclass
class Sent:
    chat_id: str
    text: str
    keyboard: Keyboard | None


@dataclass
class Telegram:
    """A transport that keeps Telegram's limits: what breaks one is refused (a 400), as the
    Bot API would, and counted."""

    sent: list[Sent] = field(default_factory=list)
    answers: list[tuple[str, str | None]] = field(default_factory=list)
    files: list[int] = field(default_factory=list)
    over_limit: list[str] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _check(self, text: str | None, keyboard: Keyboard | None) -> None:
        problems = []
        if text is not None and not text.strip():
            problems.append("an empty text")
        if text is not None and len(text) > TEXT_LIMIT:
            problems.append(f"text of {len(text)} characters")
        for row in keyboard or ():
            for button in row:
                if not button.text.strip():
                    problems.append("a button without a label")
                if not 1 <= len(button.data.encode()) <= DATA_LIMIT:
                    problems.append(f"button data of {len(button.data.encode())} bytes")
        if problems:
            self.over_limit.extend(problems)
            raise Refused("; ".join(problems))

    async def send_text(self, chat_id: str, text: str, keyboard: Keyboard | None) -> int:
        self._check(text, keyboard)
        self.sent.append(Sent(chat_id, text, keyboard))
        return next(self.ids)

    async def edit(self, chat_id: str, message_id: int, text: str | None,
                   keyboard: Keyboard | None) -> None:
        self._check(text, keyboard)

    async def answer_press(self, callback_id: str, text: str | None) -> None:
        if text is not None and len(text) > ANSWER_LIMIT:
            self.over_limit.append(f"callback answer of {len(text)} characters")
            raise Refused("answer too long")
        self.answers.append((callback_id, text))

    async def send_document(self, chat_id: str, filename: str, content: bytes,
                            caption: str | None) -> None:
        self.files.append(chat_id)

    async def send_photo(self, chat_id: str, filename: str, content: bytes,
                         caption: str | None) -> None:
        self.files.append(chat_id)


class Crashes(logging.Handler):
    """Exceptions the core caught and logged: an update that failed, a delivery that failed
    (a refused message is logged too, but without one: it counts as over a limit)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


# --- the harness ---------------------------------------------------------------------------------


@dataclass
class Figures:
    tried: int = 0
    crashed: int = 0
    unanswered: int = 0
    redelivered: int = 0
    changed_by_redelivery: int = 0

    def line(self, name: str, over_limit: int) -> str:
        return (f"{name}: tried {self.tried} events, crashed {self.crashed}, unanswered "
                f"{self.unanswered}, over Telegram's limits {over_limit}, redelivered "
                f"{self.redelivered} (changed something: {self.changed_by_redelivery})")


class Harness:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.core = Controller(store, project_flows(), channel="telegram",
                               bot_username="sada_fuzz_bot",
                                 admin_ids=frozenset({str(ADMIN)}), secret="fuzz", standalone=True,
                                 sleep=_no_sleep)
        self.telegram = Telegram()
        self.figures = Figures()
        self.crashes = Crashes()
        self.updates = itertools.count(1)
        self.callbacks = itertools.count(1)
        self.tokens: list[str] = []
        self.guarded: int | None = None  # the contact behind the link with a code

    async def setup(self) -> None:
        url = await links.create_link(self.store, flow_id="post-support", contact_id=None,
                                      context={"ticket": "T-1"}, channel="telegram",
                                      bot_username="b")
        guarded = await self.store.upsert_contact("external", "CRM-1", name="Guarded Person")
        self.guarded = guarded.id
        assert guarded.id is not None
        guarded_url, _ = await links.create_confirmed_link(
            self.store, flow_id="b2b-supplier", contact_id=guarded.id, context={},
            channel="telegram", bot_username="b")
        self.tokens = [url.rsplit("=", 1)[1], guarded_url.rsplit("=", 1)[1]]

    def buttons(self, chat_id: str, *, latest: bool = False) -> list[str]:
        """The data of every button this chat was shown, newest first (stale ones too), or
        only those of the last message with buttons."""
        shown = [sent.keyboard for sent in reversed(self.telegram.sent)
                 if sent.chat_id == chat_id and sent.keyboard]
        if latest:
            shown = shown[:1]
        return [button.data for keyboard in shown for row in keyboard for button in row]

    async def one(self, event: Inbound) -> None:
        tg = self.telegram
        sent, answered, files = len(tg.sent), len(tg.answers), len(tg.files)
        crashes = len(self.crashes.records)
        await self.core.process(event, tg)
        self.figures.tried += 1
        if len(self.crashes.records) > crashes:
            self.figures.crashed += 1
        if isinstance(event, Pressed):
            got = [a for a in tg.answers[answered:] if a[0] == event.callback_id]
            ok = len(got) == 1
        else:
            ok = any(s.chat_id == event.chat_id for s in tg.sent[sent:]) or len(tg.files) > files
        if not ok:
            self.figures.unanswered += 1

    async def redeliver(self, event: Inbound) -> None:
        """The same update again (Telegram redelivers after a crash): nothing changes."""
        before = await snapshot(self.store)
        sent, answered = len(self.telegram.sent), len(self.telegram.answers)
        await self.core.process(event, self.telegram)
        self.figures.redelivered += 1
        if (await snapshot(self.store) != before or len(self.telegram.sent) != sent
                or len(self.telegram.answers) != answered):
            self.figures.changed_by_redelivery += 1

    async def check(self) -> list[str]:
        """What is wrong with the stored state (nothing, we hope)."""
        return await inconsistencies(self.store, self.core, self.guarded)


async def _no_sleep(_: float) -> None:
    return None


async def snapshot(store: Store) -> tuple[Any, ...]:
    async with store.database.session() as s:
        sessions = (await s.exec(select(SurveySession.id, SurveySession.status,
                                        SurveySession.state))).all()
        answers = (await s.exec(select(Answer.session_id, Answer.question_id,
                                       Answer.raw_text))).all()
        contacts = (await s.exec(select(Contact.id, Contact.external_id, Contact.opted_out,
                                        Contact.language))).all()
        identities = (await s.exec(select(ContactIdentity.contact_id, ContactIdentity.channel,
                                          ContactIdentity.address,
                                          ContactIdentity.unreachable))).all()
    return (sorted(json.dumps(list(r), sort_keys=True, default=str) for r in sessions),
            sorted(map(tuple, answers)), sorted(map(tuple, contacts)),
            sorted(map(tuple, identities)))


async def inconsistencies(store: Store, core: Controller, guarded: int | None) -> list[str]:
    problems: list[str] = []
    async with store.database.session() as s:
        contacts = (await s.exec(select(Contact))).all()
        owners = set((await s.exec(select(ContactIdentity.contact_id))).all())
        sessions = (await s.exec(select(SurveySession))).all()
        answers = (await s.exec(select(Answer))).all()
        link_rows = (await s.exec(select(LinkToken))).all()
    for c in contacts:
        for name in ("name", "first_name", "language", "external_id"):
            if CONTROL.search(getattr(c, name) or ""):
                problems.append(f"contact {c.id}: control character in {name}")
    stored: dict[int, set[str]] = {}
    for a in answers:
        stored.setdefault(a.session_id, set()).add(a.question_id)
        if CONTROL.sub("", a.raw_text.replace("\n", "").replace("\t", "")) != \
                a.raw_text.replace("\n", "").replace("\t", ""):
            problems.append(f"answer {a.id}: control character in the raw text")
    open_per_flow: dict[tuple[int, str], int] = {}
    for session in sessions:
        state = session.state
        if CONTROL.search(json.dumps(state, ensure_ascii=False).replace("\\n", "")):
            problems.append(f"session {session.id}: control character in its state")
        if state.get("status") != session.status:
            problems.append(f"session {session.id}: status {session.status} but the state "
                            f"says {state.get('status')}")
        if state.get("current") != session.position:
            problems.append(f"session {session.id}: position {session.position} but the "
                            f"state says {state.get('current')}")
        flow = next((f.flow for f in core.flows.values() if f.flow.id == session.flow_id), None)
        ids = {q.id for q in flow.questions} if flow else set()
        answered = set(state.get("answers") or {})
        if answered != stored.get(session.id or 0, set()):
            problems.append(f"session {session.id}: state answers {sorted(answered)} but "
                            f"stored {sorted(stored.get(session.id or 0, set()))}")
        if flow is not None and not answered <= ids:
            problems.append(f"session {session.id}: answers to questions not in its flow")
        if session.status in ("new", "consent", "active"):
            key = (session.contact_id, session.flow_id)
            open_per_flow[key] = open_per_flow.get(key, 0) + 1
    problems += [f"contact {c}: {n} open sessions of {f}"
                 for (c, f), n in open_per_flow.items() if n > 1]
    guarded_contact = next((c for c in contacts if c.id == guarded), None)
    if guarded is not None and (guarded_contact is None or guarded in owners):
        problems.append("the contact behind the link with a code was taken without its code")
    for row in link_rows:
        if row.code_failures > links.CODE_TRIES:
            problems.append(f"link {row.token}: {row.code_failures} wrong codes counted")
    return problems


# --- strategies ----------------------------------------------------------------------------------

COMMANDS = ["/start", "/help", "/language", "/back", "/skip", "/stop", "/export", "/forget",
            "/report", "/resolve", "/weather", "/start@sada_fuzz_bot", "/START"]
WORDS = ["yes", "no", "نعم", "لا", "بله", "نه", "آره", "stop", "توقف", "لغو", "skip", "back",
         "10", "۹", "٣", "-0", "+7", "1" + "0" * 400, "1e309", "nan", "inf", "3/5", "2,5",
         "²", "①", "٫٥", "Purchasing", "buyer", "1, 3", "١،٣"]

hostile = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30).map(
        lambda t: "\x00".join(t)),
    st.text(alphabet=DIGITS, min_size=1, max_size=25),
    st.integers(1, 2200).map(lambda n: "㊿" * n),
    st.integers(1, 4096).map(lambda n: ("لا" * n)[:n]),
    st.text(alphabet=BIDI + "ab۱\n\r\t\x00\x1b\x7f\x85", min_size=1, max_size=40),
    st.sampled_from(WORDS),
    st.tuples(st.sampled_from(WORDS), st.sampled_from(BIDI + "\x00\u200c ")).map("".join),
    st.tuples(st.sampled_from(COMMANDS), st.text(max_size=40)).map(" ".join),
    st.tuples(st.just("/resolve"), st.one_of(
        st.text(alphabet=st.one_of(DIGITS, st.sampled_from("²³¹①")), min_size=1, max_size=30),
        st.integers(-2**80, 2**80).map(str)), st.text(max_size=20)).map(" ".join),
    st.text(alphabet="0123456789۰۱۲۳۴۵۶۷۸۹ -", min_size=6, max_size=9),  # codes, and near
)
foreign_data = st.one_of(
    st.text(max_size=64),
    st.binary(max_size=64).map(lambda b: b.decode("utf-8", "replace")),
    st.text(min_size=65, max_size=300),
    st.tuples(st.sampled_from(["s1:", "s1:a:", "s1:t:", "s1:c:", "s1:l:", "s1:g:", "s1:f:",
                               "s1:x:", "s2:", "S1:", "s1"]), st.text(max_size=60)).map("".join),
)


@dataclass(frozen=True)
class Act:
    kind: str  # text, press, forge, foreign, media, link
    payload: Any


answers = st.builds(Act, st.just("answer"), st.integers(0, 11))
acts = st.one_of(
    answers,  # three times: a third of the acts answer the question on screen
    answers,
    answers,
    st.builds(Act, st.just("text"), hostile),
    st.builds(Act, st.just("press"), st.integers(0, 40)),
    st.builds(Act, st.just("forge"), st.tuples(st.integers(0, 40), st.integers(0, 70),
                                               st.text(max_size=3))),
    st.builds(Act, st.just("foreign"), foreign_data),
    st.builds(Act, st.just("media"), st.sampled_from(MEDIA_KINDS)),
    st.builds(Act, st.just("link"), st.tuples(st.integers(0, 1), st.text(max_size=4))),
)


# How a conversation starts, so that the fuzz reaches into surveys: as it is, through the
# public menu, through a deep link (a flow with consent), through the link that asks a code.
OPENINGS: list[tuple[Act, ...]] = [
    (),
    (Act("text", "/start"), Act("press", 0)),
    (Act("link", (0, "")), Act("press", 1)),
    (Act("link", (1, "")),),
]


def event_for(h: Harness, chat_id: str, user: Sender, act: Act) -> Inbound:
    update = next(h.updates)
    callback = f"cb{next(h.callbacks)}"
    if act.kind == "text":
        return Typed(update, chat_id, user, act.payload or "?")
    if act.kind == "media":
        return Media(update, chat_id, user, act.payload)
    if act.kind == "link":
        index, junk = act.payload
        return Typed(update, chat_id, user, f"/start {h.tokens[index]}{junk}")
    shown = h.buttons(chat_id)
    latest = h.buttons(chat_id, latest=True)
    if act.kind == "answer" and latest:
        return Pressed(update, chat_id, user, callback, 1, latest[act.payload % len(latest)])
    if act.kind == "press" and shown:
        return Pressed(update, chat_id, user, callback, 1, shown[act.payload % len(shown)])
    if act.kind == "forge" and shown:
        pick, cut, extra = act.payload
        data = shown[pick % len(shown)]
        return Pressed(update, chat_id, user, callback, 1, data[:cut % (len(data) + 1)] + extra)
    data = act.payload if act.kind == "foreign" else "s1:noop"
    return Pressed(update, chat_id, user, callback, None, data)


# --- running hypothesis against the test's event loop -----------------------------------------


def on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Awaitable[T]], T]:
    """Run a coroutine on the test's loop from hypothesis's thread, and wait for it."""
    def call(work: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, loop).result(timeout=120)  # type: ignore[arg-type]
    return call


async def fuzz(store: Store, examples: int, name: str) -> Harness:
    h = Harness(store)
    await h.setup()
    logger = logging.getLogger("bot.conversation.controller")
    logger.addHandler(h.crashes)
    call = on_loop(asyncio.get_running_loop())
    problems: list[str] = []
    chats = itertools.count(10_000)

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(acts=st.lists(acts, min_size=1, max_size=12), opening=st.sampled_from(OPENINGS),
           language=st.sampled_from(["ar", "fa", "en", None, "de", "zz\x00"]),
           admin=st.booleans(), reuse=st.booleans())
    def conversation(acts: list[Act], opening: tuple[Act, ...], language: str | None,
                     admin: bool, reuse: bool) -> None:
        # a new person, or someone met before (their state carries over), or the admin
        chat_id = str(ADMIN if admin else (10_000 if reuse else next(chats)))
        user = Sender(chat_id, "Fuzz\x00\u202e", language_code=language)
        events = []
        for act in (*opening, *acts):
            # made just before it is sent: a press picks among the buttons shown by then
            events.append(event_for(h, chat_id, user, act))
            call(h.one(events[-1]))
        call(h.redeliver(events[len(events) // 2]))
        problems.extend(call(h.check()))

    try:
        await asyncio.to_thread(conversation)
    finally:
        logger.removeHandler(h.crashes)
    figures = h.figures
    async with store.database.session() as s:  # how deep the fuzz got into surveys
        statuses = [row for row in (await s.exec(select(SurveySession.status))).all()]
        stored = len((await s.exec(select(Answer.id))).all())
    print(figures.line(name, len(h.telegram.over_limit)) + f"; {len(statuses)} sessions "
          f"({statuses.count('completed')} completed), {stored} answers stored")
    crashes = [f"{r.getMessage()}: {r.exc_info[1]!r}" for r in h.crashes.records if r.exc_info]
    assert figures.crashed == 0, crashes[:5]
    assert figures.unanswered == 0
    assert figures.changed_by_redelivery == 0
    assert not h.telegram.over_limit, sorted(set(h.telegram.over_limit))[:5]
    assert not problems, problems[:5]
    assert figures.tried >= examples
    return h


@pytest.mark.parametrize("framework", ["aiogram", "ptb"])
async def test_sada_run_answers_what_it_cannot_read_on_both_frameworks(
    framework: str, tmp_path: Path
) -> None:
    """Through `sada run` (run_bot, the real frameworks, a fake Bot API): a photo, a
    sticker, an unknown command, a button of another bot and a NUL in a text all get an
    answer; before, the shells dropped all of them."""
    from tests.fakebot.running import polling, settings_for
    from tests.fakebot.server import FakeBotApi

    async with FakeBotApi(token="123456:TEST-token-for-sada-fuzz-tests-0123456789") as api, \
            polling(api, settings_for(api, tmp_path, ROOT / "flows"), framework=framework):
        user = api.user(300, first_name="Sara", language_code="en")
        await user.send("/start")
        await api.wait_for(lambda: len(api.texts(300)) == 1)
        base = {"from": user.info, "chat": user.chat, "date": 0}
        photo = {"photo": [{"file_id": "f", "file_unique_id": "u", "width": 1,
                            "height": 1}]}
        sticker = {"sticker": {"file_id": "f", "file_unique_id": "u", "type": "regular",
                               "width": 1, "height": 1, "is_animated": False,
                               "is_video": False}}
        for n, media in enumerate((photo, sticker), start=1):
            api.queue_update({"message": {"message_id": 900 + n, **base, **media}})
            await api.wait_for(lambda n=n: len(api.texts(300)) == 1 + n, what="a reply")
            assert "only read typed text and buttons" in api.texts(300)[-1]
        await user.send("/weather")
        await api.wait_for(lambda: "/weather" in api.texts(300)[-1], what="unknown")
        await user.forge("menu:open")
        await api.wait_for(lambda: len(api.callback_answers()) == 1, what="the answer")
        assert "not part of this survey" in api.callback_answers()[0].get("text", "")
        replies = len(api.texts(300))
        await user.send("hello\x00")  # no survey open: it says how to start one
        await api.wait_for(lambda: len(api.texts(300)) > replies, what="a reply")
        assert "/start" in api.texts(300)[-1]


async def test_fuzzed_chat_input_on_sqlite_and_postgres(store: Store) -> None:
    dialect = store.database.engine.dialect.name
    # PostgreSQL is the stricter (NUL, 32-bit ids) and the slower: fewer examples there
    await fuzz(store, 20 if dialect == "sqlite" else 8, f"fuzz chat ({dialect})")
