"""Report speed: `sada report --by role|account` on a million answers, next to bare SQL.

Method
------
* Data: `--answers` (default 1,000,000) answers to flows/b2b_supplier.yaml from
  `--contacts` (10,000) people at `--accounts` (500) accounts, over 2025: about 8 answers
  per session, 88 % of sessions completed, the rest stopped part-way; one invitation per
  session plus silent ones, a case per detractor (most resolved), and promised actions.
  Rows are generated with a fixed seed and bulk-loaded: `executemany` on SQLite (one
  transaction), `COPY` (asyncpg `copy_records_to_table`) on PostgreSQL, then ANALYZE.
  The schema is Sada's own (Alembic head), with its indexes and nothing added.
* Bare SQL: the plain hand-written GROUP BY for NPS and CES per role or account (promoter,
  passive and detractor counts, CES count, sum and low-effort count), with the same joins
  and JSON extraction, one flat pass, run on the same engine: the floor for those figures.
  It does not count responses (sessions), split by month, or guard against non-numbers.
* Sada: `storage.reports.score_cells` exactly as `build_report` calls it (the one query
  behind the scores table and trend), and the whole `build_report` (scores + trend,
  funnel and drop-off, completion-time percentiles, invitations, cases and their
  percentiles, promises, distributions including multi picks), timed from the call to the
  returned Report. `build_accounts` (the B2B overview) is timed too.
* Each figure is the median of `--repeat` runs (default 5) after one warm-up run.

Run: ``.venv/bin/python bench/report_groupby.py [--answers N] [--backend sqlite|postgres|both]
[--postgres-url URL] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table
from sqlalchemy import text as sql
from sqlalchemy.engine import make_url

from bot.flow.loader import load_flow
from bot.flow.model import Flow
from bot.reports.metrics import FlowFacts, build_accounts, build_report
from bot.reports.periods import window
from storage.db import Database, upgrade
from storage.repo import Store
from storage.reports import Scope, score_cells

ROOT = Path(__file__).resolve().parents[1]

console = Console(highlight=False, width=140)
FLOW_FILE = ROOT / "flows" / "b2b_supplier.yaml"
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
ROLES = ("buyer", "end_user", "decision_maker", "technical", "finance")
ROLE_WEIGHTS = (30, 30, 10, 15, 15)
SEGMENTS = ("enterprise", "midmarket", "smb")
LANGUAGES = ("ar", "fa", "en")
# NPS leans by role, so the per-role figures differ as they would in life
NPS_BIAS = {"buyer": 0.0, "end_user": 0.8, "decision_maker": -1.0, "technical": 0.4,
            "finance": -0.5}
PRIORITIES = ("quality", "on_time", "timelines", "price", "fast_fixes", "one_contact")
INFORMED = ("always", "sometimes", "rarely")
VS_OTHERS = ("better", "same", "worse", "not_sure")
WHY = ("Late deliveries", "Great account manager", "تأخير في التسليم", "پاسخگویی سریع",
       "Prices went up", "")


# --- data -------------------------------------------------------------------------------------


@dataclass
class Data:
    contacts: list[tuple[Any, ...]] = field(default_factory=list)
    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    answers: list[tuple[Any, ...]] = field(default_factory=list)
    invitations: list[tuple[Any, ...]] = field(default_factory=list)
    cases: list[tuple[Any, ...]] = field(default_factory=list)
    actions: list[tuple[Any, ...]] = field(default_factory=list)


CONTACT_COLS = ("id", "external_id", "name", "language", "company", "role",
                "segment", "opted_out", "created_at", "updated_at")
SESSION_COLS = ("id", "contact_id", "flow_version_id", "flow_id", "status", "language",
                "position", "state", "context", "started_at", "last_activity_at",
                "completed_at")
ANSWER_COLS = ("id", "session_id", "question_id", "raw_text", "value", "skipped",
               "answered_at")
INVITATION_COLS = ("id", "contact_id", "flow_id", "context", "status", "due_at", "sent_at",
                   "session_id", "reminders_sent", "created_at")
CASE_COLS = ("id", "contact_id", "session_id", "flow_id", "question_id", "score", "status",
             "opened_at", "resolved_at")
ACTION_COLS = ("id", "flow_id", "account", "texts", "promised_at", "done_at", "created_at")


def _nps(rng: random.Random, role: str) -> int:
    return max(0, min(10, round(rng.gauss(7.3 + NPS_BIAS[role], 2.2))))


def generate(flow: Flow, version_id: int, answers: int, contacts: int, accounts: int,
             seed: int = 5) -> Data:
    """Rows as tuples of Python values (aware datetimes, JSON as text)."""
    rng = random.Random(seed)
    data = Data()
    people = []
    for cid in range(1, contacts + 1):
        account = (cid - 1) % accounts
        role = rng.choices(ROLES, ROLE_WEIGHTS)[0]
        language = LANGUAGES[cid % 3]
        people.append((cid, account, role, language))
        data.contacts.append((cid, str(100000 + cid), f"Contact {cid}", language,
                              f"Account {account:03d}", role, SEGMENTS[account % 3], False,
                              YEAR_START, YEAR_START))
    order = [q.id for q in flow.questions]
    sid = aid = kid = 0
    while aid < answers:
        sid += 1
        cid, account, role, language = people[rng.randrange(contacts)]
        started = YEAR_START + timedelta(seconds=rng.randrange(365 * 86400))
        said = role if rng.random() < 0.9 else rng.choice(ROLES)
        nps = _nps(rng, said)
        ces = max(1, min(7, round(rng.gauss(3.2, 1.5))))
        values: dict[str, Any] = {"stakeholder": said, "nps": nps}
        values["nps_why"] = rng.choice(WHY) or None  # None: skipped
        values["expectations"] = max(1, min(5, round(rng.gauss(3.6, 1.0))))
        values["priorities"] = rng.sample(PRIORITIES, rng.choice((1, 2)))
        values["informed"] = rng.choice(INFORMED)
        if said == "decision_maker":
            values["vs_others"] = rng.choice(VS_OTHERS)
        values["ces"] = ces
        if ces >= 5:
            values["ces_why"] = rng.choice(WHY) or None
        keys = list(values)
        completed = rng.random() < 0.88
        if not completed:
            keys = keys[: rng.randrange(len(keys))]
        keys = keys[: answers - aid]
        completed = completed and len(keys) == len(values)
        position = None if completed else order[order.index(keys[-1]) + 1] if keys else order[0]
        seconds = rng.lognormvariate(5.0, 0.45)
        done = started + timedelta(seconds=seconds) if completed else None
        status = "completed" if completed else rng.choice(("active", "stopped"))
        data.sessions.append((sid, cid, version_id, flow.id, status, language, position, "{}",
                              "{}", started, done or started, done))
        for i, key in enumerate(keys):
            aid += 1
            value = values[key]
            at = started + timedelta(seconds=seconds * (i + 1) / (len(keys) + 1))
            data.answers.append((aid, sid, key, "" if value is None else str(value),
                                 None if value is None else json.dumps(value,
                                                                       ensure_ascii=False),
                                 value is None, at))
        sent = started - timedelta(hours=rng.randrange(1, 72))
        data.invitations.append((sid, cid, flow.id, "{}",
                                 "completed" if completed else "expired", sent, sent, sid,
                                 0 if completed else 2, sent))
        if completed and nps <= 6:
            kid += 1
            assert done is not None
            resolved = done + timedelta(hours=rng.lognormvariate(3.0, 0.8)) if (
                rng.random() < 0.85) else None
            data.cases.append((kid, cid, sid, flow.id, "nps", nps,
                               "resolved" if resolved else "open", done, resolved))
    # silent people: invited, never answered
    for n in range(contacts // 10):
        cid = people[rng.randrange(contacts)][0]
        sent = YEAR_START + timedelta(seconds=rng.randrange(365 * 86400))
        data.invitations.append((sid + n + 1, cid, flow.id, "{}", "expired", sent, sent, None,
                                 2, sent))
    for n in range(1, 2001):
        promised = YEAR_START + timedelta(days=rng.randrange(380))
        done = promised + timedelta(days=rng.randrange(-5, 8)) if rng.random() < 0.8 else None
        data.actions.append((n, flow.id, f"Account {rng.randrange(accounts):03d}",
                             json.dumps({"en": "We fixed it"}), promised, done, YEAR_START))
    return data


# --- loading ----------------------------------------------------------------------------------


TABLES = (("contact", CONTACT_COLS, "contacts"), ("survey_session", SESSION_COLS, "sessions"),
          ("answer", ANSWER_COLS, "answers"), ("invitation", INVITATION_COLS, "invitations"),
          ("case", CASE_COLS, "cases"), ("action", ACTION_COLS, "actions"))


def _sqlite_value(value: Any) -> Any:
    # SQLAlchemy's SQLite DATETIME storage format, so Sada's queries compare like for like
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


def load_sqlite(path: Path, data: Data) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA foreign_keys=OFF")  # bulk load in dependency order anyway
        with connection:
            for table, columns, attr in TABLES:
                marks = ", ".join("?" * len(columns))
                connection.executemany(
                    f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({marks})',
                    ([_sqlite_value(v) for v in row] for row in getattr(data, attr)))
        connection.execute("ANALYZE")
    finally:
        connection.close()


async def load_postgres(url: str, data: Data) -> None:
    plain = url.replace("+asyncpg", "")
    connection = await asyncpg.connect(plain)
    try:
        async with connection.transaction():
            for table, columns, attr in TABLES:
                await connection.copy_records_to_table(table, records=getattr(data, attr),
                                                       columns=list(columns))
        for table, *_ in TABLES:
            await connection.execute(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', "
                                     f"'id'), (SELECT max(id) FROM \"{table}\"))")
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


# --- the bare queries -------------------------------------------------------------------------


def bare_query(dialect: str, by: str) -> str:
    """The plain GROUP BY anyone would write for NPS and CES per role or account: one
    flat pass over the NPS and CES answers, no per-session step, no trend, no window."""
    if dialect == "postgresql":
        num, text = "(a.value)::float8", "(r.value #>> '{}')"
    else:
        num, text = "json_extract(a.value, '$')", "json_extract(r.value, '$')"
    key = f"COALESCE({text}, c.role)" if by == "role" else "c.company"
    role_join = ("LEFT JOIN answer r ON r.session_id = s.id AND r.question_id = 'stakeholder' "
                 "AND NOT r.skipped") if by == "role" else ""
    return f"""
        SELECT {key} AS k, COUNT(*),
               SUM(CASE WHEN a.question_id = 'nps' AND {num} >= 9 THEN 1 ELSE 0 END),
               SUM(CASE WHEN a.question_id = 'nps' AND {num} >= 7 AND {num} < 9 THEN 1 ELSE 0 END),
               SUM(CASE WHEN a.question_id = 'nps' AND {num} < 7 THEN 1 ELSE 0 END),
               SUM(CASE WHEN a.question_id = 'ces' THEN 1 ELSE 0 END),
               SUM(CASE WHEN a.question_id = 'ces' THEN {num} ELSE 0 END),
               SUM(CASE WHEN a.question_id = 'ces' AND {num} <= 3 THEN 1 ELSE 0 END)
        FROM survey_session s
        JOIN contact c ON c.id = s.contact_id
        {role_join}
        JOIN answer a ON a.session_id = s.id AND a.question_id IN ('nps', 'ces')
             AND NOT a.skipped
        WHERE s.flow_id = 'b2b-supplier'
        GROUP BY 1
    """


# --- timing -----------------------------------------------------------------------------------


async def timed(function: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    """Median seconds over `repeat` runs after one warm-up; the last result."""
    result = await function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = await function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


@dataclass
class Row:
    view: str
    bare: float
    query: float
    report: float
    groups: int


async def measure(url: str, flow: Flow, repeat: int) -> list[Row]:
    rows = []
    now = datetime(2026, 1, 15, tzinfo=UTC)
    async with await Database.open(url) as db:
        dialect = db.engine.dialect.name
        facts = FlowFacts.of(flow)
        for by, since in (("role", None), ("account", None), ("role", date(2025, 7, 1)),
                          ("account", date(2025, 7, 1))):
            label = f"--by {by}" + (f" --since {since} (+ previous half)" if since else "")

            async def bare(by: str = by) -> Any:
                async with db.engine.connect() as conn:
                    return (await conn.execute(sql(bare_query(dialect, by)))).all()

            start, end = window(since, None)
            previous = datetime(2025, 1, 1, tzinfo=UTC) if since else None

            async def query(by: Any = by, start: Any = start, end: Any = end,
                            previous: Any = previous) -> Any:
                return await score_cells(db, Scope(flow.id, start, end),
                                         facts.grouping((by,)), facts.scores,
                                         previous_start=previous, period="month")

            async def whole(by: Any = by, since: Any = since) -> Any:
                return await build_report(db, flow, by=by, since=since, now=now)

            bare_s, bare_rows = await timed(bare, repeat)
            query_s, _ = await timed(query, repeat)
            report_s, report = await timed(whole, repeat)
            if since is None:  # the same rows: the report must agree with the bare query
                got = {g.key: g.nps.n if g.nps else 0 for g in report.groups}
                want = {str(r[0]): int(r[2] + r[3] + r[4]) for r in bare_rows}
                if got != want:
                    console.print(f"[bold red]MISMATCH {label}: report and bare SQL differ[/]")
            rows.append(Row(label, bare_s, query_s, report_s, len(report.groups)))
        accounts_s, accounts = await timed(lambda: build_accounts(db, flow, now=now), repeat)
        rows.append(Row(f"accounts overview ({len(accounts)} accounts)", float("nan"),
                        float("nan"), accounts_s, len(accounts)))
    return rows


def show(name: str, rows: list[Row], generated: float, loaded: float) -> None:
    table = Table(title=f"{name}: generate {generated:.1f} s, load {loaded:.1f} s",
                  title_justify="left")
    for column in ("view", "groups", "bare SQL (ms)", "Sada query (ms)", "query / bare",
                   "whole report (ms)", "report / bare"):
        table.add_column(column, justify="left" if column == "view" else "right")
    for r in rows:
        has_bare = r.bare == r.bare  # NaN for the accounts overview
        table.add_row(r.view, str(r.groups),
                      f"{r.bare * 1000:.0f}" if has_bare else "",
                      f"{r.query * 1000:.0f}" if has_bare else "",
                      f"{r.query / r.bare:.2f}×" if has_bare else "",
                      f"{r.report * 1000:.0f}",
                      f"{r.report / r.bare:.2f}×" if has_bare else "")
    console.print(table)


# --- backends ---------------------------------------------------------------------------------


async def prepare(url: str, flow: Flow, args: argparse.Namespace) -> tuple[Data, float]:
    async with await Database.open(url, auto_upgrade=True) as db:
        version = await Store(db).flow_version(flow.id, FLOW_FILE.read_text("utf-8"),
                                               flow.title["en"])
    started = time.perf_counter()
    data = generate(flow, int(version.id or 0), args.answers, args.contacts, args.accounts)
    return data, time.perf_counter() - started


async def bench_sqlite(flow: Flow, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sada.db"
        url = f"sqlite:///{path}"
        data, generated = await prepare(url, flow, args)
        started = time.perf_counter()
        load_sqlite(path, data)
        loaded = time.perf_counter() - started
        counts(data)
        show("SQLite", await measure(url, flow, args.repeat), generated, loaded)


async def bench_postgres(flow: Flow, args: argparse.Namespace) -> None:
    name = f"bench_{secrets.token_hex(6)}"
    plain = args.postgres_url.replace("+asyncpg", "")
    try:
        admin = await asyncpg.connect(plain, timeout=10)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        console.print(f"[yellow]PostgreSQL skipped: {type(exc).__name__}: {exc}[/]")
        return
    url = make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade(url)
        data, generated = await prepare(url, flow, args)
        started = time.perf_counter()
        await load_postgres(url, data)
        loaded = time.perf_counter() - started
        show("PostgreSQL", await measure(url, flow, args.repeat), generated, loaded)
    finally:
        admin = await asyncpg.connect(plain, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def counts(data: Data) -> None:
    console.print(
        f"rows: {len(data.contacts)} contacts, {len(data.sessions)} sessions, "
        f"{len(data.answers)} answers, {len(data.invitations)} invitations, "
        f"{len(data.cases)} cases, {len(data.actions)} actions")


async def main(args: argparse.Namespace) -> int:
    flow = load_flow(FLOW_FILE).flow
    console.print(f"Sada report GROUP BY · {args.answers} answers · {args.contacts} contacts · "
                  f"{args.accounts} accounts · Python {platform.python_version()} · "
                  f"{os.cpu_count()} CPU(s) · SQLite {sqlite3.sqlite_version}")
    if args.backend in ("sqlite", "both"):
        await bench_sqlite(flow, args)
    if args.backend in ("postgres", "both"):
        await bench_postgres(flow, args)
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--answers", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--contacts", type=int, default=10_000, metavar="N")
    parser.add_argument("--accounts", type=int, default=500, metavar="N")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a server where this user may CREATE and DROP databases")
    parser.add_argument("--repeat", type=int, default=5, metavar="R")
    args = parser.parse_args(argv)
    if min(args.answers, args.contacts, args.accounts, args.repeat) < 1:
        parser.error("--answers, --contacts, --accounts and --repeat must be at least 1")
    return args


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
