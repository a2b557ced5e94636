"""CX metrics as typed results: what every report view (terminal, csv, json, html, charts,
Telegram) is built from. The definitions live here and in docs/metrics.md.

- NPS: promoters answer 9–10, passives 7–8, detractors 0–6 on the 0–10 question;
  NPS = % promoters − % detractors, −100 … 100.
- CSAT: the share (%) of answers 4–5 on the 1–5 question.
- CES: the mean on 1–7, and the share (%) of low-effort answers 1–3. Sada flows ask CES
  as 1 = very easy … 7 = very difficult (flows/*.yaml), so lower is better.
- Which question: the flow's first question of type nps (csat, ces); skipped answers
  are not answers.
- A response is dated by when its session started; `since`/`until` are whole UTC days,
  both included.
- Groups (`by`) with fewer than SMALL_GROUP responses are marked too small to trust, and
  each result says so for its own count too.
- The change is this window's figure minus the figure for the window of the same length
  just before it (NPS and CSAT in points, CES in scale points); it needs `since`.

Every number is counted by the database (storage/reports.py): this module only folds the
grouped counts into results. `build_report` and `build_accounts` are the entry points.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from bot.flow.model import OPTION_TYPES, SCORED_TYPES, Flow
from bot.reports.periods import (
    PERIODS,
    Period,
    check_order,
    day_start,
    periods_between,
    previous_window,
    window,
)
from storage.db import Database
from storage.reports import (
    CES_LOW_EFFORT_MAX,
    CSAT_SATISFIED_MIN,
    PASSIVE_MIN,
    PROMOTER_MIN,
    Grouping,
    InvitationCounts,
    Key,
    Scope,
    ScoreCell,
    ScoreIds,
    SessionCell,
    SilentRow,
    ValueCount,
    case_counts,
    completion_seconds,
    invitation_counts,
    open_cases_by_account,
    open_promises_by_account,
    promise_counts,
    role_invitations,
    score_cells,
    session_cells,
    silent_contacts,
    value_counts,
)

# --by: role, account, segment, language or touchpoint (docs/metrics.md says which value)
Dimension = Key
DIMENSIONS: tuple[Dimension, ...] = ("role", "account", "segment", "language", "touchpoint")
# PROMOTER_MIN (9), PASSIVE_MIN (7), CSAT_SATISFIED_MIN (4) and CES_LOW_EFFORT_MAX (3) come
# from storage/reports.py, whose SQL counts with them.
SMALL_GROUP = 5  # fewer responses than this: too small to trust
# A median completion under this is not people reading and answering (test runs, previews,
# a scripted `sada preview`): never shown as the flow keeping its time promise.
TOO_FAST_SECONDS = 10.0
# Choice questions whose answer names the respondent's stakeholder role (B2B flows); for
# `--by role` the answer wins over contact.role, which fills in when it is missing.
ROLE_QUESTIONS: tuple[str, ...] = ("stakeholder", "role")
NO_VALUE = "(none)"  # group key of sessions without a value for the dimension
START = "(start)"  # drop-off before the first question: the intro or the consent
# Distributions are reported for these question types (nps/csat/ces give the score charts).
DISTRIBUTION_TYPES: tuple[str, ...] = ("nps", "csat", "ces", "scale", "choice", "multi", "yesno")


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


@dataclass(frozen=True)
class NpsResult:
    """NPS with the counts behind it; `score` is None when nobody answered."""

    n: int
    promoters: int
    passives: int
    detractors: int
    score: float | None

    @classmethod
    def of(cls, promoters: int, passives: int, detractors: int) -> NpsResult:
        n = promoters + passives + detractors
        score = None if n == 0 else 100.0 * (promoters - detractors) / n
        return cls(n, promoters, passives, detractors, score)

    @property
    def too_small(self) -> bool:
        return self.n < SMALL_GROUP

    @property
    def promoter_share(self) -> float | None:
        return _pct(self.promoters, self.n)

    @property
    def passive_share(self) -> float | None:
        return _pct(self.passives, self.n)

    @property
    def detractor_share(self) -> float | None:
        return _pct(self.detractors, self.n)


@dataclass(frozen=True)
class ShareResult:
    """CSAT: `hits` answers of `n` were 4–5; `share` in % (None when n == 0)."""

    n: int
    hits: int
    share: float | None

    @classmethod
    def of(cls, n: int, hits: int) -> ShareResult:
        return cls(n, hits, _pct(hits, n))

    @property
    def too_small(self) -> bool:
        return self.n < SMALL_GROUP


@dataclass(frozen=True)
class MeanResult:
    """CES: mean on 1–7 and % of low-effort answers (1–3); None when n == 0."""

    n: int
    mean: float | None
    share_low_effort: float | None
    low_effort: int = 0

    @classmethod
    def of(cls, n: int, total: float, low: int) -> MeanResult:
        return cls(n, None if n == 0 else total / n, _pct(low, n), low)

    @property
    def too_small(self) -> bool:
        return self.n < SMALL_GROUP


@dataclass(frozen=True)
class GroupRow:
    """One line of a report: the scores of one group (or of everyone, for `overall`).

    `responses`: sessions in the group with at least one NPS/CSAT/CES answer (any answer
    when the flow has none of those). `change` maps "nps", "csat", "ces" and "responses" to
    this window minus the previous one; empty without `since`, None where either is missing.
    """

    key: str
    nps: NpsResult | None  # None when the flow has no such question
    csat: ShareResult | None
    ces: MeanResult | None
    responses: int
    too_small: bool
    change: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Funnel:
    """Invitations to completions, and where people stop.

    People, each counted once by their latest invitation in the window: invited: those
    whose invitation reached them (sent); responded: of them, those who completed the
    flow since; response_rate = responded / invited (None when nobody was reached);
    not_sent: invited, the invitation still scheduled (in no rate until it goes out).
    Sessions: started: begun; completed: finished, of which completed_invited followed
    an invitation (the rest came without one: public links, /start, preview);
    partial: unfinished with answers; partial_rate = partial / (partial + completed).
    median_seconds / p90_seconds: started_at → completed_at of completed sessions.
    dropoff: (question id, unfinished sessions waiting at it) in flow order; "(start)" for
    sessions that stopped before the first question (intro or consent).
    """

    invited: int
    responded: int
    started: int
    completed: int
    partial: int
    response_rate: float | None
    partial_rate: float | None
    median_seconds: float | None
    p90_seconds: float | None
    dropoff: list[tuple[str, int]]
    not_sent: int = 0
    completed_invited: int = 0

    @property
    def completed_uninvited(self) -> int:
        return self.completed - self.completed_invited

    @property
    def time_trusted(self) -> bool:
        """The completion time says something: enough completed sessions (SMALL_GROUP),
        and not so fast that nobody can have read the questions (TOO_FAST_SECONDS)."""
        return (self.completed >= SMALL_GROUP and self.median_seconds is not None
                and self.median_seconds >= TOO_FAST_SECONDS)


@dataclass(frozen=True)
class Resolution:
    """Closing the loop: detractor cases and promised actions.

    cases opened in the window; median/p90 hours from opening (the detractor alert) to
    resolution, over resolved cases. promises: actions with a promised date; due: those
    whose date has passed or that are done; kept_on_time: done on or before the date;
    kept_share = kept_on_time / due (%); overdue: due and not done.
    """

    cases: int
    open_cases: int
    resolved: int
    median_hours: float | None
    p90_hours: float | None
    promises: int
    due: int
    kept_on_time: int
    overdue: int

    @property
    def kept_share(self) -> float | None:
        return _pct(self.kept_on_time, self.due)


@dataclass(frozen=True)
class Distribution:
    """How answers to one question spread: (value, count) for every possible value in the
    flow's order (scale points low → high, option ids, "yes"/"no"), zeros included.
    n: sessions that answered; for `multi` the counts add up to more than n."""

    question_id: str
    type: str
    n: int
    counts: list[tuple[str, int]]


@dataclass(frozen=True)
class PeriodPoint:
    """One week (starting Monday) or month of the trend."""

    start: date
    nps: NpsResult | None
    csat: ShareResult | None
    ces: MeanResult | None
    responses: int


@dataclass(frozen=True)
class SilentContact:
    """Someone invited (the invitation reached them) who never answered in the window."""

    contact_id: int
    name: str | None
    role: str | None
    account: str | None
    invited_at: datetime | None
    reminders: int
    status: str  # the invitation's status: sent, expired, cancelled …


@dataclass(frozen=True)
class Report:
    """Everything one `sada report FLOW` shows."""

    flow_id: str
    title: str
    since: date | None
    until: date | None
    by: Dimension | None
    period: Period
    account: str | None
    overall: GroupRow
    groups: list[GroupRow]  # by `by`, largest first; empty without `by`
    funnel: Funnel
    resolution: Resolution
    distributions: list[Distribution]
    trend: list[PeriodPoint]
    previous: tuple[date, date] | None  # the window the change compares with
    generated_at: datetime
    silent: list[SilentContact] = field(default_factory=list)  # only with `account`


@dataclass(frozen=True)
class AccountSummary:
    """The B2B view of one account: NPS per stakeholder role, who stayed silent, open
    cases and promises still due. `roles` rows are keyed like `--by role`."""

    account: str
    overall: GroupRow
    roles: list[GroupRow]
    invited: int  # people invited (latest invitation: sent or still scheduled)
    responded: int  # … who answered since
    silent_roles: list[str]  # invited roles (contact.role) of which nobody answered
    silent: list[SilentContact]
    open_cases: int
    promises_due: int  # promised, not done (overdue ones included)
    promises_overdue: int
    next_promise: datetime | None  # earliest promised date still open
    not_sent: int = 0  # invited, the invitation not sent yet


# --- building reports from the grouped counts --------------------------------------------
#
# The database counts per (window, group, period); what happens below is only folding those
# few hundred cells: sums of disjoint counts are exact, and each session is in one cell.


@dataclass
class _Counts:
    responses: int = 0
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    csat_n: int = 0
    csat_hits: int = 0
    ces_n: int = 0
    ces_sum: float = 0.0
    ces_low: int = 0

    def add(self, cell: ScoreCell) -> None:
        self.responses += cell.responses
        self.promoters += cell.promoters
        self.passives += cell.passives
        self.detractors += cell.detractors
        self.csat_n += cell.csat_n
        self.csat_hits += cell.csat_hits
        self.ces_n += cell.ces_n
        self.ces_sum += cell.ces_sum
        self.ces_low += cell.ces_low


@dataclass(frozen=True)
class FlowFacts:
    """What the report needs to know about a flow's questions."""

    scores: ScoreIds
    role_question: str | None
    touchpoint: str | None
    # (question id, type, every possible value in order) for the distributions
    distributions: list[tuple[str, str, list[str]]]

    @classmethod
    def of(cls, flow: Flow) -> FlowFacts:
        first: dict[str, str] = {}
        role_question = None
        distributions: list[tuple[str, str, list[str]]] = []
        for q in flow.questions:
            first.setdefault(q.type, q.id)
            if role_question is None and q.type == "choice" and q.id in ROLE_QUESTIONS:
                role_question = q.id
            if q.type not in DISTRIBUTION_TYPES:
                continue
            if isinstance(q, SCORED_TYPES):
                low, high = q.bounds
                values = [str(v) for v in range(low, high + 1)]
            elif isinstance(q, OPTION_TYPES):
                values = [o.id for o in q.options]
            else:
                values = ["yes", "no"]
            distributions.append((q.id, q.type, values))
        scores = ScoreIds(first.get("nps"), first.get("csat"), first.get("ces"))
        return cls(scores, role_question, flow.touchpoint, distributions)

    def grouping(self, keys: tuple[Dimension, ...]) -> Grouping:
        return Grouping(keys, self.role_question, self.touchpoint, NO_VALUE)


