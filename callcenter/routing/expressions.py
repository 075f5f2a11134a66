"""TaskRouter's expression language: text -> tokens -> tree -> a cached Python closure.

Grammar (keywords case-insensitive):
    expression := and_expr (OR and_expr)*          AND binds tighter than OR; both left-associative
    and_expr   := primary (AND primary)*
    primary    := '(' expression ')' | operand OPERATOR operand
    operand    := key | literal | '[' (literal (',' literal)*)? ']'
    key        := name ('.' name | '[' digits ']')*     name = [A-Za-z_$][A-Za-z0-9_$]*
    literal    := 'str' | "str" (escapes \\' \\" \\\\) | -1 | 1.5 | true | false | null
    OPERATOR   := == (=) | != | > | >= | < | <= | IN (<-) | NOT IN | HAS (>-) | CONTAINS
A bare operand is an error; there is no unary NOT. `>-`/`<-` are always the HAS/IN aliases, so write
`x > -1` with a space. Keywords (and or in not has contains true false null) cannot start a key, but may
follow a dot (`task.type`, `task.in`).

Semantics (values are JSON values; bool is not a number):
    ==        null==null; numbers numerically; strings exactly; arrays/objects or mixed types -> false
    !=        null vs non-null -> true (presence test); arrays/objects -> false; otherwise not ==
    > >= < <= both numbers or both strings, else false
    IN        scalar left, array right: any element == left;  NOT IN: same preconditions, negated
    HAS       array left, scalar right: any element == right;  CONTAINS: both strings, substring
A missing key, an out-of-range index or an index into a non-array resolves to null; evaluation never raises.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from callcenter.routing.errors import InvalidParameter

MAX_LENGTH = 4096
MAX_NESTING = 64  # keeps the recursive-descent parser far from Python's recursion limit

KEYWORDS = frozenset({"and", "or", "in", "not", "has", "contains", "true", "false", "null"})
_LITERAL_KEYWORDS = {"true": True, "false": False, "null": None}
_WORD_OPERATORS = {"in": "IN", "has": "HAS", "contains": "CONTAINS"}
_SYMBOL_OPERATORS = {
    "==": "==", "=": "==", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<=", ">-": "HAS", "<-": "IN",
}

_TOKEN = re.compile(
    r"(?P<ws>[ \t\r\n]+)"
    r"""|(?P<string>'(?:[^'\\]|\\[\s\S])*'|"(?:[^"\\]|\\[\s\S])*")"""
    r"|(?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)"
    r"|(?P<op>==|!=|>=|<=|>-|<-|=|>|<)"
    r"|(?P<punct>[()\[\],.])"
)
_NAME_END = re.compile(r"[A-Za-z0-9_$\]]")
_ESCAPE = re.compile(r"""\\(['"\\])""")  # only \' \" \\ are escapes; other backslashes stay


class ExpressionError(InvalidParameter):
    """An expression (or order_by) that does not parse; says where and what was expected (Twilio 20001)."""

    def __init__(self, field: str, text: str, column: int, expected: str) -> None:
        super().__init__(f"{field}: {expected} at column {column}")
        self.field, self.text, self.column, self.expected = field, text, column, expected


# --- lexer -----------------------------------------------------------------------------------------

class Token(NamedTuple):
    kind: str  # "string", "number", "name", "op", one of "()[],.", or "eof"
    value: object
    start: int  # 0-based offset; column is start + 1
    end: int


def tokenize(text: str, field: str = "expression") -> list[Token]:
    """Split `text` into tokens, ending with an "eof" token; ExpressionError on a bad character."""
    tokens: list[Token] = []
    pos, size = 0, len(text)
    while pos < size:
        char = text[pos]
        if char == "-" and pos and _NAME_END.match(text, pos - 1):
            # `my-key` would otherwise lex as `my` and `-key`; hyphens are not allowed in keys.
            raise ExpressionError(field, text, pos + 1, "unexpected character '-'")
        match = _TOKEN.match(text, pos)
        if match is None:
            problem = "unterminated string" if char in "'\"" else f"unexpected character {char!r}"
            raise ExpressionError(field, text, pos + 1, problem)
        kind, raw, end = match.lastgroup, match.group(), match.end()
        if kind == "string":
            tokens.append(Token(kind, _ESCAPE.sub(r"\1", raw[1:-1]), pos, end))
        elif kind == "number":
            tokens.append(Token(kind, float(raw) if any(c in raw for c in ".eE") else int(raw), pos, end))
        elif kind == "punct":
            tokens.append(Token(raw, raw, pos, end))
        elif kind != "ws":
            tokens.append(Token(kind, raw, pos, end))
        pos = end
    tokens.append(Token("eof", None, size, size))
    return tokens


