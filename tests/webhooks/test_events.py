"""Webhook events are queued in the transaction of the change that causes them: a survey
step completing a response, a case opened by a low score, a case resolved. A change rolled
back leaves no event; nobody subscribed, no row. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine import inputs as i
from bot.flow.loader import LoadedFlow, load_flow_text
from bot.followups.hooks import survey_hooks
from bot.followups.webhooks import webhook_hook
from bot.survey import Conversation, Step, SurveyService
from storage import webhooks
from storage.cases import resolve_case
from storage.db import Database
from storage.models import Contact, WebhookDelivery
from storage.repo import Store

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
STAFF = [("telegram", "-1001")]

FLOW = """
id: hooked
languages: [en]
default_language: en
title: {en: "Hooked"}
intro: {en: "Hi"}
outro: {en: "Thanks"}
groups:
  - id: main
    title: {en: "Main"}
    questions:
      - {id: nps, type: nps, text: {en: "Recommend us?"}}
      - {id: why, type: text, optional: true, text: {en: "Why?"}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=5)
        return self.now


@pytest.fixture
def flow() -> LoadedFlow:
    return load_flow_text(FLOW)


async def deliveries(database: Database) -> list[WebhookDelivery]:
    async with database.session() as s, s.begin():
        return list(await s.exec(select(WebhookDelivery).order_by(col(WebhookDelivery.id))))


async def started(store: Store, flow: LoadedFlow, service: SurveyService,
                  ) -> tuple[Contact, Conversation]:
    # channel "external": the address is the company's own id for them (external_id)
    contact = await store.upsert_contact("external", "crm-42", name="Sara", language="en",
                                         now=T0)
    conversation = await service.open(contact, flow, context={"ticket": "T-7"})
    await service.handle(conversation, i.Start())
    return contact, conversation


async def test_response_completed_with_answers_scores_and_contact(
    store: Store, database: Database, flow: LoadedFlow
) -> None:
    sub = await webhooks.add_subscription(database, "https://crm.example/h",
                                          ["response.completed", "case.opened"], now=T0)
    await webhooks.add_subscription(database, "https://other.example/h", ["case.resolved"],
                                    now=T0)
    service = SurveyService(store, Clock(), hooks=survey_hooks(STAFF))
    contact, conversation = await started(store, flow, service)
    await service.handle(conversation, i.Reply("9"))
    assert await deliveries(database) == []  # not completed yet
    await service.handle(conversation, i.Reply("fast and kind"))
    assert conversation.state.status == "completed"
    [row] = await deliveries(database)
    assert (row.subscription_id, row.event_type, row.status) == (
        sub.id, "response.completed", "queued")
    payload = json.loads(row.body)
    assert payload["id"] == row.event_id and payload["type"] == "response.completed"
    data: dict[str, Any] = payload["data"]
    assert data["flow"]["id"] == "hooked" and data["flow"]["version_id"] is not None
    assert data["session_id"] == conversation.session_id
    assert data["contact"] == {"id": contact.id, "external_id": "crm-42"}
    assert data["context"] == {"ticket": "T-7"} and data["language"] == "en"
    assert data["answers"] == {
        "nps": {"type": "nps", "value": 9, "text": "9", "skipped": False},
        "why": {"type": "text", "value": "fast and kind", "text": "fast and kind",
                "skipped": False}}
    assert data["scores"] == {"nps": {"type": "nps", "score": 9}}
    assert payload["created_at"] == data["completed_at"]


async def test_a_completion_rolled_back_leaves_no_event(
    store: Store, database: Database, flow: LoadedFlow
) -> None:
    await webhooks.add_subscription(database, "https://crm.example/h",
                                    ["response.completed"], now=T0)

    async def broken(s: AsyncSession, step: Step) -> None:
        if step.after.status == "completed":
            raise RuntimeError("the step's transaction fails after the event was queued")

    service = SurveyService(store, Clock(), hooks=[webhook_hook, broken])
    _, conversation = await started(store, flow, service)
    await service.handle(conversation, i.Reply("9"))
    with pytest.raises(RuntimeError):
        await service.handle(conversation, i.Reply("why not"))
    session = await store.get_session(conversation.session_id)
    assert session is not None and session.status != "completed"
    assert await deliveries(database) == []


async def test_a_low_score_opens_a_case_and_queues_case_opened_then_resolved(
    store: Store, database: Database, flow: LoadedFlow
) -> None:
    opened_sub = await webhooks.add_subscription(database, "https://a.example/h",
                                                 ["case.opened"], now=T0)
    both = await webhooks.add_subscription(database, "https://b.example/h",
                                           ["case.opened", "case.resolved"], now=T0)
    service = SurveyService(store, Clock(), hooks=survey_hooks(STAFF))
    contact, conversation = await started(store, flow, service)
    await service.handle(conversation, i.Reply("2"))
    rows = await deliveries(database)
    assert [(r.subscription_id, r.event_type) for r in rows] == [
        (opened_sub.id, "case.opened"), (both.id, "case.opened")]
    assert rows[0].event_id == rows[1].event_id and rows[0].body == rows[1].body
    data = json.loads(rows[0].body)["data"]
    case_id = data["case"]["id"]
    assert data["case"]["status"] == "open" and data["flow"] == {"id": "hooked"}
    assert data["reason"] == {"question_id": "nps", "score": 2, "comment": None}
    assert data["contact"] == {"id": contact.id, "external_id": "crm-42"}
    assert data["session_id"] == conversation.session_id

    later = T0 + timedelta(hours=3)
    await resolve_case(database, case_id, note="called back", by="mona", now=later)
    resolved = [r for r in await deliveries(database) if r.event_type == "case.resolved"]
    assert [r.subscription_id for r in resolved] == [both.id]
    data = json.loads(resolved[0].body)["data"]
    assert data["case"] == {"id": case_id, "status": "resolved", "opened_at": data["case"][
        "opened_at"], "resolved_at": "2026-11-30T12:00:00Z", "resolved_by": "mona",
        "note": "called back"}


async def test_no_subscription_no_rows_and_unknown_events_refused(
    store: Store, database: Database, flow: LoadedFlow
) -> None:
    service = SurveyService(store, Clock(), hooks=survey_hooks(STAFF))
    _, conversation = await started(store, flow, service)
    await service.handle(conversation, i.Reply("1"))
    await service.handle(conversation, i.Reply("bad"))
    assert conversation.state.status == "completed"
    assert await deliveries(database) == []
    async with database.session() as s, s.begin():
        with pytest.raises(ValueError, match=r"use one of response\.completed"):
            await webhooks.emit(s, "case.reopened", {}, now=T0)


async def test_a_disabled_subscription_still_gets_events_to_send_later(
    database: Database
) -> None:
    sub = await webhooks.add_subscription(database, "https://a.example/h", ["case.opened"],
                                          now=T0)
    async with database.session() as s, s.begin():
        row = await s.get(type(sub), sub.id)
        assert row is not None
        row.active = False
    async with database.session() as s, s.begin():
        assert await webhooks.emit(s, "case.opened", {"n": 1}, now=T0) is not None
    assert len(await deliveries(database)) == 1
    assert await webhooks.claim_due(database, now=T0 + timedelta(days=1), limit=5,
                                    lease=timedelta(minutes=1)) == []
