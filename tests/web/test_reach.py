"""A web page shows what was sent only while it is open: invitations and reminders go to its
visitors as links for staff to send, and a personal link opened in a second browser is
still its person's (a visitor id per browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.channels.web import http
from bot.flow.loader import load_flow
from bot.followups.invite import Audience, invite_contacts
from bot.followups.reminders import plan_reminders
from bot.messaging.links import create_link
from bot.messaging.registry import CHANNELS
from storage.db import Database
from storage.models import Contact, ContactIdentity, Invitation, Outbox
from storage.repo import Store
from tests.web.conftest import ROOT, Served

POST_SUPPORT = load_flow(ROOT / "flows" / "post_support.yaml").flow
PUBLIC_FLOW = "b2b-supplier"


def texts(messages: list[dict[str, object]]) -> str:
    return "\n".join(str(m.get("text") or "") for m in messages)


async def web_identities(database: Database, contact_id: int) -> list[str]:
    async with database.session() as s, s.begin():
        rows = await s.exec(select(ContactIdentity.address).where(
            ContactIdentity.contact_id == contact_id, ContactIdentity.channel == "web"))
        return sorted(rows.all())


def test_the_web_chat_does_not_reach_the_absent() -> None:
    assert "web" not in CHANNELS.reaching_absent()
    assert "telegram" in CHANNELS.reaching_absent()


async def test_a_personal_link_opened_in_a_second_browser_is_still_theirs(
    served: Served, store: Store, database: Database,
) -> None:
    contact = await store.upsert_contact("external", "CRM-7", name="Sara")
    assert contact.id is not None
    url = await create_link(store, channel="web", flow_id=POST_SUPPORT.id,
                            contact_id=contact.id, context={"ticket": "T-9"},
                            bot_username="http://testserver")
    token = url.rsplit("/", 1)[1]

    laptop = await served.open(token=token, lang="en")
    first, _ = await served.poll(laptop["visitor"], 0)
    assert "T-9" in texts(first)

    phone = await served.open(token=token, lang="en")
    assert phone["visitor"] != laptop["visitor"]
    shown, _ = await served.poll(phone["visitor"], 0)
    # the same person, at the same step (the consent the laptop was asked), not refused
    assert "someone else" not in texts(shown) and "Do you agree?" in texts(shown)
    assert await web_identities(database, contact.id) == sorted(
        [laptop["visitor"], phone["visitor"]])
    async with database.session() as s, s.begin():  # no second contact left behind
        assert len((await s.exec(select(Contact))).all()) == 1


async def test_a_visitor_is_invited_and_reminded_by_link_not_on_the_page(
    served: Served, store: Store, database: Database, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The last poll looks at what is stored at once, and nothing runs here that could write
    # later: it need not be held open its full 25 s (POLL_SECONDS) before answering empty.
    monkeypatch.setattr(http, "POLL_SECONDS", 0.2)
    opened = await served.open(flow=PUBLIC_FLOW, lang="fa")
    await served.settled()
    visitor = await store.find_contact("web", opened["visitor"])
    assert visitor is not None and visitor.id is not None
    _, last = await served.poll(opened["visitor"], 0)

    now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)  # a Sunday morning
    links = tmp_path / "links.csv"
    report = await invite_contacts(
        database, flow=POST_SUPPORT, audience=Audience(contact_ids=(visitor.id,)), at=now,
        context={"ticket": "T-1"}, now=now, bot_username="https://cx.example.com",
        links_out=links, links_channel="web")
    assert (report.by_message, report.by_link) == (0, 1)
    assert "https://cx.example.com/s/" in links.read_text(encoding="utf-8-sig")

    async with database.session() as s, s.begin():
        invitation = (await s.exec(select(Invitation))).one()
        invitation.sent_at = now  # handed to staff with the link
    await plan_reminders(database, flows={POST_SUPPORT.id: POST_SUPPORT},
                         now=now + timedelta(days=7))
    async with database.session() as s, s.begin():
        queued = (await s.exec(select(Outbox).where(Outbox.channel == "web"))).all()
    assert queued == []  # nothing for a page nobody may open again
    after, _ = await served.poll(opened["visitor"], last)
    assert after == []
