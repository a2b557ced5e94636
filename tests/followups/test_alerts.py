"""Detractor alerts: thresholds, one case per session and question, alerts to every staff
chat with the comment folded in, resolving and time to resolve (CLI included)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import event
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from typer.testing import CliRunner

from bot.engine import inputs as i
from bot.engine.state import Value
from bot.flow.loader import LoadedFlow, load_flow, load_flow_text
from bot.flow.model import Flow
from bot.followups.alerts import (
    ALERT_GRACE,
    Crossing,
    crossings,
    note_comments,
    open_cases,
)
from bot.followups.hooks import alert_hook
from bot.survey import SurveyService
from storage.cases import AlreadyResolved, EmptyNote, list_cases, resolve_case
from storage.db import Database, NotFound
from storage.models import Case, Contact, Outbox
from storage.repo import Store
from tests.followups.outbox_fakes import rendered_text

ROOT = Path(__file__).resolve().parents[2]
B2B = ROOT / "flows" / "b2b_supplier.yaml"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
STAFF = [("telegram", "-1001"), ("telegram", "4242")]
T = TypeVar("T")

FLOW = """
id: alerting
languages: [en]
default_language: en
title: {{en: "Alerting"}}
intro: {{en: "Hi"}}
outro: {{en: "Thanks"}}
{alerts}
groups:
  - id: main
    title: {{en: "Main"}}
    questions:
      - {{id: nps, type: nps, text: {{en: "Recommend us?"}}}}
      - {{id: why, type: text, optional: true, text: {{en: "Why?"}}}}
      - {{id: csat, type: csat, text: {{en: "Satisfied?"}}}}
      - {{id: ces, type: ces, text: {{en: "Easy?"}}}}
      - {{id: ok, type: yesno, text: {{en: "All good?"}}}}
"""


def flow_with(alerts: str = "") -> Flow:
    return load_flow_text(FLOW.format(alerts=alerts)).flow


# --- helpers shared with test_actions -------------------------------------------------


async def answered(
    store: Store,
    contact: Contact,
    loaded: LoadedFlow,
    answers: dict[str, Any],
    *,
    lang: str,
    now: datetime = T0,
    status: str = "completed",
    context: dict[str, Any] | None = None,
    skipped: tuple[str, ...] = (),
) -> int:
    """A session of ``loaded`` with these answers, stored as the survey service would."""
    assert contact.id is not None
    version = await store.flow_version(loaded.flow.id, loaded.source, now=now)
    assert version.id is not None
    session = await store.open_session(
        contact_id=contact.id, flow_version_id=version.id, flow_id=loaded.flow.id,
        language=lang, context=context or {}, state={}, status="active", position=None,
        now=now,
    )
    assert session.id is not None
    rows = {q: (str(v), v, False) for q, v in answers.items()}
    rows.update({q: ("/skip", None, True) for q in skipped})
    await store.save_state(session.id, state={}, status=status, position=None, language=lang,
                           answers=rows, now=now)
    return session.id


async def outbox(database: Database, kind: str | None = None) -> list[Outbox]:
    query = select(Outbox).order_by(col(Outbox.id))
    if kind is not None:
        query = query.where(Outbox.kind == kind)
    async with database.session() as s, s.begin():
        return list((await s.exec(query)).all())


async def cases(database: Database) -> list[Case]:
    async with database.session() as s, s.begin():
        return list((await s.exec(select(Case).order_by(col(Case.id)))).all())


# --- crossings: pure -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"nps": 6}, [Crossing("nps", "nps", 6, 6)]),
        ({"nps": 7}, []),
        ({"nps": 0}, [Crossing("nps", "nps", 0, 6)]),
        ({"csat": 2}, [Crossing("csat", "csat", 2, 2)]),
        ({"csat": 3}, []),
        ({"ces": 5}, [Crossing("ces", "ces", 5, 5)]),
        ({"ces": 4}, []),
        ({"ces": 7, "nps": 2, "why": "late"},
         [Crossing("nps", "nps", 2, 6), Crossing("ces", "ces", 7, 5)]),
        ({"ok": False, "why": "3"}, []),  # neither a yes/no nor a text is a score
    ],
)
def test_default_thresholds(answers: dict[str, Value], expected: list[Crossing]) -> None:
    assert crossings(flow_with(), {}, answers) == expected


def test_flow_thresholds_and_disabled_ones() -> None:
    flow = flow_with("alerts: {nps: 4, csat: null, ces: 6}")
    assert crossings(flow, {}, {"nps": 5, "csat": 1, "ces": 5}) == []
    assert crossings(flow, {}, {"nps": 4, "csat": 1, "ces": 6}) == [
        Crossing("nps", "nps", 4, 4), Crossing("ces", "ces", 6, 6)]


def test_only_answers_given_or_changed_now() -> None:
    flow = flow_with()
    # the score was there before this step: a later answer does not raise it again
    assert crossings(flow, {"nps": 3}, {"nps": 3, "why": "slow"}) == []
    # changed after /back: reported (open_cases keeps it to one case)
    assert crossings(flow, {"nps": 5}, {"nps": 2}) == [Crossing("nps", "nps", 2, 6)]
    assert crossings(flow, {"nps": 2}, {"nps": 9}) == []


# --- cases and alerts in the answer's transaction --------------------------------------


async def save(store: Store, session_id: int, flow: Flow, contact_id: int,
               before: dict[str, Any], after: dict[str, Any], *, now: datetime,
               staff: list[tuple[str, str]] = STAFF) -> list[int]:
    """What the lead's survey step does: save answers, open cases in the same transaction."""
    opened: list[int] = []

    async def within(s: AsyncSession) -> None:
        found = crossings(flow, before, after)
        opened.extend(await open_cases(s, session_id=session_id, contact_id=contact_id,
                                       flow=flow, crossings=found, now=now,
                                       staff=staff))
        await note_comments(s, session_id, flow=flow)

    await store.save_state(session_id, state={}, status="active", position=None,
                           language="en",
                           answers={q: (str(v), v, False) for q, v in after.items()},
                           now=now, within=within)
    return opened


