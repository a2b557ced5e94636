"""The `when:` condition language: comparisons on answers, context and contact fields.

Staff write conditions such as `nps <= 6` or `role == "buyer" and csat < 4`. They are
parsed with `ast.parse(mode="eval")` only to reuse Python's tokenizer and precedence
rules; the tree is then checked against a small whitelist and translated into our own
node objects, which are interpreted here. Nothing is ever compiled or evaluated by
Python, so a flow file cannot run code.

Semantics (documented for staff in docs/flows.md):

* A name is an answer (question id), a context key or a contact field. A name with no
  value (not asked, skipped, unknown) is *missing*.
* Every comparison that involves a missing value is false, for every operator, `!=`
  included: "not answered" never triggers a branch by accident. `not (plan == "pro")`
  is the explicit way to include people who did not answer.
* Values of different kinds (number, text, yes/no, list) are never equal and never
  ordered: `nps == "9"` and `renew == 1` are false. Only numbers are ordered.
* `x in [..]` is membership in a list literal or in a list answer (multi questions);
  with anything other than a list on the right it is false (no substring matching).
* A bare name is true when it has a value that is not "no", not empty text and not an
  empty list; `0` counts as answered, so `nps` alone means "nps was answered".
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

Scalar = bool | int | float | str
Constant = Scalar | tuple[Scalar, ...]

MAX_LENGTH: Final = 1000
MAX_DEPTH: Final = 40

EXAMPLE: Final = '`nps <= 6 and role == "buyer"`'
GRAMMAR: Final = (
    'a condition compares names with values (`nps <= 6`, `role == "buyer"`, '
    '`"price" in reasons`, `role in ["buyer", "user"]`) and joins comparisons with '
    "`and`, `or`, `not` and parentheses"
)

_OPS: Final[dict[type[ast.cmpop], str]] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_BOOL_NAMES: Final = {"true": True, "false": False}

# Why a node is refused, in the words staff understand; the generic fallback is GRAMMAR.
_REFUSED: Final[dict[type[ast.AST], str]] = {
    ast.Call: f"function calls are not allowed in conditions; use comparisons like {EXAMPLE}",
    ast.Attribute: (
        "attribute access (`a.b`) is not allowed in conditions; refer to answers, context "
        'keys and contact fields by their plain name, e.g. `role == "buyer"`'
    ),
    ast.Subscript: (
        'indexing (`a[0]`) is not allowed in conditions; to test a pick write `"price" in reasons`'
    ),
    ast.BinOp: (
        "arithmetic is not allowed in conditions; compare values directly, e.g. `nps <= 6`"
    ),
    ast.IfExp: f"`… if … else …` is not allowed in conditions; {GRAMMAR}",
    ast.Lambda: f"`lambda` is not allowed in conditions; {GRAMMAR}",
    ast.NamedExpr: "`:=` is not allowed in conditions; use `==` to compare",
    ast.Dict: f"`{{…}}` mappings are not allowed in conditions; {GRAMMAR}",
    ast.Set: 'sets are not allowed in conditions; write a list: `role in ["buyer", "user"]`',
    ast.ListComp: f"comprehensions are not allowed in conditions; {GRAMMAR}",
    ast.SetComp: f"comprehensions are not allowed in conditions; {GRAMMAR}",
    ast.DictComp: f"comprehensions are not allowed in conditions; {GRAMMAR}",
    ast.GeneratorExp: f"comprehensions are not allowed in conditions; {GRAMMAR}",
    ast.JoinedStr: "f-strings are not allowed in conditions; write plain quoted text",
    ast.Await: f"`await` is not allowed in conditions; {GRAMMAR}",
    ast.Starred: f"`*` is not allowed in conditions; {GRAMMAR}",
}


class ConditionError(ValueError):
    """A condition that is not valid; `column` is 1-based within the condition text."""

    def __init__(self, message: str, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return f"column {self.column}: {self.message}"


# --- the parsed form --------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A name used in a condition, with its 1-based column."""

    name: str
    column: int


@dataclass(frozen=True)
class Lit:
    """A constant (or a list of constants) written in a condition."""

    value: Constant
    column: int


Operand = Ref | Lit