# --- tree ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Literal:
    value: object  # arrays are tuples so nodes stay hashable


@dataclass(frozen=True)
class Key:
    path: str  # canonical text, e.g. "object.array[2]"
    segments: tuple[str | int, ...]


@dataclass(frozen=True)
class Compare:
    op: str  # canonical: == != > >= < <= IN "NOT IN" HAS CONTAINS
    left: Key | Literal
    right: Key | Literal
    text: str


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Or | And | Compare


# --- parser ----------------------------------------------------------------------------------------

class Parser:
    """Recursive descent over the token list; every error names the offending token's column."""

    def __init__(self, text: str, field: str, roots: frozenset[str] | None = None) -> None:
        if len(text) > MAX_LENGTH:
            raise ExpressionError(field, text, MAX_LENGTH + 1, f"text longer than {MAX_LENGTH} characters")
        self.text, self.field, self.roots = text, field, roots
        self.tokens = tokenize(text, field)
        self.pos = self.depth = 0

    def fail(self, token: Token, expected: str) -> ExpressionError:
        return ExpressionError(self.field, self.text, token.start + 1, expected)

    def describe(self, token: Token) -> str:
        return "end of text" if token.kind == "eof" else repr(self.text[token.start:token.end])

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += token.kind != "eof"
        return token

    def expect(self, kind: str, expected: str) -> Token:
        token = self.advance()
        if token.kind != kind:
            raise self.fail(token, expected.format(found=self.describe(token)))
        return token

    def since(self, token: Token) -> str:  # source text from `token` through the last consumed token
        return self.text[token.start:self.tokens[self.pos - 1].end]

    @staticmethod
    def is_word(token: Token, *words: str) -> bool:
        return token.kind == "name" and token.value.lower() in words

    def parse_expression(self) -> Node:
        if self.peek().kind == "eof":
            raise self.fail(self.peek(), "expected an expression")
        node = self.parse_or(None)
        if self.peek().kind != "eof":
            raise self.fail(self.peek(), f"unexpected {self.describe(self.peek())}, expected AND or OR")
        return node

    def parse_or(self, after: Token | None) -> Node:
        items = [self.parse_and(after)]
        while self.is_word(self.peek(), "or"):
            items.append(self.parse_and(self.advance()))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self, after: Token | None) -> Node:
        items = [self.parse_primary(after)]
        while self.is_word(self.peek(), "and"):
            items.append(self.parse_primary(self.advance()))
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_primary(self, after: Token | None) -> Node:
        token = self.peek()
        if token.kind == "(":
            self.advance()
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.fail(token, f"parentheses nested deeper than {MAX_NESTING}")
            node = self.parse_or(token)
            self.expect(")", "expected ')', found {found}")
            self.depth -= 1
            return node
        if self.starts_operand(token):
            return self.parse_compare()
        if after is None:
            raise self.fail(token, f"expected a condition, found {self.describe(token)}")
        raise self.fail(token, f"expected a condition after {self.describe(after)}")

    @staticmethod
    def starts_operand(token: Token) -> bool:
        if token.kind == "name":
            return token.value.lower() not in KEYWORDS or token.value.lower() in _LITERAL_KEYWORDS
        return token.kind in ("string", "number", "[")

    def parse_compare(self) -> Compare:
        first = self.peek()
        left = self.parse_operand()
        left_text = self.since(first)
        op_token = self.advance()
        if op_token.kind == "op":
            op = _SYMBOL_OPERATORS[op_token.value]
        elif self.is_word(op_token, *_WORD_OPERATORS):
            op = _WORD_OPERATORS[op_token.value.lower()]
        elif self.is_word(op_token, "not"):
            in_token = self.advance()
            if not self.is_word(in_token, "in"):
                raise self.fail(in_token, "expected IN after 'NOT'")
            op = "NOT IN"
        else:
            raise self.fail(op_token, f"expected an operator after {left_text!r}")
        if not self.starts_operand(self.peek()):
            raise self.fail(self.peek(), f"expected a value after {self.since(op_token)!r}")
        right = self.parse_operand()
        return Compare(op, left, right, self.since(first))

    def parse_operand(self) -> Key | Literal:
        token = self.advance()
        if token.kind in ("string", "number"):
            return Literal(token.value)
        if token.kind == "[":
            return Literal(self.parse_array())
        if token.value.lower() in _LITERAL_KEYWORDS:
            return Literal(_LITERAL_KEYWORDS[token.value.lower()])
        return self.parse_key(token)

    def parse_array(self) -> tuple[object, ...]:
        values: list[object] = []
        if self.peek().kind == "]":
            self.advance()
            return ()
        while True:
            token = self.advance()
            if token.kind in ("string", "number"):
                values.append(token.value)
            elif token.kind == "name" and token.value.lower() in _LITERAL_KEYWORDS:
                values.append(_LITERAL_KEYWORDS[token.value.lower()])
            elif token.kind == "name":
                raise self.fail(token, f"keys are not allowed in an array literal, found {self.describe(token)}")
            else:
                raise self.fail(token, f"expected a literal in the array, found {self.describe(token)}")
            separator = self.advance()
            if separator.kind == "]":
                return tuple(values)
            if separator.kind != ",":
                raise self.fail(separator, f"expected ',' or ']' in the array, found {self.describe(separator)}")

    def parse_key(self, first: Token) -> Key:
        segments: list[str | int] = [first.value]
        path = first.value
        while self.peek().kind in (".", "["):
            if self.advance().kind == ".":
                name = self.expect("name", "expected a key name after '.', found {found}")
                segments.append(name.value)
                path += f".{name.value}"
            else:
                index = self.advance()
                if index.kind != "number" or not self.text[index.start:index.end].isdigit():
                    raise self.fail(index, f"expected a non-negative integer index, found {self.describe(index)}")
                self.expect("]", "expected ']', found {found}")
                segments.append(index.value)
                path += f"[{index.value}]"
        if self.roots is not None and segments[0] not in self.roots:
            prefixes = " or ".join(f"{root}." for root in sorted(self.roots))
            raise self.fail(first, f"key {path!r} must start with {prefixes}")
        return Key(path, tuple(segments))


