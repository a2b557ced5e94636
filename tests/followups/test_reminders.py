"""Reminders to the silent: exact local times, never after completion, opt-out or block,
once after downtime, then expiry. The clock is a parameter; the dispatcher is simulated with
the outbox's own claim and mark-sent, as the scheduler does it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from typer.testing import CliRunner

from bot.flow.model import Flow, Reminders
from bot.followups.invite import Audience, invite_contacts
from bot.followups.reminders import (
    ReminderReport,
    plan_reminders,
    reminder_message,
    roles_summary,
    silent_by_role,
)
from bot.followups.render import Message, Skip
from bot.i18n import Translator
from bot.messaging.transport import Button
from storage.db import Database
from storage.invitations import (
    mark_started,
    on_opt_out,
    on_session_status,
    on_unreachable,
)
from storage.models import Contact, Invitation, Outbox
from storage.outbox import claim_due, mark_cancelled, mark_failed, mark_sent
from storage.repo import Store
from tests.followups.outbox_fakes import rendered
from tests.followups.test_contacts import cli_db, sada
from tests.followups.test_invite import FLOW_YAML, flow, load_stakeholders

__all__ = ["cli_db"]

runner = CliRunner()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


SUNDAY_10 = utc(2026, 11, 22, 10, 0)  # 13:30 Tehran, 13:00 Riyadh; a Sunday


def review(**changes: object) -> Flow:
    return flow(**{"account_limit": None, **changes})


# What deliver_due rendered for each row it marked sent, by outbox id.
DELIVERED: dict[int, Message] = {}


async def deliver_due(database: Database, now: datetime,
                      flows: dict[str, Flow] | None = None) -> list[Outbox]:
    """What the dispatcher does at `now`: claim every due message, write it (when given
    the flows: a row whose subject is gone is cancelled) and mark it sent."""
    rows = await claim_due(database, now=now, limit=1000, lease=timedelta(minutes=5),
                           worker="test", channels={"telegram"})
    for row in rows:
        assert row.id is not None
        if flows is not None:
            message = await rendered(database, row, flows)
            if isinstance(message, Skip):
                await mark_cancelled(database, row.id, message.reason,
                                     claimed_until=row.locked_until)
                continue
            DELIVERED[row.id] = message
        await mark_sent(database, row.id, 1, now, claimed_until=row.locked_until)
    return rows


async def tick(database: Database, now: datetime, the_flow: Flow) -> ReminderReport:
    report = await plan_reminders(database, now=now, flows={the_flow.id: the_flow})
    await deliver_due(database, now, {the_flow.id: the_flow})
    return report


async def contact(store: Store, external_id: str) -> Contact:
    found = await store.find_contact("telegram", external_id)
    assert found is not None and found.id is not None
    return found


async def invite_chats(database: Database, store: Store, the_flow: Flow, chats: list[str],
                       at: datetime = SUNDAY_10) -> dict[str, Invitation]:
    ids = tuple([(await contact(store, c)).id or 0 for c in chats])
    await invite_contacts(database, flow=the_flow, audience=Audience(contact_ids=ids), at=at,
                          context={"touchpoint": "qbr"}, now=at, bot_username="sada_test_bot",
                          links_out=None)
    return {c: inv for c, inv in zip(chats, await invitations(database, ids), strict=True)}


async def invitations(database: Database, contact_ids: tuple[int, ...]) -> list[Invitation]:
    async with database.session() as s, s.begin():
        rows = {i.contact_id: i for i in (await s.exec(select(Invitation))).all()}
    return [rows[c] for c in contact_ids]


async def reminders(database: Database) -> dict[int, list[Outbox]]:
    """Reminder messages per chat, in due order."""
    async with database.session() as s, s.begin():
        rows = (await s.exec(select(Outbox).where(Outbox.kind == "reminder"))).all()
    found: dict[int, list[Outbox]] = {}
    for row in sorted(rows, key=lambda r: (r.due_at, r.id)):
        found.setdefault(int(row.address), []).append(row)
    return found


async def invitation_of(database: Database, invitation_id: int | None) -> Invitation:
    async with database.session() as s, s.begin():
        found = await s.get(Invitation, invitation_id)
    assert found is not None
    return found


async def in_transaction(database: Database,
                         work: Callable[[AsyncSession], Awaitable[object]]) -> None:
    async with database.session() as s, s.begin():
        await work(s)


async def open_session(store: Store, who: Contact, invitation: Invitation,
                       now: datetime) -> int:
    """The person opens the invitation's survey (deep link or button), as the core does."""
    version = await store.flow_version("account-review", FLOW_YAML, now=now)
    session = await store.open_session(
        contact_id=who.id or 0, flow_version_id=version.id or 0, flow_id="account-review",
        language=who.language or "en", context={"touchpoint": "qbr"}, state={},
        status="active", position="nps", now=now)
    assert session.id is not None and invitation.token is not None
    await in_transaction(store.database, lambda s: mark_started(
        s, token=invitation.token or "", session_id=session.id or 0, now=now))
    return session.id


