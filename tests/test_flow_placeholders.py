"""`{name}` placeholders: finding them (with offsets) and rendering that never fails."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.flow.placeholders import BUILTINS, PlaceholderError, names, render


def test_names_with_offsets() -> None:
    assert names("Hi {first_name}, {questions} questions about {ticket}.") == [
        ("first_name", 3),
        ("questions", 17),
        ("ticket", 45),
    ]


def test_doubled_braces_are_literal() -> None:
    assert names("{{not_a_name}} and {n}") == [("n", 19)]
    assert names("{{{n}}}") == [("n", 2)]
    assert names("no placeholders") == []


def test_offsets_count_characters_in_arabic_and_persian() -> None:
    assert names("مرحبًا {first_name}، شكرًا") == [("first_name", 7)]
    assert names("سلام {first_name}، از همکاری") == [("first_name", 5)]


@pytest.mark.parametrize(
    ("template", "fragment", "offset"),
    [
        ("Hi {first_name", "unclosed `{`", 3),
        ("Hi {a {b}", "unclosed `{`", 3),
        ("Hi {}", "empty placeholder", 3),
        ("Hi { }", "empty placeholder", 3),
        ("Hi {1x}", "`{1x}` is not a placeholder: a name starts with a letter", 3),
        ("Hi {first name}", "`{first name}` is not a placeholder", 3),
        ("Hi { first_name }", "no spaces inside a placeholder: write {first_name}", 3),
        ("Score {nps:02d}", "write just the name, e.g. {nps}", 6),
        ("Hi {contact.name}", "write just the name, e.g. {contact}", 3),
        ("Hi {items[0]}", "write just the name, e.g. {items}", 3),
        ("Hi } there", "single `}`: write }} for a literal brace", 3),
    ],
)
def test_malformed_placeholders(template: str, fragment: str, offset: int) -> None:
    with pytest.raises(PlaceholderError) as caught:
        names(template)
    assert fragment in caught.value.message
    assert caught.value.offset == offset


def test_placeholder_error_is_a_value_error_with_offset_in_str() -> None:
    error = PlaceholderError("bad", 4)
    assert isinstance(error, ValueError)
    assert str(error) == "offset 4: bad"


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("Hi {first_name}!", {"first_name": "Sara"}, "Hi Sara!"),
        ("Hi {first_name}!", {}, "Hi!"),
        ("Hello {first_name}, thanks", {}, "Hello, thanks"),
        ("Thanks {first_name} for", {}, "Thanks for"),
        ("Thanks {first_name}", {}, "Thanks"),
        ("{first_name} thanks", {}, "thanks"),
        ("Hi {a} {b}!", {}, "Hi!"),
        ("Hi {a} {b}!", {"b": "B"}, "Hi B!"),
        ("Ticket {ticket}.", {"ticket": None}, "Ticket."),
        ("Ticket {ticket}.", {"ticket": ""}, "Ticket."),
        ("مرحبًا {first_name}، شكرًا", {}, "مرحبًا، شكرًا"),
        ("مرحبًا {first_name}، شكرًا", {"first_name": "سارا"}, "مرحبًا سارا، شكرًا"),
        ("چرا {name}؟", {}, "چرا؟"),
        ("line one\n{a} line two", {}, "line one\nline two"),
        ("{{literal}} {n}", {"n": 3}, "{literal} 3"),
        (
            "{questions} questions, {minutes} min",
            {"questions": 5, "minutes": 2},
            "5 questions, 2 min",
        ),
        ("You picked {reasons}", {"reasons": ["price", "speed"]}, "You picked price, speed"),
    ],
)
def test_render(template: str, values: dict[str, object], expected: str) -> None:
    assert render(template, values) == expected


def test_render_shows_a_malformed_template_as_written() -> None:
    assert render("Hi {first_name", {"first_name": "x"}) == "Hi {first_name"


def test_render_survives_values_that_cannot_be_turned_into_text() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert render("Hi {a}!", {"a": Unprintable()}) == "Hi!"


def test_builtins() -> None:
    assert BUILTINS == ("questions", "minutes", "question_count", "duration")


@given(
    template=st.text(alphabet="ab {}_,.!1 \n", max_size=30),
    values=st.dictionaries(
        st.sampled_from(["a", "b", "ab", "_"]),
        st.one_of(st.none(), st.text(max_size=5), st.integers(), st.lists(st.text(max_size=3))),
    ),
)
def test_render_never_raises(template: str, values: dict[str, object]) -> None:
    assert isinstance(render(template, values), str)


@given(template=st.text(max_size=40))
def test_names_returns_or_raises_placeholder_error_only(template: str) -> None:
    try:
        found = names(template)
    except PlaceholderError as error:
        assert 0 <= error.offset < len(template)
        assert template[error.offset] in "{}"
    else:
        for name, offset in found:
            assert template[offset : offset + len(name) + 2] == "{" + name + "}"
