"""Per-term repairs and the description of what a claim misses (matgrad.lang.terms,
matgrad.engine.repair): each mistake class of the gallery gets the hint that names its term and
its repair; right claims written differently, and wrong claims that no edit repairs, stay
quiet; a repair that holds on some trials only is never reported; the work is bounded."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import torch

from matgrad.engine import repair
from matgrad.engine.core import Settings, check_identity, run
from matgrad.lang import terms
from matgrad.lang.expr import Scope, bind, parse
from matgrad.limits import DEFAULT_LIMITS
from matgrad.spec.schema import Identity, load_all, load_text

ROOT = Path(__file__).resolve().parent.parent
GALLERY = ROOT / "identities" / "mistakes"


@cache
def gallery() -> dict[str, list[str | None]]:
    """Every gallery identity's hints, one per claim (checked once for the whole module)."""
    report = run(load_all([str(GALLERY)]), Settings())
    return {r.id: [c.hint for c in r.claims] for r in report.results}


# (identity, the hint that names the term and its repair)
NAMED = [
    ("mistake-term-transpose-in-sum",
     "term 2 'B @ X.T @ A' should be transposed: 'A.T @ X @ B.T'"),
    ("mistake-term-transpose-in-let",
     "term 2 'B @ X.T @ A' (in let G) should be transposed: 'A.T @ X @ B.T'"),
    ("mistake-term-extra", "term 3 'A' should be dropped"),
    ("mistake-term-factor-order",
     "term 1 'B.T @ A.T' has its factors in the wrong order: 'A.T @ B.T'"),
    ("mistake-layout-wrong-order-trace-axb",
     "term 1 'B.T @ A.T' has its factors in the wrong order: 'A.T @ B.T'"),
    ("mistake-layout-wrong-order-differential-axb",
     "term 1 'A @ B @ dX' has two factors in the wrong order: 'A @ dX @ B'"),
    ("mistake-alg-d-inverse-commuted",
     "term 1 '-inv(X) @ inv(X) @ dX' has two factors in the wrong order: "
     "'-inv(X) @ dX @ inv(X)'"),
    ("mistake-term-commuted",
     "term 1 '2 * X @ dX' treats 'X' and 'dX' as if they commuted (the scalar rule 2ab): "
     "'X @ dX + dX @ X'"),
    ("mistake-alg-d-xsquared-2xdx",
     "term 1 '2 * X @ dX' treats 'X' and 'dX' as if they commuted (the scalar rule 2ab): "
     "'X @ dX + dX @ X'"),
    ("mistake-term-not-symmetrised",
     "term 1 '2 * X.T @ dX' should be symmetrised: 'X.T @ dX + dX.T @ X'"),
    ("mistake-term-inverse-transpose", "term 1 'inv(X)' should be transposed: 'inv(X).T'"),
    ("mistake-term-transpose-inside", "term 2 'A.T @ X.T' has 'X.T' where 'X' belongs: 'A.T @ X'"),
    ("mistake-layout-ainvb-inverse-not-transposed",
     "term 1 '-inv(X) @ a @ b.T @ inv(X)' has 'X' where 'X.T' belongs (each of its 2): "
     "'-inv(X.T) @ a @ b.T @ inv(X.T)'"),
    ("mistake-term-sign",
     "term 1 'inv(X).T @ A.T @ inv(X).T' has the wrong sign: '-(inv(X).T @ A.T @ inv(X).T)'"),
    ("mistake-term-factor2", "term 1 'x' should be doubled: '2 * x'"),
    ("mistake-term-two-slips",
     "term 1 'A' should be transposed: 'A.T'; and term 2 'X' should be doubled: '2 * X'"),
    ("mistake-notation-power-minus-one",
     "term 1 '(X ** -1).T' uses 'X ** -1', an elementwise reciprocal (1/x per entry), for the "
     "matrix inverse inv(X): 'inv(X).T'"),
    ("mistake-notation-star-for-matmul",
     "term 1 '2 * A.T * A @ X' uses '2 * A.T * A', an elementwise product, for the matrix "
     "product @: '2 * A.T @ A @ X'"),
    ("mistake-term-dropped-regulariser",
     "missing term: the difference autograd - claim is exactly 6 * (x), a term the claim "
     "leaves out (or has with the wrong factor)?"),
    ("mistake-residual-rank-one",
     "rank one: the difference autograd - claim is rank one on every trial (an outer product "
     "u @ v.T): a missing term such as a @ b.T?"),
    ("mistake-alg-chain-softmax-elementwise",
     "rank one: the difference autograd - claim is rank one on every trial (an outer product "
     "u @ v.T): a missing term such as a @ b.T?"),
    ("mistake-residual-diagonal",
     "diagonal: the difference autograd - claim is zero off the diagonal (a missing diagonal "
     "term, such as the - G*I of a free-parameter gradient, or * eye(n))"),
]


