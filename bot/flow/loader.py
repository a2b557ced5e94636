"""Load a flow YAML file into a `Flow`, reporting every problem at its line and column.

ruamel.yaml's round-trip loader keeps the position of every key and value; pydantic
validates; this module maps each pydantic error `loc` back to the YAML node and rewrites
pydantic's wording into plain staff language. The semantic checks live in lint.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import functools
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from bot.flow.model import (
    DURATION_PATTERN,
    LANGUAGES,
    QUESTION_TYPES,
    WINDOW_PATTERN,
    Flow,
    Question,
)

Severity = Literal["error", "warning"]
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    message: str
    severity: Severity = "error"

    def __post_init__(self) -> None:
        # One problem, one line: a message quoting a library's multi-line text (ruamel's
        # "\n  in <unicode string>") must not break `file:line:col: …` apart.
        if "\n" in self.message or "\r" in self.message:
            object.__setattr__(self, "message", " ".join(self.message.split()))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"


class FlowError(Exception):
    """A flow that cannot be used; `problems` holds every problem found, errors first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


@dataclass(frozen=True)
class LoadedFlow:
    flow: Flow
    source: str
    path: str


# --- positions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Spot:
    """Where a path lands in the YAML: 1-based positions of its key and value."""

    path: Loc  # the part of the requested path that exists in the YAML
    node: object
    key: tuple[int, int]
    value: tuple[int, int]
    exact: bool  # False when the last step was missing (the spot is an ancestor)


def _lc(obj: object, kind: str, arg: object) -> tuple[int, int] | None:
    """A 1-based position from ruamel's `.lc`, or None (merged keys, plain objects)."""
    lc = getattr(obj, "lc", None)
    if lc is None:
        return None
    try:
        line, col = getattr(lc, kind)(arg)
    except Exception:
        return None
    return (line + 1, col + 1)


def _start(obj: object) -> tuple[int, int] | None:
    lc = getattr(obj, "lc", None)
    if lc is None or lc.line is None:
        return None
    return (lc.line + 1, lc.col + 1)


class Positions:
    """Finds the YAML position of any path into the flow (pydantic locs or model paths).

    Steps that do not exist in the YAML are skipped rather than failing: pydantic puts
    union tags (`'nps'`) and `'[key]'` into its locs, and `outro: {en: …}` is validated
    as `outro: [{text: {en: …}}]`.
    """

    def __init__(self, file: str, root: object = None, source: str = "") -> None:
        self.file = file
        self.root = root
        self.lines = source.splitlines()

    @classmethod
    def none(cls, file: str = "<flow>") -> Positions:
        """For flows built in code: every problem is reported at 1:1."""
        return cls(file)

    def spot(self, path: Sequence[str | int]) -> Spot:
        node = self.root
        here = _start(node) or (1, 1)
        key = here
        found: list[str | int] = []
        exact = True
        for step in path:
            if isinstance(node, dict) and not isinstance(step, int) and step in node:
                key = _lc(node, "key", step) or here
                child = node[step]
                # ruamel places a null value at the start of the next line: point at the key.
                here = key if child is None else (_lc(node, "value", step) or key)
                node = child
            elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
                here = _lc(node, "item", step) or here
                key = here
                node = node[step]
            else:
                exact = False
                continue
            exact = True
            found.append(step)
        return Spot(tuple(found), node, key, here, exact)

    def problem(
        self,
        path: Sequence[str | int],
        message: str,
        *,
        at: Literal["key", "value"] = "value",
        offset: int | None = None,
        severity: Severity = "error",
    ) -> Problem:
        """A Problem at `path`; `offset` is a character index inside a text value."""
        spot = self.spot(path)
        line, col = spot.key if at == "key" else spot.value
        if offset is not None and spot.exact and isinstance(spot.node, str):
            line, col = self._inside(spot.node, (line, col), offset)
        return Problem(self.file, line, col, message, severity)

    def _inside(self, text: str, start: tuple[int, int], offset: int) -> tuple[int, int]:
        line, col = start
        if isinstance(text, LiteralScalarString):
            # `key: |` then indented lines: the text starts on the next line, and the
            # first line's indentation is the block's (deeper lines keep the extra).
            before = text[:offset]
            row = line + 1 + before.count("\n")
            content = [t for t in self.lines[line:row] if t.strip()]
            if not content or row > len(self.lines):
                return start
            indent = len(content[0]) - len(content[0].lstrip(" "))
            return (row, indent + 1 + len(before) - (before.rfind("\n") + 1))
        if isinstance(text, FoldedScalarString) or "\n" in text:
            return start  # folded lines: no reliable column, the start is close enough
        if line <= len(self.lines) and len(self.lines[line - 1]) < col - 1 + len(text):
            return start  # a plain scalar folded over several lines
        quoted = isinstance(text, DoubleQuotedScalarString | SingleQuotedScalarString)
        return (line, col + offset + (1 if quoted else 0))


