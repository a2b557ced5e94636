"""The web chat in a real browser, against a real `sada run --web-only` on SQLite and the
B2B flow of flows/: a Persian respondent in the widget embedded on another origin (by clicks
and typed Persian digits), right-to-left layout in the DOM and on screenshots, a reload in
the middle of the survey, a keyboard-only run, Arabic and English runs, and 320 px wide.
"""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.engine.normalize import local_digits
from bot.flow.loader import load_flow
from bot.i18n import translator
from tests.browser.conftest import ROOT, Server, Site

pytestmark = [pytest.mark.slow, pytest.mark.together]

B2B = load_flow(ROOT / "flows" / "b2b_supplier.yaml").flow
WIDGET = ROOT / "bot" / "channels" / "web" / "static" / "sada.js"
LOCALES = {"fa": "fa-IR", "ar": "ar-SA", "en": "en-US"}
TIMEOUT = 15_000  # ms: bounds a broken run only; each step takes a few tens of ms


def text(qid: str, lang: str) -> str:
    return B2B.question(qid).text[lang]  # type: ignore[index]


def label(qid: str, option: str, lang: str) -> str:
    question = B2B.question(qid)
    for o in question.options:  # type: ignore[union-attr]
        if o.id == option:
            return o.label[lang]  # type: ignore[index]
    raise KeyError(option)


def outro(lang: str) -> str:
    """The closing words for a promoter (NPS 9)."""
    return next(o.text[lang] for o in B2B.outro if o.when == "nps >= 9")  # type: ignore[index]


@pytest.fixture
def context(browser: Any, server: Server, site: Site, request: pytest.FixtureRequest
            ) -> Iterator[Any]:
    """A fresh browser profile (a new visitor) in the language of the test's `lang` mark;
    it fails the test on any script error or any request to a third origin."""
    marker = request.node.get_closest_marker("lang")
    lang = marker.args[0] if marker else "en"
    width = marker.kwargs.get("width", 800) if marker else 800
    ctx = browser.new_context(locale=LOCALES[lang], viewport={"width": width, "height": 720})
    ctx.set_default_timeout(TIMEOUT)
    problems: list[str] = []
    allowed = (server.base, site.base, "data:")

    def page_made(page: Any) -> None:
        page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        def request_made(r: Any) -> None:
            if not r.url.startswith(allowed):
                problems.append(f"request to a third origin: {r.url}")

        page.on("request", request_made)

    ctx.on("page", page_made)
    yield ctx
    ctx.close()
    assert not problems, problems


# --- reading and driving the widget ----------------------------------------------------------

def bot_says(page: Any, words: str) -> Any:
    """The latest bot message containing `words`, once shown."""
    found = page.locator(".msg.bot").filter(has_text=words).last
    found.wait_for()
    return found


def answered(page: Any, words: str, answer: str) -> Any:
    """The buttons left on the question containing `words`, once its keyboard has been tidied
    to the answer alone: the tidying follows the next question, so it can arrive after it."""
    buttons = page.locator(".msg.bot").filter(has_text=words).get_by_role("button")
    buttons.filter(has_text=answer).wait_for()
    return buttons


def live_button(page: Any, name: str) -> Any:
    return page.get_by_role("button", name=name, exact=True, disabled=False)


def click(page: Any, name: str) -> None:
    live_button(page, name).click()


def type_answer(page: Any, answer: str) -> None:
    box = page.get_by_role("textbox")
    box.fill(answer)
    box.press("Enter")


def visitor(page: Any) -> str:
    value = page.evaluate("localStorage.getItem('sada.visitor')")
    assert isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]{22}", value), value
    return value


def answers(db: Path, visitor_id: str) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select a.question_id, a.raw_text, a.value from answer a join survey_session s "
            "on s.id = a.session_id join contact_identity c on c.contact_id = s.contact_id "
            "where c.channel = 'web' and c.address = ?", (visitor_id,)).fetchall()
    return {q: (raw, json.loads(v) if isinstance(v, str) else v) for q, raw, v in rows}


def statuses(db: Path, visitor_id: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute(
            "select s.status from survey_session s join contact_identity c "
            "on c.contact_id = s.contact_id where c.channel = 'web' and c.address = ?",
            (visitor_id,))]


