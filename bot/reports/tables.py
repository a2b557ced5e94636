"""A Report as a terminal table (rich), CSV and JSON, and as a short text for chat.

CSV is long ("tidy") so that one file holds every figure and any tool can pivot it:
`section,key,metric,value`, e.g. `groups,buyer,nps,33.3`. JSON mirrors the dataclasses,
with the shares (%) and the small-group flags spelled out.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from rich.columns import Columns
from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from bot.reports.metrics import (
    SMALL_GROUP,
    TOO_FAST_SECONDS,
    AccountSummary,
    Funnel,
    GroupRow,
    MeanResult,
    NpsResult,
    Report,
    ShareResult,
)
from bot.staff_text import staff_line
from bot.staff_text import write_csv as write_rows
from storage.reports import TextAnswer

DASH = "—"
SMALL_MARK = "*"


# --- numbers as people read them ------------------------------------------------------


def plural(n: int, word: str, words: str | None = None) -> str:
    """"1 answer", "2 answers", "0 answers": English tables count in English."""
    return f"{n} {word if n == 1 else words or word + 's'}"


def of(part: int, whole: int) -> str:
    """The counts behind a rate, as every rate in the tables shows them: "(8/12)"."""
    return f"({part}/{whole})"


def signed(value: float | None, decimals: int = 0) -> str:
    if value is None:
        return DASH
    text = f"{value:+.{decimals}f}"
    return "±0" if float(text) == 0 else text.replace("-", "−")


def plain(value: float | None, decimals: int = 0, suffix: str = "") -> str:
    return DASH if value is None else f"{value:.{decimals}f}{suffix}".replace("-", "−")


def duration(seconds: float | None) -> str:
    """165 → 2m 45s; 7200 → 2h 0m."""
    if seconds is None:
        return DASH
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def hours(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value / 24:.1f} d" if value >= 48 else f"{value:.1f} h"


def window_text(report: Report) -> str:
    """"all answers up to now", "since 2026-01-01", "up to 2026-01-31" or
    "2026-01-01 to 2026-01-31" (both days included)."""
    since, until = report.since, report.until
    if since and until:
        text = f"{since.isoformat()} to {until.isoformat()}"
    elif since:
        text = f"since {since.isoformat()}"
    elif until:
        text = f"all answers up to {until.isoformat()}"
    else:
        text = "all answers up to now"
    if report.previous:
        text += f" (change vs {report.previous[0]} to {report.previous[1]})"
    return text


# --- terminal -----------------------------------------------------------------------------


def _nps_cell(nps: NpsResult | None) -> str:
    if nps is None:
        return DASH
    return (f"{plain(nps.score)}  ({nps.promoters}/{nps.passives}/{nps.detractors})"
            if nps.n else DASH)


def _share_cell(csat: ShareResult | None) -> str:
    if csat is None or not csat.n:
        return DASH
    return f"{plain(csat.share, 0, '%')}  {of(csat.hits, csat.n)}"


def _low_effort_cell(ces: MeanResult | None) -> str:
    if ces is None or not ces.n:
        return DASH
    return f"{plain(ces.share_low_effort, 0, '%')}  {of(ces.low_effort, ces.n)}"


def _scores_table(report: Report) -> Table:
    rows = [report.overall, *report.groups]
    table = Table(title=f"Scores by {report.by}" if report.by else "Scores",
                  title_justify="left")
    table.add_column(report.by or "", no_wrap=True)
    table.add_column("responses", justify="right")
    has = {name: any(getattr(r, name) is not None for r in rows) for name in ("nps", "csat",
                                                                             "ces")}
    if has["nps"]:
        table.add_column("NPS (P/Pa/D)", justify="right")
    if has["csat"]:
        table.add_column("CSAT", justify="right")
    if has["ces"]:
        table.add_column("CES", justify="right")
        table.add_column("low effort", justify="right")
    compare = report.previous is not None
    if compare:
        table.add_column("Δ responses", justify="right")
        if has["nps"]:
            table.add_column("Δ NPS", justify="right")
        if has["csat"]:
            table.add_column("Δ CSAT", justify="right")
        if has["ces"]:
            table.add_column("Δ CES", justify="right")
    for row in rows:
        label = "all" if row is report.overall else staff_line(row.key)
        cells = [label + (f" {SMALL_MARK}" if row.too_small else ""), str(row.responses)]
        if has["nps"]:
            cells.append(_nps_cell(row.nps))
        if has["csat"]:
            cells.append(_share_cell(row.csat))
        if has["ces"]:
            cells.append(plain(row.ces.mean if row.ces else None, 2))
            cells.append(_low_effort_cell(row.ces))
        if compare:
            cells.append(signed(row.change.get("responses")))
            for name, decimals in (("nps", 0), ("csat", 0), ("ces", 2)):
                if has[name]:
                    cells.append(signed(row.change.get(name), decimals))
        style = "dim" if row.too_small else ("bold" if row is report.overall else None)
        table.add_row(*cells, style=style, end_section=row is report.overall)
    table.caption = (f"{SMALL_MARK} fewer than {SMALL_GROUP} responses: too small to trust. "
                     "NPS counts promoters/passives/detractors; CES 1 = very easy … 7 = very "
                     "difficult, low effort = 1–3.")
    table.caption_justify = "left"
    return table


def response_rate_text(f: Funnel) -> str:
    """The rate with the people behind it, or why there is none."""
    if not f.invited:
        return f"{DASH}  (nobody invited{' was reached yet' if f.not_sent else ''})"
    return f"{plain(f.response_rate, 0, '%')}  {of(f.responded, f.invited)}"


def completed_text(f: Funnel) -> str:
    """"11: 0 after an invitation, 11 without one": sessions no rate counts, shown."""
    if not f.completed:
        return "0"
    return (f"{f.completed}: {f.completed_invited} after an invitation, "
            f"{f.completed_uninvited} without one")


def completion_text(f: Funnel) -> str:
    """Median / 90th percentile, marked when too few or too fast to mean anything."""
    text = f"{duration(f.median_seconds)} / {duration(f.p90_seconds)}"
    if f.median_seconds is None or f.time_trusted:
        return text
    if f.completed < SMALL_GROUP:
        return f"{text} {SMALL_MARK} (only {plural(f.completed, 'completed survey')})"
    return (f"{text} {SMALL_MARK} (under {TOO_FAST_SECONDS:.0f}s: test runs or previews, "
            "not people answering)")


def _funnel_table(report: Report) -> Table:
    f, r = report.funnel, report.resolution
    table = Table(title="Responses and follow-up", title_justify="left", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    lines = [
        ("people invited (the invitation reached them)", str(f.invited)),
        ("response rate (of them, completed since)", response_rate_text(f)),
    ]
    if f.not_sent:
        lines.append(("invited, not sent yet (in no rate)", str(f.not_sent)))
    lines += [
        ("sessions started / partial", f"{f.started} / {f.partial}"),
        ("sessions completed", completed_text(f)),
        ("partial rate (partial / partial + completed)",
         f"{plain(f.partial_rate, 0, '%')}  {of(f.partial, f.partial + f.completed)}"
         if f.partial_rate is not None else DASH),
        ("completion time: median / 90th percentile", completion_text(f)),
        ("detractor cases: opened / resolved / open", f"{r.cases} / {r.resolved} / {r.open_cases}"),
        ("time to resolve: median / 90th percentile",
         f"{hours(r.median_hours)} / {hours(r.p90_hours)}"),
        ("promises kept on time", f"{plain(r.kept_share, 0, '%')}  ({r.kept_on_time}/{r.due} due"
                                  f", {r.overdue} overdue, {r.promises - r.due} not due yet)"
         if r.promises else "no promises"),
    ]
    for name, value in lines:
        table.add_row(name, value)
    return table


def _bar(count: int, top: int, width: int = 20) -> str:
    return "█" * (round(width * count / top) if top else 0)


def _dropoff_table(report: Report) -> Table:
    table = Table(title="Where unfinished sessions stopped", title_justify="left")
    table.add_column("question")
    table.add_column("sessions", justify="right")
    table.add_column("")
    top = max((n for _, n in report.funnel.dropoff), default=0)
    for question, n in report.funnel.dropoff:
        table.add_row(staff_line(question), str(n), _bar(n, top))
    return table


def _distribution_tables(report: Report) -> list[Table]:
    tables = []
    for d in report.distributions:
        table = Table(title=f"{d.question_id} ({d.type}, {plural(d.n, 'answer')})",
                      title_justify="left")
        table.add_column("value")
        table.add_column("count", justify="right")
        table.add_column("%", justify="right")
        table.add_column("")
        top = max((n for _, n in d.counts), default=0)
        for value, n in d.counts:
            share = 100.0 * n / d.n if d.n else None
            table.add_row(staff_line(value), str(n), plain(share, 0), _bar(n, top))
        tables.append(table)
    return tables


def _trend_table(report: Report) -> Table:
    o = report.overall
    table = Table(title=f"Trend by {report.period}", title_justify="left")
    table.add_column(report.period)
    table.add_column("responses", justify="right")
    for name, result in (("NPS (P/Pa/D)", o.nps), ("CSAT", o.csat), ("CES", o.ces)):
        if result is not None:  # only the scores the flow asks
            table.add_column(name, justify="right")
    for p in report.trend:
        small = p.responses < SMALL_GROUP
        cells = [p.start.isoformat() + (f" {SMALL_MARK}" if small else ""), str(p.responses)]
        if o.nps is not None:
            cells.append(_nps_cell(p.nps))
        if o.csat is not None:
            cells.append(_share_cell(p.csat))
        if o.ces is not None:
            cells.append(plain(p.ces.mean if p.ces else None, 2))
        table.add_row(*cells, style="dim" if small else None)
    return table


def _silent_table(report: Report) -> Table:
    table = Table(title=f"Invited and silent at {report.account}", title_justify="left")
    for name in ("contact", "role", "invited", "reminders", "invitation"):
        table.add_column(name)
    for s in report.silent:
        table.add_row(staff_line(s.name or str(s.contact_id)), staff_line(s.role or DASH),
                      s.invited_at.date().isoformat() if s.invited_at else DASH,
                      str(s.reminders), s.status)
    return table


def report_renderable(report: Report, *, silent: bool = True) -> Group:
    """The whole report for a terminal: header, scores, funnel, drop-off, trend,
    distributions (and, with `silent`, the silent contacts of a one-account report)."""
    scope = f" · account {staff_line(report.account)}" if report.account else ""
    header = Text.assemble((f"{report.title} ({report.flow_id})", "bold"), scope, "\n",
                           window_text(report))
    parts: list[Any] = [header, _scores_table(report), _funnel_table(report),
                        _dropoff_table(report)]
    if report.trend:
        parts.append(_trend_table(report))
    if report.account is not None and silent:
        parts.append(_silent_table(report))
    # side by side as the terminal's width allows: eight questions would otherwise scroll
    parts.append(Columns(_distribution_tables(report), padding=(0, 2)))
    return Group(*parts)


# --- JSON ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _row_json(row: GroupRow) -> dict[str, Any]:
    data = _jsonable(asdict(row))
    for name, result in (("nps", row.nps), ("csat", row.csat), ("ces", row.ces)):
        if result is not None:
            data[name]["too_small"] = result.too_small
    if row.nps is not None:
        data["nps"].update(promoter_share=row.nps.promoter_share,
                           passive_share=row.nps.passive_share,
                           detractor_share=row.nps.detractor_share)
    return data


def report_json(report: Report) -> dict[str, Any]:
    """The report as a JSON-ready dict (dates as ISO text)."""
    data: dict[str, Any] = _jsonable(asdict(report))
    data["overall"] = _row_json(report.overall)
    data["groups"] = [_row_json(g) for g in report.groups]
    data["resolution"]["kept_share"] = report.resolution.kept_share
    data["funnel"].update(completed_uninvited=report.funnel.completed_uninvited,
                          time_trusted=report.funnel.time_trusted)
    data["small_group"] = SMALL_GROUP
    data["funnel"]["dropoff"] = [{"question": q, "sessions": n} for q, n in
                                 report.funnel.dropoff]
    for d in data["distributions"]:
        d["counts"] = [{"value": v, "count": n} for v, n in d["counts"]]
    return data


def report_json_text(report: Report) -> str:
    return json.dumps(report_json(report), ensure_ascii=False, indent=2) + "\n"


# --- CSV ----------------------------------------------------------------------------------

CSV_HEADER = ("section", "key", "metric", "value")


def _score_metrics(nps: NpsResult | None, csat: ShareResult | None, ces: MeanResult | None
                   ) -> Iterator[tuple[str, Any]]:
    if nps is not None:
        yield from (("nps", nps.score), ("nps_n", nps.n), ("promoters", nps.promoters),
                    ("passives", nps.passives), ("detractors", nps.detractors))
    if csat is not None:
        yield from (("csat", csat.share), ("csat_n", csat.n), ("csat_satisfied", csat.hits))
    if ces is not None:
        yield from (("ces", ces.mean), ("ces_n", ces.n),
                    ("ces_low_effort_share", ces.share_low_effort))


def csv_rows(report: Report) -> Iterator[tuple[str, str, str, Any]]:
    for row in [report.overall, *report.groups]:
        section = "overall" if row is report.overall else "groups"
        yield section, row.key, "responses", row.responses
        yield section, row.key, "too_small", int(row.too_small)
        for metric, value in _score_metrics(row.nps, row.csat, row.ces):
            yield section, row.key, metric, value
        for metric, value in row.change.items():
            yield section, row.key, f"change_{metric}", value
    f = report.funnel
    for metric in ("invited", "responded", "response_rate", "not_sent", "started", "completed",
                   "completed_invited", "completed_uninvited", "partial", "partial_rate",
                   "median_seconds", "p90_seconds"):
        yield "funnel", "", metric, getattr(f, metric)
    yield "funnel", "", "time_trusted", int(f.time_trusted)
    for question, n in f.dropoff:
        yield "dropoff", question, "sessions", n
    r = report.resolution
    for metric in ("cases", "open_cases", "resolved", "median_hours", "p90_hours", "promises",
                   "due", "kept_on_time", "overdue", "kept_share"):
        yield "resolution", "", metric, getattr(r, metric)
    for d in report.distributions:
        yield "distribution", d.question_id, "answers", d.n
        for value, n in d.counts:
            yield "distribution", d.question_id, value, n
    for p in report.trend:
        key = p.start.isoformat()
        yield "trend", key, "responses", p.responses
        for metric, value in _score_metrics(p.nps, p.csat, p.ces):
            yield "trend", key, metric, value
    for s in report.silent:
        yield "silent", str(s.contact_id), "name", s.name
        yield "silent", str(s.contact_id), "role", s.role
        yield "silent", str(s.contact_id), "invited_at", s.invited_at


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows as CSV text, through Sada's one CSV writer (formula-like text neutralised:
    bot.staff_text.csv_cell)."""
    buffer = io.StringIO()
    write_rows(buffer, header, rows)
    return buffer.getvalue()