# --- turning ruamel's tree into plain data -------------------------------------------


def _plain(node: object) -> object:
    """Plain dict/list/str/int/float/bool for pydantic (ruamel's subclasses carry baggage)."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, TaggedScalar):
        return node.value
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


# --- pydantic errors in staff language ----------------------------------------------


def _unwrap(annotation: object) -> object:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _annotation_at(loc: Sequence[str | int]) -> object:
    """The model or type pydantic validated at `loc` (None when it cannot tell)."""
    current: object = Flow
    for step in loc:
        current = _unwrap(current)
        if _is_model(current):
            assert isinstance(current, type)
            fields = current.model_fields  # type: ignore[attr-defined]
            if not isinstance(step, str) or step not in fields:
                return None
            current = fields[step].annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is list and isinstance(step, int):
            current = args[0]
        elif origin is dict:
            current = args[0] if step == "[key]" else args[1]
        elif origin in (Union, types.UnionType) and isinstance(step, str):
            tagged = [m for m in args if _is_model(m) and _type_tag(m) == step]
            if not tagged:
                return None
            current = tagged[0]
        else:
            return None
    return _unwrap(current)


def _type_tag(model: object) -> str | None:
    fields = getattr(model, "model_fields", {})
    if "type" not in fields:
        return None
    args = typing.get_args(fields["type"].annotation)
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


def _is_text(annotation: object) -> bool:
    return typing.get_origin(annotation) is dict


def _shown(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        short = value if len(value) <= 40 else value[:37] + "…"
        return repr(short)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dt.date | dt.datetime):
        return f"the date {value} (put it in quotes to make it text)"
    return repr(value)


def _suggest(word: object, choices: Sequence[str]) -> str | None:
    if not isinstance(word, str):
        return None
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not found and word.lower() in choices:
        return word.lower()
    return found[0] if found else None


# Words people write for a language instead of its code.
_LANGUAGE_NAMES = {"arabic": "ar", "ara": "ar", "persian": "fa", "farsi": "fa", "fas": "fa",
                   "per": "fa", "english": "en", "eng": "en"}


def _mean(value: object, choices: Sequence[str], words: dict[str, str] | None = None, *,
          quote: bool = True) -> str:
    """"; did you mean 'x'?" for a near-miss value, or nothing."""
    if not isinstance(value, str):
        return ""
    word = value.strip().lower()
    match = (words or {}).get(word) or _suggest(word, choices)
    if not match or match == value:
        return ""
    return f"; did you mean '{match}'?" if quote else f"; did you mean {match}?"


def _slug(value: object) -> str:
    text = re.sub(r"[^a-z0-9_]+", "_", str(value).strip().lower()).strip("_")
    if not text or not text[0].isalpha():
        text = "q_" + text
    return text[:32]


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names)


class _Describer:
    """Names a place in the flow the way staff think of it ("question 'nps'")."""

    def __init__(self, data: object) -> None:
        self.data = data

    @staticmethod
    def _get(node: object, step: str | int) -> object:
        if isinstance(node, dict):
            return node.get(step)
        if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            return node[step]
        return None

    @staticmethod
    def _named(kind: str, node: object, index: int, parent: str | None = None) -> str:
        ident = node.get("id") if isinstance(node, dict) else None
        # An invalid id would only confuse the message that reports it: count instead.
        if isinstance(ident, str) and _IDENTIFIER.match(ident):
            return f"{kind} '{ident}'"
        where = f" of {parent}" if parent else ""
        return f"{kind} {index + 1}{where}"

    def __call__(self, path: Sequence[str | int]) -> str:
        steps = list(path)
        data = self.data
        if not steps:
            return "the flow"
        head = steps[0]
        if head == "groups" and len(steps) >= 2 and isinstance(steps[1], int):
            group = self._get(self._get(data, "groups"), steps[1])
            gname = self._named("group", group, steps[1])
            rest = steps[2:]
            if not rest:
                return gname
            if rest[0] == "title":
                return f"the title of {gname}"
            if rest[0] != "questions":
                return f"'{rest[0]}' of {gname}"
            if len(rest) < 2 or not isinstance(rest[1], int):
                return f"the questions of {gname}"
            question = self._get(self._get(group, "questions"), rest[1])
            qname = self._named("question", question, rest[1], gname)
            return self._in_question(question, qname, rest[2:])
        if head == "outro":
            outro = self._get(data, "outro")
            if len(steps) >= 2 and isinstance(steps[1], int) and isinstance(outro, list):
                vname = f"outro variant {steps[1] + 1}"
                if len(steps) >= 3 and steps[2] == "text":
                    return f"the text of {vname}"
                return vname
            return "the outro"
        if head in ("title", "intro"):
            return f"the {head}"
        return f"'{head}'"

    def _in_question(self, question: object, qname: str, rest: list[str | int]) -> str:
        if not rest:
            return qname
        key = rest[0]
        if key == "text":
            return f"the text of {qname}"
        if key == "recap":
            return f"the recap of {qname}"
        if key == "options":
            if len(rest) < 2 or not isinstance(rest[1], int):
                return f"the options of {qname}"
            option = self._get(self._get(question, "options"), rest[1])
            oname = self._named("option", option, rest[1])
            oname = f"{oname} of {qname}"
            if len(rest) >= 3 and rest[2] == "label":
                return f"the label of {oname}"
            return oname
        if key == "labels":
            if len(rest) >= 2 and rest[1] in ("min", "max"):
                return f"the {rest[1]} label of {qname}"
            return f"the labels of {qname}"
        return f"'{key}' of {qname}"


_QUESTION_MODELS: dict[str, type[BaseModel]] = {
    tag: member
    for member in typing.get_args(_unwrap(Question))
    if (tag := _type_tag(member)) is not None
}

_QUESTION_KEYS = tuple(dict.fromkeys(k for m in _QUESTION_MODELS.values() for k in m.model_fields))

_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number (not .inf or .nan)",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}

# pydantic error types with a handler method `_<type>` below.
_HANDLED = frozenset(
    {
        "extra_forbidden",
        "missing",
        "union_tag_invalid",
        "union_tag_not_found",
        "model_type",
        "model_attributes_type",
        "dict_type",
        "list_type",
        "literal_error",
        "string_type",
        "string_pattern_mismatch",
        "string_too_short",
        "string_too_long",
        "too_short",
        "too_long",
        "greater_than_equal",
        "less_than_equal",
        "value_error",
    }
)

_NOUNS = {
    "options": "options",
    "questions": "question",
    "groups": "group",
    "languages": "language",
    "outro": "outro variant",
}


Ctx = dict[str, Any]
# A handler's answer: the message, the path to report at, and whether at its key or value.
_Found = tuple[str, Loc, Literal["key", "value"]]


def _untagged(loc: Loc) -> Loc:
    """`loc` without pydantic's union tags, which are not YAML keys.

    The tag follows the question's list index: ('questions', 0, 'text', 'max_length')
    is the `max_length` of a text question, not something inside its `text:`.
    """
    steps: list[str | int] = []
    for index, step in enumerate(loc):
        if (
            index >= 2
            and loc[index - 2] == "questions"
            and isinstance(loc[index - 1], int)
            and step in QUESTION_TYPES
        ):
            continue
        steps.append(step)
    return tuple(steps)


# --- settings with a format of their own: durations and time windows ------------------


def _setting_path(loc: Loc) -> tuple[str, ...]:
    """`loc` without list indexes: ('reminders', 'after', 1) → ('reminders', 'after')."""
    return tuple(str(step) for step in loc if not isinstance(step, int))


def _setting_name(loc: Loc) -> str:
    """A setting as staff find it in the file: 'fatigue', reminders.window, item 2 of
    reminders.after."""
    dotted = ".".join(_setting_path(loc))
    if loc and isinstance(loc[-1], int):
        return f"item {loc[-1] + 1} of {dotted}"
    return f"'{dotted}'" if "." not in dotted else dotted


# Units people write, as (the unit, how many of it): "2 months" is 60d.
_UNITS = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), ("m", 1)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), ("h", 1)),
    **dict.fromkeys(("d", "day", "days"), ("d", 1)),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), ("w", 1)),
    **dict.fromkeys(("month", "months"), ("d", 30)),
}
_SPOKEN_DURATION = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$", re.IGNORECASE)
_SPOKEN_WINDOW = re.compile(
    r"^\s*(\d{1,2})(?:[:.](\d{1,2}))?\s*[-–—~]+\s*(\d{1,2})(?:[:.](\d{1,2}))?\s*$")


class _Duration:
    noun = "a duration"
    pattern = DURATION_PATTERN
    rule = ("a whole number from 1 to 9999 and a unit, m (minutes), h (hours), d (days) or "
            "w (weeks), without a space")

    @staticmethod
    def example(loc: Loc) -> str:
        return "3d" if _setting_path(loc) == ("reminders", "after") else "30d"

    def explain(self, loc: Loc, value: object) -> str:
        message = f"{_shown(value)} is not a valid duration for {_setting_name(loc)}"
        spoken = _SPOKEN_DURATION.match(str(value))
        unit, times = _UNITS.get(spoken.group(2).lower(), ("", 0)) if spoken else ("", 0)
        count = int(spoken.group(1)[:5]) * times if spoken else 0
        if unit and 1 <= count <= 9999:
            return f"{message}: write it as '{count}{unit}' ({self.rule})"
        if unit and count == 0:
            return f"{message}: a duration is at least 1 of its unit (e.g. '1{unit}')"
        return f"{message}: write {self.rule} (e.g. '{self.example(loc)}')"


class _Window:
    noun = "a time window"
    pattern = WINDOW_PATTERN
    rule = "two times of day from 00:00 to 23:59 as HH:MM-HH:MM"

    @staticmethod
    def example(loc: Loc) -> str:
        return "09:00-18:00"

    def explain(self, loc: Loc, value: object) -> str:
        message = f"{_shown(value)} is not a valid time window for {_setting_name(loc)}"
        spoken = _SPOKEN_WINDOW.match(str(value))
        if spoken:
            hours = [int(spoken.group(n)) for n in (1, 3)]
            minutes = [int(spoken.group(n) or 0) for n in (2, 4)]
            times = [f"{h:02d}:{m:02d}" for h, m in zip(hours, minutes, strict=True)]
            wrong = [t for t, h, m in zip(times, hours, minutes, strict=True)
                     if h > 23 or m > 59]
            if wrong:
                return (f"{message}: {wrong[0]} is not a time of day (hours go from 00 to 23, "
                        "minutes from 00 to 59; midnight is 00:00), e.g. '09:00-18:00'")
            return f"{message}: write it as '{times[0]}-{times[1]}' ({self.rule})"
        return f"{message}: write {self.rule} (e.g. '09:00-18:00')"


_FORMATS: dict[tuple[str, ...], _Duration | _Window] = {
    ("fatigue",): _Duration(),
    ("reminders", "after"): _Duration(),
    ("account_limit", "window"): _Duration(),
    ("reminders", "window"): _Window(),
}


class _Translator:
    def __init__(self, data: object, positions: Positions) -> None:
        self.data = data
        self.positions = positions
        self.describe = _Describer(data)

    def problem(self, error: Any) -> Problem:
        kind: str = error["type"]
        loc: Loc = tuple(error["loc"])
        value = error.get("input")
        ctx: Ctx = error.get("ctx") or {}
        spot = self.positions.spot(_untagged(loc))
        clean = spot.path
        result: _Found | None = None
        if kind in _EXPECTED:
            result = self._expected(loc, clean, value, _EXPECTED[kind])
        elif kind in _HANDLED:
            result = getattr(self, "_" + kind)(loc, clean, value, ctx)
        if result is not None:
            message, path, at = result
            return self.positions.problem(path, message, at=at)
        return self._fallback(error, loc, clean, value)

    # Each handler returns (message, path to report at, "key" | "value") or None.

    def _extra_forbidden(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        key = loc[-1]
        model = _annotation_at(loc[:-1])
        where = self.describe(clean[:-1])
        message = f"unknown key '{key}' in {where}"
        fields = list(getattr(model, "model_fields", {}))
        tag = _type_tag(model)
        users = [t for t, m in _QUESTION_MODELS.items() if key in m.model_fields]
        if tag and users:
            # A key of another question type: say so instead of a misleading near-miss.
            message += f": {tag} questions have no '{key}' (used by {_listed(users)})"
        elif fields:
            match = _suggest(key, fields)
            if match:
                message += f"; did you mean '{match}'?"
            else:
                kind = f" for {tag} questions" if tag else ""
                message += f"; allowed keys{kind}: {_listed(fields)}"
        return message, clean, "key"

    def _missing(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        key = loc[-1]
        where = self.describe(clean)
        message = f"{where} has no '{key}'"
        if key == "type":
            message += f"; expected one of {_listed(QUESTION_TYPES)}"
        return message, clean, "value"

    def _union_tag_invalid(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        tag = ctx.get("tag")
        message = f"unknown question type '{tag}'; expected one of {_listed(QUESTION_TYPES)}"
        match = _suggest(tag, QUESTION_TYPES)
        if match:
            message += f"; did you mean '{match}'?"
        return message, (*clean, "type"), "value"

    def _union_tag_not_found(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        if not isinstance(value, dict):
            return self._model_type(loc, clean, value, ctx)
        where = self.describe(clean)
        return f"{where} has no 'type'; expected one of {_listed(QUESTION_TYPES)}", clean, "value"

    def unknown_keys(self, error: Any) -> list[Problem]:
        """Keys no question type has, in a question pydantic could not check (its type is
        unknown or missing): reported now rather than after the type is fixed."""
        if error["type"] not in ("union_tag_invalid", "union_tag_not_found"):
            return []
        clean = self.positions.spot(_untagged(tuple(error["loc"]))).path
        node = error.get("input")
        if not isinstance(node, dict):
            return []
        where = self.describe(clean)
        problems = []
        for key in node:
            if key in _QUESTION_KEYS:
                continue
            message = f"unknown key '{key}' in {where}"
            match = _suggest(key, _QUESTION_KEYS)
            message += f"; did you mean '{match}'?" if match else ""
            problems.append(self.positions.problem((*clean, key), message, at="key"))
        return problems

    def _model_type(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        where = self.describe(clean)
        if len(loc) >= 2 and loc[-2] == "options":
            hint = "an option is a mapping with id: and label:"
        elif len(loc) >= 2 and loc[-2] == "questions":
            hint = "a question is a mapping with id:, type: and text:"
        else:
            hint = "expected a mapping of keys (key: value)"
        return f"{where}: {hint}, got {_shown(value)}", clean, "value"

    _model_attributes_type = _model_type

    def _dict_type(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        where = self.describe(clean)
        if _is_text(_annotation_at(loc)):
            return (
                f'{where} must give one text per language (e.g. `en: "…"` on its own '
                f"line under it), got {_shown(value)}",
                clean,
                "value",
            )
        return self._model_type(loc, clean, value, ctx)

    def _list_type(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        key = loc[-1]
        where = self.describe(clean)
        if key == "languages":
            example = "a list like [ar, fa, en]"
        else:
            example = "a list (`[a, b]`, or lines starting with `- `)"
        return f"{where} must be {example}, got {_shown(value)}", clean, "value"

    def _literal_error(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found | None:
        langs = _listed(LANGUAGES)
        hint = _mean(value, LANGUAGES, _LANGUAGE_NAMES)
        if loc and loc[-1] == "[key]":
            where = self.describe(clean[:-1])
            return (
                f"unknown language '{value}' in {where}; expected one of {langs}{hint}",
                clean,
                "key",
            )
        if value is None:
            where = self.describe(clean)
            return f"{where} has no value; expected one of {langs}", clean, "value"
        if "languages" in loc or "default_language" in loc:
            return (f"unknown language {_shown(value)}; expected one of {langs}{hint}", clean,
                    "value")
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        if allowed:  # any other fixed set of values, e.g. weekdays
            where = self.describe(clean)
            return (f"unknown value {_shown(value)} for {where}; expected one of "
                    f"{_listed(allowed)}{_mean(value, allowed)}", clean, "value")
        return None

    def _string_type(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        key = loc[-1]
        where = self.describe(clean)
        form = _FORMATS.get(_setting_path(loc))
        if form is not None:
            return (f"expected {form.noun} for {_setting_name(loc)}, got {_shown(value)}: "
                    f"{form.rule} (e.g. '{form.example(loc)}')", clean, "value")
        message = f"expected text for {where}, got {_shown(value)}"
        if key == "when":
            message += '; write the condition as text, e.g. `when: "nps <= 6"`'
        elif key == "id" or (len(loc) >= 2 and loc[-2] == "context"):
            message += "; ids are words such as `price` or `q1`"
        elif isinstance(value, int | float | bool):
            message += '; put it in quotes, e.g. "10"'
        return message, clean, "value"

    def _string_pattern_mismatch(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        key = loc[-1]
        form = _FORMATS.get(_setting_path(loc))
        if form is not None and ctx.get("pattern") == form.pattern:
            return form.explain(loc, value), clean, "value"
        if loc == ("id",):
            rule = "lowercase letters, digits, _ and -, starting with a letter"
            slug = _slug(value).replace("_", "-")
        else:
            rule = "lowercase letters, digits and _, starting with a letter"
            slug = _slug(value)
        if isinstance(key, int) and len(loc) >= 2 and loc[-2] == "context":
            what = "context key"
        elif key == "touchpoint":
            what = "touchpoint"
        else:
            what = f"id for {self.describe(clean[:-1])}" if key == "id" else f"'{key}'"
        return f"{_shown(value)} is not a valid {what}: use {rule} (e.g. '{slug}')", clean, "value"

    def _string_too_short(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        key = loc[-1]
        if key in LANGUAGES:
            where = self.describe(clean[:-1])
            message = f"{where} is empty in '{key}'; write the text or remove the language"
            return message, clean, "value"
        return f"{self.describe(clean)} is empty", clean, "value"

    def _string_too_long(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        size = len(value) if isinstance(value, str) else "?"
        where = self.describe(clean)
        limit = ctx.get("max_length")
        return f"{where} is too long ({size} characters; at most {limit})", clean, "value"

    def _too_short(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        key = loc[-1]
        noun = _NOUNS.get(str(key), "item")
        least = ctx.get("min_length")
        plural = "s" if least != 1 and not noun.endswith("s") else ""
        where = self.describe(clean[:-1]) if isinstance(key, str) else self.describe(clean)
        return f"{where} needs at least {least} {noun}{plural}", clean, "value"

    def _too_long(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        key = loc[-1]
        noun = _NOUNS.get(str(key), "items")
        where = self.describe(clean[:-1]) if isinstance(key, str) else self.describe(clean)
        actual = ctx.get("actual_length")
        return (
            f"{where} has {actual} {noun}; at most {ctx.get('max_length')} are allowed",
            clean,
            "value",
        )

    def _expected(self, loc: Loc, clean: Loc, value: object, what: str) -> _Found:
        where = self.describe(clean)
        message = f"expected {what} for {where}, got {_shown(value)}"
        if what == _EXPECTED["bool_type"]:
            message += _mean(value, ("true", "false"), quote=False)
        return message, clean, "value"

    def _bound(self, loc: Loc, clean: Loc, value: object, word: str, limit: object) -> _Found:
        where = self.describe(clean)
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)  # 1000000000000000, not 1000000000000000.0
        return f"{where} must be {word} {limit}, got {_shown(value)}", clean, "value"

    def _greater_than_equal(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        return self._bound(loc, clean, value, "at least", ctx.get("ge"))

    def _less_than_equal(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        return self._bound(loc, clean, value, "at most", ctx.get("le"))

    def _value_error(self, loc: Loc, clean: Loc, value: object, ctx: Ctx) -> _Found:
        error = ctx.get("error")
        text = str(error) if error is not None else "invalid value"
        where = self.describe(clean)
        # Model-level checks report at the mapping; point at the key the message names.
        path: Loc = clean
        if isinstance(value, dict):
            mentioned = [
                (m.start(), k)
                for k in value
                if isinstance(k, str)
                for m in [re.search(rf"(?<![\w]){re.escape(k)}(?![\w])", text)]
                if m is not None
            ]
            if mentioned:
                path = (*clean, min(mentioned)[1])
        message = text if where == "the flow" else f"{where}: {text}"
        return message, path, "value"

    def _fallback(self, error: Any, loc: Loc, clean: Loc, value: object) -> Problem:
        message = str(error.get("msg", "invalid value"))
        where = self.describe(clean)
        return self.positions.problem(clean, f"{where}: {message[0].lower() + message[1:]}")


# --- bounded YAML --------------------------------------------------------------------

# What a YAML file staff write (a flow, an actions file) may hold, checked before anything
# is built from it: the biggest flow in flows/ is 17 KB, 565 values, nested 9 deep, and
# takes 3 of the 4 minutes a flow may. Without bounds a "billion laughs" file (aliases of
# aliases, a few hundred bytes) expands to billions of values: 1.9 GB and a MemoryError in
# `sada flows lint`, no `sada run` at all. ruamel reads some 5,000 values a second: the
# bounds also keep any file within about a second.
MAX_FILE_BYTES = 128 * 1024
MAX_VALUES = 5_000  # every key, value and list item, with each alias counted as expanded
MAX_DEPTH = 32  # mappings and lists inside each other


class YamlLimitError(MarkedYAMLError):
    """A YAML document beyond the bounds above; `problem` is the one-line message."""


class _BoundedComposer(Composer):
    """ruamel's composer, which refuses a document that expands beyond MAX_VALUES.

    Composing only reads the text: an alias is the node it names, shared, so the nodes
    stay as few as the text is long. Here they are counted as the constructor would
    copy them, before it does.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            if not hasattr(self, "_first_alias"):
                self._first_alias = self.parser.peek_event().start_mark
        else:  # counted as they are read, so that a file of 100,000 values stops early
            self._composed = getattr(self, "_composed", 0) + 1
            if self._composed > MAX_VALUES:
                raise YamlLimitError(problem=(
                    f"this file holds more than {MAX_VALUES:,} keys, values and list items "
                    "(a flow holds a few hundred): is it the right file?"),
                    problem_mark=self.parser.peek_event().start_mark)
        return super().compose_node(parent, index)

    def compose_document(self) -> Any:
        node = super().compose_document()
        first_alias = getattr(self, "_first_alias", None)
        if node is not None and first_alias is not None:
            _check_expansion(node, first_alias)
        return node