def scale_boxes(page: Any, lang: str, low: int, high: int) -> tuple[dict, dict]:
    first = live_button(page, local_digits(str(low), lang)).bounding_box()
    last = live_button(page, local_digits(str(high), lang)).bounding_box()
    return first, last


def direction(page: Any) -> str:
    return str(page.locator(".sada").evaluate("e => getComputedStyle(e).direction"))


def no_horizontal_scroll(page: Any) -> None:
    sizes = page.evaluate("""() => {
      const d = document.documentElement, root = document.querySelector('[data-sada]');
      const inner = [...root.shadowRoot.querySelectorAll('*')]
        .filter(e => !e.classList.contains('sr') && e.scrollWidth > e.clientWidth + 1
                     && getComputedStyle(e).overflowX !== 'visible');
      return {page: [d.scrollWidth, d.clientWidth], inner: inner.map(e => e.className)};
    }""")
    assert sizes["page"][0] <= sizes["page"][1], sizes
    assert not sizes["inner"], sizes


def complete_b2b(page: Any, lang: str, *, typed: bool, shots: Path | None = None) -> None:
    """The B2B survey from its first question to the thank-you, as a buyer giving NPS 9.
    `typed`: the numbers are typed in the reader's digits, else pressed."""
    t = translator(lang)
    bot_says(page, text("stakeholder", lang))
    click(page, label("stakeholder", "buyer", lang))
    bot_says(page, text("nps", lang))
    low, high = scale_boxes(page, lang, 0, 10)
    if lang == "en":  # 0 at the left, as read
        assert low["x"] + low["width"] <= high["x"] + 1, (low, high)
    else:  # 0 at the right, as in Telegram
        assert high["x"] + high["width"] <= low["x"] + 1, (low, high)
    if shots is not None:
        shot = shots / f"widget-{lang}-nps.png"
        page.locator(".panel").screenshot(path=shot, animations="disabled")
    if typed:
        type_answer(page, local_digits("9", lang))
    else:
        click(page, local_digits("9", lang))
    bot_says(page, text("nps_why", lang))
    reason = {"fa": "تحویل با SLA خوب بود", "ar": "التسليم ضمن SLA ممتاز",
              "en": "Delivery within the SLA"}[lang]
    type_answer(page, reason)
    bot_says(page, text("expectations", lang))
    click(page, local_digits("4", lang))
    bot_says(page, text("priorities", lang))
    click(page, "☐ " + label("priorities", "quality", lang))
    live_button(page, "☑ " + label("priorities", "quality", lang)).wait_for()
    click(page, t.gettext("Done ✓"))
    bot_says(page, text("informed", lang))
    click(page, label("informed", "always", lang))
    bot_says(page, text("ces", lang))
    if typed:
        type_answer(page, local_digits("2", lang))
    else:
        click(page, local_digits("2", lang))
    bot_says(page, outro(lang))
    # the visitor's own words, shown on their side, whole, in their direction even when they
    # start or end with a Latin word
    reads = "rtl" if t.rtl else "ltr"
    mine = page.locator(".msg.me").filter(has_text=reason).first
    assert mine.evaluate("e => getComputedStyle(e).direction") == reads, reason
    # a Latin command inside a Persian or Arabic line keeps the line right to left
    hint = page.locator(".msg.bot .line").filter(has_text="/skip").first
    assert hint.evaluate("e => getComputedStyle(e).direction") == reads


# --- the cases ---------------------------------------------------------------------------------

@pytest.mark.lang("fa")
def test_persian_respondent_completes_b2b_in_the_widget_on_another_origin(
        context: Any, server: Server, site: Site, artifacts: Path) -> None:
    page = context.new_page()
    page.goto(site.page(flow=B2B.id, mode="bubble", lang="fa"))
    launcher = page.get_by_role("button", name="باز کردن گفتگوی نظرسنجی")
    # the bubble sits in the inline-end corner: bottom left in a right-to-left language
    box = launcher.bounding_box()
    assert box["x"] < 100 and box["y"] > 600, box
    launcher.click()
    assert launcher.get_attribute("aria-expanded") == "true"
    complete_b2b(page, "fa", typed=True, shots=artifacts)
    page.screenshot(path=artifacts / "widget-fa-done.png", animations="disabled")
    # the widget's own CSS, not the site's red buttons and wide letters
    seen = page.locator(".msg.ask button").first.evaluate(
        "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).letterSpacing]")
    assert seen[0] != "rgb(255, 0, 0)" and seen[1] == "normal", seen
    who = visitor(page)
    assert statuses(server.db, who) == ["completed"], server.output()
    stored = answers(server.db, who)
    assert stored["nps"] == ("۹", 9) and stored["ces"][1] == 2, stored
    assert stored["stakeholder"][1] == "buyer" and stored["priorities"][1] == ["quality"]
    assert "SLA" in stored["nps_why"][0]


