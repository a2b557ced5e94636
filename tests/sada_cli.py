"""`sada ARGS` run in this test process, through the same `main()` the installed `sada` script
calls, with the environment, stdin and stdout a subprocess would get.

A `sada` subprocess costs about 1.5 s of CPU, most of it importing what this process has
imported already. Tests that check what a command does run it here; the tests that check
what only a real process shows (the README walk through the installed script, the wheel,
signals, kill -9, a real pipe) keep their subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


def run_sada(
    args: Sequence[str], *, stdin: str = "", env: Mapping[str, str] | None = None,
    keep_sada_env: bool = False, cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`sada ARGS` as `subprocess.run([SADA, *args], input=stdin, env=..., cwd=...)` returns it.

    The environment is this process's without its SADA_* variables (unless `keep_sada_env`),
    plus `env`; the cached settings are read afresh before and after. An exception `main()`
    lets through ends the run with exit code 1 and its traceback on stderr, as in a process.
    """
    from bot.cli import common, main
    from bot.settings import get_settings

    overrides: dict[str, str | None] = {}
    if not keep_sada_env:
        overrides |= {name: None for name in os.environ if name.startswith("SADA_")}
    overrides |= dict(env or {})
    argv, folder = sys.argv, Path.cwd()
    get_settings.cache_clear()
    code: int = 0
    try:
        with CliRunner().isolation(input=stdin, env=overrides) as (out, err, _):
            sys.argv = ["sada", *args]
            if cwd is not None:
                os.chdir(cwd)
            try:
                main()
            except SystemExit as exc:  # sys.exit(…) as Python itself ends a process on it
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
                    code = 1
            except Exception:  # what a process would print before it died
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    finally:
        sys.argv = argv
        os.chdir(folder)
        get_settings.cache_clear()
        common.root_database_url = None
    return subprocess.CompletedProcess(["sada", *args], code, stdout, stderr)
