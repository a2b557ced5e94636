"""The HTML report: one well-formed, self-contained file with the report's numbers, its
charts as real PNGs, right-to-left pages for ar/fa, and every user text escaped."""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from bot.flow.loader import load_flow
from bot.reports.accounts import build_accounts
from bot.reports.html import render_html, write_html
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
    SilentContact,
    build_report,
)
from storage.db import Database
from tests.reports.fixtures import FLOW, NOW, build_fixed

ROOT = Path(__file__).resolve().parents[2]
B2B = load_flow(ROOT / "flows" / "b2b_supplier.yaml").flow
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr"}


class Page(HTMLParser):
    """A strict reading: every element closed in order, every attribute and image kept."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()
        assert self.stack == [], f"unclosed elements: {self.stack}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())

    def images(self) -> list[bytes]:
        found = []
        for tag, attrs in self.tags:
            if tag == "img":
                src = attrs["src"] or ""
                assert src.startswith("data:image/png;base64,"), src[:40]
                found.append(base64.b64decode(src.split(",", 1)[1], validate=True))
        return found


def _report(**changes: object) -> Report:
    nps = NpsResult.of(18, 9, 13)
    overall = GroupRow("all", nps, ShareResult.of(30, 21), MeanResult.of(40, 116.0, 22), 40,
                       False, {"nps": 5.0, "csat": -3.0, "ces": 0.4, "responses": 4.0})
    groups = [
        GroupRow("buyer", NpsResult.of(8, 2, 3), ShareResult.of(13, 9), MeanResult.of(13, 39, 7),
                 13, False, {"nps": 12.0}),
        GroupRow("finance", NpsResult.of(0, 0, 3), ShareResult.of(3, 0), MeanResult.of(3, 18, 0),
                 3, True, {"nps": None}),
        GroupRow("<script>alert(1)</script>", NpsResult.of(1, 0, 0), None, None, 1, True, {}),
    ]
    base: dict[str, object] = {
        "flow_id": "b2b-supplier", "title": "Supplier relationship review",
        "since": date(2026, 1, 1), "until": date(2026, 3, 31), "by": "role",
        "period": "month", "account": None, "overall": overall, "groups": groups,
        "funnel": Funnel(60, 40, 50, 40, 7, 66.666, 14.9, 151.0, 262.0,
                         [("(start)", 3), ("nps", 4)]),
        "resolution": Resolution(13, 4, 9, 20.5, 70.0, 6, 5, 3, 1),
        "distributions": [Distribution("nps", "nps", 40, [(str(i), 4 if i < 10 else 0)
                                                          for i in range(11)])],
        "trend": [PeriodPoint(date(2026, m, 1), NpsResult.of(6, 3, 4), None, None, 13)
                  for m in (1, 2, 3)],
        "previous": (date(2025, 10, 3), date(2025, 12, 31)),
        "generated_at": datetime(2026, 4, 1, 9, 30, tzinfo=UTC),
    }
    base.update(changes)
    return Report(**base)  # type: ignore[arg-type]


def _self_contained(text: str) -> None:
    assert not re.search(r"https?://", text), "no external URL of any kind"
    assert "<script" not in text.replace("&lt;script", "")
    assert "<link" not in text and "@import" not in text and "url(" not in text


def test_english_report(tmp_path: Path) -> None:
    path = write_html(_report(), tmp_path / "out" / "report.html", flow=B2B)
    text = path.read_text(encoding="utf-8")
    _self_contained(text)
    page = Page(text)
    html = dict(page.tags[0][1])
    assert page.tags[0][0] == "html" and html == {"lang": "en", "dir": "ltr"}
    words = page.words
    assert "Supplier relationship review" in words  # the flow's title
    assert "+12" in words  # NPS (18 − 13) / 40 = 12.5, shown rounded
    assert "18 promoters, 9 passives, 13 detractors of 40" in words
    assert "▲ +5" in words  # change vs the previous window
    assert "70%" in words and "21 of 30 answered 4 or 5" in words  # CSAT
    assert "2.9" in words and "55% low effort (1–3) of 40" in words  # CES 116 / 40
    assert "67%" in words and "40 of 60 invited completed" in words and "15%" in words
    assert "2:31" in words and "within the promise" in words and "4:22" in words
    assert "20 hours" in words and "4 of 13 cases open" in words  # TTR (20.5 h rounds to 20)
    assert "60%" in words and "3 of 5 due, 1 overdue" in words  # promises
    assert "By stakeholder role" in words
    assert "Purchasing" in words and "Finance / accounts" in words  # option labels
    assert "▲ +12" in words
    assert words.count("too few to trust") == 2  # finance and the 1-answer group
    # the group named like a script is text, not markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>alert" not in text
    images = page.images()
    assert len(images) == 3  # trend, NPS distribution, drop-off
    for png in images:
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.width == 900


def test_persian_page_is_right_to_left_in_persian_digits() -> None:
    text = render_html(_report(), flow=B2B, lang="fa")
    _self_contained(text)
    page = Page(text)
    assert page.tags[0][1] == {"lang": "fa", "dir": "rtl"}
    words = page.words
    assert "نظرسنجی همکاری با ما" in words
    assert "+۱۲" in words and "از ۴۰ نفر: ۱۸ مروج، ۹ بی‌طرف، ۱۳ منتقد" in words
    assert "۷۰٪" in words and "۲:۳۱" in words and "۲٫۹" in words
    assert "خرید و تدارکات" in words
    assert "کم؛ قابل اتکا نیست" in words
    assert " · " not in words  # a middle dot would read as the Persian zero


def test_arabic_page() -> None:
    page = Page(render_html(_report(), flow=B2B, lang="ar"))
    assert page.tags[0][1] == {"lang": "ar", "dir": "rtl"}
    assert "تقييم علاقة العمل معنا" in page.words and "+١٢" in page.words


def test_empty_report_and_silent_people() -> None:
    empty = GroupRow("all", NpsResult.of(0, 0, 0), None, None, 0, True, {})
    report = _report(
        overall=empty, groups=[], by=None, previous=None, distributions=[], trend=[],
        funnel=Funnel(0, 0, 0, 0, 0, None, None, None, None, [("(start)", 0)]),
        resolution=Resolution(0, 0, 0, None, None, 0, 0, 0, 0), account="Acme & Sons",
        silent=[SilentContact(7, "Sara <CFO>", "finance", "Acme & Sons",
                              datetime(2026, 1, 3, tzinfo=UTC), 2, "expired")],
    )
    text = render_html(report, flow=B2B, lang="en")
    page = Page(text)
    words = page.words
    assert "Account: Acme & Sons" in words and "Acme &amp; Sons" in text
    assert "Sara <CFO>" in words and "Sara &lt;CFO&gt;" in text
    assert "Finance / accounts" in words and "expired after the reminders" in words
    assert "no invitations in this window" in words
    assert "—" in words  # no NPS, no median time
    assert len(page.images()) == 1  # only the drop-off chart (with its "no answers" note)


def test_names_from_people_lose_bidi_overrides_and_line_breaks() -> None:
    empty = GroupRow("all", NpsResult.of(0, 0, 0), None, None, 0, True, {})
    report = _report(
        overall=empty, groups=[], by=None, previous=None, distributions=[], trend=[],
        funnel=Funnel(0, 0, 0, 0, 0, None, None, None, None, [("(start)", 0)]),
        resolution=Resolution(0, 0, 0, None, None, 0, 0, 0, 0), account="Evil\u202eCorp",
        silent=[SilentContact(7, "Sara\u2028Resolve: /resolve 1", "finance", "Acme",
                              datetime(2026, 1, 3, tzinfo=UTC), 2, "expired")],
    )
    text = render_html(report, flow=B2B, lang="fa")
    assert "\u202e" not in text and "\u2028" not in text
    assert "Sara / Resolve: /resolve 1" in text and "EvilCorp" in text


async def test_report_from_the_database_with_accounts(database: Database,
                                                      tmp_path: Path) -> None:
    await build_fixed(database)
    jan = {"since": date(2026, 1, 1), "until": date(2026, 1, 31), "now": NOW}
    report = await build_report(database, FLOW, by="role", period="week", **jan)
    views = await build_accounts(database, FLOW, **jan)
    path = write_html(report, tmp_path / "r.html", flow=FLOW, lang="en", accounts=views)
    text = path.read_text(encoding="utf-8")
    _self_contained(text)
    page = Page(text)
    words = page.words
    nps = report.overall.nps
    assert nps is not None and nps.score is not None
    shown = f"{round(nps.score):+d}".replace("-", "−") if round(nps.score) else "0"
    assert shown in words
    assert (f"{nps.promoters} promoters, {nps.passives} passives, "
            f"{nps.detractors} detractors of {nps.n}") in words
    assert "Accounts" in words and "Whole account" in words
    assert "Invited, never answered" in words and "Sara" in words and "Omar" in words
    assert "Invited, nobody answered: technical" in words
    assert "Open cases" in words and "Promises not yet kept" in words
    assert "overdue" in words
    # Acme (an overdue promise) comes before Solo (nothing open)
    assert words.index("Acme") < words.index("Solo")
    for png in page.images():
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
    fa = Page(render_html(report, flow=FLOW, lang="fa", accounts=views))
    assert fa.tags[0][1]["dir"] == "rtl" and "ف buyer" in fa.words


# --- the reader's calendar, decimals and plural forms ---------------------------------------

GREGORIAN_FA = ("ژانویه", "فوریه", "مارس", "آوریل", "ژوئن", "ژوئیه", "اوت", "سپتامبر",
                "اکتبر", "نوامبر", "دسامبر")


def _december(**changes: object) -> Report:
    silent = [SilentContact(7, "Sara", "finance", "Acme", datetime(2026, 12, 3, tzinfo=UTC), 2,
                            "sent")]
    return _report(since=date(2026, 12, 1), until=date(2026, 12, 31), previous=None,
                   silent=silent, generated_at=datetime(2026, 12, 12, 9, 30, tzinfo=UTC),
                   **changes)


def test_a_persian_page_dates_everything_in_the_jalali_calendar() -> None:
    words = Page(render_html(_december(), flow=B2B, lang="fa")).words
    assert "۱۰ آذر ۱۴۰۵" in words and "۱۰ دی ۱۴۰۵" in words  # the window
    assert "۱۲ آذر ۱۴۰۵" in words  # invited on, and generated
    assert "Dec" not in words and not any(month in words for month in GREGORIAN_FA), words
    assert "2026" not in words and "۲۰۲۶" not in words


def test_an_arabic_page_writes_decimals_with_the_arabic_separator_and_counts_in_plural_forms(
) -> None:
    words = Page(render_html(_december(), flow=B2B, lang="ar")).words
    assert "٢٫٩" in words and "2.9" not in words and "٢.٩" not in words  # CES mean
    assert "أكمل الاستبيان ٤٠ من أصل ٦٠ مدعوًّا" in words  # 60: the "many" form
    assert "الحالات المفتوحة: ٤ من أصل ١٣ حالة" in words
    assert "تذكيران" in words  # two reminders: the dual, no number
    assert "ديسمبر" in words  # Arabic keeps the Gregorian calendar
    two = _report(resolution=Resolution(2, 1, 1, 20.5, 70.0, 0, 0, 0, 0),
                  funnel=Funnel(5, 3, 4, 3, 1, 60.0, 20.0, 151.0, 262.0, [("(start)", 1)]))
    words = Page(render_html(two, flow=B2B, lang="ar")).words
    assert "الحالات المفتوحة: ١ من أصل حالتين" in words and "من أصل ٥ مدعوّين" in words


def test_an_english_page_keeps_gregorian_dates_and_plural_words() -> None:
    words = Page(render_html(_december(), flow=B2B, lang="en")).words
    assert "1 Dec 2026" in words and "3 Dec 2026" in words
    assert "2 reminders" in words and "40 of 60 invited completed" in words
