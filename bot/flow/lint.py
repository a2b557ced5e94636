"""Semantic checks on a valid flow: what the schema alone cannot see.

Every check reports a Problem at a YAML position: missing translations, duplicate ids,
names that clash, conditions that cannot parse, point at unknown or later questions or
can never match, placeholders that cannot be filled, unreachable outro variants and
flows that take longer than the four minutes the seeds allow.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bot.channels import text as shown
from bot.engine.normalize import CONTROL, isolate, local_digits
from bot.engine.prompts import (
    DURATION,
    PREVIOUS_LIMIT,
    QUESTION_COUNT,
    Ask,
    AskConsent,
    Choice,
    Prompt,
    Say,
)
from bot.engine.words import YESNO_WORDS
from bot.flow import conditions, placeholders
from bot.flow.estimate import LIMIT_SECONDS, Estimate, estimate, spoken
from bot.flow.loader import Loc, Parsed, Positions, Problem, Severity, parse_text, read_file
from bot.flow.model import (
    CONTACT_FIELDS,
    RECAP_LIMIT,
    RTL_LANGUAGES,
    SCORED_TYPES,
    ChoiceQuestion,
    Flow,
    Lang,
    MultiQuestion,
    NumberQuestion,
    Question,
    TextQuestion,
    YesNoQuestion,
    by_code,
)
from bot.i18n import Translator
from bot.messaging.capabilities import Capabilities
from bot.messaging.registry import CHANNELS, Channel

# How long a contact field or a context value may plausibly be when it fills a placeholder:
# the contacts import takes at most 200 characters a field (bot.followups.contacts_csv);
# a Telegram name is at most 64 + 64.
PLAUSIBLE_VALUE = 200


@dataclass
class LintReport:
    path: str
    flow: Flow | None
    problems: list[Problem]
    estimate: Estimate | None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return self.flow is not None and not self.errors


def lint(flow: Flow, positions: Positions | None = None) -> list[Problem]:
    """Every semantic problem in `flow`, sorted by position."""
    return _Linter(flow, positions or Positions.none()).run()


def lint_file(path: str | Path) -> LintReport:
    """Load, validate and lint one file; never raises (failures become problems)."""
    return _report(str(path), lambda: read_file(path))


def lint_text(text: str, path: str = "<flow>") -> LintReport:
    """`lint_file` for text already in memory (editors, previews, tests)."""
    return _report(path, lambda: parse_text(text, path))


def _report(name: str, read: Callable[[], Parsed]) -> LintReport:
    try:
        parsed = read()
        problems = list(parsed.problems)
        result: Estimate | None = None
        if parsed.flow is not None:
            problems.extend(lint(parsed.flow, parsed.positions))
            result = estimate(parsed.flow)
        elif parsed.partial is not None:  # the rest of the flow, checked all the same
            problems.extend(lint(parsed.partial, parsed.positions))
        return LintReport(name, parsed.flow, _ordered(problems), result)
    except Exception as exc:  # a linter crash must still be a readable report
        message = f"internal error while checking this file ({type(exc).__name__}: {exc})"
        return LintReport(name, None, [Problem(name, 1, 1, message)], None)


def _ordered(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line, p.column, p.severity != "error", p.message))


def _near(word: str, choices: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


@dataclass
class _Asked:
    """One question and where it stands in the flow."""

    question: Question
    order: int
    path: Loc
    line: int


@dataclass
class _TextSpot:
    """A text (one value per language) and what its placeholders may use."""

    path: Loc
    text: Mapping[Lang, str]
    describe: str
    before: int | None  # answers asked before this position may be used; None: all
    own: str | None = None  # the question the text belongs to
    intro: bool = False
    limit: int | None = None  # characters; longer is a warning


@dataclass
class _Linter:
    flow: Flow
    positions: Positions
    problems: list[Problem] = field(default_factory=list)
    asked: dict[str, _Asked] = field(default_factory=dict)

    def run(self) -> list[Problem]:
        self._index()
        self._languages()
        self._ids()
        self._names()
        for spot in self._texts():
            self._text(spot)
        self._conditions()
        self._outro()
        self._duration()
        for alike in _alike(CHANNELS):
            self._fits(alike)
        return _ordered(self.problems)

    # --- helpers ------------------------------------------------------------------

    def report(
        self,
        path: Sequence[str | int],
        message: str,
        *,
        at: Literal["key", "value"] = "value",
        offset: int | None = None,
        severity: Severity = "error",
    ) -> None:
        self.problems.append(
            self.positions.problem(path, message, at=at, offset=offset, severity=severity)
        )

    def line(self, path: Sequence[str | int]) -> int:
        return self.positions.spot(path).value[0]

    def _index(self) -> None:
        # A repeated id is reported by _ids; everything else uses its first question.
        for order, path, question in self._ordered_questions():
            if question.id not in self.asked:
                self.asked[question.id] = _Asked(question, order, path, self.line(path))

    def _ordered_questions(self) -> Iterator[tuple[int, Loc, Question]]:
        order = 0
        for gi, group in enumerate(self.flow.groups):
            for qi, question in enumerate(group.questions):
                yield order, ("groups", gi, "questions", qi), question
                order += 1

    @property
    def known_names(self) -> list[str]:
        return [*self.asked, *self.flow.context, *CONTACT_FIELDS]

    @property
    def option_ids(self) -> set[str]:
        return {o.id for q in self.flow.questions for o in getattr(q, "options", ())}

    # --- languages and texts ------------------------------------------------------

    def _languages(self) -> None:
        seen: dict[str, int] = {}
        for index, lang in enumerate(self.flow.languages):
            if lang in seen:
                self.report(("languages", index), f"language '{lang}' is listed twice")
            seen.setdefault(lang, index)

    def _texts(self) -> Iterator[_TextSpot]:
        flow = self.flow
        yield _TextSpot(("title",), flow.title, "the title", before=0)
        yield _TextSpot(("intro",), flow.intro, "the intro", before=0, intro=True)
        if flow.consent is not None:
            yield _TextSpot(("consent",), flow.consent, "the consent text", before=0)
        for gi, group in enumerate(flow.groups):
            first = next((self.asked[q.id].order for q in group.questions if q.id in self.asked), 0)
            yield _TextSpot(
                ("groups", gi, "title"), group.title, f"the title of group '{group.id}'", first
            )
        for order, path, question in self._ordered_questions():
            name = f"question '{question.id}'"
            yield _TextSpot(
                (*path, "text"), question.text, f"the text of {name}", order, question.id
            )
            if question.recap is not None:
                yield _TextSpot(
                    (*path, "recap"), question.recap, f"the recap of {name}", order,
                    question.id, limit=RECAP_LIMIT,
                )
            for oi, option in enumerate(getattr(question, "options", None) or []):
                yield _TextSpot(
                    (*path, "options", oi, "label"),
                    option.label,
                    f"the label of option '{option.id}' of {name}",
                    order,
                    question.id,
                )
            labels = getattr(question, "labels", None)
            if labels is not None:
                for end in ("min", "max"):
                    text = getattr(labels, end)
                    if text is not None:
                        yield _TextSpot(
                            (*path, "labels", end),
                            text,
                            f"the {end} label of {name}",
                            order,
                            question.id,
                        )
        several = len(flow.outro) > 1
        for vi, variant in enumerate(flow.outro):
            describe = f"the text of outro variant {vi + 1}" if several else "the outro"
            yield _TextSpot(("outro", vi, "text"), variant.text, describe, None)

    def _text(self, spot: _TextSpot) -> None:
        declared = self.flow.languages
        for lang in declared:
            if lang not in spot.text:
                self.report(spot.path, f"no '{lang}' text for {spot.describe}")
        for lang, value in spot.text.items():
            path = (*spot.path, lang)
            if lang not in declared:
                self.report(
                    path,
                    f"'{lang}' text in {spot.describe}, but '{lang}' is not in languages; "
                    "add it to languages or remove the text",
                    at="key",
                    severity="warning",
                )
            self._placeholders(spot, path, value)
            control = CONTROL.search(value)  # NUL, ESC …: no channel shows them
            if control is not None:
                self.report(
                    path,
                    f"{spot.describe} holds the control character U+{ord(control[0]):04X} in "
                    f"'{lang}' (an escape such as \\0 or \\x1b in double quotes): remove it",
                    offset=control.start(),
                )
            if spot.limit is not None and len(value.strip()) > spot.limit:
                self.report(
                    path,
                    f"{spot.describe} is {len(value.strip())} characters in '{lang}'; keep it "
                    f"under {spot.limit}: it is quoted inside one line when an answer is "
                    "recalled",
                    severity="warning",
                )

    def _placeholders(self, spot: _TextSpot, path: Loc, value: str) -> None:
        try:
            found = placeholders.names(value)
        except placeholders.PlaceholderError as exc:
            self.report(path, f"{spot.describe}: {exc.message}", offset=exc.offset)
            return
        for name, offset in found:
            message = self._placeholder_problem(spot, name)
            if message is not None:
                self.report(path, message, offset=offset)

    def _placeholder_problem(self, spot: _TextSpot, name: str) -> str | None:
        token = "{" + name + "}"
        if name in placeholders.BUILTINS:
            if spot.intro:
                return None
            return f"{token} in {spot.describe}: {token} is only filled in in the intro"
        if name in CONTACT_FIELDS or name in self.flow.context:
            return None
        asked = self.asked.get(name)
        if asked is None:
            choices = [*self.known_names, *(placeholders.BUILTINS if spot.intro else ())]
            near = _near(name, choices)
            hint = (
                f"did you mean {{{near}}}?"
                if near
                else "use a contact field ("
                + ", ".join(CONTACT_FIELDS)
                + "), a context key or an earlier question id"
            )
            return f"unknown placeholder {token} in {spot.describe}; {hint}"
        if name == spot.own:
            return f"{spot.describe} uses {token}, its own answer, which is not given yet"
        if spot.before is not None and asked.order >= spot.before:
            return f"{spot.describe} uses {token}, which is asked later (line {asked.line})"
        return None

    # --- ids and names ------------------------------------------------------------

    def _ids(self) -> None:
        groups: dict[str, Loc] = {}
        for gi, group in enumerate(self.flow.groups):
            path: Loc = ("groups", gi, "id")
            if group.id in groups:
                first = self.line(groups[group.id])
                self.report(path, f"duplicate group id '{group.id}' (first at line {first})")
            groups.setdefault(group.id, path)
        for _, path, question in self._ordered_questions():
            first_asked = self.asked[question.id]
            if first_asked.path != path:
                self.report(
                    (*path, "id"),
                    f"duplicate question id '{question.id}' (first at line {first_asked.line}); "
                    "question ids must be unique in the whole flow",
                )
            options: dict[str, Loc] = {}
            for oi, option in enumerate(getattr(question, "options", None) or []):
                opath: Loc = (*path, "options", oi, "id")
                if option.id in options:
                    first = self.line(options[option.id])
                    self.report(
                        opath,
                        f"duplicate option id '{option.id}' in question '{question.id}' "
                        f"(first at line {first})",
                    )
                options.setdefault(option.id, opath)
        seen: dict[str, int] = {}
        for ci, key in enumerate(self.flow.context):
            if key in seen:
                self.report(("context", ci), f"context key '{key}' is listed twice")
            seen.setdefault(key, ci)

    def _names(self) -> None:
        for ci, key in enumerate(self.flow.context):
            path: Loc = ("context", ci)
            if key in self.asked:
                line = self.asked[key].line
                self.report(
                    path,
                    f"context key '{key}' is also a question id (line {line}); rename one, "
                    "or conditions and placeholders cannot tell them apart",
                )
            elif key in CONTACT_FIELDS:
                self.report(
                    path,
                    f"context key '{key}' clashes with the contact field '{key}', which is "
                    "always available; remove it from context or rename it",
                )
            elif key in placeholders.BUILTINS:
                self.report(path, f"context key '{key}' clashes with the built-in {{{key}}}")
        for qid, asked in self.asked.items():
            if qid in CONTACT_FIELDS:
                self.report(
                    (*asked.path, "id"),
                    f"question id '{qid}' hides the contact field '{qid}' in conditions and "
                    f"placeholders; rename the question (e.g. '{qid}_answer')",
                )
            elif qid in placeholders.BUILTINS:
                self.report(
                    (*asked.path, "id"),
                    f"question id '{qid}' clashes with the built-in {{{qid}}}; rename it",
                )

    # --- conditions ---------------------------------------------------------------

    def _conditions(self) -> None:
        for order, path, question in self._ordered_questions():
            if question.when is not None:
                self._condition(
                    (*path, "when"),
                    question.when,
                    f"condition on '{question.id}'",
                    order,
                    question.id,
                )
        for vi, variant in enumerate(self.flow.outro):
            if variant.when is not None:
                owner = f"condition of outro variant {vi + 1}"
                self._condition(("outro", vi, "when"), variant.when, owner, None, None)

    def _condition(
        self, path: Loc, expr: str, owner: str, before: int | None, own: str | None
    ) -> None:
        try:
            parsed = conditions.parse(expr)
        except conditions.ConditionError as exc:
            self.report(path, f"{owner}: {exc.message}", offset=exc.column - 1)
            return
        for ref in parsed.refs:
            offset = ref.column - 1
            asked = self.asked.get(ref.name)
            if asked is None:
                if ref.name in self.flow.context or ref.name in CONTACT_FIELDS:
                    continue
                near = _near(ref.name, self.known_names)
                # a misspelt true/false is likelier than a misspelt name that looks like it
                literal = difflib.get_close_matches(ref.name.lower(), ["true", "false"], 1, 0.75)
                if ref.name in self.option_ids:  # an option id without its quotes
                    hint = f'write text in quotes: "{ref.name}"'
                elif literal:
                    hint = f"did you mean {literal[0]}?"
                elif near:
                    hint = f"did you mean '{near}'?"
                else:
                    hint = ("use a question id, a context key or a contact field ("
                            + ", ".join(CONTACT_FIELDS) + ")")
                self.report(
                    path,
                    f"{owner} refers to '{ref.name}', which is not a question, context key "
                    f"or contact field; {hint}",
                    offset=offset,
                )
            elif ref.name == own:
                self.report(
                    path,
                    f"{owner} refers to '{ref.name}' itself, which is not answered yet",
                    offset=offset,
                )
            elif before is not None and asked.order >= before:
                self.report(
                    path,
                    f"{owner} refers to '{ref.name}', which is asked later (line {asked.line})",
                    offset=offset,
                )
        for comparison in parsed.comparisons:
            message = self._never(comparison)
            if message is not None:
                # Point at the value written, which is usually what needs changing.
                sides = (comparison.right, comparison.left)
                lit = next((s for s in sides if isinstance(s, conditions.Lit)), comparison.left)
                self.report(path, f"{owner}: {message}", offset=lit.column - 1)

    def _never(self, comparison: conditions.Comparison) -> str | None:
        """Why a `name op literal` comparison can never match, or None."""
        left, op, right = comparison.left, comparison.op, comparison.right
        if isinstance(left, conditions.Ref) and isinstance(right, conditions.Lit):
            ref, lit, flipped = left, right, False
        elif isinstance(left, conditions.Lit) and isinstance(right, conditions.Ref):
            ref, lit, flipped = right, left, True
        else:
            return None
        asked = self.asked.get(ref.name)
        if asked is None:
            return None  # context and contact values are whatever the invitation brings
        question = asked.question
        name = ref.name
        shown = _literal(lit.value)
        if isinstance(question, MultiQuestion):
            return self._never_multi(question, op, lit.value, flipped)
        if op in ("in", "not in"):
            if flipped:
                return f"'{name}' is one answer, not a list of picks; write `{name} == {shown}`"
            values = lit.value if isinstance(lit.value, tuple) else (lit.value,)
            problems = [self._never_value(question, "==", v) for v in values]
            bad = [p for p in problems if p is not None]
            return bad[0] if bad else None
        if flipped:
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        return self._never_value(question, op, lit.value)

    def _never_multi(
        self, question: MultiQuestion, op: str, value: object, flipped: bool
    ) -> str | None:
        name = question.id
        ids = [o.id for o in question.options]
        if op in ("in", "not in") and flipped:
            return self._unknown_option(question, value, ids)
        if op in ("==", "!=") and isinstance(value, tuple):
            bad = [self._unknown_option(question, v, ids) for v in value]
            return next((b for b in bad if b), None)
        example = f'"{ids[0]}" in {name}'
        return f"'{name}' is a multi question (a list of picks): test one pick with `{example}`"

    def _unknown_option(
        self, question: ChoiceQuestion | MultiQuestion, value: object, ids: list[str]
    ) -> str | None:
        if isinstance(value, str) and value in ids:
            return None
        listed = ", ".join(ids)
        if not isinstance(value, str):
            return (
                f"'{question.id}' is answered with an option id ({listed}), never {_literal(value)}"
            )
        near = _near(value, ids)
        hint = f"did you mean '{near}'? " if near else ""
        return f"'{question.id}' has no option '{value}'; {hint}(options: {listed})"

    def _never_value(self, question: Question, op: str, value: object) -> str | None:
        """Why `question op value` can never hold for any valid answer, or None."""
        name = question.id
        shown = _literal(value)
        if isinstance(question, ChoiceQuestion):
            if op not in ("==", "!="):
                return f"'{name}' is a choice question: compare it with == or in, not {op}"
            return self._unknown_option(question, value, [o.id for o in question.options])
        if isinstance(question, YesNoQuestion):
            if op not in ("==", "!=") or not isinstance(value, bool):
                return (
                    f"'{name}' is a yes/no question: compare it with true or false "
                    f"(`{name} == true`, or just `{name}`), not `{op} {shown}`"
                )
            return None
        if isinstance(question, TextQuestion):
            if op not in ("==", "!=") or not isinstance(value, str):
                return f"'{name}' is a text question: `{op} {shown}` never matches its answer"
            return None
        if isinstance(question, SCORED_TYPES):
            return self._never_number(name, question.type, op, value, *question.bounds, True)
        if isinstance(question, NumberQuestion):
            low = question.min if question.min is not None else -math.inf
            high = question.max if question.max is not None else math.inf
            return self._never_number(name, "number", op, value, low, high, question.integer)
        return None

    @staticmethod
    def _never_number(
        name: str,
        kind: str,
        op: str,
        value: object,
        low: float,
        high: float,
        integer: bool,
    ) -> str | None:
        span = "any number" if low == -math.inf and high == math.inf else _span(low, high)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return (
                f"'{name}' is a {kind} question answered with {span}; "
                f"comparing it with {_literal(value)} never matches"
            )
        if integer:
            low, high = math.ceil(low), math.floor(high)
        possible = {
            "==": low <= value <= high and (not integer or float(value).is_integer()),
            "!=": True,
            "<": low < value,
            "<=": low <= value,
            ">": high > value,
            ">=": high >= value,
        }.get(op, True)
        if possible:
            return None
        return f"`{name} {op} {_literal(value)}` can never be true: {name} is {span}"

    # --- what channels can carry ---------------------------------------------------

    def _fits(self, channels: Sequence[Channel]) -> None:
        """Every message within what the channels take, every option label on a button:
        channels that measure alike are checked once and named together."""
        flow, limits = self.flow, channels[0].capabilities
        title = " and ".join(channel.title for channel in channels)
        takes = "takes" if len(channels) == 1 else "take"
        for lang in flow.languages:
            longest = _Longest(flow, lang, typed=not limits.buttons)
            # (where, its texts, what staff call it, the message, what else counted, the fix)
            messages: list[tuple[Loc, Mapping[Lang, str], str, str, list[str], str]] = [
                (("intro",), flow.intro, "the intro", longest.said(flow.intro, intro=True),
                 [], "shorten it"),
            ]
            if flow.consent is not None:
                messages.append((("consent",), flow.consent, "the consent text",
                                 longest.consent(flow.consent), [], "shorten it"))
            for _, path, question in self._ordered_questions():
                text_answer = isinstance(question, TextQuestion)
                earlier = (question.max_length if isinstance(question, TextQuestion)
                           else PREVIOUS_LIMIT)
                messages.append((
                    (*path, "text"), question.text, f"the text of question '{question.id}'",
                    longest.question(question),
                    ["the group title, progress line and hints",
                     f"the earlier answer shown on going back at up to {earlier:,} "
                     "characters"],
                    "shorten it or lower max_length" if text_answer else "shorten it",
                ))
                if limits.buttons:
                    self._labels(limits, title, lang, path, question)
            several = len(flow.outro) > 1
            for vi, variant in enumerate(flow.outro):
                describe = f"the text of outro variant {vi + 1}" if several else "the outro"
                messages.append((("outro", vi, "text"), variant.text, describe,
                                 longest.said(variant.text), [], "shorten it"))
            for path, text, describe, message, counted, fix in messages:
                size = limits.length(message)
                if lang not in text or size <= limits.text_length:
                    continue
                counted = counted + longest.longest_placeholders(text[lang])
                parts = f" (counted with {', '.join(counted)})" if counted else ""
                self.report(
                    (*path, lang),
                    f"{describe} makes a {title} message of up to {size:,} characters "
                    f"in '{lang}', more than the {limits.text_length:,} {title} {takes}"
                    f"{parts}: {fix} by {size - limits.text_length:,}",
                )

    def _labels(
        self, limits: Capabilities, title: str, lang: str, path: Loc, question: Question
    ) -> None:
        # A button shows its label after a mark: ☐/☑ while a multi question is open, ✓
        # once a choice is made (bot.messaging.keyboards).
        room = limits.button_label - 2
        for oi, option in enumerate(getattr(question, "options", None) or []):
            label = by_code(option.label).get(lang)
            if label is not None and len(label) > room:
                self.report(
                    (*path, "options", oi, "label", lang),
                    f"the label of option '{option.id}' of question '{question.id}' is "
                    f"{len(label):,} characters in '{lang}'; a {title} button shows "
                    f"about {room} and cuts the rest: shorten it (the question text can say "
                    "more)",
                    severity="warning",
                )

    # --- outro and duration -------------------------------------------------------

    def _outro(self) -> None:
        variants = self.flow.outro
        catch_all: int | None = None
        for vi, variant in enumerate(variants):
            if catch_all is not None:
                line = self.line(("outro", catch_all))
                self.report(
                    ("outro", vi),
                    f"outro variant {vi + 1} is never used: variant {catch_all + 1} (line "
                    f"{line}) has no `when`, so it always matches first",
                    severity="warning",
                )
            elif variant.when is None:
                catch_all = vi
        if catch_all is None:
            self.report(
                ("outro", len(variants) - 1),
                "every outro variant has a `when`: someone who matches none gets no closing "
                "message; add a last variant without `when`",
                severity="warning",
            )

    def _duration(self) -> None:
        result = estimate(self.flow)
        for lang, seconds in result.seconds_by_language.items():
            if seconds > LIMIT_SECONDS:
                self.report(
                    ("groups",),
                    f"estimated {spoken(seconds)} in {lang} (limit {LIMIT_SECONDS // 60} min): "
                    "remove or shorten questions",
                    at="key",
                )


class _Longest:
    """Every message a flow makes, in one language, with each placeholder at its longest
    plausible value, as a channel renders it (bot.channels.text)."""

    def __init__(self, flow: Flow, lang: str, typed: bool) -> None:
        self.flow = flow
        self.lang = lang
        self.typed = typed
        self.t = Translator(lang)
        self.sizes = self._sizes()
        filler = {name: "x" * size for name, size in self.sizes.items()}
        if lang in RTL_LANGUAGES:  # as the engine fills them (bot.engine.step._values)
            filler = {name: isolate(value) for name, value in filler.items()}
        self.values: dict[str, str] = filler

    def _sizes(self) -> dict[str, int]:
        lang = self.lang
        sizes = dict.fromkeys([*CONTACT_FIELDS, *self.flow.context], PLAUSIBLE_VALUE)
        for question in self.flow.questions:
            if isinstance(question, TextQuestion):
                size = question.max_length
            elif isinstance(question, ChoiceQuestion):
                size = max(len(_in(o.label, lang)) for o in question.options)
            elif isinstance(question, MultiQuestion):
                size = sum(len(_in(o.label, lang)) + 2 for o in question.options)
            elif isinstance(question, YesNoQuestion):
                size = max(len(w) for w in YESNO_WORDS.get(lang, YESNO_WORDS["en"]))
            elif isinstance(question, SCORED_TYPES):
                size = max(len(str(b)) for b in question.bounds)
            else:
                size = 12  # "%g" of any number within NUMBER_LIMIT: "-1.23457e+14"
            sizes.setdefault(question.id, size)
        return sizes

    def text(self, prompt: Prompt) -> str:
        return shown.prompt(prompt, self.t, typed=self.typed)

    def said(self, text: Mapping[Lang, str], *, intro: bool = False) -> str:
        values = dict(self.values)
        if intro:  # counts as long as they get: "999 questions", "about 99 minutes"
            values |= {"questions": local_digits("999", self.lang),
                       "minutes": local_digits("99", self.lang),
                       "duration": DURATION, "question_count": QUESTION_COUNT}
        filled = placeholders.render(_in(text, self.lang), values)
        return self.text(Say(filled, minutes=99 if DURATION in filled else None,
                             questions=999 if QUESTION_COUNT in filled else None))

    def consent(self, text: Mapping[Lang, str]) -> str:
        filled = placeholders.render(_in(text, self.lang), self.values)
        return self.text(AskConsent(filled, self.lang))

    def question(self, question: Question) -> str:
        lang = self.lang
        total = len(self.flow.questions)
        group = self.flow.group_of(question.id)
        earlier = question.max_length if isinstance(question, TextQuestion) else PREVIOUS_LIMIT
        view: dict[str, object] = {
            "question_id": question.id, "type": question.type, "language": lang,
            "text": placeholders.render(_in(question.text, lang), self.values),
            "group_title": _in(group.title, lang), "new_group": True,
            "index": total, "total": total, "least": 1 if total > 1 else None,
            "seconds_left": 99 * 60, "optional": question.optional, "can_go_back": True,
            "previous": "x" * earlier,
        }
        if isinstance(question, SCORED_TYPES):
            view["low"], view["high"] = question.bounds
            if question.labels:
                for end, key in ((question.labels.min, "low_label"),
                                 (question.labels.max, "high_label")):
                    view[key] = _in(end, lang) if end else None
        if isinstance(question, ChoiceQuestion | MultiQuestion):
            view["choices"] = tuple(Choice(o.id, _in(o.label, lang)) for o in question.options)
        if isinstance(question, MultiQuestion):
            view["picks"] = tuple(o.id for o in question.options)
            view["min_picks"], view["max_picks"] = question.min_picks, question.most
        if isinstance(question, TextQuestion):
            view["max_length"] = question.max_length
        return self.text(Ask(**view))  # type: ignore[arg-type]

    def longest_placeholders(self, text: str) -> list[str]:
        """["{a} at up to 1,000 characters", …] for the two biggest placeholders in `text`."""
        try:
            used = {name for name, _ in placeholders.names(text) if name in self.sizes}
        except placeholders.PlaceholderError:
            return []
        biggest = sorted(used, key=lambda n: (-self.sizes[n], n))[:2]
        return [f"{{{name}}} at up to {self.sizes[name]:,} characters" for name in biggest]


def _in(text: Mapping[Lang, str] | None, lang: str) -> str:
    if not text:
        return ""
    return by_code(text).get(lang) or next(iter(text.values()), "")


def _span(low: float, high: float) -> str:
    def number(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else str(x)

    if low == -math.inf:
        return f"at most {number(high)}"
    if high == math.inf:
        return f"at least {number(low)}"
    return f"{number(low)}–{number(high)}"


def _alike(channels: Iterable[Channel]) -> list[list[Channel]]:
    """The channels grouped by what lint measures of them (text length and counting,
    buttons, label room), in the registry's order: rates and editing do not change whether
    a flow fits."""
    groups: dict[tuple[object, ...], list[Channel]] = {}
    for channel in channels:
        c = channel.capabilities
        key = (c.text_length, c.text_counting, c.buttons, c.button_label)
        groups.setdefault(key, []).append(channel)
    return list(groups.values())
