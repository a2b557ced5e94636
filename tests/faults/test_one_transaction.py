"""One inbound event is applied in one transaction: a crash anywhere while `/stop` is
handled, or between its commit and its confirmation, never loses the opt-out, and a
redelivered event changes nothing.

The crash is a BaseException raised at the exact point (nothing in the bot catches it, as
nothing outlives a kill -9), on SQLite and PostgreSQL:
- `flagged`: the opt-out flag is written, the person's queued messages not yet cancelled;
- `commit`: all is written and the COMMIT is about to be sent (a connection "commit"
  event raises);
- `confirm`: the transaction committed, the confirmation's send is under way.
Then the same `/stop` is delivered again. Measured: tried, opt-outs lost, queued messages
left uncancelled, confirmations per delivery (at most one).

A property: for any event of a conversation, handling it commits exactly one transaction,
and handling it twice is handling it once, for the stored state (every table, the outbox
among them), and the second time sends nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func
from sqlmodel import SQLModel, select

from bot.channels.text import notice
from bot.conversation import controller as core_module
from bot.conversation.controller import Controller
from bot.conversation.events import Inbound, Pressed, Sender, Typed
from bot.engine.prompts import Notice
from bot.i18n import Translator
from storage.db import Database
from storage.models import Contact, Outbox
from storage.outbox import enqueue
from storage.repo import Store
from tests.conversation.test_controller import Recorder
from tests.fakebot.server import Call, FakeBotApi, _ApiError
from tests.faults.test_answer_faults import FLOW, TOKEN, WAIT, Zygote
from tests.faults.test_fuzz_chat import on_loop

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
STOPPED = notice(Notice("stopped"), Translator("en"))


class Crash(BaseException):
    """The process dies here: no handler of the bot's catches a BaseException."""


async def _new_core(store: Store) -> Controller:
    return await Controller.create(store, channel="telegram", flows_dir=ROOT / "flows",
                                     bot_username="sada_test_bot", admin_ids=frozenset({"1"}),
                                     secret="test-secret")


