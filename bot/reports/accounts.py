"""The B2B account view: per customer account, how each stakeholder group feels, who has
not answered, and what we still owe them.

Seed 003: in B2B there is no single customer; buyers, users, decision makers, IT and finance
each see a different side of us, so satisfaction is tracked per group, and the silent ones
matter as much as the unhappy ones (seed 001, step 5). One view per account answers, before
a meeting with it: which roles are happy, which are not, whom we never heard from, which
complaints are still open and which promises fall due.

The numbers (NPS/CSAT/CES per role, invited, silent) are metrics.build_accounts', counted
by the database; this module adds the open cases and promises themselves
(storage/accounts_report.py) and draws the view for the terminal (`render_accounts`);
bot/reports/html.py draws it for the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.flow.model import ChoiceQuestion, Flow
from bot.reports import metrics
from bot.reports.metrics import NO_VALUE, ROLE_QUESTIONS, AccountSummary, GroupRow
from bot.reports.periods import window
from bot.reports.tables import plural
from bot.staff_text import staff_line
from storage.accounts_report import OpenCaseRow, PromiseRow, open_cases, open_promises
from storage.db import Database
from storage.reports import Scope, role_invitations

# Per account, at most this many open cases / promises / silent people are listed in the
# terminal; the counts above them are always complete.
LIST_LIMIT = 10
# Roles nobody has to answer for: "other" is a catch-all, not a stakeholder group.
_NOT_A_GROUP = frozenset({"other", NO_VALUE})


@dataclass(frozen=True)
class OpenCase:
    case_id: int
    contact_id: int
    who: str
    role: str | None
    question_id: str
    score: int
    comment: str | None
    opened_at: datetime
    age: timedelta


@dataclass(frozen=True)
class DuePromise:
    action_id: int
    texts: dict[str, str]
    role: str | None
    case_id: int | None
    promised_at: datetime
    # A promised date is a calendar day: overdue once that day has ended (storage/actions.py).
    overdue: bool

    def text(self, lang: str) -> str:
        return self.texts.get(lang) or self.texts.get("en") or next(iter(self.texts.values()),
                                                                     "")


@dataclass(frozen=True)
class AccountView:
    """One account: the metrics' summary plus the open items behind its counts."""

    summary: AccountSummary
    cases: list[OpenCase]
    promises: list[DuePromise]
    # The flow's stakeholder roles nobody at the account was invited as or answered as.
    unheard_roles: list[str]

    @property
    def account(self) -> str:
        return self.summary.account

    @property
    def overdue(self) -> int:
        return sum(1 for p in self.promises if p.overdue)

    @property
    def attention(self) -> tuple[int, int, float, str]:
        """Sort key, most urgent first: overdue promises, open cases, lowest NPS."""
        nps = self.summary.overall.nps
        score = nps.score if nps is not None and nps.score is not None else 101.0
        return (-self.overdue, -len(self.cases), score, self.account.casefold())


def role_question(flow: Flow) -> ChoiceQuestion | None:
    """The flow's stakeholder-role question (as metrics finds it), if it has one."""
    for question in flow.questions:
        if isinstance(question, ChoiceQuestion) and question.id in ROLE_QUESTIONS:
            return question
    return None


def _unheard(summary: AccountSummary, invited: set[str],
             question: ChoiceQuestion | None) -> list[str]:
    """The role question's options that no one at the account answered as and no one
    was invited as (contact.role): the stakeholder groups we have no line to at all."""
    if question is None or summary.account == NO_VALUE:
        return []
    seen = {row.key for row in summary.roles} | invited
    return [o.id for o in question.options if o.id not in seen and o.id not in _NOT_A_GROUP]


def _overdue(promised_at: datetime, now: datetime) -> bool:
    return now >= promised_at + timedelta(days=1)


async def build_accounts(
    db: Database,
    flow: Flow,
    *,
    account: str | None = None,
    since: date | None = None,
    until: date | None = None,
    now: datetime | None = None,
) -> list[AccountView]:
    """The account view for one account, or for every account of the flow (by name,
    contacts without an account last). Scores and silences are for the window; open cases
    and promises are those open now, whenever they were opened or made."""
    now = now if now is not None else datetime.now(UTC)
    summaries = await metrics.build_accounts(db, flow, since=since, until=until,
                                             account=account, now=now)
    question = role_question(flow)
    start, end = window(since, until)
    invited: dict[str, set[str]] = {}
    for r in await role_invitations(db, Scope(flow.id, start, end, account), NO_VALUE):
        invited.setdefault(r.account, set()).add(r.role)
    case_rows = await open_cases(db, flow.id, account=account,
                                 role_question=question.id if question else None,
                                 no_value=NO_VALUE)
    promise_rows = await open_promises(db, flow.id, account=account, no_value=NO_VALUE)
    cases: dict[str, list[OpenCase]] = {}
    for c in case_rows:
        cases.setdefault(c.account, []).append(_case(c, now))
    promises: dict[str, list[DuePromise]] = {}
    for p in promise_rows:
        promises.setdefault(p.account, []).append(_promise(p, now))
    return [
        AccountView(s, cases.get(s.account, []), promises.get(s.account, []),
                    _unheard(s, invited.get(s.account, set()), question))
        for s in summaries
    ]


