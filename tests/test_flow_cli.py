"""`sada flows lint`, driven through typer's CliRunner on the sub-app."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.flows import app

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(FIXTURES / "minimal.yaml", tmp_path / "minimal.yaml")
    return tmp_path


def test_a_good_flow_prints_its_summary_line_and_exits_0(folder: Path) -> None:
    path = folder / "minimal.yaml"
    result = runner.invoke(app, ["lint", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output == f"{path} ok  minimal  en  1 question  en 0m09s\n"


def test_errors_are_printed_compiler_style_and_exit_1() -> None:
    path = FIXTURES / "schema_errors.yaml"
    result = runner.invoke(app, ["lint", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == (
        f"{path}:17:9: error: unknown key 'optinal' in question 'nps'; did you mean 'optional'?"
    )
    assert lines[-1] == "checked 1 file: 0 ok, 1 with errors (4 errors, 0 warnings)"
    assert len(lines) == 5


def test_a_folder_means_its_yaml_files(folder: Path) -> None:
    (folder / "second.yml").write_text(
        (FIXTURES / "minimal.yaml")
        .read_text(encoding="utf-8")
        .replace("id: minimal", "id: second"),
        encoding="utf-8",
    )
    (folder / "notes.txt").write_text("not a flow", encoding="utf-8")
    result = runner.invoke(app, ["lint", str(folder)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{folder / 'minimal.yaml'} ok  minimal")
    assert lines[1].startswith(f"{folder / 'second.yml'} ok  second")
    assert lines[2] == "checked 2 files: 2 ok (0 errors, 0 warnings)"


def test_a_missing_path_is_an_error_not_a_traceback(folder: Path) -> None:
    result = runner.invoke(app, ["lint", str(folder / "nope.yaml"), str(folder / "minimal.yaml")])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{folder / 'nope.yaml'}: error: no such file or folder" in result.output
    assert "Traceback" not in result.output


def test_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lint", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path}: error: no *.yaml or *.yml files in this folder" in result.output


def test_warnings_alone_exit_0(folder: Path) -> None:
    path = folder / "minimal.yaml"
    text = path.read_text(encoding="utf-8").replace(
        '  en: "Thank you!"', '  en: "Thanks"\n  ar: "شكرًا"'
    )
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["lint", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.match(rf"{re.escape(str(path))}:11:3: warning: 'ar' text in the outro", lines[0])
    assert lines[1].startswith(f"{path} ok  minimal")
    assert lines[2] == "checked 1 file: 1 ok (0 errors, 1 warning)"


def test_messages_with_brackets_are_printed_verbatim(folder: Path) -> None:
    # Rich would read "[ar, fa, en]" as markup; the CLI must print it as text.
    path = folder / "minimal.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("languages: [en]", "languages: en"),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["lint", str(path)])
    assert "'languages' must be a list like [ar, fa, en], got 'en'" in result.output


def test_lint_is_a_named_sub_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "lint" in result.output
    assert "Write and check survey flows." in result.output