def report_csv(report: Report) -> str:
    """Every figure as `section,key,metric,value`; empty value = no data (None)."""
    return write_csv(CSV_HEADER, csv_rows(report))


# --- chat ---------------------------------------------------------------------------------


def summary_text(report: Report) -> str:
    """A few lines for a staff member in chat (plain text, English)."""
    o, f, r = report.overall, report.funnel, report.resolution
    lines = [f"{report.title} · {window_text(report)}"]
    if o.nps is not None:
        line = (f"NPS {plain(o.nps.score)} ({plural(o.nps.promoters, 'promoter')}, "
                f"{plural(o.nps.passives, 'passive')}, {plural(o.nps.detractors, 'detractor')})")
        if "nps" in o.change:
            line += f", {signed(o.change['nps'])} vs previous"
        lines.append(line)
    if o.csat is not None:
        lines.append(f"CSAT {plain(o.csat.share, 0, '%')} of {plural(o.csat.n, 'answer')}"
                     if o.csat.n else "CSAT: no answers yet")
    if o.ces is not None:
        lines.append(f"CES {plain(o.ces.mean, 1)} of {plural(o.ces.n, 'answer')} "
                     f"({plain(o.ces.share_low_effort, 0, '%')} low effort)"
                     if o.ces.n else "CES: no answers yet")
    rate = (f"response rate {plain(f.response_rate, 0, '%')} {of(f.responded, f.invited)}"
            if f.invited else "nobody invited")
    median = duration(f.median_seconds) + ("" if f.median_seconds is None or f.time_trusted
                                           else f" {SMALL_MARK}")
    lines.append(f"{plural(o.responses, 'response')}; {rate}; "
                 f"{plural(f.completed, 'completed survey')} "
                 f"({f.completed_invited} invited); median time {median}")
    if r.cases or r.promises:
        lines.append(f"Cases open {r.open_cases}, time to resolve {hours(r.median_hours)}; "
                     f"promises kept {plain(r.kept_share, 0, '%')}")
    if o.too_small:
        lines.append(f"Fewer than {SMALL_GROUP} responses: too small to trust.")
    return "\n".join(lines)


