"""Report queries: every count, sum, mean and percentile is computed by the database.

Each function runs one statement (two for distributions of `multi` questions) and returns
grouped rows, never answers one by one. bot/reports/metrics.py folds the rows into typed
results. Answer values are JSON (text on SQLite, JSONB on PostgreSQL); the two small
`_number` / `_text` helpers are the only dialect-specific value extraction.

Scope: one flow, sessions started in [start, end) (UTC), optionally one account
(contact.company). Keys that a session lacks are reported as `no_value`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    inspect,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause, Select

from storage.db import Database
from storage.invitations import COUNTED_STATUSES
from storage.models import Action, Answer, Case, Contact, Invitation, Outbox, SurveySession

Key = Literal["role", "account", "segment", "language", "touchpoint"]

# The thresholds of the definitions (docs/metrics.md); bot.reports.metrics re-exports them.
PROMOTER_MIN = 9  # NPS 9–10: promoters
PASSIVE_MIN = 7  # NPS 7–8: passives; 0–6: detractors
CSAT_SATISFIED_MIN = 4  # CSAT 4–5 on 1–5: satisfied
CES_LOW_EFFORT_MAX = 3  # CES 1–3 on 1 (very easy) … 7 (very difficult): low effort

_S = inspect(SurveySession).local_table
_C = inspect(Contact).local_table
_I = inspect(Invitation).local_table
_CASE = inspect(Case).local_table
_ACT = inspect(Action).local_table

_O = inspect(Outbox).local_table

# Invitations that reached the person (or were answered: a scheduled invitation is started
# by a session opened from the menu before its message went out).
_REACHED = ("sent", "started", "completed", "expired")


def _invited(i: Any) -> ColumnElement[Any]:
    """The contact was invited: the invitation counts as storage/invitations.py counts it
    for fatigue (scheduled, sent, started, completed, expired), or was cancelled after it
    had been sent. Skipped ones (opted out, fatigue, account limit) and ones cancelled
    before sending asked nobody. The same people `sada contacts silent` lists."""
    return or_(i.c.status.in_(COUNTED_STATUSES),
               and_(i.c.status == "cancelled", i.c.sent_at.is_not(None)))


def _reached(i: Any) -> ColumnElement[Any]:
    """The invitation's message went out (the planner may not have noticed yet: its
    outbox row says so first, as `sada contacts silent` reads it), or it was answered."""
    o = _O.alias("o")
    delivered = exists().where(o.c.invitation_id == i.c.id, o.c.kind == "invitation",
                               o.c.status == "sent")
    return or_(i.c.status.in_(_REACHED), i.c.sent_at.is_not(None), delivered)


@dataclass(frozen=True)
class Scope:
    """Which sessions a report counts."""

    flow_id: str
    start: datetime | None = None  # sessions started at or after
    end: datetime | None = None  # … and before
    account: str | None = None
    language: str | None = None  # session language (for `sada answers --lang`)


@dataclass(frozen=True)
class Grouping:
    """How sessions are keyed: the dimensions, plus what the flow says about roles and
    touchpoints (the role question's id, the flow's own touchpoint)."""

    keys: tuple[Key, ...] = ()
    role_question: str | None = None
    touchpoint: str | None = None
    no_value: str = "(none)"


@dataclass(frozen=True)
class ScoreIds:
    """The flow's NPS, CSAT and CES question ids (None when it has no such question)."""

    nps: str | None = None
    csat: str | None = None
    ces: str | None = None

    @property
    def ids(self) -> list[str]:
        return [q for q in (self.nps, self.csat, self.ces) if q is not None]


@dataclass(frozen=True)
class ScoreCell:
    """Counts for one (window, keys, period) cell; each session is in exactly one cell."""

    previous: bool  # True: the comparison window before `start`
    keys: tuple[str, ...]
    bucket: str | None  # period start, YYYY-MM-DD
    responses: int
    promoters: int
    passives: int
    detractors: int
    csat_n: int
    csat_hits: int
    ces_n: int
    ces_sum: float
    ces_low: int


def _dialect(db: Database) -> str:
    return db.engine.dialect.name