# --- semantics -------------------------------------------------------------------------------------

def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float))  # bool is an int subclass


def _eq(left: object, right: object) -> bool:
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool) or isinstance(right, bool):  # before numbers: True must not equal 1
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_number(left):
        return _is_number(right) and left == right
    return isinstance(left, str) and isinstance(right, str) and left == right


def _ne(left: object, right: object) -> bool:
    if left is None or right is None:
        return not (left is None and right is None)  # so `preferred_agents != null` tests presence
    return _is_scalar(left) and _is_scalar(right) and not _eq(left, right)


def _ordering(compare: Callable[[object, object], bool]) -> Callable[[object, object], bool]:
    def test(left: object, right: object) -> bool:
        if (_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str)):
            return compare(left, right)
        return False
    return test


def _member(needle: object, array: list | tuple) -> bool:
    if isinstance(needle, str):
        return needle in array  # a str equals only a str, so Python's `in` already follows the == rule
    return any(_eq(needle, item) for item in array)


def _in(left: object, right: object) -> bool:
    return isinstance(right, (list, tuple)) and _is_scalar(left) and _member(left, right)


def _not_in(left: object, right: object) -> bool:
    return isinstance(right, (list, tuple)) and _is_scalar(left) and not _member(left, right)


def _contains(left: object, right: object) -> bool:
    return isinstance(left, str) and isinstance(right, str) and right in left


_TESTS: dict[str, Callable[[object, object], bool]] = {
    "==": _eq, "!=": _ne, "IN": _in, "NOT IN": _not_in, "HAS": lambda left, right: _in(right, left), "CONTAINS": _contains,
    ">": _ordering(operator.gt), ">=": _ordering(operator.ge), "<": _ordering(operator.lt), "<=": _ordering(operator.le),
}


def _walk(value: object, segments: tuple[str | int, ...]) -> object:
    for segment in segments:
        if isinstance(segment, int):
            if not isinstance(value, (list, tuple)) or segment >= len(value):
                return None
            value = value[segment]
        elif isinstance(value, Mapping):
            value = value.get(segment)
        else:
            return None
    return value


# --- compiler --------------------------------------------------------------------------------------

Evaluator = Callable[[Mapping], bool]


def _getter(operand: Key | Literal) -> Callable[[object], object]:
    if isinstance(operand, Literal):
        value = operand.value
        return lambda env: value
    segments = operand.segments
    if len(segments) == 1:
        # The common TargetWorkers shape (`skills HAS 'x'`): skip the loop for a top-level dict key.
        name = segments[0]
        return lambda env: env.get(name) if isinstance(env, dict) else _walk(env, segments)
    return lambda env: _walk(env, segments)


