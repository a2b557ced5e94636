"""Closing the loop: an action reaches exactly the affected respondents, once, each in their
own language, calendar and digits; overdue promises alert staff once; replies are kept as
feedback on the right action; and the `sada actions` CLI, including every kind of bad input."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from bot.flow.loader import load_flow, load_flow_text
from bot.followups.actions import (
    FEEDBACK_WINDOW,
    ActionSpec,
    FollowupReport,
    add_action,
    check_promises,
    record_feedback,
    send_followups,
    summary_line,
)
from bot.i18n import RLM, Translator
from storage.actions import mark_done
from storage.db import Database
from storage.models import Action, Answer, Case, Feedback, Outbox, SurveySession
from storage.outbox import claim_due, mark_sent
from storage.repo import Store
from tests.conftest import DB_PARAMS, built_value, open_built, open_database
from tests.followups.outbox_fakes import rendered_text
from tests.followups.test_alerts import T0, answered, cli_database, on_database, outbox

ROOT = Path(__file__).resolve().parents[2]
B2B = ROOT / "flows" / "b2b_supplier.yaml"
SUPPORT = ROOT / "flows" / "post_support.yaml"
PROMISED = date(2026, 12, 12)
TEXTS = {
    "en": "We now send SMS tracking for every delivery.",
    "ar": "أصبحنا نرسل رسالة نصية لتتبّع كل شحنة.",
    "fa": "اکنون برای هر ارسال، پیامک پیگیری می‌فرستیم.",
}
# The example flow's recap of its NPS question: what a follow-up quotes.
NPS_FA = "چقدر احتمال دارد ما را به دیگران پیشنهاد کنید؟"
NPS_AR = "ما مدى احتمال أن توصوا بنا؟"
LATIN_DIGITS = re.compile("[0-9]")


@dataclass
class People:
    """Contact ids of the population every test starts from."""

    sara: int  # fa, gold, Acme, buyer (answer), NPS 4, high effort with a comment
    omar: int  # ar, gold, acme, decision_maker (contact role; answered finance), NPS 9
    lina: int  # en, silver, Globex, end_user, NPS 7, CES 5 with the comment skipped
    hadi: int  # gold, opted out
    mona: int  # gold, unreachable (blocked the bot)
    reza: int  # gold, imported: no Telegram chat
    nadia: int  # gold, survey still open
    karim: int  # gold, answered only the other flow


async def population(store: Store) -> People:
    b2b, support = load_flow(B2B), load_flow(SUPPORT)

    async def person(key: str, lang: str, segment: str, company: str, *, channel: str = "telegram",
                     role: str | None = None) -> int:
        contact = await store.upsert_contact(channel, key, name=key.title(), language=lang,
                                             segment=segment, company=company, role=role, now=T0)
        assert contact.id is not None
        return contact.id

    async def contact_of(cid: int):  # type: ignore[no-untyped-def]
        found = await store.get_contact(cid)
        assert found is not None
        return found

    ids = People(
        sara=await person("1001", "fa", "gold", "Acme"),
        omar=await person("1002", "ar", "gold", "acme", role="decision_maker"),
        lina=await person("1003", "en", "silver", "Globex"),
        hadi=await person("1004", "fa", "gold", "Acme"),
        mona=await person("1005", "ar", "gold", "Acme"),
        reza=await person("crm-77", "fa", "gold", "Acme", channel="external"),
        nadia=await person("1007", "en", "gold", "Acme"),
        karim=await person("1008", "en", "gold", "Acme"),
    )
    await answered(store, await contact_of(ids.sara), b2b,
                   {"stakeholder": "buyer", "nps": 4, "ces": 6, "ces_why": "too many forms"},
                   lang="fa")
    await answered(store, await contact_of(ids.omar), b2b,
                   {"stakeholder": "finance", "nps": 9, "ces": 2}, lang="ar")
    await answered(store, await contact_of(ids.lina), b2b,
                   {"stakeholder": "end_user", "nps": 7, "ces": 5}, lang="en",
                   skipped=("ces_why",))
    for cid in (ids.hadi, ids.mona, ids.reza):
        await answered(store, await contact_of(cid), b2b, {"nps": 2}, lang="fa")
    await answered(store, await contact_of(ids.nadia), b2b, {"nps": 1}, lang="en",
                   status="active")
    await answered(store, await contact_of(ids.karim), support, {"csat": 1}, lang="en")
    await store.set_contact_flags(ids.hadi, opted_out=True, now=T0)
    await store.set_contact_flags(ids.mona, unreachable=True, now=T0)
    return ids


async def _population(database: Database) -> People:
    return await population(Store(database))


@pytest.fixture(params=DB_PARAMS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """tests/conftest.py's `database`, except that a test taking `people` finds the
    population in it already: built once per test process, then copied."""
    if "people" in request.fixturenames:
        opened = open_built(request, tmp_path, _population)
    else:
        opened = open_database(request, tmp_path)
    async for db in opened:
        yield db


@pytest.fixture
def people(request: pytest.FixtureRequest, database: Database) -> People:
    """The population's ids in `database`."""
    backend = request.node.callspec.params["database"]
    return built_value(request, backend, _population)  # type: ignore[no-any-return]