async def finish(store: Store, who: Contact, session_id: int, status: str, now: datetime,
                 *, hook: bool = True) -> None:
    """Commit a session's new status with the lead's hook inside the same transaction."""
    async def within(s: AsyncSession) -> None:
        await on_session_status(s, session_id=session_id, contact_id=who.id or 0,
                                flow_id="account-review", status=status, now=now)

    await store.save_state(
        session_id, state={}, status=status, position=None, language=who.language or "en",
        answers={"nps": ("9", 9, False)} if status == "completed" else {}, now=now,
        contact={"opted_out": True} if status == "stopped" else None,
        within=within if hook else None)


# --- exact times ---------------------------------------------------------------------------


async def test_reminders_arrive_at_exact_local_times(database: Database, store: Store) -> None:
    await load_stakeholders(database)
    await store.upsert_contact("telegram", "5001", name="No Zone", language="en")
    the_flow = review()  # reminders: after [2d, 5d], 09:00-18:00, working days by language
    sent = await invite_chats(database, store, the_flow, ["1001", "2001", "3001", "5001"])

    # The invitations themselves: Sunday is a working day in Tehran and Riyadh, not in
    # London or UTC, where they wait for Monday 09:00.
    assert [i.due_at for i in sent.values()] == [SUNDAY_10, SUNDAY_10, utc(2026, 11, 23, 9, 0),
                                                 utc(2026, 11, 23, 9, 0)]
    times = [
        SUNDAY_10, utc(2026, 11, 23, 9, 0),            # invitations delivered
        utc(2026, 11, 24, 9, 40),                       # 20 min before: too early to plan
        utc(2026, 11, 24, 9, 50), utc(2026, 11, 24, 10, 0),
        utc(2026, 11, 25, 8, 50), utc(2026, 11, 25, 9, 0),
        utc(2026, 11, 27, 9, 50), utc(2026, 11, 27, 10, 0),  # Friday: nothing for fa / ar
        utc(2026, 11, 28, 5, 20), utc(2026, 11, 28, 5, 30),
        utc(2026, 11, 29, 5, 50), utc(2026, 11, 29, 6, 0),
        utc(2026, 11, 30, 8, 50), utc(2026, 11, 30, 9, 0),
    ]
    planned: dict[datetime, int] = {}
    for now in times:
        planned[now] = (await tick(database, now, the_flow)).planned
    assert planned[utc(2026, 11, 24, 9, 40)] == 0
    assert planned[utc(2026, 11, 27, 9, 50)] == 0 and planned[utc(2026, 11, 27, 10, 0)] == 0

    due = {chat: [r.due_at for r in rows] for chat, rows in (await reminders(database)).items()}
    assert due == {
        # Tehran (+03:30, Sat–Wed): +2d Tuesday 13:30 local; +5d is a Friday → Saturday 09:00
        1001: [utc(2026, 11, 24, 10, 0), utc(2026, 11, 28, 5, 30)],
        # Riyadh (+03:00, Sun–Thu): Tuesday; Friday → Sunday 09:00
        2001: [utc(2026, 11, 24, 10, 0), utc(2026, 11, 29, 6, 0)],
        # London (GMT in November, Mon–Fri): Wednesday 09:00; Saturday → Monday 09:00
        3001: [utc(2026, 11, 25, 9, 0), utc(2026, 11, 30, 9, 0)],
        5001: [utc(2026, 11, 25, 9, 0), utc(2026, 11, 30, 9, 0)],
    }
    for rows in (await reminders(database)).values():
        assert [r.status for r in rows] == ["sent", "sent"]
        assert [r.key.rsplit(":", 1)[1] for r in rows] == ["0", "1"]

    # Expiry: two days after the last reminder's slot.
    tehran = await invitation_of(database, sent["1001"].id)
    assert tehran.status == "expired" and tehran.reason == "no_answer"
    assert tehran.reminders_sent == 2 and tehran.last_reminder_at == utc(2026, 11, 28, 5, 30)
    assert (await invitation_of(database, sent["2001"].id)).status == "sent"
    report = await tick(database, utc(2026, 12, 2, 9, 0), the_flow)
    assert report.expired == 3 and report.planned == 0
    for invitation in sent.values():
        assert (await invitation_of(database, invitation.id)).status == "expired"


