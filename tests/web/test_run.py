"""The web chat from the command line: `sada run --web-only` in a real process prints a link
whose page and API complete a survey over plain HTTP (no browser); `sada link --channel web`
and `sada invite` make web links for people without a chat."""

from __future__ import annotations

import asyncio
import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import typer
from typer.testing import CliRunner

from bot.channels.web import history
from bot.cli import app
from bot.cli import run as run_cli
from bot.settings import get_settings
from storage.db import Database
from tests.bale.test_run import ROOT, completed, free_port, sada_run, stop

pytestmark = pytest.mark.slow

WEB_LINK = re.compile(r"https://cx\.example\.com/s/([A-Za-z0-9_-]{22})")
JSON = dict[str, Any]


class Visitor:
    """A browser's part of the conversation, over the JSON API only."""

    def __init__(self, http: aiohttp.ClientSession, base: str, visitor: str) -> None:
        self.http, self.base, self.visitor = http, base, visitor
        self.entries: list[JSON] = []
        self.last = 0
        self.toggled: set[int] = set()

    async def news(self) -> None:
        async with self.http.get(f"{self.base}/web/v1/poll", params={
                "visitor": self.visitor, "after": str(self.last)}) as answer:
            assert answer.status == 200, await answer.text()
            found = await answer.json()
        self.entries += found["messages"]
        self.last = found["last"]

    async def send(self, name: str, **body: str) -> None:
        """Post it; a 429 (answering faster than a person: 10, then 2 a second) is tried
        again shortly, as the widget does after Retry-After."""
        for _ in range(50):
            async with self.http.post(f"{self.base}/web/v1/{name}",
                                      json={"visitor": self.visitor, **body}) as answer:
                if answer.status != 429:
                    assert answer.status == 202, await answer.text()
                    return
                assert int(answer.headers["Retry-After"]) >= 1
            await asyncio.sleep(0.1)
        raise AssertionError("still refused after 5 s")

    @staticmethod
    def _kinds(message: JSON) -> dict[str, str]:
        """A question's buttons by kind (a answer, t toggle, d done, c consent, k skip,
        b back): the first of each."""
        datas = [b["data"] for row in message.get("buttons") or [] for b in row]
        return {data.split(":")[1]: data for data in reversed(datas)}

    def _asks(self, message: JSON) -> bool:
        return message["kind"] == "message" and (
            bool(set(self._kinds(message)) & {"a", "t", "d", "c"})
            or "Question " in message["text"])

    def asked(self, after: int = 0) -> JSON | None:
        """The question shown now (edits applied), if it came after seq `after`."""
        shown = history.applied(self.entries)
        found = next((m for m in reversed(shown) if self._asks(m)), None)
        return found if found is not None and found["seq"] > after else None

    async def until(self, done: Any) -> None:
        for _ in range(30):
            await self.news()
            if await done():
                return
        raise AssertionError(f"nothing came: {self.entries[-3:]}")

    async def answer(self, completed: Any) -> None:
        """Answer the question shown: its first choice (one toggle then done where several
        may be picked), else typed words; then wait for what that brings."""
        question = self.asked()
        assert question is not None, self.entries[-3:]
        kinds, mark = self._kinds(question), self.last
        if "t" in kinds and question["id"] not in self.toggled:
            self.toggled.add(question["id"])
            await self.send("press", data=kinds["t"])

            async def edited() -> bool:
                return any(e["kind"] == "edit" and e["seq"] > mark for e in self.entries)

            await self.until(edited)
            return
        if "d" in kinds:
            await self.send("press", data=kinds["d"])
        elif "a" in kinds or "c" in kinds:
            await self.send("press", data=kinds.get("a") or kinds["c"])
        else:
            await self.send("say", text="Delivery times")

        async def moved_on() -> bool:
            return self.asked(mark) is not None or bool(await completed())

        await self.until(moved_on)


