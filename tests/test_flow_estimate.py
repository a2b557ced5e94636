"""The completion-time estimate: reading speed per language plus answer time per type."""

from __future__ import annotations

import pytest

from bot.flow.estimate import (
    ANSWER_SECONDS,
    LIMIT_SECONDS,
    READING_WPM,
    Estimate,
    clock,
    estimate,
    question_seconds,
    spoken,
    text_seconds,
    words,
)
from bot.flow.model import LANGUAGES, QUESTION_TYPES, Flow


def _words(n: int) -> str:
    return " ".join(["word"] * n)


def _flow(questions: list[dict[str, object]], **extra: object) -> Flow:
    data: dict[str, object] = {
        "id": "demo",
        "languages": ["ar", "en"],
        "default_language": "en",
        "title": {"ar": "ت", "en": "T"},
        "intro": {"ar": _words(23), "en": _words(119)},
        "outro": [
            {"when": "nps <= 6", "text": {"ar": _words(46), "en": _words(10)}},
            {"text": {"ar": _words(23), "en": _words(238)}},
        ],
        "groups": [{"id": "g", "title": {"ar": "ت", "en": "G"}, "questions": questions}],
    }
    data.update(extra)
    return Flow.model_validate(data)


def test_figures_cover_every_language_and_type() -> None:
    assert READING_WPM == {"en": 238.0, "ar": 138.0, "fa": 150.0}
    assert set(READING_WPM) == set(LANGUAGES)
    assert set(ANSWER_SECONDS) == set(QUESTION_TYPES)
    assert LIMIT_SECONDS == 240


def test_words_split_on_whitespace_and_keep_zwnj_words_whole() -> None:
    assert words("How likely are you\nto recommend us?") == 7
    assert words("این کار می\u200cشود") == 3
    assert words("   ") == 0


@pytest.mark.parametrize(("lang", "count"), [("en", 238), ("ar", 138), ("fa", 150)])
def test_text_seconds_reads_a_minute_of_words_in_sixty_seconds(lang: str, count: int) -> None:
    assert text_seconds(_words(count), lang) == pytest.approx(60.0)


def test_an_unknown_language_reads_at_the_slowest_speed() -> None:
    assert text_seconds(_words(138), "de") == pytest.approx(60.0)


def test_question_seconds_adds_labels_options_and_answer_time() -> None:
    flow = _flow(
        [
            {
                "id": "nps",
                "type": "nps",
                "text": {"ar": _words(69), "en": _words(119)},
                "labels": {"min": {"ar": _words(69), "en": "a"}, "max": {"en": "b"}},
            },
            {
                "id": "reason",
                "type": "choice",
                "text": {"ar": "x", "en": _words(17)},
                "options": [
                    {"id": "a", "label": {"ar": "x", "en": _words(17)}},
                    {"id": "b", "label": {"ar": "x", "en": _words(17)}},
                ],
            },
            {"id": "why", "type": "text", "text": {"ar": "x", "en": "Why?"}},
        ]
    )
    nps, reason, why = flow.questions
    assert question_seconds(nps, "en") == pytest.approx((119 + 2) * 60 / 238 + 4)
    # The max label has no Arabic: any text stands in rather than failing.
    assert question_seconds(nps, "ar") == pytest.approx((69 + 69 + 1) * 60 / 138 + 4)
    assert question_seconds(reason, "en") == pytest.approx(51 * 60 / 238 + 5)
    assert question_seconds(why, "en") == pytest.approx(60 / 238 + 30)


def test_estimate_counts_intro_every_question_and_the_longest_outro() -> None:
    flow = _flow(
        [
            {"id": "nps", "type": "nps", "text": {"ar": _words(23), "en": _words(119)}},
            {
                "id": "why",
                "type": "text",
                "when": "nps <= 6",  # conditional questions count in full
                "text": {"ar": _words(23), "en": _words(119)},
            },
        ]
    )
    result = estimate(flow)
    assert result.questions == 2
    # en: intro 30 s + nps 30+4 + why 30+30 + longest outro (238 words) 60 s
    assert result.seconds_by_language["en"] == pytest.approx(30 + 34 + 60 + 60)
    # ar: intro 10 s + nps 10+4 + why 10+30 + longest outro (46 words) 20 s
    assert result.seconds_by_language["ar"] == pytest.approx(10 + 14 + 40 + 20)
    assert result.worst_seconds == pytest.approx(184)
    assert result.worst_language == "en"
    assert result.minutes == 4


def test_minutes_round_up_and_are_at_least_one() -> None:
    assert Estimate({"en": 0.0}, 0).minutes == 1
    assert Estimate({"en": 60.0}, 1).minutes == 1
    assert Estimate({"en": 60.5}, 1).minutes == 2
    assert Estimate({"en": 10.0, "ar": 130.0}, 1).minutes == 3
    assert Estimate({}, 0).worst_seconds == 0.0
    assert Estimate({}, 0).worst_language is None


@pytest.mark.parametrize(
    ("seconds", "short", "long"),
    [
        (0, "0m00s", "0 s"),
        (42.4, "0m42s", "42 s"),
        (185, "3m05s", "3 min 5 s"),
        (240, "4m00s", "4 min"),
        (275, "4m35s", "4 min 35 s"),
    ],
)
def test_duration_formats(seconds: float, short: str, long: str) -> None:
    assert clock(seconds) == short
    assert spoken(seconds) == long
