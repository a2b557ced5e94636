"""Engine + storage: every step is committed, a restart resumes, old versions stay put."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.engine import inputs as i
from bot.engine.prompts import Ask, Say
from bot.flow.loader import load_flow, load_flow_text
from bot.survey import SurveyService
from storage.repo import Store

ROOT = Path(__file__).resolve().parent.parent
B2B = ROOT / "flows" / "b2b_supplier.yaml"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=7)
        return self.now


async def test_answers_are_committed_and_a_new_process_resumes(store: Store) -> None:
    loaded = load_flow(B2B)
    contact = await store.upsert_contact("console", "sara", first_name="Sara", language="fa")
    service = SurveyService(store, Clock())
    conversation = await service.open(contact, loaded)
    assert conversation.state.language == "fa" and not conversation.resumed
    prompts = await service.handle(conversation, i.Start())
    assert isinstance(prompts[0], Say) and "Sara" in prompts[0].text
    first = prompts[-1]
    assert isinstance(first, Ask)
    await service.handle(conversation, i.Reply("۱"))
    rows = await store.answers(conversation.session_id)
    assert [(a.question_id, a.raw_text) for a in rows] == [(first.question_id, "۱")]

    # a new service, as after a restart, continues at the same question
    again = SurveyService(store, Clock())
    resumed = await again.open(contact, loaded)
    assert resumed.resumed and resumed.session_id == conversation.session_id
    assert resumed.state == conversation.state
    prompts = await again.handle(resumed, i.Start())
    ask = prompts[-1]
    assert isinstance(ask, Ask) and ask.question_id == conversation.state.current


async def test_rejected_answers_store_nothing(store: Store) -> None:
    loaded = load_flow(B2B)
    contact = await store.upsert_contact("console", "omar", language="ar")
    service = SurveyService(store, Clock())
    conversation = await service.open(contact, loaded)
    await service.handle(conversation, i.Start())
    before = await store.get_session(conversation.session_id)
    await service.handle(conversation, i.Reply("٩٩"))
    after = await store.get_session(conversation.session_id)
    assert await store.answers(conversation.session_id) == []
    assert before is not None and after is not None
    assert before.last_activity_at == after.last_activity_at


async def test_stop_opts_the_contact_out(store: Store) -> None:
    loaded = load_flow(B2B)
    contact = await store.upsert_contact("console", "lina", language="en")
    service = SurveyService(store, Clock())
    conversation = await service.open(contact, loaded)
    await service.handle(conversation, i.Start())
    await service.handle(conversation, i.Reply("توقف"))
    refreshed = await store.get_contact(contact.id)  # type: ignore[arg-type]
    assert refreshed is not None and refreshed.opted_out
    session = await store.get_session(conversation.session_id)
    assert session is not None and session.status == "stopped"


async def test_an_edited_flow_never_rewrites_a_running_session(store: Store) -> None:
    loaded = load_flow(B2B)
    contact = await store.upsert_contact("console", "reza", language="en")
    service = SurveyService(store, Clock())
    conversation = await service.open(contact, loaded)
    await service.handle(conversation, i.Start())
    edited = load_flow_text(loaded.source.replace("Supplier relationship review",
                                                  "Supplier review 2027"), str(B2B))
    resumed = await SurveyService(store, Clock()).open(contact, edited)
    assert resumed.session_id == conversation.session_id
    session = await store.get_session(resumed.session_id)
    assert session is not None
    version = await store.get_flow_version(session.flow_version_id)
    assert "Supplier relationship review" in version.content
    new_version = await store.flow_version(edited.flow.id, edited.source)
    assert new_version.id != version.id


async def test_hooks_commit_with_the_step_or_not_at_all(store: Store) -> None:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.survey import Step

    seen: list[Step] = []

    async def record(s: AsyncSession, change: Step) -> None:
        seen.append(change)
        if change.after.values().get("nps") == 0:
            raise RuntimeError("hook failed")

    loaded = load_flow(B2B)
    contact = await store.upsert_contact("console", "hook", language="en")
    service = SurveyService(store, Clock(), hooks=[record])
    conversation = await service.open(contact, loaded)
    await service.handle(conversation, i.Start())
    await service.handle(conversation, i.Reply("1"))
    assert seen[-1].before.current == "stakeholder" and seen[-1].after.current == "nps"
    with pytest.raises(RuntimeError):
        await service.handle(conversation, i.Reply("0"))
    # the failing hook rolled the whole step back: the answer is not stored
    assert [a.question_id for a in await store.answers(conversation.session_id)] == [
        "stakeholder"]


class Crash(BaseException):
    """A process dying mid-event: nothing catches it."""


async def test_an_event_applied_with_a_bound_store_commits_whole_or_not_at_all(
    store: Store,
) -> None:
    """Store.transaction(): the session opened, the step, its hooks and the update's claim
    commit together; a crash before the end leaves none of them, and a helper's failure
    inside (its own savepoint) rolls back alone."""
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.survey import Step
    from storage.repo import DuplicateUpdate

    loaded = load_flow(B2B)
    contact = await store.upsert_contact("console", "tx", language="en")
    hooked: list[str | None] = []

    async def hook(s: AsyncSession, change: Step) -> None:
        hooked.append(change.after.current)

    service = SurveyService(store, Clock(), hooks=[hook])
    with pytest.raises(Crash):
        async with store.transaction() as tx:
            await tx.claim_update("test", 1)
            conversation = await service.using(tx).open(contact, loaded)
            await service.using(tx).handle(conversation, i.Start())
            await service.using(tx).handle(conversation, i.Reply("1"))
            assert hooked and await tx.answers(conversation.session_id)  # seen inside
            raise Crash
    assert contact.id is not None
    assert await store.latest_open_session(contact.id) is None  # nothing of it is left
    async with store.transaction() as tx:
        await tx.claim_update("test", 1)  # not claimed by the crashed attempt
        conversation = await service.using(tx).open(contact, loaded)
        await service.using(tx).handle(conversation, i.Start())
        with pytest.raises(DuplicateUpdate):  # a failed helper: its savepoint only
            await tx.claim_update("test", 1)
        await service.using(tx).handle(conversation, i.Reply("1"))
    assert [a.question_id for a in await store.answers(conversation.session_id)] == [
        "stakeholder"]
    with pytest.raises(DuplicateUpdate):
        await store.claim_update("test", 1)
