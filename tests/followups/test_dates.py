"""Promised dates in the reader's calendar and digits; spans of time for staff."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.followups.dates import format_date, span


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
