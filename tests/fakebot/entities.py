"""Telegram's text formatting, as the Bot API server applies it to `parse_mode` texts.

`parse_text(text, parse_mode)` returns the plain text and its entities (offsets and lengths in
UTF-16 code units, as Telegram counts them) or raises `EntityParseError` with the wording the
server uses after "Bad Request: can't parse entities: ". The rules follow the Bot API's
"Formatting options" section: HTML with its short tag list and four named character
references, MarkdownV2 with its reserved characters, and legacy Markdown. A bot that
interpolates a customer's name such as "<Sara>" or "Dr. Ali" into a formatted text without
escaping it fails here the way it fails in production.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EntityParseError", "parse_text", "utf16_len"]

_HTML_TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_NAMED_REFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")


class EntityParseError(ValueError):
    """The text does not parse in its parse mode; str() is Telegram's explanation."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit of every Telegram entity offset and length."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


@dataclass
class _Builder:
    """Collects output text and finished entities while a parser walks the source."""

    parts: list[str] = field(default_factory=list)
    offset: int = 0  # UTF-16 length of the output so far
    entities: list[dict[str, Any]] = field(default_factory=list)

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.offset += utf16_len(chunk)

    def close(self, kind: str, start: int, **extra: Any) -> None:
        length = self.offset - start
        if length > 0:  # Telegram drops entities that cover no text
            self.entities.append({"type": kind, "offset": start, "length": length, **extra})

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        entities = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), entities


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """Apply `parse_mode` ("HTML", "MarkdownV2", "Markdown", case-insensitive, or None)."""
    if not parse_mode:
        return text, []
    mode = parse_mode.lower()
    if mode == "html":
        return _parse_html(text)
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode == "markdown":
        return _parse_markdown(text)
    raise EntityParseError(f"unsupported parse_mode {parse_mode!r}")


# --- HTML -----------------------------------------------------------------------------------

_TAG_NAME = re.compile(r"[A-Za-z0-9-]*")
_ATTR = re.compile(r"\s*([A-Za-z0-9_-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+)))?")


def _html_reference(text: str, i: int) -> tuple[str, int]:
    """Decode a character reference at text[i] == "&"; unknown ones stay literal, as in tdlib."""
    end = text.find(";", i + 1, i + 12)
    if end == -1:
        return "&", i + 1
    name = text[i + 1 : end]
    if name in _HTML_NAMED_REFS:
        return _HTML_NAMED_REFS[name], end + 1
    number = None
    if re.fullmatch(r"#[0-9]+", name):
        number = int(name[1:])
    elif re.fullmatch(r"#[xX][0-9A-Fa-f]+", name):
        number = int(name[2:], 16)
    if number is not None and 0 < number <= 0x10FFFF and not 0xD800 <= number <= 0xDFFF:
        return chr(number), end + 1
    return "&", i + 1


def _parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    stack: list[tuple[str, int, dict[str, str]]] = []  # tag, output offset, attributes
    i = 0
    while i < len(text):
        char = text[i]
        if char == "&":
            decoded, i = _html_reference(text, i)
            out.add(decoded)
            continue
        if char != "<":
            out.add(char)
            i += 1
            continue
        where = _byte_offset(text, i)
        if text.startswith("</", i):
            match = _TAG_NAME.match(text, i + 2)
            assert match is not None
            name = match.group().lower()
            close = text.find(">", match.end())
            if close == -1 or text[match.end() : close].strip():
                raise EntityParseError(f"Unclosed end tag at byte offset {where}")
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {where}")
            tag, start, attrs = stack.pop()
            if name != tag:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {where}, expected "</{tag}>", '
                    f'found "</{name}>"'
                )
            _close_html_entity(out, tag, start, attrs, stack)
            i = close + 1
            continue
        match = _TAG_NAME.match(text, i + 1)
        assert match is not None
        name = match.group().lower()
        if name not in _HTML_TAG_ENTITY:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {where}')
        attrs: dict[str, str] = {}
        j = match.end()
        while True:
            if j >= len(text):
                raise EntityParseError(f"Unclosed start tag at byte offset {where}")
            if text[j] == ">":
                break
            if text[j].isspace():
                j += 1
                continue
            attr = _ATTR.match(text, j)
            if attr is None or attr.end() == j:
                raise EntityParseError(f"Unclosed start tag at byte offset {where}")
            value = next((v for v in attr.groups()[1:] if v is not None), "")
            attrs[attr.group(1).lower()] = _unescape_attr(value)
            j = attr.end()
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {where}'
            )
        stack.append((name, out.offset, attrs))
        i = j + 1
    if stack:
        raise EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"'
        )
    return out.result()


