"""A real `sada run --web-only` on SQLite, a company site on another origin embedding its
widget, and one headless Chromium (Debian's, driven by Playwright) per test module.

On CI (CI=true) a missing browser fails the run: the checks must not silently stop.
Elsewhere it is a skip. Screenshots go to tests/browser/artifacts/ (ignored by git), or to
$SADA_TEST_ARTIFACTS.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("SADA_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
OPEN_LINE = re.compile(r"Open (http://\S+) in your browser")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lang(code, width=800): the browser's language and "
                            "viewport width for the test's context")


def browser_missing(reason: str) -> None:
    """On CI a missing browser is a failure; elsewhere a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """`sada run --web-only`: its base URL, the link it printed, its SQLite database."""

    base: str
    link: str
    db: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@dataclass
class Site:
    """A company's site on another origin: /embed?flow=&mode=&lang= embeds the widget."""

    base: str

    def page(self, **attributes: str) -> str:
        return self.base + "/embed?" + "&".join(f"{k}={v}" for k, v in attributes.items())


def _site_handler(server_base: str) -> type[BaseHTTPRequestHandler]:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/embed":
                self.send_error(404)
                return
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            attributes = " ".join(f'data-{k}="{escape(v)}"' for k, v in query.items())
            # The site's own CSS is hostile on purpose: the widget's Shadow DOM keeps it out.
            body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ACME Supplies</title>
<style>* {{ font-family: serif; letter-spacing: 2px }} button {{ background: red }}
#chat {{ max-width: 40rem; height: 34rem; margin: 1rem auto }}</style></head>
<body><h1>ACME Supplies</h1><p>Our customer portal.</p><div id="chat"></div>
<script src="{server_base}/web/sada.js" {attributes} data-target="#chat" async></script>
</body></html>""".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Page


@pytest.fixture(scope="module")
def site_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, site_port: int) -> Iterator[Server]:
    """A real `sada run --web-only` with the project's flows, on SQLite; the test site's
    origin is allowed to embed the widget."""
    folder = tmp_path_factory.mktemp("sada-web")
    port = free_port()
    db, log = folder / "sada.db", folder / "run.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SADA_")}
    env = {**clean, "SADA_DATABASE_URL": f"sqlite:///{db}", "SADA_FLOWS_DIR": str(ROOT / "flows"),
           "SADA_DATA_DIR": str(folder / "data"),
           "SADA_WEB__ALLOWED_ORIGINS": f"http://127.0.0.1:{site_port}"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from bot.cli import main; main()", "run", "--web-only",
             "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (found := OPEN_LINE.search(log.read_text(encoding="utf-8"))):
            assert proc.poll() is None, log.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, log.read_text(encoding="utf-8")
            time.sleep(0.05)
        yield Server(f"http://127.0.0.1:{port}", found.group(1), db, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def site(server: Server, site_port: int) -> Iterator[Site]:
    httpd = ThreadingHTTPServer(("127.0.0.1", site_port), _site_handler(server.base))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Site(f"http://127.0.0.1:{site_port}")
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        browser_missing(f"no headless Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_missing("playwright is not installed (make setup installs the dev extras)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM),
                                     args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
