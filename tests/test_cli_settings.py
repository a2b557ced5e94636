"""Every `sada` command reads settings one way: a bad one is one line naming the variable,
and the database URL resolves the same way (command option, root option, environment)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import bot.cli
from bot.cli import app, common
from bot.settings import Settings, get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no stray .env, and the default SQLite file lands in tmp
    for name in ("SADA_DATABASE_URL", "SADA_ADMIN_IDS", "SADA_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


COMMANDS = [
    ["report", "b2b-supplier"],
    ["answers", "b2b-supplier", "-q", "nps_why"],
    ["db", "current"],
    ["db", "upgrade"],
    ["contacts", "list"],
    ["contacts", "silent", "--flow", "b2b-supplier"],
    ["cases", "list"],
    ["actions", "list"],
    ["status"],
    ["--database-url", "sqlite:///x.db", "status"],
    ["db", "current", "--url", "sqlite:///x.db"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("SADA_ADMIN_IDS", "@mona")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.output.strip().splitlines() == [
        "SADA_ADMIN_IDS: must be numeric Telegram ids separated by commas, e.g. 12345,67890 "
        "(got '@mona')"
    ]


def test_a_type_error_names_the_variable_and_what_it_expects() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(admin_ids=["mona"])  # type: ignore[list-item]
    lines = common.settings_problems(caught.value)
    assert len(lines) == 1
    assert lines[0].startswith("SADA_ADMIN_IDS: ")
    assert "expected: Telegram user ids of the survey team, comma-separated" in lines[0]
    assert "errors.pydantic.dev" not in lines[0]


def test_main_turns_a_stray_settings_error_into_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Code that reads get_settings() itself, bypassing settings_or_exit, is still caught.
    monkeypatch.setenv("SADA_TELEGRAM_API_URL", "ftp://example")
    monkeypatch.setattr(bot.cli, "tidy_help", lambda command: lambda **_: get_settings())
    with pytest.raises(SystemExit) as stopped:
        bot.cli.main()
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "SADA_TELEGRAM_API_URL: must look like https://api.telegram.org, not 'ftp://example'"
    ]


def test_a_bad_database_url_names_where_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SADA_DATABASE_URL", "mysql://db/sada")
    result = runner.invoke(app, ["cases", "list"])
    assert result.exit_code == 2
    assert result.output.startswith("SADA_DATABASE_URL: unsupported database URL scheme")
    result = runner.invoke(app, ["--database-url", "nonsense", "status"])
    assert result.exit_code == 2
    assert result.output.startswith("--database-url: unsupported database URL value")


def test_the_root_database_url_overrides_the_environment_and_the_command_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SADA_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    root = f"sqlite:///{tmp_path / 'root.db'}"
    result = runner.invoke(app, ["--database-url", root, "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "root.db").exists() and not (tmp_path / "env.db").exists()
    assert common.root_database_url is None  # nothing leaks into the next invocation

    own = f"sqlite:///{tmp_path / 'own.db'}"
    result = runner.invoke(app, ["--database-url", root, "db", "upgrade", "--url", own])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "own.db").exists()

    # Every command resolves it alike: the root database is migrated, the env one is not.
    for args in (["status"], ["cases", "list"], ["contacts", "list"], ["actions", "list"]):
        result = runner.invoke(app, ["--database-url", root, *args])
        assert result.exit_code == 0, (args, result.output)
    assert not (tmp_path / "env.db").exists()
    result = runner.invoke(app, ["db", "current"])
    assert "env.db: empty" in result.output


def _paths(command: object, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        if not getattr(sub, "hidden", False):
            yield from _paths(sub, (*prefix, name))


def test_every_help_reads_as_words_at_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    monkeypatch.setenv("COLUMNS", "80")
    commands = list(_paths(typer.main.get_command(app)))
    assert ("contacts", "list") in commands and ("run",) in commands
    for path in commands:
        monkeypatch.setattr("sys.argv", ["sada", *path, "--help"])
        with pytest.raises(SystemExit) as stopped:
            bot.cli.main()
        assert stopped.value.code == 0, path
        shown = capsys.readouterr().out
        for code in ("<bool>", "<str>", "<int", "<list", "<path>", "<Path>"):
            assert code not in shown, (path, code, shown)
        assert max(len(line) for line in shown.splitlines()) <= 80, path
    monkeypatch.setattr("sys.argv", ["sada", "--help"])
    with pytest.raises(SystemExit):
        bot.cli.main()
    assert "--database-url" in capsys.readouterr().out  # the root option, for every command
