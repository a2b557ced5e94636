"""Answers as people type them: digits in three scripts, yes/no words, option numbers/labels."""

from __future__ import annotations

import pytest

from bot.engine.normalize import clean_incoming, fold, local_digits
from bot.engine.parse import Accepted, Rejected, parse, pick
from bot.engine.words import is_stop, yes_or_no
from tests.engine.flowdata import FLOW

Q = {q.id: q for q in FLOW.questions}


@pytest.mark.parametrize(
    ("text", "value"),
    [("9", 9), ("٩", 9), ("۹", 9), ("10", 10), ("۱۰", 10), ("١٠", 10), (" 0 ", 0),
     ("\u200f۷\u200f", 7), ("7/10", 7), ("۷ از ۱۰", 7), ("٧ من ١٠", 7), ("１０", 10),
     ("seven", 7)],
)
def test_scores_in_any_digits(text: str, value: int) -> None:
    assert parse(Q["nps"], text) == Accepted(value)


@pytest.mark.parametrize("text", ["11", "۱۱", "-1", "7.5", "", "9 11", "٩٩"])
def test_out_of_range_scores_say_what_is_expected(text: str) -> None:
    assert parse(Q["nps"], text) == Rejected("expect_score", {"low": 0, "high": 10})


def test_csat_and_ces_bounds() -> None:
    assert parse(Q["csat"], "5") == Accepted(5)
    assert parse(Q["csat"], "0") == Rejected("expect_score", {"low": 1, "high": 5})
    assert parse(Q["buyer_ces"], "۷") == Accepted(7)
    assert parse(Q["buyer_ces"], "8") == Rejected("expect_score", {"low": 1, "high": 7})


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", "buyer"), ("۲", "user"), ("Buyer", "buyer"), ("مشتري", "buyer"), ("مشتری", "buyer"),
     ("کاربر", "user"), ("OTHER", "other"), ("user", "user"), ("أخرى", "other"),
     ("اخرى", "other")],
)
def test_choice_by_number_label_or_id(text: str, value: str) -> None:
    assert parse(Q["role"], text) == Accepted(value)


@pytest.mark.parametrize("text", ["0", "4", "manager", ""])
def test_unknown_choice(text: str) -> None:
    assert parse(Q["role"], text) == Rejected("expect_option", {"count": 3})


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", ["price"]), ("1, 3", ["price", "speed"]), ("۳،۱", ["price", "speed"]),
     ("1 2", ["price", "quality"]), ("Price and Quality", ["price", "quality"]),
     ("سرعة التوصيل", ["speed"]), ("قیمت، کیفیت", ["price", "quality"]), ("1,1", ["price"])],
)
def test_multi(text: str, value: list[str]) -> None:
    assert parse(Q["areas"], text) == Accepted(value)


@pytest.mark.parametrize("text", ["1,2,3", "", "5", "1, banana"])
def test_multi_rejects_with_limits(text: str) -> None:
    assert parse(Q["areas"], text) == Rejected("expect_picks", {"count": 3, "low": 1, "high": 2})


@pytest.mark.parametrize(
    ("text", "value"),
    [("yes", True), ("Yes!", True), ("نعم", True), ("أجل", True), ("ايوه", True), ("بله", True),
     ("آره", True), ("بلی", True), ("no", False), ("لا", False), ("كلا", False), ("نه", False),
     ("خیر", False), ("نخير", False), ("naam", True), ("na", False)],
)
def test_yes_no_words(text: str, value: bool) -> None:
    assert yes_or_no(text) is value
    assert parse(Q["resolved"], text) == Accepted(value)


def test_yes_no_rejects_other_words() -> None:
    assert parse(Q["resolved"], "maybe") == Rejected("expect_yesno")


@pytest.mark.parametrize(
    ("text", "value"),
    [("12", 12), ("۱۲۰۰", 1200), ("1,200", 1200), ("١٬٢٠٠", 1200), ("0", 0)],
)
def test_numbers(text: str, value: int) -> None:
    assert parse(Q["orders"], text) == Accepted(value)


@pytest.mark.parametrize(
    ("text", "key"),
    [("12.5", "expect_whole_number"), ("lots", "expect_whole_number"),
     ("20000", "expect_number_range"), ("-1", "expect_number_range")],
)
def test_bad_numbers(text: str, key: str) -> None:
    outcome = parse(Q["orders"], text)
    assert isinstance(outcome, Rejected) and outcome.key == key


def test_text_keeps_what_was_typed_minus_overrides() -> None:
    assert parse(Q["why"], " slow \u202e delivery ") == Accepted("slow  delivery")
    assert parse(Q["why"], "   ") == Rejected("expect_text")
    assert parse(Q["why"], "x" * 21) == Rejected("text_too_long", {"limit": 20, "length": 21})


def test_buttons_accept_only_their_own_values() -> None:
    assert pick(Q["nps"], "7") == Accepted(7)
    assert pick(Q["nps"], "11") is None
    assert pick(Q["nps"], "07") is None
    assert pick(Q["role"], "buyer") == Accepted("buyer")
    assert pick(Q["role"], "admin") is None
    assert pick(Q["resolved"], "yes") == Accepted(True)
    assert pick(Q["resolved"], "true") is None
    assert pick(Q["why"], "anything") is None


def test_stop_words_in_three_languages() -> None:
    for word in ("stop", "STOP", "توقف", "إلغاء", "الغاء", "لغو", "/stop"):
        assert is_stop(word), word
    assert not is_stop("stop sending me so many surveys")


def test_normalisation() -> None:
    assert fold("كيك") == fold("کیک")
    assert fold("مي\u200cخواهم") == fold("میخواهم")
    assert fold("سـلام") == fold("سلام")
    assert local_digits("10", "fa") == "۱۰"
    assert local_digits("10", "ar") == "١٠"
    assert local_digits("10", "en") == "10"
    assert clean_incoming("\u202eabc\u202c ") == "abc"
