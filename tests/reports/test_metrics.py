"""Every metric against values computed by hand from tests/reports/fixtures.py, on SQLite
and PostgreSQL.

January 2026 in one line per session (answer-role / contact-role, account, NPS, CSAT, CES):
  a1 buyer Acme 10 5 2 · a2 buyer Acme 9 4 3 · a3 end_user Acme 8 3 4 · a4 end_user Acme
  7 4 5 · a5 decision_maker Acme 3 2 6 · a6 -/finance Acme 6 (stopped) · i1 buyer Initech
  0 1 · i2 buyer Initech 5 2 · i3 technical Initech 6 · s1 end_user/buyer Solo 9 ·
  n1 -/- (no account) 10 5 1 (touchpoint web).
December 2025: a1 6 3 5, a2 10 5 1 (both Acme buyers). February 2026: g1 Globex buyer 9.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from rich.console import Console

from bot.reports.metrics import (
    NO_VALUE,
    START,
    GroupRow,
    MeanResult,
    NpsResult,
    Report,
    ShareResult,
    build_accounts,
    build_report,
)
from bot.reports.periods import BadDate, previous_window
from bot.reports.tables import answers_json_text, answers_view
from storage.db import Database
from storage.reports import Grouping, Scope, ScoreIds, text_answers
from tests.conftest import DB_PARAMS, open_built
from tests.reports.fixtures import FLOW, FLOW_NO_ROLE, NOW, Builder, at, build_fixed

JAN = {"since": date(2026, 1, 1), "until": date(2026, 1, 31)}


@pytest.fixture(params=DB_PARAMS)
async def data(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database holding build_fixed's rows (built once per test process, then copied)."""
    async for database in open_built(request, tmp_path, build_fixed):
        yield database


async def report(db: Database, **options: object) -> Report:
    return await build_report(db, FLOW, now=NOW, **options)  # type: ignore[arg-type]


def groups(r: Report) -> dict[str, GroupRow]:
    return {g.key: g for g in r.groups}


def approx(value: float | None) -> object:
    return pytest.approx(value, abs=1e-9)


# --- scores -------------------------------------------------------------------------------


async def test_overall_scores_and_change(data: Database) -> None:
    r = await report(data, **JAN)
    o = r.overall
    assert o.responses == 11 and not o.too_small
    assert o.nps == NpsResult(11, 4, 2, 5, approx(-100 / 11))
    assert o.csat == ShareResult(8, 4, 50.0)
    assert o.ces == MeanResult(6, 3.5, 50.0, 3)
    # December: NPS (1 − 1)/2 = 0, CSAT 1/2 = 50 %, CES (5 + 1)/2 = 3
    assert r.previous == (date(2025, 12, 1), date(2025, 12, 31))
    assert o.change == {"nps": approx(-100 / 11), "csat": 0.0, "ces": 0.5, "responses": 9.0}


async def test_by_role_answer_wins_over_contact_role(data: Database) -> None:
    g = groups(await report(data, by="role", **JAN))
    assert set(g) == {"buyer", "end_user", "decision_maker", "finance", "technical", NO_VALUE}
    assert g["buyer"].nps == NpsResult(4, 2, 0, 2, 0.0)  # a1 a2 i1 i2
    assert g["buyer"].csat == ShareResult(4, 2, 50.0)
    assert g["buyer"].ces == MeanResult(2, 2.5, 100.0, 2)
    # s1's contact says buyer, its answer end_user: the answer wins
    assert g["end_user"].nps == NpsResult(3, 1, 2, 0, approx(100 / 3))
    assert g["end_user"].responses == 3
    assert g["finance"].nps == NpsResult(1, 0, 0, 1, -100.0)  # a6: contact.role fills in
    assert g["finance"].csat == ShareResult(0, 0, None)
    assert g["finance"].ces == MeanResult(0, None, None, 0)
    assert g[NO_VALUE].nps == NpsResult(1, 1, 0, 0, 100.0)  # n1: no role anywhere
    assert all(row.too_small for row in g.values())
    # December had only buyers: NPS 0, CSAT 50 %, CES 3
    assert g["buyer"].change == {"nps": 0.0, "csat": 0.0, "ces": -0.5, "responses": 2.0}
    assert g["end_user"].change == {"nps": None, "csat": None, "ces": None, "responses": 3.0}


