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

from bot.flow.model import LANGUAGES, Flow
from bot.reports import rtl
from bot.reports.accounts import AccountView, role_question
from bot.reports.charts import PROMISE_SECONDS, Chart, flow_text, render_charts, value_label
from bot.reports.metrics import NO_VALUE, SMALL_GROUP, GroupRow, Report

TEMPLATES = Path(__file__).resolve().parent / "templates"

# The page's own words; flow texts (title, questions, options) come from the flow.
WORDS: dict[str, dict[str, str]] = {
    "window": {"en": "{since} – {until}", "ar": "من {since} إلى {until}",
               "fa": "از {since} تا {until}"},
    "since": {"en": "since {since}", "ar": "منذ {since}", "fa": "از {since}"},
    "until": {"en": "until {until}", "ar": "حتى {until}", "fa": "تا {until}"},
    "all_time": {"en": "all answers so far", "ar": "كل الإجابات حتى الآن",
                 "fa": "همه پاسخ‌ها تا امروز"},
    "generated": {"en": "generated {when} (UTC)", "ar": "أُعدّ في {when} (UTC)",
                  "fa": "تهیه‌شده در {when} (UTC)"},
    "account": {"en": "Account: {name}", "ar": "الحساب: {name}", "fa": "حساب: {name}"},
    "compared": {"en": "changes compare with {since} – {until}",
                 "ar": "التغيّر مقارنةً بالفترة من {since} إلى {until}",
                 "fa": "تغییرها نسبت به {since} تا {until}"},
    "nps_detail": {"en": "{p} promoters, {pa} passives, {d} detractors of {n}",
                   "ar": "المروّجون {p}، المحايدون {pa}، المنتقدون {d}، من أصل {n}",
                   "fa": "مروجان {p}، بی‌طرف‌ها {pa}، منتقدان {d}، از {n}"},
    "csat_detail": {"en": "{hits} of {n} answered 4 or 5",
                    "ar": "{hits} من أصل {n} أجابوا بـ ٤ أو ٥",
                    "fa": "{hits} از {n} پاسخ ۴ یا ۵"},
    "ces_detail": {"en": "{share} low effort (1–3) of {n}",
                   "ar": "جهد منخفض (١–٣): {share} من أصل {n}",
                   "fa": "کم‌زحمت (۱–۳): {share} از {n}"},
    "response_rate": {"en": "Response rate", "ar": "معدل الاستجابة", "fa": "نرخ پاسخ"},
    "response_detail": {"en": "{done} of {invited} invited completed",
                        "ar": "أكمل الاستبيان {done} من أصل {invited} مدعوّين",
                        "fa": "{done} از {invited} دعوت‌شده تکمیل کردند"},
    "no_invitations": {"en": "no invitations in this window", "ar": "لا دعوات في هذه الفترة",
                       "fa": "در این بازه دعوتی فرستاده نشده"},
    "partial": {"en": "partial: {share}", "ar": "غير مكتملة: {share}", "fa": "ناتمام: {share}"},
    "completion": {"en": "Median time to complete", "ar": "الوقت الوسيط للإكمال",
                   "fa": "زمان میانه تکمیل"},
    "completion_detail": {"en": "9 in 10 finish within {p90}; the promise is under {promise}",
                          "ar": "٩ من كل ١٠ يُكملون خلال {p90}؛ الوعد أقل من {promise}",
                          "fa": "۹ نفر از هر ۱۰ نفر در {p90} تمام می‌کنند؛ "
                                "وعده کمتر از {promise} است"},
    "within": {"en": "within the promise", "ar": "ضمن الوعد", "fa": "در حد وعده"},
    "over": {"en": "over the promise", "ar": "يتجاوز الوعد", "fa": "بیش از وعده"},
    "ttr": {"en": "Time to resolve", "ar": "وقت الحل", "fa": "زمان حل مشکل"},
    "ttr_detail": {"en": "median; 90% within {p90}. {open} of {cases} cases open",
                   "ar": "الوسيط؛ ٩٠٪ خلال {p90}. المفتوحة {open} من أصل {cases} حالات",
                   "fa": "میانه؛ ۹۰٪ در {p90}. {open} پرونده باز از {cases}"},
    "no_cases": {"en": "no detractor cases in this window", "ar": "لا حالات في هذه الفترة",
                 "fa": "در این بازه پرونده‌ای باز نشده"},
    "promises": {"en": "Promises kept on time", "ar": "الوعود المنفّذة في موعدها",
                 "fa": "وعده‌های به‌موقع انجام‌شده"},
    "promises_detail": {"en": "{kept} of {due} due, {overdue} overdue",
                        "ar": "{kept} من أصل {due} مستحقة، والمتأخرة {overdue}",
                        "fa": "{kept} از {due} سررسیده، {overdue} با تأخیر"},
    "hours": {"en": "{h} h", "ar": "{h} ساعة", "fa": "{h} ساعت"},
    "none_yet": {"en": "no answers yet", "ar": "لا إجابات بعد", "fa": "هنوز پاسخی نیست"},
    "by": {"en": "By {what}", "ar": "حسب {what}", "fa": "به تفکیک {what}"},
    "role": {"en": "stakeholder role", "ar": "الدور", "fa": "نقش"},
    "account_dim": {"en": "account", "ar": "الحساب", "fa": "حساب"},
    "segment": {"en": "segment", "ar": "الشريحة", "fa": "بخش"},
    "language": {"en": "language", "ar": "اللغة", "fa": "زبان"},
    "touchpoint": {"en": "touchpoint", "ar": "نقطة التواصل", "fa": "نقطه تماس"},
    "counts": {"en": "promoters / passives / detractors", "ar": "مروّجون / محايدون / منتقدون",
               "fa": "مروجان / بی‌طرف‌ها / منتقدان"},
    "responses": {"en": "Responses", "ar": "الردود", "fa": "پاسخ‌ها"},
    "change": {"en": "Change", "ar": "التغيّر", "fa": "تغییر"},
    "too_small": {"en": "too few to trust", "ar": "قليل لا يُعتمد عليه",
                  "fa": "کم؛ قابل اتکا نیست"},
    "small_note": {"en": "Groups with fewer than {n} responses are too small to trust.",
                   "ar": "المجموعات التي تقل ردودها عن {n} أصغر من أن يُعتمد عليها.",
                   "fa": "گروه‌هایی که کمتر از {n} پاسخ دارند برای نتیجه‌گیری کوچک‌اند."},
    "all": {"en": "Everyone", "ar": "الجميع", "fa": "همه"},
    "not_set": {"en": "(not set)", "ar": "(غير محدد)", "fa": "(نامشخص)"},
    "charts": {"en": "Charts", "ar": "الرسوم البيانية", "fa": "نمودارها"},
    "accounts": {"en": "Accounts", "ar": "الحسابات", "fa": "حساب‌ها"},
    "whole_account": {"en": "Whole account", "ar": "الحساب كله", "fa": "کل حساب"},
    "invited_answered": {"en": "{done} of {invited} invited answered",
                         "ar": "أجاب {done} من أصل {invited} مدعوّين",
                         "fa": "{done} از {invited} دعوت‌شده پاسخ دادند"},
    "silent_roles": {"en": "Invited, nobody answered", "ar": "دُعوا ولم يُجب أحد",
                     "fa": "دعوت شدند، کسی پاسخ نداد"},
    "unheard_roles": {"en": "Nobody invited or answering as", "ar": "لا مدعوّ ولا مجيب بدور",
                      "fa": "نه دعوتی، نه پاسخی از نقش"},
    "silent": {"en": "Invited, never answered", "ar": "دُعوا ولم يُجيبوا",
               "fa": "دعوت شدند ولی پاسخ ندادند"},
    "invited_on": {"en": "invited {date}", "ar": "دُعي في {date}", "fa": "دعوت در {date}"},
    "reminders": {"en": "reminders: {n}", "ar": "التذكيرات: {n}", "fa": "یادآوری: {n}"},
    "status_sent": {"en": "no reply yet", "ar": "لم يرد بعد", "fa": "هنوز پاسخ نداده"},
    "status_started": {"en": "started, did not finish", "ar": "بدأ ولم يُكمل",
                       "fa": "شروع کرد، تمام نکرد"},
    "status_expired": {"en": "expired after the reminders", "ar": "انتهت المهلة بعد التذكيرات",
                       "fa": "پس از یادآوری‌ها منقضی شد"},
    "status_cancelled": {"en": "cancelled", "ar": "أُلغيت", "fa": "لغو شد"},
    "open_cases": {"en": "Open cases", "ar": "الحالات المفتوحة", "fa": "پرونده‌های باز"},
    "waiting": {"en": "waiting {age}", "ar": "بانتظار الحل منذ {age}",
                "fa": "در انتظار از {age} پیش"},
    "days": {"en": "{n} d", "ar": "{n} يوم", "fa": "{n} روز"},
    "promises_due": {"en": "Promises not yet kept", "ar": "وعود لم تُنفّذ بعد",
                     "fa": "وعده‌هایی که هنوز انجام نشده"},
    "overdue": {"en": "overdue", "ar": "متأخر", "fa": "دیرکرد"},
    "due": {"en": "due {date}", "ar": "موعده {date}", "fa": "سررسید {date}"},
    "nothing_open": {"en": "No open cases or promises.", "ar": "لا حالات ولا وعود مفتوحة.",
                     "fa": "پرونده یا وعده بازی نیست."},
}


