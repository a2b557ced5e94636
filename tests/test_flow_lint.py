"""Semantic lint: each check, its message and its exact position."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from bot.flow.lint import LintReport, lint, lint_file, lint_text
from bot.flow.loader import Problem, load_flow_text
from bot.flow.model import Flow

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "flows"

HEAD = """\
id: demo
languages: [en]
default_language: en
title: {en: "Demo"}
context: [ticket]
intro: {en: "Hello {first_name}: {questions} questions about {ticket}."}
outro: {en: "Thanks!"}
groups:
  - id: main
    title: {en: "Main"}
    questions:
"""

NPS = """\
- id: nps
  type: nps
  text: {en: "Recommend us?"}
"""
REASON = """\
- id: reason
  type: choice
  text: {en: "Why?"}
  options:
    - {id: price, label: {en: "Price"}}
    - {id: speed, label: {en: "Speed"}}
"""
REASONS = """\
- id: reasons
  type: multi
  text: {en: "Why?"}
  options:
    - {id: price, label: {en: "Price"}}
    - {id: speed, label: {en: "Speed"}}
"""
RENEW = """\
- id: renew
  type: yesno
  text: {en: "Renew?"}
"""
DAYS = """\
- id: days
  type: number
  min: 0
  max: 30
  text: {en: "Days?"}
"""
COMMENT = """\
- id: comment
  type: text
  text: {en: "Comment?"}
