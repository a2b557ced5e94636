"""GET /api/v1/reports/{flow} and GET /api/v1/responses on a real server, on SQLite and
PostgreSQL, over the fixed report data of tests/reports: the report is the very JSON of
`sada report --format json`; responses walk every session exactly once across pages while
rows are written in between; bad parameters and cursors are one-line 400s."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from ruamel.yaml import YAML
from sqlalchemy import update
from sqlmodel import select
from typer.testing import CliRunner

from bot.api import Api
from bot.api.paging import SETTLE, Position
from bot.cli.report import report
from bot.serving import Shared
from bot.settings import get_settings
from storage.db import Database
from storage.models import FlowVersion, SurveySession
from storage.repo import Store
from tests.api.test_api import call, key_with
from tests.bale.test_run import free_port
from tests.reports.fixtures import FLOW, NOW, Builder, build_fixed

JAN = {"since": "2026-01-01", "until": "2026-01-31"}
cli = typer.Typer(pretty_exceptions_enable=False)
cli.command("report")(report)
cli.command("other")(lambda: None)  # two commands: the runner then takes the name


class Clock:
    """The API's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def flows_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A flows folder holding the report test flow, as SADA_FLOWS_DIR for the CLI too."""
    folder = tmp_path / "flows"
    folder.mkdir()
    with (folder / "report_test.yaml").open("w", encoding="utf-8") as f:
        YAML().dump(FLOW.model_dump(mode="json", exclude_none=True), f)
    monkeypatch.setenv("SADA_FLOWS_DIR", str(folder))
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


@pytest.fixture
async def filled(database: Database) -> AsyncIterator[Builder]:
    yield await build_fixed(database)


@asynccontextmanager
async def serve(database: Database, flows_dir: Path, clock: Clock | None = None
                ) -> AsyncIterator[str]:
    port = free_port()
    shared = Shared(Store(database), asyncio.Event(), channels=1, listen=("127.0.0.1", port))
    shared.api = Api(database, flows_dir=flows_dir,
                     clock=clock or Clock(NOW + timedelta(days=1))).handle
    await shared.start_server()
    try:
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        await shared.close()


