"""TaskRouter expression language: evaluation rules, error messages, keys, explain, order_by, resolve."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.routing.errors import InvalidParameter
from callcenter.routing.expressions import (
    Clause,
    ExpressionError,
    compile_expression,
    parse_order_by,
    resolve,
)

DOCS_ATTRIBUTES = {"string_const": "foo", "object": {"array": ["a", "b", "c"], "attr": "bar"}}

# (expression, env, expected result)
EVALUATIONS = [
    # every example from reference section 2
    ("1 == 1", {}, True),
    ("1==0", {}, False),
    ("0 != 1", {}, True),
    ('"apple" != "orange"', {}, True),
    ("key > 1", {"key": 2}, True),
    ("key > 1", {"key": 1}, False),
    ('object.param != "apple"', {"object": {"param": "pear"}}, True),
    ('object.param != "apple"', {"object": {"param": "apple"}}, False),
    ('language IN ["en", "es"]', {"language": "es"}, True),
    ('language IN ["en", "es"]', {"language": "fr"}, False),
    ("(condition_a == true) OR (condition_b == true)", {"condition_b": True}, True),
    ("(condition_a == true) OR (condition_b == true)", {"condition_a": False}, False),
    ('(language == "en" OR language == "fr") AND skill_rating >= 5.1', {"language": "fr", "skill_rating": 5.1}, True),
    ('(language == "en" OR language == "fr") AND skill_rating >= 5.1', {"language": "fr", "skill_rating": 5}, False),
    ("(skills HAS 'support') AND (languages HAS 'english')", {"skills": ["support"], "languages": ["english"]}, True),
    ("(skills HAS 'support') AND (languages HAS 'english')", {"skills": ["support"], "languages": ["es"]}, False),
    ("tech_support_skill > 5", {"tech_support_skill": 6}, True),
    ("customer_value == 'Gold' AND type == 'ticket'", {"customer_value": "Gold", "type": "ticket"}, True),
    ("customer_value == 'Gold' AND type == 'ticket'", {"customer_value": "Gold", "type": "call"}, False),
    ("type == 'ticket' AND customer_value IN ['Silver','Bronze']", {"type": "ticket", "customer_value": "Bronze"}, True),
    ("string_const == 'foo'", DOCS_ATTRIBUTES, True),
    ("object.array[2] == 'c'", DOCS_ATTRIBUTES, True),
    ("object.attr == 'bar'", DOCS_ATTRIBUTES, True),
    ("object.array HAS 'b'", DOCS_ATTRIBUTES, True),
    ("task.required_language IN worker.spoken_languages",
     {"task": {"required_language": "de"}, "worker": {"spoken_languages": ["en", "de"]}}, True),
    ("task.required_language IN worker.spoken_languages",
     {"task": {"required_language": "fr"}, "worker": {"spoken_languages": ["en", "de"]}}, False),
    ("task.requested_agent == worker.agent_id", {"task": {"requested_agent": 7}, "worker": {"agent_id": 7}}, True),
    ("worker.id IN task.preferred_agents", {"task": {"preferred_agents": ["a"]}, "worker": {"id": "a"}}, True),
    ("worker.channel.voice.assigned_tasks == 0", {"worker": {"channel": {"voice": {"assigned_tasks": 0}}}}, True),
    ("worker.channel.voice.assigned_tasks == 0", {"worker": {"channel": {"voice": {"assigned_tasks": 1}}}}, False),
    ("workers.available == 0", {"workers": {"available": 0, "unavailable": 3}}, True),
    ("workers.WAxx < 2 OR workers.WAyy < 2", {"workers": {"WAxx": 2, "WAyy": 1}}, True),
    ("workers.WAxx < 2 OR workers.WAyy < 2", {"workers": {"WAxx": 2, "WAyy": 5}}, False),
    ("activity_name contains 'MNO'", {"activity_name": "Available MNO"}, True),
    ("worker.activity_name in ['Generally Available','High Value Tasks']",
     {"worker": {"activity_name": "High Value Tasks"}}, True),
    # each operator, true and false
    ("x == 'a'", {"x": "a"}, True),
    ("x == 'a'", {"x": "A"}, False),
    ("x != 'a'", {"x": "b"}, True),
    ("x != 'a'", {"x": "a"}, False),
    ("x > 1", {"x": 1.5}, True),
    ("x > 1", {"x": 0}, False),
    ("x >= 1", {"x": 1}, True),
    ("x >= 1", {"x": 0.9}, False),
    ("x < 1", {"x": -1}, True),
    ("x < 1", {"x": 1}, False),
    ("x <= 1", {"x": 1.0}, True),
    ("x <= 1", {"x": 2}, False),
    ("x IN [1, 2]", {"x": 2}, True),
    ("x IN [1, 2]", {"x": 3}, False),
    ("x NOT IN [1, 2]", {"x": 3}, True),
    ("x NOT IN [1, 2]", {"x": 1}, False),
    ("x HAS 'a'", {"x": ["a", "b"]}, True),
    ("x HAS 'z'", {"x": ["a", "b"]}, False),
    ("x CONTAINS 'ell'", {"x": "hello"}, True),
    ("x CONTAINS 'ELL'", {"x": "hello"}, False),
    # aliases and keyword case
    ("x = 'a'", {"x": "a"}, True),
    ("x >- 'a'", {"x": ["a"]}, True),
    ("x <- ['a']", {"x": "a"}, True),
    ("x in ['a']", {"x": "a"}, True),
    ("x In ['a']", {"x": "a"}, True),
    ("x not in ['a']", {"x": "b"}, True),
    ("x has 'a' and y contains 'b'", {"x": ["a"], "y": "abc"}, True),
    ("x == 1 or y == 1", {"y": 1}, True),
    ("x == TRUE", {"x": True}, True),
    ("x == False", {"x": False}, True),
    ("x == NULL", {}, True),
    ("1==1", {}, True),
    ("x>=1", {"x": 1}, True),
    ("(x==1)AND(y==2)", {"x": 1, "y": 2}, True),
    # precedence: AND binds tighter than OR, parentheses override
    ("a == 1 OR b == 1 AND c == 1", {"a": 1}, True),
    ("(a == 1 OR b == 1) AND c == 1", {"a": 1}, False),
    ("a == 1 AND b == 1 OR c == 1", {"c": 1}, True),
    ("a == 1 AND (b == 1 OR c == 1)", {"c": 1}, False),
    ("a == 1 AND b == 1 AND c == 1", {"a": 1, "b": 1, "c": 1}, True),
    ("a == 1 OR b == 1 OR c == 1", {"c": 1}, True),
    ("((a == 1))", {"a": 1}, True),
    # == rules: numbers numerically, strings exactly, bool is not a number, arrays never equal
    ("x == 1", {"x": 1.0}, True),
    ("x == 1.5", {"x": 1.5}, True),
    ("x == -1", {"x": -1}, True),
    ("x == 1", {"x": True}, False),
    ("x == true", {"x": 1}, False),
    ("x == '1'", {"x": 1}, False),
    ("x == 'a'", {"x": ["a"]}, False),
    ("x == y", {"x": [1], "y": [1]}, False),
    ("x == y", {"x": {"a": 1}, "y": {"a": 1}}, False),
    ("[1] == [1]", {}, False),
    ("x == 'a'", {}, False),
    ("x == y", {}, True),
    ("x == null", {"x": 0}, False),
    # != rules: null tests presence, arrays false, mismatched scalar types true
    ("preferred_agents != null", {"preferred_agents": ["WK1"]}, True),
    ("preferred_agents != null", {}, False),
    ("x != null", {"x": {"a": 1}}, True),
    ("x != 'a'", {}, True),
    ("x != y", {}, False),
    ("x != 'a'", {"x": ["b"]}, False),
    ("x != 1", {"x": "1"}, True),
    ("x != 1", {"x": True}, True),
    ("x != 1", {"x": 1.0}, False),
    # ordering rules
    ("x > 'apple'", {"x": "banana"}, True),
    ("x < 'b'", {"x": "B"}, True),
    ("x > 1", {"x": "2"}, False),
    ("x > 0", {"x": True}, False),
    ("x > 0", {}, False),
    ("x >= 0", {"x": [1]}, False),
    ("x <= null", {"x": None}, False),
    # IN / NOT IN rules
    ("x IN 'abc'", {"x": "a"}, False),
    ("x IN [1]", {"x": [1]}, False),
    ("x IN [1]", {"x": True}, False),
    ("x IN [true]", {"x": True}, True),
    ("x IN [1.0]", {"x": 1}, True),
    ("x IN [null]", {}, True),
    ("x IN ['a']", {}, False),
    ("x IN []", {"x": "a"}, False),
    ("x NOT IN ['a']", {}, True),
    ("x NOT IN []", {"x": "a"}, True),
    ("x NOT IN 'abc'", {"x": "z"}, False),
    ("x NOT IN ['a']", {"x": ["b"]}, False),
    ("x NOT IN y", {"x": "a"}, False),
    # HAS / CONTAINS rules
    ("x HAS 'a'", {"x": "abc"}, False),
    ("x HAS 1", {"x": [1.0, 2]}, True),
    ("x HAS 1", {"x": [True]}, False),
    ("x HAS y", {"x": [["a"]], "y": ["a"]}, False),
    ("x HAS 'a'", {}, False),
    ("x HAS null", {"x": [None]}, True),
    ("x CONTAINS 'a'", {"x": ["a"]}, False),
    ("x CONTAINS 1", {"x": "a1"}, False),
    ("x CONTAINS ''", {"x": "abc"}, True),
    # missing keys and nested indexes
    ("a.b.c == 1", {"a": {"b": {"c": 1}}}, True),
    ("a.b.c == 1", {"a": {"b": 5}}, False),
    ("a.b[0].c == 1", {"a": {"b": [{"c": 1}]}}, True),
    ("a[1][0] == 'x'", {"a": [[], ["x"]]}, True),
    ("a[5] == null", {"a": [1]}, True),
    ("a[0] == null", {"a": {"0": 1}}, True),
    ("a.b == null", {"a": "string"}, True),
    ("a.b.c != null", {"a.b.c": 1}, False),
    ("$x == 1 AND _y == 2", {"$x": 1, "_y": 2}, True),
    ("task.type == 'x' AND task.in == 1", {"task": {"type": "x", "in": 1}}, True),
    # literals
    ("x == 'a\\'b'", {"x": "a'b"}, True),
    ('x == "a\\"b"', {"x": 'a"b'}, True),
    ("x == 'a\\\\b'", {"x": "a\\b"}, True),
    ("x == 'a-b c'", {"x": "a-b c"}, True),
    ("x == 1e3", {"x": 1000}, True),
    ("x > -1", {"x": 0}, True),
]


@pytest.mark.parametrize(("text", "env", "expected"), EVALUATIONS)
def test_expression_evaluates_to_expected_result(text: str, env: dict, expected: bool) -> None:
    assert compile_expression(text)(env) is expected


# (text, column, message after "F: ")
MALFORMED = [
    ("", 1, "expected an expression"),
    ("   ", 4, "expected an expression"),
    ("languages HAS", 14, "expected a value after 'HAS'"),
    ("languages has ", 15, "expected a value after 'has'"),
    ("x == ", 6, "expected a value after '=='"),
    ("x NOT IN AND", 10, "expected a value after 'NOT IN'"),
    ("x == )", 6, "expected a value after '=='"),
    ("vip", 4, "expected an operator after 'vip'"),
    ("vip AND x == 1", 5, "expected an operator after 'vip'"),
    ("a.b[1] 'x'", 8, "expected an operator after 'a.b[1]'"),
    ("my-key == 1", 3, "unexpected character '-'"),
    ("x == 1 # y", 8, "unexpected character '#'"),
    ("x == 'abc", 6, "unterminated string"),
    ("x == 'it''s'", 10, "unexpected \"'s'\", expected AND or OR"),  # no SQL-style '' escape
    ('x == "abc\\"', 6, "unterminated string"),
    ("(x == 1", 8, "expected ')', found end of text"),
    ("(x == 1 y", 9, "expected ')', found 'y'"),
    ("x == 1 foo", 8, "unexpected 'foo', expected AND or OR"),
    ("x == 1)", 7, "unexpected ')', expected AND or OR"),
    ("x == 1 AND", 11, "expected a condition after 'AND'"),
    ("x == 1 OR OR y == 1", 11, "expected a condition after 'OR'"),
    ("()", 2, "expected a condition after '('"),
    ("NOT x IN [1]", 1, "expected a condition, found 'NOT'"),
    ("== 1", 1, "expected a condition, found '=='"),
    ("x NOT == 1", 7, "expected IN after 'NOT'"),
    ("x NOT", 6, "expected IN after 'NOT'"),
    ("x IN [a]", 7, "keys are not allowed in an array literal, found 'a'"),
    ("x IN [1, y.z]", 10, "keys are not allowed in an array literal, found 'y'"),
    ("x IN [1,]", 9, "expected a literal in the array, found ']'"),
    ("x IN [[1]]", 7, "expected a literal in the array, found '['"),
    ("x IN [1 2]", 9, "expected ',' or ']' in the array, found '2'"),
    ("x IN [1", 8, "expected ',' or ']' in the array, found end of text"),
    ("a[x] == 1", 3, "expected a non-negative integer index, found 'x'"),
    ("a[-1] == 1", 3, "expected a non-negative integer index, found '-1'"),
    ("a[1.5] == 1", 3, "expected a non-negative integer index, found '1.5'"),
    ("a[1 == 1", 5, "expected ']', found '=='"),
    ("a[", 3, "expected a non-negative integer index, found end of text"),
    ("a. == 1", 4, "expected a key name after '.', found '=='"),
    ("a.1 == 1", 3, "expected a key name after '.', found '1'"),
    ("in == 1", 1, "expected a condition, found 'in'"),
    ("x == and", 6, "expected a value after '=='"),
    ("x" * 4097, 4097, "text longer than 4096 characters"),
    ("(" * 65 + "x == 1" + ")" * 65, 65, "parentheses nested deeper than 64"),
]


@pytest.mark.parametrize(("text", "column", "expected"), MALFORMED)
def test_malformed_expression_names_field_column_and_expectation(text: str, column: int, expected: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, "F")
    error = caught.value
    assert (error.field, error.column, error.expected, error.text) == ("F", column, expected, text)
    assert str(error) == f"F: {expected} at column {column}"


def test_expression_error_is_an_invalid_parameter_with_code_20001() -> None:
    with pytest.raises(InvalidParameter) as caught:
        compile_expression("languages HAS", "TargetWorkers")
    assert (caught.value.code, caught.value.status) == (20001, 400)
    assert str(caught.value) == "TargetWorkers: expected a value after 'HAS' at column 14"


def test_expression_at_length_limit_compiles() -> None:
    text = "x == '" + "a" * (4096 - 7) + "'"
    assert len(text) == 4096
    assert compile_expression(text)({"x": "a" * 4089})


def test_roots_accept_keys_under_allowed_prefixes() -> None:
    expression = compile_expression("task.language == worker.language", roots=frozenset({"task", "worker"}))
    assert expression({"task": {"language": "en"}, "worker": {"language": "en"}})


def test_roots_reject_a_key_without_prefix() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression("language == 'en'", "TargetExpression", frozenset({"task", "worker"}))
    assert str(caught.value) == "TargetExpression: key 'language' must start with task. or worker. at column 1"


def test_roots_are_case_sensitive_and_checked_on_every_key() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression("task.a == 1 AND Worker.b == 2", "T", frozenset({"task", "worker"}))
    assert caught.value.column == 17


def test_roots_accept_any_iterable_of_names() -> None:
    assert compile_expression("task.a == 1", roots={"task"})({"task": {"a": 1}})  # type: ignore[arg-type]


def test_compiled_expression_is_cached() -> None:
    assert compile_expression("x == 1") is compile_expression("x == 1")
    assert compile_expression("x == 1", roots=frozenset({"x"})) is not compile_expression("x == 1")


def test_keys_lists_every_referenced_path() -> None:
    expression = compile_expression("task.language IN worker.skills AND object.array[2] == 'c' OR 1 == 1")
    assert expression.keys == frozenset({"task.language", "worker.skills", "object.array[2]"})


def test_keys_is_empty_for_constant_expression() -> None:
    assert compile_expression("1 == 1").keys == frozenset()


def test_expression_keeps_text_and_field() -> None:
    expression = compile_expression("x == 1", "filter 'Gold' expression")
    assert (expression.text, expression.field) == ("x == 1", "filter 'Gold' expression")


def test_explain_lists_every_comparison_in_source_order_without_short_circuit() -> None:
    expression = compile_expression("(languages HAS 'en') OR (x == 1 AND level >= 2)")
    clauses = expression.explain({"languages": ["en"], "level": 3})
    assert clauses == [
        Clause("languages HAS 'en'", ["en"], "en", True),
        Clause("x == 1", None, 1, False),
        Clause("level >= 2", 3, 2, True),
    ]


def test_explain_reports_array_literals_as_lists() -> None:
    [clause] = compile_expression("language IN ['en', 'es']").explain({"language": "es"})
    assert clause == Clause("language IN ['en', 'es']", "es", ["en", "es"], True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("worker.finance ASC, worker.support DESC", (("worker.finance", False), ("worker.support", True))),
        ("worker.level", (("worker.level", False),)),
        ("worker.a desc,worker.b asc", (("worker.a", True), ("worker.b", False))),
        ("worker.skills[0] Desc", (("worker.skills[0]", True),)),
        ("", ()),
    ],
)
def test_order_by_parses_keys_and_directions(text: str, expected: tuple) -> None:
    assert parse_order_by(text) == expected


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        ("task.level ASC", 1, "key 'task.level' must start with worker."),
        ("level", 1, "key 'level' must start with worker."),
        ("worker ASC", 1, "key 'worker' must start with worker."),
        ("worker.a UP", 10, "expected ASC, DESC or ',', found 'UP'"),
        ("worker.a,", 10, "expected a worker. key, found end of text"),
        ("worker.a ASC DESC", 14, "expected ASC, DESC or ',', found 'DESC'"),
        ("worker.a-b", 9, "unexpected character '-'"),
    ],
)
def test_malformed_order_by_is_rejected_with_position(text: str, column: int, expected: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_order_by(text, "order_by")
    assert str(caught.value) == f"order_by: {expected} at column {column}"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("string_const", "foo"),
        ("object.array", ["a", "b", "c"]),
        ("object.array[2]", "c"),
        ("object.attr", "bar"),
        ("object.array[3]", None),
        ("object.missing.deeper", None),
        ("object.attr[0]", None),
        ("object[0]", None),
        ("object..attr", None),
        ("", None),
        ("object.array[x]", None),
    ],
)
def test_resolve_walks_dotted_paths_and_indexes(path: str, expected: object) -> None:
    assert resolve(DOCS_ATTRIBUTES, path) == expected


def test_resolve_walks_channel_paths() -> None:
    env = {"worker": {"channel": {"voice": {"assigned_tasks": 2}}}}
    assert resolve(env, "worker.channel.voice.assigned_tasks") == 2


def test_resolve_never_raises_on_odd_input() -> None:
    assert resolve(None, "a.b") is None  # type: ignore[arg-type]
    assert resolve({"a": 1}, None) is None  # type: ignore[arg-type]


NAMES = ["x", "y", "a", "b", "skills", "languages", "task", "worker", "workers", "0"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=3), children, max_size=4),
    max_leaves=20,
)
HOSTILE_EXPRESSIONS = [
    "(skills HAS 'support') AND (languages HAS 'english')",
    "x == y OR x != y OR x > y OR x >= y OR x < y OR x <= y",
    "x IN y OR x NOT IN y OR x HAS y OR x CONTAINS y",
    "a.b[0].x[1] == 1 OR a[2] IN [1, 'a', null, true, 1.5]",
    "task.a IN worker.b AND workers.available > 0",
    "x CONTAINS 'a' AND y NOT IN [] OR y HAS null",
]


@settings(max_examples=200, deadline=None, database=None)
@given(env=st.dictionaries(st.sampled_from(NAMES), JSON, max_size=6) | JSON)
def test_evaluation_and_explain_never_raise_on_arbitrary_json(env: object) -> None:
    for text in HOSTILE_EXPRESSIONS:
        expression = compile_expression(text)
        result = expression(env)  # type: ignore[arg-type]
        assert isinstance(result, bool)
        clauses = expression.explain(env)  # type: ignore[arg-type]
        assert all(isinstance(clause.result, bool) for clause in clauses)
