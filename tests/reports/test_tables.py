"""The terminal tables and the chat summary say what the numbers are: rates with the counts
behind them, English plurals, periods in words, no figure presented as good on too little."""

from __future__ import annotations

import re
from datetime import date

from rich.console import Console

from bot.reports.metrics import Report, build_report
from bot.reports.tables import report_csv, report_renderable, summary_text
from storage.db import Database
from tests.reports.fixtures import FLOW, NOW, Builder, at


def _text(report: Report) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(report_renderable(report))
    return console.export_text()


async def test_rate_next_to_sessions_without_an_invitation(database: Database) -> None:
    """11 surveys completed in a second each from public links; one person invited (the
    invitation went out), no answer yet; one more invited, still scheduled."""
    b = Builder(database)
    for n in range(11):
        await b.contact(f"p{n}")
        await b.session(f"p{n}", f"p{n}", at(1, 5, 10, n), seconds=1,
                        answers={"nps": 9, "stakeholder": "buyer"} if n == 0 else {"nps": 9})
    await b.contact("invited")
    await b.invitation("invited", "sent", at(1, 4))
    await b.contact("queued")
    await b.invitation("queued", "scheduled", None)
    report = await build_report(database, FLOW, now=NOW)
    f = report.funnel
    assert (f.invited, f.responded, f.not_sent) == (1, 0, 1)
    assert (f.completed, f.completed_invited, f.completed_uninvited) == (11, 0, 11)
    assert not f.time_trusted
    out = _text(report)
    assert "all answers up to now" in out and "→" not in out.splitlines()[1]
    assert "0%  (0/1)" in out
    assert "invited, not sent yet (in no rate)" in out
    assert "11: 0 after an invitation, 11 without one" in out
    assert "1s / 1s * (under 10s: test runs or previews" in out
    assert "stakeholder (choice, 1 answer)" in out and not re.search(r"\b1 answers", out)
    assert "no promises" in out
    csv = report_csv(report)
    assert "funnel,,completed_uninvited,11" in csv and "funnel,,not_sent,1" in csv
    assert "funnel,,time_trusted,0" in csv
    chat = summary_text(report)
    assert "11 responses; response rate 0% (0/1); 11 completed surveys (0 invited)" in chat
    assert "median time 1s *" in chat
    assert "CSAT: no answers yet" in chat and "— of 0" not in chat


async def test_few_completions_and_no_invitations(database: Database) -> None:
    b = Builder(database)
    await b.contact("one")
    await b.session("one", "one", at(1, 5), seconds=120, answers={"nps": 3, "csat": 5})
    report = await build_report(database, FLOW, since=date(2026, 1, 1), now=NOW)
    out = _text(report)
    assert "since 2026-01-01" in out
    assert "—  (nobody invited)" in out
    assert "2m 00s / 2m 00s * (only 1 completed survey)" in out
    assert "100%  (1/1)" in out  # CSAT with its count
    chat = summary_text(report)
    assert "NPS −100 (0 promoters, 0 passives, 1 detractor)" in chat
    assert "1 response; nobody invited; 1 completed survey (0 invited)" in chat
    ranged = await build_report(database, FLOW, since=date(2026, 1, 1),
                                until=date(2026, 1, 31), now=NOW)
    assert "2026-01-01 to 2026-01-31 (change vs" in _text(ranged)


async def test_crm_values_in_tables_stay_on_their_line(database: Database) -> None:
    """An account or a silent contact's name from a CRM can neither reverse a table row nor
    add a line of its own (bot.staff_text.staff_line); the CSV keeps them, as text."""
    from bot.reports.metrics import build_accounts
    from bot.reports.tables import accounts_renderable

    b = Builder(database)
    await b.contact("p1", account="\u202eemcA", role="buyer\u2028silent roles: none")
    await b.session("p1", "p1", at(1, 5), answers={"nps": 2})
    await b.contact("quiet", account="\u202eemcA", role="user", name="Sara\nopen cases: 0")
    await b.invitation("quiet", "sent", at(1, 4))
    report = await build_report(database, FLOW, by="account", now=NOW)
    out = _text(report)
    views = await build_accounts(database, FLOW, now=NOW)
    console = Console(record=True, width=200, color_system=None)
    console.print(accounts_renderable(views))
    accounts = console.export_text()
    for text in (out, accounts):
        assert not {"\u202e", "\u2028"} & set(text)
        assert "emcA" in text
    assert "Sara / open cases: 0 (user)" in accounts
    assert not any(line.strip().startswith(("silent roles: none", "open cases: 0"))
                   for line in accounts.splitlines())
    assert "\u202eemcA" in report_csv(report)  # data, for a spreadsheet: as stored
