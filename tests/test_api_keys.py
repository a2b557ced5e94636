"""API keys: migration 0010 on a database filled by the 0009 schema, `sada api-keys` create
(the key printed once, only its hash stored), list and revoke, and `authorise`, the check
the HTTP API makes on every request (401 unknown, revoked or malformed; 403 without the
scope; last use recorded at most once a minute). SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import api_keys as api_keys_cli
from bot.cli import app
from storage.api_keys import (
    SCOPES,
    BadKeyInput,
    DuplicateName,
    Refusal,
    authorise,
    create_key,
    list_keys,
    revoke_key,
)
from storage.db import Database, NotFound, _create_engine, head_revision, to_async_url, upgrade
from storage.models import ApiKey
from tests.followups.test_alerts import cli_database
from tests.test_migration_identities import _alembic, _table

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
KEY = re.compile(r"sada_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")
runner = CliRunner()


# --- migration ---------------------------------------------------------------------------

CONTACT = _table("contact", "id", "opted_out", "name", times=("created_at", "updated_at"))
API_KEY = _table("api_key", "name", "prefix", "hash", times=("created_at", "revoked_at"),
                 json=("scopes",))


async def _tables(url: str) -> set[str]:
    engine = _create_engine(to_async_url(url))
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _run(url: str, *statements: tuple[sa.Executable, object]) -> None:
    engine = _create_engine(to_async_url(url))
    try:
        async with engine.begin() as conn:
            for statement, rows in statements:
                await conn.execute(statement, rows)
    finally:
        await engine.dispose()


async def test_migration_0010_adds_the_table_keeps_rows_and_goes_back(db_url: str) -> None:
    await _alembic(db_url, "upgrade", "0009")
    await _run(db_url, (sa.insert(CONTACT), [
        {"id": 1, "opted_out": False, "name": "Sara", "created_at": T0, "updated_at": T0}]))
    assert "api_key" not in await _tables(db_url)
    assert await upgrade(db_url) == ("0009", head_revision())
    key = {"name": "helpdesk", "hash": "h", "scopes": ["read"], "created_at": T0,
           "revoked_at": None}
    # a revoked key's name may be given again; two keys in use may not share one
    await _run(db_url, (sa.insert(API_KEY), [{**key, "prefix": "00000001", "revoked_at": T0},
                                             {**key, "prefix": "00000002", "revoked_at": None}]))
    with pytest.raises(IntegrityError):
        await _run(db_url, (sa.insert(API_KEY), [{**key, "prefix": "00000003"}]))
    with pytest.raises(IntegrityError):  # a prefix names one key, revoked or not
        await _run(db_url, (sa.insert(API_KEY), [{**key, "name": "crm", "prefix": "00000001"}]))
    await _alembic(db_url, "downgrade", "0009")
    assert "api_key" not in await _tables(db_url)
    engine = _create_engine(to_async_url(db_url))
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT id, name FROM contact"))).all()
    finally:
        await engine.dispose()
    assert [tuple(r) for r in rows] == [(1, "Sara")]
    await upgrade(db_url)  # and up again
    assert "api_key" in await _tables(db_url)


# --- storage -----------------------------------------------------------------------------


async def _stored(db: Database, name: str) -> ApiKey:
    async with db.session() as s, s.begin():
        return (await s.exec(select(ApiKey).where(ApiKey.name == name))).one()


async def test_a_key_is_stored_only_as_its_hash_and_authorises_its_scopes(
    database: Database
) -> None:
    key, text = await create_key(database, "helpdesk", "read, invite,read", now=T0)
    assert KEY.fullmatch(text) and text.startswith(f"sada_{key.prefix}_")
    assert key.scopes == ["invite", "read"]  # SCOPES order, once each
    stored = await _stored(database, "helpdesk")
    secret = text.split("_", 2)[2]
    assert secret not in stored.hash and secret not in json.dumps(stored.scopes)
    assert stored.prefix == key.prefix and len(stored.hash) == 64

    ok = await authorise(database, text, "invite", T0)
    assert isinstance(ok, ApiKey) and ok.id == key.id and ok.name == "helpdesk"
    assert isinstance(await authorise(database, f"  {text}\n", "read", T0), ApiKey)
    refused = await authorise(database, text, "cases", T0)
    assert isinstance(refused, Refusal) and refused.status == 403
    assert "cases" in refused.reason and "--scopes cases" in refused.reason


@pytest.mark.parametrize("presented", [
    None, "", "Bearer x", "sada_", "sada_zzzzzzzz_" + "a" * 43, "sada_0a1b2c3d_" + "a" * 42,
    "sada_0a1b2c3d_" + "a" * 44, "sada_0a1b2c3d_" + "a" * 42 + "!", "sada_0A1B2C3D_" + "a" * 43,
])
async def test_malformed_keys_are_401(database: Database, presented: str | None) -> None:
    refused = await authorise(database, presented, "read", T0)
    assert isinstance(refused, Refusal) and refused.status == 401
    assert refused.reason.startswith("malformed API key")


async def test_unknown_wrong_secret_and_revoked_keys_are_401(database: Database) -> None:
    key, text = await create_key(database, "crm", ["read"], now=T0)
    prefix, secret = text.split("_", 2)[1:]
    flipped = ("B" if secret[0] == "A" else "A") + secret[1:]
    other_prefix = ("0" if prefix[0] != "0" else "1") + prefix[1:]
    for presented in (f"sada_{prefix}_{flipped}", f"sada_{other_prefix}_{secret}"):
        refused = await authorise(database, presented, "read", T0)
        assert isinstance(refused, Refusal) and refused.status == 401
        assert refused.reason.startswith("unknown API key"), presented
    assert isinstance(await authorise(database, text, "read", T0), ApiKey)
    revoked = await revoke_key(database, "crm", now=T0 + timedelta(hours=1))
    assert revoked.revoked_at == T0 + timedelta(hours=1)
    refused = await authorise(database, text, "read", T0 + timedelta(hours=2))
    assert isinstance(refused, Refusal) and refused.status == 401
    assert "revoked" in refused.reason and key.prefix in refused.reason
    # a revoked key with the wrong scope is still 401: nothing about it is usable
    refused = await authorise(database, text, "cases", T0 + timedelta(hours=2))
    assert isinstance(refused, Refusal) and refused.status == 401


async def test_last_use_is_recorded_at_most_once_a_minute(database: Database) -> None:
    _, text = await create_key(database, "helpdesk", "read", now=T0)
    assert (await _stored(database, "helpdesk")).last_used_at is None
    await authorise(database, text, "invite", T0)  # refused: not a use
    assert (await _stored(database, "helpdesk")).last_used_at is None
    for seconds, recorded in ((5, 5), (30, 5), (64, 5), (65, 65), (100, 65), (200, 200)):
        ok = await authorise(database, text, "read", T0 + timedelta(seconds=seconds))
        assert isinstance(ok, ApiKey)
        stored = await _stored(database, "helpdesk")
        assert stored.last_used_at == T0 + timedelta(seconds=recorded), seconds
        assert ok.last_used_at == stored.last_used_at


async def test_names_scopes_and_revoking(database: Database) -> None:
    await create_key(database, "helpdesk", "invite", now=T0)
    with pytest.raises(DuplicateName, match="helpdesk already exists"):
        await create_key(database, " helpdesk ", "read", now=T0)
    with pytest.raises(BadKeyInput, match="unknown scope write: the scopes are invite"):
        await create_key(database, "crm", "read,write", now=T0)
    with pytest.raises(BadKeyInput, match="at least one scope"):
        await create_key(database, "crm", " , ", now=T0)
    for bad in ("", "two words", "x" * 65, "semi;colon"):
        with pytest.raises(BadKeyInput, match="cannot name a key"):
            await create_key(database, bad, "read", now=T0)
    with pytest.raises(NotFound, match="no API key named crm"):
        await revoke_key(database, "crm", now=T0)
    with pytest.raises(ValueError, match="unknown scope 'write'"):
        await authorise(database, "sada_x", "write", T0)
    first = await revoke_key(database, "helpdesk", now=T0 + timedelta(minutes=1))
    with pytest.raises(NotFound):  # already revoked
        await revoke_key(database, "helpdesk", now=T0 + timedelta(minutes=2))
    # the name is free again: the integration's key is rotated under the same name
    second, text = await create_key(database, "helpdesk", list(SCOPES), now=T0 +
                                    timedelta(minutes=3))
    await create_key(database, "مرکز-تماس", "cases", now=T0 + timedelta(minutes=4))
    assert second.prefix != first.prefix and second.scopes == list(SCOPES)
    keys = await list_keys(database)
    assert [(k.name, k.revoked_at is None) for k in keys] == [
        ("helpdesk", False), ("helpdesk", True), ("مرکز-تماس", True)]
    assert [k.name for k in await list_keys(database, include_revoked=False)] == [
        "helpdesk", "مرکز-تماس"]
    assert isinstance(await authorise(database, text, "contacts", T0), ApiKey)


# --- the command -------------------------------------------------------------------------


@pytest.fixture
def cli(head_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(api_keys_cli, "clock", lambda: T0)
    yield from cli_database(head_url, monkeypatch)


def _ok(*args: str) -> tuple[str, str]:
    result = runner.invoke(app, ["api-keys", *args])
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


def _refused(code: int, *args: str) -> str:
    result = runner.invoke(app, ["api-keys", *args])
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def test_create_prints_the_key_once_list_and_revoke(cli: str) -> None:
    out, note = _ok("create", "helpdesk", "--scopes", "invite,read")
    text = out.strip()
    assert KEY.fullmatch(text), out  # the key alone on stdout, for KEY=$(sada …)
    prefix, secret = text.split("_", 2)[1:]
    assert f"helpdesk (prefix {prefix}, scopes invite, read)" in note and secret not in note
    _ok("create", "crm", "--scopes", "contacts")

    table, _ = _ok("list")
    assert secret not in table
    lines = table.splitlines()
    assert lines[0].split() == ["name", "prefix", "scopes", "created", "last", "used",
                                "revoked"]
    assert lines[2].split() == ["helpdesk", prefix, "invite,read", "2026-11-30", "09:00",
                                "never"]
    rows = list(csv.DictReader(io.StringIO(_ok("list", "--format", "csv")[0])))
    assert rows[0] == {"name": "helpdesk", "prefix": prefix, "scopes": "invite,read",
                       "created_at": "2026-11-30T09:00:00+00:00", "last_used_at": "",
                       "revoked_at": ""}
    records = json.loads(_ok("list", "-f", "json")[0])
    assert [r["name"] for r in records] == ["helpdesk", "crm"]
    assert records[0]["scopes"] == ["invite", "read"] and records[0]["revoked_at"] is None
    assert secret not in json.dumps(records)

    out, _ = _ok("revoke", "helpdesk")
    assert out.strip() == f"API key helpdesk (prefix {prefix}) revoked"
    [revoked] = [r for r in json.loads(_ok("list", "-f", "json")[0]) if r["name"] == "helpdesk"]
    assert revoked["revoked_at"] == "2026-11-30T09:00:00+00:00"
    assert [r["name"] for r in json.loads(_ok("list", "--active", "-f", "json")[0])] == ["crm"]
    # the same name again, now that the old key is revoked: a new key
    again = _ok("create", "helpdesk", "--scopes", "read")[0].strip()
    assert KEY.fullmatch(again) and again != text


def test_bad_input_is_one_line_without_traceback(cli: str) -> None:
    assert _ok("list")[0].strip() == ("no API keys; create one with: sada api-keys create "
                                      "NAME --scopes read")
    assert _refused(2, "create", "helpdesk", "--scopes", "invite,admin") == (
        "unknown scope admin: the scopes are invite, contacts, read, cases")
    assert "cannot name a key" in _refused(2, "create", "help desk", "--scopes", "read")
    _ok("create", "helpdesk", "--scopes", "read")
    assert _refused(1, "create", "helpdesk", "--scopes", "invite") == (
        "an API key named helpdesk already exists: revoke it first (sada api-keys revoke "
        "helpdesk) or choose another name")
    assert _refused(2, "revoke", "crm") == (
        "there is no API key named crm that is not revoked; `sada api-keys list` shows them")
    assert "--format 'xml'" in _refused(2, "list", "--format", "xml")
    assert len(json.loads(_ok("list", "-f", "json")[0])) == 1  # nothing else was stored


def test_the_help_names_every_scope() -> None:
    # the CLI spells the scopes out itself so `sada --help` does not load storage
    named = re.findall(r"(\w+) \(", api_keys_cli._SCOPES_HELP)
    assert named == list(SCOPES)