def spec(**fields: object) -> ActionSpec:
    return ActionSpec.model_validate({"flow": "b2b-supplier", "text": TEXTS, **fields})


async def followups(database: Database) -> dict[int, Outbox]:
    return {row.contact_id or 0: row for row in await outbox(database, "followup")}


async def text_of(database: Database, row: Outbox) -> str:
    """What the dispatcher writes for ``row`` when it sends it."""
    return await rendered_text(database, row, {"b2b-supplier": load_flow(B2B).flow})


NOW = T0 + timedelta(days=1)


async def test_a_segment_gets_it_each_in_their_language_calendar_and_digits(
    database: Database, people: People
) -> None:
    b2b = load_flow(B2B).flow
    action, report = await add_action(database, spec(segment="gold", promised="2026-12-12"),
                                      flow=b2b, now=NOW)
    assert (dict(report.queued), report.opted_out, report.unreachable, report.not_telegram,
            report.already, dict(report.fallback)) == ({"fa": 1, "ar": 1}, 1, 1, 1, 0, {})
    sent = await followups(database)
    assert set(sent) == {people.sara, people.omar}
    for cid, chat in ((people.sara, 1001), (people.omar, 1002)):
        row = sent[cid]
        assert (row.key, row.kind, row.channel, row.address, row.action_id, row.status,
                row.due_at) == (f"followup:{action.id}:{cid}", "followup", "telegram",
                                str(chat), action.id, "queued", NOW)

    fa = await text_of(database, sent[people.sara])
    for part in (TEXTS["fa"], "۲۱ آذر ۱۴۰۵", NPS_FA, "۴", "۱۰", "نظرسنجی همکاری با ما"):
        assert part in fa, (part, fa)
    ar = await text_of(database, sent[people.omar])
    for part in (TEXTS["ar"], "١٢ ديسمبر ٢٠٢٦", NPS_AR, "٩", "١٠", "تقييم علاقة العمل معنا"):
        assert part in ar, (part, ar)
    for text in (fa, ar):
        assert not LATIN_DIGITS.search(text), text
        assert all(line.startswith(RLM) for line in text.splitlines()), text
        assert TEXTS["en"] not in text

    # running it again tells nobody twice
    again = await send_followups(database, action.id or 0, flow=b2b, now=NOW)
    assert (again.total_queued, again.already) == (0, 2)
    assert len(await outbox(database)) == 2