async def _all(db: Database, statement: Any) -> Sequence[Row[*tuple[Any, ...]]]:
    # Core statements on a plain connection: grouped rows, no ORM objects to build.
    async with db.reader() as conn:
        return (await conn.execute(statement)).all()


async def _one(db: Database, statement: Any) -> Row[*tuple[Any, ...]]:
    async with db.reader() as conn:
        return (await conn.execute(statement)).one()


# --- values and dates, per dialect ---------------------------------------------------


def _number(dialect: str, value: Any) -> ColumnElement[Any]:
    """The answer's JSON value as a number; NULL when it is not a number."""
    if dialect == "postgresql":
        return case((func.jsonb_typeof(value) == "number", cast(value, Float)))
    # json_type, not typeof(json_extract(…)): json_extract turns JSON true into integer 1.
    # A JSON number's text is a valid SQL number, so CAST reads it without parsing JSON
    # a second time.
    return case((func.json_type(value).in_(("integer", "real")), cast(value, Float)))


def _text(dialect: str, value: Any) -> ColumnElement[Any]:
    """The answer's JSON scalar as text: 9 → '9', "buyer" → 'buyer', true → 'true'."""
    if dialect == "postgresql":
        return value.op("#>>", return_type=String)(literal_column("'{}'"))
    kind = func.json_type(value)
    return case(
        (kind == "true", literal("true")),
        (kind == "false", literal("false")),
        else_=cast(func.json_extract(value, "$"), String),
    )


def _choice(dialect: str, value: Any) -> ColumnElement[Any]:
    """A choice answer's option id (a JSON string) as text."""
    if dialect == "postgresql":
        return value.op("#>>", return_type=String)(literal_column("'{}'"))
    return cast(func.json_extract(value, "$"), String)


def _json_key(dialect: str, document: Any, key: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return document.op("->>", return_type=String)(literal(key))
    return cast(func.json_extract(document, f"$.{key}"), String)


def _bucket(dialect: str, moment: Any, period: str) -> ColumnElement[Any]:
    """Start (YYYY-MM-DD) of the UTC week (Monday) or month holding `moment`."""
    if dialect == "postgresql":
        utc = func.timezone("UTC", moment)
        return func.to_char(func.date_trunc(period, utc), "YYYY-MM-DD")
    if period == "month":
        # stored as 'YYYY-MM-DD HH:MM:SS…' (SQLAlchemy's SQLite format): cheaper than strftime
        return func.substr(moment, 1, 7).concat("-01")
    # back six days, then forward to the next Monday: the Monday on or before the date
    return func.date(moment, "-6 days", "weekday 1")


def _seconds(dialect: str, start: Any, end: Any) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    # julianday is a float of days: round away its sub-millisecond noise (165.00003 s)
    return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)


def _percentiles(
    dialect: str,
    value: ColumnElement[Any],
    source: Select[*tuple[Any, ...]],
    fractions: Sequence[float],
) -> Select[*tuple[Any, ...]]:
    """One row: count, then the continuous percentiles (linear interpolation, as
    PostgreSQL's percentile_cont) of `value` over the rows of `source`.

    PostgreSQL uses its ordered-set aggregate; SQLite numbers the rows with window
    functions and interpolates between the two rows around 1 + p·(n − 1), in SQL too.
    """
    if dialect == "postgresql":
        columns: list[ColumnElement[Any]] = [func.count(value)]
        columns += [func.percentile_cont(p).within_group(value) for p in fractions]
        return source.with_only_columns(*columns)
    # compute the value once per row, then rank it (julianday twice per row adds up)
    values = source.with_only_columns(value.label("x")).subquery("vals")
    ranked = (
        select(
            values.c.x,
            func.row_number().over(order_by=values.c.x).label("rn"),
            func.count().over().label("cnt"),
        )
        .where(values.c.x.is_not(None))
        .subquery("ranked")
    )
    columns = [func.coalesce(func.max(ranked.c.cnt), 0)]
    for p in fractions:
        position = 1 + p * (ranked.c.cnt - 1)
        low = cast(position, Integer)  # positions are ≥ 1: the cast floors
        frac = position - low
        columns.append(
            func.sum(
                case(
                    (ranked.c.rn == low, ranked.c.x * (1 - frac)),
                    (ranked.c.rn == low + 1, ranked.c.x * frac),
                    else_=0.0,
                )
            )
        )
    return select(*columns).select_from(ranked)