def _check_expansion(root: Node, alias_mark: Any) -> None:
    """Raises YamlLimitError, at the first alias, when aliases make `root` hold more than
    MAX_VALUES or loop."""
    sizes: dict[int, int] = {}  # id(node) → values in it, each alias expanded
    open_nodes: set[int] = set()  # on the path being walked: reaching one again is a loop
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_VALUES:
                raise YamlLimitError(problem=(
                    f"aliases (*name) make this file hold more than {MAX_VALUES:,} values "
                    "once expanded (a flow holds a few hundred): repeat the text instead "
                    "of aliases of aliases"), problem_mark=alias_mark)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlLimitError(problem=(
                "an alias (*name) refers to a mapping or list it is inside of, so it "
                "never ends: point it at something else"), problem_mark=alias_mark)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def bounded_yaml() -> YAML:
    """ruamel's round-trip YAML with the bounds above: every YAML file staff write is read
    with it (flows here, actions files in bot/cli/actions.py)."""
    yaml = YAML(typ="rt")
    yaml.Composer = _BoundedComposer
    yaml.max_depth = MAX_DEPTH
    return yaml


class SourceError(Exception):
    """A file that cannot be read as YAML text: `message` says why, at `line`."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def read_source(path: str | Path, noun: str = "flow file") -> str:
    """The UTF-8 text of a YAML file staff wrote, read no further than MAX_FILE_BYTES."""
    try:
        with Path(path).open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except IsADirectoryError:
        raise SourceError(f"this is a folder, not {_a(noun)}") from None
    except FileNotFoundError:
        raise SourceError("no such file") from None
    except OSError as exc:
        raise SourceError(f"cannot read the file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SourceError(_too_big(noun))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SourceError("the file is not UTF-8 text; save it as UTF-8", line) from None


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _too_big(noun: str) -> str:
    return (f"the file is larger than {MAX_FILE_BYTES // 1024} KB, the most {_a(noun)} may "
            "be (the biggest example is 17 KB): is it the right file?")


# --- YAML errors ---------------------------------------------------------------------


def _yaml_problem(exc: YAMLError, file: str, lines: list[str]) -> Problem:
    if isinstance(exc, ReaderError) and isinstance(exc.character, int):
        line, col = _line_column(lines, exc.position)
        return Problem(file, line, col, (
            f"the character U+{exc.character:04X} cannot be in a YAML file (most editors "
            "do not show it): remove it"))
    if not isinstance(exc, MarkedYAMLError) or exc.problem_mark is None:
        return Problem(file, 1, 1, f"this is not valid YAML: {exc}")
    mark = exc.problem_mark
    line, col = mark.line + 1, mark.column + 1
    problem = str(exc.problem or "invalid YAML")
    context = str(exc.context or "")
    duplicate = re.match(r'found duplicate key "(.*?)"', problem)
    if isinstance(exc, YamlLimitError):
        message = problem
    elif problem.startswith("maximum depth of data structure exceeded"):
        message = (f"mappings and lists are nested more than {MAX_DEPTH} deep here (a flow "
                   "needs about 10): check the indentation and the brackets")
    elif duplicate:
        key = duplicate.group(1)
        first = _first_key_line(lines, key, mark.line, mark.column)
        where = f" (first at line {first})" if first else ""
        message = f"duplicate key '{key}'{where}: each key may appear only once in a mapping"
    elif "\\t" in problem or "'\\t'" in problem or "\t" in problem:
        message = "tab character: indent YAML with spaces, not tabs"
    elif "mapping values are not allowed" in problem:
        message = (
            "unexpected ': ' — a text that contains ': ' (or starts with { or [) "
            'must be in quotes: "…" (or a quote opened earlier is never closed)'
        )
    elif "found unexpected end of stream" in problem and "quoted" in context:
        start = exc.context_mark
        if start is not None:
            line, col = start.line + 1, start.column + 1
        message = "this quote is never closed"
    elif "could not find expected ':'" in problem:
        start = exc.context_mark
        if start is not None:
            line, col = start.line + 1, start.column + 1
        message = "expected `key: value` here (is a ':' missing, or a quote not closed?)"
    elif problem.startswith(("expected <block end>", "expected '<document start>'")):
        message = (
            "this line does not line up with the lines above: check its indentation "
            "(siblings start at the same column; a list item starts with '- ')"
        )
    else:
        message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    return Problem(file, line, col, message)


def _line_column(lines: list[str], position: int) -> tuple[int, int]:
    """1-based line and column of a character offset into the text split as `lines`."""
    for number, text in enumerate(lines, start=1):
        if position <= len(text):
            return number, position + 1
        position -= len(text) + 1
    return max(len(lines), 1), 1


def _not_yaml(exc: Exception, file: str) -> Problem:
    """A problem for what ruamel raises besides YAMLError on odd input."""
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return Problem(file, 1, 1, "a number in this file has thousands of digits; no flow "
                       "setting takes one that long")
    return Problem(file, 1, 1, f"this is not valid YAML: {exc}")


def _first_key_line(lines: list[str], key: str, before: int, column: int) -> int | None:
    pattern = re.compile(rf"^(?:\s*-\s+)?\s*[\"']?{re.escape(key)}[\"']?\s*:")
    for index in range(before - 1, -1, -1):
        text = lines[index] if index < len(lines) else ""
        if pattern.match(text) and text.find(key) in (column, column + 1):
            return index + 1
    return None


# --- loading -------------------------------------------------------------------------


@dataclass
class Parsed:
    """A flow file read and validated, before the semantic lint."""

    file: str
    source: str
    positions: Positions
    flow: Flow | None
    problems: list[Problem] = field(default_factory=list)
    # When the schema fails only on unknown keys or on keys that have a default: the flow
    # without them, so the semantic lint runs too and one run shows every problem.
    partial: Flow | None = None


def _yaml() -> YAML:
    yaml = bounded_yaml()
    yaml.preserve_quotes = True  # quoted strings keep their type, so columns skip the quote
    return yaml


def parse_text(text: str, path: str = "<flow>") -> Parsed:
    """YAML and schema only: never raises, reports problems with positions."""
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        return Parsed(path, "", Positions(path), None, [Problem(path, 1, 1, _too_big("flow"))])
    lines = text.splitlines()
    try:
        root = _yaml().load(text)
    except YAMLError as exc:
        problem = _yaml_problem(exc, path, lines)
        return Parsed(path, text, Positions(path, None, text), None, [problem])
    except Exception as exc:  # ruamel raises a few non-YAMLError types on odd input
        return Parsed(path, text, Positions(path, None, text), None, [_not_yaml(exc, path)])
    positions = Positions(path, root, text)
    if root is None:
        message = "the file is empty; a flow starts with `id:`, `languages:`, `title:` …"
        return Parsed(path, text, positions, None, [Problem(path, 1, 1, message)])
    if not isinstance(root, dict):
        message = (
            "a flow file is a mapping of keys (id:, languages:, title:, …), "
            f"got {_shown(_plain(root))}"
        )
        return Parsed(path, text, positions, None, [Problem(path, 1, 1, message)])
    data = _plain(root)
    try:
        flow = Flow.model_validate(data)
    except ValidationError as exc:
        translator = _Translator(data, positions)
        errors = exc.errors()
        problems = [translator.problem(error) for error in errors]
        problems += [p for error in errors for p in translator.unknown_keys(error)]
        return Parsed(path, text, positions, None, _sorted(problems), _partial(data, errors))
    return Parsed(path, text, positions, flow, [])


def _partial(data: object, errors: Sequence[Any]) -> Flow | None:
    """The flow with every failing key left out, when each one may be left out: unknown
    keys, unknown languages in a text, and values of keys that have a default."""
    trimmed = copy.deepcopy(data)
    for error in errors:
        loc: Loc = tuple(error["loc"])
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
        elif error["type"] != "extra_forbidden" and not _has_default(loc):
            return None
        _drop(trimmed, _untagged(loc))
    try:
        return Flow.model_validate(trimmed)
    except ValidationError:
        return None


def _has_default(loc: Loc) -> bool:
    if not loc or not isinstance(loc[-1], str):
        return False
    fields = getattr(_annotation_at(loc[:-1]), "model_fields", {})
    return loc[-1] in fields and not fields[loc[-1]].is_required()


def _drop(data: object, path: Loc) -> None:
    node = data
    for step in path[:-1]:
        node = _Describer._get(node, step)
    if isinstance(node, dict) and path:
        node.pop(path[-1], None)


def read_file(path: str | Path) -> Parsed:
    """`parse_text` on a file; unreadable files become a problem, not an exception."""
    text = _text_or_problem(path)
    return text if isinstance(text, Parsed) else parse_text(text, str(path))


def _text_or_problem(path: str | Path) -> str | Parsed:
    """The file's text, or the problem of a file that cannot be read."""
    try:
        return read_source(path)
    except SourceError as exc:
        return _unreadable(str(path), exc.line, exc.message)


