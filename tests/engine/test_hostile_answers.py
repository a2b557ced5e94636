"""Answers typed to break the engine: huge numbers, signs on scores, control characters.

Each is a wrong answer with the question's normal hint, never an exception (an exception
drops the update without a reply) and never a value storage cannot hold.
"""

from __future__ import annotations

import json

import pytest

from bot.engine import inputs as i
from bot.engine.normalize import clean_incoming, fold, without_controls
from bot.engine.parse import Accepted, Rejected, parse, pick
from bot.engine.prompts import PREVIOUS_LIMIT, Ask, Notice
from bot.engine.step import new_state, step
from bot.flow.model import NUMBER_LIMIT, NumberQuestion, ScaleQuestion
from tests.engine.flowdata import FLOW

Q = {q.id: q for q in FLOW.questions}
HINTS = {"role": "expect_option", "nps": "expect_score", "csat": "expect_score",
         "areas": "expect_picks", "orders": "expect_number_range", "stars": "expect_score",
         "buyer_ces": "expect_score"}


def _number(**bounds: float) -> NumberQuestion:
    return NumberQuestion.model_validate(
        {"id": "n", "type": "number", "text": {"en": "How many?"}, **bounds})


@pytest.mark.parametrize("qid", sorted(HINTS))
@pytest.mark.parametrize("text", ["㊿" * 2200, "9" * 5000, "1" + "0" * 400, "٩" * 4301])
def test_a_huge_number_is_a_wrong_answer_with_the_normal_hint(qid: str, text: str) -> None:
    # "㊿" is "50" after NFKC: 4,400 digits, beyond what int() converts.
    outcome = parse(Q[qid], text)
    assert isinstance(outcome, Rejected) and outcome.key == HINTS[qid]


def test_a_huge_number_at_a_choice_reasks_through_the_engine() -> None:
    state, _ = step(FLOW, new_state(FLOW, language="en"), i.Start())
    assert state.current == "role"
    after, prompts = step(FLOW, state, i.Reply("㊿" * 2200))
    assert after == state
    assert prompts[0] == Notice("expect_option", {"count": 3}) and isinstance(prompts[1], Ask)


def test_a_button_value_too_long_to_be_a_score_is_not_ours() -> None:
    assert pick(Q["nps"], "0" * 5000) is None
    assert pick(Q["nps"], "7") == Accepted(7)


@pytest.mark.parametrize("text", ["1" + "0" * 400, "1" + "0" * 16, "1000000000000001",
                                  "99,999,999,999,999,999", "㊿" * 2200])
def test_a_number_beyond_the_limit_gets_the_range_with_the_limit(text: str) -> None:
    # No max: the limit stands in for it. Before, "1" and 400 zeros was stored as inf.
    assert parse(_number(), text) == Rejected(
        "expect_number_range", {"low": None, "high": NUMBER_LIMIT})
    assert parse(_number(min=0), text) == Rejected(
        "expect_number_range", {"low": 0, "high": NUMBER_LIMIT})
    assert parse(_number(integer=False), "-" + text) == Rejected(
        "expect_number_range", {"low": -NUMBER_LIMIT, "high": None})


def test_a_number_with_a_max_keeps_its_own_range_when_absurd() -> None:
    assert parse(_number(min=1, max=50), "1" + "0" * 400) == Rejected(
        "expect_number_range", {"low": 1, "high": 50})


@pytest.mark.parametrize("text", [str(NUMBER_LIMIT), str(-NUMBER_LIMIT), "0.5", "-0", "12,500"])
def test_numbers_up_to_the_limit_are_stored_as_finite_json(text: str) -> None:
    outcome = parse(_number(integer=False), text)
    assert isinstance(outcome, Accepted)
    assert json.loads(json.dumps(outcome.value, allow_nan=False)) == float(
        text.replace(",", ""))
    assert str(outcome.value) != "-0.0"  # "-0" is stored as 0


@pytest.mark.parametrize("text", ["-0", "+0", "+7", "-0.0", "+10", "-٠", "−3"])
def test_a_sign_on_a_score_is_a_wrong_answer(text: str) -> None:
    assert parse(Q["nps"], text) == Rejected("expect_score", {"low": 0, "high": 10})


def test_a_scale_with_negative_points_takes_a_minus_but_not_minus_zero() -> None:
    scale = ScaleQuestion.model_validate(
        {"id": "s", "type": "scale", "text": {"en": "?"}, "min": -3, "max": 3})
    assert parse(scale, "-3") == Accepted(-3)
    assert parse(scale, "۳-") == Rejected("expect_score", {"low": -3, "high": 3})
    for text in ("-0", "+2"):
        assert parse(scale, text) == Rejected("expect_score", {"low": -3, "high": 3})


CONTROLS = "".join(map(chr, [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0x85, 0x9F]))


def test_control_characters_never_survive_normalisation() -> None:
    text = "a\x00b" + CONTROLS + "c\r\nd\re\tf\ng"
    assert without_controls(text) == "abc\nd\ne\tf\ng"
    assert clean_incoming(text) == "abc\nd\ne\tf\ng"
    assert not set(fold(text)) & set(CONTROLS)


def test_control_characters_are_not_stored_in_answers_or_context() -> None:
    state = new_state(FLOW, language="en", context={"ticket": "T\x00-1"},
                      contact={"first_name": "Ali\x07"})
    assert state.context == {"ticket": "T-1"} and state.contact == {"first_name": "Ali"}
    state, _ = step(FLOW, state, i.Start())
    for answer in ("1", "3\x00"):  # buyer; a detractor's score (NUL after it): then "why"
        state, _ = step(FLOW, state, i.Reply(answer))
    assert state.answers["nps"].raw == "3" and state.current == "why"
    state, _ = step(FLOW, state, i.Reply("slow\x00 \x1bdelivery\r\n"))
    stored = state.answers["why"]
    assert stored.raw == "slow delivery\n" and stored.value == "slow delivery"
    assert "\\u0000" not in json.dumps(state.to_json())


def test_an_earlier_answer_shown_on_going_back_is_cut_unless_it_is_a_text() -> None:
    # "٨" amid a page of filler words is a valid score; shown again in full, the question
    # would outgrow what a channel sends (bot.messaging.capabilities).
    padded = "يعني " * 800 + "٨"
    assert parse(Q["nps"], padded) == Accepted(8)
    state, _ = step(FLOW, new_state(FLOW, language="ar"), i.Start())
    for answer in ("1", padded):  # role, then nps: on to csat
        state, _ = step(FLOW, state, i.Reply(answer))
    assert state.current == "csat"
    state, prompts = step(FLOW, state, i.Back())
    [question] = [p for p in prompts if isinstance(p, Ask)]
    assert question.question_id == "nps" and question.previous is not None
    assert len(question.previous) == PREVIOUS_LIMIT and question.previous.endswith("…")
    assert state.answers["nps"].raw == padded  # what is stored stays whole


def test_the_control_pattern_finds_exactly_what_without_controls_drops() -> None:
    from bot.engine.normalize import CONTROL

    for code in range(0x300):
        char = chr(code)
        dropped = without_controls(f"a{char}b") in ("ab", "a\nb") and char not in "\n"
        assert bool(CONTROL.match(char)) == (dropped and char != "\r"), hex(code)
