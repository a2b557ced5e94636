"""GET /api/v1/cases and POST /api/v1/cases/{id}/resolve on a real server, on SQLite and
PostgreSQL: the records of `sada cases list --format json`, paged; resolving as
`sada cases resolve` does, once (409 after, whoever resolved first); refusals change
nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli.cases import app as cases_cli
from bot.settings import get_settings
from storage.db import Database
from storage.models import Case
from tests.api.test_api import call, key_with
from tests.api.test_reads import Clock, filled, flows_dir, serve
from tests.reports.fixtures import NOW, Builder

__all__ = ["filled", "flows_dir"]  # fixtures used here


async def _cli(url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("SADA_DATABASE_URL", url)
    get_settings.cache_clear()
    result = await asyncio.to_thread(CliRunner().invoke, cases_cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


async def _case(database: Database, case_id: int) -> Case:
    async with database.session() as s, s.begin():
        found = await s.get(Case, case_id)
    assert found is not None
    return found


async def test_list_is_sada_cases_list_paged_and_filtered(
        filled: Builder, flows_dir: Path, database: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = json.loads(await _cli(database.url, monkeypatch, "list", "--all", "--format",
                                     "json"))
    key = await key_with(database, "read")
    async with serve(database, flows_dir) as base:
        got: list[dict[str, Any]] = []
        cursor = ""
        while True:
            status, page = await call("GET", f"{base}/cases?limit=2{cursor}", key)
            assert status == 200 and len(page["data"]) <= 2
            if not page["data"]:
                assert page["next_cursor"] is None
                break
            got.extend(page["data"])
            cursor = f"&cursor={page['next_cursor']}"
        assert len(got) == 6
        assert [{k: v for k, v in r.items() if k != "external_id"} for r in got] == expected
        assert got[0]["external_id"] == "a1"
        status, page = await call("GET", f"{base}/cases?status=open", key)
        assert [r["contact"] for r in page["data"]] == ["I2"]
        status, page = await call("GET", f"{base}/cases?status=resolved&flow=report-test",
                                  key)
        assert len(page["data"]) == 5
        status, page = await call("GET", f"{base}/cases?flow=other", key)
        assert (status, page) == (200, {"data": [], "next_cursor": None})
        for params, field in [("status=closed", "status"), ("cursor=abc", "cursor"),
                              ("limit=-1", "limit"), ("open=1", "open")]:
            status, body = await call("GET", f"{base}/cases?{params}", key)
            assert status == 400 and body["error"]["message"].startswith(f"{field}:"), body


async def test_resolve_once_as_the_cli_does(
        filled: Builder, flows_dir: Path, database: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = await key_with(database, "cases")
    open_id = (await _open_cases(database))[0]
    async with serve(database, flows_dir, Clock(NOW)) as base:
        url = f"{base}/cases/{open_id}/resolve"
        status, done = await call("POST", url, resolver,
                                  {"note": "called the buyer, refund sent", "by": "Reza"})
        assert status == 200, done
        assert (done["id"], done["status"], done["resolved_by"]) == (open_id, "resolved", "Reza")
        assert done["note"] == "called the buyer, refund sent"
        case = await _case(database, open_id)
        assert (case.status, case.resolved_at, case.resolved_by) == ("resolved", NOW, "Reza")
        assert done["time_to_resolve_seconds"] == int(
            (NOW - case.opened_at).total_seconds())
        # the CLI lists exactly what the API answered
        listed = json.loads(await _cli(database.url, monkeypatch, "list", "--all", "-f",
                                       "json"))
        assert {k: v for k, v in done.items() if k != "external_id"} in listed

        status, again = await call("POST", url, resolver, {"note": "again"})
        assert status == 409 and again["error"]["code"] == "already_resolved"
        assert "by Reza" in again["error"]["message"]
        assert (await _case(database, open_id)).note == "called the buyer, refund sent"


async def test_a_case_resolved_in_the_terminal_is_a_conflict_and_by_defaults_to_the_key(
        filled: Builder, flows_dir: Path, database: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = await key_with(database, "cases")
    first = filled.sessions["i2"]
    async with database.session() as s, s.begin():  # a second open case to resolve by API
        s.add(Case(contact_id=filled.contacts["i1"], session_id=filled.sessions["i1"],
                   flow_id="report-test", question_id="nps", score=2, comment="line 1\nline 2",
                   opened_at=NOW - timedelta(hours=2)))
    [terminal, api] = await _open_cases(database)
    assert (await _case(database, terminal)).session_id == first
    await _cli(database.url, monkeypatch, "resolve", str(terminal), "--note",
               "done\nby phone", "--by", "Sara")
    async with serve(database, flows_dir, Clock(NOW)) as base:
        status, body = await call("POST", f"{base}/cases/{terminal}/resolve", resolver,
                                  {"note": "me too"})
        assert status == 409 and "by Sara" in body["error"]["message"]
        assert "\n" not in body["error"]["message"]
        status, done = await call("POST", f"{base}/cases/{api}/resolve", resolver,
                                  {"note": "  sent a voucher  "})
        assert status == 200 and done["resolved_by"] == "api:cases"
        assert done["note"] == "sent a voucher" and done["comment"] == "line 1\nline 2"


async def test_refusals_and_bad_input_change_nothing(
        filled: Builder, flows_dir: Path, database: Database) -> None:
    reader, resolver = await key_with(database, "read"), await key_with(database, "cases")
    [open_id] = await _open_cases(database)
    async with serve(database, flows_dir) as base:
        url = f"{base}/cases/{open_id}/resolve"
        note = {"note": "done"}
        assert (await call("POST", url, None, note))[0] == 401
        status, body = await call("POST", url, reader, note)
        assert status == 403 and "cases" in body["error"]["message"]
        assert (await call("GET", f"{base}/cases"))[0] == 401
        # listing takes read, or cases on its own: a key that resolves may see what to
        status, body = await call("GET", f"{base}/cases", resolver)
        assert status == 200 and len(body["data"]) == 6
        inviter = await key_with(database, "invite")
        status, body = await call("GET", f"{base}/cases", inviter)
        assert status == 403 and "the read or cases scope" in body["error"]["message"]
        wrong: list[tuple[object, str]] = [
            ({}, "note"), ({"note": "   "}, "note"), ({"note": 5}, "note"),
            ({"note": "x", "by": 7}, "by"), ({"note": "x", "who": "me"}, "who"),
            ({"note": "x" * 4001}, "note"), ([], "body")]
        for sent, field in wrong:
            status, answer = await call("POST", url, resolver, sent)
            assert status == 400 and answer["error"]["message"].startswith(f"{field}:"), sent
        status, answer = await call("POST", url, resolver, raw=b"{nope")
        assert status == 400 and answer["error"]["code"] == "malformed_json"
        status, answer = await call("POST", f"{base}/cases/abc/resolve", resolver, note)
        assert status == 400 and answer["error"]["message"].startswith("id:")
        for missing in (99999, 2**40):
            status, answer = await call("POST", f"{base}/cases/{missing}/resolve", resolver,
                                        note)
            assert status == 404 and answer["error"]["code"] == "unknown_case", answer
        status, _ = await call("GET", f"{base}/cases/{open_id}/resolve", resolver)
        assert status == 405
    assert await _open_cases(database) == [open_id]


async def _open_cases(database: Database) -> list[int]:
    from storage.cases import list_cases

    return [row.case.id or 0 for row in await list_cases(database, open_only=True)]
