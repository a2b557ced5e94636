"""Report charts as PNG: the NPS trend, score and answer distributions, and drop-off.

Drawn with matplotlib's Agg canvas on `Figure` objects (no pyplot, no display, no global
figure state), so charts can be drawn from a CLI, the bot or a test. Every text is in the
report's language: question texts and option labels come from the flow, the chart's own
words from `WORDS`; Arabic and Persian go through `rtl.for_matplotlib` and numbers are
written in the reader's digits.

Right-to-left charts mirror the horizontal axis (first period, lowest score and bar origin on
the right) and put the value axis on the right, as the bot's own 0–10 keyboards do.

Output is deterministic — fixed size and dpi, the bundled DejaVu Sans (it has the Arabic and
Persian letters), no timestamp or software name in the PNG — so the same report gives the
same bytes.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import jdatetime
import matplotlib as mpl
from babel.dates import format_date
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import RcKeyType

from bot.flow.model import (
    OPTION_TYPES,
    Flow,
    Question,
    ScaleLabels,
    by_code,
)
from bot.flow.recap import recap
from bot.followups.dates import JALALI_MONTHS
from bot.i18n import N_, Translator, translate
from bot.reports import rtl
from bot.reports.metrics import SMALL_GROUP, Distribution, Funnel, PeriodPoint, Report

DPI = 100
WIDE = (9.0, 5.6)  # inches: 900 × 560 px, readable in a browser and in Telegram
PROMISE_SECONDS = 240  # the flows promise under four minutes (seed 001)

GREEN, GREY, RED, INK, LINE = "#2e7d32", "#b8b8b8", "#c62828", "#222222", "#1f3b73"
BAR = "#4a6fa5"

# The charts' own words. Question and option texts come from the flow; these are the few
# the charts add. {placeholders} are filled with numbers already in the reader's digits.
WORDS: dict[str, str] = {  # the report's own words; translations in locales/
    "nps_trend": N_("NPS trend"),
    "csat_trend": N_("CSAT trend"),
    "week": N_("per week"),
    "month": N_("per month"),
    "promoters": N_("promoters"),
    "passives": N_("passives"),
    "detractors": N_("detractors"),
    "satisfied": N_("satisfied"),
    "not_satisfied": N_("not satisfied"),
    "low_effort": N_("low effort"),
    "high_effort": N_("high effort"),
    "share": N_("share of answers"),
    "answers": N_("answers: {n}"),
    "too_few": N_("hatched: fewer than {n} answers, too few to trust"),
    "no_answers": N_("No answers in this period"),
    "multi_note": N_("several picks allowed: shares are of the people who answered"),
    "dropoff": N_("Where people stop"),
    "dropoff_axis": N_("unfinished surveys waiting at this question"),
    "start": N_("before the first question"),
    "completed": N_("completed {done} of {started} started"),
    "median": N_("median time {time} (promise: under {promise})"),
    "yes": N_("yes"),
    "no": N_("no"),
    "none": N_("no answer"),
}


def word(key: str, lang: str, **params: object) -> str:
    """One of the report's own words in `lang` (English when missing), placeholders filled."""
    return translate(lang, WORDS[key]).format(**params)


@dataclass(frozen=True)
class Chart:
    """One rendered chart: a file stem, its title in the report's language, the PNG bytes."""

    name: str
    title: str
    png: bytes


# --- flow texts -------------------------------------------------------------------------


def flow_text(texts: dict[str, str] | None, flow: Flow, lang: str, fallback: str = "") -> str:
    """A flow text in `lang`, else in the flow's default language, else `fallback`."""
    if not texts:
        return fallback
    return texts.get(lang) or texts.get(flow.default_language) or fallback


def question_text(flow: Flow, question_id: str, lang: str) -> str:
    try:
        question = flow.question(question_id)
    except KeyError:  # an answer to a question a newer flow version dropped
        return question_id
    return flow_text(by_code(question.text), flow, lang, question_id)


_NUMERAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def question_recap(flow: Flow, question_id: str, lang: str) -> str:
    """The question in a few words (its `recap`, else bot/flow/recap.py's fallback): for
    labels that name a question rather than ask it."""
    try:
        question = flow.question(question_id)
    except KeyError:
        return question_id
    return recap(question, Translator(lang), flow.default_language)


def value_label(flow: Flow, question_id: str, value: str, lang: str) -> str:
    """What an answer value is called: the option's label, yes/no, or the number."""
    if value in ("yes", "true"):
        return word("yes", lang)
    if value in ("no", "false"):
        return word("no", lang)
    try:
        question: Question | None = flow.question(question_id)
    except KeyError:
        question = None
    if isinstance(question, OPTION_TYPES):
        for option in question.options:
            if option.id == value:
                return flow_text(by_code(option.label), flow, lang, value)
    if _NUMERAL.fullmatch(value):  # a number answer such as "2.5"
        return rtl.numeral(value, lang)
    return rtl.digits(value, lang)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(" ".join(text.split()), width)) or text


# --- drawing helpers ----------------------------------------------------------------------


@contextmanager
def _style(lang: str) -> Iterator[None]:
    settings: dict[RcKeyType, object] = {
        "font.family": ["DejaVu Sans"],
        "font.size": 10,
        "axes.unicode_minus": True,
        "axes.spines.top": False,
        "svg.hashsalt": "sada",
        # Staff texts may contain "$": never read them as math.
        "text.parse_math": False,
    }
    if "text.language" in mpl.rcParams:  # matplotlib ≥ 3.11: language-specific glyphs
        settings["text.language"] = lang
    with mpl.rc_context(settings):
        yield


def _t(text: str) -> str:
    return rtl.for_matplotlib(rtl.clean(text))


def _figure(size: tuple[float, float] = WIDE) -> Figure:
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    # a margin, so the outermost label (on the right in ar/fa) does not touch the edge
    figure.get_layout_engine().set(w_pad=0.12, h_pad=0.08)  # type: ignore[call-arg, union-attr]
    FigureCanvasAgg(figure)
    return figure


def _sep(lang: str) -> str:
    # A middle dot looks like the Persian zero (۰): ar/fa separate clauses with a comma.
    return "، " if rtl.is_rtl(lang) else "  ·  "


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # metadata Software=None: no matplotlib version in the file, so bytes stay comparable.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _title(figure: Figure, title: str, subtitle: str, lang: str) -> None:
    side = 0.98 if rtl.is_rtl(lang) else 0.02
    align = "right" if rtl.is_rtl(lang) else "left"
    text = title if not subtitle else f"{title}\n{subtitle}"
    figure.suptitle(_t(text), x=side, ha=align, fontsize=12, color=INK)


def _mirror(ax: Axes, lang: str, *, invert: bool = True) -> None:
    """Right-to-left: the horizontal axis runs from the right, the vertical one (values or
    labels) sits on the right."""
    if not rtl.is_rtl(lang):
        return
    if invert:
        ax.invert_xaxis()
    ax.yaxis.tick_right()
    ax.yaxis.set_label_position("right")
    ax.spines["left"].set_visible(False)
    ax.spines["right"].set_visible(True)