async def test_by_role_without_a_role_question_uses_contact_role(data: Database) -> None:
    r = await build_report(data, FLOW_NO_ROLE, by="role", now=NOW, **JAN)
    g = groups(r)
    # s1 is a buyer on its contact; a3 a4 are end users; a5 decision maker
    assert g["buyer"].nps == NpsResult(5, 3, 0, 2, 20.0)
    assert g["end_user"].nps == NpsResult(2, 0, 2, 0, 0.0)


async def test_by_account_all_detractors_and_one_answer(data: Database) -> None:
    r = await report(data, by="account", **JAN)
    g = groups(r)
    assert [row.key for row in r.groups] == ["Acme", "Initech", "Solo", NO_VALUE]
    acme = g["Acme"]
    assert acme.responses == 6 and not acme.too_small
    assert acme.nps == NpsResult(6, 2, 2, 2, 0.0)
    assert acme.csat == ShareResult(5, 3, 60.0)
    assert acme.ces == MeanResult(5, 4.0, 40.0, 2)
    assert acme.change == {"nps": 0.0, "csat": 10.0, "ces": 1.0, "responses": 4.0}
    initech = g["Initech"]  # all detractors
    assert initech.nps == NpsResult(3, 0, 0, 3, -100.0)
    assert initech.csat == ShareResult(2, 0, 0.0)
    assert initech.ces == MeanResult(0, None, None, 0)
    assert initech.too_small and initech.nps is not None and initech.nps.too_small
    assert initech.change["nps"] is None and initech.change["responses"] == 3.0
    solo = g["Solo"]  # one answer
    assert solo.responses == 1 and solo.too_small
    assert solo.nps == NpsResult(1, 1, 0, 0, 100.0)
    assert solo.csat == ShareResult(0, 0, None)


async def test_by_segment_language_and_touchpoint(data: Database) -> None:
    segment = groups(await report(data, by="segment", **JAN))
    assert {k: v.responses for k, v in segment.items()} == {
        "enterprise": 6, "smb": 4, NO_VALUE: 1}
    assert segment["smb"].nps == NpsResult(4, 1, 0, 3, -50.0)
    language = groups(await report(data, by="language", **JAN))
    assert {k: v.responses for k, v in language.items()} == {"en": 5, "ar": 3, "fa": 3}
    assert language["ar"].nps == NpsResult(3, 1, 0, 2, approx(-100 / 3))  # a2 a5 a6
    assert language["fa"].csat == ShareResult(2, 1, 50.0)  # a3 3, a4 4
    touchpoint = groups(await report(data, by="touchpoint", **JAN))
    assert {k: v.responses for k, v in touchpoint.items()} == {"support": 10, "web": 1}
    assert touchpoint["web"].nps == NpsResult(1, 1, 0, 0, 100.0)


async def test_since_until_are_whole_days_and_weeks_start_monday(data: Database) -> None:
    # a6 started Jan 18 23:30 (in); i1 Jan 19 00:10 (out)
    r = await report(data, since=date(2026, 1, 5), until=date(2026, 1, 18), period="week")
    assert r.overall.responses == 6
    assert r.overall.nps == NpsResult(6, 2, 2, 2, 0.0)
    assert [(p.start, p.responses) for p in r.trend] == [
        (date(2026, 1, 5), 3), (date(2026, 1, 12), 3)]
    assert r.trend[0].nps == NpsResult(3, 2, 1, 0, approx(200 / 3))
    assert r.trend[1].nps == NpsResult(3, 0, 1, 2, approx(-200 / 3))
    # the previous 14 days, Dec 22 – Jan 4, hold nothing
    assert r.previous == (date(2025, 12, 22), date(2026, 1, 4))
    assert r.overall.change == {"nps": None, "csat": None, "ces": None, "responses": 6.0}
    only_since = await report(data, since=date(2026, 1, 19))
    assert only_since.overall.responses == 6  # i1 i2 i3 s1 n1, and g1 in February
    assert only_since.overall.nps == NpsResult(6, 3, 0, 3, 0.0)
    only_until = await report(data, until=date(2025, 12, 31))
    assert only_until.overall.nps == NpsResult(2, 1, 0, 1, 0.0)