@pytest.mark.lang("fa")
def test_persian_layout_is_right_to_left(context: Any, server: Server, artifacts: Path) -> None:
    page = context.new_page()
    page.goto(server.base + f"/s/flow/{B2B.id}")
    bot_says(page, text("stakeholder", "fa"))
    assert direction(page) == "rtl"
    assert page.locator(".sada").get_attribute("lang") == "fa"
    # the bot's bubbles start at the right, the visitor's at the left
    click(page, label("stakeholder", "buyer", "fa"))
    question = bot_says(page, text("nps", "fa")).bounding_box()
    mine = page.locator(".msg.me").last.bounding_box()
    width = page.viewport_size["width"]
    assert question["x"] + question["width"] > width - 40 and mine["x"] < 40, (question, mine)
    low, high = scale_boxes(page, "fa", 0, 10)
    assert high["x"] + high["width"] <= low["x"] + 1, (low, high)
    # the answered question keeps only its answer, which can no longer be pressed
    kept = answered(page, text("stakeholder", "fa"), "✓ " + label("stakeholder", "buyer", "fa"))
    assert kept.count() == 1 and kept.is_disabled()
    assert kept.text_content() == "✓ " + label("stakeholder", "buyer", "fa")
    # reading order is Tab order: ۰ comes first, and has the focus
    assert page.evaluate(
        "document.querySelector('[data-sada]').shadowRoot.activeElement.textContent") == "۰"
    # the progress line and the question read right to left too
    line = question_line(page, text("nps", "fa"))
    assert line["direction"] == "rtl" and line["align"] in ("start", "right"), line
    page.screenshot(path=artifacts / "page-fa-nps.png", animations="disabled")
    # on the screenshot: the focus ring of ۰, the scale's first answer, is at the right
    assert focus_ring_at(artifacts / "page-fa-nps.png") > 0.8
    # the empty text box's placeholder starts at the right too
    box = page.locator("form input")
    assert box.evaluate("e => getComputedStyle(e).textAlign") == "right"
    # a score answered in Persian digits ("✓ ۹") keeps the message's right-to-left order
    type_answer(page, "۹")
    bot_says(page, text("nps_why", "fa"))
    score = answered(page, text("nps", "fa"), "✓ ۹")
    assert score.count() == 1 and score.text_content() == "✓ ۹"
    assert score.evaluate("e => getComputedStyle(e).direction") == "rtl"


def focus_ring_at(png: Path) -> float:
    """Where the widget's focus ring (#e8a400) is drawn on a screenshot, from 0 (the left
    edge) to 1 (the right edge)."""
    from PIL import Image  # matplotlib's own dependency

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        width, height = rgb.size
        xs = [x for y in range(0, height, 2) for x in range(width)
              if _ring(rgb.getpixel((x, y)))]
    assert len(xs) > 20, f"no focus ring on {png}"
    return sum(xs) / len(xs) / width


def _ring(pixel: Any) -> bool:
    r, g, b = pixel
    return abs(r - 0xE8) < 24 and abs(g - 0xA4) < 24 and b < 48


def question_line(page: Any, words: str) -> dict[str, str]:
    return dict(page.locator(".msg.bot .line").filter(has_text=words).last.evaluate(
        "e => ({direction: getComputedStyle(e).direction, align: getComputedStyle(e).textAlign})"))