def _ticks(
    ax: Axes, axis: str, lang: str, *, fmt: str = "{:g}", integer: bool = False
) -> None:
    """Tick labels in the reader's digits; `integer`: ticks on whole numbers only (counts)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    # U+2212 minus, as in the labels (a hyphen is shorter and breaks like a dash); ٫ in ar/fa
    target.set_major_formatter(
        lambda v, _pos: rtl.numeral(fmt.format(v).replace("-", "\u2212"), lang))
    locator = target.get_major_locator()
    # the default AutoLocator is a MaxNLocator; the base Locator would ignore `integer`
    if integer and isinstance(locator, MaxNLocator):
        locator.set_params(integer=True)


def _empty(figure: Figure, lang: str) -> None:
    figure.text(0.5, 0.5, _t(word("no_answers", lang)), ha="center", va="center",
                color="#666666", fontsize=12)


def _minutes(seconds: float, lang: str) -> str:
    whole = round(seconds)
    return rtl.digits(f"{whole // 60}:{whole % 60:02d}", lang)


# --- the NPS (or CSAT) trend --------------------------------------------------------------


def period_label(start: date, period: str, lang: str) -> str:
    """"Mar 2026" for a month, "9 Mar" for the week starting then, in the reader's words.

    Persian readers get the Jalali calendar, as everywhere else: a week by its first day
    ("۱۸ اسفند"), a (Gregorian) month by its first day and year ("۱۰ اسفند ۱۴۰۴"), since it
    straddles two Jalali months and a Jalali month name alone would misstate it."""
    if lang == "fa":
        jalali = jdatetime.date.fromgregorian(date=start)
        text = f"{jalali.day} {JALALI_MONTHS[jalali.month - 1]}"
        return rtl.digits(text + (f" {jalali.year}" if period == "month" else ""), lang)
    pattern = "MMM y" if period == "month" else "d MMM"
    return rtl.digits(format_date(start, pattern, locale=lang), lang)


def _trend_parts(
    points: Sequence[PeriodPoint], lang: str
) -> tuple[str, list[tuple[str, str, list[float]]], list[float], list[int]] | None:
    """(title key, stacked (label, colour, shares) bottom-up, line values, counts) per
    period, for NPS when the flow has it, else for CSAT; None when it has neither."""
    if any(p.nps is not None for p in points):
        nps = [p.nps for p in points]
        shares = [
            (f"{word('detractors', lang)} ({rtl.digits('0–6', lang)})", RED,
             [r.detractor_share or 0.0 if r else 0.0 for r in nps]),
            (f"{word('passives', lang)} ({rtl.digits('7–8', lang)})", GREY,
             [r.passive_share or 0.0 if r else 0.0 for r in nps]),
            (f"{word('promoters', lang)} ({rtl.digits('9–10', lang)})", GREEN,
             [r.promoter_share or 0.0 if r else 0.0 for r in nps]),
        ]
        line = [r.score if r and r.score is not None else math.nan for r in nps]
        return "nps_trend", shares, line, [r.n if r else 0 for r in nps]
    if any(p.csat is not None for p in points):
        csat = [p.csat for p in points]
        satisfied = [r.share or 0.0 if r else 0.0 for r in csat]
        rest = [100.0 - s if r and r.n else 0.0 for s, r in zip(satisfied, csat, strict=True)]
        shares = [
            (f"{word('not_satisfied', lang)} ({rtl.digits('1–3', lang)})", RED, rest),
            (f"{word('satisfied', lang)} ({rtl.digits('4–5', lang)})", GREEN, satisfied),
        ]
        line = [r.share if r and r.share is not None else math.nan for r in csat]
        return "csat_trend", shares, line, [r.n if r else 0 for r in csat]
    return None


def trend_chart(report: Report, *, flow: Flow, lang: str = "en") -> Chart | None:
    """Per period: the score as a line (top) and promoters/passives/detractors stacked
    (bottom, % of answers), with the count above each bar; periods with fewer than
    SMALL_GROUP answers are hatched. None when the flow has no NPS or CSAT question."""
    parts = _trend_parts(report.trend, lang)
    if parts is None:
        return None
    key, stacks, line, counts = parts
    title = word(key, lang)
    with _style(lang):
        figure = _figure()
        _title(figure, title, word(report.period, lang), lang)
        if not report.trend or not any(counts):
            _empty(figure, lang)
            return Chart("trend", title, _png(figure))
        top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[2, 3])
        xs = list(range(len(report.trend)))
        small = [0 < n < SMALL_GROUP for n in counts]
        # the line: NPS runs −100…100, CSAT 0…100
        low = -100 if key == "nps_trend" else 0
        top.set_ylim(low - 8, 108)
        top.axhline(0, color="#999999", linewidth=0.8)
        top.plot(xs, line, color=LINE, marker="o", linewidth=2)
        hollow = [x for x in xs if small[x] and not math.isnan(line[x])]
        top.plot(hollow, [line[x] for x in hollow], linestyle="none", marker="o",
                 markerfacecolor="white", markeredgecolor=LINE)  # too few to trust
        for x, value, is_small in zip(xs, line, small, strict=True):
            if not math.isnan(value):
                mark = rtl.signed(value, lang) if key == "nps_trend" else rtl.percent(value, lang)
                top.annotate(_t(mark), (x, value), textcoords="offset points", xytext=(0, 7),
                             ha="center", fontsize=9, color=LINE, alpha=0.55 if is_small else 1)
        top.set_ylabel("NPS" if key == "nps_trend" else "CSAT %")
        _ticks(top, "y", lang)
        top.grid(axis="y", alpha=0.3)
        # the stacked shares
        base = [0.0] * len(xs)
        handles = []
        trusted = [x for x in xs if not small[x]]
        doubtful = [x for x in xs if small[x]]
        for label, colour, values in stacks:
            bottom.bar(trusted, [values[x] for x in trusted], bottom=[base[x] for x in trusted],
                       color=colour, width=0.7, edgecolor="white")
            # too few answers to trust: paler and hatched, so nobody reads them as a trend
            bottom.bar(doubtful, [values[x] for x in doubtful],
                       bottom=[base[x] for x in doubtful], color=colour, width=0.7,
                       alpha=0.45, hatch="///", edgecolor="white")
            base = [b + v for b, v in zip(base, values, strict=True)]
            handles.append(Patch(color=colour, label=_t(label)))
        for x, n in zip(xs, counts, strict=True):
            bottom.text(x, 101.5, rtl.digits(str(n), lang), ha="center", va="bottom",
                        fontsize=8, color="#555555")
        bottom.set_ylim(0, 112)
        bottom.set_ylabel(_t(f"{word('share', lang)} ({rtl.percent_sign(lang)})"))
        _ticks(bottom, "y", lang)
        # a label on every period up to 16 of them, then on every 2nd, 3rd … one
        step = max(1, math.ceil(len(xs) / 16))
        shown = xs[::step]
        labels = [period_label(report.trend[x].start, report.period, lang) for x in shown]
        bottom.set_xticks(shown, [_t(label) for label in labels],
                          rotation=45 if len(shown) > 8 else 0,
                          fontsize=8 if len(shown) > 8 else 9)
        legend = list(reversed(handles))  # top of the stack first, as it is drawn
        if any(small):
            legend.append(Patch(facecolor="white", edgecolor=GREY, hatch="///",
                                label=_t(word("too_few", lang,
                                              n=rtl.digits(str(SMALL_GROUP), lang)))))
        if rtl.is_rtl(lang):  # read from the right: first entry right, swatch after words
            legend.reverse()
        bottom.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.14),
                      ncols=min(len(legend), 4), frameon=False, fontsize=8,
                      markerfirst=not rtl.is_rtl(lang))
        _mirror(top, lang)  # the panels share their x axis: this mirrors both
        _mirror(bottom, lang, invert=False)
        return Chart("trend", title, _png(figure))


# --- distributions --------------------------------------------------------------------------


def _score_colours(kind: str, points: Sequence[int]) -> list[str]:
    if kind == "nps":
        return [GREEN if p >= 9 else GREY if p >= 7 else RED for p in points]
    if kind == "csat":
        return [GREEN if p >= 4 else GREY if p == 3 else RED for p in points]
    if kind == "ces":  # 1 very easy … 7 very difficult
        return [GREEN if p <= 3 else GREY if p == 4 else RED for p in points]
    return [BAR] * len(points)


def _ends(ax: Axes, labels: ScaleLabels | None, low: int, high: int, flow: Flow,
          lang: str) -> None:
    """The flow's words for the two ends of the scale, under the end columns."""
    if labels is None:
        return
    mirrored = rtl.is_rtl(lang)
    for value, texts, outward in ((low, labels.min, "left"), (high, labels.max, "right")):
        if not texts:
            continue
        # Text runs from the end column towards the middle; the low end is on the right in
        # ar/fa, so there everything swaps sides.
        side = {"left": "right", "right": "left"}[outward] if mirrored else outward
        ha = "left" if side == "left" else "right"
        ax.annotate(_t(flow_text(by_code(texts), flow, lang)), xy=(value, 0),
                    xycoords=("data", "axes fraction"), xytext=(0, -26),
                    textcoords="offset points", ha=ha, va="top", fontsize=9,
                    color="#444444")