async def test_london_reminder_across_the_dst_change(database: Database, store: Store) -> None:
    await load_stakeholders(database)
    await store.upsert_contact("telegram", "5001", name="No Zone", language="en")
    the_flow = review(reminders=Reminders(after=["2d"]))
    friday = utc(2026, 3, 27, 10, 0)
    sent = await invite_chats(database, store, the_flow, ["3001", "5001"], at=friday)
    await tick(database, friday, the_flow)
    # +2d is Sunday 29 March, the day clocks go forward: Monday 09:00 in London is 08:00 UTC
    assert (await tick(database, utc(2026, 3, 30, 7, 50), the_flow)).planned == 1
    assert (await tick(database, utc(2026, 3, 30, 8, 50), the_flow)).planned == 1
    due = {chat: [r.due_at for r in rows] for chat, rows in (await reminders(database)).items()}
    assert due == {3001: [utc(2026, 3, 30, 8, 0)], 5001: [utc(2026, 3, 30, 9, 0)]}
    assert all(i.status == "scheduled" for i in sent.values())  # as first read


async def test_a_persian_reminder_due_on_friday_moves_to_saturday_morning(
    database: Database, store: Store
) -> None:
    await load_stakeholders(database)
    the_flow = review(reminders=Reminders(after=["2d"]))
    wednesday = utc(2026, 11, 25, 10, 0)  # 13:30 in Tehran
    await invite_chats(database, store, the_flow, ["1001"], at=wednesday)
    await tick(database, wednesday, the_flow)
    # Friday 13:30 Tehran, two days on: the weekend in Iran, so nothing yet …
    assert (await tick(database, utc(2026, 11, 27, 10, 0), the_flow)).planned == 0
    # … until Saturday morning, for 09:00 Tehran time
    assert (await tick(database, utc(2026, 11, 28, 5, 20), the_flow)).planned == 1
    (row,) = (await reminders(database))[1001]
    assert row.due_at == utc(2026, 11, 28, 5, 30) and row.status == "queued"


# --- never after completion, opt-out or block ----------------------------------------------


async def test_no_reminder_after_completion_opt_out_or_block(database: Database,
                                                             store: Store) -> None:
    await load_stakeholders(database)
    the_flow = review()
    chats = ["1001", "1002", "1003", "1004", "2001", "2002"]
    sent = await invite_chats(database, store, the_flow, chats)
    people = {c: await contact(store, c) for c in chats}
    await tick(database, SUNDAY_10, the_flow)

    # Monday: 2001 opens the survey and stops half-way (a session, unfinished)
    monday = utc(2026, 11, 23, 12, 0)
    await open_session(store, people["2001"], sent["2001"], monday)
    # 1001 and 1002 open it too, before their first reminder is planned
    s1001 = await open_session(store, people["1001"], sent["1001"], monday)
    s1002 = await open_session(store, people["1002"], sent["1002"], monday)

    # Tuesday 09:50: the first reminder of all six is queued for 10:00
    assert (await plan_reminders(database, now=utc(2026, 11, 24, 9, 50),
                                 flows={the_flow.id: the_flow})).planned == 6
    # … and before 10:00: 1001 completes, 1002 opts out mid-survey, 1003 sends /stop with
    # no survey open, 1004 turns out to have blocked the bot (403).
    moment = utc(2026, 11, 24, 9, 55)
    await finish(store, people["1001"], s1001, "completed", moment)
    await finish(store, people["1002"], s1002, "stopped", moment)
    await store.set_contact_flags(people["1003"].id or 0, opted_out=True, now=moment)
    await in_transaction(database, lambda s: on_opt_out(s, contact_id=people["1003"].id or 0,
                                                        now=moment))
    await in_transaction(database, lambda s: on_unreachable(
        s, contact_id=people["1004"].id or 0, now=moment))

    for now in (utc(2026, 11, 24, 10, 0), utc(2026, 11, 28, 5, 20), utc(2026, 11, 28, 5, 30),
                utc(2026, 11, 29, 5, 50), utc(2026, 11, 29, 6, 0), utc(2026, 12, 5, 9, 0)):
        await tick(database, now, the_flow)

    sent_to = {chat: [r.status for r in rows]
               for chat, rows in (await reminders(database)).items()}
    assert sent_to == {
        1001: ["cancelled"], 1002: ["cancelled"], 1003: ["cancelled"], 1004: ["cancelled"],
        2001: ["sent", "sent"], 2002: ["sent", "sent"],
    }
    states = {c: await invitation_of(database, sent[c].id) for c in chats}
    assert (states["1001"].status, states["1001"].session_id) == ("completed", s1001)
    assert (states["1002"].status, states["1002"].reason) == ("cancelled", "opted_out")
    assert (states["1003"].status, states["1003"].reason) == ("cancelled", "opted_out")
    assert (states["1004"].status, states["1004"].reason) == ("cancelled", "unreachable")
    assert (states["2001"].status, states["2001"].reason) == ("expired", "unfinished")
    assert (states["2002"].status, states["2002"].reason) == ("expired", "no_answer")

    # The one who started is offered to continue; the one who never did, to start.
    rows = await reminders(database)
    resume, label = reminder_message(the_flow, people["2001"], "ar", started=True)
    nudge, start_label = reminder_message(the_flow, people["2002"], "ar", started=False)
    assert resume != nudge
    assert [r.text for r in rows[2001] + rows[2002]] == [None] * 4  # written when sent
    assert [DELIVERED[r.id or 0].text for r in rows[2001]] == [resume, resume]
    assert [DELIVERED[r.id or 0].text for r in rows[2002]] == [nudge, nudge]
    assert DELIVERED[rows[2001][0].id or 0].keyboard == (
        (Button(label, f"s1:g:{sent['2001'].token}"),),)
    assert label == Translator("ar").gettext("Continue the survey")
    assert start_label == Translator("ar").gettext("Start the survey")
    assert resume.startswith("\u200f")  # right-to-left lines start with RLM