async def test_groups_only_in_the_previous_window_are_empty_rows(data: Database) -> None:
    r = await report(data, by="account", since=date(2026, 2, 1), until=date(2026, 2, 28))
    assert r.previous == (date(2026, 1, 4), date(2026, 1, 31))
    g = groups(r)
    assert g["Globex"].nps == NpsResult(1, 1, 0, 0, 100.0)
    acme = g["Acme"]  # answered in January only
    assert acme.responses == 0 and acme.too_small
    assert acme.nps == NpsResult(0, 0, 0, 0, None)
    assert acme.csat == ShareResult(0, 0, None) and acme.ces == MeanResult(0, None, None, 0)
    assert acme.change == {"nps": None, "csat": None, "ces": None, "responses": -6.0}


async def test_empty_window(data: Database) -> None:
    r = await report(data, by="role", since=date(2030, 1, 1), until=date(2030, 1, 31))
    assert r.groups == []
    assert r.overall.responses == 0 and r.overall.too_small
    assert r.overall.nps == NpsResult(0, 0, 0, 0, None)
    assert r.overall.csat == ShareResult(0, 0, None)
    assert r.overall.ces == MeanResult(0, None, None, 0)
    f = r.funnel
    assert (f.invited, f.responded, f.started, f.completed, f.partial) == (0, 0, 0, 0, 0)
    assert (f.response_rate, f.partial_rate, f.median_seconds, f.p90_seconds) == (
        None, None, None, None)
    assert all(n == 0 for _, n in f.dropoff)
    res = r.resolution
    assert (res.cases, res.resolved, res.median_hours, res.p90_hours) == (0, 0, None, None)
    assert (res.promises, res.due, res.kept_share) == (0, 0, None)
    assert all(d.n == 0 and all(n == 0 for _, n in d.counts) for d in r.distributions)
    assert [(p.start, p.responses, p.nps) for p in r.trend] == [
        (date(2030, 1, 1), 0, NpsResult(0, 0, 0, 0, None))]


async def test_empty_database(database: Database) -> None:
    r = await report(database, by="account")
    assert r.groups == [] and r.trend == [] and r.overall.nps == NpsResult(0, 0, 0, 0, None)
    assert r.previous is None and r.overall.change == {}
    assert await build_accounts(database, FLOW, now=NOW) == []


async def test_values_that_are_not_numbers_are_not_scores(database: Database) -> None:
    b = Builder(database)
    await b.contact("z", account="Z")
    await b.session("z1", "z", at(1, 5), answers={"nps": "9", "csat": True, "ces": 2.0})
    r = await report(database)
    assert r.overall.nps == NpsResult(0, 0, 0, 0, None)
    assert r.overall.csat == ShareResult(0, 0, None)
    assert r.overall.ces == MeanResult(1, 2.0, 100.0, 1)


# --- funnel, drop-off, time to resolve, promises ------------------------------------------


async def test_funnel_and_dropoff(data: Database) -> None:
    f = (await report(data, **JAN)).funnel
    assert (f.invited, f.responded) == (12, 8)  # g2's invitation was never sent
    assert f.response_rate == approx(200 / 3)
    assert (f.started, f.completed, f.partial) == (14, 10, 2)  # partial: a6 and x1
    assert f.partial_rate == approx(100 / 6)
    # 30 60 90 120 150 180 210 240 300 600 s
    assert f.median_seconds == approx(165.0)
    assert f.p90_seconds == approx(330.0)  # 300 + 0.1 × (600 − 300)
    assert f.dropoff == [(START, 1), ("stakeholder", 1), ("nps", 1), ("nps_why", 0),
                         ("csat", 1), ("expectations", 0), ("priorities", 0),
                         ("resolved", 0), ("ces", 0)]


async def test_time_to_resolve_and_promises(data: Database) -> None:
    res = (await report(data, **JAN)).resolution
    assert (res.cases, res.open_cases, res.resolved) == (5, 1, 4)
    assert res.median_hours == approx(18.0)  # 6 12 24 72
    assert res.p90_hours == approx(57.6)  # 24 + 0.7 × 48
    assert (res.promises, res.due, res.kept_on_time, res.overdue) == (4, 4, 2, 1)
    assert res.kept_share == 50.0
    whole = (await report(data)).resolution
    assert (whole.cases, whole.resolved) == (6, 5)
    assert whole.median_hours == approx(24.0)  # 6 12 24 24 72
    # not due: March 10, and March 1 (today: its day has not ended)
    assert (whole.promises, whole.due, whole.kept_on_time, whole.overdue) == (7, 5, 3, 1)
    assert whole.kept_share == 60.0