def distribution_chart(dist: Distribution, *, flow: Flow, lang: str = "en") -> Chart:
    """How the answers to one question spread: columns per scale point for scores
    (coloured by promoter/passive/detractor, satisfied, effort), bars per option otherwise."""
    title = _wrap(question_text(flow, dist.question_id, lang), 70)
    subtitle = word("answers", lang, n=rtl.digits(str(dist.n), lang))
    if dist.type == "multi":
        subtitle += _sep(lang) + word("multi_note", lang)
    counts = [n for _, n in dist.counts]
    with _style(lang):
        figure = _figure()
        _title(figure, title, subtitle, lang)
        if dist.n == 0 or not counts:
            _empty(figure, lang)
            return Chart(f"distribution-{dist.question_id}", title, _png(figure))
        ax = figure.subplots()
        scored = dist.type in ("nps", "csat", "ces", "scale")
        if scored:
            _score_columns(ax, dist, flow, lang)
        else:
            _option_bars(ax, dist, flow, lang)
        return Chart(f"distribution-{dist.question_id}", title, _png(figure))


def _score_columns(ax: Axes, dist: Distribution, flow: Flow, lang: str) -> None:
    points = [int(v) for v, _ in dist.counts]
    counts = [n for _, n in dist.counts]
    ax.bar(points, counts, color=_score_colours(dist.type, points), width=0.75)
    top = max(counts)
    for p, n in zip(points, counts, strict=True):
        share = 100.0 * n / dist.n if dist.n else 0.0
        ax.text(p, n + top * 0.02, _t(f"{rtl.digits(str(n), lang)}\n{rtl.percent(share, lang)}"),
                ha="center", va="bottom", fontsize=8, color="#444444")
    ax.set_xticks(points, [rtl.digits(str(p), lang) for p in points])
    ax.set_ylim(0, top * 1.25 + 1)
    ax.set_ylabel(_t(word("answers", lang, n="").rstrip(": ")))
    _ticks(ax, "y", lang, fmt="{:.0f}", integer=True)
    try:
        question = flow.question(dist.question_id)
    except KeyError:  # a question of an older version of the flow
        question = None
    labels = getattr(question, "labels", None)
    if labels is not None:
        _ends(ax, labels, points[0], points[-1], flow, lang)
        ax.set_xlabel(" ", labelpad=14)  # room for the end words
    ax.grid(axis="y", alpha=0.3)
    _mirror(ax, lang)