async def test_completion_is_noticed_even_without_the_hook(database: Database,
                                                           store: Store) -> None:
    await load_stakeholders(database)
    the_flow = review()
    sent = await invite_chats(database, store, the_flow, ["1001"])
    sara = await contact(store, "1001")
    await tick(database, SUNDAY_10, the_flow)
    session = await open_session(store, sara, sent["1001"], utc(2026, 11, 23, 12, 0))
    await finish(store, sara, session, "completed", utc(2026, 11, 23, 12, 5), hook=False)
    report = await tick(database, utc(2026, 11, 24, 9, 50), the_flow)
    assert report.completed == 1 and report.planned == 0
    assert await reminders(database) == {}


async def test_a_blocked_contact_loses_its_queued_invitation(database: Database,
                                                             store: Store) -> None:
    await load_stakeholders(database)
    the_flow = review()
    sent = await invite_chats(database, store, the_flow, ["3001", "1001"])  # 3001: Monday
    james = await contact(store, "3001")
    cancelled = 0

    async def block(s: AsyncSession) -> None:
        nonlocal cancelled
        cancelled = await on_unreachable(s, channel="telegram", address="3001", now=SUNDAY_10)

    await in_transaction(database, block)
    assert cancelled == 1
    await tick(database, utc(2026, 11, 23, 9, 0), the_flow)
    assert (await invitation_of(database, sent["3001"].id)).reason == "unreachable"
    assert [i.unreachable for i in await store.identities(james.id or 0)] == [True]


async def test_an_undelivered_invitation_is_cancelled(database: Database,
                                                      store: Store) -> None:
    await load_stakeholders(database)
    the_flow = review()
    sent = await invite_chats(database, store, the_flow, ["1001"])
    (row,) = await claim_due(database, now=SUNDAY_10, limit=10, lease=timedelta(minutes=5),
                             worker="test", channels={"telegram"})
    await mark_failed(database, row.id or 0, "Bad Request: chat not found", SUNDAY_10)
    report = await tick(database, utc(2026, 11, 24, 9, 50), the_flow)
    assert report.undelivered == 1 and report.planned == 0
    invitation = await invitation_of(database, sent["1001"].id)
    assert (invitation.status, invitation.reason) == ("cancelled", "not_delivered")


# --- downtime, concurrency, expiry ------------------------------------------------------------


