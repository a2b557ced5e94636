"""Right-to-left text as a reader's screen shows it: commands, Latin words, URLs, brackets
and the Back/Skip arrows, laid out by python-bidi (the Unicode bidi algorithm)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bidi import get_base_level, get_display
from bidi.mirror import MIRRORED

from bot.channels import text as render
from bot.conversation.controller import help_text
from bot.engine import inputs as i
from bot.engine.normalize import BIDI_CONTROLS, fold
from bot.engine.prompts import Ask, AskConsent, Notice, Say
from bot.engine.step import new_state, step
from bot.flow.loader import load_flow
from bot.i18n import RLM, Translator
from bot.messaging.keyboards import Signer, question_keyboard
from tests.engine.flowdata import FLOW

RTL = ["ar", "fa"]
FLOWS = Path(__file__).resolve().parent.parent / "flows"
_LEVEL = re.compile(r"Level\(\s*(\d+),\s*\)")


def _levels(line: str) -> tuple[list[int], int]:
    """Per-character embedding levels and the paragraph level, from python-bidi 0.6 (whose
    debug output gives them per UTF-8 byte), the base direction found as clients find it:
    from the first strong character outside isolates."""
    info = get_display(line, debug=True)
    body, paragraphs = info.split("levels:", 1)[1].split("paragraphs:", 1)
    by_byte = [int(level) for level in _LEVEL.findall(body)]
    levels, offset = [], 0
    for char in line:
        levels.append(by_byte[offset])
        offset += len(char.encode())
    return levels, int(_LEVEL.findall(paragraphs)[0])


def _reorder(chars: list[str], levels: list[int]) -> list[str]:
    """Rule L2: from the highest level down to the lowest odd one, reverse every run at
    that level or above."""
    chars, levels = list(chars), list(levels)
    top = max(levels, default=0)
    lowest_odd = min((lv for lv in levels if lv % 2), default=top + 1)
    for level in range(top, lowest_odd - 1, -1):
        index = 0
        while index < len(chars):
            if levels[index] >= level:
                end = index
                while end < len(chars) and levels[end] >= level:
                    end += 1
                chars[index:end] = chars[index:end][::-1]
                levels[index:end] = levels[index:end][::-1]
                index = end
            else:
                index += 1
    return chars


def visual(text: str) -> str:
    """Each line left to right as displayed: reordered, with mirrored glyphs in right-to-left
    runs (rule L4, which python-bidi's Rust core leaves out), invisible marks dropped."""
    shown = []
    for line in text.splitlines():
        levels, paragraph = _levels(line)
        # L1: trailing spaces and marks take the paragraph's level
        end = len(line)
        while end and (line[end - 1].isspace() or line[end - 1] in BIDI_CONTROLS):
            end -= 1
            levels[end] = paragraph
        # our reordering must agree with python-bidi's (up to where invisible marks land)
        # before we add mirroring
        assert _visible(_reorder(list(line), levels)) == _visible(get_display(line))
        mirrored = [MIRRORED.get(c, c) if lv % 2 else c
                    for c, lv in zip(line, levels, strict=True)]
        ordered = _reorder(mirrored, levels)
        shown.append(_visible(ordered))
    return "\n".join(shown)


def _visible(chars: str | list[str]) -> str:
    return "".join(c for c in chars if c not in BIDI_CONTROLS)


def rtl_line(line: str) -> bool:
    return get_base_level(line) == 1 and line.startswith(RLM)


def test_the_helper_mirrors_and_reorders_like_a_screen() -> None:
    assert visual("\u200fسلام (دنیا)") == "(ایند) مالس"
    assert visual("Hello (world)") == "Hello (world)"
    # what customers saw before: a bare command in Persian text reads backwards
    assert "skip/" in visual("\u200fبرای رد شدن /skip را بفرستید")


def ask(lang: str, **changes: object) -> Ask:
    fields: dict[str, object] = dict(
        question_id="comment", type="text", text={"ar": "هل من شيء آخر؟",
                                                  "fa": "چیز دیگری هست؟"}.get(lang, "More?"),
        language=lang, group_title="", new_group=False, index=3, total=3, seconds_left=20,
        optional=True, can_go_back=True)
    fields.update(changes)
    return Ask(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("lang", RTL)
def test_the_optional_hint_reads_slash_skip(lang: str) -> None:
    shown = render.question(ask(lang), Translator(lang), typed=False)
    hint = next(line for line in shown.splitlines() if "skip" in line)
    assert rtl_line(hint)
    assert "/skip" in visual(hint) and "skip/" not in visual(hint)
    # the command is tappable: nothing between "/" and its name
    assert "/skip" in hint


@pytest.mark.parametrize("lang", RTL)
def test_every_help_line_starts_right_to_left_with_its_command_readable(lang: str) -> None:
    lines = help_text(Translator(lang)).splitlines()
    assert len(lines) == 7
    for line in lines:
        assert rtl_line(line), line
    for command in ("back", "skip", "language", "stop", "export", "forget"):
        line = next(line for line in lines if f"/{command}" in line)
        shown = visual(line)
        assert f"/{command}" in shown and f"{command}/" not in shown
        # the line starts at the right with its command, not at the left
        assert shown.rstrip().endswith(f"/{command}"), shown


@pytest.mark.parametrize("lang", RTL)
def test_the_post_support_consent_keeps_each_command_in_its_brackets(lang: str) -> None:
    flow = load_flow(FLOWS / "post_support.yaml").flow
    consent = flow.consent[lang]  # type: ignore[index]
    assert "(/export، /forget)" in consent
    for typed in (False, True):
        shown = render.prompt(AskConsent(consent, lang), Translator(lang), typed=typed)
        assert all(rtl_line(line) for line in shown.splitlines())
        screen = visual(shown)
        assert "export/" not in screen and "forget/" not in screen
        # right to left, /export comes first (at the right), each command whole, and the
        # brackets open at the right and close at the left around both
        assert "(/forget ،/export)" in screen, screen


@pytest.mark.parametrize("lang", RTL)
@pytest.mark.parametrize("key", ["survey_stopped", "stopped", "consent_declined"])
def test_notices_with_commands(lang: str, key: str) -> None:
    shown = render.prompt(Notice(key), Translator(lang), typed=False)
    assert rtl_line(shown)
    assert "/start" in visual(shown) and "start/" not in visual(shown)


@pytest.mark.parametrize("lang", RTL)
def test_a_url_an_email_and_a_brand_keep_their_order(lang: str) -> None:
    say = Say("جزئیات در https://sada.example.com/help?lang=fa. یا info@sada.example.com، "
              "با Sada Support\nhttps://sada.example.com")
    shown = render.prompt(say, Translator(lang), typed=False)
    first, second = visual(shown).splitlines()
    for token in ("https://sada.example.com/help?lang=fa", "info@sada.example.com",
                  "Sada Support"):
        assert token in first
    # the full stop stays with the Persian sentence, outside the URL
    assert "\u2069." in shown
    # a line that is only a URL still starts right to left (RLM) and shows it whole
    assert rtl_line(shown.splitlines()[1]) and second == "https://sada.example.com"


def test_isolating_twice_changes_nothing_and_english_is_untouched() -> None:
    fa = Translator("fa")
    once = fa.isolate_ltr("بفرستید /skip یا \u2068Acme Ltd\u2069")
    assert fa.isolate_ltr(once) == once
    assert "\u2068Acme Ltd\u2069" in once  # a placeholder value is isolated already
    en = Translator("en")
    assert en.gettext("(optional: send /skip to skip)") == "(optional: send /skip to skip)"


def test_a_copied_isolated_command_still_works() -> None:
    copied = "\u2066\u200e/skip\u200e\u2069"
    assert fold(copied) == "/skip"
    state = new_state(FLOW, language="fa")
    state, _ = step(FLOW, state, i.Start())
    assert state.current == "role"
    state, _ = step(FLOW, state, i.Reply("2"))
    state, _ = step(FLOW, state, i.Reply("3"))
    assert state.current == "why"  # optional
    state, prompts = step(FLOW, state, i.Reply(copied))
    assert state.answers["why"].skipped and state.current == "csat", prompts


# --- Back and Skip -------------------------------------------------------------------------

RIGHT, LEFT = "→»›", "←«‹"


@pytest.mark.parametrize("lang", RTL)
def test_back_points_right_and_skip_points_left_as_displayed(lang: str) -> None:
    t = Translator(lang)
    back, skip = t.gettext("« Back"), t.gettext("Skip »")
    # a button label takes its direction from its first strong letter: right to left
    assert get_base_level(back) == 1 and get_base_level(skip) == 1
    assert visual(back).rstrip()[-1] in RIGHT, visual(back)  # at the right, pointing right
    assert visual(skip).lstrip()[0] in LEFT, visual(skip)  # at the left, pointing left
    keyboard = question_keyboard(ask(lang), t, Signer("s"), 7, 3, 1)
    assert keyboard is not None
    assert [b.text for b in keyboard[-1]] == [skip, back]  # Telegram lays rows left to right


def test_english_back_and_skip_are_unchanged() -> None:
    t = Translator("en")
    assert (t.gettext("« Back"), t.gettext("Skip »")) == ("« Back", "Skip »")