def _option_bars(ax: Axes, dist: Distribution, flow: Flow, lang: str) -> None:
    labels = [_short(value_label(flow, dist.question_id, v, lang), 38) for v, _ in dist.counts]
    counts = [n for _, n in dist.counts]
    ys = list(range(len(counts)))
    ax.barh(ys, counts, color=BAR, height=0.65)
    top = max(counts) or 1
    for y, n in zip(ys, counts, strict=True):
        share = 100.0 * n / dist.n if dist.n else 0.0
        text = f"{rtl.digits(str(n), lang)}  ({rtl.percent(share, lang)})"
        ax.text(n + top * 0.015, y, _t(text), va="center",
                ha="right" if rtl.is_rtl(lang) else "left", fontsize=9, color="#444444")
    ax.set_yticks(ys, [_t(label) for label in labels])
    ax.invert_yaxis()  # the flow's first option on top
    ax.set_xlim(0, top * 1.3)
    _ticks(ax, "x", lang, fmt="{:.0f}", integer=True)
    ax.grid(axis="x", alpha=0.3)
    _mirror(ax, lang)  # ar/fa: bars grow leftwards from labels on the right


# --- drop-off -------------------------------------------------------------------------------


def _dropoff_rows(funnel: Funnel, flow: Flow) -> list[tuple[str, int]]:
    """Every question in flow order (zeros included), after "(start)"; questions the flow
    no longer has (answers to an older version) at the end."""
    counts = dict(funnel.dropoff)
    rows = [("(start)", counts.pop("(start)", 0))]
    for question in flow.questions:
        rows.append((question.id, counts.pop(question.id, 0)))
    rows.extend(sorted(counts.items()))
    return rows


