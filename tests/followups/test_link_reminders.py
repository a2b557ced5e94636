"""`sada remind`: reminders of contacts invited by link, exported once for staff to send,
at the times the chat reminders keep, with the invitation's own link; expiry waits for them.
The clock is a parameter, as in test_reminders."""

from __future__ import annotations

import asyncio
import csv
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import typer
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import remind as remind_cli
from bot.flow.model import Flow
from bot.followups.invite import Audience, invite_contacts
from bot.followups.link_reminders import (
    COLUMNS,
    LINK_CHANNEL,
    LinkRemindersReport,
    export_link_reminders,
)
from bot.followups.reminders import plan_reminders
from bot.settings import get_settings
from storage.db import Database
from storage.models import Contact, ContactIdentity, Invitation, Outbox
from storage.repo import Store
from tests.followups.test_contacts import STAKEHOLDERS, cli_db, sada
from tests.followups.test_invite import FLOW_YAML, load_stakeholders
from tests.followups.test_reminders import (
    SUNDAY_10,
    finish,
    invitation_of,
    open_session,
    review,
    utc,
)

__all__ = ["cli_db"]

runner = CliRunner()

# Layla (CRM-17) has only her CRM id: Arabic, no zone (UTC), so Sunday–Thursday; the
# flow reminds after 2 and 5 days, 09:00–18:00. Invited on Sunday 22 Nov at 10:00 UTC:
TUESDAY_10 = utc(2026, 11, 24, 10, 0)  # step 1's slot
SUNDAY_29_9 = utc(2026, 11, 29, 9, 0)  # step 2: +5 days is a Friday, so Sunday 09:00


async def layla(store: Store) -> Contact:
    found = await store.find_contact("external", "CRM-17")
    assert found is not None and found.id is not None
    return found


async def invite_by_link(database: Database, store: Store, the_flow: Flow,
                         tmp_path: Path) -> tuple[Invitation, str]:
    """Invite Layla; her invitation and the link the invitation's file gave her."""
    await load_stakeholders(database)
    who = await layla(store)
    links = tmp_path / "invite-links.csv"
    await invite_contacts(database, flow=the_flow, audience=Audience(contact_ids=(who.id or 0,)),
                          at=SUNDAY_10, context={"touchpoint": "qbr"}, now=SUNDAY_10,
                          bot_username="sada_test_bot", links_out=links)
    with links.open(encoding="utf-8-sig") as fh:
        (row,) = list(csv.DictReader(fh))
    async with database.session() as s, s.begin():
        (invitation,) = (await s.exec(select(Invitation))).all()
    return invitation, row["link"]


async def export(database: Database, the_flow: Flow, now: datetime, out: Path | None = None,
                 *, dry_run: bool = False) -> LinkRemindersReport:
    return await export_link_reminders(database, flows={the_flow.id: the_flow}, now=now,
                                       links_channel="telegram", bot_username="sada_test_bot",
                                       links_out=out, dry_run=dry_run)


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


async def outbox(database: Database) -> list[Outbox]:
    async with database.session() as s, s.begin():
        return sorted((await s.exec(select(Outbox))).all(), key=lambda r: r.id or 0)


async def test_each_due_step_is_exported_once_with_the_invitations_link(
        database: Database, store: Store, tmp_path: Path) -> None:
    the_flow = review()
    invitation, link = await invite_by_link(database, store, the_flow, tmp_path)
    first = tmp_path / "r1.csv"
    assert (await export(database, the_flow, TUESDAY_10 - timedelta(minutes=1), first)).rows \
        == []
    assert not first.exists()  # nothing due: no file

    report = await export(database, the_flow, TUESDAY_10, first)
    assert report.links_file == first
    (row,) = read(first)
    assert list(row) == list(COLUMNS)
    assert row == {"contact_id": str(invitation.contact_id), "external_id": "CRM-17",
                   "name": "ليلى حداد", "account": "Riyadh Foods", "role": "decision_maker",
                   "language": "ar", "link": link, "reminder": "1", "started": "no"}
    assert link == f"https://t.me/sada_test_bot?start={invitation.token}"
    (recorded,) = await outbox(database)
    assert (recorded.key, recorded.kind, recorded.status, recorded.channel, recorded.sent_at) \
        == (f"reminder:{invitation.id}:0", "reminder", "sent", LINK_CHANNEL, TUESDAY_10)

    # Again, later that day: exported already. The planner sees a sent step, queues nothing.
    again = tmp_path / "r2.csv"
    assert (await export(database, the_flow, TUESDAY_10 + timedelta(hours=3), again)).rows \
        == []
    assert not again.exists()
    planned = await plan_reminders(database, now=TUESDAY_10 + timedelta(hours=3),
                                   flows={the_flow.id: the_flow})
    assert (planned.planned, planned.expired) == (0, 0)
    current = await invitation_of(database, invitation.id)
    assert (current.status, current.reminders_sent, current.last_reminder_at) == \
        ("sent", 1, TUESDAY_10)

    # Step 2 on Sunday 09:00 (Friday and Saturday are Layla's weekend), with the same link.
    assert (await export(database, the_flow, SUNDAY_29_9 - timedelta(seconds=1))).rows == []
    (second,) = (await export(database, the_flow, SUNDAY_29_9, tmp_path / "r3.csv")).rows
    assert (second.step, second.link) == (2, link)
    assert (await export(database, the_flow, SUNDAY_29_9 + timedelta(days=1))).rows == []