async def test_english_reader(database: Database, people: People) -> None:
    b2b = load_flow(B2B).flow
    await add_action(database, spec(account="globex", promised="2026-12-12"), flow=b2b, now=NOW)
    [row] = (await followups(database)).values()
    assert row.contact_id == people.lina
    assert (await text_of(database, row)).splitlines() == [
        "Thank you for answering “Supplier relationship review”.",
        "When we asked “How likely are you to recommend us?”, you answered: 7 out of 10",
        f"What we are doing: {TEXTS['en']}",
        "What comes next: this will be done by 12 December 2026.",
        "Reply to this message if you would like to tell us more.",
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, {"sara", "omar", "lina"}),
        ({"account": "ACME"}, {"sara", "omar"}),
        ({"segment": "silver"}, {"lina"}),
        ({"role": "buyer"}, {"sara"}),  # their answer to `stakeholder`
        ({"role": "decision_maker"}, {"omar"}),  # the contact's role wins over the answer
        ({"role": "finance"}, {"omar"}),  # … and the answer counts too
        ({"question": "ces_why"}, {"sara"}),  # lina skipped it
        ({"question": "vs_others"}, set()),
        ({"segment": "gold", "role": "buyer"}, {"sara"}),
        ({"segment": "platinum"}, set()),
    ],
)
async def test_exactly_the_affected_respondents(
    database: Database, people: People, filters: dict[str, str], expected: set[str]
) -> None:
    _, report = await add_action(database, spec(**filters), flow=load_flow(B2B).flow, now=NOW)
    names = {getattr(people, n): n for n in ("sara", "omar", "lina")}
    assert {names[c] for c in await followups(database)} == expected
    assert report.total_queued == len(expected)


async def test_the_question_answer_is_recalled(database: Database, people: People) -> None:
    await add_action(database, spec(question="ces_why"), flow=load_flow(B2B).flow, now=NOW)
    [row] = (await followups(database)).values()
    text = await text_of(database, row)
    assert "too many forms" in text and TEXTS["fa"] in text
    assert "چه چیزی کار با ما را سخت می‌کند؟" in text  # the question, in Persian


async def test_a_case_reaches_only_its_respondent(
    store: Store, database: Database, people: People
) -> None:
    async with database.session() as s, s.begin():
        lina_session = (await s.exec(select(SurveySession).where(
            SurveySession.contact_id == people.lina))).one()
        case = Case(contact_id=people.lina, session_id=lina_session.id or 0,
                    flow_id="b2b-supplier", question_id="ces", score=5, opened_at=T0)
        s.add(case)
    _, report = await add_action(database, spec(case=case.id), flow=load_flow(B2B).flow,
                                 now=NOW)
    [row] = (await followups(database)).values()
    assert row.contact_id == people.lina and report.total_queued == 1
    text = await text_of(database, row)
    assert "you answered: 5 out of 7" in text and "What we did:" in text


async def test_missing_language_falls_back_to_the_flow_default(
    database: Database, people: People
) -> None:
    only_ar = ActionSpec.model_validate({"flow": "b2b-supplier", "text": {"ar": TEXTS["ar"]}})
    _, report = await add_action(database, only_ar, flow=load_flow(B2B).flow, now=NOW)
    assert dict(report.queued) == {"ar": 3}
    assert dict(report.fallback) == {"fa": 1, "en": 1}
    for row in (await followups(database)).values():
        text = await text_of(database, row)
        assert TEXTS["ar"] in text and not LATIN_DIGITS.search(text)