@pytest.mark.lang("fa")
def test_reload_mid_survey_resumes_at_the_same_question(context: Any, server: Server) -> None:
    page = context.new_page()
    page.goto(server.base + f"/s/flow/{B2B.id}")
    bot_says(page, text("stakeholder", "fa"))
    click(page, label("stakeholder", "technical", "fa"))
    bot_says(page, text("nps", "fa"))
    type_answer(page, "۷")
    bot_says(page, text("nps_why", "fa"))
    click(page, translator("fa").gettext("Skip »"))
    bot_says(page, text("expectations", "fa"))
    who = visitor(page)
    page.reload()
    bot_says(page, text("expectations", "fa"))
    assert visitor(page) == who
    # the same question, live, once; nothing asked again from the start
    assert page.locator(".msg.bot").filter(has_text=text("expectations", "fa")).count() == 1
    assert page.locator(".msg.bot").filter(has_text=text("stakeholder", "fa")).count() == 1
    assert page.locator(".msg.bot").last.filter(has_text=text("expectations", "fa")).count() == 1
    assert live_button(page, "۳").is_enabled()
    assert not page.get_by_role("button", name=label("stakeholder", "buyer", "fa")).count()
    click(page, "۳")
    bot_says(page, text("priorities", "fa"))
    assert statuses(server.db, who) == ["active"]
    assert answers(server.db, who)["expectations"][1] == 3


@pytest.mark.lang("fa")
def test_keyboard_only_run_completes(context: Any, server: Server) -> None:
    """The printed link of `sada run --web-only`, then only the keyboard: Tab, Enter, Space
    and typing. A new question takes the focus (its first answer, or the text box)."""
    page = context.new_page()
    page.goto(server.link)
    keys = page.keyboard

    def focused() -> str:
        return str(page.evaluate("(() => { const a = document.querySelector('[data-sada]')"
                                 ".shadowRoot.activeElement; return a ? (a.id || a.textContent)"
                                 " : ''; })()"))

    def wait_focus(expected: str) -> None:
        page.wait_for_function(
            "w => { const a = document.querySelector('[data-sada]')?.shadowRoot?.activeElement;"
            " return a && (a.id || a.textContent) === w; }", arg=expected, timeout=TIMEOUT)

    def tab(times: int) -> None:
        for _ in range(times):
            keys.press("Tab")

    bot_says(page, text("stakeholder", "fa"))
    wait_focus(label("stakeholder", "buyer", "fa"))  # the first answer
    keys.press("Enter")
    bot_says(page, text("nps", "fa"))
    wait_focus("۰")
    # the focus is visible: a ring drawn around the focused answer
    ring = page.evaluate("(() => { const a = document.querySelector('[data-sada]').shadowRoot"
                         ".activeElement; const s = getComputedStyle(a); return [a.matches("
                         "':focus-visible'), s.outlineStyle, s.outlineWidth]; })()")
    assert ring[0] and ring[1] == "solid" and ring[2] == "3px", ring
    tab(9)
    assert focused() == "۹"
    keys.press("Space")
    bot_says(page, text("nps_why", "fa"))
    wait_focus("sada-input")  # a text question: the box, not its Back or Skip
    keys.type("سفارش‌ها به‌موقع رسید")
    keys.press("Enter")
    bot_says(page, text("expectations", "fa"))
    wait_focus("۱")
    tab(3)
    keys.press("Enter")
    bot_says(page, text("priorities", "fa"))
    wait_focus("☐ " + label("priorities", "quality", "fa"))
    keys.press("Space")
    wait_focus("☑ " + label("priorities", "quality", "fa"))  # still there after the redraw
    tab(len(B2B.question("priorities").options))  # type: ignore[union-attr]
    assert focused() == translator("fa").gettext("Done ✓")
    keys.press("Enter")
    bot_says(page, text("informed", "fa"))
    wait_focus(label("informed", "always", "fa"))
    keys.press("Enter")
    bot_says(page, text("ces", "fa"))
    wait_focus("۱")
    tab(1)
    keys.press("Enter")
    bot_says(page, outro("fa"))
    who = visitor(page)
    assert statuses(server.db, who) == ["completed"]
    assert answers(server.db, who)["nps"][1] == 9


