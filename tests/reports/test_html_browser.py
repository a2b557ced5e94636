"""The HTML report as a reader sees it: Chromium lays out the Persian and Arabic pages (and
the English one, as the control) and the test reads positions on the screen, not markup.

A cell of digits and separators has no strong character, so its direction comes from the
markup alone; only a real layout shows whether "promoters / passives / detractors" reads
in the header's order, and where a sign or a percent sign lands.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.reports.accounts import build_accounts
from bot.reports.html import _Page, _word, render_html
from bot.reports.metrics import build_report
from storage.db import Database
from tests.reports.fixtures import FLOW, NOW, build_fixed

CHROMIUM = Path("/usr/bin/chromium")
SIGNS = "+\u2212"
LOCAL_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "0123456789" * 2)

# Everything the test looks at, measured in one call per page. box() is where the first
# occurrence of a text is drawn inside an element (across child elements): a Range
# measures glyphs where they are on the screen, whatever their logical order.
_MEASURE = """([counts, since, until, done, invited]) => {
  const box = (el, needle, last = false) => {
    const nodes = [];
    const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    while (walk.nextNode()) nodes.push(walk.currentNode);
    const all = nodes.map(n => n.data).join("");
    const at = last ? all.lastIndexOf(needle) : all.indexOf(needle);
    if (at < 0) return null;
    const place = (i, end) => {
      for (const n of nodes) {
        if (i < n.data.length || (end && i === n.data.length)) return [n, i];
        i -= n.data.length;
      }
    };
    const range = document.createRange();
    range.setStart(...place(at, false));
    range.setEnd(...place(at + needle.length, true));
    const r = range.getBoundingClientRect();
    return {left: r.left, right: r.right, text: needle};
  };
  const all = sel => [...document.querySelectorAll(sel)];
  const header = all("th").find(th => th.textContent.includes(counts[0]));
  const sign = el => {
    const text = el.textContent, s = text.match(/[+\u2212]/), d = text.match(/[0-9۰-۹٠-٩٫.]+/);
    const a = text.match(/[▲▼]/);
    return {text, sign: s && box(el, s[0]), digits: d && box(el, d[0]), arrow: a && box(el, a[0])};
  };
  const card = label => all(".card").find(c => c.querySelector(".label").textContent === label);
  const csat = card("CSAT").querySelector(".value bdi");
  const ces = card("CES").querySelector(".detail");
  const summary = all(".account h3").find(h => h.textContent.includes("Acme"))
    .querySelector(".summary");
  const window_ = document.querySelector("header .meta");
  const heading = all(".account h3").find(h => h.textContent.includes("Acme"));
  const line = heading.getBoundingClientRect();
  return {
    header: counts.map(w => box(header, w)),
    rows: all("tr").filter(tr => tr.querySelector("td.counts")).map(tr => ({
      counts: ["promoters", "passives", "detractors"].map(k => {
        const el = tr.querySelector("td.counts ." + k), r = el.getBoundingClientRect();
        return {left: r.left, right: r.right, text: el.textContent};
      }),
      nps: tr.querySelector("td.nps").textContent})),
    signed: all("td.nps bdi, td.change bdi, .card .value bdi, .account h3 .summary bdi")
      .map(sign).filter(s => s.sign),
    csat: {text: csat.textContent, percent: box(csat, csat.textContent.slice(-1)),
           digits: box(csat, csat.textContent.match(/[0-9۰-۹٠-٩]+/)[0])},
    sentence: {text: ces.textContent, percent: box(ces, "٪") || box(ces, "%"),
               digits: box(ces, ces.textContent.match(/[0-9۰-۹٠-٩]+(?=.?[٪%])/)[0])},
    summary: [box(summary, "NPS"), box(summary, done, true), box(summary, invited, true)],
    window: [box(window_, since), box(window_, until)],
    heading: {name: box(heading, "Acme"), A: box(heading, "A"), e: box(heading, "e"),
              left: line.left, right: line.right},
  };
}"""


def _browser_missing(reason: str) -> None:
    """On CI a missing browser is a failure (the check would silently stop); elsewhere a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


Box = dict[str, Any]


def _reads_before(lang: str, first: Box, then: Box) -> bool:
    """Whether `first` comes before `then` for a reader of `lang` (on one line)."""
    if lang == "en":
        return bool(first["right"] <= then["left"] + 0.5)
    return bool(first["left"] >= then["right"] - 0.5)


