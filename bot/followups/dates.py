"""Dates as each reader expects them, and spans of time as staff read them.

A promised date reaches the respondent in their own calendar and digits:

- fa: the Persian (Jalali, solar hijri) calendar that Iran uses for everything, with Persian
  month names and ۰-۹ digits: "۲۱ آذر ۱۴۰۵".
- ar: the Gregorian calendar with Arabic month names (Babel's CLDR data for "ar") and
  Arabic-Indic ٠-٩ digits: "١٢ ديسمبر ٢٠٢٦". Business promises (deliveries, contracts,
  invoices) are agreed on Gregorian dates across the Arab states; the Umm al-Qura Hijri
  date is available with ``hijri=True`` for teams who want it, but is not the default,
  so a promise never reads as two different days.
- en: "12 December 2026" (day first: unambiguous, and what our other two languages do).

Babel is Gregorian only, hence jdatetime for Jalali and hijridate for Hijri.

Staff type dates and times into options (`--since`, `--until`, `--promised`, `--at`) and
actions files in whatever digits their keyboard gives; `parse_day` and `parse_moment` are
the one parser for all of them.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta

import jdatetime
from babel.dates import format_date as babel_format_date
from hijridate import Gregorian

from bot.engine.normalize import local_digits
from bot.reports.periods import BadDate

# jdatetime's own list; its locale switch is process-wide state, so we index it directly.
JALALI_MONTHS: tuple[str, ...] = tuple(jdatetime.date.j_months_fa)


def format_date(d: date, lang: str, *, hijri: bool = False) -> str:
    """``d`` in the reader's calendar, month names and digits (see the module docstring).

    ``hijri`` (Arabic only) gives the Umm al-Qura date, "٣ رجب ١٤٤٨ هـ"; outside the
    calendar's range (1924–2077) it falls back to the Gregorian date.
    """
    if lang == "fa":
        jalali = jdatetime.date.fromgregorian(date=d)
        text = f"{jalali.day} {JALALI_MONTHS[jalali.month - 1]} {jalali.year}"
        return local_digits(text, "fa")
    if lang == "ar":
        if hijri:
            try:
                h = Gregorian(d.year, d.month, d.day).to_hijri()
            except OverflowError:
                pass
            else:
                return local_digits(f"{h.day} {h.month_name('ar')} {h.year} {h.notation('ar')}",
                                    "ar")
        return local_digits(babel_format_date(d, "d MMMM y", locale="ar"), "ar")
    return babel_format_date(d, "d MMMM y", locale="en")


def span(delta: timedelta) -> str:
    """A duration for staff, to the minute: "45m", "3h 05m", "2d 4h"."""
    minutes = max(0, int(delta.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins:02d}m"
    return f"{mins}m"


# --- dates and times staff type ----------------------------------------------------------

# Dates outside this range are typing mistakes (9999 for 2026) that would only overflow
# later, when a day is added for a window's end or a promise's deadline.
EARLIEST = date(1970, 1, 1)
LATEST = date(2999, 12, 31)


def ascii_digits(text: str) -> str:
    """Decimal digits of any script as 0-9: Persian ۲۰۲۶, Arabic-Indic ٢٠٢٦, Devanagari
    २०२६ and the rest. Only true digits: "²" is not one."""
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c
                   for c in text)


def _named(option: str, text: str) -> str:
    """"--until '2026-13-01'", or the value alone where the caller names the field."""
    return f"{option} {text!r}" if option else repr(text)


def _out_of_range(option: str, text: str) -> BadDate:
    return BadDate(f"{_named(option, text)} is out of range: give a date between "
                   f"{EARLIEST.isoformat()} and {LATEST.isoformat()}")


def parse_day(text: str, option: str = "") -> date:
    """YYYY-MM-DD in any digits → date; BadDate (a ValueError) says how to write it,
    naming ``option`` when given."""
    cleaned = ascii_digits(text.strip())
    try:
        if len(cleaned) != 10:  # only YYYY-MM-DD: fromisoformat also reads 20261231
            raise ValueError(cleaned)
        day = date.fromisoformat(cleaned)
    except ValueError:
        raise BadDate(f"{_named(option, text)} is not a date: write it as YYYY-MM-DD, "
                      "e.g. 2026-01-31") from None
    if not EARLIEST <= day <= LATEST:
        raise _out_of_range(option, text)
    return day


def parse_moment(text: str, option: str = "") -> datetime:
    """ISO 8601 with an offset ("2026-12-01T09:00+03:30", "…Z"), or "YYYY-MM-DD HH:MM" in
    UTC, in any digits → an aware UTC datetime; BadDate says how to write it."""
    cleaned = ascii_digits(text.strip())
    try:
        when = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        raise BadDate(f"{_named(option, text)} is not a time: use 2026-12-01T09:00+03:30 "
                      "(with an offset) or \"2026-12-01 09:00\" (UTC)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        when = when.astimezone(UTC)  # 0001-01-01T00:00+14:00 is before year 1 in UTC
    except OverflowError:
        raise _out_of_range(option, text) from None
    if not EARLIEST <= when.date() <= LATEST:
        raise _out_of_range(option, text)
    return when
