"""Cursor pagination for the API's lists: keyset on (a time, the row id), never OFFSET.

A cursor is the position after the last row a page held, as opaque base64url text: the
list it belongs to, the time and the id. Rows are read in (time, id) order after it, so a
row inserted while a client walks the pages is neither skipped nor shown twice: it comes
at the end. Only rows whose time is at least SETTLE old are listed: a row is stamped with
its writer's clock before its transaction commits, and a page read in between could move
the cursor past a row that becomes visible a moment later.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

from bot.api.http import bad
from storage.cases import MAX_ID

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
# Longer than any step's transaction (ms, seconds under load): rows show up this much later.
SETTLE = timedelta(seconds=5)


@dataclass(frozen=True)
class Position:
    """Just after the row stamped `at` with `id`, in the list named `kind`."""

    kind: str
    at: datetime
    id: int

    def text(self) -> str:
        raw = json.dumps([self.kind, self.at.isoformat(), self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def read_cursor(text: str | None, kind: str) -> Position | None:
    """The position a cursor names; ApiError (400) when it is not one this list gave."""
    if text is None:
        return None
    wrong = bad("cursor", "not a cursor this list returned: pass next_cursor exactly as "
                "received, or leave cursor out to start from the first page")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        given: Any = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        raise wrong from None
    # the id bound: PostgreSQL refuses to compare an INTEGER column with a larger number
    if not (isinstance(given, list) and len(given) == 3 and given[0] == kind
            and isinstance(given[1], str) and isinstance(given[2], int)
            and not isinstance(given[2], bool) and 0 <= given[2] <= MAX_ID):
        raise wrong
    try:
        at = datetime.fromisoformat(given[1])
        if at.tzinfo is None:
            raise ValueError("no offset")
        at = at.astimezone(UTC)  # 0001-01-01T00:00+14:00 is before year 1 in UTC
    except (ValueError, OverflowError):
        raise wrong from None
    return Position(kind, at, given[2])


def read_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise bad("limit", f"{text!r} is not a whole number from 1 to {MAX_LIMIT}; "
                  f"the default is {DEFAULT_LIMIT}")
    return int(text)


def after(time_column: Any, id_column: Any, position: Position | None, now: datetime
          ) -> list[ColumnElement[bool]]:
    """The conditions of the rows after `position` that have settled by `now`."""
    conditions: list[ColumnElement[bool]] = [time_column < now - SETTLE]
    if position is not None:
        # spelled out rather than a row-value comparison, which SQLite planners index worse
        conditions.append(or_(time_column > position.at,
                              and_(time_column == position.at, id_column > position.id)))
    return conditions