def _row(key: str, facts: FlowFacts, now: _Counts, before: _Counts | None) -> GroupRow:
    scores = facts.scores
    nps = NpsResult.of(now.promoters, now.passives, now.detractors) if scores.nps else None
    csat = ShareResult.of(now.csat_n, now.csat_hits) if scores.csat else None
    ces = MeanResult.of(now.ces_n, now.ces_sum, now.ces_low) if scores.ces else None
    change: dict[str, float | None] = {}
    if before is not None:
        was = _row(key, facts, before, None)
        change = {
            "nps": _minus(nps.score if nps else None, was.nps.score if was.nps else None),
            "csat": _minus(csat.share if csat else None, was.csat.share if was.csat else None),
            "ces": _minus(ces.mean if ces else None, was.ces.mean if was.ces else None),
            "responses": float(now.responses - before.responses),
        }
    return GroupRow(key, nps, csat, ces, now.responses, now.responses < SMALL_GROUP, change)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _fold(cells: list[ScoreCell], depth: int) -> tuple[dict[tuple[str, ...], _Counts],
                                                       dict[tuple[str, ...], _Counts]]:
    """(current, previous) counts per key prefix of `depth` dimensions."""
    current: dict[tuple[str, ...], _Counts] = {}
    previous: dict[tuple[str, ...], _Counts] = {}
    for cell in cells:
        target = previous if cell.previous else current
        target.setdefault(cell.keys[:depth], _Counts()).add(cell)
    return current, previous