async def test_not_before_the_local_window_and_one_nudge_after_a_gap(
        database: Database, store: Store, tmp_path: Path) -> None:
    the_flow = review()
    invitation, _ = await invite_by_link(database, store, the_flow, tmp_path)
    # Tuesday 19:00: step 1 is due, but Layla's window (09:00–18:00) is closed.
    assert (await export(database, the_flow, utc(2026, 11, 24, 19, 0))).rows == []
    # Sunday 29 Nov 10:00, nobody exported before: only the latest step, once.
    report = await export(database, the_flow, utc(2026, 11, 29, 10, 0), tmp_path / "r.csv")
    assert [r.step for r in report.rows] == [2] and report.dropped == 1
    assert [r.key for r in await outbox(database)] == [f"reminder:{invitation.id}:1"]


async def test_completed_and_opted_out_are_left_out(database: Database, store: Store,
                                                   tmp_path: Path) -> None:
    the_flow = review()
    invitation, _ = await invite_by_link(database, store, the_flow, tmp_path)
    who = await layla(store)
    session = await open_session(store, who, invitation, utc(2026, 11, 23, 12, 0))
    # Started: the reminder's link resumes the survey.
    (row,) = (await export(database, the_flow, TUESDAY_10, tmp_path / "a.csv")).rows
    assert row.started
    await finish(store, who, session, "completed", utc(2026, 11, 25, 12, 0))
    assert (await export(database, the_flow, SUNDAY_29_9, tmp_path / "b.csv")).rows == []
    assert (await invitation_of(database, invitation.id)).status == "completed"

    nguyen = await store.find_contact("external", "CRM-18")
    assert nguyen is not None and nguyen.id is not None
    await invite_contacts(database, flow=the_flow,
                          audience=Audience(contact_ids=(nguyen.id,)), at=SUNDAY_10,
                          context={"touchpoint": "qbr"}, now=SUNDAY_10,
                          bot_username="sada_test_bot", links_out=tmp_path / "c.csv")
    await store.set_contact_flags(nguyen.id, opted_out=True)
    assert (await export(database, the_flow, TUESDAY_10, tmp_path / "d.csv")).rows == []


async def test_a_contact_with_a_chat_now_is_reminded_in_it(database: Database, store: Store,
                                                          tmp_path: Path) -> None:
    the_flow = review()
    invitation, _ = await invite_by_link(database, store, the_flow, tmp_path)
    async with database.session() as s, s.begin():
        s.add(ContactIdentity(contact_id=invitation.contact_id, channel="telegram",
                              address="7001", created_at=SUNDAY_10))
    report = await export(database, the_flow, TUESDAY_10, tmp_path / "r.csv")
    assert (report.rows, report.by_chat) == ([], 1)
    planned = await plan_reminders(database, now=TUESDAY_10, flows={the_flow.id: the_flow})
    assert planned.planned == 1
    (queued,) = await outbox(database)
    assert (queued.key, queued.status, queued.channel, queued.address) == \
        (f"reminder:{invitation.id}:0", "queued", "telegram", "7001")


async def test_expiry_waits_for_an_exported_step(database: Database, store: Store,
                                                 tmp_path: Path) -> None:
    the_flow = review()
    invitation, _ = await invite_by_link(database, store, the_flow, tmp_path)
    flows = {the_flow.id: the_flow}
    await export(database, the_flow, TUESDAY_10, tmp_path / "a.csv")
    # The last step exported a day late (Monday 30 Nov 12:00): 2 days of grace from then.
    late = utc(2026, 11, 30, 12, 0)
    (row,) = (await export(database, the_flow, late, tmp_path / "b.csv")).rows
    assert row.step == 2
    # Without the export it would have expired on Tuesday 1 Dec 09:00.
    report = await plan_reminders(database, now=utc(2026, 12, 1, 9, 0), flows=flows)
    assert report.expired == 0
    assert (await invitation_of(database, invitation.id)).status == "sent"
    report = await plan_reminders(database, now=late + timedelta(days=2), flows=flows)
    assert report.expired == 1
    current = await invitation_of(database, invitation.id)
    assert (current.status, current.reason, current.reminders_sent) == \
        ("expired", "no_answer", 2)
    assert (await export(database, the_flow, late + timedelta(days=3))).rows == []


