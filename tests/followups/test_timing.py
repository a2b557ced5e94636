"""Local windows and working days: exact instants across time zones, weekends and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.followups.timing import (
    WEEKDAYS,
    canonical_timezone,
    is_timezone,
    next_slot,
    parse_window,
    working_days,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_working_days_follow_the_readers_region() -> None:
    assert working_days("fa") == ("sat", "sun", "mon", "tue", "wed")
    assert working_days("ar") == ("sun", "mon", "tue", "wed", "thu")
    assert working_days("en") == ("mon", "tue", "wed", "thu", "fri")
    assert working_days(None) == working_days("en") == working_days("de")


def test_inside_the_window_is_now() -> None:
    # Monday 2026-11-23 10:00 UTC is 13:30 in Tehran (+03:30), a working day in Iran
    at = utc(2026, 11, 23, 10, 0)
    assert next_slot(at, tz="Asia/Tehran", lang="fa") == at


def test_before_the_window_waits_for_its_local_start() -> None:
    # 04:00 UTC = 07:30 Tehran → 09:00 Tehran = 05:30 UTC
    assert next_slot(utc(2026, 11, 23, 4, 0), tz="Asia/Tehran", lang="fa") == \
        utc(2026, 11, 23, 5, 30)
    # 04:00 UTC = 07:00 Riyadh (+03:00) → 09:00 Riyadh = 06:00 UTC
    assert next_slot(utc(2026, 11, 23, 4, 0), tz="Asia/Riyadh", lang="ar") == \
        utc(2026, 11, 23, 6, 0)


def test_after_the_window_moves_to_the_next_working_morning() -> None:
    # Wednesday 15:00 UTC = 18:30 Tehran, after 18:00; in Iran (fa: Sat–Wed) Thursday and
    # Friday are the weekend, so the next slot is Saturday 09:00 Tehran.
    assert next_slot(utc(2026, 11, 25, 15, 0), tz="Asia/Tehran", lang="fa") == \
        utc(2026, 11, 28, 5, 30)
    # the same instant for an Arabic reader in Riyadh (18:00 sharp is closed): Thursday
    assert next_slot(utc(2026, 11, 25, 15, 0), tz="Asia/Riyadh", lang="ar") == \
        utc(2026, 11, 26, 6, 0)


def test_friday_in_persian_moves_to_saturday_morning_in_tehran() -> None:
    friday_noon = utc(2026, 11, 27, 8, 30)  # Friday 12:00 in Tehran
    assert next_slot(friday_noon, tz="Asia/Tehran", lang="fa") == utc(2026, 11, 28, 5, 30)


def test_friday_and_saturday_are_the_arab_weekend() -> None:
    friday = utc(2026, 11, 27, 8, 0)
    assert next_slot(friday, tz="Asia/Riyadh", lang="ar") == utc(2026, 11, 29, 6, 0)


def test_london_across_the_spring_dst_change() -> None:
    # Friday 27 March 2026 19:00 UTC (GMT): after hours. Clocks go forward on Sunday 29th,
    # so Monday 09:00 London is 08:00 UTC, not 09:00.
    assert next_slot(utc(2026, 3, 27, 19, 0), tz="Europe/London", lang="en") == \
        utc(2026, 3, 30, 8, 0)
    # a week earlier, still on GMT
    assert next_slot(utc(2026, 3, 20, 19, 0), tz="Europe/London", lang="en") == \
        utc(2026, 3, 23, 9, 0)


def test_london_across_the_autumn_dst_change() -> None:
    # Friday 23 October 2026 17:30 UTC = 18:30 BST, after hours; back to GMT on Sunday 25th.
    assert next_slot(utc(2026, 10, 23, 17, 30), tz="Europe/London", lang="en") == \
        utc(2026, 10, 26, 9, 0)


def test_a_contact_without_a_time_zone_is_treated_as_utc() -> None:
    at = utc(2026, 3, 27, 19, 0)
    assert next_slot(at, tz=None, lang="en") == utc(2026, 3, 30, 9, 0)
    assert next_slot(at, tz="Mars/Olympus_Mons", lang="en") == utc(2026, 3, 30, 9, 0)
    assert next_slot(at, tz="", lang=None) == utc(2026, 3, 30, 9, 0)


def test_explicit_days_override_the_language() -> None:
    friday = utc(2026, 11, 27, 8, 0)  # 11:30 Tehran
    assert next_slot(friday, tz="Asia/Tehran", lang="fa", days=["fri"]) == friday
    assert next_slot(friday, tz="Asia/Tehran", lang="fa", days=["mon"]) == \
        utc(2026, 11, 30, 5, 30)


def test_custom_and_overnight_windows() -> None:
    at = utc(2026, 11, 23, 12, 0)  # Monday 15:30 Tehran
    assert next_slot(at, tz="Asia/Tehran", window="16:00-20:00", days=["mon"]) == \
        utc(2026, 11, 23, 12, 30)
    # 22:00-06:00 opening on Thursdays: Friday 01:00 Tehran is still inside Thursday's window
    friday_early = utc(2026, 11, 26, 21, 30)
    assert next_slot(friday_early, tz="Asia/Tehran", window="22:00-06:00", days=["thu"]) == \
        friday_early
    assert next_slot(utc(2026, 11, 27, 8, 0), tz="Asia/Tehran", window="22:00-06:00",
                     days=["thu"]) == utc(2026, 12, 3, 18, 30)
    # the whole day
    assert next_slot(at, tz=None, window="00:00-00:00", days=["mon"]) == at


def test_a_window_opening_inside_the_dst_gap_opens_when_the_clocks_jump() -> None:
    # London skips 01:00-02:00 on 29 March 2026; a 01:30 opening starts at the jump
    # (01:00 UTC, 02:00 BST), the first instant whose local time is past 01:30.
    assert next_slot(utc(2026, 3, 29, 0, 0), tz="Europe/London", window="01:30-05:00",
                     days=["sun"]) == utc(2026, 3, 29, 1, 0)


def test_a_repeated_hour_opens_at_its_first_occurrence() -> None:
    # 01:30 happens twice in London on 25 October 2026: first at 00:30 UTC (BST)
    assert next_slot(utc(2026, 10, 24, 23, 0), tz="Europe/London", window="01:30-05:00",
                     days=["sun"]) == utc(2026, 10, 25, 0, 30)


def test_naive_times_are_utc() -> None:
    assert next_slot(datetime(2026, 11, 23, 10, 0), tz=None, lang="en") == \
        utc(2026, 11, 23, 10, 0)


def test_bad_windows_and_days_say_what_is_expected() -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        parse_window("9-18")
    with pytest.raises(ValueError, match="unknown day"):
        next_slot(utc(2026, 1, 1), tz=None, days=["friday"])
    with pytest.raises(ValueError, match="at least one"):
        next_slot(utc(2026, 1, 1), tz=None, days=[])


def test_time_zone_names() -> None:
    assert is_timezone("Asia/Tehran") and not is_timezone("Tehran") and not is_timezone("")
    assert canonical_timezone("asia/TEHRAN") == "Asia/Tehran"
    assert canonical_timezone("Tehran") is None


ZONES = ["Asia/Tehran", "Asia/Riyadh", "Europe/London", "America/New_York",
         "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]


@settings(max_examples=300, deadline=None)
@given(
    at=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31)),
    tz=st.sampled_from(ZONES),
    start=st.integers(0, 23 * 60),
    length=st.integers(30, 12 * 60),
    days=st.sets(st.sampled_from(WEEKDAYS), min_size=1),
)
def test_the_slot_is_the_first_allowed_instant(
    at: datetime, tz: str, start: int, length: int, days: set[str]
) -> None:
    end = min(start + length, 24 * 60 - 1)
    window = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    at = at.replace(tzinfo=UTC)
    slot = next_slot(at, tz=tz, window=window, days=sorted(days))
    zone = ZoneInfo(tz)

    def inside(instant: datetime) -> bool:
        local = instant.astimezone(zone)
        minute = local.hour * 60 + local.minute + local.second / 60
        return WEEKDAYS[local.weekday()] in days and start <= minute < end

    assert slot >= at and slot.tzinfo is not None
    assert inside(slot) or slot.astimezone(zone).replace(tzinfo=None) > \
        (slot - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None) + \
        timedelta(minutes=1)  # opened by a DST jump over the window's start
    if slot > at:
        assert not inside(slot - timedelta(seconds=1))


# --- working days by the country of the contact's zone -----------------------------------


def test_the_zones_country_sets_the_week_not_the_language() -> None:
    # the UAE works Monday–Friday since 2022, Arabic readers or not
    assert working_days("ar", "Asia/Dubai") == ("mon", "tue", "wed", "thu", "fri")
    assert working_days("ar", "Asia/Riyadh") == ("sun", "mon", "tue", "wed", "thu")
    assert working_days("ar", "Africa/Cairo") == ("sun", "mon", "tue", "wed", "thu")
    assert working_days("en", "Asia/Tehran") == ("sat", "sun", "mon", "tue", "wed")
    assert working_days("fa", "Europe/London") == ("mon", "tue", "wed", "thu", "fri")
    assert working_days("ar", "Africa/Casablanca") == ("mon", "tue", "wed", "thu", "fri")


def test_without_a_country_the_language_decides() -> None:
    for tz in (None, "", "UTC", "Etc/GMT-3", "Mars/Olympus"):
        assert working_days("ar", tz) == ("sun", "mon", "tue", "wed", "thu"), tz
        assert working_days("fa", tz) == ("sat", "sun", "mon", "tue", "wed"), tz


def test_next_slot_follows_the_contacts_country() -> None:
    # Sunday 2026-11-22 06:00 UTC: 10:00 in Dubai, 09:00 in Riyadh, 09:30 in Tehran
    sunday = utc(2026, 11, 22, 6, 0)
    # Dubai (Arabic reader): Sunday is the weekend → Monday 09:00 Dubai = 05:00 UTC
    assert next_slot(sunday, tz="Asia/Dubai", lang="ar") == utc(2026, 11, 23, 5, 0)
    # Riyadh: Sunday is a working day
    assert next_slot(sunday, tz="Asia/Riyadh", lang="ar") == sunday
    # Tehran, even for an English reader: Sunday is a working day
    assert next_slot(sunday, tz="Asia/Tehran", lang="en") == sunday
    # Friday in Tehran is the weekend → Saturday 09:00 Tehran = 05:30 UTC
    friday = utc(2026, 11, 27, 7, 0)
    assert next_slot(friday, tz="Asia/Tehran", lang="fa") == utc(2026, 11, 28, 5, 30)
    # an Arabic reader with no zone: UTC and the Arabic week (Sunday works, Friday not)
    assert next_slot(sunday, tz=None, lang="ar") == utc(2026, 11, 22, 9, 0)
    assert next_slot(utc(2026, 11, 27, 10, 0), tz=None, lang="ar") == utc(2026, 11, 29, 9, 0)


def test_an_explicit_days_list_always_wins() -> None:
    sunday = utc(2026, 11, 22, 6, 0)
    assert next_slot(sunday, tz="Asia/Dubai", lang="ar", days=["sun"]) == sunday
    # Monday in Riyadh is a working day, but the flow says Sundays only
    monday = utc(2026, 11, 23, 7, 0)
    assert next_slot(monday, tz="Asia/Riyadh", lang="ar", days=["sun"]) == \
        utc(2026, 11, 29, 6, 0)
