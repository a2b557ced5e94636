"""Alembic environment for Sada's schema.

Normally run in-process by ``storage.db`` on a connection it already opened (the asyncio
"connection sharing" recipe: the connection arrives in ``config.attributes["connection"]``).
A plain ``alembic`` CLI run also works: it reads ``sqlalchemy.url`` from its config or
``SADA_DATABASE_URL`` from the environment.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.db import _create_engine, to_async_url

config = context.config
target_metadata = SQLModel.metadata


def _configure(**kwargs: Any) -> None:
    # Batch mode turns ALTERs SQLite lacks into table rebuilds; on PostgreSQL it is plain ALTER.
    context.configure(
        target_metadata=target_metadata, render_as_batch=True, compare_type=True, **kwargs
    )


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def _cli_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("SADA_DATABASE_URL")
    if not url:
        raise SystemExit("set SADA_DATABASE_URL (or sqlalchemy.url in the alembic config)")
    return to_async_url(url)


async def _run_from_cli() -> None:
    # Foreign keys off on SQLite: a batch rebuild drops the old table, which would cascade.
    engine = _create_engine(_cli_url(), foreign_keys=False)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _configure(url=_cli_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    _run(shared)
else:
    asyncio.run(_run_from_cli())