def _rows(facts: FlowFacts, cells: list[ScoreCell], depth: int, compare: bool
          ) -> list[tuple[tuple[str, ...], GroupRow]]:
    current, previous = _fold(cells, depth)
    keys = set(current) | (set(previous) if compare else set())
    rows = [
        (k, _row(k[-1] if k else "all", facts, current.get(k, _Counts()),
                 previous.get(k, _Counts()) if compare else None))
        for k in keys
    ]
    # Largest groups first; "(none)" after the named ones of its size.
    rows.sort(key=lambda kr: (-kr[1].responses, kr[0][-1:] == (NO_VALUE,), kr[0]))
    return rows


def _trend(facts: FlowFacts, cells: list[ScoreCell], period: Period, since: date | None,
           until: date | None, today: date) -> list[PeriodPoint]:
    counts: dict[date, _Counts] = {}
    for cell in cells:
        if not cell.previous and cell.bucket is not None:
            counts.setdefault(date.fromisoformat(cell.bucket), _Counts()).add(cell)
    if not counts and since is None:
        return []
    first = since if since is not None else min(counts)
    last = until if until is not None else max([today, *counts])
    points = []
    for start in periods_between(first, last, period):
        row = _row(start.isoformat(), facts, counts.get(start, _Counts()), None)
        points.append(PeriodPoint(start, row.nps, row.csat, row.ces, row.responses))
    return points