# --- free-text answers --------------------------------------------------------------------

ANSWER_COLUMNS = ("answered_at", "who", "account", "role", "language", "nps", "csat", "text")
# `--by` puts the group first; the contact column it repeats is then left out.
_REPEATS = {"account": "account", "role": "role", "language": "language"}


def _answer_columns(by: str | None) -> list[str]:
    if not by:
        return list(ANSWER_COLUMNS)
    return [by, *(c for c in ANSWER_COLUMNS if c != _REPEATS.get(by))]


def _answer_values(a: TextAnswer, by: str | None) -> list[Any]:
    values: dict[str, Any] = {
        "answered_at": a.answered_at.strftime("%Y-%m-%d %H:%M"), "who": a.who,
        "account": a.account, "role": a.role, "language": a.language,
        "nps": a.nps, "csat": a.csat, "text": a.text,
    }
    if by:
        values[by] = a.key
    return [values[c] for c in _answer_columns(by)]


def answers_csv(answers: list[TextAnswer], by: str | None) -> str:
    return write_csv(_answer_columns(by), [_answer_values(a, by) for a in answers])


def answers_json_text(answers: list[TextAnswer], by: str | None) -> str:
    rows = []
    for a in answers:
        item = _jsonable(asdict(a))
        key = item.pop("key")
        if by:
            item[by] = key
        rows.append(item)
    return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"


