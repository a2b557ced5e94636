"""`sada flows …`: commands for staff who write survey flows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from bot.flow.lint import LintReport
    from bot.flow.loader import Problem

# The flow modules are imported in the command: `sada --help` must start fast.

# Shell completion belongs to the top-level `sada` app that mounts this one.
app = typer.Typer(help="Write and check survey flows.", no_args_is_help=True, add_completion=False)

SUFFIXES = (".yaml", ".yml")


@app.callback()
def _flows() -> None:
    """Write and check survey flows."""
    # A callback keeps `lint` a named sub-command even while it is the only one.


def _expand(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    """Files to lint, in a stable order, and problems with the paths themselves."""
    from bot.flow.loader import Problem

    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
            if not found:
                problems.append(Problem(str(path), 0, 0, "no *.yaml or *.yml files in this folder"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problems.append(Problem(str(path), 0, 0, "no such file or folder"))
    unique = list(dict.fromkeys(files))
    return unique, problems


def _problem_line(problem: Problem) -> Text:
    style = "bold red" if problem.severity == "error" else "bold yellow"
    where = problem.file
    if problem.line:
        where += f":{problem.line}:{problem.column}"
    return Text.assemble((where, "bold"), ": ", (problem.severity, style), ": ", problem.message)


def _summary_line(report: LintReport) -> Text:
    from bot.flow.estimate import clock

    assert report.flow is not None and report.estimate is not None
    flow = report.flow
    count = report.estimate.questions
    times = " · ".join(
        f"{lang} {clock(seconds)}" for lang, seconds in report.estimate.seconds_by_language.items()
    )
    return Text.assemble(
        (report.path, "bold"),
        " ",
        ("ok", "bold green"),
        f"  {flow.id}  {' '.join(flow.languages)}  ",
        f"{count} question{'s' if count != 1 else ''}  {times}",
    )


@app.command("lint")
def lint_command(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="FLOW.yaml|FOLDER",
                       help="Flow files, or folders (their *.yaml and *.yml files are checked)."),
    ],
) -> None:
    """Check flows: schema, translations, conditions, placeholders and the 4-minute limit."""
    from bot.flow.lint import lint_file

    console = Console(highlight=False, soft_wrap=True)
    files, path_problems = _expand(paths)
    for problem in path_problems:
        console.print(_problem_line(problem))
    errors = len(path_problems)
    warnings = 0
    passed = 0
    for file in files:
        report = lint_file(file)
        for problem in report.problems:
            console.print(_problem_line(problem))
        errors += len(report.errors)
        warnings += len(report.warnings)
        if report.ok:
            passed += 1
            console.print(_summary_line(report))
    if len(files) + len(path_problems) > 1 or errors or warnings:
        failed = len(files) - passed
        parts = [f"{passed} ok"] + ([f"{failed} with errors"] if failed else [])
        counts = f"{errors} error{'s' if errors != 1 else ''}, "
        counts += f"{warnings} warning{'s' if warnings != 1 else ''}"
        console.print(
            f"checked {len(files)} file{'s' if len(files) != 1 else ''}: "
            f"{', '.join(parts)} ({counts})"
        )
    if errors:
        raise typer.Exit(code=1)
