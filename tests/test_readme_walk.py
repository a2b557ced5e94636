"""The README's commands, run in the order it gives them, on a fresh database.

The commands are read from README.md itself, so the README cannot drift from the code: a
staff member who copies them one by one must see every one of them work. Only what needs
a live Telegram (`sada run`, its exports) and the `make` targets (run by CI itself) are
left out.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SADA = Path(sys.executable).with_name("sada")
# Two or more spaces then "#": a shell comment after a command, as the README writes them.
_COMMENT = re.compile(r"\s{2,}#.*$")
_LEFT_OUT = ("make ", "export ", "sada run", "source ")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = _COMMENT.sub("", line).strip()
            plain = line.replace(".venv/bin/sada", "sada")
            if line and not plain.startswith(_LEFT_OUT):
                commands.append(plain)
    return commands


def _as_run(command: str) -> str:
    """The README's `sada` is the one installed next to this Python."""
    sada = shlex.quote(str(SADA))
    return re.sub(r"(^|\|\s*)sada\b", lambda m: m.group(1) + sada, command)


def test_the_readme_lists_the_walkthrough() -> None:
    commands = readme_commands()
    assert any(c.startswith("sada contacts import") for c in commands)
    assert any(c.startswith("sada cases resolve") for c in commands)
    assert any(c.startswith("sada report") for c in commands)


def test_every_readme_command_works_in_order_on_a_fresh_database(tmp_path: Path) -> None:
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copytree(ROOT / "flows", work / "flows")
    shutil.copytree(ROOT / "docs", work / "docs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SADA_")}
    env |= {"SADA_DATA_DIR": str(tmp_path / "data"), "SADA_BOT_USERNAME": "sada_demo_bot",
            "COLUMNS": "100", "NO_COLOR": "1"}
    ran = []
    for command in readme_commands():
        result = subprocess.run(["bash", "-c", _as_run(command)], cwd=work, env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=120)
        shown = result.stdout + result.stderr
        assert result.returncode == 0, f"$ {command}\n{shown}"
        assert "Traceback" not in shown, f"$ {command}\n{shown}"
        ran.append((command, shown))
    outputs = dict(ran)
    assert "2 ok" in outputs["sada flows lint flows/"]
    resolved = [out for cmd, out in ran if cmd.startswith("sada cases resolve")]
    assert resolved and all("resolved" in out.lower() for out in resolved)
    assert (work / "out" / "report.html").exists() and (work / "out" / "charts").is_dir()