def _case(row: OpenCaseRow, now: datetime) -> OpenCase:
    return OpenCase(row.case_id, row.contact_id, row.who, row.role, row.question_id, row.score,
                    row.comment, row.opened_at, now - row.opened_at)


def _promise(row: PromiseRow, now: datetime) -> DuePromise:
    return DuePromise(row.action_id, row.texts, row.role, row.case_id, row.promised_at,
                      _overdue(row.promised_at, now))


# --- the terminal -----------------------------------------------------------------------


def role_label(flow: Flow | None, role: str | None, lang: str = "en") -> str:
    """A role as people read it: the role question's option label, else the stored text."""
    if role is None or role == NO_VALUE:
        return "(role not known)"
    question = role_question(flow) if flow is not None else None
    if question is not None:
        for option in question.options:
            if option.id == role:
                return option.label.get(lang) or option.label.get(flow.default_language) or role  # type: ignore[union-attr, call-overload]
    return role


def span(delta: timedelta) -> str:
    """"3 d", "5 h", "20 min": how long something has waited, roughly."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} d"
    if seconds >= 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def _nps_cells(row: GroupRow) -> tuple[Text, Text]:
    nps = row.nps
    if nps is None or nps.score is None:
        return Text("—", style="dim"), Text("")
    style = "green" if nps.score > 0 else "red" if nps.score < 0 else ""
    counts = Text(f"{nps.promoters}/{nps.passives}/{nps.detractors}", style="dim")
    return Text(signed(nps.score), style=style), counts


def signed(value: float) -> str:
    """"+12", "−7", "0": a score or change with its sign, rounded."""
    shown = round(value)
    return f"{shown:+d}".replace("-", "−") if shown else "0"


def _share(value: float | None, digits: int = 0, unit: str = "%") -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"


def _change(row: GroupRow) -> Text:
    delta = row.change.get("nps")
    if delta is None:
        return Text("")
    if round(delta) == 0:
        return Text("= 0", style="dim")
    return Text(f"{'▲' if delta > 0 else '▼'} {signed(delta)}",
                style="green" if delta > 0 else "red")


def _roles_table(view: AccountView, flow: Flow | None) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, highlight=False)
    for name, justify in (("role", "left"), ("answers", "right"), ("NPS", "right"),
                          ("P/Pa/D", "left"), ("change", "left"), ("CSAT", "right"),
                          ("CES", "right"), ("", "left")):
        table.add_column(name, justify=justify, header_style="bold")  # type: ignore[arg-type]
    roles = view.summary.roles
    for i, row in enumerate([*roles, view.summary.overall]):
        overall = i == len(roles)
        label = "whole account" if overall else role_label(flow, row.key)
        small = Text("too few to trust", style="yellow") if row.too_small else Text("")
        table.add_row(
            Text(label, style="bold" if overall else ""),
            str(row.responses), *_nps_cells(row), _change(row),
            _share(row.csat.share if row.csat else None) + (
                f" ({row.csat.hits}/{row.csat.n})" if row.csat and row.csat.n else ""),
            _share(row.ces.mean if row.ces else None, 1, ""),
            small,
            style="dim" if row.too_small and not overall else None,
            end_section=i == len(roles) - 1,  # a rule above the whole-account line
        )
    return table


def _silent_lines(view: AccountView, flow: Flow | None) -> list[Text]:
    s = view.summary
    lines: list[Text] = []
    if s.silent_roles:
        roles = ", ".join(role_label(flow, r) for r in s.silent_roles)
        lines.append(Text.assemble(("Invited, nobody answered: ", "bold red"), roles))
    for person in s.silent[:LIST_LIMIT]:
        when = person.invited_at.strftime("%Y-%m-%d") if person.invited_at else "?"
        reminders = f", {person.reminders} reminder{'s' if person.reminders != 1 else ''}"
        lines.append(Text(f"  · {staff_line(person.name or str(person.contact_id))} "
                          f"({role_label(flow, person.role)}): invited {when}"
                          f"{reminders if person.reminders else ''}, {person.status}"))
    if len(s.silent) > LIST_LIMIT:
        lines.append(Text(f"  … and {len(s.silent) - LIST_LIMIT} more", style="dim"))
    if view.unheard_roles:
        roles = ", ".join(role_label(flow, r) for r in view.unheard_roles)
        lines.append(Text.assemble(("Nobody invited or answering as: ", "bold yellow"), roles))
    return lines


def _cases_lines(view: AccountView, flow: Flow | None) -> list[Text]:
    lines = []
    for case in view.cases[:LIST_LIMIT]:
        comment = f" — {_short(case.comment)}" if case.comment else ""
        lines.append(Text.assemble(
            f"  #{case.case_id} ", (f"waiting {span(case.age)}", "red" if case.age.days >= 2
                                   else ""),
            f"  {staff_line(case.who)} ({role_label(flow, case.role)}), {case.question_id} "
            f"{case.score}{comment}"))
    if len(view.cases) > LIST_LIMIT:
        lines.append(Text(f"  … and {len(view.cases) - LIST_LIMIT} more", style="dim"))
    return lines


def _promise_lines(view: AccountView) -> list[Text]:
    lines = []
    for p in view.promises[:LIST_LIMIT]:
        day = p.promised_at.strftime("%Y-%m-%d")
        state = ("OVERDUE", "bold red") if p.overdue else ("due", "")
        who = f" ({p.role})" if p.role else ""
        lines.append(Text.assemble("  ", state, f" {day}{who}: {_short(p.text('en'))}"))
    if len(view.promises) > LIST_LIMIT:
        lines.append(Text(f"  … and {len(view.promises) - LIST_LIMIT} more", style="dim"))
    return lines


def _short(text: str | None, limit: int = 70) -> str:
    line = " ".join(staff_line(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _headline(view: AccountView) -> str:
    s = view.summary
    nps = s.overall.nps
    score = (f"NPS {signed(nps.score)} ({plural(nps.n, 'answer')})"
             if nps and nps.score is not None else "no NPS answers")
    rate = f"{s.responded} of {s.invited} invited answered" if s.invited else "nobody invited"
    if s.not_sent:  # invited all the same (as `sada contacts silent` counts them)
        rate += f" ({s.not_sent} not sent yet)"
    return (f"{score} · {rate} · {plural(len(view.cases), 'open case')} · "
            f"{plural(len(view.promises), 'open promise')} ({view.overdue} overdue)")


def account_panel(view: AccountView, flow: Flow | None = None) -> Panel:
    """One account as a rich panel: roles table, silences, open cases, promises."""
    parts: list[Table | Text] = [Text(_headline(view), style="bold"), _roles_table(view, flow)]
    silent = _silent_lines(view, flow)
    if silent:
        parts += [Text(""), *silent]
    if view.cases:
        parts += [Text(""), Text("Open cases", style="bold"), *_cases_lines(view, flow)]
    if view.promises:
        parts += [Text(""), Text("Promises not yet kept", style="bold"), *_promise_lines(view)]
    urgent = view.overdue or any(c.age.days >= 2 for c in view.cases)
    title = "(no account)" if view.account == NO_VALUE else staff_line(view.account)
    return Panel(Group(*parts), title=Text(title, style="bold"), title_align="left",
                 border_style="red" if urgent else "blue", expand=True)


def overview_table(views: Sequence[AccountView]) -> Table:
    """One line per account, most urgent first: the accounts overview."""
    table = Table(title="Accounts, most urgent first", highlight=False, title_justify="left")
    for name, justify in (("account", "left"), ("NPS", "right"), ("answers", "right"),
                          ("invited → answered", "right"), ("silent roles", "left"),
                          ("open cases", "right"), ("promises (overdue)", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for view in sorted(views, key=lambda v: v.attention):
        s = view.summary
        nps = s.overall.nps
        score = "—" if nps is None or nps.score is None else signed(nps.score)
        if s.overall.too_small and score != "—":
            score += "*"
        table.add_row(
            "(no account)" if view.account == NO_VALUE else staff_line(view.account), score,
            str(s.overall.responses), f"{s.invited} → {s.responded}" if s.invited else "—",
            ", ".join(s.silent_roles) or "", str(len(view.cases)) if view.cases else "",
            f"{len(view.promises)} ({view.overdue})" if view.promises else "",
            style="red" if view.overdue else None,
        )
    table.caption = "* fewer than 5 answers: too few to trust"
    return table


def render_accounts(views: Sequence[AccountView], console: Console, *,
                    flow: Flow | None = None) -> None:
    """Print the account view: an overview line per account (when there are several), then
    one panel per account, most urgent first."""
    if not views:
        console.print("no accounts: nobody with a company was invited to or answered this "
                      "flow in the window", markup=False)
        return
    if len(views) > 1:
        console.print(overview_table(views))
    for view in sorted(views, key=lambda v: v.attention):
        console.print(account_panel(view, flow))