@pytest.fixture
def b2b() -> LoadedFlow:
    return load_flow(B2B)


async def test_a_case_per_session_and_question_with_alerts_to_every_staff_chat(
    store: Store, database: Database, b2b: LoadedFlow
) -> None:
    flow = b2b.flow
    sara = await store.upsert_contact("telegram", "501", name="Sara Ahmadi", company="Acme",
                                      segment="gold", language="fa", now=T0)
    assert sara.id is not None
    session = await answered(store, sara, b2b, {}, lang="fa", status="active",
                             context={"ticket": "T-1042"})
    first = {"stakeholder": "buyer", "nps": 3}
    opened = await save(store, session, flow, sara.id, {"stakeholder": "buyer"}, first, now=T0)
    assert len(opened) == 1
    [case] = await cases(database)
    assert (case.id, case.question_id, case.score, case.status, case.opened_at) == (
        opened[0], "nps", 3, "open", T0)
    rows = await outbox(database)
    assert [(r.key, r.kind, r.channel, r.address, r.contact_id, r.case_id, r.due_at)
            for r in rows] == [
        (f"alert:{case.id}:{address}", "alert", channel, address, None, case.id,
         T0 + ALERT_GRACE)
        for channel, address in STAFF
    ]
    assert all(r.text is None for r in rows)  # written when sent
    text = await rendered_text(database, rows[0])
    for part in ("case #", "NPS 3 on 0–10 (alert at ≤ 6)", "Sara Ahmadi", "account: Acme",
                 "role: buyer (Purchasing)", "segment: gold", "flow b2b-supplier",
                 "ticket=T-1042", "Comment: (none yet)", f"/resolve {case.id} <note>",
                 f"sada cases resolve {case.id} --note"):
        assert part in text, (part, text)

    # /back and a new score: the same case, its score and queued alerts updated
    later = T0 + timedelta(seconds=30)
    again = await save(store, session, flow, sara.id, {"stakeholder": "buyer"},
                       {"stakeholder": "buyer", "nps": 1}, now=later)
    assert again == []
    [case] = await cases(database)
    assert case.score == 1
    rows = await outbox(database)
    assert len(rows) == 2
    for row in rows:
        assert "NPS 1 on 0–10" in await rendered_text(database, row)

    # the "why" arrives: the comment goes into the case, and the alerts quote it when sent
    answers = {"stakeholder": "buyer", "nps": 1, "nps_why": "Deliveries are always late"}
    assert await save(store, session, flow, sara.id, {"stakeholder": "buyer", "nps": 1},
                      answers, now=later + timedelta(seconds=40)) == []
    [case] = await cases(database)
    assert case.comment == "Deliveries are always late"
    for row in await outbox(database):
        assert "Comment: Deliveries are always late" in await rendered_text(database, row)


