"""Issue 13's "done when", end to end against real processes and real HTTP: a helpdesk
invites a contact who has no chat identity (only its own id, a name and a language) by the
API, with the ticket as context and as the idempotency key; the contact opens the personal
web link it got back in a browser and answers the survey in Persian; the helpdesk receives
one signed `response.completed` webhook and finds the response in the API.

Everything is set up as staff would: `sada api-keys create` and `sada webhooks add` on the
command line, then `sada run --web-only` (the web chat, the API and the follow-ups that
deliver webhooks, on one --listen address, on SQLite).

The flow is post-support, the flow made for tickets: it declares the `ticket` context (the
B2B flow declares none, and an invitation may give no context a flow does not declare).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.engine.normalize import local_digits
from bot.flow.loader import load_flow
from bot.i18n import translator
from tests.browser.conftest import OPEN_LINE, ROOT, free_port
from tests.browser.test_widget import bot_says, click, live_button, type_answer
from tests.sada_cli import run_sada
from tests.webhooks.receiver import Receiver, receiving

pytestmark = pytest.mark.slow

SUPPORT = load_flow(ROOT / "flows" / "post_support.yaml").flow
TICKET = "T-1042"
EXTERNAL_ID = "zendesk-user-3907"
WAIT = 15.0  # seconds: bounds a broken run only
TIMEOUT = 15_000  # ms, the same for the browser
T = TypeVar("T")


def text(qid: str) -> str:
    return SUPPORT.question(qid).text["fa"]


@dataclass
class Sada:
    """A running `sada run --web-only` with an API key and a webhook subscription."""

    base: str
    key: str
    secret: str
    db: Path
    log: Path
    receiver: Receiver

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        """(status, headers, JSON answer) of one API request with the helpdesk's key."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json",
                     **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, dict(answer.headers), json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), json.loads(exc.read())