async def test_one_account_report(data: Database) -> None:
    r = await report(data, account="Acme", by="role", **JAN)
    assert r.overall.nps == NpsResult(6, 2, 2, 2, 0.0)
    assert [g.key for g in r.groups] == ["buyer", "end_user", "decision_maker", "finance"]
    f = r.funnel
    assert (f.invited, f.responded, f.started, f.completed, f.partial) == (8, 5, 7, 5, 2)
    assert f.median_seconds == approx(180.0) and f.p90_seconds == approx(276.0)
    res = r.resolution
    assert (res.cases, res.resolved, res.median_hours) == (2, 2, approx(18.0))
    assert res.p90_hours == approx(22.8)  # 12 + 0.9 × 12
    # p1 (account), p2 (through a5's case), p4 (account)
    assert (res.promises, res.due, res.kept_on_time, res.overdue) == (3, 3, 2, 1)
    assert [(s.name, s.role, s.status, s.reminders) for s in r.silent] == [
        ("Sara", "finance", "expired", 2), ("Omar", "technical", "sent", 1)]
    solo = await report(data, account="Solo", **JAN)
    # one completed session: every percentile is its value
    assert solo.funnel.median_seconds == approx(30.0) and solo.funnel.p90_seconds == approx(30.0)
    assert solo.resolution.median_hours is None


# --- distributions and trend --------------------------------------------------------------


async def test_distributions(data: Database) -> None:
    d = {x.question_id: x for x in (await report(data, **JAN)).distributions}
    assert list(d) == ["stakeholder", "nps", "csat", "expectations", "priorities", "resolved",
                       "ces"]
    assert d["stakeholder"].n == 10  # x1 answered it too
    assert d["stakeholder"].counts == [("buyer", 5), ("end_user", 3), ("decision_maker", 1),
                                       ("technical", 1), ("finance", 0), ("other", 0)]
    assert d["nps"].n == 11
    assert dict(d["nps"].counts) == {"0": 1, "1": 0, "2": 0, "3": 1, "4": 0, "5": 1, "6": 2,
                                     "7": 1, "8": 1, "9": 2, "10": 2}
    assert d["csat"].counts == [("1", 1), ("2", 2), ("3", 1), ("4", 2), ("5", 2)]
    assert d["expectations"].type == "scale"
    assert d["expectations"].counts == [("1", 0), ("2", 0), ("3", 0), ("4", 2), ("5", 1)]
    assert d["priorities"].n == 3  # three people, five picks
    assert d["priorities"].counts == [("quality", 3), ("on_time", 1), ("price", 1)]
    assert (d["resolved"].n, d["resolved"].counts) == (3, [("yes", 2), ("no", 1)])
    assert d["ces"].counts == [(str(v), 1) for v in range(1, 7)] + [("7", 0)]


async def test_monthly_trend_over_all_time(data: Database) -> None:
    r = await report(data)
    assert r.previous is None and r.overall.change == {}
    assert [(p.start, p.responses) for p in r.trend] == [
        (date(2025, 12, 1), 2), (date(2026, 1, 1), 11), (date(2026, 2, 1), 1),
        (date(2026, 3, 1), 0)]
    assert r.trend[0].nps == NpsResult(2, 1, 0, 1, 0.0)
    assert r.trend[0].csat == ShareResult(2, 1, 50.0)
    assert r.trend[0].ces == MeanResult(2, 3.0, 50.0, 1)
    assert r.overall.nps == NpsResult(14, 6, 2, 6, 0.0)


# --- the B2B account overview -------------------------------------------------------------


async def test_accounts_overview(data: Database) -> None:
    accounts = {a.account: a for a in await build_accounts(data, FLOW, now=NOW, **JAN)}
    assert list(accounts) == ["Acme", "Globex", "Initech", "Solo", NO_VALUE]
    acme = accounts["Acme"]
    assert acme.overall.nps == NpsResult(6, 2, 2, 2, 0.0)
    assert {r.key: r.nps for r in acme.roles} == {
        "buyer": NpsResult(2, 2, 0, 0, 100.0), "end_user": NpsResult(2, 0, 2, 0, 0.0),
        "decision_maker": NpsResult(1, 0, 0, 1, -100.0),
        "finance": NpsResult(1, 0, 0, 1, -100.0)}
    assert acme.roles[0].change["nps"] == 100.0  # buyers: December 0 → January 100
    assert (acme.invited, acme.responded) == (8, 6)
    assert acme.silent_roles == ["technical"]  # finance answered through a6
    assert [s.name for s in acme.silent] == ["Sara", "Omar"]
    assert (acme.open_cases, acme.promises_due, acme.promises_overdue) == (0, 1, 1)
    assert acme.next_promise == at(1, 25, 0)
    globex = accounts["Globex"]  # invited, silent, no answers in January: an empty group
    assert globex.overall.responses == 0 and globex.overall.nps == NpsResult(0, 0, 0, 0, None)
    assert globex.roles == [] and globex.silent_roles == ["buyer"]
    assert [s.name for s in globex.silent] == ["X2"]
    assert (globex.promises_due, globex.promises_overdue, globex.next_promise) == (
        2, 0, at(3, 1, 0))
    initech = accounts["Initech"]
    assert initech.overall.nps == NpsResult(3, 0, 0, 3, -100.0)
    assert initech.open_cases == 1 and initech.silent == [] and initech.silent_roles == []
    assert accounts["Solo"].roles[0].key == "end_user"
    one = await build_accounts(data, FLOW, now=NOW, account="Initech", **JAN)
    assert [a.account for a in one] == ["Initech"]