@pytest.mark.lang("ar", width=320)
def test_arabic_run_at_320_px(context: Any, server: Server, artifacts: Path) -> None:
    page = context.new_page()
    page.emulate_media(reduced_motion="reduce")
    page.goto(server.base + f"/s/flow/{B2B.id}")
    bot_says(page, text("stakeholder", "ar"))
    assert direction(page) == "rtl"
    # for screen readers: a polite live log, a labelled text box, named buttons
    log = page.get_by_role("log", name="المحادثة")
    assert log.get_attribute("aria-live") == "polite"
    assert page.get_by_role("textbox", name="إجابتكم").is_visible()
    assert page.get_by_role("button", name="إرسال").is_visible()
    assert page.get_by_role("button", name="القائمة").get_attribute("aria-expanded") == "false"
    # and no motion for who asked for none
    assert page.locator(".msg").last.evaluate("e => getComputedStyle(e).animationName") == "none"
    no_horizontal_scroll(page)
    click(page, label("stakeholder", "buyer", "ar"))
    bot_says(page, text("nps", "ar"))
    no_horizontal_scroll(page)
    page.screenshot(path=artifacts / "page-ar-320.png", animations="disabled")
    complete_rest(page, "ar")
    no_horizontal_scroll(page)
    who = visitor(page)
    assert statuses(server.db, who) == ["completed"]


def complete_rest(page: Any, lang: str) -> None:
    """From the NPS question on, in the reader's digits, by taps and typing."""
    low, high = scale_boxes(page, lang, 0, 10)
    assert high["x"] + high["width"] <= low["x"] + 1, (low, high)
    type_answer(page, local_digits("9", lang))
    bot_says(page, text("nps_why", lang))
    click(page, translator(lang).gettext("Skip »"))
    bot_says(page, text("expectations", lang))
    click(page, local_digits("5", lang))
    bot_says(page, text("priorities", lang))
    type_answer(page, local_digits("1، 2", lang))
    bot_says(page, text("informed", lang))
    click(page, label("informed", "sometimes", lang))
    bot_says(page, text("ces", lang))
    click(page, local_digits("1", lang))
    bot_says(page, outro(lang))


@pytest.mark.lang("en")
def test_english_run_is_left_to_right(context: Any, server: Server, site: Site,
                                      artifacts: Path) -> None:
    page = context.new_page()
    page.goto(site.page(flow=B2B.id, mode="inline", lang="en"))
    bot_says(page, text("stakeholder", "en"))
    assert direction(page) == "ltr"
    complete_b2b(page, "en", typed=False, shots=artifacts)
    who = visitor(page)
    assert statuses(server.db, who) == ["completed"]
    assert answers(server.db, who)["nps"][1] == 9


@pytest.mark.lang("fa", width=320)
def test_bubble_at_320_px_and_the_menu(context: Any, server: Server, site: Site,
                                       artifacts: Path) -> None:
    page = context.new_page()
    page.goto(site.page(flow=B2B.id, mode="bubble", lang="fa"))
    page.get_by_role("button", name="باز کردن گفتگوی نظرسنجی").click()
    bot_says(page, text("stakeholder", "fa"))
    no_horizontal_scroll(page)
    panel = page.locator(".panel").bounding_box()
    assert panel["x"] >= 0 and panel["x"] + panel["width"] <= 320, panel
    page.screenshot(path=artifacts / "widget-fa-320-bubble.png", animations="disabled")
    # the menu closes on a click elsewhere
    page.get_by_role("button", name="منو").click()
    assert page.get_by_role("button", name="راهنما").is_visible()
    page.locator(".log").click(position={"x": 5, "y": 5})
    assert page.get_by_role("button", name="راهنما").is_hidden()
    # the menu: /help typed for the visitor, answered by the bot's help
    page.get_by_role("button", name="منو").click()
    page.get_by_role("button", name="راهنما").click()
    page.locator(".msg.me").filter(has_text="/help").wait_for()
    bot_says(page, "/stop")
    # the question asked before the help still takes its answer
    click(page, label("stakeholder", "buyer", "fa"))
    bot_says(page, text("nps", "fa"))
    # another language from the menu: the widget turns left to right with the bot
    page.get_by_role("button", name="منو").click()
    page.get_by_role("button", name="تغییر زبان").click()
    click(page, "English")
    bot_says(page, text("nps", "en"))
    assert direction(page) == "ltr"
    low, high = scale_boxes(page, "en", 0, 10)
    assert low["x"] + low["width"] <= high["x"] + 1, (low, high)
    assert page.get_by_role("button", name="Menu").is_visible()
    # each answer shown once on the visitor's side, though the server keeps them too
    assert [e.text_content() for e in page.locator(".msg.me").all()] == [
        "/help", label("stakeholder", "buyer", "fa"), "/language", "English"]
    page.keyboard.press("Escape")
    assert page.locator(".panel").is_hidden()
    assert page.get_by_role("button", name="Open the survey chat").get_attribute(
        "aria-expanded") == "false"


