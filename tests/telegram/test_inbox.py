"""Long polling's inbox (storage/inbox.py) on both databases: updates kept once, handed
back in order until handled, forgotten together; and one statement text whatever the
batch's size, so PostgreSQL's prepared statements are reused rather than made again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from storage.db import Database
from storage.inbox import Inbox


def _update(update_id: int) -> dict[str, Any]:
    return {"update_id": update_id,
            "message": {"message_id": update_id, "text": f"سلام {update_id}"}}


@contextmanager
def _statements(database: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "inbound_update" in statement:
            seen.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


async def test_updates_are_kept_once_in_order_until_handled_then_forgotten(
        database: Database) -> None:
    inbox = Inbox(database, "telegram:sada_bot")
    other = Inbox(database, "telegram:other_bot")
    await inbox.keep([_update(3), _update(1), _update(2)])
    await inbox.keep([_update(2), _update(4)])  # Telegram handed 2 out again
    await other.keep([_update(1)])
    assert [u["update_id"] for u in await inbox.waiting()] == [1, 2, 3, 4]
    assert (await inbox.waiting())[0]["message"]["text"] == "سلام 1"

    inbox.handled(1)
    inbox.handled(3)
    await inbox.forget_handled()
    await inbox.forget_handled()  # nothing more handled: nothing asked
    assert [u["update_id"] for u in await inbox.waiting()] == [2, 4]
    assert [u["update_id"] for u in await other.waiting()] == [1]  # another bot's stay


async def test_batches_of_any_size_use_one_statement_text(database: Database) -> None:
    inbox = Inbox(database, "telegram:sada_bot")
    with _statements(database) as seen:
        for start, size in ((1, 1), (10, 3), (20, 7)):
            await inbox.keep([_update(start + i) for i in range(size)])
            for i in range(size):
                inbox.handled(start + i)
            await inbox.forget_handled()
    keeps = {s for s in seen if s.lstrip().upper().startswith("INSERT")}
    forgets = {s for s in seen if s.lstrip().upper().startswith("DELETE")}
    assert len(keeps) == 1, keeps
    if database.engine.dialect.name == "postgresql":
        assert len(forgets) == 1, forgets  # an array parameter, not one IN per size
    else:
        assert forgets  # SQLite prepares in-process: an IN list per size costs nothing
    assert await inbox.waiting() == []