def _query(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


async def _cli_json(url: str, *args: str) -> Any:
    """`sada report … --format json`, run where asyncio.run() may start its own loop."""
    result = await asyncio.to_thread(CliRunner().invoke, cli, [
        "report", *args, "--format", "json", "--database-url", url])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# --- reports ------------------------------------------------------------------------------

async def test_report_is_the_json_of_sada_report(
        filled: Builder, flows_dir: Path, database: Database) -> None:
    cases: list[tuple[dict[str, str], list[str]]] = [
        ({"by": "role", **JAN}, ["--by", "role", "--since", JAN["since"],
                                 "--until", JAN["until"]]),
        ({"by": "segment", "period": "week"}, ["--by", "segment", "--period", "week"]),
        ({"account": "Acme", **JAN}, ["--account", "Acme", "--since", JAN["since"],
                                      "--until", JAN["until"]]),
        ({"accounts": "true", **JAN}, ["--accounts", "--since", JAN["since"],
                                       "--until", JAN["until"]]),
    ]
    # The CLI first (its own event loop in a thread), then the API on the same rows.
    expected = [await _cli_json(database.url, "report-test", *args) for _, args in cases]
    key = await key_with(database, "read")
    async with serve(database, flows_dir, Clock(datetime.now(NOW.tzinfo))) as base:
        for (params, _), want in zip(cases, expected, strict=True):
            status, got = await call("GET", f"{base}/reports/report-test?{_query(params)}",
                                     key)
            assert status == 200, got
            # built a moment apart: only the time it was made may differ
            assert isinstance(got.pop("generated_at", ""), str)
            want.pop("generated_at", None)
            assert got == want, params
    assert expected[0]["overall"]["nps"]["promoters"] == 4  # the data was really there
    assert {a["account"] for a in expected[3]["accounts"]} >= {"Acme", "Globex"}


async def test_report_refusals_and_bad_parameters(flows_dir: Path, database: Database
                                                  ) -> None:
    reader, inviter = await key_with(database, "read"), await key_with(database, "invite")
    async with serve(database, flows_dir) as base:
        url = f"{base}/reports/report-test"
        assert (await call("GET", url))[0] == 401
        status, body = await call("GET", url, inviter)
        assert status == 403 and "read" in body["error"]["message"]
        status, body = await call("GET", f"{base}/flows?flow=x", reader)
        assert status == 400 and body["error"]["message"] == (
            "flow: unknown query parameter; this endpoint takes none")
        status, body = await call("GET", f"{base}/reports/nope", reader)
        assert status == 404 and body["error"]["code"] == "unknown_flow"
        # a flow no longer in the folder is reported from its stored version, as by the CLI
        text = io.StringIO()
        YAML().dump({**FLOW.model_dump(mode="json", exclude_none=True), "id": "retired"}, text)
        async with database.session() as s, s.begin():
            s.add(FlowVersion(flow_id="retired", content_hash="h", content=text.getvalue(),
                              created_at=NOW))
        status, body = await call("GET", f"{base}/reports/retired", reader)
        assert status == 200 and body["flow_id"] == "retired", body
        for params, field in [("by=colour", "by"), ("since=2026-13-01", "since"),
                              ("since=2026-02-01&until=2026-01-01", "since"),
                              ("period=day", "period"), ("segment=smb", "segment"),
                              ("by=role&by=account", "by"), ("accounts=maybe", "accounts"),
                              ("accounts=true&account=Acme", "accounts")]:
            status, body = await call("GET", f"{url}?{params}", reader)
            assert status == 400, (params, body)
            assert body["error"]["code"] == "invalid_field"
            message = body["error"]["message"]
            assert message.startswith(f"{field}:") and "\n" not in message, message


# --- responses ----------------------------------------------------------------------------

async def _walk(base: str, key: str, query: str = "", limit: int = 4,
                between: Any = None) -> tuple[list[dict[str, Any]], str | None]:
    """Every page until an empty one; `between(page_number)` runs after each page."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    last_cursor = None
    for number in range(100):
        url = f"{base}/responses?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        status, page = await call("GET", url, key)
        assert status == 200, page
        assert len(page["data"]) <= limit
        seen.extend(page["data"])
        if not page["data"]:
            assert page["next_cursor"] is None
            return seen, last_cursor
        cursor = last_cursor = page["next_cursor"]
        if between is not None:
            await between(number)
    raise AssertionError("the walk did not end")


async def test_pages_walk_every_response_once_with_inserts_in_between(
        filled: Builder, flows_dir: Path, database: Database) -> None:
    key = await key_with(database, "read")
    clock = Clock(NOW)
    written: list[int] = []

    async def insert(number: int) -> None:
        if number >= 6:  # a row after every page would never let the walk end
            return
        # stamped later than every row so far, as a live bot stamps them
        at = NOW - timedelta(minutes=30) + timedelta(seconds=number)
        written.append(await filled.session(f"new{number}", "g2", at, status="active",
                                            answers={"nps": number % 11}))

    async with serve(database, flows_dir, clock) as base:
        seen, cursor = await _walk(base, key, between=insert)
        ids = [r["id"] for r in seen]
        assert len(ids) == len(set(ids))
        async with database.session() as s, s.begin():
            every = {row.id for row in (await s.exec(select(
                SurveySession))).all()}
        assert set(ids) == every and len(written) == 6
        assert set(written) <= set(ids)

        # A row just written waits SETTLE before it is listed; an updated one comes again.
        fresh = await filled.session("fresh", "g2", NOW - SETTLE / 2, status="active")
        async with database.session() as s, s.begin():
            await s.exec(update(SurveySession)
                         .where(SurveySession.id == filled.sessions["a1"])  # type: ignore[arg-type]
                         .values(last_activity_at=NOW - timedelta(minutes=1)))
        status, page = await call("GET", f"{base}/responses?cursor={cursor}", key)
        assert status == 200 and [r["id"] for r in page["data"]] == [filled.sessions["a1"]]
        clock.now = NOW + SETTLE
        status, page = await call("GET", f"{base}/responses?cursor={page['next_cursor']}",
                                  key)
        assert status == 200 and [r["id"] for r in page["data"]] == [fresh]


async def test_a_response_with_its_answers_contact_and_context(
        filled: Builder, flows_dir: Path, database: Database) -> None:
    key = await key_with(database, "read")
    async with serve(database, flows_dir) as base:
        seen, _ = await _walk(base, key, "&flow=report-test", limit=500)
        by_id = {r["id"]: r for r in seen}
        n1 = by_id[filled.sessions["n1"]]
        assert n1["status"] == "completed" and n1["completed"] is True
        assert n1["contact"] == {"id": filled.contacts["n1"], "external_id": "n1"}
        assert n1["context"] == {"touchpoint": "web"}
        assert n1["answers"]["nps"]["value"] == 10 and n1["answers"]["nps"]["text"] == "10"
        assert datetime.fromisoformat(n1["completed_at"]) > datetime.fromisoformat(
            n1["started_at"])
        a3 = by_id[filled.sessions["a3"]]
        assert a3["answers"]["nps_why"] == {**a3["answers"]["nps_why"], "skipped": True,
                                            "value": None}
        assert a3["answers"]["priorities"]["value"] == ["price", "quality"]
        a6 = by_id[filled.sessions["a6"]]
        assert (a6["status"], a6["completed"], a6["completed_at"]) == ("stopped", False, None)
        # filters: completed or partial, and since
        done, _ = await _walk(base, key, "&status=completed", limit=500)
        partial, _ = await _walk(base, key, "&status=partial", limit=500)
        assert {r["id"] for r in done} | {r["id"] for r in partial} == set(by_id)
        assert all(r["completed"] for r in done) and not any(r["completed"] for r in partial)
        recent, _ = await _walk(base, key, "&since=2026-02-02", limit=500)
        assert [r["id"] for r in recent] == [filled.sessions["g1"]]
        # n1 finished at 00:09 on 1 February, 10 minutes after it started
        recent, _ = await _walk(base, key, "&since=2026-02-01T03:38:00%2B03:30", limit=500)
        assert [r["id"] for r in recent] == [filled.sessions["n1"], filled.sessions["g1"]]
        # the same with the "+" unencoded, as people type it: it arrives as a space
        again, _ = await _walk(base, key, "&since=2026-02-01T03:38:00+03:30", limit=500)
        assert again == recent
        recent, _ = await _walk(base, key, "&since=2026-02-01T00:10:00Z", limit=500)
        assert [r["id"] for r in recent] == [filled.sessions["g1"]]


async def test_response_refusals_and_bad_cursors(flows_dir: Path, database: Database
                                                 ) -> None:
    reader, inviter = await key_with(database, "read"), await key_with(database, "invite")
    async with serve(database, flows_dir) as base:
        url = f"{base}/responses"
        assert (await call("GET", url))[0] == 401
        assert (await call("GET", url, inviter))[0] == 403
        assert await call("GET", url, reader) == (200, {"data": [], "next_cursor": None})
        wrong_kind = Position("cases", NOW, 1).text()  # a cursor of the cases list
        forged = [base64.urlsafe_b64encode(text).decode() for text in (
            b'["responses","yesterday",1]', b'["responses","2026-01-01T00:00:00",1]',
            b'["responses","0001-01-01T00:00:00+14:00",1]',
            b'["responses","2026-01-01T00:00:00+00:00",4294967296]')]
        for params, field in [("cursor=garbage!!", "cursor"), (f"cursor={wrong_kind}", "cursor"),
                              *((f"cursor={f}", "cursor") for f in forged),
                              ("cursor=e30", "cursor"),
                              ("limit=0", "limit"), ("limit=501", "limit"),
                              ("limit=ten", "limit"), ("since=last-week", "since"),
                              ("status=done", "status"), ("page=2", "page")]:
            status, body = await call("GET", f"{url}?{params}", reader)
            assert status == 400, (params, body)
            message = body["error"]["message"]
            assert message.startswith(f"{field}:") and "\n" not in message, message
        status, body = await call("GET", f"{url}?flow=nope", reader)
        assert status == 404 and body["error"]["code"] == "unknown_flow"
        right_kind = Position("responses", NOW, 1).text()
        assert (await call("GET", f"{url}?cursor={right_kind}", reader))[0] == 200