def answers_view(answers: list[TextAnswer], question: str, by: str | None) -> Group:
    """For the terminal: one line of who/when/scores, then the answer, indented and wrapped
    (free text is long; a table column would cut it). With `by`, a heading per group."""
    parts: list[Any] = [Text(f"Answers to {question}: {len(answers)}", style="bold")]
    current: str | None = None
    for a in answers:
        if by and a.key != current:
            current = a.key
            parts.append(Text(f"\n{by}: {staff_line(str(a.key))}", style="bold underline"))
        # Each value on its own line, in its own direction: an answer cannot pass for the
        # next answer's header line, nor reverse this one (bot.staff_text).
        facts = [a.answered_at.strftime("%Y-%m-%d %H:%M"), staff_line(a.who),
                 staff_line(a.account or DASH), staff_line(a.role or DASH), a.language]
        if a.nps is not None:
            facts.append(f"NPS {a.nps}")
        if a.csat is not None:
            facts.append(f"CSAT {a.csat}")
        parts.append(Text(" · ".join(facts), style="dim"))
        parts.append(Padding(Text(staff_line(a.text)), (0, 0, 0, 4)))
    return Group(*parts)


# --- the B2B accounts overview --------------------------------------------------------------


def _account_block(a: AccountSummary) -> Group:
    """One account: a line of totals, NPS/CSAT/CES per stakeholder role, then who stayed
    silent, open cases and promises due (what the account manager acts on)."""
    o = a.overall
    head = Text.assemble(
        (staff_line(a.account), "bold"),
        f" · {o.responses} response{'' if o.responses == 1 else 's'}",
        f" · NPS {_nps_cell(o.nps)}" if o.nps is not None else "",
        f" · answered {a.responded} of {a.invited} invited" if a.invited else "",
        (f"  {SMALL_MARK} too small to trust", "dim") if o.too_small else "",
    )
    parts: list[Any] = [head]
    if a.roles:
        table = Table(box=None, padding=(0, 2), show_edge=False)
        table.add_column("role", style="cyan")
        table.add_column("responses", justify="right")
        for name in ("NPS (P/Pa/D)", "CSAT", "CES"):
            if getattr(o, name.split()[0].lower()) is not None:
                table.add_column(name, justify="right")
        for r in a.roles:
            cells = [staff_line(r.key) + (f" {SMALL_MARK}" if r.too_small else ""),
                     str(r.responses)]
            if o.nps is not None:
                cells.append(_nps_cell(r.nps))
            if o.csat is not None:
                cells.append(_share_cell(r.csat))
            if o.ces is not None:
                cells.append(plain(r.ces.mean if r.ces else None, 2))
            table.add_row(*cells, style="dim" if r.too_small else None)
        parts.append(Padding(table, (0, 0, 0, 2)))
    follow = []
    if a.silent_roles:
        follow.append(f"silent roles: {', '.join(staff_line(r) for r in a.silent_roles)}")
    if a.silent:
        people = ", ".join(f"{staff_line(s.name or str(s.contact_id))} "
                           f"({staff_line(s.role or DASH)})" for s in a.silent)
        follow.append(f"invited, never answered: {people}")
    if a.open_cases:
        follow.append(f"open cases: {a.open_cases}")
    if a.promises_due:
        due = f"promises due: {a.promises_due} ({a.promises_overdue} overdue"
        if a.next_promise is not None:
            due += f", earliest {a.next_promise.date().isoformat()}"
        follow.append(due + ")")
    parts.extend(Padding(Text(line), (0, 0, 0, 2)) for line in follow)
    return Group(*parts)


