"""When a message may reach a person: inside their local window, on their working days.

Pure functions, no clock: callers pass the instant to start from. Everything returned is
an aware UTC datetime, so it can go straight into the database.

Weekends differ by region (field notes): Friday in Iran, Friday–Saturday in most Arab
states, Saturday–Sunday elsewhere. Without an explicit `days` list we use the reader's
language as the best hint we have of their region.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WORKING_DAYS: dict[str | None, tuple[str, ...]] = {
    "fa": ("sat", "sun", "mon", "tue", "wed"),
    "ar": ("sun", "mon", "tue", "wed", "thu"),
    "en": ("mon", "tue", "wed", "thu", "fri"),
}
DEFAULT_WINDOW = "09:00-18:00"
_WINDOW = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")


def working_days(lang: str | None) -> tuple[str, ...]:
    """The usual working days for readers of `lang` (unknown or None: Monday to Friday)."""
    return _WORKING_DAYS.get(lang, _WORKING_DAYS["en"])


def parse_window(window: str) -> tuple[time, time]:
    """"09:00-18:00" → (09:00, 18:00); ValueError says what shape is expected."""
    match = _WINDOW.match(window.strip())
    if match is None:
        raise ValueError(f"window {window!r} must be HH:MM-HH:MM in 24-hour time, "
                         "e.g. 09:00-18:00")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    return time(h1, m1), time(h2, m2)


@cache
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def is_timezone(name: str) -> bool:
    """True for an IANA time zone name this machine knows (Asia/Tehran, Europe/London …)."""
    return bool(name) and _zone(name) is not None


@cache
def _zone_names() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()}


def canonical_timezone(name: str) -> str | None:
    """The IANA spelling of `name` matched without regard to case, or None."""
    return _zone_names().get(name.strip().casefold())


def zone(name: str | None) -> ZoneInfo:
    """The contact's zone; None or a name we do not know means UTC (never an error: a
    reminder at a UTC hour is better than no reminder)."""
    return (_zone(name) if name else None) or ZoneInfo("UTC")


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The first instant whose wall-clock time in `tz` is `at` or later on `day`.

    A wall time that does not exist (skipped when clocks go forward) resolves to the
    moment the clocks jump; a repeated one (clocks go back) to its first occurrence.
    """
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
        return first.astimezone(UTC)
    # In a gap: fold=1 lands before the jump, fold=0 after it; bisect to the jump.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = first.astimezone(UTC)
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= wall:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0)


def _days(days: list[str] | tuple[str, ...] | None, lang: str | None) -> frozenset[int]:
    chosen = working_days(lang) if days is None else tuple(d.strip().lower() for d in days)
    unknown = [d for d in chosen if d not in WEEKDAYS]
    if unknown:
        raise ValueError(f"unknown day(s) {', '.join(unknown)}: use {', '.join(WEEKDAYS)}")
    if not chosen:
        raise ValueError("no days to send on: list at least one of " + ", ".join(WEEKDAYS))
    return frozenset(WEEKDAYS.index(d) for d in chosen)


def next_slot(
    at: datetime,
    *,
    tz: str | None,
    window: str = DEFAULT_WINDOW,
    days: list[str] | tuple[str, ...] | None = None,
    lang: str | None = None,
) -> datetime:
    """The first instant ≥ `at` inside the contact's local `window` on one of `days`
    (default: the working days of `lang`), as aware UTC.

    A naive `at` is taken as UTC. A window whose end is not after its start runs past
    midnight ("22:00-06:00"); "00:00-00:00" is the whole day. `days` names the day each
    window opens on.
    """
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    start, end = parse_window(window)
    allowed = _days(days, lang)
    tzinfo = zone(tz)
    overnight = end <= start
    today = at.astimezone(tzinfo).date()
    # Yesterday's window may still be open (overnight windows); 8 days ahead always finds
    # an allowed day.
    for offset in range(-1, 9):
        day = today + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        opens = _local(day, start, tzinfo)
        closes = _local(day + timedelta(days=1) if overnight else day, end, tzinfo)
        if at < closes and opens < closes:
            return max(at, opens)
    raise AssertionError("unreachable: every week has an allowed day")  # pragma: no cover