def _funnel(facts: FlowFacts, flow: Flow, cells: list[SessionCell], invited: InvitationCounts,
            seconds: list[float | None]) -> Funnel:
    started = sum(c.sessions for c in cells)
    completed = sum(c.sessions for c in cells if c.status == "completed")
    partial = sum(c.sessions for c in cells if c.status != "completed" and c.answered)
    waiting: dict[str, int] = {}
    for c in cells:
        if c.status != "completed":
            where = c.position or START
            waiting[where] = waiting.get(where, 0) + c.sessions
    order = [START, *(q.id for q in flow.questions)]
    dropoff = [(q, waiting.pop(q, 0)) for q in order]
    dropoff += sorted(waiting.items())  # questions of older versions of the flow
    return Funnel(
        invited=invited.reached,
        responded=invited.responded,
        started=started,
        completed=completed,
        partial=partial,
        response_rate=_pct(invited.responded, invited.reached),
        partial_rate=_pct(partial, partial + completed),
        median_seconds=seconds[0],
        p90_seconds=seconds[1],
        dropoff=dropoff,
        not_sent=invited.invited - invited.reached,
        completed_invited=min(invited.completed_invited, completed),
    )


def _distributions(facts: FlowFacts, counts: list[ValueCount]) -> list[Distribution]:
    found: dict[str, dict[str, int]] = {}
    for vc in counts:
        value = {"true": "yes", "false": "no"}.get(vc.value, vc.value)
        found.setdefault(vc.question_id, {})[value] = vc.count
    result = []
    for qid, qtype, values in facts.distributions:
        got = dict(found.get(qid, {}))
        n = got.pop("", 0) if qtype == "multi" else sum(got.values())
        ordered = [(v, got.pop(v, 0)) for v in values]
        ordered += sorted(got.items())  # values the flow no longer offers
        result.append(Distribution(qid, qtype, n, ordered))
    return result


