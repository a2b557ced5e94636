"""The bot's own words: every message translated, CLDR plurals, reader's digits, bidi."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.channels import text as render
from bot.engine.prompts import Ask, Notice
from bot.i18n import LOCALES_DIR, RLM, Translator

ROOT = Path(__file__).resolve().parent.parent


def catalog(lang: str):  # type: ignore[no-untyped-def]
    with (LOCALES_DIR / lang / "LC_MESSAGES" / "sada.po").open("rb") as fh:
        return read_po(fh, locale=lang)


def code_messages() -> set[str | tuple[str, ...]]:
    keywords = {"gettext": None, "ngettext": (1, 2), "N_": None}
    found = extract_from_dir(str(ROOT / "bot"), keywords=keywords)  # type: ignore[arg-type]
    return {msg for _, _, msg, _, _ in found}


@pytest.mark.parametrize("lang", ["ar", "fa"])
def test_every_message_in_the_code_is_translated(lang: str) -> None:
    translated = {m.id: m.string for m in catalog(lang) if m.id}
    missing = []
    for msgid in code_messages():
        string = translated.get(msgid)
        forms = string if isinstance(string, tuple) else (string,)
        if not string or not all(forms):
            missing.append(msgid)
    assert not missing, f"untranslated in {lang} (run `make i18n` and translate): {missing}"


def test_plural_headers_follow_cldr() -> None:
    assert catalog("ar").num_plurals == 6
    assert catalog("fa").num_plurals == 2
    ar = Translator("ar")
    forms = [ar.ngettext("{n} question", "{n} questions", n) for n in (0, 1, 2, 3, 10, 11, 99, 100,
                                                                       101, 103, 111)]
    assert forms == ["لا أسئلة", "سؤالًا واحدًا", "سؤالين", "٣ أسئلة", "١٠ أسئلة", "١١ سؤالًا",
                     "٩٩ سؤالًا", "١٠٠ سؤال", "١٠١ سؤال", "١٠٣ أسئلة", "١١١ سؤالًا"]
    fa = Translator("fa")
    assert fa.ngettext("about {n} minute left", "about {n} minutes left", 3) == "حدود ۳ دقیقه مانده"


def test_digits_and_isolation() -> None:
    assert Translator("fa").gettext("Question {index} of {total}", index=3, total=12) == \
        "سؤال ۳ از ۱۲"
    assert Translator("ar").gettext("Question {index} of {total}", index=3, total=12) == \
        "السؤال ٣ من ١٢"
    assert Translator("en").gettext("Question {index} of {total}", index=3, total=12) == \
        "Question 3 of 12"
    answer = Translator("fa").gettext("Your earlier answer: {answer}", answer="Acme Ltd")
    assert "\u2068Acme Ltd\u2069" in answer


def test_rtl_lines_start_with_rlm() -> None:
    ask = Ask(question_id="nps", type="nps", text="۹ نفر از ۱۰ نفر؟", language="fa",
              group_title="برداشت‌ها", new_group=True, index=1, total=5, seconds_left=100,
              optional=False, can_go_back=False, low=0, high=10, low_label="اصلاً",
              high_label="حتماً")
    lines = render.question(ask, Translator("fa"), typed=True).splitlines()
    assert all(line.startswith(RLM) for line in lines if line)
    assert not render.question(ask, Translator("en"), typed=True).startswith(RLM)


@pytest.mark.parametrize("lang", ["ar", "fa", "en"])
def test_every_notice_renders_without_placeholders_left(lang: str) -> None:
    params = {"low": 1, "high": 3, "count": 4, "questions": 5, "minutes": 2, "limit": 20,
              "length": 25, "languages": ["ar", "fa"]}
    keys = ["intro_summary", "expect_score", "expect_option", "expect_picks", "too_many_picks",
            "expect_yesno", "expect_whole_number", "expect_number", "expect_number_range",
            "expect_text", "text_too_long", "cannot_skip", "cannot_go_back", "stale_button",
            "unknown_button", "already_completed", "survey_stopped", "stopped", "welcome_back",
            "language_changed", "language_unavailable", "thanks", "no-such-key"]
    for key in keys:
        shown = render.notice(Notice(key, params), Translator(lang))
        assert shown and "{" not in shown, (key, shown)


def test_catalogs_are_up_to_date_with_the_code() -> None:
    """`make i18n` was run after the last string change: the template lists every message."""
    with (LOCALES_DIR / "sada.pot").open("rb") as fh:
        template = {m.id for m in read_po(fh) if m.id}
    assert code_messages() == template


def test_pybabel_compiles_the_catalogs(tmp_path: Path) -> None:
    for lang in ("ar", "fa", "en"):
        po = LOCALES_DIR / lang / "LC_MESSAGES" / "sada.po"
        out = tmp_path / f"{lang}.mo"
        result = subprocess.run(
            [str(Path(sys.executable).parent / "pybabel"), "compile", "--statistics", "-i",
             str(po), "-o", str(out), "-l", lang], capture_output=True, text=True, check=False)
        assert result.returncode == 0 and out.stat().st_size > 0, result.stderr


# --- a missing or unreadable catalog is never a silent fall-back to English ----------------

GOOD_TOKEN = "123456789:" + "A" * 35


@pytest.fixture
def catalogs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Path:
    """A copy of the catalogs, read instead of the real ones, for a test to break; a clean
    SADA_* environment in an empty folder, with the example flows and an unreachable Bot API
    (so a check that came too late would fail differently)."""
    import os
    import shutil
    import socket

    from bot import i18n
    from bot.settings import get_settings

    copy = tmp_path / "locales"
    # as a fresh clone has it: the .mo files `make i18n` leaves in a checkout would stand in
    # for a .po these tests remove
    shutil.copytree(str(LOCALES_DIR), copy, ignore=shutil.ignore_patterns("*.mo"))
    shutil.copytree(ROOT / "flows", tmp_path / "flows")
    monkeypatch.setattr(i18n, "LOCALES_DIR", copy)
    for name in list(os.environ):
        if name.startswith("SADA_"):
            monkeypatch.delenv(name)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SADA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SADA_TELEGRAM_TOKEN", GOOD_TOKEN)
    monkeypatch.setenv("SADA_TELEGRAM_API_URL", f"http://127.0.0.1:{port}")
    for cached in (i18n._catalog, get_settings):
        cached.cache_clear()
        request.addfinalizer(cached.cache_clear)
    return copy


def sada(*args: str) -> tuple[int, list[str]]:
    from typer.testing import CliRunner

    from bot.cli import app

    result = CliRunner().invoke(app, list(args), input="")
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output.strip().splitlines()


def break_catalog(locales: Path, lang: str, how: str) -> Path:
    """Break one language's catalog on disk; the file the message must name."""
    folder = locales / lang / "LC_MESSAGES"
    if how == "missing":
        (folder / "sada.po").unlink()
        return folder / "sada.po"
    if how == "corrupt .mo":  # newer than its .po, so it is the one read
        (folder / "sada.mo").write_bytes(b"not a catalog")
        return folder / "sada.mo"
    (folder / "sada.po").write_text('msgid "Yes"\nthis is not a po line\n', encoding="utf-8")
    return folder / "sada.po"


