"""`{name}` placeholders in survey texts.

A placeholder is a name in braces: a contact field (`{first_name}`), a context key
(`{ticket}`), the id of an earlier question (`{nps}`), or in the intro the built-ins:
`{questions}` and `{minutes}` (bare numbers), `{question_count}` and `{duration}` (the
counted phrase in the reader's grammar, "5 questions", "about 3 minutes", filled by the
channel from the catalogs' plural forms). `{{` and `}}` are literal braces. This is
deliberately not `str.format`: no attribute access, no format specs, and rendering never fails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

BUILTINS: Final[tuple[str, ...]] = ("questions", "minutes", "question_count", "duration")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Punctuation that hugs the word before it, so a vanished name leaves no space before it.
_CLOSING: Final = frozenset(",.;:!?)]}،؛؟…»")


class PlaceholderError(ValueError):
    """A malformed placeholder; `offset` is the 0-based character index in the text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset

    def __str__(self) -> str:
        return f"offset {self.offset}: {self.message}"


def _explain(inner: str) -> str:
    """Why `{inner}` is not a placeholder, with the likely intended form."""
    shown = "{" + inner + "}"
    if not inner.strip():
        return (
            "empty placeholder `{}`: put a name inside, e.g. {first_name}, "
            "or write {{}} for literal braces"
        )
    if inner != inner.strip() and _NAME.match(inner.strip()):
        return f"no spaces inside a placeholder: write {{{inner.strip()}}} instead of `{shown}`"
    head = re.split(r"[.:!\[]", inner, maxsplit=1)[0].strip()
    if head != inner.strip() and _NAME.match(head):
        return f"`{shown}` is not a placeholder: write just the name, e.g. {{{head}}}"
    return (
        f"`{shown}` is not a placeholder: a name starts with a letter and holds only letters, "
        "digits and _ (e.g. {first_name}); write {{ and }} for literal braces"
    )


def _scan(template: str) -> list[tuple[str, int, int] | tuple[None, int, int]]:
    """Split into pieces: (name, start, end) for placeholders, (None, start, end) for text.

    Raises PlaceholderError at the first malformed brace.
    """
    pieces: list[tuple[str, int, int] | tuple[None, int, int]] = []
    i = 0
    text_start = 0
    n = len(template)
    while i < n:
        ch = template[i]
        if ch == "{":
            if template.startswith("{{", i):
                i += 2
                continue
            close = template.find("}", i + 1)
            reopen = template.find("{", i + 1)
            if close == -1 or (reopen != -1 and reopen < close):
                raise PlaceholderError(
                    "unclosed `{`: close the placeholder with `}` or write {{ for a literal brace",
                    i,
                )
            inner = template[i + 1 : close]
            if not _NAME.match(inner):
                raise PlaceholderError(_explain(inner), i)
            if text_start < i:
                pieces.append((None, text_start, i))
            pieces.append((inner, i, close + 1))
            i = close + 1
            text_start = i
            continue
        if ch == "}":
            if template.startswith("}}", i):
                i += 2
                continue
            raise PlaceholderError("single `}`: write }} for a literal brace", i)
        i += 1
    if text_start < n:
        pieces.append((None, text_start, n))
    return pieces


def names(template: str) -> list[tuple[str, int]]:
    """The placeholders in `template` as (name, offset of its `{`), in order."""
    return [(name, start) for name, start, _ in _scan(template) if name is not None]


def _unescape(text: str) -> str:
    return text.replace("{{", "{").replace("}}", "}")


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_as_text(v) for v in value)
    try:
        return str(value)
    except Exception:
        return ""


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill the placeholders from `values`; never raises.

    A missing (or None/empty) value renders as nothing, and the space it would leave
    doubled ("Thanks  for") or hanging before punctuation ("Hi , thanks") is removed.
    A malformed template is shown as written (the linter reports it before release).
    """
    try:
        pieces = _scan(template)
    except PlaceholderError:
        return template
    except Exception:
        return ""
    segments: list[str | None] = []  # None marks a placeholder that rendered empty
    for name, start, end in pieces:
        if name is None:
            segments.append(_unescape(template[start:end]))
            continue
        try:
            value = _as_text(values.get(name))
        except Exception:
            value = ""
        segments.append(value or None)
    result = ""
    skip_space = False
    for index, segment in enumerate(segments):
        if segment is None:
            following = next((s for s in segments[index + 1 :] if s is not None), "")
            first = following[:1]
            if result.endswith(" ") and (first in ("", " ", "\n") or first in _CLOSING):
                result = result[:-1]
            elif result == "" or result.endswith("\n"):
                skip_space = True
            continue
        if skip_space and segment.startswith(" "):
            segment = segment[1:]
        skip_space = False
        result += segment
    return result