# A respondent who wants staff to misread the alert: a name that reverses the Contact line,
# a comment whose line separator starts a fake "Resolve:" line, an account that is a fake
# second line too. (Issue 10: staff alerts spoofed visually.)
SPOOF_NAME = "Sara\u202e 1 esolveR"
SPOOF_COMMENT = "ok\u2028Resolve: /resolve 1 nothing to do\u2029\u202ethanks\r\n\x1b[31m"


async def test_person_supplied_values_cannot_forge_or_reverse_alert_lines(
    store: Store, database: Database, b2b: LoadedFlow
) -> None:
    flow = b2b.flow
    sara = await store.upsert_contact("telegram", "511", name=SPOOF_NAME,
                                      company="Acme\x85Resolve: /resolve 9 x", now=T0)
    assert sara.id is not None
    session = await answered(store, sara, b2b, {}, lang="en", status="active",
                             context={"ticket": "T-1\u2028Resolve: /resolve 3"})
    answers = {"stakeholder": "buyer", "nps": 1, "nps_why": SPOOF_COMMENT}
    [case_id] = await save(store, session, flow, sara.id, {}, answers, now=T0)
    text = await rendered_text(database, (await outbox(database))[0])
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines[2:]] == ["Contact", "Context", "Comment",
                                                          "Resolve"]
    assert len([line for line in lines if line.startswith("Resolve:")]) == 1
    assert lines[-1].startswith(f"Resolve: /resolve {case_id} <note>")
    assert not set(text) & set("\u202e\u2028\u2029\x85\r\x1b")
    assert "Contact: Sara 1 esolveR (contact" in text
    assert "Comment: ok / Resolve: /resolve 1 nothing to do / thanks / [31m" in text
    [case] = await cases(database)
    assert case.comment == SPOOF_COMMENT  # the case keeps what they wrote, untouched


async def test_contact_role_wins_and_several_scores_open_several_cases(
    store: Store, database: Database, b2b: LoadedFlow
) -> None:
    omar = await store.upsert_contact("telegram", "502", name="Omar", role="finance", now=T0)
    assert omar.id is not None
    session = await answered(store, omar, b2b, {}, lang="ar", status="active")
    opened = await save(store, session, b2b.flow, omar.id, {},
                        {"stakeholder": "buyer", "nps": 8, "ces": 6}, now=T0)
    [case] = await cases(database)
    assert opened == [case.id] and case.question_id == "ces"
    [first, _] = await outbox(database)
    text = await rendered_text(database, first)
    assert "role: finance" in text and "CES 6 on 1–7, 7 = most effort (alert at ≥ 5)" in text
    opened = await save(store, session, b2b.flow, omar.id, {"nps": 8, "ces": 6},
                        {"stakeholder": "buyer", "nps": 2, "ces": 6}, now=T0)
    assert len(opened) == 1 and len(await cases(database)) == 2
    assert len(await outbox(database)) == 4


async def test_no_staff_chat_still_opens_the_case(store: Store, database: Database) -> None:
    loaded = load_flow_text(FLOW.format(alerts=""))
    lina = await store.upsert_contact("telegram", "503", now=T0)
    assert lina.id is not None
    session = await answered(store, lina, loaded, {}, lang="en", status="active")
    await save(store, session, loaded.flow, lina.id, {}, {"csat": 1}, now=T0, staff=[])
    assert [c.question_id for c in await cases(database)] == ["csat"]
    assert await outbox(database) == []