def _unescape_attr(value: str) -> str:
    parts: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "&":
            decoded, i = _html_reference(value, i)
            parts.append(decoded)
        else:
            parts.append(value[i])
            i += 1
    return "".join(parts)


def _close_html_entity(
    out: _Builder, tag: str, start: int, attrs: dict[str, str],
    stack: list[tuple[str, int, dict[str, str]]],
) -> None:
    kind = _HTML_TAG_ENTITY[tag]
    if kind == "text_link":
        url = attrs.get("href", "")
        if url:  # an <a> without href is plain text for Telegram
            out.close("text_link", start, url=url)
        return
    if kind == "custom_emoji":
        out.close("custom_emoji", start, custom_emoji_id=attrs.get("emoji-id", ""))
        return
    if kind == "blockquote" and "expandable" in attrs:
        kind = "expandable_blockquote"
    if kind == "code" and stack and stack[-1][0] == "pre" and start == stack[-1][1]:
        # <pre><code class="language-x">…</code></pre> is one pre entity with a language
        language = attrs.get("class", "").removeprefix("language-")
        if language:
            stack[-1][2]["language"] = language
            return
    if kind == "pre" and attrs.get("language"):
        out.close("pre", start, language=attrs["language"])
        return
    out.close(kind, start)


# --- MarkdownV2 -----------------------------------------------------------------------------

_MDV2_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


@dataclass
class _Open:
    kind: str
    start: int  # output offset (UTF-16)
    where: int  # source byte offset, for error messages
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Quote:
    kind: str
    start: int
    end: int  # output offset of the end of the last quoted line (its newline excluded)