async def _nothing() -> list[SilentRow]:
    return []


async def _gather(db: Database, *queries: Awaitable[Any]) -> list[Any]:
    """Run the report's independent queries: at once on PostgreSQL (each on its own pooled
    connection, so the server overlaps them), one after the other on SQLite, where every
    transaction takes the database's single write lock (storage/db.py) and they would
    only queue."""
    if db.engine.dialect.name == "postgresql":
        # a TaskGroup cancels the other queries when one fails
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_awaited(query)) for query in queries]
        return [task.result() for task in tasks]
    results: list[Any] = []
    try:
        for query in queries:
            results.append(await query)
    finally:
        for query in queries[len(results) + 1:]:
            if inspect.iscoroutine(query):
                query.close()  # not run after a failure: close it quietly
    return results


async def _awaited(query: Awaitable[Any]) -> Any:
    return await query


def _check(by: str | None, period: str) -> None:
    if by is not None and by not in DIMENSIONS:
        raise ValueError(f"unknown --by {by!r}: use one of {', '.join(DIMENSIONS)}")
    if period not in PERIODS:
        raise ValueError(f"unknown --period {period!r}: use week or month")


async def build_report(
    db: Database,
    flow: Flow,
    *,
    by: Dimension | None = None,
    since: date | None = None,
    until: date | None = None,
    period: Period = "month",
    account: str | None = None,
    now: datetime | None = None,
) -> Report:
    """Every metric of one flow in the window, overall and per `by` group.

    Raises ValueError (one line, for people) on an unknown `by` or `period`, or when
    `since` is after `until`.
    """
    _check(by, period)
    check_order(since, until)
    now = now if now is not None else datetime.now(UTC)
    facts = FlowFacts.of(flow)
    start, end = window(since, until)
    scope = Scope(flow.id, start, end, account)
    previous = previous_window(since, until, now.date())
    scalar = [q for q, t, _ in facts.distributions if t != "multi"]
    multi = [q for q, t, _ in facts.distributions if t == "multi"]
    cells, sessions, invited, (_, seconds), cases, promises, values, silent = await _gather(
        db,
        score_cells(db, scope, facts.grouping((by,) if by else ()), facts.scores,
                    previous_start=day_start(previous[0]) if previous else None,
                    period=period),
        session_cells(db, scope),
        invitation_counts(db, scope),
        completion_seconds(db, scope),
        case_counts(db, scope),
        promise_counts(db, scope, now),
        value_counts(db, scope, scalar, multi),
        silent_contacts(db, scope) if account is not None else _nothing(),
    )
    compare = previous is not None
    overall = _rows(facts, cells, 0, compare)
    groups = [row for _, row in _rows(facts, cells, 1, compare)] if by else []
    return Report(
        flow_id=flow.id,
        title=flow.title.get("en") or next(iter(flow.title.values())),
        since=since,
        until=until,
        by=by,
        period=period,
        account=account,
        overall=overall[0][1] if overall else _row("all", facts, _Counts(),
                                                    _Counts() if compare else None),
        groups=groups,
        funnel=_funnel(facts, flow, sessions, invited, seconds),
        resolution=Resolution(
            cases=cases.cases, open_cases=cases.open_cases, resolved=cases.resolved,
            median_hours=cases.median_hours, p90_hours=cases.p90_hours,
            promises=promises.promises, due=promises.due,
            kept_on_time=promises.kept_on_time, overdue=promises.overdue,
        ),
        distributions=_distributions(facts, values),
        trend=_trend(facts, cells, period, since, until, now.date()),
        previous=previous,
        generated_at=now,
        silent=[_silent(r) for r in silent],
    )