def accounts_renderable(summaries: list[AccountSummary]) -> Group:
    parts: list[Any] = [Text("Accounts: NPS per stakeholder role, who stayed silent, open "
                             "cases and promises due", style="bold underline")]
    for a in summaries:
        parts.extend([Text(""), _account_block(a)])
    parts.append(Text(f"\n{SMALL_MARK} fewer than {SMALL_GROUP} responses: too small to "
                      "trust. Silent: invited, never answered (role as stored on the "
                      "contact).", style="dim"))
    return Group(*parts)


ACCOUNT_COLUMNS = ("account", "role", "responses", "too_small", "nps", "promoters", "passives",
                   "detractors", "csat", "ces", "change_nps", "invited", "responded",
                   "silent_roles", "silent_contacts", "open_cases", "promises_due",
                   "promises_overdue", "next_promise")


def _account_line(account: str, role: str, row: GroupRow) -> list[Any]:
    nps = row.nps
    return [account, role, row.responses, int(row.too_small),
            nps.score if nps else None, nps.promoters if nps else None,
            nps.passives if nps else None, nps.detractors if nps else None,
            row.csat.share if row.csat else None, row.ces.mean if row.ces else None,
            row.change.get("nps")]


def accounts_csv(summaries: list[AccountSummary]) -> str:
    """One line per account (role "all", with invitations, silence, cases and promises),
    then one per stakeholder role of it."""
    rows: list[list[Any]] = []
    for a in summaries:
        rows.append([*_account_line(a.account, "all", a.overall), a.invited, a.responded,
                     "; ".join(a.silent_roles), "; ".join(s.name or str(s.contact_id)
                                                         for s in a.silent),
                     a.open_cases, a.promises_due, a.promises_overdue, a.next_promise])
        rows.extend([*_account_line(a.account, r.key, r), *[None] * 8] for r in a.roles)
    return write_csv(ACCOUNT_COLUMNS, rows)


def accounts_json_text(summaries: list[AccountSummary]) -> str:
    data = []
    for a in summaries:
        item = _jsonable(asdict(a))
        item["overall"] = _row_json(a.overall)
        item["roles"] = [_row_json(r) for r in a.roles]
        data.append(item)
    return json.dumps({"small_group": SMALL_GROUP, "accounts": data}, ensure_ascii=False,
                      indent=2) + "\n"
