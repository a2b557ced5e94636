"""Locks that keep several processes of one bot apart, on PostgreSQL.

One person's updates may reach two processes at once (a load balancer in front of N `sada
run`). Each update is one transaction (Controller.handle); taking :func:`lock_address` first
in it makes a second update of the same (channel, address) wait until the first has
committed, so the two are applied one after the other, never interleaved, and the second
reads what the first wrote. It is a transaction-level advisory lock: released at commit or
rollback, and by the server when a process dies (kill -9 included), so nothing is left to
clean up. Different people never wait for each other (but for a 64-bit hash collision).

SQLite has one writer at a time anyway (BEGIN IMMEDIATE): nothing to take there.
"""

from __future__ import annotations

import os
import socket

from sqlalchemy import text

import storage.db
from storage.db import Database

__all__ = ["LOCK_SQL", "SEED", "address_key", "lock_address", "name_this_run", "other_runs"]

# hashtextextended's seed: any fixed number, so these keys are apart from other uses.
SEED = 0x5ADA_0001
# The lock as SQL, with :key and :seed, for a statement that takes it with other work (the
# update's claim, Store.claim_update): one round trip for both.
LOCK_SQL = "pg_advisory_xact_lock(hashtextextended(:key, :seed))"
_LOCK = text(f"SELECT {LOCK_SQL}")


def address_key(channel: str, address: str) -> str:
    return f"{channel}:{address}"


async def lock_address(database: Database, channel: str, address: str) -> None:
    """Hold (channel, address) until the end of `database`'s transaction: the Database of
    Store.transaction(), whose connection is the event's."""
    if database.engine.dialect.name != "postgresql":
        return
    connection = getattr(database, "connection", None)
    if connection is None:
        raise RuntimeError("lock_address needs the Database of an open transaction "
                           "(Store.transaction())")
    await connection.execute(_LOCK, {"key": address_key(channel, address), "seed": SEED})


RUN_PREFIX = "sada run "


def name_this_run() -> str:
    """Name this process's connections "sada run <host>:<pid>" (before its database opens),
    so another process of the bot can tell it is there (`other_runs`)."""
    name = f"{RUN_PREFIX}{socket.gethostname()}:{os.getpid()}"[:63]  # PostgreSQL's limit
    storage.db.APPLICATION_NAME = name
    return name


async def other_runs(database: Database) -> int:
    """How many other `sada run` processes are connected to this PostgreSQL database now (a
    process killed with -9 has its connections ended by the server at once)."""
    if database.engine.dialect.name != "postgresql":
        return 0
    async with database.engine.connect() as conn:
        found = await conn.execute(text(
            "SELECT count(DISTINCT application_name) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE :prefix "
            "AND application_name <> :mine"),
            {"prefix": RUN_PREFIX + "%", "mine": storage.db.APPLICATION_NAME})
        return int(found.scalar_one())