async def test_overdue_promise_alerts_staff_once(
    database: Database, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    b2b = load_flow(B2B).flow
    kept, _ = await add_action(database, spec(segment="silver", promised="2026-12-12"),
                               flow=b2b, now=NOW)
    slipped, _ = await add_action(database, spec(segment="gold", promised="2026-12-12"),
                                  flow=b2b, now=NOW)
    await add_action(database, spec(segment="gold"), flow=b2b, now=NOW)  # no promise
    end_of_day = datetime(2026, 12, 13, tzinfo=UTC)
    await mark_done(database, kept.id or 0, now=end_of_day - timedelta(hours=1))
    staff = [("telegram", "-1001"), ("telegram", "4242")]
    assert await check_promises(database, now=end_of_day - timedelta(seconds=1),
                                staff=staff) == 0
    assert await check_promises(database, now=end_of_day, staff=[]) == 0
    assert await check_promises(database, now=end_of_day, staff=staff) == 1
    rows = await outbox(database, "overdue")
    assert [(r.key, r.address, r.contact_id, r.action_id) for r in rows] == [
        (f"overdue:{slipped.id}:{address}", address, None, slipped.id) for _, address in staff]
    text = await text_of(database, rows[0])
    assert "promised for 12 December 2026" in text
    assert "0 respondents were told about it." in text  # counted when sent: none went yet
    assert f"sada actions done {slipped.id}" in text
    assert await check_promises(database, now=end_of_day + timedelta(days=3),
                                staff=staff) == 0
    async with database.session() as s, s.begin():
        action = await s.get(Action, slipped.id)
        assert action is not None and action.overdue_alerted_at == end_of_day

    # the scheduler's hook passes only `now`: the alert chats come from the settings
    from bot.settings import get_settings

    late, _ = await add_action(database, spec(segment="gold", promised="2026-12-20"),
                               flow=b2b, now=NOW)
    monkeypatch.setenv("SADA_ALERT_CHAT_IDS", "777")
    get_settings.cache_clear()
    try:
        assert await check_promises(database, now=datetime(2026, 12, 21, tzinfo=UTC)) == 1
    finally:
        get_settings.cache_clear()
    assert [r.key for r in await outbox(database, "overdue")][-1] == f"overdue:{late.id}:777"


async def _deliver(database: Database, at: datetime) -> None:
    """Send everything queued, as the dispatcher would, at ``at``."""
    for row in await claim_due(database, now=at, limit=100, lease=timedelta(minutes=1),
                               worker="test", channels={"telegram"}):
        assert row.id is not None
        await mark_sent(database, row.id, 1, at, claimed_until=row.locked_until)


async def test_replies_become_feedback_on_the_latest_followup(
    store: Store, database: Database, people: People
) -> None:
    b2b = load_flow(B2B).flow
    first, _ = await add_action(database, spec(segment="gold"), flow=b2b, now=NOW)
    await _deliver(database, NOW)
    second, _ = await add_action(database, spec(role="buyer"), flow=b2b,
                                 now=NOW + timedelta(days=2))
    await _deliver(database, NOW + timedelta(days=2))

    later = NOW + timedelta(days=3)
    assert await record_feedback(database, contact_id=people.sara, text=" Thanks, works! ",
                                 now=later)
    assert await record_feedback(database, contact_id=people.omar, text="Good", now=later)
    assert not await record_feedback(database, contact_id=people.sara, text="   ", now=later)
    assert not await record_feedback(database, contact_id=people.lina, text="hm", now=later)
    # a follow-up older than the window: the message is something new, not feedback
    assert not await record_feedback(database, contact_id=people.omar, text="late",
                                     now=NOW + FEEDBACK_WINDOW + timedelta(minutes=1))
    async with database.session() as s, s.begin():
        kept = list((await s.exec(select(Feedback).order_by(col(Feedback.id)))).all())
    assert [(f.action_id, f.contact_id, f.text, f.received_at) for f in kept] == [
        (second.id, people.sara, "Thanks, works!", later),
        (first.id, people.omar, "Good", later),
    ]

    # a survey open again: the message is an answer, not feedback
    sara = await store.get_contact(people.sara)
    assert sara is not None
    await answered(store, sara, load_flow(B2B), {}, lang="fa", status="active", now=later)
    assert not await record_feedback(database, contact_id=people.sara, text="5", now=later)


def test_report_counts() -> None:
    report = FollowupReport(1)
    report.queued["fa"] += 2
    report.opted_out = 1
    assert (report.total_queued, report.affected) == (2, 3)


# --- the CLI ------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli_env(head_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from cli_database(head_url, monkeypatch)


def sada(*args: str) -> tuple[int, str]:
    from bot.cli.actions import app

    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _texts() -> list[str]:
    return ["--text-en", TEXTS["en"], "--text-ar", TEXTS["ar"], "--text-fa", TEXTS["fa"]]


def test_cli_add_list_show_done(cli_env: str) -> None:
    people = on_database(cli_env, population)
    # the promised day in Persian digits, as every other date Sada reads
    code, out = sada("add", "--flow", "b2b-supplier", "--segment", "gold", *_texts(),
                     "--promised", "۲۰۲۶-۱۲-۱۲")
    assert code == 0, out
    assert out.splitlines() == [
        "action 1 added (flow b2b-supplier, segment gold, promised 2026-12-12)",
        "follow-ups queued: 2 (ar 1, fa 1); the scheduler sends them",
        "not sent: 1 opted out, 1 unreachable (blocked the bot), 1 without a reachable chat",
    ]
    code, out = sada("add", "--flow", str(B2B), "--role", "buyer", "--text-ar", TEXTS["ar"],
                     "--text-en", TEXTS["en"])
    assert code == 0, out
    assert "warning: --text-fa: no 'fa' text" in out
    assert "1 respondent in 'fa' get the 'ar' text" in out
    code, out = sada("send", "1")
    assert code == 0 and "not sent: 2 already told" in out, out

    async def feedback(store: Store) -> None:
        await _deliver(store.database, NOW)
        assert await record_feedback(store.database, contact_id=people.omar,
                                     text="Great [news]", now=NOW)

    on_database(cli_env, feedback)
    code, out = sada("list")
    assert code == 0, out
    assert "segment gold" in out and "2026-12-12" in out and "role buyer" in out
    code, out = sada("show", "1")
    assert code == 0 and "1 reply" in out and "Great [news]" in out, out
    code, out = sada("done", "1")
    assert (code, out.strip()) == (0, "action 1 marked done (on time)")
    code, out = sada("done", "1")
    assert code == 1 and "already marked done" in out and len(out.strip().splitlines()) == 1
    code, out = sada("done", "9")
    assert code == 2 and "there is no action 9" in out
    code, out = sada("show", "9")
    assert code == 2 and "there is no action 9" in out
    for command in ("done", "show", "send"):  # beyond what a database id holds: one line
        code, out = sada(command, str(2**70))
        assert code == 2 and len(out.strip().splitlines()) == 1, out
        assert f"there is no action {2**70}: action ids run from 1 to 2147483647" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--flow", "b2b", *[]], "--flow: there is no flow 'b2b'; did you mean 'b2b-supplier'?"),
        (["--flow", "b2b-supplier", "--question", "cess"],
         "--question: flow 'b2b-supplier' has no question 'cess'; did you mean 'ces'?"),
        (["--flow", "b2b-supplier", "--question", "Q 1"], "--question: 'Q 1' is not an id"),
        (["--flow", "b2b-supplier", "--text-en", "x", "--text-fa", "y"],
         "--text-ar: no 'ar' text: flow 'b2b-supplier' falls back to its default language"),
        (["--flow", "b2b-supplier", "--promised", "2026-13-01"],
         "--promised: '2026-13-01' is not a date: write it as YYYY-MM-DD, e.g. 2026-01-31"),
        (["--flow", "b2b-supplier", "--promised", "12/12/2026"],
         "--promised: '12/12/2026' is not a date: write it as YYYY-MM-DD"),
        (["--flow", "b2b-supplier", "--promised", "9999-12-31"],
         "--promised: '9999-12-31' is out of range: give a date between 1970-01-01 and "
         "2999-12-31"),
        (["--flow", "b2b-supplier", "--case", str(2**70)],
         f"there is no case {2**70}: case ids run from 1 to 2147483647"),
        (["--flow", "b2b-supplier", "--case", "²"],
         "'²' is not a number: give the case's id as `sada cases list --all` shows it"),
        (["--flow", "b2b-supplier", "--promised", "2026-11-01"],
         "--promised: the promised date 2026-11-01 is already past"),
        (["--flow", "b2b-supplier", "--case", "99"],
         "--case: there is no case 99; `sada cases list --all` shows them"),
        (["--flow", "b2b-supplier", "--case", "3", "--segment", "gold"],
         "--case names one respondent: leave out --segment, --account and --role"),
        (["--flow", "b2b-supplier", "--segment", " "], "--segment: is empty"),
        (["--file", "x.yaml", "--flow", "b2b-supplier"],
         "--file takes everything from the file: leave out --flow"),
        ([], "--flow is required"),
    ],
)
def test_cli_add_wrong_input(cli_env: str, args: list[str], expected: str) -> None:
    texts = [] if any(a.startswith("--text") for a in args) or "--file" in args or not args \
        else _texts()
    code, out = sada("add", *args, *texts)
    assert code == 2, out
    assert expected in out, out