@pytest.mark.parametrize(("ident", "hint"), NAMED, ids=[i for i, _ in NAMED])
def test_gallery_hint_names_the_term_and_the_repair(ident: str, hint: str) -> None:
    assert gallery()[ident] == [hint]


def claim_of(text: str, trials: int = 30):
    (item,) = load_text(text, "t.yaml")
    assert isinstance(item, Identity), item
    (c,) = check_identity(item, Settings(trials=trials), "cpu").claims
    return c


def ident(f: str, claim: str, vars_: str, extra: str = "") -> str:
    return f"id: t\ndims: {{n: 3}}\nvars: {vars_}\nf: {f!r}\n{claim}\n{extra}"


SQUARES = "{X: [n, n], A: [n, n], B: [n, n]}"

# Right claims written otherwise than the usual derivation: they pass, with no hint.
RIGHT = [
    pytest.param("tr(X.T @ A @ X @ B)", "grad: {X: 'A.T @ X @ B.T + A @ X @ B'}", SQUARES, "",
                 id="terms-in-another-order"),
    pytest.param("tr(X.T @ A @ X @ B)", "grad: {X: '(B @ X.T @ A).T + A @ X @ B'}", SQUARES, "",
                 id="a-term-transposed-as-a-whole"),
    pytest.param("tr(A @ X) + norm(X) ** 2", "grad: {X: 'G - -2 * X'}", SQUARES,
                 "let: {G: 'A.T'}", id="double-negation-through-a-let"),
    pytest.param("X @ X + X", "differential: {X: 'dX @ X + X @ dX + dX'}", SQUARES, "",
                 id="product-rule-other-order"),
    pytest.param("norm(X) ** 2 + tr(X)", "grad: {X: 'X + X + eye(n)'}", SQUARES, "",
                 id="doubled-by-addition"),
]


@pytest.mark.parametrize(("f", "claim", "vars_", "extra"), RIGHT)
def test_right_claims_written_differently_stay_quiet(
    f: str, claim: str, vars_: str, extra: str
) -> None:
    c = claim_of(ident(f, claim, vars_, extra))
    assert c.status == "passed" and c.hint is None


# Wrong claims that no edit of one or two terms repairs, and whose difference has none of the
# structures described: no hint at all (never a repair that does not hold).
UNREPAIRABLE = [
    pytest.param("tr(X.T @ A @ X @ B)", "grad: {X: 'A @ X @ B + A @ X @ A'}", SQUARES,
                 id="a-term-of-another-formula"),
    pytest.param("tr(A @ X @ B) + tr(X)", "grad: {X: 'B.T @ A + eye(n)'}", SQUARES,
                 id="order-and-transpose-in-one-term"),
    pytest.param("tr(X @ X @ X)", "grad: {X: '3 * X @ X'}", SQUARES, id="transposes-missing"),
]


@pytest.mark.parametrize(("f", "claim", "vars_"), UNREPAIRABLE)
def test_unrepairable_claims_stay_quiet(f: str, claim: str, vars_: str) -> None:
    c = claim_of(ident(f, claim, vars_))
    assert c.status == "failed", c.message
    assert c.hint is None or not c.hint.startswith("term "), c.hint


# ---- the search itself --------------------------------------------------------------------


def _bound(text: str, shapes: dict[str, tuple[int, ...]]):
    return bind(parse(text), Scope(shapes, {}))


def _inputs(text: str, values: dict[str, torch.Tensor], lets=None) -> repair.Inputs:
    shapes = {k: tuple(v.shape[1:]) for k, v in values.items()}
    claim = _bound(text, shapes)
    from matgrad.engine import tensors

    like = torch.zeros(next(iter(values.values())).shape[0], dtype=torch.float64)

    def evaluate(b):
        return tensors.evaluate(b, dict(values), like)

    return repair.Inputs(
        claim, lets or {}, evaluate, lambda: list(values.items()), int(like.shape[0]),
        DEFAULT_LIMITS,
    )


