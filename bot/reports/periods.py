"""Report windows and periods: whole UTC days, weeks starting Monday, calendar months.

`--since` and `--until` are dates, both included: the window is [since 00:00, until + 1 day
00:00) in UTC. The previous window, for the change, has the same number of days and ends
the day before `since`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

Period = Literal["week", "month"]
PERIODS: tuple[Period, ...] = ("week", "month")


class BadDate(ValueError):
    """A date the user typed that we cannot read; the message says what to type."""


def parse_date(text: str, option: str = "date") -> date:
    """YYYY-MM-DD in any digits → date: bot.followups.dates.parse_day, the one parser of
    every date option."""
    from bot.followups.dates import parse_day  # it imports BadDate from here

    return parse_day(text, option)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def window(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """[start, end) in UTC for the dates, both included; None leaves that side open."""
    start = day_start(since) if since is not None else None
    end = day_start(until + timedelta(days=1)) if until is not None else None
    return start, end


def check_order(since: date | None, until: date | None) -> None:
    if since is not None and until is not None and since > until:
        raise BadDate(f"--since {since} is after --until {until}: swap them")


def previous_window(since: date | None, until: date | None, today: date
                    ) -> tuple[date, date] | None:
    """The window of the same length just before [since, until]; `until` defaults to
    today. None without `since`: an open window has no length to repeat."""
    if since is None:
        return None
    last = until if until is not None else max(today, since)
    days = (last - since).days + 1
    prev_until = since - timedelta(days=1)
    return prev_until - timedelta(days=days - 1), prev_until


def period_start(day: date, period: Period) -> date:
    if period == "month":
        return day.replace(day=1)
    return day - timedelta(days=day.weekday())  # Monday


def next_period(start: date, period: Period) -> date:
    if period == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def periods_between(first: date, last: date, period: Period) -> list[date]:
    """Every period start from the one holding `first` to the one holding `last`."""
    starts: list[date] = []
    current, end = period_start(first, period), period_start(last, period)
    while current <= end:
        starts.append(current)
        current = next_period(current, period)
    return starts