def _number(text: str) -> int:
    digits = re.sub(r"[^0-9]", "", text.translate(LOCAL_DIGITS))
    return -int(digits) if "\u2212" in text else int(digits)


def _counts_read_in_order(seen: dict[str, Any], lang: str) -> None:
    """Every promoters / passives / detractors cell reads in the header's order, and the
    NPS beside it is what those counts, read in that order, give."""
    words = seen["header"]
    assert _reads_before(lang, words[0], words[1]) and _reads_before(lang, words[1], words[2])
    assert len(seen["rows"]) >= 10  # the groups table and the five accounts' tables
    for row in seen["rows"]:
        p, pa, d = row["counts"]
        assert _reads_before(lang, p, pa) and _reads_before(lang, pa, d), (lang, row)
        # Read the counts in reading order, as a person would, and recompute the NPS.
        first, second, third = sorted(row["counts"], key=lambda b: b["left"],
                                      reverse=lang != "en")
        n = [_number(b["text"]) for b in (first, second, third)]
        if sum(n) == 0:
            assert row["nps"] == "—"
            continue
        assert _number(row["nps"]) == round(100 * (n[0] - n[2]) / sum(n)), (lang, row)


def _signs_sit_where_the_reader_expects(seen: dict[str, Any], lang: str) -> None:
    """CLDR: the sign right of the digits in Arabic (read first), left of them in Persian
    and English; a change's arrow comes first in reading order, before its number."""
    # Signed NPS cells, the NPS card and its change, the CES change, account headings.
    assert len(seen["signed"]) >= 4
    for cell in seen["signed"]:
        sign, digits = cell["sign"], cell["digits"]
        if lang == "ar":
            assert sign["left"] >= digits["right"] - 0.5, (lang, cell)
        else:
            assert sign["right"] <= digits["left"] + 0.5, (lang, cell)
        if cell["arrow"]:
            assert _reads_before(lang, cell["arrow"], digits), (lang, cell)


def _mixed_text_reads_in_order(seen: dict[str, Any], lang: str) -> None:
    # A percentage on a card reads as in the page's sentences: the number, then ٪ (left
    # of it in ar and fa, as digits after Arabic-script words are laid out).
    for shown in (seen["csat"], seen["sentence"]):
        assert _reads_before(lang, shown["digits"], shown["percent"]), (lang, shown)
    # An account's heading: "NPS −9, 6 of 8 invited answered" in reading order.
    label, done, invited = seen["summary"]
    assert _reads_before(lang, label, done) and _reads_before(lang, done, invited), seen
    # The window's dates: the first day comes first.
    assert _reads_before(lang, *seen["window"]), seen["window"]
    # A Latin account name in a right-to-left heading stays whole and starts the line.
    heading = seen["heading"]
    if lang == "en":
        assert abs(heading["name"]["left"] - heading["left"]) < 2, heading
    else:
        assert abs(heading["name"]["right"] - heading["right"]) < 2, heading
    assert heading["A"]["left"] < heading["e"]["left"], heading


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_fa_and_ar_reports_read_right_to_left_in_a_real_browser(
        database: Database, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        _browser_missing(f"no headless Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _browser_missing("playwright is not installed (make setup installs the dev extras)")

    await build_fixed(database)
    jan = {"since": date(2026, 1, 1), "until": date(2026, 1, 31), "now": NOW}
    report = await build_report(database, FLOW, by="role", period="week", **jan)
    views = await build_accounts(database, FLOW, **jan)
    acme = next(v for v in views if v.account == "Acme")
    assert len({acme.summary.responded, acme.summary.invited, 0}) == 3  # told apart on screen
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM),
                                          args=["--no-sandbox", "--disable-gpu"])
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        for lang in ("fa", "ar", "en"):
            path = tmp_path / f"report-{lang}.html"
            path.write_text(render_html(report, flow=FLOW, lang=lang, accounts=views,
                                        charts=[]), encoding="utf-8")
            await page.goto(path.as_uri())
            await page.screenshot(path=tmp_path / f"report-{lang}.png", full_page=True)
            reader = _Page(lang, FLOW)
            words = [w.strip() for w in _word("counts", lang).split("/")]
            seen = await page.evaluate(_MEASURE, [
                words, reader.day(jan["since"]), reader.day(jan["until"]),
                reader.n(acme.summary.responded), reader.n(acme.summary.invited)])
            _counts_read_in_order(seen, lang)
            _signs_sit_where_the_reader_expects(seen, lang)
            _mixed_text_reads_in_order(seen, lang)
        await browser.close()