def test_cli_add_texts_required(cli_env: str) -> None:
    code, out = sada("add", "--flow", "b2b-supplier")
    assert code == 2
    assert "give the action's text with --text-en, --text-ar and/or --text-fa" in out


def test_cli_case_of_another_flow(cli_env: str) -> None:
    people = on_database(cli_env, population)

    async def case(store: Store) -> int:
        async with store.database.session() as s, s.begin():
            session = (await s.exec(select(SurveySession).where(
                SurveySession.contact_id == people.karim))).one()
            row = Case(contact_id=people.karim, session_id=session.id or 0,
                       flow_id="post-support", question_id="csat", score=1, opened_at=T0)
            s.add(row)
        return row.id or 0

    case_id = on_database(cli_env, case)
    code, out = sada("add", "--flow", "b2b-supplier", "--case", str(case_id), *_texts())
    assert code == 2 and f"case {case_id} is about flow 'post-support'" in out, out
    code, out = sada("add", "--flow", "post-support", "--case", str(case_id), *_texts())
    assert code == 0 and "follow-ups queued: 1 (en 1)" in out, out


ACTIONS = ROOT / "tests" / "fixtures" / "actions"


def test_cli_add_from_a_file(cli_env: str) -> None:
    on_database(cli_env, population)
    good = ACTIONS / "delivery.yaml"
    code, out = sada("add", "--file", str(good))
    assert code == 0, out
    assert out.splitlines() == [
        f"{good}:13:11: warning: action 2: no 'fa' text: respondents who answered in 'fa' "
        "will get the 'ar' text",
        # only those who answered `ces`: the opted-out and the others answered only NPS
        "action 1 added (flow b2b-supplier, question ces, segment gold, promised 2026-12-12)",
        "follow-ups queued: 2 (ar 1, fa 1); the scheduler sends them",
        "action 2 added (flow b2b-supplier, account Globex)",
        "follow-ups queued: 1 (en 1); the scheduler sends them",
    ]
    # running the file again adds nothing and tells nobody twice
    code, out = sada("add", "--file", str(good))
    assert code == 0, out
    assert "action 1 already recorded (flow b2b-supplier, question ces" in out
    assert "action 2 already recorded" in out and "not sent: 1 already told" in out

    async def counts(store: Store) -> tuple[int, int]:
        async with store.database.session() as s, s.begin():
            actions = len((await s.exec(select(Action))).all())
            rows = len((await s.exec(select(Outbox))).all())
        return actions, rows

    assert on_database(cli_env, counts) == (2, 3)


