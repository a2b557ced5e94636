"""`sada run` in processes the answer fault tests can kill -9, forked from one process that
imported everything once (importing the bot takes seconds on a busy machine; a fork, a few
milliseconds).

Reads JSON lines on stdin and answers in JSON lines on stdout:

    {"run": "aiogram", "env": {"SADA_…": "…"}, "log": "/path/life1.log"}
        forks a child that runs `sada run --framework aiogram` (the command's own function)
        with that environment, its output in the log; answers {"pid": N}.
    {"quit": true}
        exits, killing any child still running (as does the end of stdin).

Whenever a child ends (kill -9, SIGTERM, a crash) it says {"exit": N, "status": S}: the exit
code, or minus the signal that ended it.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from bot.channels.telegram import aiogram_shell, ptb_shell, runner  # noqa: F401
from bot.cli import run as run_cli
from bot.conversation.controller import load_flows
from bot.flow.model import LANGUAGES
from bot.followups.scheduler import PLANNER_HOOKS
from bot.i18n import check_catalogs
from bot.settings import get_settings
from storage.db import head_revision

ROOT = Path(__file__).resolve().parents[2]


def _warm() -> None:
    """Do once, before any fork, what every start would do first: the imports a start makes
    lazily (database drivers included), reading the catalogs, the migrations and a flow,
    each framework's objects."""
    for url in ("sqlite+aiosqlite://", "postgresql+asyncpg://warm@127.0.0.1/warm"):
        create_async_engine(url)  # imports the driver; connects to nothing
    for hook in PLANNER_HOOKS:
        importlib.import_module(hook.module)
    check_catalogs(LANGUAGES)
    head_revision()
    load_flows(ROOT / "flows")
    aiogram_shell.build_bot("1:warm")
    ptb_shell.build_application("1:warm")


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _child(framework: str, env: dict[str, str], log: str) -> None:
    """The forked process: `sada run` until stopped or killed. Never returns."""
    status = 0
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)  # the zygote's stdout is its protocol: never ours
        os.dup2(fd, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        for name in [n for n in os.environ if n.startswith("SADA_")]:
            del os.environ[name]
        os.environ.update(env)
        get_settings.cache_clear()
        run_cli.run(framework=run_cli.Framework(framework), webhook=None,
                    listen="127.0.0.1:8080")
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # typer.Exit is click's, a RuntimeError
        code = getattr(exc, "exit_code", None)
        if isinstance(code, int):
            status = code
        else:
            traceback.print_exc()
            status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def main() -> None:
    _warm()
    _say({"ready": True})
    children: set[int] = set()
    try:
        _serve(children)
    finally:
        for pid in children:  # a test that failed half-way leaves no bot behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _serve(children: set[int]) -> None:
    stdin = sys.stdin.fileno()
    buffer = b""
    while True:
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else \
                    os.WEXITSTATUS(status)
                _say({"exit": pid, "status": code})
        readable, _, _ = select.select([stdin], [], [], 0.02)
        if not readable:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            command = json.loads(line)
            if command.get("quit"):
                return
            pid = os.fork()
            if pid == 0:
                _child(command["run"], command["env"], command["log"])
            children.add(pid)
            _say({"pid": pid})


if __name__ == "__main__":
    main()