def sada(env: dict[str, str], *args: str) -> str:
    """One `sada` command, run in this process with `env`'s SADA_* settings; its stdout (what
    it prints once: a key, a secret)."""
    settings = {name: value for name, value in env.items() if name.startswith("SADA_")}
    done = run_sada(args, env=settings, cwd=ROOT)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """The helpdesk's webhook endpoint: a real aiohttp server on its own loop and thread
    (the browser is driven by Playwright's sync API, which owns the test's thread)."""
    loop = asyncio.new_event_loop()
    ready: Future[Receiver] = Future()
    stop = asyncio.Event()

    async def serve() -> None:
        async with receiving() as found:
            ready.set_result(found)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    yield ready.result(timeout=10)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Sada]:
    folder = tmp_path_factory.mktemp("sada-helpdesk")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db, log = folder / "sada.db", folder / "run.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SADA_")}
    # the web chat's public URL set and no bot: personal links open the web chat
    env = {**clean, "SADA_DATABASE_URL": f"sqlite:///{db}", "SADA_FLOWS_DIR": str(ROOT / "flows"),
           "SADA_DATA_DIR": str(folder / "data"), "SADA_WEB__PUBLIC_URL": base}
    key = sada(env, "api-keys", "create", "helpdesk", "--scopes", "invite,contacts,read")
    assert key.startswith("sada_") and "\n" not in key, key
    secret = sada(env, "webhooks", "add", receiver.url, "--events", "response.completed")
    assert secret.startswith("whsec_") and "\n" not in secret, secret
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from bot.cli import main; main()", "run", "--web-only",
             "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not OPEN_LINE.search(log.read_text(encoding="utf-8")):
            assert proc.poll() is None, log.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, log.read_text(encoding="utf-8")
            time.sleep(0.05)
        yield Sada(base, key, secret, db, log, receiver)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """docs/webhooks.md's check, written here from the documented scheme alone (not Sada's
    signing code): v1= hex HMAC-SHA256, keyed with the secret, of "<timestamp>.<raw body>";
    a timestamp within 5 minutes."""
    found = {k.lower(): v for k, v in headers.items()}
    timestamp, signature = found.get("sada-timestamp", ""), found.get("sada-signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest("v1=" + expected, signature)


def eventually(what: str, probe: Callable[[], T | None], log: Callable[[], str]) -> T:
    """The first non-empty value of `probe`, polled for up to WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not (found := probe()):
        assert time.monotonic() < deadline, f"no {what} within {WAIT:.0f} s\n{log()}"
        time.sleep(0.1)
    return found


def test_helpdesk_invites_by_api_contact_answers_on_the_web_and_helpdesk_gets_a_webhook(
        running: Sada, browser: Any) -> None:
    # 1. The ticket is solved: the helpdesk invites its requester, known only by its own id.
    invitation = {"flow": SUPPORT.id,
                  "contact": {"external_id": EXTERNAL_ID, "name": "Sara", "language": "fa"},
                  "context": {"ticket": TICKET}}
    idem = {"Idempotency-Key": f"ticket-{TICKET}-solved"}
    status, _, first = running.call("POST", "/api/v1/invitations", invitation, idem)
    assert status == 201, (first, running.output())
    # the automation fires twice (a retry): the same invitation, no second one
    again, headers, second = running.call("POST", "/api/v1/invitations", invitation, idem)
    assert (again, second) == (status, first), second
    assert headers.get("Idempotent-Replayed") == "true", headers
    # no chat to send it to: the answer carries the personal web link for the helpdesk to send
    assert first["status"] == "sent" and first["links_channel"] == "web", first
    link = first["link"]
    assert link.startswith(running.base + "/s/"), link
    with sqlite3.connect(running.db) as conn:
        assert conn.execute("select count(*) from invitation").fetchone()[0] == 1
        assert not conn.execute("select channel from contact_identity where contact_id = ?",
                                (first["contact_id"],)).fetchall()

    # 2. The contact opens the link in a browser (set to English: the invitation's language
    # decides) and answers in Persian, by taps and by typing Persian digits.
    context = browser.new_context(locale="en-US", viewport={"width": 800, "height": 720})
    context.set_default_timeout(TIMEOUT)
    try:
        page = context.new_page()
        fa = translator("fa")
        page.goto(link)
        bot_says(page, TICKET)  # the intro names the ticket
        # the consent's first sentence (the commands after it are set apart on the page)
        bot_says(page, SUPPORT.consent["fa"].split(".")[0])  # type: ignore[index]
        click(page, fa.gettext("I agree"))
        bot_says(page, text("csat"))
        type_answer(page, local_digits("4", "fa"))
        bot_says(page, text("resolved"))
        click(page, fa.gettext("Yes"))
        bot_says(page, text("ces"))
        live_button(page, local_digits("7", "fa")).wait_for()
        click(page, local_digits("2", "fa"))
        bot_says(page, text("comment"))
        type_answer(page, "پاسخ سریع بود، ممنون")
        bot_says(page, SUPPORT.outro[-1].text["fa"])
    finally:
        context.close()

    # 3. The helpdesk's endpoint gets one signed response.completed for that response.
    got = eventually("webhook", lambda: list(running.receiver.received), running.output)
    assert len(got) == 1, got
    delivery = got[0]
    assert verified(running.secret, delivery.headers, delivery.body), delivery.headers
    assert not verified("whsec_" + "0" * 32, delivery.headers, delivery.body)
    event = json.loads(delivery.body)
    assert event["type"] == "response.completed", event
    assert {k.lower(): v for k, v in delivery.headers.items()}["sada-event-id"] == event["id"]
    data = event["data"]
    assert data["flow"]["id"] == SUPPORT.id and data["language"] == "fa", data
    assert data["contact"] == {"id": first["contact_id"], "external_id": EXTERNAL_ID}, data
    assert data["context"] == {"ticket": TICKET}, data
    assert data["answers"]["csat"]["value"] == 4, data
    assert data["answers"]["csat"]["text"] == "۴", data
    assert data["answers"]["resolved"]["value"] is True, data
    assert data["answers"]["ces"]["value"] == 2, data
    assert data["answers"]["comment"]["value"] == "پاسخ سریع بود، ممنون", data
    assert data["scores"]["csat"]["score"] == 4, data

    # 4. The same response, completed, in the API's list.
    def listed() -> list[dict[str, Any]]:
        code, _, page = running.call(
            "GET", f"/api/v1/responses?flow={SUPPORT.id}&status=completed")
        assert code == 200, page
        return [r for r in page["data"] if r["id"] == data["session_id"]]

    response = eventually("listed response", listed, running.output)[0]
    assert response["completed"] and response["context"] == {"ticket": TICKET}, response
    assert response["contact"] == data["contact"], response
    assert response["answers"]["csat"]["value"] == 4, response
    # still one delivery: the event is sent once
    assert len(running.receiver.received) == 1