@dataclass(frozen=True)
class Comparison:
    """One `left op right` pair; `a < b < c` yields two. The linter checks these."""

    left: Operand
    op: str
    right: Operand

    @property
    def column(self) -> int:
        return self.left.column


class _Node:
    __slots__ = ()

    def value(self, env: Mapping[str, object]) -> object:
        raise NotImplementedError


class _Const(_Node):
    __slots__ = ("v",)

    def __init__(self, v: Constant) -> None:
        self.v = v

    def value(self, env: Mapping[str, object]) -> object:
        return self.v


class _Var(_Node):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def value(self, env: Mapping[str, object]) -> object:
        return _normalise(env.get(self.name))


class _Not(_Node):
    __slots__ = ("operand",)

    def __init__(self, operand: _Node) -> None:
        self.operand = operand

    def value(self, env: Mapping[str, object]) -> object:
        return not _truth(self.operand.value(env))


class _And(_Node):
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[_Node, ...]) -> None:
        self.parts = parts

    def value(self, env: Mapping[str, object]) -> object:
        return all(_truth(p.value(env)) for p in self.parts)


class _Or(_Node):
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[_Node, ...]) -> None:
        self.parts = parts

    def value(self, env: Mapping[str, object]) -> object:
        return any(_truth(p.value(env)) for p in self.parts)


class _Compare(_Node):
    __slots__ = ("first", "rest")

    def __init__(self, first: _Node, rest: tuple[tuple[str, _Node], ...]) -> None:
        self.first = first
        self.rest = rest

    def value(self, env: Mapping[str, object]) -> object:
        left = self.first.value(env)
        for op, node in self.rest:
            right = node.value(env)
            if not compare(left, op, right):
                return False
            left = right
        return True


@dataclass(frozen=True, eq=False)
class Condition:
    """A checked condition, ready to evaluate any number of times."""

    source: str
    refs: tuple[Ref, ...]
    comparisons: tuple[Comparison, ...]
    _root: _Node = field(repr=False)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(r.name for r in self.refs)

    def evaluate(self, env: Mapping[str, object]) -> bool:
        """True when the condition holds; never raises (a broken env counts as false)."""
        try:
            return _truth(self._root.value(env))
        except Exception:
            # Only an env whose values misbehave (e.g. a str subclass raising in __eq__)
            # can get here; a survey must keep going, so treat it as "does not hold".
            return False


# --- evaluation helpers -------------------------------------------------------------


def _normalise(value: object) -> object:
    """Map an env value onto the kinds conditions know; anything else is missing."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        items = []
        for item in value:
            if isinstance(item, bool | int | float | str):
                items.append(item)
        return tuple(items)
    return None


def _kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, tuple):
        return "list"
    return None


def _truth(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return True  # answered, even with 0
    if isinstance(value, str | tuple):
        return len(value) > 0
    return False


def _equal(a: object, b: object) -> bool:
    kind = _kind(a)
    if kind is None or kind != _kind(b):
        return False
    if kind == "list":
        assert isinstance(a, tuple) and isinstance(b, tuple)
        # Picks have no meaningful order: [a, b] equals [b, a].
        return all(any(_equal(x, y) for y in b) for x in a) and all(
            any(_equal(y, x) for x in a) for y in b
        )
    return a == b


def compare(left: object, op: str, right: object) -> bool:
    """One comparison under the condition language's rules (see the module docstring)."""
    if left is None or right is None:
        return False
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        kind = _kind(left)
        return kind is not None and kind == _kind(right) and not _equal(left, right)
    if op in ("in", "not in"):
        if not isinstance(right, tuple) or _kind(left) in (None, "list"):
            return False
        found = any(_equal(left, item) for item in right)
        return found if op == "in" else not found
    if _kind(left) == "number" and _kind(right) == "number":
        assert isinstance(left, int | float) and isinstance(right, int | float)
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        if op == ">=":
            return left >= right
    return False


# --- parsing ------------------------------------------------------------------------


def _char_column(line: str, byte_offset: int) -> int:
    """ast reports UTF-8 byte offsets; staff count characters (Arabic text is 2 bytes a letter)."""
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore")) + 1