@contextmanager
def counting_commits(store: Store) -> Iterator[list[int]]:
    """The transactions committed meanwhile, as a one-item list."""
    commits = [0]

    def on_commit(_connection: Any) -> None:
        commits[0] += 1

    engine = store.database.engine.sync_engine
    event.listen(engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(engine, "commit", on_commit)


@contextmanager
def crash_before_commit(store: Store) -> Iterator[list[int]]:
    """Raise Crash once, as the next transaction is about to COMMIT."""
    fired: list[int] = []

    def before_commit(_connection: Any) -> None:
        if not fired:
            fired.append(1)
            raise Crash("killed before COMMIT")

    engine = store.database.engine.sync_engine
    event.listen(engine, "commit", before_commit)
    try:
        yield fired
    finally:
        event.remove(engine, "commit", before_commit)


class CrashOnConfirmation(Recorder):
    """A transport that dies while sending the opt-out's confirmation, once."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = True

    async def send_text(self, chat_id: int, text_: str, keyboard: Any) -> int:
        if self.armed and text_ == STOPPED:
            self.armed = False
            raise Crash("killed while sending the confirmation")
        return await super().send_text(chat_id, text_, keyboard)


async def _queue_reminder(store: Store, chat_id: int) -> int:
    """The person has a reminder queued: an opt-out must cancel it with the flag."""
    contact = await store.upsert_contact("telegram", str(chat_id), name="Sara", language="en")
    assert contact.id is not None
    async with store.database.session() as s, s.begin():
        await enqueue(s, key=f"reminder:{chat_id}", kind="reminder", chat_id=chat_id,
                      contact_id=contact.id, text="A reminder",
                      due_at=NOW + timedelta(days=1), now=NOW, channel="telegram")
    return contact.id


async def _opted_out(store: Store, contact_id: int) -> tuple[bool, int]:
    """(opted out, queued messages left) of a contact."""
    async with store.database.session() as s:
        contact = await s.get(Contact, contact_id)
        queued = (await s.exec(select(func.count()).select_from(Outbox).where(
            Outbox.contact_id == contact_id, Outbox.status == "queued"))).one()
    assert contact is not None
    return contact.opted_out, int(queued)


async def _open_survey(core: Controller, transport: Recorder, user: Sender,
                       updates: Iterator[int]) -> None:
    flow = next(f for f in core.flows.values() if f.flow.public)
    await core.process(Pressed(next(updates), user.id, user, "cb", None,
                               f"s1:f:{flow.flow.id}"), transport)


# A stop inside a survey is the engine's step, written by one save_state: no "flagged" point.
@pytest.mark.parametrize(("point", "in_survey"), [
    ("flagged", False), ("commit", False), ("confirm", False), ("commit", True),
    ("confirm", True)])
async def test_a_crash_while_stopping_never_loses_the_opt_out(
    store: Store, monkeypatch: pytest.MonkeyPatch, point: str, in_survey: bool
) -> None:
    core = await _new_core(store)
    updates = itertools.count(9000)
    chat_id = 4242
    user = Sender(chat_id, "Sara", language_code="en")
    contact_id = await _queue_reminder(store, chat_id)
    transport: Recorder = CrashOnConfirmation() if point == "confirm" else Recorder()
    if in_survey:
        await _open_survey(core, transport, user, updates)
    stop = Typed(next(updates), chat_id, user, "/stop")
    sent_before = len(transport.sent)

    crashed = 0
    if point == "flagged":
        real = core_module.on_opt_out

        async def dies(*args: Any, **kwargs: Any) -> int:
            raise Crash("killed after the flag, before the queue was cancelled")

        monkeypatch.setattr(core_module, "on_opt_out", dies)
        with pytest.raises(Crash):
            await core.process(stop, transport)
        crashed += 1
        monkeypatch.setattr(core_module, "on_opt_out", real)
    elif point == "commit":
        with crash_before_commit(store) as fired, pytest.raises(Crash):
            await core.process(stop, transport)
        crashed += len(fired)
    else:
        with pytest.raises(Crash):
            await core.process(stop, transport)
        crashed += 1
    first = sum(t == STOPPED for _, t, _, _ in transport.sent[sent_before:])
    # after a crash before the commit nothing of the stop is stored; after it, all of it
    assert (await _opted_out(store, contact_id))[0] is (point == "confirm")

    sent_again = len(transport.sent)
    await core.process(stop, transport)  # Telegram redelivers the unconfirmed update
    second = sum(t == STOPPED for _, t, _, _ in transport.sent[sent_again:])
    opted_out, queued = await _opted_out(store, contact_id)
    print(f"\none transaction ({store.database.engine.dialect.name}, {point}, "
          f"{'in a survey' if in_survey else 'no survey'}): tried 1 stop, crashed {crashed}, "
          f"delivered 2; lost opt-outs {int(not opted_out)}; queued left {queued}; "
          f"confirmations {first} + {second}")
    assert crashed == 1
    assert opted_out and queued == 0
    assert first <= 1 and second <= 1
    # a stop applied before the crash is not applied (nor confirmed) again; else it is, once
    assert second == (0 if point == "confirm" else 1)
    assert first == 0


# --- the property: twice is once -------------------------------------------------------

ACTS = st.sampled_from([
    "/start", "/stop", "stop", "/help", "/language", "/export", "/forget", "/skip", "/back",
    "hello", "9", "/report", "/resolve 1 done", "/start not-a-token", "/nonsense",
    "press:f", "press:x:no", "press:x:yes", "press:l:fa", "press:noop", "press:first",
    "press:foreign",
])


async def _snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with store.database.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            rows = (await conn.execute(table.select())).all()
            tables[table.name] = sorted(tuple(map(repr, row)) for row in rows)
    return tables


def _event(act: str, update: int, user: Sender, transport: Recorder,
           flow_id: str) -> Inbound:
    if not act.startswith("press:"):
        return Typed(update, user.id, user, act)
    what = act.removeprefix("press:")
    if what == "first":  # the first button of the last keyboard shown, if any
        for chat, _, keyboard, message_id in reversed(transport.sent):
            if chat == user.id and keyboard:
                return Pressed(update, user.id, user, f"cb{update}", message_id,
                               keyboard[0][0].data)
        what = "noop"
    data = {"f": f"s1:f:{flow_id}", "foreign": "other-bot:1"}.get(what, f"s1:{what}")
    return Pressed(update, user.id, user, f"cb{update}", None, data)


async def test_handling_an_event_twice_is_handling_it_once(store: Store) -> None:
    core = await _new_core(store)
    transport = Recorder()
    flow_id = next(f.flow.id for f in core.flows.values() if f.flow.public)
    call = on_loop(asyncio.get_running_loop())
    updates = itertools.count(20_000)
    chats = itertools.count(60_000)
    figures = {"tried": 0, "changed": 0, "answered_twice": 0, "split": 0}

    @settings(max_examples=10, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(acts=st.lists(ACTS, min_size=1, max_size=8), admin=st.booleans())
    def conversation(acts: list[str], admin: bool) -> None:
        user = Sender(1 if admin else next(chats), "Sara", language_code="en")
        for act in acts:
            event_ = _event(act, next(updates), user, transport, flow_id)
            with counting_commits(store) as commits:
                outs = call(core.handle(event_))
            figures["split"] += commits[0] != 1  # applied in more than one transaction
            call(core.deliver(outs, transport))
            once = call(_snapshot(store))
            again = call(core.handle(event_))
            figures["tried"] += 1
            figures["answered_twice"] += bool(again)
            figures["changed"] += call(_snapshot(store)) != once

    await asyncio.to_thread(conversation)
    print(f"\ntwice is once ({store.database.engine.dialect.name}): tried {figures['tried']} "
          f"events twice; applied in other than one transaction {figures['split']}; changed "
          f"by the second {figures['changed']}; answered twice {figures['answered_twice']}")
    assert figures["tried"] >= 10
    assert figures["split"] == 0
    assert figures["changed"] == 0 and figures["answered_twice"] == 0


# --- a real kill -9 between the committed opt-out and its confirmation -------------------


class HoldingApi(FakeBotApi):
    """Holds the opt-out's confirmation (its send never returns nor takes effect) until the
    test has killed the bot: the process dies with the stop committed and unconfirmed."""

    def __init__(self) -> None:
        super().__init__(token=TOKEN, seed=31)
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def _send_message(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        if STOPPED in str(params.get("text", "")) and not self.release.is_set():
            self.held.set()
            await self.release.wait()
            raise _ApiError(502, "Bad Gateway")  # to a process that is gone
        return await super()._send_message(params, call)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_kill_9_between_the_opt_out_and_its_confirmation(
    db_url: str, tmp_path: Path, zygote: Zygote
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "drill.yaml").write_text(FLOW)
    chat_id = 7301
    async with await Database.open(db_url, auto_upgrade=True) as db:
        contact_id = await _queue_reminder(Store(db), chat_id)
    pid = 0
    async with HoldingApi() as api:
        env = {"SADA_TELEGRAM_TOKEN": TOKEN, "SADA_TELEGRAM_API_URL": api.base_url,
               "SADA_DATABASE_URL": db_url, "SADA_FLOWS_DIR": str(flows),
               "SADA_DATA_DIR": str(tmp_path)}
        person = api.user(chat_id, language_code="en")
        try:
            pid = await zygote.start("aiogram", env, tmp_path / "life0.log")
            stop = await person.send("/stop")
            await api.wait_for(api.held.is_set, WAIT, "the confirmation under way")
            async with await Database.open(db_url) as db:  # committed before the send
                committed = await _opted_out(Store(db), contact_id)
            killed = await zygote.kill(pid)
            api.release.set()
            confirmed_by_dead = api.updates_confirmed > stop["update_id"]
            if confirmed_by_dead:  # Telegram would not redeliver it: make it come again
                api.redeliver(stop)
            pid = await zygote.start("ptb", env, tmp_path / "life1.log")
            await api.wait_for(lambda: api.updates_confirmed > stop["update_id"], WAIT,
                               "the redelivered /stop handled and confirmed")
            await asyncio.sleep(0.3)  # a confirmation sent again would be out by now
            assert await zygote.kill(pid, signal.SIGTERM) == 0
        finally:
            if pid:
                await zygote.kill(pid)
    async with await Database.open(db_url) as db:
        opted_out, queued = await _opted_out(Store(db), contact_id)
    confirmations = sum(STOPPED in t for t in api.texts(chat_id))
    tracebacks = sum((tmp_path / f"life{n}.log").read_text(errors="replace").count("Traceback")
                     for n in (0, 1))
    print(f"\nkill -9 at the confirmation ({db_url.split(':', 1)[0]}): tried 1 stop, 2 "
          f"deliveries, 1 kill; committed before the send {committed[0]}; lost opt-outs "
          f"{int(not opted_out)}; queued left {queued}; confirmations shown {confirmations}; "
          f"confirmed by the dead process {confirmed_by_dead}; tracebacks {tracebacks}")
    assert killed == -signal.SIGKILL
    assert committed == (True, 0)  # the stop was whole before its confirmation left
    assert opted_out and queued == 0
    assert confirmations == 0  # the held one never showed; the redelivery changed nothing
    assert tracebacks == 0