async def test_a_dry_run_writes_nothing(database: Database, store: Store,
                                        tmp_path: Path) -> None:
    the_flow = review()
    await invite_by_link(database, store, the_flow, tmp_path)
    out = tmp_path / "r.csv"
    report = await export(database, the_flow, TUESDAY_10, out, dry_run=True)
    assert len(report.rows) == 1 and report.links_file is None
    assert not out.exists() and list(tmp_path.glob(".r.csv*")) == []
    assert await outbox(database) == []
    assert len((await export(database, the_flow, TUESDAY_10, out)).rows) == 1


# --- the command --------------------------------------------------------------------------

# Reminders any day at any hour, so the command's own clock finds the step due.
ALWAYS_YAML = FLOW_YAML.replace('  window: "09:00-18:00"\n', '  window: "00:00-00:00"\n'
                                '  days: [mon, tue, wed, thu, fri, sat, sun]\n')


def app() -> typer.Typer:
    found = sada()
    found.command("remind")(remind_cli.remind)
    return found


def test_the_command_exports_once_and_says_so(cli_db: str, tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "account-review.yaml").write_text(ALWAYS_YAML, encoding="utf-8")
    assert runner.invoke(app(), ["contacts", "import", str(STAKEHOLDERS)]).exit_code == 0
    invited = runner.invoke(app(), ["invite", "--flow", "account-review", "--segment", "smb",
                                    "-c", "touchpoint=qbr",
                                    "--links-out", str(tmp_path / "i.csv")])
    assert invited.exit_code == 0, invited.output

    quiet = runner.invoke(app(), ["remind", "--flow", "account-review"])
    assert (quiet.exit_code, quiet.output) == (
        0, "account-review: no reminders due by link now\n")

    # Three days pass: step 1 (after 2 days) is due for Nguyen, who has only a CRM id.
    async def shift() -> None:
        async with await Database.open(cli_db) as db, db.session() as s, s.begin():
            for invitation in (await s.exec(select(Invitation))).all():
                if invitation.sent_at is not None:  # James has a chat: still scheduled
                    invitation.sent_at -= timedelta(days=3)

    asyncio.run(shift())
    out = tmp_path / "r.csv"
    dry = runner.invoke(app(), ["remind", "--flow", "account-review", "--links-out", str(out),
                                "--dry-run"])
    assert (dry.exit_code, dry.output) == (
        0, "account-review: 1 reminder due by link would be exported\n"
           "  dry run: nothing was changed\n")
    assert not out.exists()
    done = runner.invoke(app(), ["remind", "--links-out", str(out)])
    assert (done.exit_code, done.output) == (
        0, f"account-review: 1 reminder due by link: personal links in {out}; send them by "
           "e-mail, SMS or your helpdesk\n")
    (row,) = read(out)
    (invite_row,) = read(tmp_path / "i.csv")
    assert (row["external_id"], row["reminder"], row["link"]) == \
        ("CRM-18", "1", invite_row["link"])
    again = runner.invoke(app(), ["remind", "--links-out", str(tmp_path / "again.csv")])
    assert again.output == "account-review: no reminders due by link now\n"


def test_bad_input_is_one_line(cli_db: str, tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "account-review.yaml").write_text(ALWAYS_YAML, encoding="utf-8")
    unknown = runner.invoke(app(), ["remind", "--flow", "nope"])
    assert unknown.exit_code == 2
    assert unknown.output.startswith("no flow 'nope' in ")
    assert unknown.output.endswith("flows there: account-review\n")
    channel = runner.invoke(app(), ["remind", "--links-channel", "fax"])
    assert channel.exit_code == 2 and channel.output.startswith("--links-channel: ")
    assert len(channel.output.splitlines()) == 1


def test_links_need_a_name(cli_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SADA_BOT_USERNAME")
    get_settings.cache_clear()
    missing = runner.invoke(app(), ["remind", "--links-channel", "telegram"])
    assert (missing.exit_code, missing.output) == (
        2, "the links need SADA_TELEGRAM__BOT_USERNAME (the bot's @username): set it or pass "
           "--bot-username\n")

