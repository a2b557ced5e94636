"""YAML files staff write are bounded before anything is built from them: size, nesting and
how far aliases expand. A "billion laughs" file is one problem on one line wherever a flow
or an actions file is read, never a MemoryError, a traceback or a bot that will not start.
"""

from __future__ import annotations

import logging
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.flow.lint import lint_file, lint_text
from bot.flow.loader import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_VALUES,
    FlowError,
    load_flow,
    load_flow_text,
)

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
MINIMAL = (FIXTURES / "minimal.yaml").read_text(encoding="utf-8")
runner = CliRunner()


def bomb(levels: int, width: int = 9, *, head: str = "") -> str:
    """A flow whose groups are `width ** levels` copies of one word, in a few hundred bytes."""
    lines = [head, "id: bomb", "languages: [en]", "default_language: en",
             "title: {en: x}", "intro: {en: x}", "outro: {en: x}",
             f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    lines.append(f"groups: *a{levels}")
    return "\n".join(lines) + "\n"


def only_problem(error: FlowError) -> str:
    assert len(error.problems) == 1, error.problems
    line = str(error.problems[0])
    assert "\n" not in line
    return line


def test_an_alias_bomb_is_one_problem_at_its_first_alias(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(5), encoding="utf-8")  # 9**6 values: far beyond MAX_VALUES
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    assert only_problem(caught.value) == (
        f"{path}:9:10: error: aliases (*name) make this file hold more than "
        f"{MAX_VALUES:,} values once expanded (a flow holds a few hundred): repeat the text "
        "instead of aliases of aliases")


def test_a_billion_laughs_stays_small_and_fast(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(9), encoding="utf-8")  # 9**10 ≈ 3.5 billion values expanded
    tracemalloc.start()
    started = time.perf_counter()
    try:
        report = lint_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert [p.message.split(":")[0] for p in report.problems] == ["aliases (*name) make this "
                                                                  "file hold more than 5,000 "
                                                                  "values once expanded (a flow "
                                                                  "holds a few hundred)"]
    # Before: 1.9 GB for 21 s, then MemoryError.
    assert peak < 20 * 1024 * 1024, f"{peak / 1e6:.1f} MB"
    assert elapsed < 3, f"{elapsed:.1f} s"


def test_aliases_a_flow_may_well_use_still_work() -> None:
    shared = (
        "id: shared\nlanguages: [en]\ndefault_language: en\n"
        "title: &same {en: Same words}\nintro: *same\noutro: *same\n"
        "groups:\n  - id: g\n    title: *same\n    questions:\n"
        "      - {id: q1, type: csat, text: {en: First?}, labels: &ends {min: *same, max: *same}}\n"
        "      - {id: q2, type: csat, text: {en: Second?}, labels: *ends}\n"
    )
    flow = load_flow_text(shared).flow
    assert flow.intro == {"en": "Same words"} and flow.questions[1].labels is not None


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("id: x\na: &a [1, *a]\n", "2:11", "an alias (*name) refers to a mapping or list it is "
         "inside of, so it never ends: point it at something else"),
        ("id: x\na: &a {b: {c: *a}}\n", "2:15", "an alias (*name) refers to a mapping or list "
         "it is inside of, so it never ends"),
        ("id: x\ngroups: " + "[" * 5000 + "]" * 5000 + "\n", "2:",
         f"mappings and lists are nested more than {MAX_DEPTH} deep here (a flow needs about "
         "10): check the indentation and the brackets"),
        ("id: x\n" + "".join("  " * n + f"k{n}:\n" for n in range(60)), "",
         f"nested more than {MAX_DEPTH} deep"),
        ("id: x\x00\n", "1:6", "the character U+0000 cannot be in a YAML file (most editors "
         "do not show it): remove it"),
        ("id: x\nalerts: {nps: " + "9" * 5000 + "}\n", "1:1",
         "a number in this file has thousands of digits"),
    ],
)
def test_loops_depth_and_odd_characters_are_one_line(text: str, line: str, message: str) -> None:
    with pytest.raises(FlowError) as caught:
        load_flow_text(text, "f.yaml")
    shown = only_problem(caught.value)
    assert shown.startswith(f"f.yaml:{line}") and message in shown, shown


