"""Promised dates in the reader's calendar and digits; spans of time for staff."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from bot.followups.dates import format_date, parse_day, parse_moment, span
from bot.reports.periods import BadDate


@pytest.mark.parametrize(
    ("day", "lang", "expected"),
    [
        (date(2026, 12, 12), "fa", "۲۱ آذر ۱۴۰۵"),
        (date(2026, 3, 21), "fa", "۱ فروردین ۱۴۰۵"),  # Nowruz: the Persian new year
        (date(2026, 3, 20), "fa", "۲۹ اسفند ۱۴۰۴"),
        (date(2026, 12, 12), "ar", "١٢ ديسمبر ٢٠٢٦"),
        (date(2027, 1, 5), "ar", "٥ يناير ٢٠٢٧"),
        (date(2026, 12, 12), "en", "12 December 2026"),
        (date(2027, 1, 5), "en", "5 January 2027"),
    ],
)
def test_each_reader_gets_their_calendar_and_digits(day: date, lang: str, expected: str) -> None:
    assert format_date(day, lang) == expected


def test_no_latin_digits_in_arabic_or_persian() -> None:
    for lang in ("ar", "fa"):
        text = format_date(date(2031, 7, 19), lang)
        assert not any(c in "0123456789" for c in text), text


def test_hijri_on_request_only() -> None:
    assert format_date(date(2026, 12, 12), "ar", hijri=True) == "٣ رجب ١٤٤٨ هـ"
    # Umm al-Qura tables end in 2077: outside them the Gregorian date is still right
    assert format_date(date(2090, 1, 1), "ar", hijri=True) == "١ يناير ٢٠٩٠"
    assert format_date(date(2026, 12, 12), "fa", hijri=True) == "۲۱ آذر ۱۴۰۵"


def test_unknown_language_reads_as_english() -> None:
    assert format_date(date(2026, 12, 12), "de") == "12 December 2026"


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=59), "0m"),
        (timedelta(minutes=45), "45m"),
        (timedelta(hours=3, minutes=5), "3h 05m"),
        (timedelta(days=2, hours=4, minutes=59), "2d 4h"),
        (timedelta(seconds=-5), "0m"),
    ],
)
def test_span(delta: timedelta, expected: str) -> None:
    assert span(delta) == expected


# --- dates and times staff type: one parser for every option ------------------------------

@pytest.mark.parametrize("text", ["2026-12-20", "۲۰۲۶-۱۲-۲۰", "٢٠٢٦-١٢-٢٠", "२०२६-१२-२०",
                                  "২০২৬-১২-২০", "２０２６-１２-２０", " 2026-12-20 "])
def test_a_day_in_any_digits(text: str) -> None:
    assert parse_day(text, "--promised") == date(2026, 12, 20)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("²026-12-20", "--promised '²026-12-20' is not a date: write it as YYYY-MM-DD"),
        ("20261220", "--promised '20261220' is not a date"),  # not seconds since 1970
        ("2026-02-30", "--promised '2026-02-30' is not a date"),
        ("9999-12-31", "--promised '9999-12-31' is out of range: give a date between "
                       "1970-01-01 and 2999-12-31"),
        ("0001-01-01", "--promised '0001-01-01' is out of range"),
    ],
)
def test_a_day_that_is_not_one(text: str, message: str) -> None:
    with pytest.raises(BadDate) as raised:
        parse_day(text, "--promised")
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_a_moment_in_any_digits_and_range() -> None:
    assert parse_moment("۲۰۲۶-۱۲-۰۱T۰۹:۰۰+۰۳:۳۰") == datetime(2026, 12, 1, 5, 30, tzinfo=UTC)
    assert parse_moment("2026-12-01 09:00") == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    for far in ("9999-12-31T23:59+14:00", "0001-01-01T00:00+14:00", "3000-01-01T00:00Z"):
        with pytest.raises(BadDate, match="is out of range"):
            parse_moment(far, "--at")
