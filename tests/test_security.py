"""Attempts to make matgrad run code, touch files, or run out of time or memory.

One test per attempt. Each asserts the exact error and that nothing ran: no sample was drawn
and no expression evaluated (a spy on the engine), and Python raised none of the audit events
of running code, importing, opening files or starting processes (an audit hook, PEP 578).

This list only grows: when a new attempt is found, add it here with its fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.engine.core import Settings, check_identity
from matgrad.errors import ExprError, LimitError
from matgrad.lang.expr import Scope, bind, parse
from matgrad.limits import DEFAULT_LIMITS, Limits
from matgrad.results import IdentityResult
from matgrad.spec.schema import Identity, Invalid, load_all, load_text, validate

# ---- the two witnesses that nothing ran ---------------------------------------------------

_RECORDERS: list[list[tuple[str, tuple[Any, ...]]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _RECORDERS:
        _RECORDERS[-1].append((event, args))


sys.addaudithook(_audit)  # permanent for the process, but inert outside `audited()`

# Audit events (https://docs.python.org/3/library/audit_events.html) that mean code ran,
# a module was imported, a file opened, a process started or the network used.
FORBIDDEN = (
    "exec",
    "import",
    "open",
    "os.",
    "subprocess.",
    "socket.",
    "shutil.",
    "ctypes.",
    "urllib.",
    "http.",
    "pickle.",
    "marshal.",
    "code.__new__",
    "function.__new__",
    "builtins.input",
    "webbrowser.",
)


@contextlib.contextmanager
def audited() -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    events: list[tuple[str, tuple[Any, ...]]] = []
    _RECORDERS.append(events)
    try:
        yield events
    finally:
        _RECORDERS.pop()


def forbidden(events: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, tuple[Any, ...]]]:
    return [(e, a) for e, a in events if e.startswith(FORBIDDEN)]


def compiled_sources(events: list[tuple[str, tuple[Any, ...]]]) -> list[str]:
    """What Python compiled: matgrad's parser compiles the expression to an AST, nothing else."""
    out = []
    for e, a in events:
        if e == "compile":
            src = a[0]
            out.append(src.decode() if isinstance(src, bytes) else str(src))
    return out


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ids of the identities whose variables the engine sampled (and so evaluated)."""
    import matgrad.engine.core as engine

    calls: list[str] = []
    real = engine._Run

    def spy(compiled: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(compiled.identity.id)
        return real(compiled, *args, **kwargs)

    monkeypatch.setattr(engine, "_Run", spy)
    return calls


def check_text(
    text: str, limits: Limits = DEFAULT_LIMITS, trials: int | None = None
) -> tuple[IdentityResult, list[tuple[str, tuple[Any, ...]]]]:
    """Read and check one identity from YAML text as `matgrad check` does, audited."""
    with audited() as events:
        (item,) = load_text(text, "t.yaml", limits)
        result = check_identity(item, Settings(limits=limits, trials=trials), "cpu")
    return result, events


def escape_in_f(expr: str) -> str:
    return f"id: escape\nvars: {{X: [3, 3], x: [3]}}\nf: {json.dumps(expr)}\ngrad: {{X: X}}\n"


def raise_it(name: str) -> str:
    return f" (raise it with --limit {name}=N or [tool.matgrad.limits] {name} = N)"


def test_the_witnesses_see_an_evaluation(evaluations: list[str]) -> None:
    # Meta-test: the spy and the audit hook do see what they are there to see.
    result, _ = check_text("id: fine\nvars: {X: [2, 2]}\nf: tr(X)\ngrad: {X: eye(2)}\n")
    assert result.status == "passed"
    assert evaluations == ["fine"]
    with audited() as events:
        eval(compile("1", "<meta>", "eval"))  # the meta-test's own code
    assert ("exec" in {e for e, _ in events}) and compiled_sources(events) == ["1"]


# ---- expressions: only matgrad's own allowlist, never Python --------------------------------

ESCAPES = [
    pytest.param("X.__class__", "attribute .__class__ is not allowed: "
                 "the attributes are .T, .mT, .H, and the named results of a function with several "
                 "(such as qr(A).Q)",
                 id="dunder-attribute"),
    pytest.param("().__class__.__bases__",
                 "attribute .__bases__ is not allowed: "
                 "the attributes are .T, .mT, .H, and the named results of a function with several "
                 "(such as qr(A).Q)",
                 id="dunder-chain-from-tuple"),
    pytest.param("X.T.__dict__", "attribute .__dict__ is not allowed: "
                 "the attributes are .T, .mT, .H, and the named results of a function with several "
                 "(such as qr(A).Q)",
                 id="dunder-after-transpose"),
    pytest.param("inv.__globals__",
                 "attribute .__globals__ is not allowed: "
                 "the attributes are .T, .mT, .H, and the named results of a function with several "
                 "(such as qr(A).Q)",
                 id="function-globals"),
    pytest.param("__import__('os')", "unknown function '__import__'", id="__import__"),
    pytest.param("__import__('os').system('id')",
                 "only calls of listed functions by name are allowed", id="__import__-system"),
    pytest.param("eval('1')", "unknown function 'eval'", id="eval"),
    pytest.param("exec('1')", "unknown function 'exec'", id="exec"),
    pytest.param("open('/etc/passwd')", "unknown function 'open'", id="open"),
    pytest.param("compile('1', 'f', 'eval')", "unknown function 'compile'",
                 id="compile"),
    pytest.param("getattr(X, '__class__')", "unknown function 'getattr'", id="getattr"),
    pytest.param("globals()", "unknown function 'globals'", id="globals"),
    pytest.param("breakpoint()", "unknown function 'breakpoint'", id="breakpoint"),
    pytest.param("print(X)", "unknown function 'print'",
                 id="builtin-print"),
    pytest.param("ｅｖａｌ('1')", "unknown function 'eval'",
                 id="fullwidth-eval-normalised"),
    pytest.param("torch.inv(X)", "only calls of listed functions by name are allowed",
                 id="torch-attribute-call"),
    pytest.param("sum(torch)", "unknown name 'torch'; declare it under vars or dims",
                 id="torch-name"),
    pytest.param("sum(__builtins__)", "unknown name '__builtins__'; declare it under vars or dims",
                 id="builtins-name"),
    pytest.param("X.shape", "attribute .shape is not allowed: "
                 "the attributes are .T, .mT, .H, and the named results of a function with several "
                 "(such as qr(A).Q)",
                 id="attribute-other-than-T"),
    pytest.param("X.sum()", "only calls of listed functions by name are allowed",
                 id="method-call"),
    pytest.param("'{0.__class__}'.format(X)",
                 "only calls of listed functions by name are allowed", id="str-format"),
    pytest.param("X['__class__']", "an index must be an integer constant or dim",
                 id="subscript-string"),
    pytest.param("X[0].__class__", "attribute .__class__ is not allowed", id="subscript-dunder"),
    pytest.param("X[X]", "an index must be an integer constant or dim (indices are fixed",
                 id="subscript-tensor"),
    pytest.param("X[0:X]", "an index must be an integer constant or dim (indices are fixed",
                 id="slice-tensor"),
    pytest.param("X[[__import__]]", "unknown name '__import__'", id="index-list-name"),
    pytest.param("lambda: X", "lambda is not allowed in an expression", id="lambda"),
    pytest.param("(lambda: X)()", "only calls of listed functions by name are allowed",
                 id="lambda-call"),
    pytest.param("[x for x in X]", "a comprehension is not allowed in an expression",
                 id="list-comprehension"),
    pytest.param("{x: 1 for x in X}", "a comprehension is not allowed in an expression",
                 id="dict-comprehension"),
    pytest.param("sum(x for x in X)", "a generator expression is not allowed in an expression",
                 id="generator"),
    pytest.param("(y := X)", "assignment (:=) is not allowed in an expression", id="walrus"),
    pytest.param("f'{X}'", "an f-string is not allowed in an expression", id="f-string"),
    pytest.param("tr(X, dim=0)", "tr takes no options (keyword arguments): tr(M)",
                 id="keyword-argument"),
    pytest.param("sum(X, __class__=0)", "sum has no option '__class__'",
                 id="keyword-dunder"),
    pytest.param("tr(**X)", "**arguments are not allowed (in tr(...))",
                 id="double-starred-argument"),
    pytest.param("tr(*X)", "starred arguments are not allowed (in tr(...))",
                 id="starred-argument"),
    pytest.param("'a'", "\"'a'\" is not a tensor: strings, True/False/None, tuples", id="string"),
    pytest.param("'x' * 10**6", "is not a tensor: strings", id="string-repeat"),
    pytest.param("b'x'", "constant b'x' is not allowed: only int, float and imaginary (2j) numbers",
                 id="bytes"),
    pytest.param("None", "'None' is not a tensor: strings, True/False/None", id="none"),
    pytest.param("True", "'True' is not a tensor: strings, True/False/None", id="bool"),
    pytest.param("...", "'...' is not a tensor: strings, True/False/None", id="ellipsis"),
    # an imaginary literal is a number (1j), but never an infinite one
    pytest.param("1e999j", "constant 1e999j is not finite", id="complex-infinite"),
    pytest.param("X.H.__class__", "attribute .__class__ is not allowed", id="dunder-after-H"),
    pytest.param("X < X < X", "chained comparisons are not allowed", id="compare-chain"),
    pytest.param("X is X", "only <, <=, > and >= compare", id="compare-is"),
    pytest.param("X in X", "only <, <=, > and >= compare", id="compare-in"),
    pytest.param("X and X", "and/or (multiply masks: (x > 0) * (x < 1)) is not allowed",
                 id="boolop"),
    pytest.param("X if X else X", "a conditional expression is not allowed in an expression",
                 id="ifexp"),
    pytest.param("not X", "operator not is not allowed", id="not"),
    pytest.param("~X", "operator ~ is not allowed", id="invert"),
    pytest.param("X % 2", "operator % is not allowed", id="mod-format"),
    pytest.param("X << 1", "operator << is not allowed", id="shift"),
    pytest.param("[X]", "an entry of the list '[X]' must be a constant", id="list"),
    pytest.param("[[1, 2], [3]]", "the rows of '[[1, 2], [3]]' have different shapes",
                 id="list-ragged"),
    pytest.param("(X, X)", "a tuple (allowed only as a keyword value", id="tuple"),
    pytest.param("einsum('ij->ji' * 2, X)", "argument 1 of einsum must be a string",
                 id="einsum-string-arith"),
    pytest.param("{X}", "a set is not allowed in an expression", id="set"),
    pytest.param("{1: X}", "a dict is not allowed in an expression", id="dict"),
    pytest.param("await X", "await is not allowed in an expression", id="await"),
    pytest.param("import os", "syntax error at column 1: invalid syntax", id="import-statement"),
    pytest.param("X; X", "syntax error at column 2: invalid syntax", id="two-statements"),
    pytest.param("yield X", "syntax error at column 1: invalid syntax", id="yield"),
    pytest.param("X\x00", "syntax error: source code string cannot contain null bytes",
                 id="null-byte"),
]


@pytest.mark.parametrize(("expr", "problem"), ESCAPES)
def test_expression_escape(expr: str, problem: str, evaluations: list[str]) -> None:
    result, events = check_text(escape_in_f(expr))
    assert (result.status, result.internal) == ("error", False)
    head = "t.yaml:3: identity 'escape', key f: "
    assert result.message.startswith(head)
    assert problem in result.message
    assert evaluations == []
    assert forbidden(events) == []
    assert set(compiled_sources(events)) <= {expr.strip()}  # ast.parse of the text, no more


@pytest.mark.parametrize("where", ["let", "claim"])
def test_expression_escape_outside_f(where: str, evaluations: list[str]) -> None:
    evil = json.dumps("__import__('os').system('id')")
    if where == "let":
        text = (
            f"id: escape\nvars: {{X: [2, 2]}}\nlet: {{Y: {evil}}}\nf: tr(X)\n"
            f"grad: {{X: eye(2)}}\n"
        )
        key, line = "let.Y", 3
    else:
        text = f"id: escape\nvars: {{X: [2, 2]}}\nf: tr(X)\ngrad: {{X: {evil}}}\n"
        key, line = "grad.X", 4
    result, events = check_text(text)
    assert result.message == (
        f"t.yaml:{line}: identity 'escape', key {key}: only calls of listed functions by name "
        f"are allowed"
    )
    assert evaluations == [] and forbidden(events) == []


# ---- expressions: bounded work --------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        pytest.param("9**9**9", "the exponent in '9**9**9' is 387420489, over the limit "
                     "max_power=1000" + raise_it("max_power"), id="constant-power-tower"),
        pytest.param("X ** 10**9", "the exponent in 'X ** 10**9' is 1000000000, over the limit "
                     "max_power=1000" + raise_it("max_power"), id="elementwise-power"),
        pytest.param("matpow(X, 10**9)", "the power in 'matpow(X, 10**9)' is 1000000000, over "
                     "the limit max_power=1000" + raise_it("max_power"), id="huge-matpow"),
        pytest.param("matpow(X, 2**2**2**2**2)", "the exponent in '2**2**2**2**2' is 65536, "
                     "over the limit max_power=1000" + raise_it("max_power"),
                     id="power-tower-in-matpow"),
        pytest.param("2.0 ** 1000 * 2.0 ** 1000", "'2.0 ** 1000 * 2.0 ** 1000' is not finite",
                     id="constant-overflow"),
        pytest.param("1e999", "constant 1e999 is not finite", id="infinite-constant"),
        pytest.param("X * 10000000000000000", "integer constant 10000000000000000 is too large",
                     id="huge-integer-constant"),
        pytest.param("eye(10**9)", "a size in 'eye(10**9)' is 1000000000, over the limit "
                     "max_dim=1024" + raise_it("max_dim"), id="eye-of-1e9"),
        pytest.param("ones(10**9, 10**9)", "a size in 'ones(10**9, 10**9)' is 1000000000, over "
                     "the limit max_dim=1024" + raise_it("max_dim"), id="ones-of-1e9"),
        # the tensor language: every size is known, and bounded, before anything is allocated
        pytest.param("sum(full((1024, 1024, 1024), 1))",
                     "its largest intermediate has 1073741824 elements per trial",
                     id="full-of-1e9-entries"),
        pytest.param("sum(ones(1024, 1024, 1024, 1024))", "over the limit max_elements=50000000",
                     id="ones-of-1e12-entries"),
        pytest.param("sum(einsum('ab,cd,ef,gh->abcdefgh', X, X, X, X))",
                     "is 8, over the limit max_rank=6" + raise_it("max_rank"),
                     id="einsum-outer-product-of-8-axes"),
        pytest.param("sum(X[None, None, None, None, None])",
                     "is 7, over the limit max_rank=6" + raise_it("max_rank"),
                     id="index-adds-axes"),
        pytest.param("sum(reshape(X, -1, 10**9))", "cannot reshape [3, 3] (9 entries)",
                     id="reshape-to-1e9"),
        pytest.param("sum(topk(x, 10**9))", "topk needs k between 1 and 3", id="topk-of-1e9"),
        pytest.param("sum(max_pool1d(x, 10**9))", "needs a window k of at most 3",
                     id="pool-window-of-1e9"),
        pytest.param("einsum('__import__', X)", "only letters name axes", id="einsum-dunder"),
        pytest.param("sum(X[0:10**9])", "slice bound 1000000000 is out of range for axis 0",
                     id="slice-of-1e9"),
    ],
)
def test_expression_work_is_bounded(expr: str, problem: str, evaluations: list[str]) -> None:
    result, events = check_text(escape_in_f(expr))
    assert (result.status, result.internal) == ("error", False)
    head = "t.yaml:3: identity 'escape', key f: "
    assert result.message.startswith(head)
    assert problem in result.message
    assert evaluations == [] and forbidden(events) == []


def test_1mb_expression_is_refused_before_python_parses_it() -> None:
    text = "X+" * 500_000 + "X"
    with audited() as events, pytest.raises(LimitError) as e:
        parse(text)
    assert str(e.value) == (
        "the expression length is 1000001, over the limit max_expr_chars=2000"
        + raise_it("max_expr_chars")
    )
    assert compiled_sources(events) == [] and forbidden(events) == []


def test_1mb_expression_in_a_file(evaluations: list[str]) -> None:
    result, events = check_text(escape_in_f("X+" * 500_000 + "X"))
    assert result.message == (
        "t.yaml:3: identity 'escape', key f: the expression length is 1000001, over the limit "
        "max_expr_chars=2000" + raise_it("max_expr_chars")
    )
    assert compiled_sources(events) == [] and evaluations == [] and forbidden(events) == []


def test_100k_deep_parentheses_are_refused_before_python_parses_them() -> None:
    text = "(" * 100_000 + "X" + ")" * 100_000
    with audited() as events, pytest.raises(LimitError) as e:
        parse(text)
    assert str(e.value).startswith("the expression length is 200001, over the limit")
    # With the length limit raised, the nesting is still caught before CPython's parser.
    with audited() as events, pytest.raises(LimitError) as e:
        parse(text, Limits(max_expr_chars=10**6))
    assert str(e.value) == (
        "the bracket nesting depth is 100000, over the limit max_expr_depth=64"
        + raise_it("max_expr_depth")
    )
    assert compiled_sources(events) == []


def test_deep_unary_chain_is_refused_by_depth() -> None:
    with pytest.raises(LimitError) as e:
        parse("-" * 1000 + "X")
    assert str(e.value) == (
        "the nesting depth is more than 64, over the limit max_expr_depth=64"
        + raise_it("max_expr_depth")
    )


def test_deep_chain_with_raised_limits_is_an_error_not_a_crash() -> None:
    # Raising max_expr_depth past Python's stack must still end in a clean error.
    huge = Limits(max_expr_chars=10**6, max_expr_depth=10**6, max_expr_nodes=10**6)
    with pytest.raises(ExprError) as e:
        parse("-" * 1999 + "X", huge)  # CPython parses it; converting it recursively would not
    assert str(e.value) == "the expression is too complex to parse"


def test_deep_bind_with_raised_limits_is_an_error_not_a_crash() -> None:
    huge = Limits(max_expr_chars=10**6, max_expr_depth=10**6, max_expr_nodes=10**6)
    expr = parse("-" * 150 + "X", huge)
    scope = Scope({"X": (2, 2)}, {})
    old = sys.getrecursionlimit()
    depth = len(_frames())
    sys.setrecursionlimit(depth + 100)  # less stack than binding 150 levels needs
    try:
        with pytest.raises(ExprError) as e:
            bind(expr, scope, huge)
    finally:
        sys.setrecursionlimit(old)
    assert str(e.value) == f"the expression {expr.text!r} is too deeply nested to bind"


def _frames() -> list[Any]:
    import inspect

    return inspect.stack(0)


def _balanced(depth: int) -> str:
    return "X" if depth == 0 else f"({_balanced(depth - 1)}+{_balanced(depth - 1)})"


def test_node_count_is_bounded() -> None:
    wide = _balanced(11)  # 4,095 nodes, nested only 11 deep
    with pytest.raises(LimitError) as e:
        parse(wide, Limits(max_expr_chars=10**5))
    assert str(e.value) == (
        "the node count is more than 1000, over the limit max_expr_nodes=1000"
        + raise_it("max_expr_nodes")
    )


# ---- sizes: every allocation is budgeted from shapes first ---------------------------------


def test_dim_of_1e9(evaluations: list[str]) -> None:
    text = "id: a\ndims: {n: 1000000000}\nvars: {x: [n]}\nf: sum(x)\ngrad: {x: ones(n)}\n"
    result, events = check_text(text)
    assert result.message == (
        "t.yaml:2:11: identity 'a', key dims.n: dim n is 1000000000, over the limit "
        "max_dim=1024" + raise_it("max_dim")
    )
    assert evaluations == [] and forbidden(events) == []


def test_literal_size_of_1e9_in_a_shape(evaluations: list[str]) -> None:
    # A number written straight into a shape is bounded like a dim.
    result, _ = check_text("id: a\nvars: {x: [1000000000]}\nf: sum(x)\ngrad: {x: x}\n")
    assert result.message == (
        "t.yaml:2:12: identity 'a', key vars.x: a size is 1000000000, over the limit "
        "max_dim=1024" + raise_it("max_dim")
    )
    assert evaluations == []


def test_trials_of_1e9_in_a_file(evaluations: list[str]) -> None:
    text = "id: a\nvars: {x: [2]}\nf: sum(x)\ngrad: {x: ones(2)}\ntrials: 1000000000\n"
    result, events = check_text(text)
    assert result.message == (
        "t.yaml:5:9: identity 'a', key trials: trials is 1000000000, over the limit "
        "max_trials=10000" + raise_it("max_trials")
    )
    assert evaluations == [] and forbidden(events) == []


def test_trials_of_1e9_on_the_command_line(evaluations: list[str]) -> None:
    text = "id: a\nvars: {x: [2]}\nf: sum(x)\ngrad: {x: ones(2)}\n"
    result, _ = check_text(text, trials=10**9)
    assert result.message == (
        "t.yaml:1: identity 'a': trials is 1000000000, over the limit max_trials=10000"
        + raise_it("max_trials")
    )
    assert evaluations == []


def budget(what: str, per_trial: int, trials: int) -> str:
    return (
        f"{what}: its largest intermediate has {per_trial} elements per trial, "
        f"{per_trial * trials} over {trials} trials, over the limit max_elements=50000000 "
        f"(raise it with --limit max_elements=N, or use fewer trials)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "id: a\nvars: {X: [1024, 1024]}\nf: sum(kron(X, X))\ngrad: {X: X}\ntrials: 10\n",
            "t.yaml:3: identity 'a', key f: "
            + budget("the expression 'sum(kron(X, X))'", 1024**4, 10),
            id="kron",
        ),
        pytest.param(
            "id: a\nvars: {X: [1024, 1024]}\nf: sum(outer(vec(X), vec(X)))\ngrad: {X: X}\n"
            "trials: 10\n",
            "t.yaml:3: identity 'a', key f: "
            + budget("the expression 'sum(outer(vec(X), vec(X)))'", 1024**4, 10),
            id="outer",
        ),
        *(
            pytest.param(
                f"id: a\nvars: {{x: [2]}}\nf: sum(x)\ngrad: {{x: ones(2)}}\n"
                f"let: {{big: \"{c}\"}}\ntrials: 100\n",
                "t.yaml:5: identity 'a', key let.big: "
                + budget(f"the expression '{c}'", 1024 * 1024, 100),
                id=c.split("(")[0],
            )
            for c in ("eye(1024)", "ones(1024, 1024)", "zeros(1024, 1024)")
        ),
        pytest.param(
            "id: a\nvars: {S: [1024, 1024]}\nf: tr(matpow(S, 1000))\ngrad: {S: S}\ntrials: 100\n",
            "t.yaml:2: identity 'a', key vars: the variables and their directions take 2097152 "
            "elements per trial, 209715200 over 100 trials, over the limit max_elements=50000000 "
            "(raise it with --limit max_elements=N, or use fewer trials)",
            id="variables-times-trials",
        ),
        pytest.param(
            "id: a\nvars: {"
            + ", ".join(f"v{i}: [1024, 1024]" for i in range(30))
            + "}\nf: sum(v0)\ngrad: {v0: v0}\ntrials: 1\n",
            "t.yaml:2: identity 'a', key vars: the variables and their directions take 62914560 "
            "elements per trial, 62914560 over 1 trials, over the limit max_elements=50000000 "
            "(raise it with --limit max_elements=N, or use fewer trials)",
            id="many-unused-variables",
        ),
        pytest.param(
            "id: a\nvars: {x: [1024]}\nf: sum(x)\nhessian: {x: 0}\ntrials: 1000\n",
            "t.yaml:1: identity 'a': the variables, directions, expressions and autograd "
            "results of this identity take 1050625 elements per trial, 1050625000 over 1000 "
            "trials, over the limit max_elements=50000000 (raise it with --limit "
            "max_elements=N, or use fewer trials)",
            id="hessian-of-a-constant-claim",
        ),
        pytest.param(
            "id: a\nvars: {X: [512, 512]}\nlet: {"
            + ", ".join(f"L{i}: \"X * {i}\"" for i in range(40))
            + "}\nf: sum(X)\ngrad: {X: X}\ntrials: 10\n",
            "t.yaml:1: identity 'a': the variables, directions, expressions and autograd "
            "results of this identity take 11272193 elements per trial, 112721930 over 10 "
            "trials, over the limit max_elements=50000000 (raise it with --limit "
            "max_elements=N, or use fewer trials)",
            id="many-intermediates-each-under-the-budget",
        ),
        pytest.param(
            # d vec f / d vec X of a 64 x 64 f and X: 4096 x 4096 entries per trial
            "id: a\nvars: {X: [64, 64]}\nf: X\njacobian: {X: 0}\ntrials: 10\n",
            "t.yaml:1: identity 'a': the variables, directions, expressions and autograd "
            "results of this identity take 16785408 elements per trial, 167854080 over 10 "
            "trials, over the limit max_elements=50000000 (raise it with --limit "
            "max_elements=N, or use fewer trials)",
            id="jacobian-of-a-large-matrix",
        ),
        pytest.param(
            # the Hessian of a 64 x 64 matrix in the vec layout is 4096 x 4096 per trial
            "id: a\nvars: {X: [64, 64]}\nf: sum(X * X)\nhessian: {X: 0}\ntrials: 10\n",
            "t.yaml:1: identity 'a': the variables, directions, expressions and autograd "
            "results of this identity take 16789505 elements per trial, 167895050 over 10 "
            "trials, over the limit max_elements=50000000 (raise it with --limit "
            "max_elements=N, or use fewer trials)",
            id="hessian-of-a-large-matrix",
        ),
        pytest.param(
            # mixed: d^2 f / (d vec X d (vec Y)^T) of two 64 x 64 matrices, 4096 x 4096
            "id: a\nvars: {X: [64, 64], Y: [64, 64]}\nf: sum(X) * sum(Y)\n"
            "hessian: {\"X, Y\": 0}\ntrials: 10\n",
            "t.yaml:1: identity 'a': the variables, directions, expressions and autograd "
            "results of this identity take 16793603 elements per trial, 167936030 over 10 "
            "trials, over the limit max_elements=50000000 (raise it with --limit "
            "max_elements=N, or use fewer trials)",
            id="mixed-hessian-of-two-large-matrices",
        ),
    ],
)
def test_element_budget(text: str, message: str, evaluations: list[str]) -> None:
    result, events = check_text(text)
    assert (result.status, result.internal) == ("error", False)
    assert result.message == message
    assert evaluations == [] and forbidden(events) == []


def _work_refused(about: str) -> str:
    return (
        f"t.yaml:1: identity 'a': the estimated work of this identity is about {about} "
        f"multiply-adds (fewer trials or smaller dims lower it), over the limit "
        f"max_work=100000000000" + raise_it("max_work")
    )


def _products(depth: int) -> str:
    return "x" if depth == 0 else f"({_products(depth - 1)}*{_products(depth - 1)})"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            # Every tensor fits the element budget, but this runs for many minutes.
            "id: a\nvars: {X: [1024, 1024]}\nf: \"tr("
            + " @ ".join(["expm(X)"] * 20)
            + ")\"\ngrad: {X: X}\ntrials: 1\n",
            _work_refused("2.7e+12"),
            id="chain-of-matrix-exponentials",
        ),
        pytest.param(
            # Small tensors, but a hessian of a 1,024-vector takes 1,024 passes over 255 ops.
            f"id: a\nvars: {{x: [1024]}}\nf: \"sum({_products(7)})\"\nhessian: {{x: \"0\"}}\n"
            f"trials: 1\n",
            _work_refused("1.2e+11"),
            id="hessian-of-a-long-vector",
        ),
        pytest.param(
            # A 2-vector x, but f has 65,536 entries: one backward pass over A @ A for each
            "id: a\nvars: {x: [2], A: [256, 256]}\nf: \"sum(x) * (A @ A)\"\njacobian: {x: 0}\n"
            "trials: 1\n",
            _work_refused("2.5e+12"),
            id="jacobian-of-a-large-f",
        ),
        pytest.param(
            # a mixed hessian takes a backward pass per entry of its first variable
            "id: a\nvars: {x: [1024], y: [1024]}\nf: \"sum(x * y) * sum(cos(outer(x, y)))\"\n"
            "hessian: {\"x, y\": \"0\"}\ntrials: 1\n",
            _work_refused("3.9e+11"),
            id="mixed-hessian-of-long-vectors",
        ),
        pytest.param(
            # a chain of contractions: each step is bounded, the whole is too much work
            "id: a\nvars: {A: [1000, 1000]}\nf: \"sum(einsum('ij,jk,kl,lm->im', A, A, A, A))\"\n"
            "grad: {A: A}\ntrials: 10\n",
            _work_refused("1.8e+11"),
            id="einsum-chain-of-large-matrices",
        ),
        pytest.param(
            # a decomposition of a large matrix: refused before any draw
            "id: a\nvars: {X: [1024, 1024]}\nf: \"real(sum(eigvals(X)))\"\ngrad: {X: X}\ntrials: 4\n",
            _work_refused("1.5e+12"),  # the guard surveys too (budget.GUARD_SURVEYS)
            id="eig-of-a-large-matrix",
        ),
        pytest.param(
            "id: a\nvars: {X: [1024, 1024]}\nf: \"sum(lu(X).U @ lu(X).L @ lu(X).U)\"\n"
            "grad: {X: X}\ntrials: 4\n",
            _work_refused("4.2e+11"),
            id="lu-of-a-large-matrix",
        ),
        pytest.param(
            "id: a\nvars: {X: [1024, 1024]}\nf: \"norm(X, ord='nuc') + norm(X, ord=2)\"\n"
            "grad: {X: X}\ntrials: 4\n",
            _work_refused("1e+12"),
            id="spectral-norms-of-a-large-matrix",
        ),
    ],
)
def test_work_budget(text: str, message: str, evaluations: list[str]) -> None:
    result, events = check_text(text)
    assert (result.status, result.internal) == ("error", False)
    assert result.message == message
    assert evaluations == [] and forbidden(events) == []


def test_too_many_lets() -> None:
    text = "id: a\nvars: {x: [2]}\nf: sum(x)\ngrad: {x: ones(2)}\nlet: {" + ", ".join(
        f"l{i}: x" for i in range(65)
    ) + "}\n"
    (item,) = load_text(text, "t.yaml")
    assert isinstance(item, Invalid)
    assert str(item.error) == (
        "t.yaml:5:1: identity 'a', key let: the number of lets is 65, over the limit "
        "max_lets=64" + raise_it("max_lets")
    )


def test_too_many_identities_in_one_file() -> None:
    text = "identities:\n" + "".join(f"  - {{id: i{i}}}\n" for i in range(1001))
    (item,) = load_text(text, "t.yaml")
    assert isinstance(item, Invalid)
    assert str(item.error) == (
        "t.yaml:2: the number of identities is 1001, over the limit "
        "max_identities_per_file=1000" + raise_it("max_identities_per_file")
    )


# ---- YAML: a safe loader, plain values only -------------------------------------------------

GOOD = "vars: {x: [2]}\nf: sum(x)\ngrad: {x: ones(2)}\n"
LAUGHS = "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]\n" for p, k in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "id: a\nvars: !!python/object/apply:os.system ['id']\nf: x\n",
            "t.yaml:2:7: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not "
            "allowed",
            id="python-object-apply",
        ),
        pytest.param(
            "id: a\nvars: !!python/object/new:subprocess.Popen [['id']]\n",
            "t.yaml:2:7: YAML tag 'tag:yaml.org,2002:python/object/new:subprocess.Popen' is not "
            "allowed",
            id="python-object-new",
        ),
        pytest.param(
            "id: !!python/name:os.system a\n" + GOOD,
            "t.yaml:1:5: YAML tag 'tag:yaml.org,2002:python/name:os.system' is not allowed; "
            "only plain values (quote the text)",
            id="python-name",
        ),
        pytest.param(
            "id: !!python/module:os a\n" + GOOD,
            "t.yaml:1:5: YAML tag 'tag:yaml.org,2002:python/module:os' is not allowed; only "
            "plain values (quote the text)",
            id="python-module",
        ),
        pytest.param(
            "id: !shell a\n" + GOOD,
            "t.yaml:1:5: YAML tag '!shell' is not allowed; only plain values (quote the text)",
            id="custom-tag",
        ),
        pytest.param(
            "id: !!binary aWQ=\n" + GOOD,
            "t.yaml:1:5: YAML tag 'tag:yaml.org,2002:binary' is not allowed; only plain values "
            "(quote the text)",
            id="binary",
        ),
        pytest.param(
            "id: a\nvars: !!set {x}\n",
            "t.yaml:2:7: YAML tag 'tag:yaml.org,2002:set' is not allowed",
            id="set",
        ),
        pytest.param(
            "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + LAUGHS,
            "t.yaml:1:4: YAML anchors and aliases (&name / *name) are not allowed; write the "
            "value out (an expression starting with * must be quoted)",
            id="billion-laughs",
        ),
        pytest.param(
            "id: a\nvars: &v {x: [2]}\nnotes: *v\nf: sum(x)\ngrad: {x: ones(2)}\n",
            "t.yaml:2:7: YAML anchors and aliases (&name / *name) are not allowed; write the "
            "value out (an expression starting with * must be quoted)",
            id="alias",
        ),
        pytest.param(
            "id: a\nvars: {<<: {x: [2]}}\nf: sum(x)\ngrad: {x: ones(2)}\n",
            "t.yaml:2:8: YAML merge keys (<<) are not allowed",
            id="merge-key",
        ),
        pytest.param(
            "id: a\n" + GOOD + "f: prod(x)\n",
            "t.yaml:5:1: duplicate key 'f' (first at line 3); YAML would keep only the last "
            "one: remove one of them",
            id="duplicate-key",
        ),
        pytest.param(
            "id: a\nvars: {x: [2], x: [3]}\nf: sum(x)\ngrad: {x: ones(2)}\n",
            "t.yaml:2:16: duplicate key 'x' (first at line 2); YAML would keep only the last "
            "one: remove one of them",
            id="duplicate-nested-key",
        ),
        pytest.param(
            "id: a\nnotes: " + "[" * 100 + "]" * 100 + "\n" + GOOD,
            "t.yaml:2:39: the YAML nesting depth is more than 32, over the limit "
            "max_yaml_depth=32" + raise_it("max_yaml_depth"),
            id="deep-nesting",
        ),
        pytest.param(
            "id: a\nnotes: " + "[" * 999 + "]" * 999 + "\n" + GOOD,
            "t.yaml:2:39: the YAML nesting depth is more than 32, over the limit "
            "max_yaml_depth=32" + raise_it("max_yaml_depth"),
            id="nesting-at-libyaml-maximum",
        ),
        pytest.param(
            "id: a\n" + GOOD + "trials: " + "9" * 5000 + "\n",
            "t.yaml:5:9: the number 99999999999999999999... (5000 characters) is too large to "
            "read",
            id="integer-of-5000-digits",
        ),
        pytest.param(
            # a claim key is a list of names, looked up, never evaluated
            "id: a\nvars: {x: [2]}\nf: sum(x)\nhessian: {\"x, __import__('os')\": 0}\n",
            "t.yaml:4:11: identity 'a', key hessian.x, __import__('os'): hessian claim for "
            "\"__import__('os')\", which is not declared in vars",
            id="code-in-a-mixed-claim-key",
        ),
        pytest.param(
            "id: a\nvars: {x: [2]}\nf: sum(x)\nhessian: {\"" + "x," * 400 + "x\": 0}\n",
            "t.yaml:4:11: identity 'a', key hessian." + "x," * 400 + "x: hessian claim key '"
            + "x," * 400 + "x' names 401 variables; a key names one variable, or two for "
            "mixed second derivatives, e.g. \"x, y\"",
            id="mixed-claim-key-of-401-names",
        ),
        pytest.param(
            "id: a\n" + GOOD + "notes: a\x00b\n",
            "t.yaml:5:9: YAML error: character #x0000 is not allowed (control characters are "
            "not allowed)",
            id="null-character",
        ),
    ],
)
def test_yaml_attack(text: str, message: str) -> None:
    with audited() as events:
        items = load_text(text, "t.yaml")
        problems = [str(err) for _, err in validate(items) if err is not None]
    assert problems == [message]
    assert forbidden(events) == [] and compiled_sources(events) == []


def test_yaml_nesting_limit_raised_past_the_stack_is_still_an_error() -> None:
    text = "id: a\nnotes: " + "[" * 990 + "]" * 990 + "\n" + GOOD
    (item,) = load_text(text, "t.yaml", Limits(max_yaml_depth=10**6))
    assert isinstance(item, Invalid)
    assert str(item.error).startswith("t.yaml: the YAML nesting depth is more than 1000000")


# ---- files ---------------------------------------------------------------------------------


def test_100mb_file_is_refused_by_size_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(100 * 2**20)  # sparse: costs no disk
    with audited() as events:
        (item,) = load_all([str(big)])
    assert isinstance(item, Invalid)
    assert str(item.error) == (
        f"{big}: the file size is 104857600, over the limit max_file_bytes=1000000"
        + raise_it("max_file_bytes")
    )
    assert [e for e, a in events if e == "open"] == []


def test_file_that_grows_after_its_size_was_checked(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "grows.yaml"
    path.write_text("id: a\n" + "notes: " + "x" * 2000 + "\n")
    real_stat = Path.stat

    def small_stat(self: Path, *a: Any, **k: Any) -> os.stat_result:
        st = real_stat(self, *a, **k)
        return os.stat_result((st.st_mode, *st[1:6], 10, *st[7:]))  # st_size = 10

    monkeypatch.setattr(Path, "stat", small_stat)
    (item,) = load_all([str(path)], Limits(max_file_bytes=1000))
    assert isinstance(item, Invalid)
    assert str(item.error) == (
        f"{path}: the file size is more than 1000, over the limit max_file_bytes=1000"
        + raise_it("max_file_bytes")
    )


def test_device_file_is_not_read() -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    with audited() as events:
        (item,) = load_all(["/dev/zero"])
    assert str(item.error) == "/dev/zero: not a regular file"
    assert [e for e, _ in events if e == "open"] == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_named_pipe_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    done = threading.Event()

    def unblock() -> None:
        # Should matgrad ever open the pipe, it would wait for a writer forever: be one, so a
        # regression fails this test instead of hanging the suite.
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                return
            except OSError:
                time.sleep(0.05)

    helper = threading.Thread(target=unblock, daemon=True)
    helper.start()
    try:
        (item,) = load_all([str(fifo)])
    finally:
        done.set()
        helper.join()
    assert str(item.error) == f"{fifo}: not a regular file"


def test_symlink_out_of_the_folder_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("aws_secret_access_key: hunter2\n")
    tree = tmp_path / "identities"
    tree.mkdir()
    (tree / "good.yaml").write_text("id: good\n" + GOOD)
    (tree / "leak.yaml").symlink_to(secret)
    with audited() as events:
        items = load_all([str(tree)])
    assert isinstance(items[0], Identity)
    assert str(items[1].error) == (
        f"{tree / 'leak.yaml'}: a symbolic link that leads outside {str(tree)!r}: not read "
        f"(name the file itself to check it)"
    )
    opened = [str(a[0]) for e, a in events if e == "open"]
    assert str(secret) not in opened and str(tree / "leak.yaml") not in opened
    assert "hunter2" not in str(items[1].error)


def test_symlink_inside_the_folder_is_read(tmp_path: Path) -> None:
    tree = tmp_path / "identities"
    (tree / "shared").mkdir(parents=True)
    (tree / "shared" / "one.yaml").write_text("id: one\n" + GOOD)
    (tree / "alias.yml").symlink_to(tree / "shared" / "one.yaml")
    items = load_all([str(tree)])
    assert [type(i).__name__ for i in items] == ["Identity", "Invalid"]  # same id, read twice
    assert "duplicate id 'one'" in str(items[1].error)


# ---- the command line: hostile files end as errors, the others still run -----------------------


def test_hostile_files_are_errors_and_the_rest_still_runs(
    tmp_path: Path, evaluations: list[str]
) -> None:
    (tmp_path / "a-good.yaml").write_text("id: good\n" + GOOD)
    (tmp_path / "b-tag.yaml").write_text("id: a\nvars: !!python/object/apply:os.system ['id']\n")
    (tmp_path / "c-expr.yaml").write_text(escape_in_f("__import__('os').system('id')"))
    (tmp_path / "d-bomb.yaml").write_text(
        "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + LAUGHS
    )
    (tmp_path / "e-size.yaml").write_text("id: big\nvars: {x: [1000000000]}\n")
    r = CliRunner().invoke(app, ["check", str(tmp_path)])
    assert r.exit_code == 3, r.output
    assert "1 passed, 0 failed, 0 xfailed, 0 xpassed, 4 errors" in r.stdout
    assert "Traceback" not in r.output
    assert evaluations == ["good"]


@pytest.mark.parametrize("command", ["check", "validate"])
def test_markup_in_a_file_is_printed_as_text(tmp_path: Path, command: str) -> None:
    # Rich markup in a file must not restyle, hide or link anything in the output.
    path = tmp_path / "markup.yaml"
    path.write_text('id: a\n"[link=https://example.invalid]x[/link][bold red]boom[/]": 1\n' + GOOD)
    r = CliRunner().invoke(app, [command, str(path)])
    assert r.exit_code == 3
    assert "unknown key '[link=https://example.invalid]x[/link][bold red]boom[/]'" in r.stdout
