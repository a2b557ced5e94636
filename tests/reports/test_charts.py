"""Charts: right-to-left text drawn shaped and in reading order, the reader's digits and
words, deterministic PNGs, and every chart drawable from empty, tiny and skewed reports."""

from __future__ import annotations

import io
import unicodedata
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from matplotlib import font_manager, ft2font
from matplotlib._text_helpers import layout
from matplotlib.text import Text
from PIL import Image

from bot.flow.loader import load_flow
from bot.flow.model import Flow
from bot.reports import charts, rtl
from bot.reports.metrics import (
    Distribution,
    Funnel,
    GroupRow,
    MeanResult,
    NpsResult,
    PeriodPoint,
    Report,
    Resolution,
    ShareResult,
)

ROOT = Path(__file__).resolve().parents[2]
B2B = load_flow(ROOT / "flows" / "b2b_supplier.yaml").flow
SUPPORT = load_flow(ROOT / "flows" / "post_support.yaml").flow
PNG = b"\x89PNG\r\n\x1a\n"

# --- hand-made reports ----------------------------------------------------------------------


def _row(key: str, nps: NpsResult | None, csat: ShareResult | None = None) -> GroupRow:
    n = nps.n if nps else csat.n if csat else 0
    return GroupRow(key, nps, csat, None, n, n < 5, {})


def report(
    *,
    trend: list[PeriodPoint] | None = None,
    distributions: list[Distribution] | None = None,
    funnel: Funnel | None = None,
    flow: Flow = B2B,
    period: str = "month",
) -> Report:
    overall = NpsResult.of(5, 3, 2)
    return Report(
        flow_id=flow.id, title="t", since=date(2026, 1, 1), until=date(2026, 3, 31), by=None,
        period=period,  # type: ignore[arg-type]
        account=None, overall=_row("all", overall), groups=[],
        funnel=funnel or Funnel(10, 8, 12, 8, 3, 80.0, 27.3, 151.0, 250.0,
                                [("(start)", 1), ("stakeholder", 0), ("nps", 3)]),
        resolution=Resolution(0, 0, 0, None, None, 0, 0, 0, 0),
        distributions=distributions if distributions is not None else [
            Distribution("nps", "nps", 10, [(str(i), 1 if i in (0, 9, 10) else 0)
                                            for i in range(11)]),
            Distribution("stakeholder", "choice", 4, [("buyer", 3), ("end_user", 1),
                                                      ("decision_maker", 0), ("technical", 0),
                                                      ("finance", 0), ("other", 0)]),
            Distribution("priorities", "multi", 3, [("quality", 2), ("on_time", 3)]),
        ],
        trend=trend if trend is not None else [
            PeriodPoint(date(2026, 1, 1), NpsResult.of(6, 2, 2), None, None, 10),
            PeriodPoint(date(2026, 2, 1), NpsResult.of(0, 0, 0), None, None, 0),  # empty
            PeriodPoint(date(2026, 3, 1), NpsResult.of(0, 0, 1), None, None, 1),  # one answer
        ],
        previous=None, generated_at=datetime(2026, 4, 1, tzinfo=UTC),
    )