def _unreadable(name: str, line: int, message: str) -> Parsed:
    return Parsed(name, "", Positions(name), None, [Problem(name, line, 1, message)])


def _sorted(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line, p.column, p.severity != "error"))


def _finish(parsed: Parsed) -> LoadedFlow:
    from bot.flow.lint import lint  # lint imports this module for Problem and Positions

    problems = list(parsed.problems)
    checked = parsed.flow or parsed.partial
    if checked is not None:
        problems.extend(lint(checked, parsed.positions))
    if parsed.flow is None or any(p.severity == "error" for p in problems):
        errors = [p for p in problems if p.severity == "error"]
        raise FlowError(_sorted(errors) + _sorted([p for p in problems if p.severity != "error"]))
    return LoadedFlow(parsed.flow, parsed.source, parsed.file)


def load_flow_text(text: str, path: str = "<flow>") -> LoadedFlow:
    """Validate and lint `text`; raises FlowError if any error (warnings do not block)."""
    return _finish(parse_text(text, path))


def load_flow(path: str | Path) -> LoadedFlow:
    """Read, validate and lint a flow file; raises FlowError (also for unreadable files)."""
    text = _text_or_problem(path)
    return _finish(text) if isinstance(text, Parsed) else _load_text(str(path), text)


# Reading a flow's YAML (ruamel, with positions for every message) takes about 0.15 s of
# CPU for the flows in flows/, and one process reads the same files several times: `sada
# run` once for each channel's conversations and again for the scheduler's messages, the
# tests hundreds of times. A flow is immutable (frozen models), so the same file text read
# again is the same flow: kept by its exact text, a changed file is read afresh. Flows that
# fail raise, and are never kept.
@functools.lru_cache(maxsize=32)
def _load_text(name: str, text: str) -> LoadedFlow:
    return _finish(parse_text(text, name))