# --- free-text answers and input checks ---------------------------------------------------


async def test_text_answers(data: Database) -> None:
    scores = ScoreIds("nps", "csat", "ces")
    rows = await text_answers(data, Scope(FLOW.id), "nps_why",
                              Grouping((), "stakeholder", "support"), scores)
    assert [(r.who, r.text, r.nps, r.csat, r.account) for r in rows] == [
        ("I1", "Nobody answers", 0, 1, "Initech"),
        ("A5", "Late deliveries", 3, 2, "Acme"),
        ("A1", "Great team", 10, 5, "Acme")]  # newest first; a3's skip is not an answer
    by_role = await text_answers(data, Scope(FLOW.id, language="en"), "nps_why",
                                 Grouping(("role",), "stakeholder", "support"), scores)
    assert [(r.key, r.who) for r in by_role] == [("buyer", "I1"), ("buyer", "A1")]


async def test_bad_options(database: Database) -> None:
    with pytest.raises(ValueError, match="unknown --by 'team'"):
        await report(database, by="team")
    with pytest.raises(ValueError, match="week or month"):
        await report(database, period="day")
    with pytest.raises(BadDate, match="after"):
        await report(database, since=date(2026, 2, 1), until=date(2026, 1, 1))


def test_previous_window() -> None:
    assert previous_window(None, date(2026, 1, 31), date(2026, 3, 1)) is None
    assert previous_window(date(2026, 3, 1), date(2026, 3, 31), date(2026, 5, 1)) == (
        date(2026, 1, 29), date(2026, 2, 28))
    # without --until the window runs to today
    assert previous_window(date(2026, 2, 20), None, date(2026, 3, 1)) == (
        date(2026, 2, 10), date(2026, 2, 19))


async def test_text_answers_role_is_the_answered_one(database: Database) -> None:
    """People imported without a role (or with another one) answered the role question:
    every row shows that answer, with or without `--by role`, contact.role filling in."""
    b = Builder(database)
    await b.contact("p1")  # no stored role
    await b.contact("p2", role="buyer")  # says end_user: the answer wins
    await b.contact("p3", role="technical")  # skips the role question
    await b.session("p1", "p1", at(1, 5), answers={"stakeholder": "finance", "nps": 4,
                                                   "nps_why": "Invoices"})
    await b.session("p2", "p2", at(1, 6), answers={"stakeholder": "end_user", "nps": 9,
                                                   "nps_why": "Easy"})
    await b.session("p3", "p3", at(1, 7), skipped=("stakeholder",),
                    answers={"nps": 7, "nps_why": "Fine"})
    scores = ScoreIds("nps", "csat", "ces")
    for keys in ((), ("role",)):
        rows = await text_answers(database, Scope(FLOW.id), "nps_why",
                                  Grouping(keys, "stakeholder", "support", NO_VALUE), scores)
        assert sorted((r.who, r.role) for r in rows) == [
            ("P1", "finance"), ("P2", "end_user"), ("P3", "technical")]
    assert sorted((r.key, r.who) for r in rows) == [
        ("end_user", "P2"), ("finance", "P1"), ("technical", "P3")]
    console = Console(record=True, width=120, color_system=None)
    console.print(answers_view(rows, "nps_why", None))
    view = console.export_text()
    assert "P1 · — · finance" in view and "P3 · — · technical" in view
    assert {r["role"] for r in json.loads(answers_json_text(rows, None))} == {
        "finance", "end_user", "technical"}
