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
"""

from __future__ import annotations

from datetime import date, timedelta

import jdatetime
from babel.dates import format_date as babel_format_date
from hijridate import Gregorian

from bot.engine.normalize import local_digits

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
