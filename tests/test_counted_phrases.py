"""{duration} and {question_count} in an intro: the reader's grammar for any count."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.channels import text as render
from bot.engine import inputs as i
from bot.engine.prompts import DURATION, QUESTION_COUNT, Ask, Say
from bot.engine.step import new_state, step
from bot.flow.loader import load_flow
from bot.flow.model import Flow
from bot.i18n import Translator
from tests.engine.flowdata import FLOW

# the grammatical core each count needs, as a native reader checks it
MINUTES = {
    "ar": {1: "دقيقة واحدة", 2: "دقيقتين", 3: "٣ دقائق", 5: "٥ دقائق", 11: "١١ دقيقة"},
    "fa": {1: "۱ دقیقه", 2: "۲ دقیقه", 3: "۳ دقیقه", 5: "۵ دقیقه", 11: "۱۱ دقیقه"},
    "en": {1: "about 1 minute", 2: "about 2 minutes", 3: "about 3 minutes",
           5: "about 5 minutes", 11: "about 11 minutes"},
}
QUESTIONS = {
    "ar": {1: "سؤالًا واحدًا", 2: "سؤالين", 3: "٣ أسئلة", 5: "٥ أسئلة", 11: "١١ سؤالًا"},
    "fa": {n: f"{d} (سؤال|پرسش)" for n, d in ((1, "۱"), (2, "۲"), (3, "۳"), (5, "۵"),
                                              (11, "۱۱"))},
    "en": {1: "1 question", 2: "2 questions", 3: "3 questions", 5: "5 questions",
           11: "11 questions"},
}


@pytest.mark.parametrize("lang", ["ar", "fa", "en"])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 11])
def test_counted_phrases_are_grammatical(lang: str, n: int) -> None:
    say = Say(f"[{DURATION}] [{QUESTION_COUNT}]", minutes=n, questions=n)
    shown = render.prompt(say, Translator(lang), typed=False)
    assert "\ue000" not in shown and "\ue001" not in shown
    duration, questions = re.findall(r"\[([^\]]*)\]", shown)
    assert MINUTES[lang][n] in duration, duration
    assert re.search(QUESTIONS[lang][n], questions), questions
    if lang == "ar" and n >= 11:
        assert "دقائق" not in duration and "أسئلة" not in questions
    if lang == "ar" and n <= 2:
        assert not re.search("[٠-٩]", duration + questions)  # "دقيقتين", not "٢ دقيقتين"
    if lang == "en" and n == 1:
        assert "minutes" not in duration and "questions" not in questions


@pytest.mark.parametrize("lang", ["ar", "fa", "en"])
def test_an_intro_with_duration_renders_through_the_engine(lang: str) -> None:
    intro = {"ar": "يستغرق هذا الاستبيان {duration}.", "fa": "این نظرسنجی {duration} طول می‌کشد.",
             "en": "This takes {duration}."}
    flow = Flow.model_validate({**FLOW.model_dump(mode="json", exclude_none=True),
                                "intro": intro})
    _, prompts = step(flow, new_state(flow, language=lang), i.Start())
    say = prompts[0]
    assert isinstance(say, Say) and say.minutes is not None
    t = Translator(lang)
    shown = render.prompt(say, t, typed=False)
    phrase = t.ngettext("about {n} minute", "about {n} minutes", say.minutes)
    assert shown == t.line(intro[lang].replace("{duration}", phrase))


UP_TO = {"ar": {3: "ما يصل إلى ٣ أسئلة", 11: "ما يصل إلى ١١ سؤالًا"},
         "fa": {3: "حداکثر ۳ سؤال", 11: "حداکثر ۱۱ سؤال"},
         "en": {3: "up to 3 questions", 11: "up to 11 questions"}}


@pytest.mark.parametrize("lang", ["ar", "fa", "en"])
@pytest.mark.parametrize("n", [3, 11])
def test_a_count_that_depends_on_answers_says_up_to(lang: str, n: int) -> None:
    """The progress line will say "1 of 2–n": the intro must not promise exactly n."""
    say = Say(f"[{QUESTION_COUNT}]", questions=n, fewest=2)
    assert UP_TO[lang][n] in render.prompt(say, Translator(lang), typed=False)


def test_the_intro_counts_up_to_when_conditions_may_skip_questions() -> None:
    """The B2B survey asks 7 to 9 questions: its intro says "up to 9", as its first
    question's "Question 1 of 7–9" does."""
    flow = load_flow(Path(__file__).parent.parent / "flows" / "b2b_supplier.yaml").flow
    for lang, shown in (("en", "up to 9 questions"), ("fa", "حداکثر ۹ سؤال"),
                        ("ar", "ما يصل إلى ٩ أسئلة")):
        _, prompts = step(flow, new_state(flow, language=lang), i.Start())
        say = prompts[0]
        assert isinstance(say, Say) and (say.fewest, say.questions) == (7, 9)
        assert shown in render.prompt(say, Translator(lang), typed=False)


def test_the_intro_and_the_first_question_say_the_same_minutes() -> None:
    """Shown one line apart, "about 4 minutes" then "about 3 minutes left" would read as a
    contradiction: both count the questions' time, rounded up alike."""
    flow = load_flow(Path(__file__).parent.parent / "flows" / "b2b_supplier.yaml").flow
    for lang in ("ar", "fa", "en"):
        _, prompts = step(flow, new_state(flow, language=lang), i.Start())
        say, ask = prompts[0], prompts[-1]
        assert isinstance(say, Say) and isinstance(ask, Ask) and say.minutes is not None
        t = Translator(lang)
        said = t.ngettext("about {n} minute", "about {n} minutes", say.minutes)
        left = t.ngettext("about {n} minute left", "about {n} minutes left", say.minutes)
        assert said in render.prompt(say, t, typed=False)
        assert left in render.progress(ask, t), (lang, render.progress(ask, t))
