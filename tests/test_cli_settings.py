"""Every `sada` command reads settings one way: a bad one is one line naming the variable,
and the database URL resolves the same way (command option, root option, environment).
Channels are groups (SADA_TELEGRAM__TOKEN), their older flat names still work, and the
README's table is the Settings model's."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field, ValidationError
from pydantic_core import PydanticUndefined
from typer.testing import CliRunner

import bot.cli
from bot.cli import app, common
from bot.settings import Settings, channel_groups, get_settings, variables
from bot.settings_group import Ids, SettingsGroup

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no stray .env, and the default SQLite file lands in tmp
    for name in list(os.environ):
        if name.startswith("SADA_"):
            monkeypatch.delenv(name)
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
        "SADA_ADMIN_IDS: must be numeric ids separated by commas, e.g. 12345,67890 "
        "(got '@mona')"
    ]


def test_a_type_error_names_the_variable_and_what_it_expects() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(telegram={"admin_ids": ["mona"]})  # type: ignore[arg-type]
    lines = common.settings_problems(caught.value)
    assert len(lines) == 1
    assert lines[0].startswith("SADA_TELEGRAM__ADMIN_IDS: ")
    assert "; expected: Telegram user ids of the survey team" in lines[0]
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


# --- channel groups: SADA_TELEGRAM__KEY, the older flat names, one line when wrong --------

TOKEN = "123456789:AAF1x-sada-settings-test-token-0123456"
NESTED = {
    "SADA_TELEGRAM__TOKEN": TOKEN,
    "SADA_TELEGRAM__API_URL": "http://127.0.0.1:8081/",
    "SADA_TELEGRAM__ADMIN_IDS": "11, 22",
    "SADA_TELEGRAM__ALERT_CHAT_IDS": "-1003",
    "SADA_TELEGRAM__WEBHOOK_SECRET": "s3cr-t_",
    "SADA_TELEGRAM__BOT_USERNAME": "@sada_bot",
}


def _telegram(settings: Settings) -> dict[str, object]:
    read = settings.telegram
    return {"token": read.token and read.token.get_secret_value(), "api_url": read.api_url,
            "admin_ids": read.admin_ids, "alert_chats": read.alert_addresses,
            "webhook_secret": read.webhook_secret and read.webhook_secret.get_secret_value(),
            "bot_username": read.bot_username}


EXPECTED = {"token": TOKEN, "api_url": "http://127.0.0.1:8081", "admin_ids": [11, 22],
            "alert_chats": ["-1003"], "webhook_secret": "s3cr-t_", "bot_username": "sada_bot"}


def test_the_telegram_group_reads_its_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in NESTED.items():
        monkeypatch.setenv(name, value)
    assert _telegram(Settings()) == EXPECTED
    monkeypatch.delenv("SADA_TELEGRAM__ALERT_CHAT_IDS")
    assert Settings().telegram.alert_addresses == ["11", "22"]  # alerts default to the admins


def _aliases() -> dict[str, str]:
    return {v.name: v.alias for v in variables() if v.alias is not None}


def test_the_older_flat_names_are_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(_aliases()) == set(NESTED)
    for name, value in NESTED.items():
        monkeypatch.setenv(_aliases()[name], value)
    assert _telegram(Settings()) == EXPECTED
    # Both names with the same value: no conflict (a half-migrated .env keeps working).
    for name, value in NESTED.items():
        monkeypatch.setenv(name, value)
    assert _telegram(Settings()) == EXPECTED


@pytest.mark.parametrize("nested", sorted(NESTED))
def test_both_names_set_to_different_values_is_one_line_naming_both(
    monkeypatch: pytest.MonkeyPatch, nested: str
) -> None:
    alias = _aliases()[nested]
    monkeypatch.setenv(nested, NESTED[nested])
    monkeypatch.setenv(alias, "12:other-value")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"{nested} and {alias} are both set, to different values: keep {nested} ({alias} is "
        "its older name)"
    ]
    assert "other-value" not in result.output  # never a secret


def test_the_env_file_takes_both_names_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"SADA_TELEGRAM__TOKEN={TOKEN}\nSADA_ADMIN_IDS=5,6\n"
                        "SADA_TELEGRAM__BOT_USERNAME=from_file_bot\n", encoding="utf-8")
    read = Settings().telegram
    assert (read.token and read.token.get_secret_value(), read.admin_ids,
            read.bot_username) == (TOKEN, [5, 6], "from_file_bot")
    # the environment beats .env whichever name each uses; that is no conflict
    monkeypatch.setenv("SADA_BOT_USERNAME", "from_env_bot")
    monkeypatch.setenv("SADA_TELEGRAM__ADMIN_IDS", "7")
    read = Settings().telegram
    assert (read.bot_username, read.admin_ids) == ("from_env_bot", [7])
    # ...but two names inside .env that disagree are the same mistake as in the environment
    env_file.write_text("SADA_TELEGRAM__ADMIN_IDS=1\nSADA_ADMIN_IDS=2\n", encoding="utf-8")
    monkeypatch.delenv("SADA_TELEGRAM__ADMIN_IDS")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2
    assert result.output.startswith("SADA_TELEGRAM__ADMIN_IDS and SADA_ADMIN_IDS are both set")


@pytest.mark.parametrize(("variables_set", "line"), [
    ({"SADA_TELEGRAM__ADMIN_IDS": "@mona"},
     "SADA_TELEGRAM__ADMIN_IDS: must be numeric ids separated by commas, e.g. 12345,67890 "
     "(got '@mona')"),
    ({"SADA_ALERT_CHAT_IDS": "chat"},
     "SADA_ALERT_CHAT_IDS: must be numeric ids separated by commas, e.g. 12345,67890 "
     "(got 'chat')"),
    ({"SADA_TELEGRAM__API_URL": "api.telegram.org"},
     "SADA_TELEGRAM__API_URL: must look like https://api.telegram.org, not 'api.telegram.org'"),
    ({"SADA_WEBHOOK_SECRET": "has space"},
     "SADA_WEBHOOK_SECRET: must be 1-256 characters of A-Z, a-z, 0-9, _ and -"),
    ({"SADA_TELEGRAM__TOKN": TOKEN},
     "SADA_TELEGRAM__TOKN: not a Telegram setting; the settings are SADA_TELEGRAM__TOKEN, "
     "SADA_TELEGRAM__API_URL, SADA_TELEGRAM__ADMIN_IDS, SADA_TELEGRAM__ALERT_CHAT_IDS, "
     "SADA_TELEGRAM__WEBHOOK_SECRET, SADA_TELEGRAM__BOT_USERNAME"),
    ({"SADA_SIGNAL__TOKEN": "x"},
     "SADA_SIGNAL__TOKEN: there is no channel 'signal'; the channels are telegram, "
     "bale, whatsapp, web (SADA_<CHANNEL>__<KEY>)"),
    ({"SADA_TELEGRAM": "token=1"},
     'SADA_TELEGRAM: must be a JSON object such as {"token": "…"}; or set each key on its '
     "own: SADA_TELEGRAM__TOKEN=…"),
    ({"SADA_TELEGRAM": "[1]"},
     "SADA_TELEGRAM: Input should be a valid dictionary or instance of TelegramSettings; "
     "expected: the Telegram channel: one variable per key (SADA_TELEGRAM__TOKEN=…), or all "
     'of them as a JSON object ({"token": "…"})'),
    ({"SADA_TELEGRAM": '{"admin_ids": "x"}'},
     "SADA_TELEGRAM__ADMIN_IDS: must be numeric ids separated by commas, e.g. 12345,67890 "
     "(got 'x')"),
])
def test_a_bad_channel_setting_is_one_line_naming_the_variable_as_written(
    monkeypatch: pytest.MonkeyPatch, variables_set: dict[str, str], line: str
) -> None:
    for name, value in variables_set.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.output.strip().splitlines() == [line]


class _BaleSettings(SettingsGroup):
    aliases: ClassVar[Mapping[str, str]] = {"token": "SADA_BALE_TOKEN"}
    token: str | None = None
    admin_ids: Ids = Field(default_factory=list)


class _TwoChannels(Settings):
    bale: _BaleSettings = Field(default_factory=_BaleSettings)


def test_a_second_channel_is_one_more_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """What adding Bale will take here: its group declared, one field; names, aliases,
    conflicts and unknown keys come with it."""
    monkeypatch.setenv("SADA_TELEGRAM__ADMIN_IDS", "1")
    monkeypatch.setenv("SADA_BALE__ADMIN_IDS", "2,3")
    monkeypatch.setenv("SADA_BALE_TOKEN", "bale-token")
    read = _TwoChannels()
    assert (read.telegram.admin_ids, read.bale.admin_ids, read.bale.token) == (
        [1], [2, 3], "bale-token")  # staff are per channel
    monkeypatch.setenv("SADA_BALE__TOKEN", "another")
    with pytest.raises(ValidationError, match="SADA_BALE__TOKEN and SADA_BALE_TOKEN"):
        _TwoChannels()
    monkeypatch.delenv("SADA_BALE__TOKEN")
    monkeypatch.setenv("SADA_BALE__API_URL", "https://tapi.bale.ai")
    with pytest.raises(ValidationError, match=r"bale\.api_url\n  Extra inputs"):
        _TwoChannels()
    monkeypatch.delenv("SADA_BALE__API_URL")
    monkeypatch.setenv("SADA_SIGNAL__TOKEN", "x")
    with pytest.raises(ValidationError, match="the channels are telegram, bale"):
        _TwoChannels()
    # and the real Settings, without the group, says there is no such channel
    with pytest.raises(ValidationError, match="there is no channel 'signal'"):
        Settings()


@pytest.mark.parametrize(("name", "token", "says"), [
    (None, None, "SADA_TELEGRAM__TOKEN is not set: get a token from @BotFather and export "
     "SADA_TELEGRAM__TOKEN=…"),
    ("SADA_TELEGRAM__TOKEN", "12345", "SADA_TELEGRAM__TOKEN does not look like a bot token"),
    ("SADA_TELEGRAM_TOKEN", "abc:" + "A" * 35, "SADA_TELEGRAM_TOKEN does not look like a bot "
     "token"),
])
def test_a_missing_or_misshapen_token_names_the_variable_as_written(
    monkeypatch: pytest.MonkeyPatch, name: str | None, token: str | None, says: str
) -> None:
    if name is not None and token is not None:
        monkeypatch.setenv(name, token)
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[0].startswith(says)
    assert len(result.output.strip().splitlines()) == 1


# --- the README's table is the model's --------------------------------------------------


def settings_table() -> str:
    """The README's settings table, from the Settings model (paste it when this changes)."""
    rows = ["| variable | alias | default | meaning |", "| --- | --- | --- | --- |"]
    for variable in variables():
        field = variable.field
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        default = extra.get("shown_default") or (
            f"`{field.default}`" if field.default not in (None, PydanticUndefined) else "—")
        alias = f"`{variable.alias}`" if variable.alias else "—"
        rows.append(f"| `{variable.name}` | {alias} | {default} | {field.description} |")
    return "\n".join(rows)


def test_the_readme_lists_every_setting_as_the_model_declares_it() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    assert table == settings_table(), f"README ## Settings should hold:\n{settings_table()}"
    # every variable a reader may meet is in it, under either name
    # every variable the README mentions is in it (a group's name, SADA_TELEGRAM, is not one)
    groups = {f"SADA_{group.upper()}" for group in channel_groups()}
    for name in set(re.findall(r"SADA_[A-Z_]*[A-Z]", readme)) - groups:
        assert f"`{name}`" in table or name == "SADA_TEST_POSTGRES_URL", name


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
