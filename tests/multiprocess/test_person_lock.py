"""One person's updates at two processes (two engines on one PostgreSQL database, as two
`sada run` behind a load balancer): the same update delivered to both at once is applied
once; two updates of one person are applied one after the other, while another person's
goes on beside them (storage/locks.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest

from bot.conversation.controller import Controller, load_flows
from bot.conversation.events import Typed
from bot.messaging.transport import Transport
from storage.db import Database
from storage.locks import lock_address
from storage.repo import DuplicateUpdate, Store
from tests.conversation.test_controller import ROOT, Chat, Recorder, _no_sleep

pytestmark = pytest.mark.postgres


@pytest.fixture
async def cores(database: Database) -> AsyncIterator[list[Controller]]:
    if database.engine.dialect.name != "postgresql":
        pytest.skip("several processes need PostgreSQL")
    flows = load_flows(ROOT / "flows")
    engines = [await Database.open(database.url) for _ in range(2)]
    try:
        yield [Controller(Store(db), flows, channel="telegram", bot_username="sada_test_bot",
                          admin_ids=frozenset({"1"}), secret="test-secret", sleep=_no_sleep)
               for db in engines]
    finally:
        for db in engines:
            await db.close()


async def _answers(store: Store, chat: str) -> list[str]:
    contact = await store.find_contact("telegram", chat)
    assert contact is not None and contact.id is not None
    [session] = (await store.export_contact(contact.id))["sessions"]
    return [a["question_id"] for a in session["answers"]]


async def test_one_update_at_two_processes_at_once_is_applied_once(
    cores: list[Controller],
) -> None:
    first, second = cores
    tr = Recorder()
    chat = Chat(first, tr, 51, "en")
    await chat.send("/start")
    await chat.press("Supplier relationship review")
    sent = len(tr.sent)
    event = Typed(777001, chat.chat_id, chat.user, "1")
    await asyncio.gather(first.process(event, cast(Transport, tr)),
                         second.process(event, cast(Transport, tr)))
    assert len(tr.sent) == sent + 1  # one next question, from one of them
    assert await _answers(first.store, "51") == ["stakeholder"]


async def _by_lock(tx: Store, chat_id: str) -> None:
    await lock_address(tx.database, "telegram", chat_id)


async def _by_claim(tx: Store, chat_id: str) -> None:
    # the controller's way: the lock taken by the update's claim, in one statement
    await tx.claim_update("telegram:other", 777_900, lock=("telegram", chat_id))


@pytest.mark.parametrize("hold", [_by_lock, _by_claim], ids=["lock_address", "claim"])
async def test_one_persons_updates_wait_for_each_other_not_for_others(
    cores: list[Controller], hold: Callable[[Store, str], Awaitable[None]],
) -> None:
    first, second = cores
    tr = Recorder()
    sara, omid = Chat(first, tr, 52, "en"), Chat(first, tr, 53, "en")
    for chat in (sara, omid):
        await chat.send("/start")
        await chat.press("Supplier relationship review")
    # process 1 is in the middle of an update of Sara's (its transaction holds her lock)
    async with first.store.transaction() as tx:
        await hold(tx, sara.chat_id)
        hers = asyncio.ensure_future(second.process(
            Typed(777101, sara.chat_id, sara.user, "1"), cast(Transport, tr)))
        await second.process(Typed(777102, omid.chat_id, omid.user, "1"), cast(Transport, tr))
        await asyncio.sleep(0.1)
        assert not hers.done()  # waits for process 1's update of hers
        assert await _answers(second.store, "53") == ["stakeholder"]  # Omid's went on
    await hers
    assert await _answers(second.store, "52") == ["stakeholder"]


async def test_a_claim_with_its_lock_is_still_refused_when_redelivered(
    cores: list[Controller],
) -> None:
    store = cores[0].store
    async with store.transaction() as tx:
        await tx.claim_update("telegram:sada_test_bot", 778_001, lock=("telegram", "54"))
    with pytest.raises(DuplicateUpdate):
        async with store.transaction() as tx:
            await tx.claim_update("telegram:sada_test_bot", 778_001, lock=("telegram", "54"))
    with pytest.raises(RuntimeError, match=r"Store\.transaction"):
        await store.claim_update("telegram:sada_test_bot", 778_002, lock=("telegram", "54"))