def test_the_real_catalogs_pass_the_check() -> None:
    from bot.i18n import check_catalogs

    check_catalogs(["ar", "fa", "en"])


@pytest.mark.parametrize(("lang", "how", "says"), [
    ("fa", "missing", "the Persian (fa) catalog is missing"),
    ("ar", "corrupt .mo", "the Arabic (ar) catalog"),
    ("en", "invalid .po", "the English (en) catalog"),
])
def test_run_stops_on_a_broken_catalog_before_connecting(
    catalogs: Path, lang: str, how: str, says: str
) -> None:
    broken = break_catalog(catalogs, lang, how)
    code, lines = sada("run")
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith(says), lines
    assert str(broken) in lines[0] and "reinstall sada" in lines[0]
    assert not (catalogs.parent / "data").exists()  # no database was opened


def test_run_needs_every_language_even_with_english_only_flows(catalogs: Path) -> None:
    """The bot's language menu offers ar, fa and en whatever the flows speak."""
    break_catalog(catalogs, "fa", "missing")
    flows = catalogs.parent / "flows"
    for flow in flows.glob("*.yaml"):
        flow.unlink()
    minimal = ROOT / "tests" / "fixtures" / "flows" / "minimal.yaml"  # English only
    (flows / "minimal.yaml").write_bytes(minimal.read_bytes())
    code, lines = sada("run")
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("the Persian (fa) catalog is missing"), lines


@pytest.mark.parametrize(("lang", "how"), [("fa", "missing"), ("fa", "corrupt .mo"),
                                           ("ar", "invalid .po"), ("en", "missing")])
def test_preview_stops_on_a_broken_catalog(catalogs: Path, lang: str, how: str) -> None:
    broken = break_catalog(catalogs, lang, how)
    code, lines = sada("preview", "flows/b2b_supplier.yaml", "--lang", "fa")
    assert code == 1
    assert len(lines) == 1 and f"({lang}) catalog" in lines[0] and str(broken) in lines[0], lines
    assert not (catalogs.parent / "data").exists()