# --- scope and grouping ----------------------------------------------------------------


def _in_window(moment: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    conditions = []
    if start is not None:
        conditions.append(moment >= start)
    if end is not None:
        conditions.append(moment < end)
    return conditions


class _Sessions:
    """The sessions table joined with what the scope and keys need."""

    def __init__(
        self, dialect: str, scope: Scope, grouping: Grouping, *, contact: bool = False,
        role: bool = False,
    ) -> None:
        self.dialect = dialect
        self.scope = scope
        self.grouping = grouping
        self.s = _S.alias("s")
        self.c = _C.alias("c")
        self.role = inspect(Answer).local_table.alias("r")
        needs_contact = contact or scope.account is not None or any(
            k in ("role", "account", "segment") for k in grouping.keys
        )
        self.needs_role = (role or "role" in grouping.keys) and \
            grouping.role_question is not None
        source: FromClause = self.s
        if needs_contact:
            source = source.join(self.c, self.c.c.id == self.s.c.contact_id)
        if self.needs_role:
            source = source.outerjoin(
                self.role,
                and_(
                    self.role.c.session_id == self.s.c.id,
                    self.role.c.question_id == grouping.role_question,
                    self.role.c.skipped == false(),
                ),
            )
        self.source = source

    def join(self, other: FromClause, on: Any) -> FromClause:
        return self.source.join(other, on)

    def where(self, start: datetime | None = None, end: datetime | None = None,
              *, use_scope: bool = True) -> list[Any]:
        conditions: list[Any] = [self.s.c.flow_id == self.scope.flow_id]
        if use_scope:
            start, end = self.scope.start, self.scope.end
        conditions += _in_window(self.s.c.started_at, start, end)
        if self.scope.account is not None:
            conditions.append(self.c.c.company == self.scope.account)
        if self.scope.language is not None:
            conditions.append(self.s.c.language == self.scope.language)
        return conditions

    def key(self, name: Key) -> ColumnElement[Any]:
        none = literal(self.grouping.no_value)
        if name == "account":
            return func.coalesce(self.c.c.company, none)
        if name == "segment":
            return func.coalesce(self.c.c.segment, none)
        if name == "language":
            return self.s.c.language
        if name == "role":
            return func.coalesce(self.role_of(), none)
        context = _json_key(self.dialect, self.s.c.context, "touchpoint")
        flow_touchpoint = self.grouping.touchpoint or self.grouping.no_value
        return func.coalesce(context, literal(flow_touchpoint))

    def role_of(self) -> ColumnElement[Any]:
        """The respondent's role, NULL when unknown. Their own answer to the role question
        wins: it is what they said about themselves in this survey; the contact's stored
        role fills in when there is none (the rule of bot/followups/alerts.py)."""
        if self.needs_role:
            return func.coalesce(_choice(self.dialect, self.role.c.value), self.c.c.role)
        return self.c.c.role

    def keys(self) -> list[ColumnElement[Any]]:
        return [self.key(k).label(f"k{i}") for i, k in enumerate(self.grouping.keys)]


# --- queries ---------------------------------------------------------------------------


async def score_cells(
    db: Database,
    scope: Scope,
    grouping: Grouping,
    scores: ScoreIds,
    *,
    previous_start: datetime | None = None,
    period: str | None = None,
) -> list[ScoreCell]:
    """NPS/CSAT/CES counts per (window, keys, period), in one statement.

    With `previous_start`, sessions in [previous_start, scope.start) come back flagged
    `previous`, for the change; with `period`, cells are split by week or month, for the
    trend. A response is a session with at least one non-skipped scored answer (any
    answer when the flow has no NPS/CSAT/CES question).

    One row per session without a per-session GROUP BY: the answer table is joined once
    per scored question on its unique (session_id, question_id) key, so each session
    brings its NPS, CSAT and CES side by side and counting responses needs no
    COUNT(DISTINCT). On SQLite this took a third less time than a flat GROUP BY over the
    answers; on PostgreSQL about the same (bench/report_groupby.py).
    """
    dialect = _dialect(db)
    q = _Sessions(dialect, scope, grouping)
    source = q.source
    values: dict[str, ColumnElement[Any] | None] = {}
    present = []
    for name in ("nps", "csat", "ces"):
        question = getattr(scores, name)
        if question is None:
            values[name] = None
            continue
        a = inspect(Answer).local_table.alias(f"a_{name}")
        source = source.outerjoin(a, and_(a.c.session_id == q.s.c.id,
                                          a.c.question_id == question,
                                          a.c.skipped == false()))
        values[name] = _number(dialect, a.c.value)
        present.append(a.c.id.is_not(None))
    if present:
        answered: Any = or_(*present)
    else:  # no scored question: a response is a session with any answer
        any_answer = inspect(Answer).local_table.alias("a_any")
        answered = exists().where(any_answer.c.session_id == q.s.c.id,
                                  any_answer.c.skipped == false())

    start = previous_start if previous_start is not None else scope.start
    if previous_start is not None and scope.start is not None:
        previous: ColumnElement[Any] = case((q.s.c.started_at < scope.start, 1), else_=0)
    else:
        previous = literal(0)
    bucket = _bucket(dialect, q.s.c.started_at, period) if period else literal(None, String)

    def count(name: str, test: Callable[[ColumnElement[Any]], Any] | None = None
              ) -> ColumnElement[Any]:
        value = values[name]
        if value is None:
            return literal(0)
        if test is None:
            return func.count(value)
        return func.sum(case((test(value), 1), else_=0))

    ces = values["ces"]
    group = [previous.label("prev"), *q.keys(), bucket.label("bucket")]
    query = (
        select(
            *group,
            func.count(),
            count("nps", lambda v: v >= PROMOTER_MIN),
            count("nps", lambda v: and_(v >= PASSIVE_MIN, v < PROMOTER_MIN)),
            count("nps", lambda v: v < PASSIVE_MIN),
            count("csat"),
            count("csat", lambda v: v >= CSAT_SATISFIED_MIN),
            count("ces"),
            func.coalesce(func.sum(ces), 0.0) if ces is not None else literal(0.0),
            count("ces", lambda v: v <= CES_LOW_EFFORT_MAX),
        )
        .select_from(source)
        .where(*q.where(start, scope.end, use_scope=False), answered)
        .group_by(*[literal_column(g.name) for g in group])
    )
    n = len(grouping.keys)
    rows = await _all(db, query)
    cells = []
    for row in rows:
        numbers = row[n + 2:]
        cells.append(
            ScoreCell(
                previous=bool(row[0]),
                keys=tuple(str(k) for k in row[1:n + 1]),
                bucket=row[n + 1],
                responses=int(numbers[0]),
                promoters=int(numbers[1] or 0),
                passives=int(numbers[2] or 0),
                detractors=int(numbers[3] or 0),
                csat_n=int(numbers[4] or 0),
                csat_hits=int(numbers[5] or 0),
                ces_n=int(numbers[6] or 0),
                ces_sum=float(numbers[7] or 0.0),
                ces_low=int(numbers[8] or 0),
            )
        )
    return cells


@dataclass(frozen=True)
class SessionCell:
    status: str
    position: str | None
    answered: bool
    sessions: int


async def session_cells(db: Database, scope: Scope) -> list[SessionCell]:
    """Sessions per (status, position, has any answer): the funnel and the drop-off."""
    q = _Sessions(_dialect(db), scope, Grouping())
    a = inspect(Answer).local_table.alias("a")
    answered = exists().where(a.c.session_id == q.s.c.id, a.c.skipped == false())
    # Completed sessions need no probe (only unfinished ones can be partial); CASE
    # evaluates lazily, so the EXISTS runs for the few unfinished sessions only.
    flag = case((q.s.c.status == "completed", 1), (answered, 1), else_=0).label("answered")
    query = (
        select(q.s.c.status, q.s.c.position, flag, func.count())
        .select_from(q.source)
        .where(*q.where())
        .group_by(q.s.c.status, q.s.c.position, literal_column("answered"))
    )
    rows = await _all(db, query)
    return [SessionCell(r[0], r[1], bool(r[2]), int(r[3])) for r in rows]


async def completion_seconds(
    db: Database, scope: Scope, fractions: Sequence[float] = (0.5, 0.9)
) -> tuple[int, list[float | None]]:
    """(completed sessions, percentiles of their started → completed seconds)."""
    dialect = _dialect(db)
    q = _Sessions(dialect, scope, Grouping())
    seconds = _seconds(dialect, q.s.c.started_at, q.s.c.completed_at)
    source = select(q.s.c.id).select_from(q.source).where(
        *q.where(), q.s.c.status == "completed", q.s.c.completed_at.is_not(None)
    )
    return await _run_percentiles(db, dialect, seconds, source, fractions)


async def _run_percentiles(
    db: Database, dialect: str, value: ColumnElement[Any], source: Select[*tuple[Any, ...]],
    fractions: Sequence[float],
) -> tuple[int, list[float | None]]:
    row = await _one(db, _percentiles(dialect, value, source, fractions))
    count = int(row[0] or 0)
    values = [None if count == 0 or v is None else float(v) for v in row[1:]]
    return count, values


@dataclass(frozen=True)
class InvitationCounts:
    """People invited to the flow (each counted once, by their latest invitation in the
    window), and what came of it; docs/metrics.md defines each figure."""

    invited: int  # invited: not skipped, not cancelled before sending
    reached: int  # … whose invitation went out (the response rate's denominator)
    responded: int  # … of those, who completed the flow since (its numerator)
    completed_invited: int  # completed sessions (in the window) of people invited before


async def invitation_counts(db: Database, scope: Scope) -> InvitationCounts:
    """Invited people, reached people, those who completed since, dated by when their
    invitation was sent (made, while still scheduled); and the window's completed sessions
    that followed an invitation."""
    source, (j, _, latest), _ = _latest_invitations(scope)
    reached = _reached(j)
    completed = _since_invitation(scope, j.c.contact_id, j.c.created_at, completed=True)
    query = (
        select(func.count(), func.sum(case((reached, 1), else_=0)),
               func.sum(case((and_(reached, completed), 1), else_=0)))
        .select_from(source)
        .where(j.c.id.in_(latest))
    )
    q = _Sessions(_dialect(db), scope, Grouping())
    i = _I.alias("ii")
    invited_before = exists().where(i.c.contact_id == q.s.c.contact_id,
                                    i.c.flow_id == scope.flow_id, _invited(i),
                                    i.c.created_at <= q.s.c.started_at)
    sessions = select(func.count()).select_from(q.source).where(
        *q.where(), q.s.c.status == "completed", invited_before)
    row = await _one(db, query)
    after = await _one(db, sessions)
    return InvitationCounts(int(row[0] or 0), int(row[1] or 0), int(row[2] or 0),
                            int(after[0] or 0))


@dataclass(frozen=True)
class ValueCount:
    question_id: str
    value: str  # JSON scalar as text ('9', 'buyer', 'true'); '' for a multi answer's total
    count: int


def _scalar_text(value: Any) -> str:
    """A decoded JSON scalar as ValueCount text: 9 and 9.0 → '9', True → 'true'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


async def value_counts(
    db: Database, scope: Scope, questions: Sequence[str], multi: Sequence[str] = ()
) -> list[ValueCount]:
    """Answers per (question, value) for scalar questions; for `multi` questions the
    number of answers (value '') and the count of each pick.

    One GROUP BY over the stored JSON itself, which needs no JSON function per answer (a
    third faster on SQLite than extracting text first). Only the distinct group keys are
    decoded here: a multi question's keys are its distinct pick combinations (at most a
    few dozen), each adding its count to every option it holds. Two keys may name one
    value (9 and 9.0): their counts are added.
    """
    if not questions and not multi:
        return []
    q = _Sessions(_dialect(db), scope, Grouping())
    a = inspect(Answer).local_table.alias("a")
    on = and_(a.c.session_id == q.s.c.id, a.c.skipped == false())
    query = (
        select(a.c.question_id, a.c.value, func.count())
        .select_from(q.join(a, on))
        .where(*q.where(), a.c.question_id.in_([*questions, *multi]))
        .group_by(a.c.question_id, a.c.value)
    )
    counts: dict[tuple[str, str], int] = {}

    def add(question: str, value: str, n: int) -> None:
        counts[(question, value)] = counts.get((question, value), 0) + n

    for question, value, n in await _all(db, query):
        if question in multi:
            add(question, "", int(n))
            for pick in value if isinstance(value, list) else []:
                add(question, str(pick), int(n))
        else:
            add(question, _scalar_text(value), int(n))
    return [ValueCount(question, value, n) for (question, value), n in counts.items()]


@dataclass(frozen=True)
class CaseCounts:
    cases: int
    open_cases: int
    resolved: int
    median_hours: float | None
    p90_hours: float | None


async def case_counts(db: Database, scope: Scope) -> CaseCounts:
    """Detractor cases opened in the window, and hours from opening to resolution."""
    dialect = _dialect(db)
    k, c = _CASE.alias("k"), _C.alias("c")
    source: FromClause = k
    conditions = [k.c.flow_id == scope.flow_id, *_in_window(k.c.opened_at, scope.start,
                                                             scope.end)]
    if scope.account is not None:
        source = k.join(c, c.c.id == k.c.contact_id)
        conditions.append(c.c.company == scope.account)
    counts = select(
        func.count(),
        func.sum(case((k.c.resolved_at.is_(None), 1), else_=0)),
    ).select_from(source).where(*conditions)
    hours = _seconds(dialect, k.c.opened_at, k.c.resolved_at) / 3600.0
    resolved = select(k.c.id).select_from(source).where(*conditions,
                                                        k.c.resolved_at.is_not(None))
    row = await _one(db, counts)
    n, (median, p90) = await _run_percentiles(db, dialect, hours, resolved, (0.5, 0.9))
    return CaseCounts(int(row[0] or 0), int(row[1] or 0), n, median, p90)


@dataclass(frozen=True)
class PromiseCounts:
    promises: int
    due: int
    kept_on_time: int
    overdue: int
    open: int


_DAY = 86400.0


def _with_account(act: Any) -> tuple[FromClause, ColumnElement[Any]]:
    """Actions joined to their case's contact, and the account an action belongs to: the
    one staff named on it, else its case's contact's."""
    k, c = _CASE.alias("ka"), _C.alias("ca")
    source = act.outerjoin(k, k.c.id == act.c.case_id).outerjoin(c, c.c.id == k.c.contact_id)
    return source, func.coalesce(act.c.account, c.c.company)


async def promise_counts(db: Database, scope: Scope, now: datetime) -> PromiseCounts:
    """Actions with a promised date in the window: due, kept on time, overdue, open.

    A promised date is a calendar day (storage/actions.py): kept on time when done before
    that day ended (UTC), due once it has ended or the action is done, overdue when it has
    ended without the action being done."""
    dialect = _dialect(db)
    act = _ACT.alias("act")
    promised, done = act.c.promised_at, act.c.done_at
    ended = promised <= now - timedelta(days=1)  # the promised day is over
    conditions = [act.c.flow_id == scope.flow_id, promised.is_not(None),
                  *_in_window(promised, scope.start, scope.end)]
    source, account = _with_account(act)
    if scope.account is not None:
        conditions.append(account == scope.account)
    query = select(
        func.count(),
        func.sum(case((or_(ended, done.is_not(None)), 1), else_=0)),
        func.sum(case((and_(done.is_not(None), _seconds(dialect, promised, done) < _DAY), 1),
                      else_=0)),
        func.sum(case((and_(done.is_(None), ended), 1), else_=0)),
        func.sum(case((done.is_(None), 1), else_=0)),
    ).select_from(source).where(*conditions)
    row = await _one(db, query)
    return PromiseCounts(*(int(v or 0) for v in row))


# --- the B2B account view -----------------------------------------------------------------


def _since_invitation(scope: Scope, contact_id: Any, since: Any, *,
                      completed: bool = False) -> Any:
    """The contact answered at least one question of the flow (or, with `completed`,
    finished it) in a session started at or after `since` (their invitation) and inside
    the window."""
    s2, a2 = _S.alias("s2"), inspect(Answer).local_table.alias("a2")
    conditions = [s2.c.contact_id == contact_id, s2.c.flow_id == scope.flow_id,
                  s2.c.started_at >= since, *_in_window(s2.c.started_at, None, scope.end)]
    if completed:
        return exists().where(*conditions, s2.c.status == "completed")
    return exists().where(*conditions, a2.c.session_id == s2.c.id, a2.c.skipped == false())


def _latest_invitations(scope: Scope) -> tuple[Any, Any, Any]:
    """(invitation j, contact d, answered) for each contact's latest invitation in the
    window (`_invited`: a scheduled one too, as `sada contacts silent` counts it);
    `answered`: they answered since it was made.

    One invitation per contact keeps the EXISTS probe to one per person (10,000, not
    150,000, in the bench) and says what the account view asks: did they answer the
    last time we asked?"""
    i, c = _I.alias("i"), _C.alias("c")
    sent = func.coalesce(i.c.sent_at, i.c.created_at)
    conditions = [i.c.flow_id == scope.flow_id, _invited(i),
                  *_in_window(sent, scope.start, scope.end)]
    source: FromClause = i
    if scope.account is not None:
        source = i.join(c, c.c.id == i.c.contact_id)
        conditions.append(c.c.company == scope.account)
    latest = select(func.max(i.c.id)).select_from(source).where(*conditions).group_by(
        i.c.contact_id)
    j, d = _I.alias("j"), _C.alias("d")
    answered = _since_invitation(scope, j.c.contact_id, j.c.created_at)
    return j.join(d, d.c.id == j.c.contact_id), (j, d, latest), answered


@dataclass(frozen=True)
class RoleInvitations:
    account: str
    role: str
    invited: int  # contacts invited (their latest invitation; scheduled ones too)
    responded: int  # … of whom answered since
    not_sent: int = 0  # … whose invitation has not gone out yet


async def role_invitations(db: Database, scope: Scope, no_value: str = "(none)"
                           ) -> list[RoleInvitations]:
    """Per account and stakeholder role (contact.role, the only role known for people who
    never answered): contacts invited and contacts who answered."""
    source, (j, d, latest), answered = _latest_invitations(scope)
    account = func.coalesce(d.c.company, literal(no_value)).label("acct")
    role = func.coalesce(d.c.role, literal(no_value)).label("role")
    query = (
        select(account, role, func.count(), func.sum(case((answered, 1), else_=0)),
               func.sum(case((_reached(j), 0), else_=1)))
        .select_from(source)
        .where(j.c.id.in_(latest))
        .group_by(literal_column("acct"), literal_column("role"))
    )
    rows = await _all(db, query)
    return [RoleInvitations(str(r[0]), str(r[1]), int(r[2]), int(r[3] or 0), int(r[4] or 0))
            for r in rows]


@dataclass(frozen=True)
class SilentRow:
    contact_id: int
    name: str | None
    role: str | None
    account: str | None
    invited_at: datetime | None
    reminders: int
    status: str


async def silent_contacts(db: Database, scope: Scope) -> list[SilentRow]:
    """Named people whose latest invitation in the window invited them (sent or still
    scheduled) and who have not answered since: a listing of people, with that
    invitation's date, reminders and status."""
    source, (j, d, latest), answered = _latest_invitations(scope)
    query = (
        select(d.c.id, func.coalesce(d.c.name, d.c.first_name, d.c.external_id,
                             literal("#") + cast(d.c.id, String)), d.c.role,
               d.c.company, func.coalesce(j.c.sent_at, j.c.created_at), j.c.reminders_sent,
               # delivered, not yet noticed by the planner: "sent", as `contacts silent` says
               case((and_(j.c.status == "scheduled", _reached(j)), literal("sent")),
                    else_=j.c.status))
        .select_from(source)
        .where(j.c.id.in_(latest), ~answered)
        .order_by(d.c.company, d.c.role, d.c.id)
    )
    rows = await _all(db, query)
    return [SilentRow(int(r[0]), r[1], r[2], r[3], r[4], int(r[5] or 0), str(r[6]))
            for r in rows]


