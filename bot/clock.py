"""The wall clock, in one place and light to import: the shells own time and hand it to
what they run, and tests hand in clocks of their own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
