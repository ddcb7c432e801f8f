from __future__ import annotations

import pytest

from matgrad.errors import ExprError, LimitError
from matgrad.lang.expr import Scope, bind, parse
from matgrad.limits import Limits

SCOPE = Scope(
    shapes={"X": (3, 4), "S": (3, 3), "x": (3, 1), "v": (3,), "y": (4, 1), "c": ()},
    dims={"m": 3, "n": 4},
)


def shape_of(text: str) -> tuple[int, ...]:
    return bind(parse(text), SCOPE).shape


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        pytest.param("X", (3, 4), id="name"),
        pytest.param("X.T", (4, 3), id="transpose"),
        pytest.param("v.T", (3,), id="transpose-of-plain-vector-is-identity"),
        pytest.param("X @ X.T", (3, 3), id="matmul"),
        pytest.param("x.T @ X @ y", (1, 1), id="bilinear"),
        pytest.param("v @ S @ v", (), id="plain-vector-quadratic"),
        pytest.param("S @ v", (3,), id="matrix-vector"),
        pytest.param("2 * X - X / 3", (3, 4), id="scalar-ops"),
        pytest.param("c * X", (3, 4), id="scalar-var"),
        pytest.param("(x.T @ x) * S", (3, 3), id="single-element-counts-as-scalar"),
        pytest.param("X ** 2", (3, 4), id="elementwise-power"),
        pytest.param("-X", (3, 4), id="neg"),
        pytest.param("+X", (3, 4), id="pos"),
        pytest.param("tr(S)", (), id="tr"),
        pytest.param("inv(S)", (3, 3), id="inv"),
        pytest.param("pinv(X)", (4, 3), id="pinv"),
        pytest.param("solve(S, x)", (3, 1), id="solve"),
        pytest.param("diag(S)", (3,), id="diag-of-matrix"),
        pytest.param("diag(x)", (3, 3), id="diag-of-column"),
        pytest.param("diag(v)", (3, 3), id="diag-of-vector"),
        pytest.param("kron(X, S)", (9, 12), id="kron"),
        pytest.param("outer(x, y)", (3, 4), id="outer"),
        pytest.param("vec(X)", (12, 1), id="vec"),
        pytest.param("eye(m)", (3, 3), id="eye-of-dim"),
        pytest.param("ones(m, n)", (3, 4), id="ones"),
        pytest.param("zeros(n)", (4,), id="zeros-vector"),
        pytest.param("eye(m + 1)", (4, 4), id="eye-of-arithmetic"),
        pytest.param("softmax(X)", (3, 4), id="softmax"),
        pytest.param("logsumexp(X)", (), id="logsumexp"),
        pytest.param("norm(X)", (), id="norm"),
        pytest.param("matpow(S, 3)", (3, 3), id="matpow"),
        pytest.param("col(X, 2)", (3, 1), id="col"),
        pytest.param("entry(X, 2, 3)", (), id="entry"),
        pytest.param("1e-6 * X", (3, 4), id="float-without-dot"),
        pytest.param("x / n", (3, 1), id="dim-as-number"),
    ],
)
def test_shapes(text: str, shape: tuple[int, ...]) -> None:
    assert shape_of(text) == shape


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "X @ X",
            "shape mismatch in 'X @ X': 'X' is [3, 4] and 'X' is [3, 4]; @ needs the inner "
            "sizes to agree (4 vs 3)",
            id="matmul",
        ),
        pytest.param(
            "X + X.T",
            "shape mismatch in 'X + X.T': 'X' is [3, 4], 'X.T' is [4, 3]; elementwise + "
            "needs equal shapes, a scalar side, or one side that broadcasts to the other's "
            "shape (a transpose missing?)",
            id="elementwise",
        ),
        pytest.param("x + y.T", "shape mismatch in 'x + y.T'", id="no-broadcasting"),
        pytest.param("tr(X)", "in 'tr(X)': tr needs a square matrix, got shape [3, 4]", id="tr"),
        pytest.param("2 @ X", "'2' is a scalar; @ needs vectors or matrices", id="scalar-matmul"),
        pytest.param("Z", "unknown name 'Z'", id="unknown-name"),
        pytest.param("x + S1", "unknown name 'S1' (did you mean 'S'?)", id="did-you-mean"),
        pytest.param("matpow(S, c)", "argument 2 of matpow must be an integer constant", id="k"),
        pytest.param("matpow(S, 1.5)", "the power k must be an integer", id="k-int"),
        pytest.param("col(X, 4)", "column index 4 out of range", id="col-range"),
        pytest.param("X ** x", "the exponent must be a scalar", id="pow-shape"),
        pytest.param("1 / 0", "division by zero", id="div-zero"),
        pytest.param("'a'", "is not a tensor: strings", id="string"),
        pytest.param("True * X", "'True' is not a tensor", id="bool"),
    ],
)
def test_bind_errors(text: str, message: str) -> None:
    with pytest.raises(ExprError) as e:
        shape_of(text)
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("X.shape", "attribute .shape is not allowed", id="attribute"),
        pytest.param("foo(X)", "unknown function 'foo'", id="unknown-function"),
        pytest.param("trr(X)", "unknown function 'trr' (did you mean 'tr'?)", id="function-hint"),
        pytest.param("tr(X, X)", "tr takes 1 argument, got 2: tr(M)", id="arity"),
        pytest.param("kron(X)", "kron takes 2 arguments, got 1", id="arity-2"),
        pytest.param("tr(X, dim=0)", "tr takes no options (keyword arguments)", id="kw"),
        pytest.param("tr(*X)", "starred arguments are not allowed", id="starred"),
        pytest.param("X +", "syntax error", id="syntax"),
        pytest.param("X ^ 2", "use ** for powers", id="caret"),
        pytest.param("1e999j", "constant 1e999j is not finite", id="complex-infinite"),
        pytest.param("X if X else X", "a conditional expression is not allowed", id="ifexp"),
        pytest.param("X < X < X", "chained comparisons are not allowed", id="compare-chain"),
        pytest.param("X == X", "only <, <=, > and >= compare", id="compare-equal"),
        pytest.param("X % 2", "operator % is not allowed", id="mod"),
        pytest.param("", "the expression is empty", id="empty"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ExprError) as e:
        parse(text)
    assert message in str(e.value)