def _compile(node: Node) -> Evaluator:
    if isinstance(node, Compare):
        test, left, right = _TESTS[node.op], node.left, node.right
        if isinstance(left, Literal) and isinstance(right, Literal):
            constant = test(left.value, right.value)
            return lambda env: constant
        if isinstance(right, Literal):  # the usual shape (`key OP literal`): one call fewer per evaluation
            get_left, value = _getter(left), right.value
            return lambda env: test(get_left(env), value)
        get_left, get_right = _getter(left), _getter(right)
        return lambda env: test(get_left(env), get_right(env))
    parts = tuple(_compile(item) for item in node.items)
    if len(parts) == 2:  # the usual shape; avoids a loop per evaluation
        first, second = parts
        if isinstance(node, And):
            return lambda env: first(env) and second(env)
        return lambda env: first(env) or second(env)
    if isinstance(node, And):
        return lambda env: all(part(env) for part in parts)
    return lambda env: any(part(env) for part in parts)


def _comparisons(node: Node) -> list[Compare]:
    if isinstance(node, Compare):
        return [node]
    return [compare for item in node.items for compare in _comparisons(item)]


@dataclass(frozen=True)
class Clause:
    """One comparison of an expression as evaluated against one environment."""

    text: str
    left: object
    right: object
    result: bool


@dataclass(frozen=True)
class Expression:
    """A compiled expression: call it with an environment mapping to get a bool."""

    text: str
    field: str
    keys: frozenset[str]
    tree: Node = dataclasses.field(repr=False, compare=False)
    _evaluate: Evaluator = dataclasses.field(repr=False, compare=False)

    def __call__(self, env: Mapping) -> bool:
        return self._evaluate(env)

    def explain(self, env: Mapping) -> list[Clause]:
        """Every comparison in source order with its resolved operands and result (no short-circuit)."""
        clauses = []
        for compare in _comparisons(self.tree):
            left, right = _getter(compare.left)(env), _getter(compare.right)(env)
            clauses.append(Clause(compare.text, _plain(left), _plain(right), _TESTS[compare.op](left, right)))
        return clauses


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value  # array literals are tuples internally


def compile_expression(text: str, field: str = "expression", roots: frozenset[str] | None = None) -> Expression:
    """Parse and compile `text` once (cached); ExpressionError names the column and what was expected."""
    return _compile_cached(text, field, frozenset(roots) if roots is not None else None)


@lru_cache(maxsize=4096)
def _compile_cached(text: str, field: str, roots: frozenset[str] | None) -> Expression:
    tree = Parser(text, field, roots).parse_expression()
    keys = frozenset(
        operand.path for compare in _comparisons(tree) for operand in (compare.left, compare.right)
        if isinstance(operand, Key)
    )
    return Expression(text, field, keys, tree, _compile(tree))


@lru_cache(maxsize=1024)
def parse_order_by(text: str, field: str = "order_by") -> tuple[tuple[str, bool], ...]:
    """`"worker.a ASC, worker.b DESC"` -> `(("worker.a", False), ("worker.b", True))`; blank -> `()`."""
    if not text.strip():
        return ()
    parser = Parser(text, field, frozenset({"worker"}))
    order: list[tuple[str, bool]] = []
    while True:
        token = parser.advance()
        if token.kind != "name" or token.value.lower() in KEYWORDS:
            raise parser.fail(token, f"expected a worker. key, found {parser.describe(token)}")
        key = parser.parse_key(token)
        if len(key.segments) < 2:
            raise parser.fail(token, f"key {key.path!r} must start with worker.")
        direction = parser.advance().value.lower() if parser.is_word(parser.peek(), "asc", "desc") else "asc"
        order.append((key.path, direction == "desc"))
        separator = parser.advance()
        if separator.kind == "eof":
            return tuple(order)
        if separator.kind != ",":
            raise parser.fail(separator, f"expected ASC, DESC or ',', found {parser.describe(separator)}")


_PATH_PART = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]*)((?:\[[0-9]+\])*)\Z")


@lru_cache(maxsize=4096)
def _split_path(path: str) -> tuple[str | int, ...] | None:
    segments: list[str | int] = []
    for part in path.split("."):
        match = _PATH_PART.match(part)
        if match is None:
            return None
        segments.append(match.group(1))
        segments.extend(int(index) for index in re.findall(r"[0-9]+", match.group(2)))
    return tuple(segments)


def resolve(env: Mapping, path: str) -> object:
    """Value at a dotted path with `[n]` indexes (`"object.array[2]"`); None when missing. Never raises."""
    if not isinstance(path, str):
        return None
    segments = _split_path(path)
    return None if segments is None else _walk(env, segments)
