"""`sada actions`: record what was done about what respondents said, and tell each of them.

`add` takes one action from options or several from a YAML file (all or nothing, every
problem listed as file:line:column like `sada flows lint`); its follow-ups are queued in
the same transaction and the scheduler sends them. `send` queues follow-ups for people who
completed the survey since; `done` marks a promise kept; `list` and `show` report.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import YAMLError

from bot.cli import cases as cases_cli
from bot.cli.cases import with_database
from bot.cli.common import (
    Column,
    FormatOption,
    check_format,
    id_parser,
    print_table,
    settings_or_exit,
    write_records,
)
from bot.cli.common import fail as _fail
from bot.flow.loader import (
    FlowError,
    Positions,
    Problem,
    SourceError,
    _plain,
    _yaml_problem,
    bounded_yaml,
    load_flow,
    read_source,
)
from bot.flow.model import LANGUAGES, Flow
from bot.staff_text import staff_line

if TYPE_CHECKING:
    from bot.followups.actions import ActionSpec, FollowupReport, Issue
    from storage.db import Database
    from storage.models import Action

# bot.followups.actions and storage are imported where used: `sada --help` must start fast.

app = typer.Typer(help="Actions taken on feedback: record them and tell every affected "
                  "respondent, in their language.", no_args_is_help=True, add_completion=False)

_ACTION_ID = id_parser("action", "sada actions list")
_CASE_ID = id_parser("case", "sada cases list --all")
_OPTIONS = {"flow": "--flow", "question": "--question", "segment": "--segment",
            "account": "--account", "role": "--role", "case": "--case",
            "promised": "--promised", **{f"text.{lang}": f"--text-{lang}" for lang in LANGUAGES}}


def _fields() -> tuple[str, ...]:
    from bot.followups.actions import ActionSpec

    return tuple(ActionSpec.model_fields)


def _now() -> datetime:
    # One clock for every `sada` sub-command, replaceable in tests.
    return cases_cli.clock()


# --- flows -----------------------------------------------------------------------------


def _flows() -> dict[str, Flow]:
    """The flows the bot serves (SADA_FLOWS_DIR), by id."""
    from bot.conversation.controller import load_flows  # heavy: only when flows are needed

    folder = settings_or_exit().flows_dir
    return {k: v.flow for k, v in load_flows(folder).items()} if folder.is_dir() else {}


def _flow_id(name: str, flows: dict[str, Flow]) -> str:
    """The id of the flow named by an id or a YAML file; a file's flow joins ``flows``."""
    path = Path(name)
    if name in flows or not (path.suffix in (".yaml", ".yml") or path.is_file()):
        return name
    try:
        flow = load_flow(path).flow
    except FlowError as exc:
        first = "; ".join(str(p) for p in exc.problems[:3])
        _fail(f"{name}: the flow has errors ({first}); see `sada flows lint`", 2)
    flows[flow.id] = flow
    return flow.id


# --- one action from options -------------------------------------------------------------


def _option_errors(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ")
        if not loc:
            lines.append(message.replace("case names", "--case names").replace(
                "segment, account and role", "--segment, --account and --role"))
        elif loc[0] == "text":
            lines.append("give the action's text with --text-en, --text-ar and/or --text-fa "
                         "(at least the flow's default language)")
        else:
            option = _OPTIONS.get(loc[0], loc[0])
            got = error.get("input")
            if error["type"] == "string_pattern_mismatch":
                message = f"{got!r} is not an id (lowercase letters, digits and _)"
            elif error["type"] == "string_too_short":
                message = "is empty"
            lines.append(f"{option}: {message}")
    return list(dict.fromkeys(lines))


def _issue_line(issue: Issue) -> str:
    return f"{_OPTIONS.get(issue.where, issue.where)}: {issue.message}"


# --- an actions file ---------------------------------------------------------------------


class _DatesAsText(RoundTripConstructor):
    """YAML turns 2026-12-31 into a date, and 2026-13-01 into an exception without a
    position; kept as text, the schema checks it and the problem gets its line."""


_DatesAsText.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda constructor, node: constructor.construct_scalar(node),
)


