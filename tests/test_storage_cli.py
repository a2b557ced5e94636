"""`sada db upgrade` and `sada db current` through typer's runner, on real databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.db import app
from storage.db import head_revision

runner = CliRunner()


def test_upgrade_then_current(db_url: str) -> None:
    head = head_revision()
    result = runner.invoke(app, ["current", "--url", db_url])
    assert result.exit_code == 0, result.output
    assert "empty" in result.output and "sada db upgrade" in result.output

    result = runner.invoke(app, ["upgrade", "--url", db_url])
    assert result.exit_code == 0, result.output
    assert f": empty → {head}" in result.output

    result = runner.invoke(app, ["upgrade", "--url", db_url])
    assert f": {head} → {head}" in result.output

    result = runner.invoke(app, ["current", "--url", db_url])
    assert result.exit_code == 0, result.output
    assert f"{head} (at head)" in result.output


def test_upgrade_uses_the_settings_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import get_settings

    monkeypatch.setenv("SADA_DATABASE_URL", f"sqlite:///{tmp_path / 'from-env.db'}")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["upgrade"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "from-env.db" in result.output
    assert (tmp_path / "from-env.db").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://root:hunter2@db/sada", "postgresql://"),
        ("postgresql://sada:hunter2@127.0.0.1:1/sada", "sada:***@127.0.0.1:1"),
    ],
    ids=["bad-scheme", "closed-port"],
)
@pytest.mark.parametrize("command", ["upgrade", "current"])
def test_errors_are_one_line_without_traceback(command: str, url: str, expected: str) -> None:
    result = runner.invoke(app, [command, "--url", url])
    # A malformed URL is bad input (2), like a bad setting; an unreachable server is 1.
    assert result.exit_code == (2 if url.startswith("mysql") else 1)
    assert isinstance(result.exception, SystemExit)
    assert expected in result.output
    assert "Traceback" not in result.output
    assert "hunter2" not in result.output
    assert len(result.output.strip().splitlines()) == 1