def _silent(r: SilentRow) -> SilentContact:
    return SilentContact(r.contact_id, r.name, r.role, r.account, r.invited_at, r.reminders,
                         r.status)


async def build_accounts(
    db: Database,
    flow: Flow,
    *,
    since: date | None = None,
    until: date | None = None,
    account: str | None = None,
    now: datetime | None = None,
) -> list[AccountSummary]:
    """The B2B overview: per account (or just `account`), NPS/CSAT/CES per stakeholder role
    (keyed as `--by role`), who was invited and stayed silent, open cases and open
    promises. Accounts are sorted by name, contacts without one last."""
    check_order(since, until)
    now = now if now is not None else datetime.now(UTC)
    facts = FlowFacts.of(flow)
    start, end = window(since, until)
    scope = Scope(flow.id, start, end, account)
    previous = previous_window(since, until, now.date())
    cells, invitations, silent, cases, promises = await _gather(
        db,
        score_cells(db, scope, facts.grouping(("account", "role")), facts.scores,
                    previous_start=day_start(previous[0]) if previous else None),
        role_invitations(db, scope, NO_VALUE),
        silent_contacts(db, scope),
        open_cases_by_account(db, scope, NO_VALUE),
        open_promises_by_account(db, scope, now, NO_VALUE),
    )
    compare = previous is not None
    per_account = dict(_rows(facts, cells, 1, compare))
    per_role = _rows(facts, cells, 2, compare)
    names = {k[0] for k in per_account} | {r.account for r in invitations} | set(cases)
    names |= set(promises)
    names |= {s.account or NO_VALUE for s in silent}
    summaries = []
    for name in sorted(names, key=lambda n: (n == NO_VALUE, n.casefold())):
        invited = [r for r in invitations if r.account == name]
        promised = promises.get(name)
        summaries.append(AccountSummary(
            account=name,
            overall=per_account.get((name,)) or _row(name, facts, _Counts(),
                                                      _Counts() if compare else None),
            roles=[row for k, row in per_role if k[0] == name],
            invited=sum(r.invited for r in invited),
            responded=sum(r.responded for r in invited),
            silent_roles=sorted(r.role for r in invited if r.responded == 0),
            not_sent=sum(r.not_sent for r in invited),
            silent=[_silent(s) for s in silent if (s.account or NO_VALUE) == name],
            open_cases=cases.get(name, 0),
            promises_due=promised.open if promised else 0,
            promises_overdue=promised.overdue if promised else 0,
            next_promise=promised.next_due if promised else None,
        ))
    return summaries


__all__ = [
    "CES_LOW_EFFORT_MAX",
    "CSAT_SATISFIED_MIN",
    "DIMENSIONS",
    "DISTRIBUTION_TYPES",
    "NO_VALUE",
    "PASSIVE_MIN",
    "PERIODS",
    "PROMOTER_MIN",
    "ROLE_QUESTIONS",
    "SMALL_GROUP",
    "START",
    "TOO_FAST_SECONDS",
    "AccountSummary",
    "Dimension",
    "Distribution",
    "FlowFacts",
    "Funnel",
    "GroupRow",
    "MeanResult",
    "NpsResult",
    "Period",
    "PeriodPoint",
    "Report",
    "Resolution",
    "ShareResult",
    "SilentContact",
    "build_accounts",
    "build_report",
]