def dropoff_chart(report: Report, *, flow: Flow, lang: str = "en") -> Chart:
    """Unfinished surveys by the question they stopped at, in flow order, with the
    completion count and the median time against the four-minute promise."""
    funnel = report.funnel
    title = word("dropoff", lang)
    digits = {"done": rtl.digits(str(funnel.completed), lang),
              "started": rtl.digits(str(funnel.started), lang)}
    subtitle = word("completed", lang, **digits)
    if funnel.median_seconds is not None:
        subtitle += _sep(lang) + word("median", lang, time=_minutes(funnel.median_seconds, lang),
                                   promise=_minutes(PROMISE_SECONDS, lang))
    rows = _dropoff_rows(funnel, flow)
    with _style(lang):
        figure = _figure((9.0, max(3.2, 1.6 + 0.42 * len(rows))))
        _title(figure, title, subtitle, lang)
        if funnel.started == 0:
            _empty(figure, lang)
            return Chart("dropoff", title, _png(figure))
        ax = figure.subplots()
        labels = [word("start", lang) if qid == "(start)"
                  else _short(question_recap(flow, qid, lang), 44) for qid, _ in rows]
        counts = [n for _, n in rows]
        ys = list(range(len(rows)))
        colours = [RED if n and n == max(counts) else BAR for n in counts]
        ax.barh(ys, counts, color=colours, height=0.6)
        top = max(counts) or 1
        for y, n in zip(ys, counts, strict=True):
            share = 100.0 * n / funnel.started
            shown = f"{rtl.digits(str(n), lang)}  ({rtl.percent(share, lang)})" if n else \
                rtl.digits("0", lang)
            ax.text(n + top * 0.015, y, _t(shown), va="center", fontsize=9,
                    ha="right" if rtl.is_rtl(lang) else "left",
                    color=INK if n else "#999999")
        ax.set_yticks(ys, [_t(label) for label in labels], fontsize=9)
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.3)
        ax.set_xlabel(_t(word("dropoff_axis", lang)), fontsize=9)
        _ticks(ax, "x", lang, fmt="{:.0f}", integer=True)
        ax.grid(axis="x", alpha=0.3)
        _mirror(ax, lang)
        return Chart("dropoff", title, _png(figure))


# --- all of them ----------------------------------------------------------------------------


def render_charts(report: Report, *, flow: Flow, lang: str = "en") -> list[Chart]:
    """The report's charts: trend (when the flow scores NPS or CSAT), one distribution per
    question that has one, drop-off."""
    charts: list[Chart] = []
    trend = trend_chart(report, flow=flow, lang=lang)
    if trend is not None:
        charts.append(trend)
    charts.extend(distribution_chart(d, flow=flow, lang=lang) for d in report.distributions)
    charts.append(dropoff_chart(report, flow=flow, lang=lang))
    return charts


def write_charts(report: Report, folder: Path, *, flow: Flow, lang: str = "en",
                 charts: Sequence[Chart] | None = None) -> list[Path]:
    """Write every chart as `<flow id>-<chart>.png` into `folder` (created); the paths.
    `charts` default to render_charts'."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    drawn = charts if charts is not None else render_charts(report, flow=flow, lang=lang)
    for chart in drawn:
        path = folder / f"{report.flow_id}-{chart.name}.png"
        path.write_bytes(chart.png)
        paths.append(path)
    return paths