class Drawn:
    """Every text string a chart handed to matplotlib, collected just before saving."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.texts: list[str] = []
        save = charts._png

        def spy(figure):  # type: ignore[no-untyped-def]
            figure.canvas.draw()
            self.texts += [t.get_text() for t in figure.findobj(Text) if t.get_text()]
            return save(figure)

        monkeypatch.setattr(charts, "_png", spy)

    def joined(self) -> str:
        return "\n".join(self.texts)


# --- right-to-left text ---------------------------------------------------------------------


def _isolated_base(c: str) -> str:
    # HarfBuzz draws a letter that joins nowhere with its nominal glyph; arabic_reshaper
    # writes it as its "isolated" presentation form. Same letter shape, other code point.
    parts = unicodedata.decomposition(c).split()
    return chr(int(parts[1], 16)) if len(parts) == 2 and parts[0] == "<isolated>" else c


@pytest.mark.parametrize("text", [
    "نقش شما در همکاری با ما چیست؟",  # Persian: پ چ ژ گ ی ک below too
    "گزارش پیگیری ژاله ۱۴۰۵",
    "می‌شود",  # ZWNJ must break the join
    "ما مدى احتمال أن توصوا بنا؟",
    "المشتريات ١٢",
])
def test_rtl_text_is_drawn_shaped_and_right_to_left(text: str) -> None:
    """What ends up in the image: the glyphs matplotlib draws for our label, read left to
    right, are exactly the joined forms in visual order that arabic_reshaper + python-bidi
    give. matplotlib 3.11 shapes with libraqm itself (we pass logical text); an older one
    gets the reshaped string (rtl.for_matplotlib chooses)."""
    font = ft2font.FT2Font(font_manager.findfont("DejaVu Sans"))
    font.set_size(12, 72)
    drawn = sorted((item.x, item.glyph_index) for item in layout(rtl.for_matplotlib(text), font)
                   if item.char not in "\u200c\u200d")
    visual = rtl.shape(text)
    assert rtl.PRESENTATION_FORMS.search(visual)  # joined forms, not bare letters
    expected = [font.get_char_index(ord(_isolated_base(c))) for c in visual
                if c not in "\u200c\u200d"]
    assert [glyph for _, glyph in drawn] == expected
    assert all(glyph != 0 for glyph in expected)  # DejaVu Sans has every letter (no tofu)


def test_shape_gives_presentation_forms_in_visual_order() -> None:
    shaped = rtl.shape("نقش")
    # three letters, joined, drawn left to right: final sheen, medial qaf, initial noon
    assert [unicodedata.name(c) for c in shaped] == [
        "ARABIC LETTER SHEEN FINAL FORM", "ARABIC LETTER QAF MEDIAL FORM",
        "ARABIC LETTER NOON INITIAL FORM"]
    assert rtl.shape("سلام")[-1] == "\ufeb3"  # seen initial rightmost; لا one ligature
    persian = rtl.shape("پیک")
    assert unicodedata.name(persian[0]) == "ARABIC LETTER KEHEH FINAL FORM"
    assert unicodedata.name(persian[-1]) == "ARABIC LETTER PEH INITIAL FORM"
    assert rtl.shape("NPS 42") == "NPS 42"  # no Arabic: untouched


def test_for_matplotlib_follows_the_installed_matplotlib(
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = "نقش شما"
    assert rtl.matplotlib_shapes_text()  # matplotlib 3.11 (pinned) lays out with libraqm
    assert rtl.for_matplotlib(text) == text
    monkeypatch.setattr(rtl, "matplotlib_shapes_text", lambda: False)
    assert rtl.for_matplotlib(text) == rtl.shape(text) != text
    assert rtl.for_matplotlib("CSAT") == "CSAT"


def test_numbers_in_the_readers_digits() -> None:
    assert rtl.percent(42.4, "fa") == "۴۲٪"
    assert rtl.percent(42.4, "ar") == "٤٢٪"
    assert rtl.percent(42.4, "en") == "42%"
    assert rtl.number(3.25, "ar", decimals=1) == "٣٫٢"
    assert rtl.signed(-12, "fa") == "\u2212۱۲"
    assert rtl.signed(5, "en") == "+5"
    assert rtl.signed(0.2, "en") == "0"
    assert charts.period_label(date(2026, 3, 1), "month", "fa") == "۱۰ اسفند ۱۴۰۴"  # Jalali
    assert charts.period_label(date(2026, 3, 9), "week", "ar") == "٩ مارس"
    assert rtl.clean("a\u202eb\u200cc") == "ab\u200cc"  # overrides out, ZWNJ kept


# --- the charts -----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "fa", "ar"])
def test_every_chart_renders_as_a_png(lang: str, tmp_path: Path) -> None:
    paths = charts.write_charts(report(), tmp_path, flow=B2B, lang=lang)
    assert [p.name for p in paths] == [
        "b2b-supplier-trend.png", "b2b-supplier-distribution-nps.png",
        "b2b-supplier-distribution-stakeholder.png", "b2b-supplier-distribution-priorities.png",
        "b2b-supplier-dropoff.png",
    ]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
            assert image.width == 900
            # something was drawn: not a blank canvas
            assert len(set(image.convert("L").get_flattened_data())) > 10


def test_charts_are_deterministic_and_carry_no_metadata() -> None:
    first = charts.render_charts(report(), flow=B2B, lang="fa")
    second = charts.render_charts(report(), flow=B2B, lang="fa")
    assert [c.png for c in first] == [c.png for c in second]
    for chart in first:
        # no tEXt/iTXt/tIME chunks: no software version, no timestamp
        for chunk in (b"tEXt", b"iTXt", b"tIME"):
            assert chunk not in chart.png


def test_persian_chart_uses_flow_texts_and_persian_digits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = Drawn(monkeypatch)
    charts.render_charts(report(), flow=B2B, lang="fa")
    text = drawn.joined()
    assert "نقش شما در همکاری با ما چیست؟" in text  # question text from the flow
    assert "خرید و تدارکات" in text  # option label from the flow
    assert "مروجان" in text and "منتقدان" in text  # the chart's own words
    assert "۱۱ دی ۱۴۰۴" in text and "ژانویه" not in text  # period: Jalali, Persian digits
    assert "پیش از سؤال اول" in text  # drop-off before the first question
    assert "۲:۳۱" in text and "۴:۰۰" in text  # median time against the promise
    assert "۲۵٪" in text  # 3 of 12 started stopped at nps
    assert not any(c in text for c in "0123456789"), "no Latin digits in a Persian chart"
    assert "CSAT" not in text


def test_arabic_chart_words(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = Drawn(monkeypatch)
    charts.render_charts(report(), flow=B2B, lang="ar")
    text = drawn.joined()
    assert "ما دوركم في التعامل معنا؟" in text
    assert "المروّجون" in text and "٩–١٠" in text
    assert "يناير ٢٠٢٦" in text


def test_small_periods_are_marked_and_empty_ones_leave_a_gap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = Drawn(monkeypatch)
    chart = charts.trend_chart(report(), flow=B2B, lang="en")
    assert chart is not None and chart.png.startswith(PNG)
    text = drawn.joined()
    assert "fewer than 5 answers" in text  # March has one answer
    assert "+40" in text  # January: (6 − 2) / 10 promoters minus detractors
    assert "\u2212100" in text  # March: the one answer is a detractor


def test_trend_without_small_periods_has_no_small_legend(
        monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = Drawn(monkeypatch)
    trend = [PeriodPoint(date(2026, 1, 1), NpsResult.of(0, 0, 7), None, None, 7)]  # all detractors
    charts.trend_chart(report(trend=trend), flow=B2B, lang="en")
    assert "fewer than" not in drawn.joined()
    assert "\u2212100" in drawn.joined()


def test_csat_flow_gets_a_csat_trend() -> None:
    trend = [PeriodPoint(date(2026, 1, 1), None, ShareResult.of(4, 3), None, 4)]
    chart = charts.trend_chart(report(trend=trend, flow=SUPPORT), flow=SUPPORT, lang="en")
    assert chart is not None and chart.title == "CSAT trend"
    none = [PeriodPoint(date(2026, 1, 1), None, None, MeanResult.of(0, 0, 0), 0)]
    assert charts.trend_chart(report(trend=none, flow=SUPPORT), flow=SUPPORT) is None


def test_empty_report_still_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = Drawn(monkeypatch)
    empty = report(
        trend=[PeriodPoint(date(2026, 1, 1), NpsResult.of(0, 0, 0), None, None, 0)],
        distributions=[Distribution("nps", "nps", 0, [(str(i), 0) for i in range(11)])],
        funnel=Funnel(0, 0, 0, 0, 0, None, None, None, None, [("(start)", 0)]),
    )
    made = charts.render_charts(empty, flow=B2B, lang="fa")
    assert [c.name for c in made] == ["trend", "distribution-nps", "dropoff"]
    assert all(c.png.startswith(PNG) for c in made)
    assert drawn.joined().count("در این بازه پاسخی ثبت نشده است") == 3


def test_yes_no_and_unknown_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = Drawn(monkeypatch)
    dist = Distribution("resolved", "yesno", 3, [("yes", 2), ("no", 1)])
    charts.distribution_chart(dist, flow=SUPPORT, lang="fa")
    assert "بله" in drawn.texts and "نه" in drawn.texts, drawn.texts
    # an answer to a question a newer flow dropped: its id, not a crash
    old = Distribution("gone", "choice", 1, [("x", 1)])
    assert charts.distribution_chart(old, flow=B2B, lang="en").png.startswith(PNG)
    assert charts.value_label(B2B, "stakeholder", "buyer", "ar") == "المشتريات"
    assert charts.value_label(B2B, "nps", "9", "fa") == "۹"


def test_staff_text_with_dollars_is_not_math(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = Flow.model_validate({
        **B2B.model_dump(mode="json", exclude_none=True),
        "groups": [{"id": "g", "title": {"en": "G", "ar": "G", "fa": "G"}, "questions": [
            {"id": "budget", "type": "choice", "text": {"en": "Budget in $?", "ar": "?",
                                                         "fa": "?"},
             "options": [{"id": "low", "label": {"en": "$5–$10", "ar": "$", "fa": "$"}},
                         {"id": "high", "label": {"en": "over $10", "ar": "$", "fa": "$"}}]},
        ]}],
    })
    drawn = Drawn(monkeypatch)
    dist = Distribution("budget", "choice", 2, [("low", 1), ("high", 1)])
    charts.distribution_chart(dist, flow=flow, lang="en")
    assert "$5–$10" in drawn.joined()


def test_number_answers_and_ticks_use_the_arabic_decimal_separator() -> None:
    # a number answer with decimals (a question a newer flow version dropped: no labels)
    assert charts.value_label(B2B, "gone", "2.5", "fa") == "۲٫۵"
    assert charts.value_label(B2B, "gone", "-2.5", "ar") == "\u2212٢٫٥"
    assert charts.value_label(B2B, "gone", "2.5", "en") == "2.5"
    assert charts.value_label(B2B, "gone", "v2.5", "fa") == "v۲.۵"  # not a number: digits only
    assert rtl.numeral("0.5", "ar") == "٠٫٥"


def test_the_dropoff_chart_names_questions_by_their_recap() -> None:
    flow = B2B.model_copy(deep=True)
    long = "Thinking about the whole year, and all the teams you work with, is there one thing?"
    question = flow.questions[0].model_copy(update={"text": {"en": long},
                                                    "recap": {"en": "One thing?"}})
    group = flow.groups[0].model_copy(update={"questions": [question,
                                                            *flow.groups[0].questions[1:]]})
    flow = flow.model_copy(update={"groups": [group, *flow.groups[1:]]})
    assert charts.question_recap(flow, question.id, "en") == "One thing?"
    assert charts.question_recap(flow, "gone", "en") == "gone"