class _MarkdownV2:
    """One pass over a MarkdownV2 text, following the Bot API's rules and tdlib's messages."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Builder()
        self.stack: list[_Open] = []
        self.quote: _Quote | None = None

    def parse(self) -> tuple[str, list[dict[str, Any]]]:
        text, i = self.text, 0
        while i < len(text):
            in_code = bool(self.stack) and self.stack[-1].kind in ("code", "pre")
            if (i == 0 or text[i - 1] == "\n") and not in_code:
                i = self._line_start(i)
                if i >= len(text):
                    break
            i = self._code_char(i) if in_code else self._char(i)
        self._end_quote()
        if self.stack:
            top = self.stack[-1]
            raise EntityParseError(
                f"Can't find end of {_MDV2_NAMES[top.kind]} entity at byte offset {top.where}"
            )
        return self.out.result()

    def _line_start(self, i: int) -> int:
        text = self.text
        if text.startswith("**>", i):
            self._end_quote()
            self.quote = _Quote("expandable_blockquote", self.out.offset, self.out.offset)
            return i + 3
        if text.startswith(">", i):
            if self.quote is None:
                self.quote = _Quote("blockquote", self.out.offset, self.out.offset)
            return i + 1
        self._end_quote()
        return i

    def _end_quote(self) -> None:
        if self.quote is not None:
            length = self.quote.end - self.quote.start
            if length > 0:
                self.out.entities.append(
                    {"type": self.quote.kind, "offset": self.quote.start, "length": length}
                )
            self.quote = None

    def _add(self, chunk: str) -> None:
        self.out.add(chunk)
        if self.quote is not None and chunk != "\n":
            self.quote.end = self.out.offset

    def _code_char(self, i: int) -> int:
        text, top = self.text, self.stack[-1]
        if text[i] == "\\" and i + 1 < len(text) and 1 <= ord(text[i + 1]) <= 126:
            self._add(text[i + 1])
            return i + 2
        if text[i] == "`" and (top.kind == "code" or text.startswith("```", i)):
            self.stack.pop()
            self.out.close(top.kind, top.start, **top.extra)
            return i + (1 if top.kind == "code" else 3)
        self._add(text[i])
        return i + 1

    def _char(self, i: int) -> int:
        text = self.text
        char = text[i]
        if char == "\\" and i + 1 < len(text) and 1 <= ord(text[i + 1]) <= 126:
            self._add(text[i + 1])
            return i + 2
        if (
            self.quote is not None
            and self.quote.kind == "expandable_blockquote"
            and text.startswith("||", i)
            and text[i + 2 : i + 3] in ("", "\n")
            and not (self.stack and self.stack[-1].kind == "spoiler")
        ):
            self._end_quote()
            return i + 2
        if char not in _MDV2_RESERVED:
            self._add(char)
            return i + 1
        where = _byte_offset(text, i)
        width = self._closing_width(i)
        if width:
            top = self.stack.pop()
            i += width
            if top.kind in ("text_link", "custom_emoji"):
                return self._link_target(i, top)
            self.out.close(top.kind, top.start)
            return i
        extra: dict[str, Any] = {}
        if char == "_":
            kind, width = ("underline", 2) if text.startswith("__", i) else ("italic", 1)
        elif char == "*":
            kind, width = "bold", 1
        elif char == "~":
            kind, width = "strikethrough", 1
        elif char == "|" and text.startswith("||", i):
            kind, width = "spoiler", 2
        elif char == "[":
            kind, width = "text_link", 1
        elif text.startswith("![", i):
            kind, width = "custom_emoji", 2
        elif text.startswith("```", i):
            kind, width = "pre", 3
            newline = text.find("\n", i + 3)
            language = text[i + 3 : newline] if newline != -1 else ""
            if language and not any(c.isspace() or c in _MDV2_RESERVED for c in language):
                extra["language"] = language
                width = newline + 1 - i
        elif char == "`":
            kind, width = "code", 1
        else:
            raise EntityParseError(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        self.stack.append(_Open(kind, self.out.offset, where, extra))
        return i + width

    def _closing_width(self, i: int) -> int:
        """How many characters at text[i] close the innermost open entity (0: none)."""
        if not self.stack:
            return 0
        text, kind = self.text, self.stack[-1].kind
        closers = {
            "italic": "_", "underline": "__", "bold": "*", "strikethrough": "~",
            "spoiler": "||", "text_link": "]", "custom_emoji": "]",
        }
        closer = closers.get(kind, "")
        return len(closer) if closer and text.startswith(closer, i) else 0

    def _link_target(self, i: int, top: _Open) -> int:
        text = self.text
        if not text.startswith("(", i):
            if top.kind == "custom_emoji":
                raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
            return i  # "[text]" without a URL: Telegram keeps the text, adds no entity
        url: list[str] = []
        j = i + 1
        while j < len(text) and text[j] != ")":
            if text[j] == "\\" and j + 1 < len(text):
                j += 1
            url.append(text[j])
            j += 1
        if j >= len(text):
            raise EntityParseError(
                f"Can't find end of a URL at byte offset {_byte_offset(text, i)}"
            )
        target = "".join(url)
        if top.kind == "custom_emoji":
            match = re.fullmatch(r"tg://emoji\?id=(\d+)", target)
            if match is None:
                raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
            self.out.close("custom_emoji", top.start, custom_emoji_id=match.group(1))
        elif target:
            self.out.close("text_link", top.start, url=target)
        return j + 1


def _parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    return _MarkdownV2(text).parse()


# --- legacy Markdown ------------------------------------------------------------------------

def _parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if char not in "_*`[":
            out.add(char)
            i += 1
            continue
        where = _byte_offset(text, i)
        if char == "[":
            close = text.find("]", i + 1)
            if close == -1:
                raise EntityParseError(
                    f"Can't find end of the entity starting at byte offset {where}"
                )
            start = out.offset
            out.add(text[i + 1 : close])
            i = close + 1
            if text.startswith("(", i) and (end := text.find(")", i)) != -1:
                out.close("text_link", start, url=text[i + 1 : end])
                i = end + 1
            continue
        if char == "`" and text.startswith("```", i):
            end = text.find("```", i + 3)
            if end == -1:
                raise EntityParseError(
                    f"Can't find end of the entity starting at byte offset {where}"
                )
            body = text[i + 3 : end]
            language = ""
            if "\n" in body and body.split("\n", 1)[0].strip().isidentifier():
                language, body = body.split("\n", 1)
            start = out.offset
            out.add(body)
            out.close("pre", start, **({"language": language.strip()} if language else {}))
            i = end + 3
            continue
        end = text.find(char, i + 1)
        if end == -1:
            raise EntityParseError(f"Can't find end of the entity starting at byte offset {where}")
        start = out.offset
        out.add(text[i + 1 : end])
        out.close({"_": "italic", "*": "bold", "`": "code"}[char], start)
        i = end + 1
    return out.result()