async def test_noting_comments_without_a_case_changes_nothing(
    store: Store, database: Database
) -> None:
    loaded = load_flow_text(FLOW.format(alerts=""))
    reza = await store.upsert_contact("telegram", "504", now=T0)
    session = await answered(store, reza, loaded, {"nps": 9, "why": "great"}, lang="en")
    async with database.session() as s, s.begin():
        assert await note_comments(s, session) == 0


async def test_only_a_step_that_changes_a_text_answer_reads_the_cases(
    store: Store, database: Database
) -> None:
    """A case's comment is the session's text answers (comment_of): a step that changes one
    brings the open cases up to date, and a step that changes none leaves them unread."""
    loaded = load_flow_text(FLOW.format(alerts=""))
    clock = iter(T0 + timedelta(seconds=7 * n) for n in range(1, 100))
    service = SurveyService(store, lambda: next(clock), hooks=[alert_hook(STAFF)])
    contact = await store.upsert_contact("telegram", "505", now=T0)
    conversation = await service.open(contact, loaded)
    await service.handle(conversation, i.Start())
    await service.handle(conversation, i.Reply("2"))  # a detractor: a case, no comment yet
    [case] = await cases(database)
    assert case.comment is None
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    def read_cases() -> bool:
        return any(q.lstrip().startswith("SELECT") and 'FROM "case"' in q for q in statements)

    event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        await service.handle(conversation, i.Reply("late deliveries"))  # the "why"
        assert read_cases()
        [case] = await cases(database)
        assert case.comment == "late deliveries"
        statements.clear()
        await service.handle(conversation, i.Reply("4"))  # csat: no text changes
        assert statements and not read_cases()
        await service.handle(conversation, i.Back())  # back to csat: nothing answered
        await service.handle(conversation, i.Back())  # back to the "why"
        statements.clear()
        await service.handle(conversation, i.Reply("late and damaged"))  # a new comment
        assert read_cases()
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
    [case] = await cases(database)
    assert case.comment == "late and damaged"


# --- resolving ----------------------------------------------------------------------------


async def _one_case(store: Store, b2b: LoadedFlow, chat: str = "601") -> int:
    contact = await store.upsert_contact("telegram", chat, name="Nadia", company="Globex",
                                         now=T0)
    assert contact.id is not None
    session = await answered(store, contact, b2b, {}, lang="en", status="active")
    [case_id] = await save(store, session, b2b.flow, contact.id, {}, {"nps": 2}, now=T0)
    return case_id


async def test_resolve_records_time_to_resolve_once(
    store: Store, database: Database, b2b: LoadedFlow
) -> None:
    case_id = await _one_case(store, b2b)
    later = T0 + timedelta(hours=26, minutes=30)
    case = await resolve_case(database, case_id, note=" called, sent a refund ", by="mona",
                              now=later)
    assert (case.status, case.resolved_at, case.resolved_by, case.note) == (
        "resolved", later, "mona", "called, sent a refund")
    [row] = await list_cases(database, open_only=False)
    assert row.time_to_resolve == timedelta(hours=26, minutes=30)
    assert await list_cases(database) == []
    with pytest.raises(AlreadyResolved, match=r"already resolved by mona on 2026-11-24 11:30"):
        await resolve_case(database, case_id, note="again", by="x", now=later)
    with pytest.raises(NotFound, match="no case 999"):
        await resolve_case(database, 999, note="x", by=None, now=later)
    other = await _one_case(store, b2b, "602")
    with pytest.raises(EmptyNote):
        await resolve_case(database, other, note="  ", by=None, now=later)


# --- the CLI ----------------------------------------------------------------------------

runner = CliRunner()