async def open_cases_by_account(db: Database, scope: Scope, no_value: str = "(none)"
                                ) -> dict[str, int]:
    """Cases of the flow still open now (whenever opened), per account."""
    k, c = _CASE.alias("k"), _C.alias("c")
    account = func.coalesce(c.c.company, literal(no_value)).label("acct")
    conditions = [k.c.flow_id == scope.flow_id, k.c.resolved_at.is_(None)]
    if scope.account is not None:
        conditions.append(c.c.company == scope.account)
    query = (
        select(account, func.count())
        .select_from(k.join(c, c.c.id == k.c.contact_id))
        .where(*conditions)
        .group_by(literal_column("acct"))
    )
    return {str(r[0]): int(r[1]) for r in await _all(db, query)}


@dataclass(frozen=True)
class OpenPromises:
    open: int
    overdue: int
    next_due: datetime | None


async def open_promises_by_account(db: Database, scope: Scope, now: datetime,
                                   no_value: str = "(none)") -> dict[str, OpenPromises]:
    """Promised actions of the flow not done yet (whenever promised), per account: how
    many, how many overdue (their day has ended), and the earliest promised day."""
    act = _ACT.alias("act")
    source, owner = _with_account(act)
    account = func.coalesce(owner, literal(no_value)).label("acct")
    conditions = [act.c.flow_id == scope.flow_id, act.c.promised_at.is_not(None),
                  act.c.done_at.is_(None)]
    if scope.account is not None:
        conditions.append(owner == scope.account)
    ended = act.c.promised_at <= now - timedelta(days=1)
    query = (
        select(account, func.count(), func.sum(case((ended, 1), else_=0)),
               func.min(act.c.promised_at))
        .select_from(source)
        .where(*conditions)
        .group_by(literal_column("acct"))
    )
    rows = await _all(db, query)
    return {str(r[0]): OpenPromises(int(r[1]), int(r[2] or 0), r[3]) for r in rows}


