"""Migration 0013 on a database at 0012: the web chat's tables (a visitor's entries go with
the visitor), and back down to 0012."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from storage.db import head_revision, upgrade
from tests.test_api_keys import T0, _run, _table, _tables
from tests.test_migration_identities import _alembic

VISITOR = _table("web_visitor", "id", "language", times=("created_at",), json=("opened",))
MESSAGE = _table("web_message", "visitor_id", "message_id", "kind", times=("created_at",),
                 json=("body",))


async def test_migration_0013_adds_the_web_chat_and_goes_back(db_url: str) -> None:
    await _alembic(db_url, "upgrade", "0012")
    assert "web_visitor" not in await _tables(db_url)
    assert (await upgrade(db_url))[1] == head_revision()
    await _run(db_url, (sa.insert(VISITOR), [
        {"id": "v" * 22, "language": "fa", "opened": ["f:b2b-supplier"], "created_at": T0}]))
    await _run(db_url, (sa.insert(MESSAGE), [
        {"visitor_id": "v" * 22, "message_id": None, "kind": "message",
         "body": {"text": "سلام"}, "created_at": T0},
        {"visitor_id": "v" * 22, "message_id": 1, "kind": "edit", "body": {"text": None},
         "created_at": T0}]))
    with pytest.raises(IntegrityError):  # every entry is some visitor's
        await _run(db_url, (sa.insert(MESSAGE), [
            {"visitor_id": "w" * 22, "message_id": None, "kind": "message", "body": {},
             "created_at": T0}]))
    await _alembic(db_url, "downgrade", "0012")
    assert not {"web_visitor", "web_message"} & set(await _tables(db_url))
    await upgrade(db_url)
    assert {"web_visitor", "web_message"} <= set(await _tables(db_url))