def _syntax_hint(expr: str) -> tuple[str, int] | None:
    """Name the usual slips (`=`, `&&`, smart quotes, …) before Python's bare 'invalid syntax'."""
    depth = 0
    opened: list[int] = []
    i = 0
    n = len(expr)
    while i < n:
        ch = expr[i]
        col = i + 1
        if ch in "\"'":
            end = i + 1
            while end < n and expr[end] != ch:
                end += 2 if expr[end] == "\\" else 1
            if end >= n:
                return (f"unclosed quote {ch} (close it with another {ch})", col)
            i = end + 1
            continue
        nxt = expr[i + 1] if i + 1 < n else ""
        prev = expr[i - 1] if i > 0 else ""
        if ch in "“”„«»‘’":
            return (f"use straight quotes \" or ' around text, not {ch}", col)
        if ch == "=" and nxt != "=" and prev not in "=!<>":
            return ("use `==` to compare (a single `=` is not a comparison)", col)
        if ch == "&":
            return ("use `and` to join comparisons, not `&`", col)
        if ch == "|":
            return ("use `or` to join comparisons, not `|`", col)
        if ch == "!" and nxt != "=":
            return ("use `not` to negate, not `!`", col)
        if ch in "≤≥≠":
            ascii_op = {"≤": "<=", "≥": ">=", "≠": "!="}[ch]
            return (f"write `{ascii_op}` instead of `{ch}`", col)
        if ch in "([":
            depth += 1
            opened.append(col)
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                return (f"`{ch}` has no matching opening bracket", col)
            opened.pop()
        i += 1
    if opened:
        return ("this bracket is never closed", opened[-1])
    stripped = expr.rstrip()
    for op in ("not in", "==", "!=", "<=", ">=", "<", ">", " in", " and", " or", " not"):
        if stripped.endswith(op):
            message = f"the condition ends after `{op.strip()}`; finish it, e.g. {EXAMPLE}"
            return (message, len(stripped))
    return None