"""


def flow_text(*questions: str, head: str = HEAD) -> str:
    return head + "".join(textwrap.indent(q, "      ") for q in questions)


def asking(when: str, *earlier: str) -> str:
    """A flow whose last question `last` has `when: <when>` after the `earlier` questions."""
    last = f"- id: last\n  type: yesno\n  when: '{when}'\n  text: {{en: \"Last?\"}}\n"
    return flow_text(*earlier, last)


def locate(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def found(text: str) -> list[tuple[int, int, str, str]]:
    report = lint_text(text, "f.yaml")
    assert report.flow is not None, report.problems
    return [(p.line, p.column, p.severity, p.message) for p in report.problems]


def single(text: str) -> tuple[int, int, str, str]:
    problems = found(text)
    assert len(problems) == 1, problems
    return problems[0]


def test_a_clean_flow_has_no_problems() -> None:
    text = flow_text(NPS, REASON, REASONS, RENEW, DAYS, COMMENT)
    assert found(text) == []
    assert load_flow_text(text).flow.id == "demo"


# --- texts and languages -----------------------------------------------------------


def test_missing_language_is_an_error_at_the_text() -> None:
    head = HEAD.replace("languages: [en]", "languages: [en, ar]").replace(
        'title: {en: "Demo"}', 'title: {en: "Demo", ar: "تجربة"}'
    )
    head = head.replace('intro: {en: "Hello', 'intro: {ar: "مرحبا", en: "Hello')
    head = head.replace('outro: {en: "Thanks!"}', 'outro: {en: "Thanks!", ar: "شكرا"}')
    head = head.replace('title: {en: "Main"}', 'title: {en: "Main", ar: "رئيسي"}')
    text = flow_text(
        NPS.replace('{en: "Recommend us?"}', '{en: "Recommend us?", ar: "توصي؟"}'), REASON
    )
    text = head + text[len(HEAD) :]
    problems = found(text)
    assert problems == [
        (*locate(text, '{en: "Why?"}'), "error", "no 'ar' text for the text of question 'reason'"),
        (
            *locate(text, '{en: "Price"}'),
            "error",
            "no 'ar' text for the label of option 'price' of question 'reason'",
        ),
        (
            *locate(text, '{en: "Speed"}'),
            "error",
            "no 'ar' text for the label of option 'speed' of question 'reason'",
        ),
    ]


def test_text_in_an_undeclared_language_is_a_warning_at_its_key() -> None:
    text = flow_text(NPS.replace('{en: "Recommend us?"}', '{en: "Recommend us?", fa: "توصیه؟"}'))
    assert single(text) == (
        *locate(text, "fa:"),
        "warning",
        "'fa' text in the text of question 'nps', but 'fa' is not in languages; add it to "
        "languages or remove the text",
    )


def test_duplicate_language() -> None:
    text = flow_text(NPS).replace("languages: [en]", "languages: [en, en]")
    assert single(text) == (*locate(text, "en]"), "error", "language 'en' is listed twice")


# --- ids and names -------------------------------------------------------------------


def test_duplicate_question_ids_across_groups() -> None:
    second_group = '  - id: more\n    title: {en: "More"}\n    questions:\n' + textwrap.indent(
        NPS, "      "
    )
    text = flow_text(NPS) + second_group
    line, column = locate(text, "- id: nps", 2)
    assert single(text) == (
        line,
        column + len("- id: "),
        "error",
        "duplicate question id 'nps' (first at line 12); question ids must be unique in the "
        "whole flow",
    )


def test_duplicate_group_ids() -> None:
    second_group = '  - id: main\n    title: {en: "More"}\n    questions:\n' + textwrap.indent(
        RENEW, "      "
    )
    text = flow_text(NPS) + second_group
    assert single(text) == (
        *locate(text, "main", 2),
        "error",
        "duplicate group id 'main' (first at line 9)",
    )


def test_duplicate_option_ids() -> None:
    text = flow_text(REASON.replace("id: speed", "id: price"))
    assert single(text) == (
        *locate(text, "price", 2),
        "error",
        "duplicate option id 'price' in question 'reason' (first at line 16)",
    )


def test_context_key_clashes() -> None:
    text = flow_text(NPS).replace("context: [ticket]", "context: [ticket, nps, company, ticket]")
    assert found(text) == [
        (
            *locate(text, "nps,"),
            "error",
            "context key 'nps' is also a question id (line 12); rename one, or conditions and "
            "placeholders cannot tell them apart",
        ),
        (
            *locate(text, "company"),
            "error",
            "context key 'company' clashes with the contact field 'company', which is always "
            "available; remove it from context or rename it",
        ),
        (*locate(text, "ticket]"), "error", "context key 'ticket' is listed twice"),
    ]


def test_question_id_that_hides_a_contact_field() -> None:
    text = flow_text(REASON.replace("id: reason", "id: role"))
    assert single(text) == (
        *locate(text, "role"),
        "error",
        "question id 'role' hides the contact field 'role' in conditions and placeholders; "
        "rename the question (e.g. 'role_answer')",
    )


def test_builtin_names_are_reserved() -> None:
    text = flow_text(NPS.replace("id: nps", "id: minutes"))
    assert single(text)[3] == "question id 'minutes' clashes with the built-in {minutes}; rename it"


# --- conditions ----------------------------------------------------------------------


def test_condition_syntax_error_points_inside_the_condition() -> None:
    text = asking("nps = 3", NPS)
    assert single(text) == (
        *locate(text, "= 3"),
        "error",
        "condition on 'last': use `==` to compare (a single `=` is not a comparison)",
    )


def test_condition_with_a_function_call() -> None:
    text = asking("len(reasons) > 1", REASONS)
    line, column, _, message = single(text)
    assert (line, column) == locate(text, "len(")
    assert message == (
        "condition on 'last': function calls are not allowed in conditions; use comparisons "
        'like `nps <= 6 and role == "buyer"`'
    )


def test_unknown_name_with_did_you_mean() -> None:
    text = asking("nsp <= 6", NPS)
    assert single(text) == (
        *locate(text, "nsp"),
        "error",
        "condition on 'last' refers to 'nsp', which is not a question, context key or contact "
        "field; did you mean 'nps'?",
    )


def test_unknown_name_without_a_near_match_lists_what_is_allowed() -> None:
    text = asking('weather == "rain"', NPS)
    assert single(text)[3] == (
        "condition on 'last' refers to 'weather', which is not a question, context key or "
        "contact field; use a question id, a context key or a contact field (first_name, name, "
        "company, role, segment)"
    )


def test_condition_on_a_later_question() -> None:
    text = flow_text(
        '- id: csat\n  type: csat\n  when: \'comment == "x"\'\n  text: {en: "Happy?"}\n',
        COMMENT,
    )
    assert single(text) == (
        *locate(text, "comment =="),
        "error",
        f"condition on 'csat' refers to 'comment', which is asked later (line "
        f"{locate(text, '- id: comment')[0]})",
    )


def test_condition_on_itself() -> None:
    text = flow_text(NPS.replace("  type: nps\n", "  type: nps\n  when: 'nps > 3'\n"))
    assert single(text) == (
        *locate(text, "nps >"),
        "error",
        "condition on 'nps' refers to 'nps' itself, which is not answered yet",
    )


def test_context_and_contact_names_are_known() -> None:
    assert found(asking('ticket == "T-1" and segment == "vip" and role in ["a", "b"]')) == []


def test_outro_conditions_may_use_any_question() -> None:
    text = flow_text(NPS).replace(
        'outro: {en: "Thanks!"}',
        'outro:\n  - when: "nps <= 6"\n    text: {en: "Sorry"}\n  - text: {en: "Thanks!"}',
    )
    assert found(text) == []


def test_outro_condition_problems_name_the_variant() -> None:
    text = flow_text(NPS).replace(
        'outro: {en: "Thanks!"}',
        'outro:\n  - when: "npss <= 6"\n    text: {en: "Sorry"}\n  - text: {en: "Thanks!"}',
    )
    assert single(text) == (
        *locate(text, "npss"),
        "error",
        "condition of outro variant 1 refers to 'npss', which is not a question, context key "
        "or contact field; did you mean 'nps'?",
    )


@pytest.mark.parametrize(
    ("when", "questions", "needle", "message"),
    [
        (
            'reason == "pricing"',
            (REASON,),
            '"pricing"',
            "'reason' has no option 'pricing'; did you mean 'price'? (options: price, speed)",
        ),
        (
            'reason in ["price", "cost"]',
            (REASON,),
            "[",
            "'reason' has no option 'cost'; (options: price, speed)",
        ),
        (
            "reason == 1",
            (REASON,),
            "1",
            "'reason' is answered with an option id (price, speed), never 1",
        ),
        (
            '"price" in reason',
            (REASON,),
            '"price"',
            "'reason' is one answer, not a list of picks; write `reason == \"price\"`",
        ),
        (
            'reason > "a"',
            (REASON,),
            '"a"',
            "'reason' is a choice question: compare it with == or in, not >",
        ),
        (
            'reasons == "price"',
            (REASONS,),
            '"price"',
            "'reasons' is a multi question (a list of picks): test one pick with "
            '`"price" in reasons`',
        ),
        (
            '"pricing" in reasons',
            (REASONS,),
            '"pricing"',
            "'reasons' has no option 'pricing'; did you mean 'price'? (options: price, speed)",
        ),
        (
            'reasons == ["price", "fast"]',
            (REASONS,),
            "[",
            "'reasons' has no option 'fast'; (options: price, speed)",
        ),
        ("nps > 10", (NPS,), "10", "`nps > 10` can never be true: nps is 0–10"),
        ("nps == 11", (NPS,), "11", "`nps == 11` can never be true: nps is 0–10"),
        ("nps == 6.5", (NPS,), "6.5", "`nps == 6.5` can never be true: nps is 0–10"),
        ("nps < 0", (NPS,), "0", "`nps < 0` can never be true: nps is 0–10"),
        ("11 <= nps", (NPS,), "11", "`nps >= 11` can never be true: nps is 0–10"),
        ("nps in [3, 12]", (NPS,), "[", "`nps == 12` can never be true: nps is 0–10"),
        (
            'nps == "high"',
            (NPS,),
            '"high"',
            "'nps' is a nps question answered with 0–10; comparing it with \"high\" never matches",
        ),
        (
            "nps == true",
            (NPS,),
            "true",
            "'nps' is a nps question answered with 0–10; comparing it with true never matches",
        ),
        (
            "renew == 1",
            (RENEW,),
            "1",
            "'renew' is a yes/no question: compare it with true or false (`renew == true`, or "
            "just `renew`), not `== 1`",
        ),
        (
            "renew < true",
            (RENEW,),
            "true",
            "'renew' is a yes/no question: compare it with true or false (`renew == true`, or "
            "just `renew`), not `< true`",
        ),
        ("days > 30", (DAYS,), "30", "`days > 30` can never be true: days is 0–30"),
        ("days == 2.5", (DAYS,), "2.5", "`days == 2.5` can never be true: days is 0–30"),
        (
            'days == "3"',
            (DAYS,),
            '"3"',
            "'days' is a number question answered with 0–30; comparing it with \"3\" never matches",
        ),
        (
            "comment > 3",
            (COMMENT,),
            "3",
            "'comment' is a text question: `> 3` never matches its answer",
        ),
    ],
)
def test_comparisons_that_can_never_match(
    when: str, questions: tuple[str, ...], needle: str, message: str
) -> None:
    text = asking(when, *questions)
    when_at = locate(text, f"'{when}'")
    line, column, severity, got = single(text)
    assert got == f"condition on 'last': {message}"
    assert severity == "error"
    assert (line, column) == (when_at[0], when_at[1] + 1 + when.index(needle))


@pytest.mark.parametrize(
    ("when", "questions"),
    [
        ('reason == "price"', (REASON,)),
        ('reason in ["price", "speed"]', (REASON,)),
        ('"price" in reasons', (REASONS,)),
        ('"price" not in reasons', (REASONS,)),
        ('reasons == ["price", "speed"]', (REASONS,)),
        ("nps <= 6", (NPS,)),
        ("0 <= nps <= 10", (NPS,)),
        ("nps != 11", (NPS,)),
        ("renew == false", (RENEW,)),
        ("renew", (RENEW,)),
        ("not renew", (RENEW,)),
        ("days >= 30", (DAYS,)),
        ('comment == "x"', (COMMENT,)),
        ("nps < csat", (NPS, '- id: csat\n  type: csat\n  text: {en: "Happy?"}\n')),
    ],
)
def test_comparisons_that_can_match_are_fine(when: str, questions: tuple[str, ...]) -> None:
    assert found(asking(when, *questions)) == []


def test_scale_and_unbounded_number_ranges() -> None:
    scale = '- id: ease\n  type: scale\n  min: -2\n  max: 2\n  text: {en: "Ease?"}\n'
    assert single(asking("ease < -2", scale))[3] == (
        "condition on 'last': `ease < -2` can never be true: ease is -2–2"
    )
    unbounded = '- id: amount\n  type: number\n  integer: false\n  text: {en: "Amount?"}\n'
    assert found(asking("amount > 1000000 or amount == 2.5", unbounded)) == []
    assert single(asking('amount == "x"', unbounded))[3] == (
        "condition on 'last': 'amount' is a number question answered with any number; "
        'comparing it with "x" never matches'
    )


# --- placeholders ---------------------------------------------------------------------


def test_placeholder_problems() -> None:
    text = flow_text(
        NPS.replace("Recommend us?", "Recommend us, {first_name}? You said {reason}."),
        REASON.replace('"Why?"', '"Why {nps}, {questions}?"').replace(
            '"Speed"', '"Speed {nps:02d}"'
        ),
        RENEW.replace("Renew?", "Renew {renew}? {ticket} {segmnt}"),
    )
    assert found(text) == [
        (
            *locate(text, "{reason}"),
            "error",
            f"the text of question 'nps' uses {{reason}}, which is asked later (line "
            f"{locate(text, '- id: reason')[0]})",
        ),
        (
            *locate(text, "{questions}", 2),
            "error",
            "{questions} in the text of question 'reason': {questions} is only filled in in the "
            "intro",
        ),
        (
            *locate(text, "{nps:02d}"),
            "error",
            "the label of option 'speed' of question 'reason': `{nps:02d}` is not a "
            "placeholder: write just the name, e.g. {nps}",
        ),
        (
            *locate(text, "{renew}"),
            "error",
            "the text of question 'renew' uses {renew}, its own answer, which is not given yet",
        ),
        (
            *locate(text, "{segmnt}"),
            "error",
            "unknown placeholder {segmnt} in the text of question 'renew'; did you mean {segment}?",
        ),
    ]


def test_placeholders_in_labels_titles_and_outro() -> None:
    text = flow_text(
        NPS,
        REASON.replace('label: {en: "Price"}', 'label: {en: "Price ({nps})"}'),
    ).replace('outro: {en: "Thanks!"}', 'outro: {en: "Thanks {first_name}, {reason} noted."}')
    assert found(text) == []
    text = text.replace('title: {en: "Main"}', 'title: {en: "Main {nps}"}')
    assert single(text) == (
        *locate(text, "{nps}"),
        "error",
        "the title of group 'main' uses {nps}, which is asked later (line 12)",
    )


def test_placeholder_in_a_block_text_points_at_its_line() -> None:
    text = flow_text(NPS).replace(
        'outro: {en: "Thanks!"}', "outro:\n  en: |\n    Thanks!\n    See you {soon}.\n"
    )
    assert single(text)[:2] == locate(text, "{soon}")


# --- outro -----------------------------------------------------------------------------


def test_unreachable_and_missing_fallback_outro_variants() -> None:
    text = flow_text(NPS).replace(
        'outro: {en: "Thanks!"}',
        'outro:\n  - text: {en: "Thanks!"}\n  - when: "nps <= 6"\n    text: {en: "Sorry"}',
    )
    assert single(text) == (
        *locate(text, "when"),
        "warning",
        "outro variant 2 is never used: variant 1 (line 8) has no `when`, so it always "
        "matches first",
    )
    text = flow_text(NPS).replace(
        'outro: {en: "Thanks!"}', 'outro:\n  - when: "nps <= 6"\n    text: {en: "Sorry"}'
    )
    assert single(text) == (
        *locate(text, "when"),
        "warning",
        "every outro variant has a `when`: someone who matches none gets no closing message; "
        "add a last variant without `when`",
    )
    assert load_flow_text(text).flow.id == "demo"  # warnings do not block


# --- duration --------------------------------------------------------------------------


def test_a_flow_over_four_minutes_is_an_error() -> None:
    long_text = " ".join(["word"] * 120)
    questions = [f'- id: q{i}\n  type: text\n  text: {{en: "{long_text}"}}\n' for i in range(4)]
    text = flow_text(*questions)
    # 4 × (120 words at 238 wpm + 30 s) + intro and outro ≈ 4 min 3 s
    line, column, severity, message = single(text)
    assert (line, column, severity) == (*locate(text, "groups:"), "error")
    assert re.fullmatch(
        r"estimated 4 min \d+ s in en \(limit 4 min\): remove or shorten questions", message
    )


# --- API -----------------------------------------------------------------------------------


def test_lint_without_positions_reports_at_the_start() -> None:
    flow = load_flow_text(flow_text(NPS)).flow
    broken = Flow.model_validate({**flow.model_dump(), "context": ["ticket", "nps"]})
    assert lint(broken) == [
        Problem(
            "<flow>",
            1,
            1,
            "context key 'nps' is also a question id (line 1); rename one, or conditions and "
            "placeholders cannot tell them apart",
        )
    ]


def test_semantic_fixture() -> None:
    path = FIXTURES / "semantic_errors.yaml"
    report = lint_file(path)
    assert isinstance(report, LintReport)
    assert report.flow is not None and report.flow.id == "semantic"
    assert report.estimate is not None and report.estimate.questions == 4
    assert not report.ok
    assert [(p.line, p.column, p.severity, p.message) for p in report.problems] == [
        (
            7,
            19,
            "error",
            "context key 'company' clashes with the contact field 'company', which is always "
            "available; remove it from context or rename it",
        ),
        (
            9,
            11,
            "error",
            "unknown placeholder {frist_name} in the intro; did you mean {first_name}?",
        ),
        (19, 35, "error", "condition on 'csat' refers to 'reason', which is asked later (line 23)"),
        (
            19,
            45,
            "error",
            "condition on 'csat': 'reason' has no option 'pricing'; did you mean 'price'? "
            "(options: price, speed)",
        ),
        (32, 20, "error", "no 'ar' text for the label of option 'speed' of question 'reason'"),
        (35, 16, "error", "condition on 'nps' refers to 'nps' itself, which is not answered yet"),
        (35, 35, "error", "condition on 'nps': `csat == 11` can never be true: csat is 1–5"),
        (35, 41, "error", "condition on 'nps' refers to 'renew', which is asked later (line 40)"),
        (
            35,
            50,
            "error",
            "condition on 'nps': 'renew' is a yes/no question: compare it with true or false "
            "(`renew == true`, or just `renew`), not `== 1`",
        ),
        (
            39,
            11,
            "warning",
            "'fa' text in the text of question 'nps', but 'fa' is not in languages; add it to "
            "languages or remove the text",
        ),
        (
            49,
            5,
            "warning",
            "outro variant 2 is never used: variant 1 (line 46) has no `when`, so it always "
            "matches first",
        ),
    ]
    assert len(report.errors) == 9 and len(report.warnings) == 2


def test_lint_file_never_raises(tmp_path: Path) -> None:
    report = lint_file(tmp_path / "missing.yaml")
    assert report.flow is None and report.estimate is None and not report.ok
    assert report.problems == [Problem(str(tmp_path / "missing.yaml"), 1, 1, "no such file")]
    schema = lint_file(FIXTURES / "schema_errors.yaml")
    assert schema.flow is None and len(schema.errors) == 4


def test_minimal_fixture_is_ok() -> None:
    report = lint_file(FIXTURES / "minimal.yaml")
    assert report.ok and report.problems == []
    assert report.estimate is not None and report.estimate.minutes == 1


def test_the_example_in_the_docs_is_a_valid_flow() -> None:
    docs = (ROOT / "docs" / "flows.md").read_text(encoding="utf-8")
    example = re.search(r"## A complete small flow\n\n```yaml\n(.*?)```", docs, re.S)
    assert example is not None
    report = lint_text(example.group(1), "docs/flows.md")
    assert report.ok, [str(p) for p in report.problems]


@pytest.mark.parametrize("path", sorted((ROOT / "flows").glob("*.yaml")), ids=lambda p: p.name)
def test_example_flows_lint_clean(path: Path) -> None:
    report = lint_file(path)
    assert report.ok, [str(p) for p in report.problems]


# --- recap ---------------------------------------------------------------------------


def test_a_recap_needs_every_declared_language_and_known_placeholders() -> None:
    head = HEAD.replace("languages: [en]", "languages: [en, ar]").replace(
        'title: {en: "Demo"}', 'title: {en: "Demo", ar: "تجربة"}'
    )
    head = head.replace('intro: {en: "Hello', 'intro: {ar: "مرحبا", en: "Hello')
    head = head.replace('outro: {en: "Thanks!"}', 'outro: {en: "Thanks!", ar: "شكرا"}')
    head = head.replace('title: {en: "Main"}', 'title: {en: "Main", ar: "رئيسي"}')
    nps = ('- id: nps\n  type: nps\n  text: {en: "Recommend us?", ar: "توصون بنا؟"}\n'
           '  recap: {en: "Recommend {compnay}?"}\n')
    text = flow_text(nps, head=head)
    assert found(text) == [
        (*locate(text, '{en: "Recommend {'), "error",
         "no 'ar' text for the recap of question 'nps'"),
        (*locate(text, "{compnay}"), "error",
         "unknown placeholder {compnay} in the recap of question 'nps'; did you mean {company}?"),
    ]


def test_a_long_recap_is_a_warning() -> None:
    long = "How likely are you, all things considered and after this whole year, to recommend us?"
    text = flow_text(NPS + f'  recap: {{en: "{long}"}}\n')
    assert single(text) == (
        *locate(text, f'"{long}"'), "warning",
        f"the recap of question 'nps' is {len(long)} characters in 'en'; keep it under 80: it "
        "is quoted inside one line when an answer is recalled",
    )
    short = flow_text(NPS + '  recap: {en: "Recommend us?"}\n')
    assert found(short) == []
    assert load_flow_text(short).flow.question("nps").recap == {"en": "Recommend us?"}


def test_true_and_false_misspelt_in_a_condition() -> None:
    text = asking("renew == flase", RENEW)
    assert single(text)[:2] == locate(text, "flase")
    assert single(text)[3].endswith("; did you mean false?")


def test_an_option_id_without_quotes_in_a_condition() -> None:
    text = asking("reason == price", REASON)
    assert single(text) == (
        *locate(text, "price", 2), "error",
        "condition on 'last' refers to 'price', which is not a question, context key or contact "
        'field; write text in quotes: "price"')


def test_lint_file_reports_schema_and_meaning_problems_together() -> None:
    report = lint_file(FIXTURES / "typos.yaml")
    assert report.flow is None and not report.ok
    messages = [p.message for p in report.problems]
    assert "unknown key 'titel' in the flow; did you mean 'title'?" in messages
    assert "no 'fa' text for the text of question 'nps'" in messages
    assert len(report.errors) == 9