def test_cli_file_problems_with_positions_and_nothing_added(cli_env: str) -> None:
    on_database(cli_env, population)
    bad = ACTIONS / "problems.yaml"
    code, out = sada("add", "--file", str(bad))
    assert code == 1, out
    lines = out.splitlines()
    expected = [
        f"{bad}:5:5: error: unknown key 'segmnt' in action 1; did you mean 'segment'?",
        f"{bad}:6:15: error: 'promised' of action 1: '2026-13-01' is not a date",
        f"{bad}:9:7: error: unknown language 'de' in the text of action 1",
        f"{bad}:11:15: error: action 2: flow 'b2b-supplier' has no question 'cess'; did you "
        "mean 'ces'?",
        f"{bad}:12:11: error: action 2: no 'ar' text",
        f"{bad}:13:11: error: action 3: there is no flow 'nope'",
        f"{bad}:15:5: error: action 4 has no 'text'",
        f"{bad}:17:11: error: action 5: there is no case 42",
    ]
    for line in expected:
        assert any(got.startswith(line) for got in lines), (line, out)
    assert lines[-1] == f"{bad}: 8 errors; nothing was added"
    code, out = sada("list")
    assert "no actions" in out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("actions:\n  - flow: b2b-supplier\n\ttext: {en: x}\n", ":3:1: error: tab character"),
        ('- flow: "b2b-supplier\n  text: {en: x}\n', "this quote is never closed"),
        ("", ":1:1: error: the file is empty"),
        ("actions: 3\n", ":1:10: error: an actions file is a list of actions"),
        ("- 3\n", ":1:3: error: action 1 must be a mapping of keys"),
    ],
)
def test_cli_broken_yaml(cli_env: str, tmp_path: Path, content: str, expected: str) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(content, encoding="utf-8")
    code, out = sada("add", "--file", str(broken))
    assert code == 1, out
    assert expected in out, out
    assert "nothing was added" in out


def test_cli_missing_file(cli_env: str, tmp_path: Path) -> None:
    code, out = sada("add", "--file", str(tmp_path / "nope.yaml"))
    assert code == 1 and "nope.yaml:1:1: error: no such file" in out