class _Builder:
    def __init__(self, line: str, lead: int) -> None:
        self.line = line
        self.lead = lead
        self.refs: list[Ref] = []
        self.comparisons: list[Comparison] = []

    def col(self, node: ast.AST) -> int:
        return _char_column(self.line, getattr(node, "col_offset", 0)) + self.lead

    def fail(self, message: str, node: ast.AST) -> ConditionError:
        return ConditionError(message, self.col(node))

    def literal(self, node: ast.expr) -> Constant | None:
        """The constant value of `node`, or None if it is not a constant."""
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool | int | float | str):
                return value
            if value is None:
                raise self.fail(
                    "`None` is not a value in conditions; an unanswered question already "
                    "makes every comparison false (see docs/flows.md)",
                    node,
                )
            raise self.fail(f"{value!r} is not a value conditions understand; {GRAMMAR}", node)
        if isinstance(node, ast.Name) and node.id in _BOOL_NAMES:
            return _BOOL_NAMES[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            number = node.operand.value if isinstance(node.operand, ast.Constant) else None
            if isinstance(number, int | float) and not isinstance(number, bool):
                return -number if isinstance(node.op, ast.USub) else number
            raise self.fail("a minus sign is only allowed in front of a number, e.g. `-1`", node)
        if isinstance(node, ast.List | ast.Tuple):
            items: list[Scalar] = []
            for elt in node.elts:
                item = self.literal(elt)
                if item is None or isinstance(item, tuple):
                    raise self.fail(
                        'a list in a condition holds only plain values, e.g. ["buyer", "user"]',
                        elt,
                    )
                items.append(item)
            return tuple(items)
        return None

    def operand(self, node: ast.expr) -> tuple[Operand, _Node]:
        value = self.literal(node)
        if value is not None:
            return Lit(value, self.col(node)), _Const(value)
        if isinstance(node, ast.Name):
            ref = Ref(node.id, self.col(node))
            self.refs.append(ref)
            return ref, _Var(node.id)
        if type(node) in _REFUSED:
            raise self.fail(_REFUSED[type(node)], node)
        raise self.fail(
            "each side of a comparison must be a name or a value, e.g. `nps <= 6`; "
            "join comparisons with `and`/`or` instead of nesting them",
            node,
        )

    def build(self, node: ast.expr, depth: int = 0) -> _Node:
        if depth > MAX_DEPTH:
            raise self.fail("this condition is nested too deeply; split it up", node)
        if isinstance(node, ast.BoolOp):
            parts = tuple(self.build(v, depth + 1) for v in node.values)
            return _And(parts) if isinstance(node.op, ast.And) else _Or(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return _Not(self.build(node.operand, depth + 1))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
            raise self.fail("`~` is not allowed in conditions; use `not` to negate", node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Tuple) and not all(
            isinstance(e, ast.Constant | ast.UnaryOp | ast.Name) for e in node.elts
        ):
            raise self.fail("a condition is one expression; remove the comma or use `and`", node)
        _, built = self.operand(node)
        return built

    def compare(self, node: ast.Compare) -> _Node:
        left, left_node = self.operand(node.left)
        rest: list[tuple[str, _Node]] = []
        for op_node, right_expr in zip(node.ops, node.comparators, strict=True):
            op = _OPS.get(type(op_node))
            if op is None:
                word = "is not" if isinstance(op_node, ast.IsNot) else "is"
                raise self.fail(
                    f"`{word}` is not allowed in conditions; use `==` or `!=`", right_expr
                )
            right, right_node = self.operand(right_expr)
            if op in ("in", "not in"):
                if isinstance(right, Lit) and not isinstance(right.value, tuple):
                    raise self.fail(
                        f"`{op}` needs a list on its right, e.g. "
                        '`role in ["buyer", "user"]` or `"price" in reasons`',
                        right_expr,
                    )
                if isinstance(left, Lit) and isinstance(left.value, tuple):
                    raise self.fail(
                        f'the left side of `{op}` must be one value, e.g. `"price" in reasons`',
                        node.left,
                    )
            self.comparisons.append(Comparison(left, op, right))
            rest.append((op, right_node))
            left = right
        return _Compare(left_node, tuple(rest))


@lru_cache(maxsize=2048)
def parse(expr: str) -> Condition:
    """Check `expr` and return its Condition; raises ConditionError (only) when invalid."""
    if not isinstance(expr, str):
        raise ConditionError("a condition must be text, e.g. `nps <= 6`", 1)
    if len(expr) > MAX_LENGTH:
        raise ConditionError(
            f"this condition is {len(expr)} characters long (at most {MAX_LENGTH}); split "
            "the question instead",
            1,
        )
    # YAML folds long plain scalars with newlines; a condition is one line of meaning.
    line = expr.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    body = line.lstrip()
    lead = len(line) - len(body)
    if not body.strip():
        raise ConditionError(f"the condition is empty; write one like {EXAMPLE}", 1)
    try:
        # Python's own warnings ("invalid decimal literal", "invalid escape sequence")
        # would leak to stderr; the error or hint below is what staff should see.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(body, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        hint = _syntax_hint(body)
        if hint is not None:
            message, column = hint
            raise ConditionError(message, column + lead) from None
        offset = getattr(exc, "offset", None) or 1
        column = max(1, min(offset, len(body))) + lead
        raise ConditionError(
            f"this is not a valid condition; {GRAMMAR}, e.g. {EXAMPLE}", column
        ) from None
    builder = _Builder(body, lead)
    try:
        root = builder.build(tree.body)
    except RecursionError:
        raise ConditionError("this condition is nested too deeply; split it up", 1) from None
    return Condition(
        source=expr,
        refs=tuple(builder.refs),
        comparisons=tuple(builder.comparisons),
        _root=root,
    )


def evaluate(expr: str, env: Mapping[str, object]) -> bool:
    """Parse (cached) and evaluate; raises ConditionError only if `expr` is invalid."""
    return parse(expr).evaluate(env)


def environment(
    answers: Mapping[str, object] | None = None,
    context: Mapping[str, object] | None = None,
    contact: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The names a condition or placeholder sees: answers win over context over contact.

    The linter reports flows where these overlap, so the order only matters for
    flows that ignored that report.
    """
    env: dict[str, object] = {}
    for layer in (contact, context, answers):
        if layer:
            env.update(layer)
    return env