async def test_catch_up_after_downtime_sends_one_reminder_once(database: Database,
                                                               store: Store) -> None:
    await load_stakeholders(database)
    the_flow = review()
    sent = await invite_chats(database, store, the_flow, ["1001"])
    await tick(database, SUNDAY_10, the_flow)
    # Down for two weeks: both steps were missed. Back on Monday 7 December at 20:00 UTC
    # (23:30 in Tehran, outside the window), three planners run at once and again.
    back = utc(2026, 12, 7, 20, 0)
    others = [await Database.open(database.url) for _ in range(2)]
    try:
        reports = await asyncio.gather(
            *(plan_reminders(db, now=back, flows={the_flow.id: the_flow})
              for db in (database, *others)))
    finally:
        for db in others:
            await db.close()
    reports.append(await plan_reminders(database, now=back, flows={the_flow.id: the_flow}))
    assert sum(r.planned for r in reports) == 1 and sum(r.dropped for r in reports) == 1
    (row,) = (await reminders(database))[1001]
    # only the latest step, once, at the next slot: Tuesday 09:00 Tehran
    assert row.key == f"reminder:{sent['1001'].id}:1"
    assert row.due_at == utc(2026, 12, 8, 5, 30)
    await tick(database, utc(2026, 12, 8, 5, 30), the_flow)
    # the late reminder gets its full grace period before the invitation expires
    assert (await tick(database, utc(2026, 12, 10, 5, 0), the_flow)).expired == 0
    assert (await tick(database, utc(2026, 12, 10, 5, 30), the_flow)).expired == 1


async def test_a_late_answer_completes_an_expired_invitation(database: Database,
                                                             store: Store) -> None:
    await load_stakeholders(database)
    the_flow = review(reminders=None)
    sent = await invite_chats(database, store, the_flow, ["1001"])
    await tick(database, SUNDAY_10, the_flow)
    assert (await tick(database, utc(2026, 11, 24, 10, 0), the_flow)).expired == 1
    sara = await contact(store, "1001")
    session = await open_session(store, sara, sent["1001"], utc(2026, 11, 25, 10, 0))
    await finish(store, sara, session, "completed", utc(2026, 11, 25, 10, 5))
    assert (await invitation_of(database, sent["1001"].id)).status == "completed"
    assert await reminders(database) == {}


async def test_links_get_no_reminders_but_do_expire(database: Database, store: Store) -> None:
    await load_stakeholders(database)
    layla = await store.find_contact("external", "CRM-17")
    assert layla is not None and layla.id is not None
    the_flow = review()
    await invite_contacts(database, flow=the_flow, audience=Audience(contact_ids=(layla.id,)),
                          at=SUNDAY_10, context={"touchpoint": "qbr"}, now=SUNDAY_10,
                          bot_username="sada_test_bot", links_out=None)
    for day in range(1, 12):
        await tick(database, SUNDAY_10 + timedelta(days=day), the_flow)
    assert await reminders(database) == {}
    (invitation,) = await invitations(database, (layla.id,))
    assert (invitation.status, invitation.reason) == ("expired", "no_answer")


# --- per stakeholder --------------------------------------------------------------------------


async def test_silent_stakeholders_by_role(database: Database, store: Store) -> None:
    await load_stakeholders(database)
    the_flow = review()
    sent = await invite_chats(database, store, the_flow, ["1001", "1002", "1004"])
    await tick(database, SUNDAY_10, the_flow)
    sara = await contact(store, "1001")
    session = await open_session(store, sara, sent["1001"], utc(2026, 11, 23, 12, 0))
    await finish(store, sara, session, "completed", utc(2026, 11, 23, 12, 5))
    states = await silent_by_role(database, "account-review", "Pars Steel")
    assert [(x.role, x.name, x.status, x.silent) for x in states] == [
        ("buyer", "سارا احمدی", "completed", False),
        ("buyer", "علی رضایی", "not invited", False),
        ("decision_maker", "مریم حسینی", "sent", True),
        ("user", "رضا کریمی", "sent", True),
    ]
    summary = roles_summary(states)
    assert summary[("Pars Steel", "buyer")] == {"completed": 1, "not invited": 1}
    everyone = await silent_by_role(database, "account-review")
    assert {x.account for x in everyone} == {"Pars Steel", "Riyadh Foods", "Thames Tools"}


def test_cli_silent(cli_db: str) -> None:
    from tests.followups.test_contacts import STAKEHOLDERS

    assert runner.invoke(sada(), ["contacts", "import", str(STAKEHOLDERS)]).exit_code == 0

    async def setup() -> None:
        async with await Database.open(cli_db) as database:
            store = Store(database)
            await invite_chats(database, store, review(), ["1001", "1002"])

    asyncio.run(setup())
    result = runner.invoke(sada(), ["contacts", "silent", "--flow", "account-review",
                                    "--account", "Pars Steel", "--only-silent"])
    assert result.exit_code == 0, result.output
    assert "رضا کریمی" in result.output and "مریم" not in result.output
    assert "2 of 2 invited stakeholders silent (roles: buyer, user)" in result.output
    result = runner.invoke(sada(), ["contacts", "silent", "--flow", "account-review",
                                    "--account", "Nobody Inc"])
    assert result.exit_code == 0 and "no contacts in account 'Nobody Inc'" in result.output
