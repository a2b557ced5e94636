"""When a message may reach a person: inside their local window, on their working days.

Pure functions, no clock: callers pass the instant to start from. Everything returned is
an aware UTC datetime, so it can go straight into the database.

Weekends differ by country, not by language (field notes): Friday (with a half Thursday in
some sectors) in Iran, Friday–Saturday in Saudi Arabia, Egypt and most Arab states,
Saturday–Sunday in the UAE since 2022, in Lebanon, Tunisia, Morocco and elsewhere. Without
an explicit `days` list the contact's time zone names their country (`ZONE_WORKING_DAYS`; a
zone outside the table is a Monday–Friday country); only when the zone is unknown, or
names no country (UTC, Etc/…), the reader's language is the hint.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SAT_WED: tuple[str, ...] = ("sat", "sun", "mon", "tue", "wed")
SUN_THU: tuple[str, ...] = ("sun", "mon", "tue", "wed", "thu")
MON_FRI: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
_WORKING_DAYS: dict[str | None, tuple[str, ...]] = {"fa": SAT_WED, "ar": SUN_THU, "en": MON_FRI}

# The zones of the countries whose week is not Monday–Friday, by the country's official
# working week (docs/followups.md has the table). Python's zoneinfo knows no countries and
# the tzdata zone.tab is not on every install, hence names; aliases (Iran, Egypt …) too.
ZONE_WORKING_DAYS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("Asia/Tehran", "Iran"), SAT_WED),  # Iran: Thursday often a half day
    "Asia/Kabul": SAT_WED,  # Afghanistan
    **dict.fromkeys((
        "Asia/Riyadh",  # Saudi Arabia
        "Africa/Cairo", "Egypt",
        "Asia/Kuwait", "Asia/Qatar", "Asia/Bahrain", "Asia/Muscat",  # Oman
        "Asia/Baghdad", "Asia/Amman", "Asia/Damascus", "Asia/Aden",  # Yemen
        "Asia/Gaza", "Asia/Hebron",  # Palestine
        "Asia/Jerusalem", "Asia/Tel_Aviv", "Israel",
        "Africa/Tripoli", "Libya", "Africa/Khartoum", "Africa/Algiers",
    ), SUN_THU),
    # Listed although Monday–Friday, as reminders that they were checked: the UAE since
    # 2022, Lebanon, Tunisia, Morocco, Mauritania since 2014.
    **dict.fromkeys(("Asia/Dubai", "Asia/Beirut", "Africa/Tunis", "Africa/Casablanca",
                     "Africa/Nouakchott"), MON_FRI),
}
DEFAULT_WINDOW = "09:00-18:00"
_WINDOW = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")


def working_days(lang: str | None, tz: str | None = None) -> tuple[str, ...]:
    """The usual working days of a contact: their time zone's country when `tz` names one,
    else the usual ones for readers of `lang` (unknown or None: Monday to Friday)."""
    if tz and _has_country(tz.strip()):
        return ZONE_WORKING_DAYS.get(tz.strip(), MON_FRI)
    return _WORKING_DAYS.get(lang, MON_FRI)


def _has_country(name: str) -> bool:
    # UTC, GMT, Etc/GMT+3 and the POSIX-style names (CET, EST5EDT) are offsets, not places.
    return name in ZONE_WORKING_DAYS or (
        "/" in name and not name.startswith(("Etc/", "SystemV/")) and is_timezone(name))


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


def _days(days: Sequence[str] | None, lang: str | None,
          tz: str | None = None) -> frozenset[int]:
    chosen = working_days(lang, tz) if days is None else tuple(d.strip().lower() for d in days)
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
    days: Sequence[str] | None = None,
    lang: str | None = None,
) -> datetime:
    """The first instant ≥ `at` inside the contact's local `window` on one of `days`
    (default: the working days of the zone's country, else of `lang`), as aware UTC.

    A naive `at` is taken as UTC. A window whose end is not after its start runs past
    midnight ("22:00-06:00"); "00:00-00:00" is the whole day. `days` names the day each
    window opens on.
    """
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    start, end = parse_window(window)
    allowed = _days(days, lang, tz)
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