def test_names_are_collected() -> None:
    assert parse("tr(inv(X) @ A) + n").names == {"X", "A", "n"}


def test_parse_is_cached() -> None:
    assert parse("tr(X @ X)") is parse("tr(X @ X)")


def test_constant_folding() -> None:
    b = bind(parse("2 ** 3 + m"), SCOPE)
    assert b.static == 11.0


class _CountingTorch:
    """torch, counting the matrix inverses asked of it."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.inverses = 0
        self.linalg = self

    def inv(self, m):
        self.inverses += 1
        return self.torch.linalg.inv(m)

    def __getattr__(self, name: str):
        return getattr(self.torch, name)


def test_a_memo_evaluates_a_repeated_subexpression_once_to_the_same_value() -> None:
    import torch

    b = bind(parse("-inv(X).T @ A.T @ inv(X).T"), Scope({"X": (3, 3), "A": (3, 3)}, {}))
    gen = torch.Generator().manual_seed(0)
    env = {k: torch.randn(4, 3, 3, generator=gen, dtype=torch.float64) for k in "XA"}
    like = torch.zeros(4, dtype=torch.float64)
    plain, memoised = _CountingTorch(), _CountingTorch()
    expected = b.evaluate(env, plain, like)
    value = b.evaluate(env, memoised, like, memo={})
    assert (plain.inverses, memoised.inverses) == (2, 1)
    assert torch.equal(value, expected)  # the very same numbers, not merely close


def test_limits() -> None:
    small = Limits(max_expr_chars=10)
    with pytest.raises(LimitError, match="max_expr_chars"):
        parse("X + X + X + X", small)
    with pytest.raises(LimitError, match="max_expr_depth"):
        parse("(" * 100 + "X" + ")" * 100)
    with pytest.raises(LimitError, match="max_power"):
        bind(parse("9 ** 9 ** 9"), SCOPE)
    with pytest.raises(LimitError, match="max_power"):
        bind(parse("matpow(S, 10 ** 9)"), SCOPE)
    with pytest.raises(LimitError, match="max_dim"):
        bind(parse("eye(100000)"), SCOPE)