def _suggest(word: str, choices: tuple[str, ...]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


class _File:
    """Problems in one actions file, each at the line and column it comes from."""

    def __init__(self, name: str, root: object, source: str, prefix: tuple[str | int, ...],
                 single: bool) -> None:
        self.name = name
        self.positions = Positions(name, root, source)
        self.prefix = prefix
        self.single = single
        self.problems: list[Problem] = []

    def path(self, index: int, *rest: str | int) -> tuple[str | int, ...]:
        return (*self.prefix, *rest) if self.single else (*self.prefix, index, *rest)

    def label(self, index: int) -> str:
        return "the action" if self.single else f"action {index + 1}"

    def add(self, index: int, rest: tuple[str | int, ...], message: str, *,
            at: str = "value", severity: str = "error") -> None:
        self.problems.append(self.positions.problem(
            self.path(index, *rest), message, at=at,  # type: ignore[arg-type]
            severity=severity))  # type: ignore[arg-type]

    def schema(self, index: int, exc: ValidationError) -> None:
        name = self.label(index)
        for error in exc.errors():
            loc = tuple(error["loc"])
            kind = error["type"]
            got = error.get("input")
            message = str(error["msg"]).removeprefix("Value error, ")
            if kind == "extra_forbidden":
                key = str(loc[-1])
                fields = _fields()
                near = _suggest(key, fields)
                hint = f"did you mean '{near}'?" if near else f"allowed keys: {', '.join(fields)}"
                self.add(index, loc, f"unknown key '{key}' in {name}; {hint}", at="key")
            elif kind == "missing":
                key = str(loc[-1])
                extra = (" (a mapping with one text per language: en:, ar:, fa:)"
                         if key == "text" else "")
                self.add(index, loc[:-1], f"{name} has no '{key}'{extra}")
            elif "[key]" in loc:
                self.add(index, tuple(p for p in loc if p != "[key]"),
                         f"unknown language {got!r} in the text of {name}; expected one of "
                         f"{', '.join(LANGUAGES)}", at="key")
            elif kind == "string_too_short" and loc and loc[0] == "text":
                self.add(index, loc, f"the '{loc[-1]}' text of {name} is empty")
            elif kind in ("dict_type", "too_short") and loc == ("text",):
                self.add(index, loc, f"the text of {name} must give one text per language "
                         "(`en: \"…\"` on its own line under `text:`)")
            elif kind == "string_pattern_mismatch":
                self.add(index, loc, f"{got!r} is not a valid {loc[-1]} id for {name}: use "
                         "lowercase letters, digits and _ (flow ids may also have -), "
                         "starting with a letter")
            elif kind in ("int_parsing", "int_type", "int_from_float", "greater_than_equal"):
                self.add(index, loc, f"the case of {name} must be a case number (see "
                         f"`sada cases list --all`), got {got!r}")
            elif kind in ("string_type",):
                self.add(index, loc, f"expected text for '{loc[-1]}' of {name}, got {got!r}; "
                         "put it in quotes")
            elif kind == "model_type" or kind == "model_attributes_type":
                self.add(index, loc, f"{name} must be a mapping of keys (flow:, text:, …), "
                         f"got {got!r}")
            else:
                where = f"'{loc[-1]}' of {name}" if loc else name
                self.add(index, loc, f"{where}: {message}")

    def issues(self, index: int, issues: list[Issue]) -> None:
        for issue in issues:
            rest = tuple(issue.where.split("."))
            self.add(index, rest, f"{self.label(index)}: {issue.message}",
                     severity=issue.severity)


def read_actions(path: Path, flows: dict[str, Flow], *, today: date
                 ) -> tuple[list[tuple[ActionSpec, int]], _File | None, list[Problem]]:
    """Parse and check an actions file: (specs with their index in the file, the file's
    position finder, problems). Any error means nothing may be added."""
    from bot.followups.actions import ActionSpec, check_spec

    name = str(path)
    try:  # bounded in size, and below in how far aliases expand: no "billion laughs"
        source = read_source(path, "actions file")
    except SourceError as exc:
        return [], None, [Problem(name, exc.line, 1, exc.message)]
    yaml = bounded_yaml()
    yaml.Constructor = _DatesAsText
    try:
        root = yaml.load(source)
    except YAMLError as exc:
        return [], None, [_yaml_problem(exc, name, source.splitlines())]
    except Exception as exc:  # ruamel raises a few non-YAMLError types on odd input
        return [], None, [Problem(name, 1, 1, f"this is not valid YAML: {exc}")]
    shape = ("an actions file is a list of actions (`- flow: …`), or a mapping with "
             "`actions:` holding that list")
    if root is None:
        return [], None, [Problem(name, 1, 1, f"the file is empty; {shape}")]
    prefix: tuple[str | int, ...] = ()
    single = False
    items: object = root
    if isinstance(root, dict) and "actions" in root:
        prefix, items = ("actions",), root["actions"]
    elif isinstance(root, dict):
        single, items = True, [root]
    checker = _File(name, root, source, prefix, single)
    if not isinstance(items, list) or not items:
        checker.add(0, (), shape)
        return [], checker, checker.problems
    specs: list[tuple[ActionSpec, int]] = []
    for index, item in enumerate(items):
        try:
            spec = ActionSpec.model_validate(_plain(item))
        except ValidationError as exc:
            checker.schema(index, exc)
            continue
        checker.issues(index, check_spec(spec, flows, today=today))
        specs.append((spec, index))
    return specs, checker, checker.problems


def _problem_line(problem: Problem) -> Text:
    style = "bold red" if problem.severity == "error" else "bold yellow"
    return Text.assemble((f"{problem.file}:{problem.line}:{problem.column}", "bold"), ": ",
                         (problem.severity, style), ": ", problem.message)


# --- reporting ---------------------------------------------------------------------------


def _scope(action: Action) -> str:
    parts = [f"{k} {v}" for k, v in (("question", action.question_id),
                                      ("segment", action.segment), ("account", action.account),
                                      ("role", action.role), ("case", action.case_id))
             if v is not None]
    return ", ".join(parts) or "everyone who answered"


def _report_lines(action: Action, report: FollowupReport, flow: Flow) -> list[str]:
    from storage.actions import promised_day

    lines = []
    promised = promised_day(action)
    verb = "already recorded" if report.existing else "added"
    head = f"action {action.id} {verb} (flow {action.flow_id}, {_scope(action)}"
    head += f", promised {promised.isoformat()})" if promised else ")"
    lines.append(head)
    lines += _followup_lines(report, flow)
    return lines


def _followup_lines(report: FollowupReport, flow: Flow) -> list[str]:
    lines = []
    if report.affected == 0:
        return ["no respondent matches: nobody with a completed survey of this flow fits "
                "these filters (yet); `sada actions send ID` tells later ones"]
    if report.total_queued:
        by_lang = ", ".join(f"{lang} {n}" for lang, n in sorted(report.queued.items()))
        lines.append(f"follow-ups queued: {report.total_queued} ({by_lang}); the scheduler "
                     "sends them")
    else:
        lines.append("follow-ups queued: 0")
    skipped = [(report.already, "already told"), (report.opted_out, "opted out"),
               (report.unreachable, "unreachable (blocked the bot)"),
               (report.not_telegram, "without a reachable chat")]
    shown = [f"{n} {why}" for n, why in skipped if n]
    if shown:
        lines.append("not sent: " + ", ".join(shown))
    for lang, n in sorted(report.fallback.items()):
        lines.append(f"{n} respondent{'s' if n != 1 else ''} in '{lang}' get the "
                     f"'{flow.default_language}' text (the action has no '{lang}' text)")
    return lines


# --- commands ----------------------------------------------------------------------------


@app.command("add")
def add_command(
    flow: Annotated[str | None, typer.Option("--flow", help="The flow id (or its YAML "
                                             "file) whose respondents the action concerns.")]
    = None,
    question: Annotated[str | None, typer.Option("--question", help="Only people who answered "
                                                 "this question; their answer is recalled.")]
    = None,
    segment: Annotated[str | None, typer.Option("--segment", help="Only contacts of this "
                                                "segment.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Only contacts of this "
                                                "company/account.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Only this stakeholder role "
                                             "(contact role, or their answer to the "
                                             "flow's role question).")] = None,
    case: Annotated[int | None, typer.Option("--case", help="Only the respondent of this "
                                             "case.", parser=_CASE_ID)] = None,
    text_en: Annotated[str | None, typer.Option("--text-en", help="What was done, in "
                                                "English.")] = None,
    text_ar: Annotated[str | None, typer.Option("--text-ar", help="… in Arabic.")] = None,
    text_fa: Annotated[str | None, typer.Option("--text-fa", help="… in Persian.")] = None,
    promised: Annotated[str | None, typer.Option("--promised", metavar="YYYY-MM-DD",
                                                 help="When it will be done; staff are "
                                                 "alerted if it passes before `done`.")]
    = None,
    file: Annotated[Path | None, typer.Option("--file", help="Add the actions of a YAML file "
                                              "instead (all or none).")] = None,
) -> None:
    """Record an action and queue a follow-up to each affected respondent.

    Each one is told, in their language: what they told us, what was done, and what comes
    next (the promised date in their calendar and digits).
    """
    from bot.followups.actions import ActionSpec, add_actions, check_spec
    from storage.db import NotFound

    now = _now()
    if file is not None:
        given = [o for o, v in (("--flow", flow), ("--question", question),
                                ("--segment", segment), ("--account", account),
                                ("--role", role), ("--case", case), ("--text-en", text_en),
                                ("--text-ar", text_ar), ("--text-fa", text_fa),
                                ("--promised", promised)) if v is not None]
        if given:
            _fail(f"--file takes everything from the file: leave out {', '.join(given)}", 2)
        _add_file(file, now)
        return
    if flow is None:
        _fail("--flow is required (or --file actions.yaml); `sada flows lint flows/` lists "
              "the flows", 2)
    flows = _flows()
    flow_id = _flow_id(flow, flows)
    texts = {lang: value for lang, value in (("en", text_en), ("ar", text_ar),
                                             ("fa", text_fa)) if value is not None}
    raw: dict[str, Any] = {"flow": flow_id, "question": question, "segment": segment,
                           "account": account, "role": role, "case": case, "text": texts,
                           "promised": promised}
    try:
        spec = ActionSpec.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as exc:
        _fail("\n".join(_option_errors(exc)), 2)
    issues = check_spec(spec, flows, today=now.date())
    errors = [_issue_line(i) for i in issues if i.severity == "error"]
    if errors:
        _fail("\n".join(errors), 2)
    console = Console(highlight=False, soft_wrap=True)
    for issue in issues:
        console.print("warning: " + _issue_line(issue), style="yellow", markup=False)
    chosen = flows[spec.flow]

    async def work(db: Database) -> list[tuple[Action, FollowupReport]]:
        if spec.case is not None:
            problem = await _case_problem(db, spec)
            if problem:
                raise NotFound(f"--case: {problem}")
        return await add_actions(db, [(spec, chosen)], now=now)

    for action, report in with_database(work):
        for line in _report_lines(action, report, chosen):
            console.print(line, markup=False)


async def _case_problem(db: Database, spec: ActionSpec) -> str | None:
    from storage.cases import get_case

    assert spec.case is not None
    found = await get_case(db, spec.case)
    if found is None:
        return f"there is no case {spec.case}; `sada cases list --all` shows them"
    if found.flow_id != spec.flow:
        return f"case {spec.case} is about flow '{found.flow_id}', not '{spec.flow}'"
    return None


def _add_file(file: Path, now: datetime) -> None:
    from bot.followups.actions import add_actions

    flows = _flows()
    specs, checker, problems = read_actions(file, flows, today=now.date())
    console = Console(highlight=False, soft_wrap=True)

    async def work(db: Database) -> list[tuple[Action, FollowupReport]] | None:
        if checker is not None:
            for spec, index in specs:
                if spec.case is not None:
                    problem = await _case_problem(db, spec)
                    if problem:
                        checker.add(index, ("case",), f"{checker.label(index)}: {problem}")
        if any(p.severity == "error" for p in problems):
            return None
        return await add_actions(db, [(spec, flows[spec.flow]) for spec, _ in specs], now=now)

    # The database is opened even when the file has errors, so unknown cases are listed
    # with everything else; nothing is added unless every action is sound.
    done = with_database(work) if checker is not None else None
    ordered = sorted(dict.fromkeys(problems), key=lambda p: (p.line, p.column))
    for problem in ordered:
        console.print(_problem_line(problem))
    errors = sum(1 for p in ordered if p.severity == "error")
    if done is None or errors:
        console.print(f"{file}: {errors} error{'s' if errors != 1 else ''}; nothing was added",
                      markup=False)
        raise typer.Exit(1)
    for action, report in done:
        for line in _report_lines(action, report, flows[action.flow_id]):
            console.print(line, markup=False)


def _done_mark(action: Action, now: datetime) -> str:
    from storage.actions import promised_day

    if action.done_at is not None:
        return action.done_at.strftime("%Y-%m-%d")
    day = promised_day(action)
    if day is not None and day < now.date():
        return "OVERDUE"
    return ""


@app.command("list")
def list_command(
    flow: Annotated[str | None, typer.Option("--flow", help="Only actions of this flow id.")]
    = None,
    fmt: FormatOption = "table",
) -> None:
    """Actions with their promise, how many respondents were told, and their replies."""
    from storage.actions import list_actions, promised_day

    check_format(fmt)
    rows = with_database(lambda db: list_actions(db, flow_id=flow))
    now = _now()
    if fmt != "table":  # every text in every language, for a spreadsheet or a pipe
        write_records(fmt, _FIELDS, [
            [row.action.id, row.action.created_at, row.action.flow_id, _scope(row.action),
             *(row.action.texts.get(lang) for lang in LANGUAGES), promised_day(row.action),
             row.action.done_at, _done_mark(row.action, now) == "OVERDUE", row.told,
             _queued(row.followups), row.followups.get("failed", 0), row.feedback]
            for row in rows])
        return
    console = Console(highlight=False)
    if not rows:
        console.print("no actions" + (f" for flow {flow}" if flow else ""), markup=False)
        return
    cells = []
    for row in rows:
        action = row.action
        text = action.texts.get("en") or next(iter(action.texts.values()), "")
        day = promised_day(action)
        cells.append([str(action.id), action.created_at.strftime("%Y-%m-%d"), action.flow_id,
                      _scope(action), text if len(text) <= 160 else text[:159] + "…",
                      day.isoformat() if day else "", _done_mark(action, now), str(row.told),
                      str(_queued(row.followups)), str(row.followups.get("failed", 0)),
                      str(row.feedback)])
    print_table(console, _COLUMNS, cells)


def _queued(followups: dict[str, int]) -> int:
    return followups.get("queued", 0) + followups.get("sending", 0)


# Narrow terminals hide the day it was added first, then the queue, the flow, failures and
# replies: which action, for whom, what was done, the promise and how many were told stay.
_COLUMNS = (
    Column("id", right=True), Column("added", drop=6), Column("flow", drop=4),
    Column("for", text=True, min_width=8), Column("text", text=True, min_width=16),
    Column("promised"), Column("done"), Column("told", right=True),
    Column("queued", right=True, drop=5), Column("failed", right=True, drop=3),
    Column("feedback", right=True, drop=2))
_FIELDS = ("id", "added_at", "flow", "for", *(f"text_{lang}" for lang in LANGUAGES),
           "promised", "done_at", "overdue", "told", "queued", "failed", "feedback")


@app.command("show")
def show_command(
    action_id: Annotated[int, typer.Argument(metavar="ID", help="The action id.",
                                             parser=_ACTION_ID)],
) -> None:
    """One action: its texts, and the replies respondents sent to its follow-up."""
    from storage.actions import feedback_of, get_action, promised_day
    from storage.db import NotFound

    async def work(db: Database) -> tuple[Action, list[Any]]:
        action = await get_action(db, action_id)
        if action is None:
            raise NotFound(f"there is no action {action_id}; `sada actions list` shows them")
        return action, await feedback_of(db, action_id)

    action, feedback = with_database(work)
    console = Console(highlight=False, soft_wrap=True)
    day = promised_day(action)
    console.print(f"action {action.id} · flow {action.flow_id} · {staff_line(_scope(action))}"
                  + (f" · promised {day.isoformat()}" if day else "")
                  + (f" · done {action.done_at:%Y-%m-%d}" if action.done_at else ""),
                  markup=False)
    for lang, text in action.texts.items():
        console.print(f"  {lang}: {staff_line(text)}", markup=False)
    console.print(f"{len(feedback)} repl{'ies' if len(feedback) != 1 else 'y'}", markup=False)
    for item, contact in feedback:
        who = contact.name or contact.first_name or contact.external_id or f"#{contact.id}"
        # a reply is one line: it cannot pass for the next one (bot.staff_text)
        console.print(f"  {item.received_at:%Y-%m-%d %H:%M} {staff_line(who)} ({contact.id}): "
                      f"{staff_line(item.text)}", markup=False)


@app.command("send")
def send_command(
    action_id: Annotated[int, typer.Argument(metavar="ID", help="The action id.",
                                             parser=_ACTION_ID)],
) -> None:
    """Queue the follow-up for respondents who became affected since (safe to repeat)."""
    from bot.followups.actions import send_followups
    from storage.actions import get_action
    from storage.db import NotFound

    now = _now()
    flows = _flows()
    folder = settings_or_exit().flows_dir

    async def work(db: Database) -> tuple[FollowupReport, Flow]:
        action = await get_action(db, action_id)
        if action is None:
            raise NotFound(f"there is no action {action_id}; `sada actions list` shows them")
        if action.flow_id not in flows:
            raise NotFound(f"action {action_id} is about flow '{action.flow_id}', which is no "
                           f"longer in {folder} (SADA_FLOWS_DIR)")
        flow = flows[action.flow_id]
        return await send_followups(db, action_id, flow=flow, now=now), flow

    report, flow = with_database(work)
    console = Console(highlight=False, soft_wrap=True)
    for line in _followup_lines(report, flow):
        console.print(line, markup=False)


@app.command("done")
def done_command(
    action_id: Annotated[int, typer.Argument(metavar="ID", help="The action id.",
                                             parser=_ACTION_ID)],
) -> None:
    """Mark an action done: its promise is kept, no overdue alert will follow."""
    from storage.actions import mark_done, promised_day

    now = _now()
    action = with_database(lambda db: mark_done(db, action_id, now=now))
    day = promised_day(action)
    kept = ""
    if day is not None:
        kept = " (on time)" if now.date() <= day else f" ({(now.date() - day).days} days late)"
    typer.echo(f"action {action.id} marked done{kept}")