# --- free-text answers ------------------------------------------------------------------------


@dataclass(frozen=True)
class TextAnswer:
    session_id: int
    contact_id: int
    who: str  # name, first name or the channel id
    account: str | None
    role: str | None  # the role they answered in that session, else contact.role
    language: str
    answered_at: datetime
    text: str
    key: str | None  # the `--by` group
    nps: int | None  # the same session's NPS and CSAT answers
    csat: int | None


async def text_answers(
    db: Database, scope: Scope, question: str, grouping: Grouping, scores: ScoreIds,
    *, limit: int | None = None,
) -> list[TextAnswer]:
    """The (non-skipped) answers to one question, newest first (grouped by key first),
    with who gave them and the session's NPS/CSAT: a listing, not an aggregate."""
    dialect = _dialect(db)
    keys = grouping.keys
    q = _Sessions(dialect, scope, grouping, contact=True, role=True)
    a = inspect(Answer).local_table.alias("a")
    source = q.join(a, and_(a.c.session_id == q.s.c.id, a.c.question_id == question,
                            a.c.skipped == false()))
    columns: list[Any] = [
        q.s.c.id, q.s.c.contact_id,
        func.coalesce(q.c.c.name, q.c.c.first_name, q.c.c.external_id,
                      literal("#") + cast(q.c.c.id, String)),
        q.c.c.company, q.role_of(), q.s.c.language, a.c.answered_at, _text(dialect, a.c.value),
        q.key(keys[0]) if keys else literal(None, String),
    ]
    for score_id in (scores.nps, scores.csat):
        if score_id is None:
            columns.append(literal(None, Float))
            continue
        other = inspect(Answer).local_table.alias(f"x_{score_id}")
        source = source.outerjoin(other, and_(other.c.session_id == q.s.c.id,
                                              other.c.question_id == score_id,
                                              other.c.skipped == false()))
        columns.append(_number(dialect, other.c.value))
    order = [columns[8], a.c.answered_at.desc(), a.c.id.desc()] if keys else [
        a.c.answered_at.desc(), a.c.id.desc()]
    query = select(*columns).select_from(source).where(*q.where()).order_by(*order)
    if limit is not None:
        query = query.limit(limit)
    rows = await _all(db, query)
    return [
        TextAnswer(int(r[0]), int(r[1]), str(r[2]), r[3], r[4], str(r[5]), r[6], str(r[7]),
                   None if r[8] is None else str(r[8]),
                   None if r[9] is None else round(r[9]),
                   None if r[10] is None else round(r[10]))
        for r in rows
    ]