# --- what a follow-up quotes of the question ---------------------------------------------

RECALL_FLOW = """\
id: recall
languages: [en, fa, ar]
default_language: en
title: {en: "Recall", fa: "یادآوری", ar: "تذكير"}
intro: {en: "Hi", fa: "سلام", ar: "مرحبًا"}
outro: {en: "Thanks", fa: "ممنون", ar: "شكرًا"}
groups:
  - id: main
    title: {en: "Main", fa: "اصلی", ar: "رئيسي"}
    questions:
      - id: nps
        type: nps
        text:
          en: "Thinking of this whole year of work together, on a scale from 0 to 10,
            how likely are you to recommend us to a colleague?"
          fa: "با در نظر گرفتن همهٔ همکاری امسال، از ۰ تا ۱۰ چقدر احتمال دارد ما را
            به یکی از همکارانتان پیشنهاد کنید، حتی اگر هنوز تصمیم قطعی نگرفته‌اید؟"
          ar: "بالنظر إلى عام كامل من العمل معًا، وعلى مقياس من ٠ إلى ١٠، ما مدى احتمال
            أن توصوا بنا لأحد زملائكم أو لشركة أخرى؟"
      - id: why
        type: text
        text:
          en: "Sorry to hear that. What went wrong? A few words are enough."
          fa: "متأسفیم. چه چیزی درست پیش نرفت؟ چند کلمه کافی است."
          ar: "نأسف لذلك. ما الذي لم يسر على ما يرام؟ تكفي بضع كلمات."
      - id: support
        type: csat
        text:
          en: "One last thing, about our support team: how satisfied are you with it?
            Pick a number."
          fa: "یک سؤال آخر دربارهٔ تیم پشتیبانی ما: چقدر از آن راضی هستید؟ یک عدد انتخاب کنید."
          ar: "سؤال أخير عن فريق الدعم لدينا: ما مدى رضاكم عنه؟ اختاروا رقمًا."
        recap:
          en: "How was our support for {company}?"
          fa: "پشتیبانی ما برای {company} چطور بود؟"
          ar: "كيف كان دعمنا لـ{company}؟"
"""


def recalled(qid: str, value: object, lang: str) -> str:
    """The follow-up's line about `qid`, without the bidi isolates around what it quotes."""
    flow = load_flow_text(RECALL_FLOW).flow
    answers = {qid: Answer(session_id=1, question_id=qid, raw_text=str(value), value=value,
                           answered_at=T0)}
    line = summary_line(flow, flow.question(qid), answers, {"company": "Acme"},
                        Translator(lang))
    assert line is not None
    return line.replace("\u2068", "").replace("\u2069", "")


def test_a_followup_quotes_the_question_sentence_without_preamble_or_instructions() -> None:
    assert recalled("why", "late delivery", "en") == \
        "When we asked “What went wrong?”, you answered: late delivery"
    fa = recalled("why", "دیر رسید", "fa")
    assert "«چه چیزی درست پیش نرفت؟»" in fa and "متأسفیم" not in fa and "کافی" not in fa
    ar = recalled("why", "تأخر الشحنة", "ar")
    assert "«ما الذي لم يسر على ما يرام؟»" in ar and "نأسف" not in ar and "تكفي" not in ar


def test_a_recap_is_quoted_with_its_placeholders_filled() -> None:
    assert recalled("support", 2, "en") == \
        "When we asked “How was our support for Acme?”, you answered: 2 out of 5"
    fa = recalled("support", 2, "fa")
    assert "پشتیبانی ما برای" in fa and "Acme" in fa and "تیم پشتیبانی" not in fa


def test_a_long_scored_question_is_recalled_by_its_short_standard_form() -> None:
    assert recalled("nps", 3, "en") == \
        "When we asked “How likely are you to recommend us?”, you answered: 3 out of 10"
    for lang in ("fa", "ar"):
        text = recalled("nps", 3, lang)
        quoted = text[text.index("«") + 1:text.index("»")]
        assert len(quoted) < 60 and quoted.endswith("؟"), text
        assert "۱۰" not in quoted and "١٠" not in quoted, text
