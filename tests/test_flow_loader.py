"""Loading flow YAML: schema problems in staff language at the right line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.flow.loader import (
    FlowError,
    LoadedFlow,
    Positions,
    Problem,
    load_flow,
    load_flow_text,
    parse_text,
)
from bot.flow.model import ChoiceQuestion, Flow

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
MINIMAL = (FIXTURES / "minimal.yaml").read_text(encoding="utf-8")


def locate(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of `needle` in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def problems_of(text: str, path: str = "flow.yaml") -> list[Problem]:
    with pytest.raises(FlowError) as caught:
        load_flow_text(text, path)
    return caught.value.problems


def only_problem(text: str) -> Problem:
    found = problems_of(text)
    assert len(found) == 1, found
    return found[0]


def test_minimal_flow_loads() -> None:
    loaded = load_flow(FIXTURES / "minimal.yaml")
    assert isinstance(loaded, LoadedFlow)
    assert isinstance(loaded.flow, Flow)
    assert loaded.flow.id == "minimal"
    assert loaded.flow.outro[0].text == {"en": "Thank you!"}  # one text → one variant
    assert loaded.path == str(FIXTURES / "minimal.yaml")
    assert loaded.source == MINIMAL


def test_load_flow_text_keeps_the_given_name() -> None:
    loaded = load_flow_text(MINIMAL, "flows/minimal.yaml")
    assert loaded.path == "flows/minimal.yaml"
    assert [q.id for q in loaded.flow.questions] == ["nps"]


def test_a_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_flow(path).flow.id == "minimal"


def test_schema_errors_fixture_reports_every_problem_in_staff_language() -> None:
    path = FIXTURES / "schema_errors.yaml"
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    name = str(path)
    assert caught.value.problems == [
        Problem(name, 17, 9, "unknown key 'optinal' in question 'nps'; did you mean 'optional'?"),
        Problem(
            name,
            21,
            15,
            "unknown question type 'nsp'; expected one of nps, csat, ces, scale, choice, "
            "multi, yesno, text, number; did you mean 'nps'?",
        ),
        Problem(name, 26, 14, "expected a number for 'min' of question 'age', got 'abc'"),
        Problem(name, 29, 9, "question 'why' has no 'text'"),
    ]
    text = str(caught.value)
    assert text.splitlines()[0] == (
        f"{name}:17:9: error: unknown key 'optinal' in question 'nps'; did you mean 'optional'?"
    )
    assert len(text.splitlines()) == 4


def test_problem_str_is_compiler_style() -> None:
    assert str(Problem("f.yaml", 3, 7, "boom")) == "f.yaml:3:7: error: boom"
    assert str(Problem("f.yaml", 3, 7, "hm", "warning")) == "f.yaml:3:7: warning: hm"


# --- YAML syntax ---------------------------------------------------------------------


def test_duplicate_key_points_at_the_second_and_names_the_first() -> None:
    text = MINIMAL.replace('  en: "Quick check"', '  en: "Quick check"\n  en: "Again"')
    problem = only_problem(text)
    assert (problem.line, problem.column) == locate(text, 'en: "Again"')
    first_line = locate(text, 'en: "Quick check"')[0]
    assert problem.message == (
        f"duplicate key 'en' (first at line {first_line}): each key may appear only once "
        "in a mapping"
    )


def test_duplicate_question_key() -> None:
    text = MINIMAL.replace("        type: nps", "        type: nps\n        type: csat")
    problem = only_problem(text)
    assert (problem.line, problem.column) == locate(text, "type: csat")
    assert problem.message.startswith("duplicate key 'type' (first at line 17)")


def test_tab_indentation() -> None:
    text = MINIMAL.replace('  en: "Thank you!"', '\ten: "Thank you!"')
    problem = only_problem(text)
    assert (problem.line, problem.column) == (locate(text, "\ten:")[0], 1)
    assert problem.message == "tab character: indent YAML with spaces, not tabs"


def test_unquoted_colon_in_a_text() -> None:
    text = MINIMAL.replace('  en: "Thank you!"', "  en: Thanks: see you")
    problem = only_problem(text)
    assert (problem.line, problem.column) == locate(text, ": see")
    assert "must be in quotes" in problem.message


def test_unclosed_flow_sequence() -> None:
    text = MINIMAL.replace("languages: [en]", "languages: [en")
    problem = only_problem(text)
    assert problem.message.startswith("invalid YAML: expected ',' or ']'")


def test_misaligned_indentation() -> None:
    text = MINIMAL.replace("        text:\n", "       text:\n")
    problem = only_problem(text)
    assert (problem.line, problem.column) == locate(text, "text:")
    assert problem.message.startswith("this line does not line up with the lines above")


def test_empty_file_and_wrong_root() -> None:
    assert only_problem("") == Problem(
        "flow.yaml", 1, 1, "the file is empty; a flow starts with `id:`, `languages:`, `title:` …"
    )
    assert only_problem("# only a comment\n").message.startswith("the file is empty")
    assert only_problem("- a\n- b\n").message == (
        "a flow file is a mapping of keys (id:, languages:, title:, …), got a list"
    )


# --- schema errors, one per kind -------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        (
            "languages: [en]",
            "languages: [en, de]",
            "de]",
            "unknown language 'de'; expected one of ar, fa, en",
        ),
        (
            "languages: [en]",
            "languages: en",
            "en\ndefault",
            "'languages' must be a list like [ar, fa, en], got 'en'",
        ),
        (
            "default_language: en",
            "default_language: fa",
            "fa\n",
            "default_language 'fa' is not among languages ['en']",
        ),
        (
            "default_language: en",
            "default_language:",
            "default_language:",
            "'default_language' has no value; expected one of ar, fa, en",
        ),
        (
            'en: "Thank you!"',
            'en: "Thank you!"\n  de: "Danke!"',
            "de:",
            "unknown language 'de' in the outro; expected one of ar, fa, en",
        ),
        (
            'en: "Thank you!"',
            'en: ""',
            '""',
            "the outro is empty in 'en'; write the text or remove the language",
        ),
        (
            'en: "Thank you!"',
            "en: 2024-01-01",
            "2024",
            "expected text for the outro, got the date 2024-01-01 (put it in quotes to make it "
            "text)",
        ),
        (
            "id: minimal",
            "id: My Flow",
            "My Flow",
            "'My Flow' is not a valid id for the flow: use lowercase letters, digits, _ and -, "
            "starting with a letter (e.g. 'my-flow')",
        ),
        (
            "      - id: nps",
            "      - id: NPS Score",
            "NPS Score",
            "'NPS Score' is not a valid id for question 1 of group 'main': use lowercase letters, "
            "digits and _, starting with a letter (e.g. 'nps_score')",
        ),
        (
            "      - id: nps",
            "      - id: 7",
            "7\n",
            "expected text for 'id' of question 1 of group 'main', got 7; ids are words such as "
            "`price` or `q1`",
        ),
        (
            "default_language: en",
            "default_language: en\ntouchpoint: Support Desk",
            "Support Desk",
            "'Support Desk' is not a valid touchpoint: use lowercase letters, digits and _, "
            "starting with a letter (e.g. 'support_desk')",
        ),
        (
            "default_language: en",
            "default_language: en\npublic: maybe",
            "maybe",
            "expected true or false for 'public', got 'maybe'",
        ),
        (
            "default_language: en",
            "default_language: en\ncontext: [Ticket]",
            "Ticket",
            "'Ticket' is not a valid context key: use lowercase letters, digits and _, starting "
            "with a letter (e.g. 'ticket')",
        ),
        (
            "        type: nps",
            "        type: nps\n        when: true",
            "true",
            "expected text for 'when' of question 'nps', got true; write the condition as text, "
            'e.g. `when: "nps <= 6"`',
        ),
        (
            "        type: nps",
            "        type: nps\n        optional: perhaps",
            "perhaps",
            "expected true or false for 'optional' of question 'nps', got 'perhaps'",
        ),
        (
            "        type: nps",
            "        type: nps\n        options: []",
            "options",
            "unknown key 'options' in question 'nps': nps questions have no 'options' (used by "
            "choice, multi)",
        ),
        (
            "        type: nps",
            "        type: nps\n        colour: red",
            "colour",
            "unknown key 'colour' in question 'nps'; allowed keys for nps questions: id, text, "
            "recap, optional, when, labels, type",
        ),
        (
            "        type: nps",
            "        type: nps\n        labels: {mn: {en: Low}}",
            "mn",
            "unknown key 'mn' in the labels of question 'nps'; did you mean 'min'?",
        ),
        (
            "        type: nps",
            "        type: scale\n        min: 1\n        max: 1",
            "1\n        text",
            "question 'nps': a scale needs max > min and at most 11 points (e.g. min: 1, max: 5)",
        ),
        (
            "        type: nps",
            "        type: scale\n        min: -200\n        max: 1",
            "-200",
            "'min' of question 'nps' must be at least -100, got -200",
        ),
        (
            "        type: nps",
            "        type: text\n        max_length: 2.5",
            "2.5",
            "expected a whole number for 'max_length' of question 'nps', got 2.5",
        ),
        (
            "        type: nps",
            "        type: choice\n        options:\n          - id: a\n            label: {en: A}",
            "- id: a",
            "question 'nps' needs at least 2 options",
        ),
        (
            "        type: nps",
            "        type: choice\n        options:\n          - a\n          - id: b\n"
            "            label: {en: B}",
            "a\n",
            "option 1 of question 'nps': an option is a mapping with id: and label:, got 'a'",
        ),
        (
            "        type: nps",
            "        type: multi\n        max_picks: 3\n        options:\n          - id: a\n"
            "            label: {en: A}\n          - id: b\n            label: {en: B}",
            "3\n",
            "question 'nps': max_picks is 3 but there are only 2 options",
        ),
        (
            "        type: nps",
            "        type: choice\n        options:\n          - id: a\n          - id: b\n"
            "            label: {en: B}",
            "id: a",
            "option 'a' of question 'nps' has no 'label'",
        ),
        (
            "        type: nps\n        text:\n"
            '          en: "How likely are you to recommend us to a friend?"',
            '        type: nps\n        text: "Recommend us?"',
            '"Recommend',
            "the text of question 'nps' must give one text per language (e.g. `en: \"…\"` on its "
            "own line under it), got 'Recommend us?'",
        ),
        (
            "    questions:\n",
            "    questions:\n      - just text\n",
            "just text",
            "question 1 of group 'main': a question is a mapping with id:, type: and text:, got "
            "'just text'",
        ),
        (
            "        type: nps\n",
            "",
            "id: nps",
            "question 'nps' has no 'type'; expected one of nps, csat, ces, scale, choice, multi, "
            "yesno, text, number",
        ),
        (
            "intro:",
            "greeting:",
            "greeting",
            "unknown key 'greeting' in the flow; allowed keys: id, languages, default_language, "
            "title, touchpoint, public, context, fatigue, reminders, alerts, account_limit, "
            "intro, consent, outro, groups",
        ),
    ],
)
def test_schema_problem(old: str, new: str, needle: str, message: str) -> None:
    assert old in MINIMAL
    text = MINIMAL.replace(old, new, 1)
    found = problems_of(text)
    matching = [p for p in found if p.message == message]
    assert matching, [p.message for p in found]
    problem = matching[0]
    assert (problem.line, problem.column) == locate(text, needle)
    assert problem.severity == "error"


def test_missing_top_level_key_points_at_the_flow() -> None:
    text = MINIMAL.replace('intro:\n  en: "Hi {first_name}, one question ({minutes} min)."\n', "")
    problem = only_problem(text)
    assert (problem.line, problem.column, problem.message) == (2, 1, "the flow has no 'intro'")


def test_missing_group_questions() -> None:
    text = MINIMAL.replace("    questions:\n", "    questions: []\n    qs:\n", 1)
    found = problems_of(text)
    assert [(p.line, p.column, p.message) for p in found] == [
        (*locate(text, "[]"), "group 'main' needs at least 1 question"),
        (
            *locate(text, "qs:"),
            "unknown key 'qs' in group 'main'; allowed keys: id, title, questions",
        ),
    ]


def test_outro_variants_are_located() -> None:
    text = MINIMAL.replace(
        'outro:\n  en: "Thank you!"',
        'outro:\n  - when: "nps <= 6"\n    txt: {en: "Sorry"}\n  - text: {en: "Thanks"}',
    )
    found = problems_of(text)
    assert [(p.line, p.column, p.message) for p in found] == [
        (*locate(text, "when"), "outro variant 1 has no 'text'"),
        (*locate(text, "txt"), "unknown key 'txt' in outro variant 1; did you mean 'text'?"),
    ]


# --- files ----------------------------------------------------------------------------


def test_missing_file_is_a_flow_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    assert caught.value.problems == [Problem(str(path), 1, 1, "no such file")]


def test_a_folder_is_a_flow_error(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(tmp_path)
    assert caught.value.problems[0].message == "this is a folder, not a flow file"


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"id: x\ntitle: caf\xe9\n")
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    assert caught.value.problems == [
        Problem(str(path), 2, 1, "the file is not UTF-8 text; save it as UTF-8")
    ]


# --- lint runs on load ----------------------------------------------------------------


def test_lint_errors_block_loading() -> None:
    text = MINIMAL.replace("{first_name}", "{frist_name}")
    problem = only_problem(text)
    assert (
        problem.message
        == "unknown placeholder {frist_name} in the intro; did you mean {first_name}?"
    )
    assert (problem.line, problem.column) == locate(text, "{frist_name}")


def test_warnings_do_not_block_loading() -> None:
    text = MINIMAL.replace('  en: "Thank you!"', '  en: "Thank you!"\n  ar: "شكرًا"')
    loaded = load_flow_text(text)
    assert loaded.flow.outro[0].text["ar"] == "شكرًا"


def test_flow_error_lists_errors_before_warnings() -> None:
    text = MINIMAL.replace('  en: "Thank you!"', '  en: "Thank you {nope}!"\n  ar: "شكرًا"')
    found = problems_of(text)
    assert [p.severity for p in found] == ["error", "warning"]


# --- positions -------------------------------------------------------------------------


def test_positions_skip_pydantic_only_steps() -> None:
    parsed = parse_text(MINIMAL.replace("type: nps", "type: choice"), "x.yaml")
    spot = parsed.positions.spot(("groups", 0, "questions", 0, "choice", "options"))
    assert spot.path == ("groups", 0, "questions", 0)
    assert spot.exact is False
    spot = parsed.positions.spot(("outro", 0, "text", "en"))
    assert spot.path == ("outro", "en")
    assert spot.exact is True
    assert spot.value == locate(MINIMAL, '"Thank you!"')


def test_positions_inside_quoted_plain_and_block_texts() -> None:
    text = 'a: plain {x}\nb: "quoted {x}"\nc: |\n  first line\n    second {x}\n'
    positions = parse_text(text).positions
    a = positions.problem(("a",), "m", offset=6)
    assert (a.line, a.column) == (1, 10)
    b = positions.problem(("b",), "m", offset=7)
    assert (b.line, b.column) == locate(text, "{x}", 2)
    c = positions.problem(("c",), "m", offset=len("first line\n  second "))
    assert (c.line, c.column) == locate(text, "{x}", 3)


def test_positions_none_reports_at_the_start() -> None:
    problem = Positions.none("code").problem(("groups", 0, "id"), "m")
    assert problem == Problem("code", 1, 1, "m")


def test_parse_text_does_not_lint() -> None:
    parsed = parse_text(MINIMAL.replace("{first_name}", "{frist_name}"))
    assert parsed.problems == []
    assert parsed.flow is not None
    assert isinstance(parsed.flow.questions[0], type(parsed.flow.questions[0]))
    assert not isinstance(parsed.flow.questions[0], ChoiceQuestion)


def test_a_recap_is_a_text_per_language() -> None:
    text = MINIMAL + '        recap:\n          en: "Recommend us?"\n'
    assert load_flow_text(text).flow.question("nps").recap == {"en": "Recommend us?"}
    wrong = MINIMAL + '        recap: "Recommend us?"\n'
    problem = only_problem(wrong)
    assert (problem.line, problem.column) == locate(wrong, '"Recommend us?"')
    assert problem.message.startswith(
        "the recap of question 'nps' must give one text per language"), problem.message


# --- every problem in one run, with did-you-mean for values ---------------------------


def test_unknown_keys_do_not_hide_the_flows_other_problems() -> None:
    path = FIXTURES / "typos.yaml"
    text = path.read_text(encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    got = [(p.line, p.column, p.message) for p in caught.value.problems]
    assert got == [
        (*locate(text, "ture"), "expected true or false for 'public', got 'ture'; did you mean "
                                "true?"),
        (*locate(text, "titel"), "unknown key 'titel' in the flow; did you mean 'title'?"),
        (*locate(text, "far:"), "unknown language 'far' in the title of group 'main'; expected "
                                "one of ar, fa, en; did you mean 'fa'?"),
        (*locate(text, "optinal"), "unknown key 'optinal' in question 'nps'; did you mean "
                                   "'optional'?"),
        # found by the semantic lint, which used to wait until the schema was clean
        (*locate(text, 'en: "Recommend'), "no 'fa' text for the text of question 'nps'"),
        (*locate(text, "flase"), "expected true or false for 'optional' of question "
                                 "'resolved', got 'flase'; did you mean false?"),
        (*locate(text, "txt"), "unknown key 'txt' in question 'resolved'; did you mean 'text'?"),
        (*locate(text, "flase", 2), "condition on 'why' refers to 'flase', which is not a "
                                    "question, context key or contact field; did you mean "
                                    "false?"),
        (*locate(text, "nsp"), "condition on 'why' refers to 'nsp', which is not a question, "
                               "context key or contact field; did you mean 'nps'?"),
    ]


def test_a_question_of_unknown_type_still_has_its_unknown_keys_reported() -> None:
    text = MINIMAL.replace("        type: nps\n",
                           "        type: nsp\n        optinal: true\n        colour: red\n")
    got = [(p.line, p.column, p.message) for p in problems_of(text)]
    assert (*locate(text, "optinal"),
            "unknown key 'optinal' in question 'nps'; did you mean 'optional'?") in got
    assert (*locate(text, "colour"), "unknown key 'colour' in question 'nps'") in got
    assert any("unknown question type 'nsp'" in m for _, _, m in got)


@pytest.mark.parametrize(
    ("old", "new", "needle", "hint"),
    [
        ("default_language: en\n", "default_language: en\npublic: Flase\n", "Flase",
         "; did you mean false?"),
        ("default_language: en\n", "default_language: en\npublic: tru\n", "tru",
         "; did you mean true?"),
        ("languages: [en]", "languages: [en, far]", "far", "; did you mean 'fa'?"),
        ("languages: [en]", "languages: [en, farsi]", "farsi", "; did you mean 'fa'?"),
        ("default_language: en\n", "default_language: en\nreminders:\n  days: [mon, tuesday]\n",
         "tuesday", "; did you mean 'tue'?"),
    ],
)
def test_near_miss_values_get_a_did_you_mean(old: str, new: str, needle: str, hint: str) -> None:
    text = MINIMAL.replace(old, new, 1)
    assert text != MINIMAL
    found = [p for p in problems_of(text) if (p.line, p.column) == locate(text, needle)]
    assert len(found) == 1 and found[0].message.endswith(hint), found


def test_a_value_with_no_near_match_gets_no_guess() -> None:
    text = MINIMAL.replace("languages: [en]", "languages: [en, fr]")
    (problem,) = [p for p in problems_of(text) if "'fr'" in p.message]
    assert problem.message == "unknown language 'fr'; expected one of ar, fa, en"


def test_a_missing_required_key_still_stops_the_semantic_lint() -> None:
    # Without a title there is no flow to check: only the schema problems are reported.
    text = MINIMAL.replace('title:\n  en: "Quick check"\n', "").replace(
        'en: "Thank you!"', 'en: "Thank you, {nobody}!"')
    assert [p.message for p in problems_of(text)] == ["the flow has no 'title'"]


# --- durations and time windows: their own rule and example, not the advice for ids -----

RULE = ("a whole number from 1 to 9999 and a unit, m (minutes), h (hours), d (days) or w "
        "(weeks), without a space")
WINDOW = "two times of day from 00:00 to 23:59 as HH:MM-HH:MM"


@pytest.mark.parametrize(
    ("setting", "needle", "message"),
    [
        ("fatigue: 0d", "0d", "'0d' is not a valid duration for 'fatigue': a duration is at "
         "least 1 of its unit (e.g. '1d')"),
        ("fatigue: 30", "30", f"expected a duration for 'fatigue', got 30: {RULE} (e.g. '30d')"),
        ("fatigue: 30D", "30D", f"'30D' is not a valid duration for 'fatigue': write it as "
         f"'30d' ({RULE})"),
        ("fatigue: 10000d", "10000d", f"'10000d' is not a valid duration for 'fatigue': write "
         f"{RULE} (e.g. '30d')"),
        ("reminders: {after: ['3 days']}", "'3 days'", "'3 days' is not a valid duration for "
         f"item 1 of reminders.after: write it as '3d' ({RULE})"),
        ("reminders: {after: [2d, soon]}", "soon", "'soon' is not a valid duration for item 2 "
         f"of reminders.after: write {RULE} (e.g. '3d')"),
        ("account_limit: {max: 2, window: 2 months}", "2 months", "'2 months' is not a valid "
         f"duration for account_limit.window: write it as '60d' ({RULE})"),
        ("reminders: {window: 25:00-26:00}", "25:00", "'25:00-26:00' is not a valid time "
         "window for reminders.window: 25:00 is not a time of day (hours go from 00 to 23, "
         "minutes from 00 to 59; midnight is 00:00), e.g. '09:00-18:00'"),
        ("reminders: {window: '9-18'}", "'9-18'", "'9-18' is not a valid time window for "
         f"reminders.window: write it as '09:00-18:00' ({WINDOW})"),
        ("reminders: {window: evenings}", "evenings", "'evenings' is not a valid time window "
         f"for reminders.window: write {WINDOW} (e.g. '09:00-18:00')"),
        ("reminders: {window: 900}", "900", "expected a time window for reminders.window, got "
         f"900: {WINDOW} (e.g. '09:00-18:00')"),
    ],
)
def test_a_bad_duration_or_window_is_explained_with_its_own_example(
    setting: str, needle: str, message: str
) -> None:
    text = MINIMAL + setting + "\n"
    problem = only_problem(text)
    assert problem.message == message
    assert (problem.line, problem.column) == locate(text, needle, text.count(needle))


def test_every_duration_and_window_setting_has_its_own_explanation() -> None:
    """A duration added to the model later gets the same messages, or this fails."""
    from bot.flow.loader import _FORMATS
    from bot.flow.model import DURATION_PATTERN, WINDOW_PATTERN

    schema = Flow.model_json_schema()
    found: dict[tuple[str, ...], str] = {}

    def walk(node: dict[str, object], path: tuple[str, ...]) -> None:
        ref = node.get("$ref")
        if isinstance(ref, str):
            walk(schema["$defs"][ref.rsplit("/", 1)[-1]], path)
        if node.get("pattern") in (DURATION_PATTERN, WINDOW_PATTERN):
            found[path] = str(node["pattern"])
        for key in ("anyOf", "oneOf"):
            for member in node.get(key, []) or []:  # type: ignore[attr-defined]
                walk(member, path)
        if isinstance(node.get("items"), dict):
            walk(node["items"], path)  # type: ignore[arg-type]
        for name, child in (node.get("properties") or {}).items():  # type: ignore[attr-defined]
            walk(child, (*path, name))

    walk(schema, ())
    assert found and {p: f.pattern for p, f in _FORMATS.items()} == found


@pytest.mark.parametrize(
    ("value", "message"),
    [(".inf", "expected a finite number (not .inf or .nan) for 'max' of question 'n', got inf"),
     (".nan", "expected a finite number (not .inf or .nan) for 'max' of question 'n', got nan"),
     ("1e20", "'max' of question 'n' must be at most 1000000000000000, got 1e+20"),
     ("-1e16", "'max' of question 'n' must be at least -1000000000000000, got -1e+16")],
)
def test_a_number_question_bound_is_finite_and_within_the_limit(value: str, message: str) -> None:
    # An answer beyond NUMBER_LIMIT is refused (bot.engine.parse); so is a bound beyond it.
    text = MINIMAL + f"      - {{id: n, type: number, text: {{en: 'How many?'}}, max: {value}}}\n"
    assert only_problem(text).message == message
