"""The language of tensors: batch axes, broadcasting, indexing, options, reductions along axes,
piecewise and order functions, constants and einsum. Shapes are decided before any tensor
exists; values agree with torch written out by hand."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from matgrad.errors import ExprError, LimitError
from matgrad.lang.expr import Scope, bind, parse
from matgrad.limits import Limits

SHAPES = {
    "Q": (2, 3, 4, 5),
    "K": (2, 3, 6, 5),
    "X": (3, 4),
    "S": (3, 3),
    "b": (4,),
    "x": (3,),
    "c": (3, 1),
    "M": (2, 1, 4),
    "E": (5, 4),
}
SCOPE = Scope(SHAPES, {"n": 4, "m": 3}, symmetric=frozenset({"S"}))
T = 3  # trials


def bound(text: str, scope: Scope = SCOPE) -> Any:
    return bind(parse(text), scope)


def env() -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn((T, *s), generator=g, dtype=torch.float64) for k, s in SHAPES.items()}


def value(text: str, values: dict[str, Any]) -> Any:
    b = bound(text)
    out = b.evaluate(values, torch, torch.zeros(T, dtype=torch.float64))
    assert tuple(out.shape) == (T, *b.shape)
    return out


# Each row: expression, its shape, and the same value written with torch on one trial.
CASES = [
    ("Q @ K.mT", (2, 3, 4, 6), lambda v: v["Q"] @ v["K"].mT),
    ("einsum('bhtd,bhsd->bhts', Q, K)", (2, 3, 4, 6), lambda v: v["Q"] @ v["K"].mT),
    ("einsum('ij,jk,kl->il', X.T, S, X)", (4, 4), lambda v: v["X"].T @ v["S"] @ v["X"]),
    ("einsum('ii', S)", (), lambda v: torch.trace(v["S"])),
    ("einsum('ij->j', X)", (4,), lambda v: v["X"].sum(0)),
    ("X @ b", (3,), lambda v: v["X"] @ v["b"]),
    ("Q @ E", (2, 3, 4, 4), lambda v: v["Q"] @ v["E"]),
    ("X + b", (3, 4), lambda v: v["X"] + v["b"]),
    ("Q[:, :, :, 0] * M", (2, 3, 4), lambda v: v["Q"][..., 0] * v["M"]),
    ("X[0]", (4,), lambda v: v["X"][0]),
    ("X[:, 1:3]", (3, 2), lambda v: v["X"][:, 1:3]),
    ("X[..., -1]", (3,), lambda v: v["X"][..., -1]),
    ("X[::2, None]", (2, 1, 4), lambda v: v["X"][::2, None]),
    ("X[m - 1, n - 2]", (), lambda v: v["X"][2, 2]),
    ("E[[0, 3, 3, 1]]", (4, 4), lambda v: v["E"][[0, 3, 3, 1]]),
    ("E[:, [1, 0]]", (5, 2), lambda v: v["E"][:, [1, 0]]),
    ("sum(X, axis=0)", (4,), lambda v: v["X"].sum(0)),
    ("sum(X, axis=(0, 1))", (), lambda v: v["X"].sum()),
    ("mean(Q, axis=-1, keepdim=True)", (2, 3, 4, 1), lambda v: v["Q"].mean(-1, keepdim=True)),
    ("prod(X, axis=1)", (3,), lambda v: v["X"].prod(1)),
    ("logsumexp(X, axis=1)", (3,), lambda v: torch.logsumexp(v["X"], 1)),
    ("norm(X, axis=0)", (4,), lambda v: torch.linalg.vector_norm(v["X"], dim=0)),
    ("var(X, axis=0, correction=0)", (4,), lambda v: v["X"].var(0, correction=0)),
    ("std(X)", (), lambda v: v["X"].std()),
    ("amax(X, axis=1)", (3,), lambda v: v["X"].amax(1)),
    ("amin(X)", (), lambda v: v["X"].amin()),
    ("softmax(Q, axis=2)", (2, 3, 4, 5), lambda v: torch.softmax(v["Q"], 2)),
    ("softmax(X)", (3, 4), lambda v: torch.softmax(v["X"], 1)),
    ("log_softmax(X, axis=0)", (3, 4), lambda v: torch.log_softmax(v["X"], 0)),
    ("cumsum(X, axis=1)", (3, 4), lambda v: torch.cumsum(v["X"], 1)),
    ("transpose(Q, 0, 3)", (5, 3, 4, 2), lambda v: v["Q"].transpose(0, 3)),
    ("permute(Q, 3, 0, 2, 1)", (5, 2, 4, 3), lambda v: v["Q"].permute(3, 0, 2, 1)),
    ("reshape(X, 2, -1)", (2, 6), lambda v: v["X"].reshape(2, 6)),
    ("flatten(Q, start=1)", (2, 60), lambda v: v["Q"].flatten(1)),
    ("concat(X, S, axis=1)", (3, 7), lambda v: torch.cat([v["X"], v["S"]], 1)),
    ("stack(x, x, x, axis=1)", (3, 3), lambda v: torch.stack([v["x"]] * 3, 1)),
    ("where(X > 0, X, 0.1 * X)", (3, 4), lambda v: torch.where(v["X"] > 0, v["X"], 0.1 * v["X"])),
    ("(X >= b) * 1.0", (3, 4), lambda v: (v["X"] >= v["b"]).double()),
    ("maximum(X, b)", (3, 4), lambda v: torch.maximum(v["X"], v["b"])),
    ("minimum(X, 0)", (3, 4), lambda v: torch.clamp(v["X"], max=0)),
    ("clamp(X, -0.5, 0.5)", (3, 4), lambda v: v["X"].clamp(-0.5, 0.5)),
    ("clamp(X, None, 1)", (3, 4), lambda v: v["X"].clamp(max=1)),
    ("sign(X)", (3, 4), lambda v: v["X"].sign()),
    ("sort(X, axis=0, descending=True)", (3, 4), lambda v: v["X"].sort(0, True).values),
    ("topk(X, 2)", (3, 2), lambda v: v["X"].topk(2).values),
    ("max_pool1d(X, 2)", (3, 2), lambda v: v["X"].unfold(-1, 2, 2).amax(-1)),
    ("max_pool1d(X, 3, stride=1)", (3, 2), lambda v: v["X"].unfold(-1, 3, 1).amax(-1)),
    ("[[0, 1], [1, 0]] @ X[:2]", (2, 4), lambda v: v["X"][[1, 0]]),
    ("tril(S) - triu(S, 1)", (3, 3), lambda v: torch.tril(v["S"]) - torch.triu(v["S"], 1)),
    ("eye(3, 4, k=1) @ b", (3,), lambda v: torch.eye(3, 4).roll(1, 1).double() @ v["b"]),
    ("arange(n) * b", (4,), lambda v: torch.arange(4.0).double() * v["b"]),
    ("full((3, 4), 2.5) * X", (3, 4), lambda v: 2.5 * v["X"]),
    ("onehot(2, m) @ X", (4,), lambda v: v["X"][2]),
    ("eigvalsh(X @ X.T)", (3,), lambda v: torch.linalg.eigvalsh(v["X"] @ v["X"].T)),
]


@pytest.mark.parametrize(("text", "shape", "reference"), CASES, ids=[c[0] for c in CASES])
def test_shapes_and_values(text: str, shape: tuple[int, ...], reference: Any) -> None:
    assert bound(text).shape == shape
    values = env()
    got = value(text, values)
    for t in range(T):
        want = reference({k: v[t] for k, v in values.items()})
        torch.testing.assert_close(got[t], want.to(torch.float64))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "c + x",
            "broadcasting them would make [3, 3], bigger than each of them (a silent outer "
            "product): use outer(x, y)",
            id="two-sided-broadcast",
        ),
        pytest.param("X + x", "elementwise + needs equal shapes", id="no-broadcast"),
        pytest.param(
            "Q[:, :1] @ K[:1].mT", "the batch axes (all but the last two) must be equal", id="batch-axes"
        ),
        pytest.param("Q.T", ".T transposes a matrix, but 'Q' has shape [2, 3, 4, 5]", id="T"),
        pytest.param("x.mT", ".mT swaps the last two axes", id="mT-vector"),
        pytest.param("X[3]", "index 3 is out of range for axis 0 (size 3) of 'X'", id="range"),
        pytest.param("X[:, -5]", "index -5 is out of range for axis 1 (size 4)", id="neg-range"),
        pytest.param("X[0:9]", "slice bound 9 is out of range for axis 0", id="slice-range"),
        pytest.param("X[2:1]", "the slice '2:1' is empty", id="slice-empty"),
        pytest.param("X[::-1]", "the slice step must be a positive integer", id="slice-step"),
        pytest.param("X[0, 0, 0]", "3 indices for 'X' of shape [3, 4]", id="too-many"),
        pytest.param("X[..., ...]", "may use ... only once", id="two-dots"),
        pytest.param("E[[0], [1]]", "at most one index list", id="two-lists"),
        pytest.param("E[[9]]", "index 9 is out of range for axis 0 (size 5)", id="list-range"),
        pytest.param("X[b]", "an index must be an integer constant or dim", id="tensor-index"),
        pytest.param("X[0.5]", "an index must be an integer constant or dim", id="float-index"),
        pytest.param("sum(X, axis=2)", "axis=2 is out of range for shape [3, 4]", id="axis"),
        pytest.param("sum(X, axis=(0, 0))", "names an axis twice", id="axis-twice"),
        pytest.param("sum(X, dim=0)", "sum has no option 'dim' (matgrad calls torch's dim= axis=)",
                     id="dim"),
        pytest.param("sum(X, axis=b)", "option axis= must be a constant", id="axis-tensor"),
        pytest.param("sum(X, keepdim=1)", "keepdim= must be True or False", id="keepdim"),
        pytest.param("cumsum(X)", "needs axis=", id="cumsum-axis"),
        pytest.param("einsum('ij,jk->ik', X, X)", "axis 'j' has size 4 in one place and 3",
                     id="einsum-size"),
        pytest.param("einsum('ij->ik', X)", "the output names 'k', on no operand", id="einsum-out"),
        pytest.param("einsum('ijk', X)", "operand 1 has shape [3, 4] (2 axes) but 'ijk' names 3",
                     id="einsum-rank"),
        pytest.param("einsum('ij,jk', X)", "names 2 operands, got 1", id="einsum-operands"),
        pytest.param("einsum('i...', X)", "'...' is not supported", id="einsum-dots"),
        pytest.param("einsum('i_j', X)", "only letters name axes", id="einsum-chars"),
        pytest.param("einsum(X, X)", "argument 1 of einsum must be", id="einsum-spec"),
        pytest.param("reshape(X, 5, -1)", "cannot reshape [3, 4] (12 entries)", id="reshape"),
        pytest.param("permute(X, 0, 0)", "needs a permutation of the 2 axes", id="permute"),
        pytest.param("concat(X, Q)", "needs shapes equal except along axis 0", id="concat"),
        pytest.param("stack(X, S)", "needs equal shapes", id="stack"),
        pytest.param("topk(X, 5)", "needs k between 1 and 4", id="topk"),
        pytest.param("max_pool1d(X, 5)", "needs a window k of at most 4 (the last axis), got k=5",
                     id="pool"),
        pytest.param("clamp(X, 1, -1)", "needs lo <= hi", id="clamp"),
        # torch would give NaN/inf and print a warning (found by the fuzz tests)
        pytest.param("var(X[:1], axis=0)", "reduces 1 entry, which leaves nothing to divide by "
                     "with correction=1", id="var-one-entry"),
        pytest.param("std(X, correction=12)", "reduces 12 entries", id="std-correction"),
        pytest.param("var(X, correction=-1)", "needs correction= a non-negative integer",
                     id="var-correction-negative"),
        pytest.param("[[1, 2], [3]]", "have different shapes", id="ragged"),
        pytest.param("[]", "is empty", id="empty-list"),
        pytest.param("onehot(4, m)", "needs an index i with -3 <= i < 3", id="onehot"),
        pytest.param("full((3, 0), 1)", "needs a size to be a positive integer", id="full"),
        pytest.param(
            "eigvalsh(S @ X[:, :3])",
            "eigvalsh is defined for symmetric matrices, and 'S @ X[:, :3]' is not symmetric by "
            "construction",
            id="eigvalsh-not-symmetric",
        ),
        pytest.param("eigvecsh(S @ X @ X.T)", "write eigvecsh(sym(S @ X @ X.T))", id="eigvecsh"),
        pytest.param("'ij'", "is not a tensor", id="string"),
    ],
)
def test_errors_name_the_problem(text: str, message: str) -> None:
    scope = Scope(
        {**SHAPES, "X": (3, 4), "S": (3, 3)}, {"n": 4, "m": 3}, symmetric=frozenset({"S"})
    )
    with pytest.raises(ExprError) as e:
        bind(parse(text), scope)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "text",
    ["eigvalsh(S)", "eigvalsh(X @ X.T)", "eigvalsh(X.T @ S @ X)", "eigvalsh(sym(X[:, :3]))",
     "eigvalsh(S + 2 * eye(3))", "eigvalsh(inv(S) @ inv(S))", "eigvalsh([[1, 2], [2, 1]])",
     "eigvalsh(outer(x, x))", "eigvalsh(-S.T / 2)"],
)
def test_symmetric_by_construction_is_accepted(text: str) -> None:
    assert bound(text).shape[-1] in (2, 3, 4)


def test_rank_is_bounded() -> None:
    seven = Scope({"Z": (1,) * 7}, {})
    with pytest.raises(LimitError, match="max_rank"):
        bind(parse("Z"), seven)
    with pytest.raises(LimitError, match="max_rank"):
        bind(parse("Q[None, None, None]"), SCOPE)
    assert bind(parse("Q[None, None]"), SCOPE).shape == (1, 1, 2, 3, 4, 5)
    assert bind(parse("Q[None, None, None]"), SCOPE, Limits(max_rank=7)).shape[:3] == (1, 1, 1)


def test_options_are_checked_at_parse_time() -> None:
    with pytest.raises(ExprError, match="softmax has no option 'dims'"):
        parse("softmax(X, dims=1)")
    with pytest.raises(ExprError, match="tr takes no options"):
        parse("tr(S, axis=0)")


def test_several_results_need_a_part() -> None:
    with pytest.raises(ExprError, match=r"attribute \.Q is not allowed"):
        parse("inv(S).Q")


def test_einsum_with_many_operands_keeps_intermediates_bounded() -> None:
    # a chain contracted left to right: the largest intermediate is [n, n], not n^4
    scope = Scope({"A": (50, 50)}, {})
    b = bind(parse("einsum('ij,jk,kl,lm->im', A, A, A, A)"), scope)
    assert b.max_numel == 2500


def test_constant_comparisons_fold() -> None:
    # found by the fuzz tests: a comparison of two constants was a Python bool at run time
    assert bound("n < m").static == 0.0
    assert bound("-(m < n)").static == -1.0
    values = env()
    got = value("where(n > 0, n, X)", values)
    assert torch.equal(got, torch.full_like(values["X"], 4.0))
