"""The fake's parse modes: what Telegram accepts, what it rejects, and in which units."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakebot.entities import EntityParseError, parse_text, utf16_len


def entities(*spans: tuple[str, int, int]) -> list[dict[str, Any]]:
    return [{"type": kind, "offset": offset, "length": length} for kind, offset, length in spans]


def test_offsets_are_utf16_code_units() -> None:
    assert utf16_len("😀") == 2 and utf16_len("سلام") == 4
    assert parse_text("😀 <i>نظر</i>", "HTML") == ("😀 نظر", entities(("italic", 3, 3)))


@pytest.mark.parametrize(
    ("source", "text", "spans"),
    [
        ("<b>a<i>b</i></b>", "ab", entities(("bold", 0, 2), ("italic", 1, 1))),
        ("<strong>a</strong><em>b</em><ins>c</ins><del>d</del>", "abcd",
         entities(("bold", 0, 1), ("italic", 1, 1), ("underline", 2, 1),
                  ("strikethrough", 3, 1))),
        ('<span class="tg-spoiler">x</span><tg-spoiler>y</tg-spoiler>', "xy",
         entities(("spoiler", 0, 1), ("spoiler", 1, 1))),
        ("&lt;&gt;&amp;&quot;&#1587;&#x633;&nbsp;", '<>&"سس&nbsp;', []),
        ("<b></b>x", "x", []),  # entities over no text are dropped
        ("<a>plain</a>", "plain", []),
        ("<blockquote expandable>q</blockquote>", "q",
         entities(("expandable_blockquote", 0, 1))),
    ],
)
def test_html(source: str, text: str, spans: list[dict[str, Any]]) -> None:
    assert parse_text(source, "HTML") == (text, spans)


def test_html_links_and_code_languages() -> None:
    assert parse_text('<a href="https://x.io/?a=1&amp;b=2">x</a>', "html")[1] == [
        {"type": "text_link", "offset": 0, "length": 1, "url": "https://x.io/?a=1&b=2"}
    ]
    assert parse_text('<pre><code class="language-yaml">k: v</code></pre>', "HTML")[1] == [
        {"type": "pre", "offset": 0, "length": 4, "language": "yaml"}
    ]


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("Dear <Sara>", 'Unsupported start tag "sara" at byte offset 5'),
        ("نمره < ۵", 'Unsupported start tag "" at byte offset 9'),  # byte offsets, not chars
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ('<a href="x"', "Unclosed start tag at byte offset 0"),
        ('<span class="red">x</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
def test_html_errors(source: str, error: str) -> None:
    with pytest.raises(EntityParseError) as failure:
        parse_text(source, "HTML")
    assert str(failure.value) == error


@pytest.mark.parametrize(
    ("source", "text", "spans"),
    [
        ("*b* _i_ __u__ ~s~ ||p||", "b i u s p",
         entities(("bold", 0, 1), ("italic", 2, 1), ("underline", 4, 1),
                  ("strikethrough", 6, 1), ("spoiler", 8, 1))),
        ("۱\\. Yes \\(recommended\\)\\!", "۱. Yes (recommended)!", []),
        ("`a\\`b` x", "a`b x", entities(("code", 0, 3))),
        (">quoted\n>lines\nplain", "quoted\nlines\nplain", entities(("blockquote", 0, 12))),
        ("[ok]", "ok", []),
    ],
)
def test_markdown_v2(source: str, text: str, spans: list[dict[str, Any]]) -> None:
    assert parse_text(source, "MarkdownV2") == (text, spans)


def test_markdown_v2_links_and_pre() -> None:
    assert parse_text("[site](https://x.io/a_\\)b)", "MarkdownV2")[1] == [
        {"type": "text_link", "offset": 0, "length": 4, "url": "https://x.io/a_)b"}
    ]
    assert parse_text("```python\nprint(1)\n```", "MarkdownV2") == (
        "print(1)\n", [{"type": "pre", "offset": 0, "length": 9, "language": "python"}]
    )


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("Score: 9.5", "Character '.' is reserved and must be escaped with the preceding '\\'"),
        ("1-10", "Character '-' is reserved and must be escaped with the preceding '\\'"),
        ("*open", "Can't find end of Bold entity at byte offset 0"),
        ("سلام _x", "Can't find end of Italic entity at byte offset 9"),
    ],
)
def test_markdown_v2_errors(source: str, error: str) -> None:
    with pytest.raises(EntityParseError) as failure:
        parse_text(source, "MarkdownV2")
    assert str(failure.value) == error


def test_legacy_markdown() -> None:
    assert parse_text("*b* _i_ `c` [l](https://x.io) 9.5-1", "Markdown") == (
        "b i c l 9.5-1",
        [*entities(("bold", 0, 1), ("italic", 2, 1), ("code", 4, 1)),
         {"type": "text_link", "offset": 6, "length": 1, "url": "https://x.io"}],
    )
    with pytest.raises(EntityParseError, match="byte offset 0"):
        parse_text("_unclosed", "Markdown")


def test_no_parse_mode_keeps_text_verbatim() -> None:
    assert parse_text("<b>*x*</b>", None) == ("<b>*x*</b>", [])
    with pytest.raises(EntityParseError, match="unsupported parse_mode"):
        parse_text("x", "BBCode")