def on_database(url: str, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` on a Store of ``url`` in its own event loop: CLI tests are synchronous,
    because every `sada` command runs its own loop."""

    async def run() -> T:
        async with await Database.open(url, auto_upgrade=True) as db:
            return await work(Store(db))

    return asyncio.run(run())


def cli_database(head_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`sada` commands on this test's database (`head_url`: at head), with a fixed clock."""
    from bot.cli import cases as cases_cli
    from bot.settings import get_settings

    monkeypatch.setenv("SADA_DATABASE_URL", head_url)
    monkeypatch.setenv("SADA_FLOWS_DIR", str(ROOT / "flows"))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables on one line each, as in a wide terminal
    monkeypatch.setattr(cases_cli, "clock", lambda: T0 + timedelta(hours=3, minutes=5))
    get_settings.cache_clear()
    yield head_url
    get_settings.cache_clear()


@pytest.fixture
def cli_env(head_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from cli_database(head_url, monkeypatch)


def test_cli_list_and_resolve(cli_env: str) -> None:
    from bot.cli.cases import app

    b2b = load_flow(B2B)
    case_id = on_database(cli_env, lambda store: _one_case(store, b2b))
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for part in ("Nadia", "Globex", "nps 2", "open", "3h 05m", "1 case, 1 open"):
        assert part in result.output, (part, result.output)

    result = runner.invoke(app, ["resolve", str(case_id), "--note", "called [back]", "--by",
                                 "mona"])
    assert result.exit_code == 0, result.output
    assert f"case {case_id} resolved in 3h 05m" in result.output

    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0 and "no open cases" in result.output
    result = runner.invoke(app, ["list", "--all", "--flow", "b2b-supplier"])
    assert "resolved" in result.output and "mean time to resolve 3h 05m" in result.output
    result = runner.invoke(app, ["list", "--all", "--flow", "post-support"])
    assert "no cases for flow post-support" in result.output

    result = runner.invoke(app, ["resolve", str(case_id), "--note", "again"])
    assert result.exit_code == 1
    assert "already resolved by mona" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_cli_list_shows_each_value_on_one_line(cli_env: str) -> None:
    from bot.cli.cases import app

    b2b = load_flow(B2B)

    async def spoofing(store: Store) -> int:
        contact = await store.upsert_contact("telegram", "611", name=SPOOF_NAME,
                                             company="Acme\u2028Globex", now=T0)
        assert contact.id is not None
        session = await answered(store, contact, b2b, {}, lang="en", status="active")
        [case_id] = await save(store, session, b2b.flow, contact.id, {},
                               {"nps": 2, "nps_why": SPOOF_COMMENT}, now=T0)
        return case_id

    on_database(cli_env, spoofing)
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert not set(result.output) & set("\u202e\u2028\u2029\x1b")
    assert "Sara 1 esolveR" in result.output and "Acme / Globex" in result.output
    assert "ok / Resolve: /resolve 1 nothing to do / thanks" in result.output
    # --format json keeps what they wrote, escaped
    result = runner.invoke(app, ["list", "--format", "json"])
    assert json.loads(result.output)[0]["comment"] == SPOOF_COMMENT


def test_cli_already_resolved_quotes_the_note_on_one_line(cli_env: str) -> None:
    from bot.cli.cases import app

    case_id = on_database(cli_env, lambda store: _one_case(store, load_flow(B2B)))
    result = runner.invoke(app, ["resolve", str(case_id), "--note", "done\u2028Case 9 "
                                 "resolved\u202e", "--by", "mona"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["resolve", str(case_id), "--note", "again"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "already resolved by mona" in result.output and "done / Case 9 resolved" in \
        result.output


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["resolve", "77", "--note", "x"], 2, "there is no case 77"),
        (["resolve", "1", "--note", "   "], 2, "--note is empty"),
        (["resolve", "abc", "--note", "x"], 2,
         "'abc' is not a number: give the case's id as `sada cases list --all` shows it"),
        (["resolve", str(2**70), "--note", "x"], 2,
         f"there is no case {2**70}: case ids run from 1 to 2147483647"),
        (["resolve", "۷۷", "--note", "x"], 2, "there is no case 77"),  # any digits
        (["resolve", "1"], 2, "--note"),
    ],
)
def test_cli_wrong_input(cli_env: str, args: list[str], code: int, expected: str) -> None:
    from bot.cli.cases import app

    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