def _word(key: str, lang: str, **params: object) -> str:
    entry = WORDS[key]
    return entry.get(lang, entry["en"]).format(**params)


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

    @property
    def sep(self) -> str:
        # A middle dot reads as the Persian zero (۰): ar/fa separate with a comma.
        return "، " if self.rtl else " · "

    def w(self, key: str, **params: object) -> str:
        return _word(key, self.lang, **params)

    def n(self, value: float | None, decimals: int = 0) -> str:
        return "—" if value is None else rtl.number(value, self.lang, decimals=decimals)

    def pct(self, value: float | None) -> str:
        return "—" if value is None else rtl.percent(value, self.lang)

    def signed(self, value: float | None) -> str:
        return "—" if value is None else rtl.signed(value, self.lang)

    def day(self, value: date | datetime | None) -> str:
        if value is None:
            return ""
        return rtl.digits(format_date(value, "d MMM y", locale=self.lang), self.lang)

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
        return self.w("hours", h=self.n(hours, 1 if hours < 10 else 0))

    def age(self, seconds: float) -> str:
        days = int(seconds // 86400)
        if days >= 1:
            return self.w("days", n=self.n(days))
        return self.hours(seconds / 3600)

    def arrow(self, delta: float | None, *, lower_is_better: bool = False) -> tuple[str, str]:
        """("▲ +5", "good") for a change; CES is better when it goes down."""
        if delta is None:
            return "", ""
        if round(delta, 1) == 0:
            return "= " + self.n(0), ""
        up = delta > 0
        good = up != lower_is_better
        decimals = 1 if lower_is_better else 0
        return (("▲ " if up else "▼ ") + rtl.signed(delta, self.lang, decimals=decimals),
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
    detail = (page.w("response_detail", done=page.n(funnel.responded),
                     invited=page.n(funnel.invited))
              if funnel.invited else page.w("no_invitations"))
    if funnel.partial_rate is not None:
        detail += "؛ " if page.rtl else "; "
        detail += page.w("partial", share=page.pct(funnel.partial_rate))
    cards.append(Card(page.w("response_rate"), page.pct(funnel.response_rate), detail))
    median = funnel.median_seconds
    detail = page.w("completion_detail", p90=page.minutes(funnel.p90_seconds),
                    promise=page.minutes(PROMISE_SECONDS))
    mood = ""
    if median is not None:
        mood = "good" if median <= PROMISE_SECONDS else "bad"
        detail = page.w("within" if mood == "good" else "over") + page.sep + detail
    cards.append(Card(page.w("completion"), page.minutes(median), detail, mood))
    ttr = (page.w("ttr_detail", p90=page.hours(res.p90_hours), open=page.n(res.open_cases),
                  cases=page.n(res.cases)) if res.cases else page.w("no_cases"))
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
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       keep_trailing_newline=True)


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
        "title": flow_text(dict(flow.title), flow, page.lang, report.title),
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
) -> Path:
    """Write the report to `path` (folders created) as one self-contained HTML file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, flow=flow, lang=lang, accounts=accounts),
                    encoding="utf-8")
    return path