def test_widget_stays_small_and_says_its_size(server: Server) -> None:
    """Measured as the browser gets it: the file with every language's words put in."""
    source = WIDGET.read_bytes()
    with urllib.request.urlopen(server.base + "/web/sada.js") as answer:
        served = answer.read()
    zipped = len(gzip.compress(served, 9))
    assert zipped < 30_000
    stated = re.search(rb"Size as served: ([0-9.]+) kB, ([0-9.]+) kB gzipped", source)
    assert stated, "the size comment at the top of sada.js"
    assert abs(float(stated.group(2)) * 1000 - zipped) < 200, (stated.group(0), zipped)
    # server text never goes through the HTML parser
    assert not re.search(rb"\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write",
                         source)
    # the served file is the shipped one with the catalogs' words between its marks
    head, _, rest = source.partition(b"/*sada:words*/")
    _, _, tail = rest.partition(b"/*sada:end*/")
    assert served.startswith(head) and served.endswith(tail)
    for words in ("استبيان".encode(), "نظرسنجی".encode(), b"Survey"):
        assert words in served


@pytest.mark.lang("en")
def test_long_polling_when_the_stream_fails(context: Any, server: Server) -> None:
    """A proxy that breaks server-sent events: the widget falls back to long polling."""
    page = context.new_page()
    polls: list[str] = []
    page.route("**/web/v1/stream*", lambda route: route.fulfill(status=502, body="bad gateway"))
    page.on("request", lambda r: polls.extend([r.url] if "/web/v1/poll" in r.url else []))
    page.goto(server.base + f"/s/flow/{B2B.id}")
    bot_says(page, text("stakeholder", "en"))
    click(page, label("stakeholder", "finance", "en"))
    bot_says(page, text("nps", "en"))
    type_answer(page, "8")
    bot_says(page, text("nps_why", "en"))
    assert polls
    who = visitor(page)
    assert answers(server.db, who)["nps"][1] == 8


@pytest.mark.lang("fa")
def test_offline_then_back_the_answer_goes_once(context: Any, server: Server) -> None:
    page = context.new_page()
    page.goto(server.base + f"/s/flow/{B2B.id}")
    bot_says(page, text("stakeholder", "fa"))
    context.set_offline(True)
    click(page, label("stakeholder", "buyer", "fa"))
    page.get_by_role("status").filter(has_text="اتصال قطع شد").wait_for()
    context.set_offline(False)
    bot_says(page, text("nps", "fa"))
    page.get_by_role("status").filter(has_text="اتصال قطع شد").wait_for(state="detached")
    click(page, "۶")
    bot_says(page, text("nps_why", "fa"))
    who = visitor(page)
    stored = answers(server.db, who)
    assert stored["stakeholder"][1] == "buyer" and stored["nps"][1] == 6, stored


@pytest.mark.lang("en")
def test_a_visitor_the_server_no_longer_knows_starts_afresh(context: Any, server: Server) -> None:
    """The visitor's rows gone (another database behind the same site): the next answer is
    refused as unknown_visitor, and the widget opens again as a new visitor."""
    page = context.new_page()
    page.goto(server.base + f"/s/flow/{B2B.id}")
    bot_says(page, text("stakeholder", "en"))
    old = visitor(page)
    with sqlite3.connect(server.db) as conn:
        conn.execute("delete from web_message where visitor_id = ?", (old,))
        conn.execute("delete from web_visitor where id = ?", (old,))
    click(page, label("stakeholder", "buyer", "en"))
    page.wait_for_function("old => localStorage.getItem('sada.visitor') !== old", arg=old)
    bot_says(page, text("stakeholder", "en"))
    click(page, label("stakeholder", "buyer", "en"))
    bot_says(page, text("nps", "en"))
    assert answers(server.db, visitor(page))["stakeholder"][1] == "buyer"