def test_a_file_too_big_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(MINIMAL + "# " + "x" * MAX_FILE_BYTES + "\n", encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    assert only_problem(caught.value) == (
        f"{path}:1:1: error: the file is larger than 128 KB, the most a flow file may be "
        "(the biggest example is 17 KB): is it the right file?")
    assert lint_text(path.read_text(encoding="utf-8")).problems[0].message.startswith(
        "the file is larger than 128 KB")
    # every real flow is far below the bound
    for real in (Path(__file__).parent.parent / "flows").glob("*.yaml"):
        assert real.stat().st_size < MAX_FILE_BYTES // 4


def test_flows_lint_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    from bot.cli.flows import app

    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(9), encoding="utf-8")
    result = runner.invoke(app, ["lint", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines() == [
        f"{path}:9:10: error: aliases (*name) make this file hold more than 5,000 values "
        "once expanded (a flow holds a few hundred): repeat the text instead of aliases of "
        "aliases",
        "checked 1 file: 0 ok, 1 with errors (1 error, 0 warnings)",
    ]


def test_sada_run_skips_a_bomb_with_one_log_line_and_serves_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.conversation.controller import load_flows

    (tmp_path / "minimal.yaml").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "bomb.yaml").write_text(bomb(9), encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        flows = load_flows(tmp_path)
    assert list(flows) == ["minimal"]
    [record] = caplog.records
    assert record.getMessage() == (
        f"skipping {tmp_path / 'bomb.yaml'}:9:10: aliases (*name) make this file hold more "
        "than 5,000 values once expanded (a flow holds a few hundred): repeat the text "
        f"instead of aliases of aliases; `sada flows lint {tmp_path / 'bomb.yaml'}` lists "
        "every problem")


@pytest.fixture
def cli_env(head_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from tests.followups.test_alerts import cli_database

    yield from cli_database(head_url, monkeypatch)


def test_actions_add_file_refuses_a_bomb_in_one_line(cli_env: str, tmp_path: Path) -> None:
    from bot.cli.actions import app

    path = tmp_path / "actions.yaml"
    head = "x: &a0 [" + ", ".join(["lol"] * 9) + "]\n"
    head += "".join(f"x{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 10))
    path.write_text(head + "actions:\n  - flow: b2b-supplier\n    text: {en: x}\n",
                    encoding="utf-8")
    result = runner.invoke(app, ["add", "--file", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{path}:2:10: error: aliases (*name) make this file hold more than 5,000" in (
        result.output)
    assert "nothing was added" in result.output
    path.write_text("# " + "x" * MAX_FILE_BYTES, encoding="utf-8")
    result = runner.invoke(app, ["add", "--file", str(path)])
    assert result.exit_code == 1
    assert (f"{path}:1:1: error: the file is larger than 128 KB, the most an actions file may "
            "be") in result.output


def test_invite_and_link_name_the_bomb_in_one_line(tmp_path: Path) -> None:
    from bot.followups.invite import InviteError, resolve_flow

    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(9), encoding="utf-8")
    with pytest.raises(InviteError) as caught:
        resolve_flow(str(path), tmp_path)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"{path}:9:10: error: aliases (*name) make this file")
    with pytest.raises(InviteError) as caught:  # by id: the flows folder is searched
        resolve_flow("bomb", tmp_path)
    assert "aliases (*name)" in str(caught.value)


def test_a_file_of_too_many_values_stops_where_they_pass_the_bound() -> None:
    # ruamel reads a few thousand values a second: 40,000 list items took 16 s to lint.
    started = time.perf_counter()
    with pytest.raises(FlowError) as caught:
        load_flow_text("id: x\nl: [" + "1, " * 40_000 + "]\n", "f.yaml")
    shown = only_problem(caught.value)
    assert shown.startswith("f.yaml:") and shown.endswith(
        f"error: this file holds more than {MAX_VALUES:,} keys, values and list items (a flow "
        "holds a few hundred): is it the right file?")
    assert time.perf_counter() - started < 3