def test_decimals_use_the_arabic_decimal_separator() -> None:
    assert Translator("fa").number(2.5) == "۲٫۵"
    assert Translator("ar").number(2.5) == "٢٫٥"
    assert Translator("en").number(2.5) == "2.5"
    assert Translator("ar").number(3.0) == "٣" and Translator("fa").number(12) == "۱۲"
    shown = Translator("fa").gettext("{score} out of {high}", score=7.5, high=10)
    assert "۷٫۵" in shown and "." not in shown


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, "٠ يوم"), (1, "يوم واحد"), (2, "يومين"), (3, "٣ أيام"), (10, "١٠ أيام"),
     (11, "١١ يومًا"), (99, "٩٩ يومًا"), (100, "١٠٠ يوم"), (102, "١٠٢ يوم"), (103, "١٠٣ أيام")],
)
def test_staff_counts_take_all_six_arabic_plural_forms(n: int, expected: str) -> None:
    assert Translator("ar").ngettext("{n} day", "{n} days", n) == expected


def test_staff_counts_in_persian_and_english() -> None:
    assert Translator("fa").ngettext("{n} reminder", "{n} reminders", 3) == "۳ یادآوری"
    assert Translator("en").ngettext("{n} reminder", "{n} reminders", 1) == "1 reminder"
    assert Translator("en").ngettext("{n} reminder", "{n} reminders", 2) == "2 reminders"
    forms = [Translator("ar").ngettext("{n} reminder", "{n} reminders", n) for n in (1, 2, 5)]
    assert forms == ["تذكير واحد", "تذكيران", "٥ تذكيرات"]


def test_in_a_checkout_the_newer_of_po_and_mo_is_read(catalogs: Path) -> None:
    """`make i18n` compiles .mo files into locales/; a .po edited afterwards still wins."""
    import os

    from bot import i18n

    folder = catalogs / "fa" / "LC_MESSAGES"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "compile", "-D", "sada",
                    "-d", str(catalogs), "-l", "fa"], check=True, capture_output=True)
    po = folder / "sada.po"
    compiled = catalog("fa")["Yes"].string
    text = po.read_text("utf-8")
    entry = f'msgid "Yes"\nmsgstr "{compiled}"'
    assert entry in text
    po.write_text(text.replace(entry, 'msgid "Yes"\nmsgstr "ویرایش"'), "utf-8")
    mo_time = (folder / "sada.mo").stat().st_mtime
    os.utime(po, (mo_time + 10, mo_time + 10))
    assert Translator("fa").gettext("Yes") == "ویرایش"
    os.utime(po, (mo_time - 10, mo_time - 10))
    i18n._catalog.cache_clear()
    assert Translator("fa").gettext("Yes") == compiled


@pytest.mark.parametrize(
    ("lang", "n", "expected"),
    [
        ("ar", 1, "بعد ساعة واحدة من التنبيه"),
        ("ar", 2, "بعد ساعتين من التنبيه"),
        ("ar", 5, "بعد ٥ ساعات من التنبيه"),
        ("ar", 12, "بعد ١٢ ساعة من التنبيه"),
        ("fa", 12, "۱۲ ساعت پس از هشدار"),
        ("en", 1, "1 hour after the alert"),
    ],
)
def test_staff_counts_take_each_languages_plural_forms(lang: str, n: int, expected: str) -> None:
    t = Translator(lang)
    text = t.ngettext("Case {case} resolved, {hours} hour after the alert.",
                      "Case {case} resolved, {hours} hours after the alert.", n, case=3,
                      hours=n)
    assert expected in text.replace("\u2068", "").replace("\u2069", "")


@pytest.mark.parametrize(
    ("lang", "expected"),
    [("fa", "منظورتان ۷ یا ۸ است؟"), ("ar", "هل تقصدون ٧ أو ٨؟"), ("en", "Do you mean 7 or 8?")],
)
def test_an_ambiguous_score_is_asked_back_as_an_or_question(lang: str, expected: str) -> None:
    notice = Notice("ambiguous_score", {"candidates": [7, 8], "low": 0, "high": 10})
    shown = render.notice(notice, Translator(lang)).replace("\u2068", "").replace("\u2069", "")
    assert shown.startswith(expected)


@pytest.mark.parametrize(("hours", "expected"),
                         [(2.0, (2, 2)), (2.04, (2, 2)), (3.46, (3.5, 100)), (12.6, (13, 13))])
def test_hours_take_their_own_plural_form_when_whole(hours: float,
                                                     expected: tuple[float, int]) -> None:
    from bot.i18n import rounded_hours

    assert rounded_hours(hours) == expected