async def test_sada_run_web_only_prints_a_link_that_completes_a_survey(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    process = await sada_run({"SADA_DATA_DIR": str(data)}, tmp_path / "run.log", "--web-only",
                             "--listen", f"127.0.0.1:{port}")
    try:
        line = None
        async with asyncio.timeout(90):
            while line is None:
                assert process.proc.returncode is None, process.output()
                line = re.search(r"^Open (http://127\.0\.0\.1:\d+/s/([A-Za-z0-9_-]{22})) in your "
                                 r"browser$", process.output(), re.M)
                await asyncio.sleep(0.1)
        url, token = line.group(1), line.group(2)
        assert url.startswith(f"http://127.0.0.1:{port}/s/")
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as page:  # served at once: the line came after the port
                assert page.status == 200
                html = await page.text()
                assert f'data-token="{token}"' in html and "/web/sada.js" in html
            async with http.post(f"{base}/web/v1/open", json={
                    "visitor": None, "token": token, "flow": None, "lang": "en"}) as opened:
                assert opened.status == 200
                visitor = Visitor(http, base, (await opened.json())["visitor"])
            async def done() -> bool:
                return "completed" in await completed(data / "sada.db", "web",
                                                      visitor.visitor)

            async def asked() -> bool:
                return visitor.asked() is not None

            await visitor.until(asked)
            for _ in range(30):
                if await done():
                    break
                await visitor.answer(done)
            else:
                raise AssertionError(f"not completed: {visitor.entries[-3:]}")
            said = [e["text"] for e in visitor.entries if e["kind"] == "visitor"]
            assert len(said) >= 7 and "Delivery times" in said  # both sides kept
            async with http.get(f"{base}/healthz") as health:
                assert health.status == 200
    finally:
        assert await stop(process) == 0, process.output()
    assert "Traceback" not in process.output()


def test_sada_run_web_only_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["run", "--web-only", "--listen", f"127.0.0.1:{port}"],
                                    env={"SADA_DATA_DIR": str(tmp_path / "data"),
                                         "SADA_FLOWS_DIR": str(ROOT / "flows")})
    assert result.exit_code == 1
    assert result.output.strip().startswith(f"cannot listen on 127.0.0.1:{port}")
    assert len(result.output.strip().splitlines()) == 1


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.startswith("SADA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SADA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SADA_FLOWS_DIR", str(ROOT / "flows"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def invoke(*args: str) -> tuple[int, str]:
    cli = typer.Typer(pretty_exceptions_enable=False)
    run_cli.register(cli)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.output


async def test_sada_link_channel_web_prints_a_page_link(
    database: Database, env: pytest.MonkeyPatch,
) -> None:
    env.setenv("SADA_DATABASE_URL", database.url)
    code, output = await asyncio.to_thread(invoke, "link", "b2b-supplier", "--channel", "web")
    assert (code, output) == (2, output)
    assert output.strip().startswith("sada link needs the web chat's public address")
    env.setenv("SADA_WEB__PUBLIC_URL", "https://cx.example.com/")
    for args in (("--channel", "web"), ()):  # web is the default with no bot configured
        code, output = await asyncio.to_thread(invoke, "link", "b2b-supplier", *args)
        assert code == 0, output
        match = WEB_LINK.fullmatch(output.strip())
        assert match is not None, output
        link = await history_link(database, match.group(1))
        assert link == "b2b-supplier"


async def history_link(database: Database, token: str) -> str | None:
    from storage.repo import Store

    found = await Store(database).get_link(token)
    return None if found is None else found.flow_id


def test_invite_writes_web_links_for_contacts_without_a_chat(
    env: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    env.setenv("SADA_WEB__PUBLIC_URL", "https://cx.example.com")
    (tmp_path / "contacts.csv").write_text(
        "external_id,name,language,segment\nCRM-1,Sara,en,vip\nCRM-2,Reza,fa,vip\n",
        encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["contacts", "import", str(tmp_path / "contacts.csv")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "links.csv"
    result = runner.invoke(app, ["invite", "--flow", "b2b-supplier", "--segment", "vip",
                                 "--links-out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2
    links = [value for row in rows for value in row.values() if value.startswith("https://")]
    assert len(links) == 2 and all(WEB_LINK.fullmatch(link) for link in links), rows
