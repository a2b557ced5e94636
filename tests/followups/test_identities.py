"""Contacts with several identities: an address per channel, each with its own reachability;
invitations and reminders go to the preferred reachable one, else the one last written from;
a block on one channel leaves the others; contacts files give an id per channel."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from bot.followups.contacts_csv import ImportConflict, import_contacts, parse_contacts
from bot.followups.invite import Audience, invite_contacts
from bot.followups.reminders import plan_reminders
from bot.messaging.links import start_press
from storage.db import Database
from storage.identities import pick_identity
from storage.invitations import count_contacts
from storage.models import ContactIdentity, Invitation, Outbox
from storage.outbox import claim_due, mark_blocked, mark_sent
from storage.repo import Store
from tests.followups.outbox_fakes import rendered
from tests.followups.test_contacts import cli_db, sada
from tests.followups.test_invite import FLOW_YAML, flow
from tests.followups.test_reminders import SUNDAY_10, utc

__all__ = ["cli_db"]

runner = CliRunner()

TWO_CHANNELS = ("telegram_id,bale_id,name,language,timezone,preferred_channel\n"
                "1001,2001,Sara,fa,Asia/Tehran,bale\n"
                "1002,,Reza,fa,Asia/Tehran,\n"
                ",2003,Omid,fa,Asia/Tehran,\n")


async def _import(database: Database, tmp_path: Path, text: str = TWO_CHANNELS) -> None:
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    parsed = parse_contacts(path)
    assert parsed.problems == []
    await import_contacts(database, parsed.rows, now=SUNDAY_10 - timedelta(days=1))


async def _id(store: Store, channel: str, address: str) -> int:
    found = await store.find_contact(channel, address)
    assert found is not None and found.id is not None
    return found.id


async def _invite(database: Database, ids: tuple[int, ...], *,
                  flow_id: str = "account-review") -> None:
    the_flow = flow(account_limit=None, id=flow_id)
    await invite_contacts(database, flow=the_flow, audience=Audience(contact_ids=ids),
                          at=SUNDAY_10, context={"touchpoint": "qbr"}, now=SUNDAY_10,
                          bot_username="sada_test_bot", links_out=None)


async def _outbox(database: Database, kind: str) -> dict[int, Outbox]:
    async with database.session() as s, s.begin():
        rows = (await s.exec(select(Outbox).where(Outbox.kind == kind))).all()
    return {row.contact_id or 0: row for row in rows}


async def _deliver(database: Database, now: object) -> list[Outbox]:
    """The dispatchers of both channels: every due row claimed and marked sent."""
    rows = await claim_due(database, now=now, limit=100,  # type: ignore[arg-type]
                           lease=timedelta(minutes=5), worker="test",
                           channels={"telegram", "bale"})
    for row in rows:
        await mark_sent(database, row.id or 0, 1, now,  # type: ignore[arg-type]
                        claimed_until=row.locked_until)
    return rows


# --- choosing an identity --------------------------------------------------------------


def _identity(channel: str, *, unreachable: bool = False, seen_hours: int | None = None,
              number: int = 1) -> ContactIdentity:
    seen = None if seen_hours is None else SUNDAY_10 + timedelta(hours=seen_hours)
    return ContactIdentity(id=number, contact_id=1, channel=channel, address=f"{channel}-1",
                           unreachable=unreachable, last_inbound_at=seen, created_at=SUNDAY_10)


def test_pick_prefers_the_preferred_channel_then_the_last_written_from() -> None:
    telegram = _identity("telegram", seen_hours=5, number=1)
    bale = _identity("bale", seen_hours=1, number=2)
    assert pick_identity([telegram, bale], "bale") is bale
    assert pick_identity([telegram, bale], None) is telegram  # they wrote from it last
    assert pick_identity([telegram, bale], "whatsapp") is telegram
    blocked = _identity("bale", unreachable=True, seen_hours=9, number=2)
    assert pick_identity([telegram, blocked], "bale") is telegram
    assert pick_identity([_identity("telegram", unreachable=True)], None) is None
    assert pick_identity([], "bale") is None
    # never written from: the oldest identity
    first, second = _identity("telegram", number=1), _identity("bale", number=2)
    assert pick_identity([second, first], None) is first
    assert pick_identity([telegram, bale], None, channels={"bale"}) is bale


# --- invitations and reminders -----------------------------------------------------------


async def test_preferred_bale_gets_the_invitation_and_reminders_on_bale(
    database: Database, store: Store, tmp_path: Path
) -> None:
    await _import(database, tmp_path)
    sara, reza, omid = (await _id(store, "telegram", "1001"), await _id(store, "telegram", "1002"),
                        await _id(store, "bale", "2003"))
    assert sara == await _id(store, "bale", "2001")  # one contact, two identities
    await _invite(database, (sara, reza, omid))
    invitations = await _outbox(database, "invitation")
    assert {c: (r.channel, r.address) for c, r in invitations.items()} == {
        sara: ("bale", "2001"), reza: ("telegram", "1002"), omid: ("bale", "2003")}
    async with database.session() as s, s.begin():
        tokens = {i.contact_id: i.token for i in (await s.exec(select(Invitation))).all()}
    written = await rendered(database, invitations[sara], {"account-review": flow()})
    button = written.keyboard[0][0]
    assert button.data == start_press("bale", tokens[sara] or "")

    assert len(await _deliver(database, SUNDAY_10)) == 3
    for now in (utc(2026, 11, 24, 9, 50), utc(2026, 11, 24, 10, 0), utc(2026, 11, 28, 5, 20),
                utc(2026, 11, 28, 5, 30)):
        await plan_reminders(database, now=now, flows={"account-review": flow()})
        await _deliver(database, now)
    async with database.session() as s, s.begin():
        rows = (await s.exec(select(Outbox).where(Outbox.kind == "reminder",
                                                  Outbox.contact_id == sara))).all()
    assert [(r.channel, r.address, r.status) for r in rows] == [("bale", "2001", "sent")] * 2


async def test_a_block_on_one_channel_leaves_the_other(
    database: Database, store: Store, tmp_path: Path
) -> None:
    await _import(database, tmp_path)
    sara = await _id(store, "telegram", "1001")
    await _invite(database, (sara,))
    [row] = await claim_due(database, now=SUNDAY_10, limit=10, lease=timedelta(minutes=5),
                            worker="test", channels={"bale"})
    assert (row.channel, row.address) == ("bale", "2001")
    await mark_blocked(database, row.id or 0, "403: blocked", SUNDAY_10,
                       claimed_until=row.locked_until)
    assert {i.channel: i.unreachable for i in await store.identities(sara)} == {
        "telegram": False, "bale": True}
    async with database.session() as s, s.begin():
        assert await count_contacts(s, unreachable=True) == 0
        assert await count_contacts(s, reachable=True, ids=[sara]) == 1

    # the next invitation goes to the identity still reachable
    await _invite(database, (sara,), flow_id="second-review")
    async with database.session() as s, s.begin():
        second = (await s.exec(select(Outbox).where(Outbox.kind == "invitation",
                                                    Outbox.status == "queued"))).all()
    assert [(r.channel, r.address) for r in second] == [("telegram", "1001")]

    # writing again from Bale makes it reachable, and the preferred one again
    seen = SUNDAY_10 + timedelta(hours=1)
    again = await store.upsert_contact("bale", "2001", seen_at=seen)
    assert again.id == sara
    bale = {i.channel: i for i in await store.identities(sara)}["bale"]
    assert (bale.unreachable, bale.last_inbound_at) == (False, seen)
    assert (await store.contact_address(sara)).channel == "bale"  # type: ignore[union-attr]

    # blocked everywhere: now the contact is unreachable, and skipped
    await store.set_contact_flags(sara, unreachable=True)
    await _invite(database, (sara,), flow_id="third-review")
    async with database.session() as s, s.begin():
        assert await count_contacts(s, unreachable=True) == 1
        third = (await s.exec(select(Invitation).where(
            Invitation.flow_id == "third-review"))).one()
    assert (third.status, third.reason) == ("skipped", "unreachable")


async def test_an_unreachable_identity_cancels_only_its_own_queue(
    database: Database, store: Store, tmp_path: Path
) -> None:
    from storage.invitations import on_unreachable

    await _import(database, tmp_path)
    sara = await _id(store, "telegram", "1001")
    await _invite(database, (sara,))
    async with database.session() as s, s.begin():
        assert await on_unreachable(s, channel="telegram", address="1001", now=SUNDAY_10) == 0
    [invitation] = (await _outbox(database, "invitation")).values()
    assert invitation.status == "queued"  # it goes to Bale
    async with database.session() as s, s.begin():
        assert await on_unreachable(s, channel="bale", address="2001", now=SUNDAY_10) == 1
        state = (await s.exec(select(Invitation))).one()
    assert (state.status, state.reason) == ("cancelled", "unreachable")


async def test_the_first_messages_from_a_new_address_make_one_contact(store: Store) -> None:
    made = await asyncio.gather(*(store.upsert_contact("bale", "77", first_name="Ali",
                                                       seen_at=SUNDAY_10)
                                  for _ in range(5)))
    assert len({c.id for c in made}) == 1
    [identity] = await store.identities(made[0].id or 0)
    assert (identity.channel, identity.address, identity.last_inbound_at) == (
        "bale", "77", SUNDAY_10)
    assert await store.find_contact("telegram", "77") is None


async def test_an_unshown_question_is_shown_where_they_last_wrote(
    database: Database, store: Store, tmp_path: Path
) -> None:
    await _import(database, tmp_path)
    sara = await _id(store, "telegram", "1001")
    await store.upsert_contact("bale", "2001", seen_at=SUNDAY_10)
    version = await store.flow_version("account-review", FLOW_YAML, now=SUNDAY_10)
    session = await store.open_session(
        contact_id=sara, flow_version_id=version.id or 0, flow_id="account-review",
        language="fa", context={}, state={}, status="active", position="nps", now=SUNDAY_10)
    assert [(s.id, a) for s, a in await store.undelivered_sessions("bale")] == [
        (session.id, "2001")]
    assert await store.undelivered_sessions("telegram") == []
    await store.upsert_contact("telegram", "1001", seen_at=SUNDAY_10 + timedelta(minutes=1))
    assert [a for _, a in await store.undelivered_sessions("telegram")] == ["1001"]
    assert await store.undelivered_sessions("bale") == []


# --- contacts files ----------------------------------------------------------------------


async def test_a_file_with_telegram_and_bale_ids_imports_and_reimports(
    database: Database, store: Store, tmp_path: Path
) -> None:
    await _import(database, tmp_path)
    sara = await _id(store, "bale", "2001")
    contact = await store.get_contact(sara)
    assert contact is not None and contact.preferred_channel == "bale"
    # a later file adds Reza's Bale chat and the company's id: the same contact, updated
    path = tmp_path / "more.csv"
    path.write_text("telegram,bale,external_id\n1002,2002,CRM-2\n1001,2001,\n",
                    encoding="utf-8")
    summary = await import_contacts(database, parse_contacts(path).rows, now=SUNDAY_10)
    assert (summary.created, summary.updated, summary.unchanged) == (0, 1, 1)
    reza = await _id(store, "telegram", "1002")
    assert await _id(store, "bale", "2002") == reza == await _id(store, "external", "CRM-2")


async def test_ids_are_checked_per_channel_and_belong_to_one_contact(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("telegram_id,bale_id,preferred_channel\n"
                    "1001,abc,\n"
                    "1002,2002,sms\n"
                    "1003,2003,\n"
                    "1004,2003,\n", encoding="utf-8")
    assert [str(p) for p in parse_contacts(path, shown_as="bad.csv").problems] == [
        "bad.csv:2: bale_id: 'abc' is not a Bale id (use a positive number like 123456789, "
        "the person's chat id; put other ids in external_id)",
        "bad.csv:3: preferred_channel: 'sms' is not a channel (use one of bale, telegram, "
        "web, whatsapp, or leave it empty)",
        "bad.csv:5: bale_id: 2003 is also on line 4 (keep one row per contact; digits in any "
        "script count as the same)",
    ]
    await _import(database, tmp_path)
    # Sara's Telegram chat and Omid's Bale chat on one row: two people, refused whole
    path.write_text("name,telegram_id,bale_id\nX,1002,9\nSara,1001,2003\n", encoding="utf-8")
    with pytest.raises(ImportConflict) as caught:
        await import_contacts(database, parse_contacts(path).rows, now=SUNDAY_10,
                              file="f.csv")
    assert [str(p) for p in caught.value.problems] == [
        "f.csv:3: telegram_id: belongs to contact 1, but bale_id is contact 3's (one row per "
        "person: fix the ids, or merge them in your file)"]
    async with database.session() as s, s.begin():
        assert (await s.exec(select(ContactIdentity).where(  # nothing of the file imported
            ContactIdentity.address == "9"))).first() is None


def test_cli_lists_a_column_per_channel(cli_db: str, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(TWO_CHANNELS, encoding="utf-8")
    result = runner.invoke(sada(), ["contacts", "import", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(sada(), ["contacts", "list", "--format", "json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [(r["telegram_id"], r["bale_id"], r["preferred_channel"], r["state"])
            for r in records] == [("1001", "2001", "bale", "ok"), ("1002", None, None, "ok"),
                                  (None, "2003", None, "ok")]
    table = runner.invoke(sada(), ["contacts", "list"]).output
    assert "telegram" in table and "bale" in table and "2001" in table

    path.write_text("telegram_id,bale_id\n1002,2003\n", encoding="utf-8")
    result = runner.invoke(sada(), ["contacts", "import", str(path)])
    assert result.exit_code == 1 and "belongs to contact" in result.output
    assert "nothing imported: 1 row disagree" in result.output
