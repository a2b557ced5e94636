"""The HTML report: one self-contained file a manager opens in any browser.

Everything is inside the file — CSS inline, charts as base64 PNG `data:` URIs, no scripts,
fonts or links to fetch — so it can be mailed, archived or opened offline, and shows the
same thing years later. Arabic and Persian reports are `dir="rtl"` with the reader's
digits. Every text that comes from people (group names, comments, names, flow texts) goes
through Jinja2's autoescaping.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.flow.model import LANGUAGES, Flow, by_code
from bot.followups.dates import format_date as reader_date
from bot.i18n import N_, Translator, rounded_hours, translate
from bot.reports import rtl
from bot.reports.accounts import AccountView, role_question
from bot.reports.charts import PROMISE_SECONDS, Chart, flow_text, render_charts, value_label
from bot.reports.metrics import NO_VALUE, SMALL_GROUP, GroupRow, Report
from bot.staff_text import staff_line

TEMPLATES = Path(__file__).resolve().parent / "templates"

# The page's own words; flow texts (title, questions, options) come from the flow. Words
# that count something are ngettext calls in _Page (Arabic has six plural forms).
WORDS: dict[str, str] = {  # the report's own words; translations in locales/
    "window": N_("{since} – {until}"),
    "since": N_("since {since}"),
    "until": N_("until {until}"),
    "all_time": N_("all answers so far"),
    "generated": N_("generated {when} (UTC)"),
    "account": N_("Account: {name}"),
    "compared": N_("changes compare with {since} – {until}"),
    "nps_detail": N_("{p} promoters, {pa} passives, {d} detractors of {n}"),
    "csat_detail": N_("{hits} of {n} answered 4 or 5"),
    "ces_detail": N_("{share} low effort (1–3) of {n}"),
    "response_rate": N_("Response rate"),
    "no_invitations": N_("no invitations in this window"),
    "partial": N_("partial: {share}"),
    "completion": N_("Median time to complete"),
    "completion_detail": N_("9 in 10 finish within {p90}; the promise is under {promise}"),
    "within": N_("within the promise"),
    "over": N_("over the promise"),
    "ttr": N_("Time to resolve"),
    "no_cases": N_("no detractor cases in this window"),
    "promises": N_("Promises kept on time"),
    "promises_detail": N_("{kept} of {due} due, {overdue} overdue"),
    "none_yet": N_("no answers yet"),
    "by": N_("By {what}"),
    "role": N_("stakeholder role"),
    "account_dim": N_("account"),
    "segment": N_("segment"),
    "language": N_("language"),
    "touchpoint": N_("touchpoint"),
    "counts": N_("promoters / passives / detractors"),
    "responses": N_("Responses"),
    "change": N_("Change"),
    "too_small": N_("too few to trust"),
    "small_note": N_("Groups with fewer than {n} responses are too small to trust."),
    "all": N_("Everyone"),
    "not_set": N_("(not set)"),
    "charts": N_("Charts"),
    "accounts": N_("Accounts"),
    "whole_account": N_("Whole account"),
    "silent_roles": N_("Invited, nobody answered"),
    "unheard_roles": N_("Nobody invited or answering as"),
    "silent": N_("Invited, never answered"),
    "invited_on": N_("invited {date}"),
    "status_sent": N_("no reply yet"),
    "status_started": N_("started, did not finish"),
    "status_expired": N_("expired after the reminders"),
    "status_cancelled": N_("cancelled"),
    "open_cases": N_("Open cases"),
    "waiting": N_("waiting {age}"),
    "promises_due": N_("Promises not yet kept"),
    "overdue": N_("overdue"),
    "due": N_("due {date}"),
    "nothing_open": N_("No open cases or promises."),
}


def _word(key: str, lang: str, **params: object) -> str:
    return translate(lang, WORDS[key]).format(**params)


@dataclass(frozen=True)
class Card:
    """One overview figure: a label, the big value, the line under it, a mood for colour."""

    label: str
    value: str
    detail: str
    mood: str = ""  # good, bad or "" (neutral)
    change: str = ""
    change_mood: str = ""


class _Page:
    """Formatting in the reader's language, shared by the template and the cards."""

    def __init__(self, lang: str, flow: Flow) -> None:
        self.lang = lang if lang in LANGUAGES else "en"
        self.flow = flow
        self.rtl = rtl.is_rtl(self.lang)
        self.t = Translator(self.lang)

    @property
    def sep(self) -> str:
        # A middle dot reads as the Persian zero (۰): ar/fa separate with a comma.
        return "، " if self.rtl else " · "

    def w(self, key: str, **params: object) -> str:
        return _word(key, self.lang, **params)

    def n(self, value: float | None, decimals: int = 0) -> str:
        return "—" if value is None else rtl.number(value, self.lang, decimals=decimals)

    def pct(self, value: float | None) -> str:
        return "—" if value is None else rtl.percent(value, self.lang, marked=True)

    def signed(self, value: float | None) -> str:
        return "—" if value is None else rtl.signed(value, self.lang, marked=True)

    def day(self, value: date | datetime | None) -> str:
        """A day in the reader's calendar: Jalali in Persian ("۲۱ آذر ۱۴۰۵"), as the
        respondents' own messages show it; Gregorian with local digits otherwise."""
        if value is None:
            return ""
        day = value.date() if isinstance(value, datetime) else value
        if self.lang == "fa":
            return reader_date(day, "fa")
        return rtl.digits(format_date(day, "d MMM y", locale=self.lang), self.lang)

    def when(self, value: datetime) -> str:
        return rtl.digits(f"{self.day(value)} {value:%H:%M}", self.lang)

    def minutes(self, seconds: float | None) -> str:
        if seconds is None:
            return "—"
        whole = round(seconds)
        return rtl.digits(f"{whole // 60}:{whole % 60:02d}", self.lang)

    def hours(self, hours: float | None) -> str:
        if hours is None:
            return "—"
        value, n = rounded_hours(hours)
        return self.t.ngettext("{h} hour", "{h} hours", n,
                               h=self.n(value, 0 if isinstance(value, int) else 1))

    def age(self, seconds: float) -> str:
        days = int(seconds // 86400)
        if days >= 1:
            return self.t.ngettext("{n} day", "{n} days", days)
        return self.hours(seconds / 3600)

    def reminders(self, n: int) -> str:
        return self.t.ngettext("{n} reminder", "{n} reminders", n)

    def invited_answered(self, done: int, invited: int) -> str:
        return self.t.ngettext("{done} of {n} invited answered",
                               "{done} of {n} invited answered", invited, done=done)

    def arrow(self, delta: float | None, *, lower_is_better: bool = False) -> tuple[str, str]:
        """("▲ +5", "good") for a change; CES is better when it goes down."""
        if delta is None:
            return "", ""
        if round(delta, 1) == 0:
            return "= " + self.n(0), ""
        up = delta > 0
        good = up != lower_is_better
        decimals = 1 if lower_is_better else 0
        return (("▲ " if up else "▼ ") + rtl.signed(delta, self.lang, decimals=decimals,
                                                   marked=True),
                "good" if good else "bad")

    def group_name(self, report: Report, key: str) -> str:
        if key == NO_VALUE:
            return self.w("not_set")
        if report.by == "role":
            question = role_question(self.flow)
            if question is not None:
                return value_label(self.flow, question.id, key, self.lang)
        if report.by == "language":
            try:
                return Locale(self.lang).languages.get(key, key)
            except ValueError:
                return key
        return key

    def role(self, key: str | None) -> str:
        if key is None or key == NO_VALUE:
            return self.w("not_set")
        question = role_question(self.flow)
        if question is None:
            return key
        return value_label(self.flow, question.id, key, self.lang)

    def status(self, status: str) -> str:
        key = f"status_{status}"
        return self.w(key) if key in WORDS else status


def _cards(report: Report, page: _Page) -> list[Card]:
    overall, funnel, res = report.overall, report.funnel, report.resolution
    cards: list[Card] = []
    if overall.nps is not None:
        nps = overall.nps
        text, mood = page.arrow(overall.change.get("nps"))
        cards.append(Card(
            "NPS", page.signed(nps.score),
            page.w("nps_detail", p=page.n(nps.promoters), pa=page.n(nps.passives),
                   d=page.n(nps.detractors), n=page.n(nps.n)),
            "" if nps.score is None else "good" if nps.score > 0 else "bad" if nps.score < 0
            else "", text, mood))
    if overall.csat is not None:
        csat = overall.csat
        text, mood = page.arrow(overall.change.get("csat"))
        cards.append(Card("CSAT", page.pct(csat.share),
                          page.w("csat_detail", hits=page.n(csat.hits), n=page.n(csat.n)),
                          change=text, change_mood=mood))
    if overall.ces is not None:
        ces = overall.ces
        text, mood = page.arrow(overall.change.get("ces"), lower_is_better=True)
        cards.append(Card("CES", page.n(ces.mean, 1),
                          page.w("ces_detail", share=page.pct(ces.share_low_effort),
                                 n=page.n(ces.n)), change=text, change_mood=mood))
    detail = (page.t.ngettext("{done} of {n} invited completed",
                              "{done} of {n} invited completed", funnel.invited,
                              done=funnel.responded)
              if funnel.invited else page.w("no_invitations"))
    if funnel.partial_rate is not None:
        detail += "؛ " if page.rtl else "; "
        detail += page.w("partial", share=page.pct(funnel.partial_rate))
    cards.append(Card(page.w("response_rate"), page.pct(funnel.response_rate), detail))
    median = funnel.median_seconds
    detail = page.w("completion_detail", p90=page.minutes(funnel.p90_seconds),
                    promise=page.minutes(PROMISE_SECONDS))
    mood = ""
    # too few completions, or too fast to be people reading: neither good nor bad
    if median is not None and funnel.time_trusted:
        mood = "good" if median <= PROMISE_SECONDS else "bad"
        detail = page.w("within" if mood == "good" else "over") + page.sep + detail
    cards.append(Card(page.w("completion"), page.minutes(median), detail, mood))
    ttr = (page.t.ngettext("median; 90% within {p90}. {open} of {n} case open",
                           "median; 90% within {p90}. {open} of {n} cases open", res.cases,
                           p90=page.hours(res.p90_hours), open=res.open_cases)
           if res.cases else page.w("no_cases"))
    cards.append(Card(page.w("ttr"), page.hours(res.median_hours), ttr))
    if res.promises:
        cards.append(Card(page.w("promises"), page.pct(res.kept_share),
                          page.w("promises_detail", kept=page.n(res.kept_on_time),
                                 due=page.n(res.due), overdue=page.n(res.overdue)),
                          "bad" if res.overdue else ""))
    return cards


def _window(report: Report, page: _Page) -> str:
    since, until = page.day(report.since), page.day(report.until)
    if report.since and report.until:
        return page.w("window", since=since, until=until)
    if report.since:
        return page.w("since", since=since)
    if report.until:
        return page.w("until", until=until)
    return page.w("all_time")


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _environment() -> Environment:
    # autoescape=True for every template: flow texts, comments and names are user text.
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    # `|person`: what people typed or a CRM holds, on one line without bidi overrides (a
    # <bdi> isolates the override but still shows the text reversed).
    env.filters["person"] = lambda value: staff_line(str(value))
    return env


def render_html(
    report: Report,
    *,
    flow: Flow,
    lang: str = "en",
    accounts: Sequence[AccountView] = (),
    charts: Sequence[Chart] | None = None,
) -> str:
    """The report as one HTML document (a string); `charts` default to render_charts'."""
    page = _Page(lang, flow)
    drawn = list(charts) if charts is not None else render_charts(report, flow=flow,
                                                                   lang=page.lang)
    groups: list[tuple[str, GroupRow]] = [(page.group_name(report, g.key), g)
                                          for g in report.groups]
    context: dict[str, Any] = {
        "page": page,
        "lang": page.lang,
        "dir": "rtl" if page.rtl else "ltr",
        "title": flow_text(by_code(flow.title), flow, page.lang, report.title),
        "report": report,
        "window": _window(report, page),
        "generated": page.w("generated", when=page.when(report.generated_at)),
        "compared": page.w("compared", since=page.day(report.previous[0]),
                           until=page.day(report.previous[1])) if report.previous else "",
        "cards": _cards(report, page),
        "by": page.w("by", what=page.w("account_dim" if report.by == "account"
                                         else report.by)) if report.by else "",
        "groups": groups,
        "small": SMALL_GROUP,
        "charts": [(c.title, _data_uri(c.png)) for c in drawn],
        "accounts": sorted(accounts, key=lambda v: v.attention),
        "no_value": NO_VALUE,
    }
    return _environment().get_template("report.html.j2").render(context)


def write_html(
    report: Report,
    path: Path,
    *,
    flow: Flow,
    lang: str = "en",
    accounts: Sequence[AccountView] = (),
    charts: Sequence[Chart] | None = None,
) -> Path:
    """Write the report to `path` (folders created) as one self-contained HTML file;
    `charts` default to render_charts'."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, flow=flow, lang=lang, accounts=accounts,
                                charts=charts),
                    encoding="utf-8")
    return path
