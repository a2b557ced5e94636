"""Updates as polled, one by one: what a framework's models reject is skipped, not fatal.

aiogram and python-telegram-bot parse a getUpdates answer as one batch, so a single update
their models refuse (a field a Bot API server other than Telegram's leaves out, or spells
its own way: Bale's) would fail every poll from that offset on, and the loop would never
move past it. The shells ask for the raw batch and parse each update alone; one that does
not parse becomes a `Rejected`, which the runner confirms like any other update (so the
server stops handing it out) while the shell logs it and does nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Rejected", "parse_each", "update_id_of"]

log = logging.getLogger(__name__)
U = TypeVar("U")


@dataclass(frozen=True)
class Rejected:
    """An update the framework could not parse: its id, for the offset, and why."""

    update_id: int
    reason: str

    def skip(self, channel: str) -> None:
        log.warning("%s update %d skipped: the framework cannot read it (%s)", channel,
                    self.update_id, self.reason)


def update_id_of(data: Any) -> int | None:
    """A raw update's update_id; None when it has none (or not an integer)."""
    found = data.get("update_id") if isinstance(data, dict) else None
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def parse_each(
    raw: Any, parse: Callable[[dict[str, Any]], U],
    wanted: Callable[[int], bool] = lambda _: True,
) -> list[U | Rejected]:
    """Each update of a raw getUpdates result parsed alone, those `wanted` only: getUpdates
    hands out again every update not yet confirmed, and parsing one is most of what taking
    it costs. One without an update_id cannot be confirmed or told apart: it is logged and
    left out."""
    batch: Iterable[Any] = raw if isinstance(raw, list) else []
    parsed: list[U | Rejected] = []
    for data in batch:
        update_id = update_id_of(data)
        if update_id is None:
            log.warning("an update without an update_id skipped")
            log.debug("the update without an update_id: %.200r", data)  # may hold text
            continue
        if not wanted(update_id):
            continue
        try:
            parsed.append(parse(data))
        except Exception as exc:  # pydantic's ValidationError, PTB's KeyError/TypeError …
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            parsed.append(Rejected(update_id, reason))
    return parsed
