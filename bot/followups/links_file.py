"""The CSV of personal links a run hands staff (`sada invite --links-out`, `sada remind`).

Written next to its destination while the transaction that records the invitations or
reminders runs, and put in place only once that transaction committed: a run that fails or
rolls back (a dry run) leaves no file, and a committed run never lacks its file, so no
link is recorded as handed over without staff having it.

utf-8-sig: Excel opens Arabic and Persian names correctly only with the BOM. Names come
from a CRM: a formula-like one is written as text (bot.staff_text.csv_cell).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from bot.staff_text import write_csv

__all__ = ["LinksFile"]


class LinksFile:
    """`with LinksFile(path) as out:` … `out.stage(…)` in the transaction, then
    `out.publish()` after the commit; leaving the block without publishing removes what was
    staged."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._staged: Path | None = None

    def stage(self, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        """Write the rows to a temporary file beside `path` (nothing without a path)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with staged.open("w", encoding="utf-8-sig", newline="") as fh:
            write_csv(fh, list(columns), [list(row) for row in rows])
        self._staged = staged

    def publish(self) -> Path | None:
        """Put the staged file in place: its path, or None when nothing was staged."""
        if self._staged is None or self.path is None:
            return None
        self._staged.replace(self.path)
        self._staged = None
        return self.path

    def __enter__(self) -> LinksFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._staged is not None:
            self._staged.unlink(missing_ok=True)
            self._staged = None
