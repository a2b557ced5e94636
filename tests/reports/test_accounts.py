"""The B2B account view on SQLite and PostgreSQL, against figures worked out by hand.

Window: January 2026; "now" is 2026-03-01 12:00 UTC.

Acme   buyers b1–b5 answer NPS 10, 9, 9, 7, 3 → P3 Pa1 D1, NPS +40 over 5 (big enough)
       f1 (finance) answers 6 → one answer, −100, too small; u1 (no contact role) says
       "decision_maker" and answers 8 → 0, too small. Account: P3 Pa2 D2 of 7 → +14.3.
       Invited: b1–b5, f1, u1 (answered); t1, t2 (technical), f2 (finance) silent.
       → silent role: technical (finance has f1); nobody at all as end_user.
       Open cases: f1's (opened Jan 20 10:00, 40 days 2 h ago), u1's (Feb 28 12:00, 1 day);
       b5's was resolved. Promises open: Acme's of Jan 25 (overdue), Acme's of Mar 1
       (due today, not overdue until the day ends), f1's case's of Mar 5; a kept one, one
       without a date and Initech's do not appear here.
Initech i1, i2 (buyers) answer 0 and 4: all detractors, −100 over 2; i1's case open.
Solo   s1 (contact role buyer) says end_user, answers 10: one answer, +100.
Globex g1 (buyer) invited, silent: no answers at all.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from sqlmodel import select

from bot.flow.loader import load_flow
from bot.followups.contacts_csv import import_contacts, parse_contacts
from bot.followups.invite import Audience, invite_contacts
from bot.followups.reminders import silent_by_role
from bot.reports.accounts import AccountView, build_accounts, render_accounts
from bot.reports.metrics import build_report
from storage.db import Database
from storage.models import Contact, Outbox
from tests.reports.fixtures import FLOW, NOW, Builder, at

JAN = {"since": date(2026, 1, 1), "until": date(2026, 1, 31), "now": NOW}


async def _data(db: Database) -> Builder:
    b = Builder(db)
    for key, account, role in [
        ("b1", "Acme", "buyer"), ("b2", "Acme", "buyer"), ("b3", "Acme", "buyer"),
        ("b4", "Acme", "buyer"), ("b5", "Acme", "buyer"), ("f1", "Acme", "finance"),
        ("u1", "Acme", None), ("t1", "Acme", "technical"), ("t2", "Acme", "technical"),
        ("f2", "Acme", "finance"), ("i1", "Initech", "buyer"), ("i2", "Initech", "buyer"),
        ("s1", "Solo", "buyer"), ("g1", "Globex", "buyer"),
    ]:
        await b.contact(key, account=account, role=role)
    for i, (key, score) in enumerate([("b1", 10), ("b2", 9), ("b3", 9), ("b4", 7), ("b5", 3)]):
        await b.session(key, key, at(1, 5 + i), answers={"stakeholder": "buyer", "nps": score})
    await b.session("f1", "f1", at(1, 20), answers={"stakeholder": "finance", "nps": 6,
                                                    "nps_why": "Invoices <late> & wrong"})
    await b.session("u1", "u1", at(1, 21), answers={"stakeholder": "decision_maker", "nps": 8})
    await b.session("i1", "i1", at(1, 14), answers={"stakeholder": "buyer", "nps": 0})
    await b.session("i2", "i2", at(1, 15), answers={"stakeholder": "buyer", "nps": 4})
    await b.session("s1", "s1", at(1, 16), answers={"stakeholder": "end_user", "nps": 10})
    for key in ("b1", "b2", "b3", "b4", "b5", "f1", "u1"):
        await b.invitation(key, "completed", at(1, 2), session=key)
    await b.invitation("t1", "sent", at(1, 3), reminders=1)
    await b.invitation("t2", "expired", at(1, 3), reminders=2)
    await b.invitation("f2", "expired", at(1, 4), reminders=2)
    await b.invitation("g1", "sent", at(1, 4))
    f1_case = await b.case("f1", "f1", 6, at(1, 20, 10), None)
    await b.case("u1", "u1", 8, at(2, 28, 12), None)
    await b.case("b5", "b5", 3, at(1, 9, 11), 5)  # resolved: not listed
    await b.case("i1", "i1", 0, at(1, 15, 10), None)
    await b.action(at(1, 25, 0), None, account="Acme")  # overdue
    await b.action(at(3, 1, 0), None, account="Acme")  # due today
    await b.action(at(3, 5, 0), None, case=f1_case)  # Acme through the case's contact
    await b.action(at(1, 20, 0), at(1, 19), account="Acme")  # kept
    await b.action(None, None, account="Acme")  # no date: not a promise
    await b.action(at(2, 1, 0), None, account="Initech")
    return b


def _by_name(views: list[AccountView]) -> dict[str, AccountView]:
    return {v.account: v for v in views}


async def test_nps_per_role_with_small_groups_marked(database: Database) -> None:
    await _data(database)
    views = _by_name(await build_accounts(database, FLOW, **JAN))
    assert sorted(views) == ["Acme", "Globex", "Initech", "Solo"]
    acme = views["Acme"].summary
    roles = {r.key: r for r in acme.roles}
    assert list(roles) == ["buyer", "decision_maker", "finance"]  # largest first
    buyer = roles["buyer"].nps
    assert buyer is not None
    assert (buyer.n, buyer.promoters, buyer.passives, buyer.detractors) == (5, 3, 1, 1)
    assert buyer.score == 40.0 and not roles["buyer"].too_small
    # the answer to the role question wins over the contact's role (u1 has none)
    assert roles["decision_maker"].nps.score == 0.0  # type: ignore[union-attr]
    assert roles["finance"].nps.score == -100.0  # type: ignore[union-attr]
    assert roles["decision_maker"].too_small and roles["finance"].too_small
    overall = acme.overall.nps
    assert overall is not None and overall.n == 7
    assert abs((overall.score or 0) - 100 * 1 / 7) < 1e-9
    # all detractors, one answer, no answers at all
    initech = views["Initech"].summary.overall.nps
    assert initech is not None and (initech.n, initech.score) == (2, -100.0)
    assert views["Initech"].summary.overall.too_small
    solo = views["Solo"].summary
    assert [r.key for r in solo.roles] == ["end_user"] and solo.overall.nps.score == 100.0  # type: ignore[union-attr]
    globex = views["Globex"].summary
    assert globex.roles == [] and globex.overall.nps.score is None  # type: ignore[union-attr]


async def test_silent_roles_and_people(database: Database) -> None:
    await _data(database)
    views = _by_name(await build_accounts(database, FLOW, **JAN))
    acme = views["Acme"]
    assert (acme.summary.invited, acme.summary.responded) == (10, 7)
    assert acme.summary.silent_roles == ["technical"]  # finance has f1's answer
    silent = [(p.name, p.role, p.status, p.reminders) for p in acme.summary.silent]
    assert silent == [("F2", "finance", "expired", 2), ("T1", "technical", "sent", 1),
                      ("T2", "technical", "expired", 2)]
    assert acme.unheard_roles == ["end_user"]  # nobody invited or answering as end_user
    assert views["Globex"].summary.silent_roles == ["buyer"]
    assert views["Globex"].unheard_roles == ["end_user", "decision_maker", "technical",
                                             "finance"]
    # Solo: s1 answered as end_user and was never invited as buyer (no invitation at all)
    assert views["Solo"].unheard_roles == ["buyer", "decision_maker", "technical", "finance"]


async def test_open_cases_with_age_and_promises_due(database: Database) -> None:
    await _data(database)
    views = _by_name(await build_accounts(database, FLOW, **JAN))
    acme = views["Acme"]
    cases = [(c.who, c.role, c.score, c.age) for c in acme.cases]
    assert cases == [("F1", "finance", 6, timedelta(days=40, hours=2)),
                     ("U1", "decision_maker", 8, timedelta(days=1))]
    promises = [(p.promised_at.date(), p.overdue, p.case_id is not None)
                for p in acme.promises]
    assert promises == [(date(2026, 1, 25), True, False), (date(2026, 3, 1), False, False),
                        (date(2026, 3, 5), False, True)]
    assert acme.overdue == 1
    assert acme.promises[0].text("fa") == "We fixed it"  # falls back to English
    initech = views["Initech"]
    assert [c.who for c in initech.cases] == ["I1"]
    assert [(p.promised_at.date(), p.overdue) for p in initech.promises] == [
        (date(2026, 2, 1), True)]
    assert views["Solo"].cases == [] and views["Solo"].promises == []
    # most urgent first: overdue promises (Acme 1, Initech 1), then open cases (Acme 2)
    order = [v.account for v in sorted(views.values(), key=lambda v: v.attention)]
    assert order == ["Acme", "Initech", "Solo", "Globex"]


async def test_one_account(database: Database) -> None:
    await _data(database)
    views = await build_accounts(database, FLOW, account="Initech", **JAN)
    assert [v.account for v in views] == ["Initech"]
    assert [c.who for c in views[0].cases] == ["I1"]
    assert len(views[0].promises) == 1
    assert await build_accounts(database, FLOW, account="Nobody", **JAN) == []


async def test_window_moves_scores_not_open_items(database: Database) -> None:
    await _data(database)
    feb = await build_accounts(database, FLOW, account="Acme", since=date(2026, 2, 1),
                               until=date(2026, 2, 28), now=NOW)
    acme = feb[0]
    assert acme.summary.overall.responses == 0 and acme.summary.invited == 0
    # open cases and promises are what is open now, whenever opened
    assert len(acme.cases) == 2 and len(acme.promises) == 3


async def test_render_in_the_terminal(database: Database) -> None:
    await _data(database)
    views = await build_accounts(database, FLOW, **JAN)
    console = Console(record=True, width=130, color_system=None)
    render_accounts(views, console, flow=FLOW)
    out = console.export_text()
    assert out.index("Acme") < out.index("Initech") < out.index("Globex")
    assert "Accounts, most urgent first" in out
    assert "+40" in out and "3/1/1" in out  # buyers: NPS with the counts behind it
    assert "too few to trust" in out
    assert "Invited, nobody answered: technical" in out
    assert "T1 (technical): invited 2026-01-03, 1 reminder, sent" in out
    assert "Nobody invited or answering as: end_user" in out
    assert "#1 waiting 40 d" in out and "Invoices" not in out  # comments live on the case
    assert "OVERDUE 2026-01-25" in out and "due 2026-03-05" in out
    single = Console(record=True, width=130, color_system=None)
    render_accounts(views[:1], single, flow=FLOW)
    assert "most urgent" not in single.export_text()  # one account: just its panel
    empty = Console(record=True, width=130, color_system=None)
    render_accounts([], empty)
    assert "no accounts" in empty.export_text()


# --- the account view agrees with `sada contacts silent` ----------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
B2B = Path(__file__).resolve().parents[2] / "flows" / "b2b_supplier.yaml"


async def test_scheduled_invitations_count_as_in_contacts_silent(database: Database) -> None:
    """Two stakeholders of Pars Steel invited, their messages still queued; Emma's
    (Thames Retail) went out, the planner has not noticed yet. Every invited person and
    account shows in the account view as in `sada contacts silent`."""
    flow = load_flow(B2B).flow
    await import_contacts(database, parse_contacts(EXAMPLES / "contacts.csv").rows, now=NOW)
    for account in ("Pars Steel", "Thames Retail"):
        await invite_contacts(database, flow=flow, audience=Audience(account=account), at=NOW,
                              context={}, now=NOW, bot_username="sada_bot", links_out=None)
    async with database.session() as s, s.begin():
        emma = (await s.exec(select(Outbox).join(Contact, Contact.id == Outbox.contact_id)
                             .where(Contact.company == "Thames Retail"))).one()
        emma.status, emma.sent_at = "sent", NOW
    states = await silent_by_role(database, flow.id)
    views = _by_name(await build_accounts(database, flow, now=NOW))
    for account in ("Pars Steel", "Thames Retail"):
        invited = [x for x in states if x.account == account and x.status != "not invited"]
        silent = [x for x in invited if x.silent]
        summary = views[account].summary
        assert (summary.invited, summary.responded) == (len(invited), len(invited) - len(silent))
        assert sorted(p.contact_id for p in summary.silent) == sorted(
            x.contact_id for x in silent)
        assert {p.status for p in summary.silent} == {x.status for x in silent}
    assert views["Pars Steel"].summary.invited == 2
    assert views["Pars Steel"].summary.not_sent == 2
    assert views["Pars Steel"].summary.silent_roles == ["buyer", "decision_maker"]
    assert "Najd Foods" not in views  # nobody there was invited
    console = Console(record=True, width=130, color_system=None)
    render_accounts(list(views.values()), console, flow=flow)
    out = console.export_text()
    assert "0 of 2 invited answered (2 not sent yet)" in out
    assert "0 of 1 invited answered" in out
    # The response rate counts only invitations that went out: Emma's, not Pars Steel's.
    funnel = (await build_report(database, flow, now=NOW)).funnel
    assert (funnel.invited, funnel.responded, funnel.not_sent) == (1, 0, 2)
    assert funnel.response_rate == 0.0


async def test_names_from_the_crm_cannot_reverse_or_split_lines(database: Database) -> None:
    b = Builder(database)
    await b.contact("x1", account="Evil\u202eCorp\u2028#9 waiting 0 d", role="buyer",
                    name="Ali\u202e\u2029  · Forged line")
    await b.invitation("x1", "sent", at(1, 3))
    await b.session("x1", "x1", at(1, 5), answers={"stakeholder": "buyer", "nps": 2})
    await b.case("x1", "x1", 2, at(1, 5, 10), None)
    views = await build_accounts(database, FLOW, **JAN)
    console = Console(record=True, width=200, color_system=None)
    render_accounts(views, console, flow=FLOW)
    out = console.export_text()
    assert "\u202e" not in out and "\u2028" not in out and "\u2029" not in out
    assert not any(line.lstrip().startswith(("#9", "· Forged")) for line in out.splitlines())
