"""`sada webhooks`: add (the secret printed once, alone on stdout), list, enable, remove,
test against a real local endpoint, and one-line refusals of a bad URL, an unknown event
or an id that names nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from aiohttp import web
from typer.testing import CliRunner

from bot.cli import app
from bot.cli import webhooks as webhooks_cli
from storage.db import Database
from storage.models import WebhookSubscription
from tests.followups.test_alerts import cli_database

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
runner = CliRunner()


@pytest.fixture
def cli_env(head_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(webhooks_cli, "clock", lambda: T0)
    yield from cli_database(head_url, monkeypatch)


def sada(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["webhooks", *args])
    return result.exit_code, result.stdout, result.stderr


def stored(url: str) -> list[WebhookSubscription]:
    from sqlmodel import select

    async def read() -> list[WebhookSubscription]:
        async with await Database.open(url) as db, db.session() as s, s.begin():
            return list(await s.exec(select(WebhookSubscription)))

    return asyncio.run(read())


def test_add_list_enable_remove(cli_env: str) -> None:
    code, out, err = sada("add", "https://crm.example.com/hooks/sada", "--events",
                          "case.resolved, response.completed")
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("whsec_") and "\n" not in secret
    assert "webhook 1: https://crm.example.com/hooks/sada gets response.completed, " \
           "case.resolved" in err and "shown only now" in err
    [sub] = stored(cli_env)
    assert (sub.secret, sub.events, sub.active) == (
        secret, ["response.completed", "case.resolved"], True)

    code, out, _ = sada("list")
    assert code == 0 and "https://crm.example.com/hooks/sada" in out and "active" in out
    assert secret not in out
    code, out, _ = sada("list", "--format", "json")
    [listed] = json.loads(out)
    assert listed["events"] == ["response.completed", "case.resolved"]
    assert (listed["active"], listed["pending"], listed["failures"]) == (True, 0, 0)
    assert "secret" not in listed

    code, out, _ = sada("enable", "1")
    assert code == 0 and "webhook 1 (https://crm.example.com/hooks/sada) enabled" in out
    code, out, _ = sada("remove", "1")
    assert (code, out.strip()) == (0, "webhook 1 (https://crm.example.com/hooks/sada) removed")
    assert stored(cli_env) == []
    code, out, _ = sada("list")
    assert code == 0 and out.startswith("no webhooks")


WRONG = [
    (["add", "crm.example.com/hooks", "--events", "case.opened"],
     "'crm.example.com/hooks' is not a web address: give a full http:// or https:// URL"),
    (["add", "ftp://crm.example.com/x", "--events", "case.opened"],
     "'ftp://crm.example.com/x' is not a web address"),
    (["add", "https:///path", "--events", "case.opened"],
     "'https:///path' has no valid host"),
    (["add", "https://crm.example.com:port/x", "--events", "case.opened"],
     "has no valid host"),
    (["add", "https://crm.example.com/x", "--events", "case.opend,survey.done"],
     "unknown event case.opend, survey.done: use one or more of response.completed, "
     "case.opened, case.resolved"),
    (["add", "https://crm.example.com/x", "--events", " , "],
     "no event given: use one or more of response.completed"),
    (["remove", "5"], "there is no webhook 5; `sada webhooks list` shows them"),
    (["enable", "5"], "there is no webhook 5"),
    (["test", "5"], "there is no webhook 5"),
    (["remove", "five"], "'five' is not a number: give the webhook's id"),
]


def test_wrong_input_is_one_line(cli_env: str) -> None:
    # one database for every case: each one would cost a PostgreSQL database of its own
    for args, expected in WRONG:
        code, out, err = sada(*args)
        assert code == 2 and out == "", args
        assert expected in err and len(err.strip().splitlines()) == 1, (args, err)
        assert "Traceback" not in err
    assert stored(cli_env) == []


class _Endpoint:
    """A real HTTP server in a thread of its own (each `sada` command runs its own loop)."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.ready = threading.Event()
        self.url = ""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status)

    async def _start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/h", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/h"
        return runner

    def __enter__(self) -> _Endpoint:
        self.thread.start()
        self.runner = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_test_sends_a_signed_ping(cli_env: str) -> None:
    with _Endpoint(204) as ok, _Endpoint(500) as broken:
        _, secret, _ = sada("add", ok.url, "--events", "case.opened")
        sada("add", broken.url, "--events", "case.opened")
        code, out, err = sada("test", "1")
        assert code == 0 and out.strip() == f"webhook 1 ({ok.url}): HTTP 204", err
        [(headers, body)] = ok.requests
        timestamp = headers["Sada-Timestamp"]
        assert timestamp == str(int(T0.timestamp()))
        expected = hmac.new(secret.strip().encode(), f"{timestamp}.".encode() + body,
                            hashlib.sha256).hexdigest()
        assert headers["Sada-Signature"] == f"v1={expected}"
        assert json.loads(body)["type"] == "ping"
        code, out, err = sada("test", "2")
        assert code == 1 and err.strip() == f"webhook 2 ({broken.url}): HTTP 500"