def test_a_repair_that_holds_on_some_trials_only_is_not_reported() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(10, 3, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(10, 3, 3, generator=gen, dtype=torch.float64)
    inp = _inputs("A + B", {"A": a, "B": b})
    truth = a.transpose(-1, -2) + b  # term 1 transposed repairs it ...
    truth[3] += 1e-3  # ... except on trial 3
    value = a + b
    out = repair.search(truth, value, 1e-6, 0.0, None, (3, 3), inp)
    assert out.hint is None
    truth[3] -= 1e-3
    assert repair.search(truth, value, 1e-6, 0.0, None, (3, 3), inp).hint == (
        "term 1 'A' should be transposed: 'A.T'"
    )


def test_the_search_is_bounded_and_deterministic() -> None:
    gen = torch.Generator().manual_seed(1)
    names = [f"A{i}" for i in range(20)]
    values = {n: torch.randn(4, 3, 3, generator=gen, dtype=torch.float64) for n in names}
    text = " + ".join(f"{n} @ {m}" for n, m in zip(names, names[1:] + names[:1], strict=True))
    inp = _inputs(text, values)
    truth = torch.randn(4, 3, 3, generator=gen, dtype=torch.float64)
    value = sum(values[n] @ values[m] for n, m in zip(names, names[1:] + names[:1], strict=True))
    first = repair.search(truth, value, 1e-6, 0.0, None, (3, 3), inp)
    assert first.hint is None
    assert first.evals <= repair.MAX_EVALS
    assert first.checks <= repair.MAX_CHECKS
    assert any("first 12 terms" in s for s in first.skipped)
    second = repair.search(truth, value, 1e-6, 0.0, None, (3, 3), inp)
    assert (second.evals, second.checks, second.skipped) == (
        first.evals, first.checks, first.skipped
    )


def test_residual_structures() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(5, 3, 3, generator=gen, dtype=torch.float64)

    def describe(truth, named=()):
        return repair.residual(truth, y, 1e-6, 0.0, None, (3, 3), list(named))

    assert describe(y + 2.5 * x, [("x", x)]).startswith(
        "missing term: the difference autograd - claim is exactly 2.5 * (x)"
    )
    assert describe(y + (x - x.transpose(-1, -2))).startswith("antisymmetric: ")
    assert describe(y + (x + x.transpose(-1, -2))).startswith("symmetric: ")
    u = torch.randn(5, 3, 1, generator=gen, dtype=torch.float64)
    assert describe(y + u @ u.transpose(-1, -2) * 1e-3).startswith("rank one: ")
    assert describe(y + x) is None  # nothing to say about a random difference


def test_a_structure_both_sides_have_is_not_news() -> None:
    # reference and claim both symmetric: the difference is symmetric, and that says nothing
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(5, 3, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(5, 3, 3, generator=gen, dtype=torch.float64)
    s, t = a + a.transpose(-1, -2), b + b.transpose(-1, -2)
    assert repair.residual(s, t, 1e-6, 0.0, None, (3, 3), []) is None


# ---- terms: splitting and printing (no torch) -----------------------------------------------


SHAPES = {"A": (3, 3), "B": (3, 3), "X": (3, 3), "x": (3, 1)}


@pytest.mark.parametrize(
    ("text", "split"),
    [
        ("A + B - X", [(1, "A"), (1, "B"), (-1, "X")]),
        ("-(A - B) + 2 * X", [(-1, "A"), (1, "B"), (1, "2 * X")]),
        ("A @ (B + X)", [(1, "A @ (B + X)")]),
        ("G - X", [(1, "A @ B"), (-1, "B.T"), (-1, "X")]),
    ],
)
def test_split(text: str, split: list[tuple[int, str]]) -> None:
    lets = {"G": _bound("A @ B - B.T", SHAPES)}
    b = bind(parse(text), Scope({**SHAPES, "G": (3, 3)}, {}))
    assert [(t.sign, t.text) for t in terms.split(b, lets)] == split


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A.T @ X @ B", "B.T @ X.T @ A"),
        ("A @ (B + X.T)", "(B.T + X) @ A.T"),
        ("-2 * A @ x @ x.T", "x @ x.T @ (-2 * A.T)"),
        ("inv(A)", "inv(A).T"),
        ("sym(A) @ B", "B.T @ sym(A)"),
        ("A ** 2", "A.T ** 2"),
    ],
)
def test_transposed_text(text: str, expected: str) -> None:
    b = _bound(text, SHAPES)
    assert terms.show(terms.transposed(b)) == expected
    # the text parses back to the same shape
    assert _bound(expected, SHAPES).shape == tuple(reversed(b.shape))


def test_edit_budget_per_term() -> None:
    text = "A @ B @ X @ A @ B @ X @ A"
    b = _bound(text, SHAPES)
    (term,) = terms.split(b, {})
    edits = terms.edits([term], terms.scope_of(b), 10**6)
    assert sum(e.op == "expr" for e in edits) <= terms.MAX_TREE_EDITS


# ---- coverage, as docs/diagnosis.md states it -----------------------------------------------


def test_hint_coverage_is_what_the_docs_say() -> None:
    hints = [h for ident in gallery().values() for h in ident]
    specific = sum(h is not None for h in hints)
    doc = (ROOT / "docs" / "diagnosis.md").read_text()
    m = re.search(r"(\d+) of the (\d+) wrong claims in `identities/mistakes/` get a hint", doc)
    assert m, "docs/diagnosis.md states the gallery's hint coverage"
    assert (int(m.group(1)), int(m.group(2))) == (specific, len(hints))


def test_docs_samples_are_gallery_hints() -> None:
    doc = (ROOT / "docs" / "diagnosis.md").read_text()
    block = doc.split("### Which term is wrong")[1].split("```text\n")[1].split("```")[0]
    hints = {h for ident in gallery().values() for h in ident if h}
    for line in block.splitlines():
        assert line in hints, line
